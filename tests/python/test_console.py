"""The web console (`/_console/`) in headless Chromium, driven by selenium: sign in, create a
bucket, upload (a small file in one PUT and a large one in parts, with progress), list, open an
object's details, download, delete; users and keys for the admin; the health page; a wrong key
refused. Each step is checked against the store with boto3, not only on the page. A screenshot
of each page is kept in `target/test-artifacts/`."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from conftest import unique_bucket_name
from helpers import s3_error

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "target" / "test-artifacts"
WAIT_S = 30


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium and chromium-driver are not installed: scripts/python-setup.sh installs them")
    return browser, driver


@pytest.fixture(scope="module")
def console(basalt, tmp_path_factory):
    """One browser for the module, on one node's console (in a cluster: the first)."""
    browser, driver_path = _chromium()
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--no-proxy-server"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.downloads = downloads
    driver.base = basalt.endpoints[0] + "/_console/"
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, what: str):
    # A table re-rendered while it is looked at leaves stale references: look again.
    try:
        return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        message = driver.find_elements(By.ID, "message")
        shown = message[0].get_attribute("textContent") if message else ""
        raise AssertionError(f"timed out waiting for {what}; page says: {shown!r}") from None


def _screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Configurations run side by side: each keeps its own screenshots.
    label = os.environ.get("BASALT_TEST_LABEL", "")
    prefix = f"console-{label}-" if label else "console-"
    driver.save_screenshot(str(ARTIFACTS / f"{prefix}{name}.png"))


def _sign_in(driver, access_key: str, secret_key: str) -> None:
    driver.get(driver.base)
    driver.execute_script("sessionStorage.clear()")
    driver.get(driver.base + "#/")
    _wait(driver, ec.visibility_of_element_located((By.ID, "access-key")), "the sign-in form")
    driver.find_element(By.ID, "access-key").send_keys(access_key)
    driver.find_element(By.ID, "secret-key").send_keys(secret_key)
    driver.find_element(By.ID, "sign-in-button").click()
    # Deletions ask for confirmation; the test confirms.
    driver.execute_script("window.confirm = () => true")


def _signed_in(driver) -> None:
    # Sign-in checks the key with a request, then shows the bucket list: a route shown before
    # that would be replaced by it.
    _wait(driver, ec.visibility_of_element_located((By.ID, "sign-out")), "signed in")
    _wait(driver, ec.visibility_of_element_located((By.ID, "buckets")), "the bucket list after sign-in")


def _go(driver, route: str, element_id: str) -> None:
    """Shows `route` afresh (also when it is the page shown) and waits for its `element_id`."""
    driver.execute_script("""
        for (const old of document.querySelectorAll('#app-view *')) old.dataset.stale = '1';
        if (location.hash === arguments[0]) render(); else location.hash = arguments[0];
    """, route)
    _wait(driver, lambda d: any(e.get_attribute("data-stale") is None for e in d.find_elements(By.ID, element_id)),
          f"#{element_id} on {route}")


def _has_row(driver, attribute: str, value: str) -> bool:
    """Asked in the page itself, so a table re-rendered meanwhile is no stale reference."""
    return driver.execute_script(
        "return [...document.querySelectorAll(`tr[${arguments[0]}]`)]"
        ".some((r) => r.getAttribute(arguments[0]) === arguments[1])", attribute, value)


def _wait_gone(driver, attribute: str, value: str) -> None:
    _wait(driver, lambda d: not _has_row(d, attribute, value), f"the row with {attribute}={value!r} gone")


def _click(driver, attribute: str, value: str, xpath: str) -> None:
    """Clicks `xpath` inside the row with `attribute`=`value`, looking again if the row is
    re-rendered between finding it and clicking."""
    def clicked(d):
        _row(d, attribute, value).find_element(By.XPATH, xpath).click()
        return True
    _wait(driver, clicked, f"a click on {xpath} in the row {attribute}={value!r}")


def _row(driver, attribute: str, value: str):
    return _wait(driver, lambda d: next(
        (r for r in d.find_elements(By.CSS_SELECTOR, f"tr[{attribute}]") if r.get_attribute(attribute) == value),
        False), f"a row with {attribute}={value!r}")


def test_the_console_is_served_with_a_strict_content_policy(basalt):
    with urllib.request.urlopen(basalt.endpoints[0] + "/_console/", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        page = resp.read().decode()
    assert f'content="{basalt.region}"' in page
    assert "<script>" not in page, "no inline script (the policy would block it)"
    with urllib.request.urlopen(basalt.endpoints[0] + "/_console/console.js", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
    # A browser asking for /console is sent to the console; an S3 client is not.
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(basalt.endpoints[0] + "/console", headers={"Accept": "text/html"})
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(req, timeout=10)
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"] == "/_console/"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_wrong_key_is_refused(console, basalt):
    _sign_in(console, basalt.access_key, "not-the-secret")
    message = _wait(console, ec.visibility_of_element_located((By.ID, "message")), "the refusal")
    assert "Sign-in refused" in message.text and "SignatureDoesNotMatch" in message.text
    assert not console.find_element(By.ID, "app-view").is_displayed()
    assert console.execute_script("return sessionStorage.getItem('basalt-console')") is None
    _screenshot(console, "refused")
    _sign_in(console, "NOSUCHKEY", "whatever")
    message = _wait(console, ec.text_to_be_present_in_element((By.ID, "message"), "InvalidAccessKeyId"),
                    "the unknown key refused")
    assert message


def test_sign_in_upload_list_download_and_delete(console, basalt, s3):
    name = unique_bucket_name("console")
    _sign_in(console, basalt.access_key, basalt.secret_key)
    _signed_in(console)
    assert console.find_element(By.ID, "who").text == basalt.access_key

    console.find_element(By.ID, "new-bucket").send_keys(name)
    console.find_element(By.ID, "create-bucket").click()
    _row(console, "data-bucket", name)
    s3.head_bucket(Bucket=name)

    small = console.downloads.parent / "hello world.txt"
    small.write_bytes(b"hello from the console\n" * 100)
    large = console.downloads.parent / "large.bin"
    large.write_bytes(os.urandom(20 * 1024 * 1024 + 12345))
    _go(console, f"#/b/{name}/", "objects")
    console.find_element(By.ID, "upload-files").send_keys(f"{small}\n{large}")
    console.find_element(By.ID, "upload").click()
    _wait(console, ec.text_to_be_present_in_element((By.ID, "message"), "Upload finished"), "the uploads")
    _row(console, "data-key", "hello world.txt")
    _row(console, "data-key", "large.bin")
    _screenshot(console, "objects")

    assert s3.get_object(Bucket=name, Key="hello world.txt")["Body"].read() == small.read_bytes()
    big = s3.get_object(Bucket=name, Key="large.bin")
    assert big["Body"].read() == large.read_bytes()
    assert big["ETag"].strip('"').endswith("-3"), "a 20 MiB file is uploaded in three 8 MiB parts"
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []

    # A folder, listed as a prefix, and the object inside it.
    s3.put_object(Bucket=name, Key="dir/inner.txt", Body=b"inner", Metadata={"colour": "blue"},
                  Tagging="team=storage")
    _go(console, f"#/b/{name}/", "objects")
    _click(console, "data-prefix", "dir/", ".//a")
    _click(console, "data-key", "dir/inner.txt", ".//a")
    facts = _wait(console, ec.presence_of_element_located((By.ID, "object-facts")), "the object's details")
    assert "dir/inner.txt" in facts.text and "5 B" in facts.text
    page = console.find_element(By.ID, "app-view").text
    assert "colour" in page and "blue" in page
    assert "team" in console.find_element(By.ID, "object-tags").text
    _screenshot(console, "object")

    # Download streams through a presigned URL into the browser's download folder.
    _go(console, f"#/b/{name}/", "objects")
    _click(console, "data-key", "hello world.txt", ".//button[text()='Download']")
    target = console.downloads / "hello world.txt"
    _wait(console, lambda _d: target.exists() and target.read_bytes() == small.read_bytes(), "the download")

    # Delete from the details page, then the rest, then the bucket.
    _go(console, f"#/o/{name}/dir%2Finner.txt", "delete-object")
    console.find_element(By.ID, "delete-object").click()
    _wait(console, ec.presence_of_element_located((By.ID, "objects")), "the listing after the delete")
    with s3_error(("404", "NoSuchKey")):
        s3.head_object(Bucket=name, Key="dir/inner.txt")
    for key in ("hello world.txt", "large.bin"):
        _go(console, f"#/b/{name}/", "objects")
        _click(console, "data-key", key, ".//button[text()='Delete']")
        _wait_gone(console, "data-key", key)
    assert s3.list_objects_v2(Bucket=name).get("KeyCount") == 0
    _go(console, "#/", "buckets")
    _click(console, "data-bucket", name, ".//button[text()='Delete']")
    _wait_gone(console, "data-bucket", name)
    with s3_error(("404", "NoSuchBucket")):
        s3.head_bucket(Bucket=name)


def test_a_bucket_that_is_not_empty_is_kept(console, basalt, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    _sign_in(console, basalt.access_key, basalt.secret_key)
    _signed_in(console)
    _click(console, "data-bucket", bucket, ".//button[text()='Delete']")
    _wait(console, ec.text_to_be_present_in_element((By.ID, "message"), "BucketNotEmpty"), "the refusal")
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


def test_the_admin_makes_a_user_and_a_key_that_works(console, basalt, bucket, s3):
    user = f"console-{int(time.time() * 1000) % 10**9}"
    _sign_in(console, basalt.access_key, basalt.secret_key)
    _signed_in(console)
    _go(console, "#/admin", "users")
    console.find_element(By.ID, "new-user").send_keys(user)
    console.find_element(By.ID, "create-user").click()
    row = _row(console, "data-user", user)
    policies = row.find_element(By.CSS_SELECTOR, "textarea")
    policies.clear()
    policies.send_keys('["readonly"]')
    row.find_element(By.XPATH, ".//button[text()='Save policies']").click()
    _wait(console, ec.text_to_be_present_in_element((By.ID, "message"), "saved"), "the policies saved")
    _click(console, "data-user", user, ".//button[text()='New key']")
    access_key = _wait(console, ec.presence_of_element_located((By.ID, "new-access-key")), "the new key").text
    secret_key = console.find_element(By.ID, "new-secret-key").text
    _row(console, "data-access-key", access_key)
    _screenshot(console, "admin")

    s3.put_object(Bucket=bucket, Key="readable", Body=b"yes")
    reader = basalt.client(access_key, secret_key)
    assert reader.get_object(Bucket=bucket, Key="readable")["Body"].read() == b"yes"
    with s3_error("AccessDenied", 403):
        reader.put_object(Bucket=bucket, Key="not-writable", Body=b"no")

    # The new user signs in to the console too, and sees only what readonly allows.
    _sign_in(console, access_key, secret_key)
    _signed_in(console)
    _go(console, "#/admin", "error")
    assert "AccessDenied" in console.find_element(By.ID, "error").text

    _sign_in(console, basalt.access_key, basalt.secret_key)
    _signed_in(console)
    _go(console, "#/admin", "users")
    _click(console, "data-access-key", access_key, ".//button[text()='Revoke']")
    _wait_gone(console, "data-access-key", access_key)
    with s3_error("InvalidAccessKeyId", 403):
        reader.get_object(Bucket=bucket, Key="readable")
    _click(console, "data-user", user, ".//button[text()='Delete']")
    _wait_gone(console, "data-user", user)


def test_the_health_page_shows_drives_charts_and_nodes(console, basalt, s3, bucket):
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"load/{i}", Body=b"z" * 1000)
    _sign_in(console, basalt.access_key, basalt.secret_key)
    _signed_in(console)
    _go(console, "#/health", "drives")
    drives = console.find_elements(By.CSS_SELECTOR, "#drives tr")
    assert len(drives) >= 2, "a header and at least one drive"
    assert "online" in drives[1].text
    charts = {c.get_attribute("data-chart"): c for c in console.find_elements(By.CSS_SELECTOR, "[data-chart]")}
    assert {"Requests/s", "Errors/s", "Mean latency", "In MB/s", "Out MB/s", "Used capacity"} <= set(charts)
    # The history holds the sampler's first sample and one taken for the answer: requests moved.
    assert "Requests/s: —" not in charts["Requests/s"].text
    if len(basalt.endpoints) > 1:
        rows = console.find_elements(By.CSS_SELECTOR, "#nodes tr")[1:]
        assert len(rows) == len(basalt.endpoints)
        assert all(r.find_elements(By.CSS_SELECTOR, "td.up") for r in rows), [r.text for r in rows]
        assert sum("leader" in r.text for r in rows) == 1
    else:
        assert "single node" in console.find_element(By.ID, "nodes").text
    _screenshot(console, "health")
