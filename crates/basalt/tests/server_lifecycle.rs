//! Start-up, credentials, health endpoints, virtual-hosted-style addressing and graceful
//! shutdown of the `basalt server` process.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{RawRequest, Server, status_of};

#[test]
fn generated_root_credentials_are_printed_once_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();

    let (mut first, mut out) = Server::start_without_credentials(&data, port);
    first.terminate();
    let mut printed = String::new();
    out.read_to_string(&mut printed).unwrap();
    let access = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("access key: "))
        .expect("access key printed");
    let secret = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret key: "))
        .expect("secret key printed");

    let stored = std::fs::read_to_string(data.join("root-credentials")).unwrap();
    assert_eq!(stored, format!("{access}\n{secret}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("root-credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the credentials file is readable by others"
        );
    }

    let (mut second, mut out) = Server::start_without_credentials(&data, port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = common::client_for(&second.endpoint(), access, secret);
        client
            .create_bucket()
            .bucket("persisted-creds")
            .send()
            .await
            .expect("the persisted credentials work");
    });
    second.terminate();
    let mut again = String::new();
    out.read_to_string(&mut again).unwrap();
    assert!(
        !again.contains(secret),
        "the secret was printed a second time"
    );
}

#[test]
fn health_endpoints_answer_without_credentials() {
    let server = Server::start();
    for path in ["/health/live", "/health/ready"] {
        let resp = common::http_get(server.port, path).unwrap();
        assert_eq!(status_of(&resp), 200, "{path}: {resp}");
    }
}

#[test]
fn virtual_hosted_style_requests_reach_the_bucket() {
    let server = Server::start_with(&["--domain", "s3.basalt.test"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = server.client();
        client.create_bucket().bucket("vhost").send().await.unwrap();
        client
            .put_object()
            .bucket("vhost")
            .key("dir/file.txt")
            .body(b"by host".to_vec().into())
            .send()
            .await
            .unwrap();
    });
    let mut req = RawRequest::new("GET", "/dir/file.txt", b"");
    req.host = Some(format!("vhost.s3.basalt.test:{}", server.port));
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(resp.ends_with("by host"), "{resp}");
}

#[test]
fn a_browser_form_posted_to_a_bucket_host_writes_its_key() {
    let server = Server::start_with(&["--domain", "s3.basalt.test"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = server.client();
    rt.block_on(async {
        client.create_bucket().bucket("forms").send().await.unwrap();
        client
            .put_bucket_policy()
            .bucket("forms")
            .policy(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::forms/in/*"}]}"#,
            )
            .send()
            .await
            .unwrap();
    });
    let boundary = "vhostform";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nin/${{filename}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"success_action_status\"\r\n\r\n201\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\n\r\nby form\r\n--{boundary}--\r\n"
    );
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: forms.s3.basalt.test:{port}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        port = server.port
    );
    let resp = common::http_raw(server.port, raw.as_bytes()).unwrap();
    assert_eq!(status_of(&resp), 201, "{resp}");
    assert!(resp.contains("<Key>in/note.txt</Key>"), "{resp}");
    assert!(
        resp.contains(&format!(
            "<Location>http://forms.s3.basalt.test:{}/in/note.txt</Location>",
            server.port
        )),
        "{resp}"
    );
    rt.block_on(common::read_all(
        &client,
        "forms",
        &[("in/note.txt".to_owned(), b"by form".to_vec())],
        "the posted form",
    ));
}

#[test]
fn sigterm_lets_an_in_flight_upload_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = Server::start_on(&data, port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        server
            .client()
            .create_bucket()
            .bucket("graceful")
            .send()
            .await
            .unwrap()
    });

    let body = common::bytes_of(3 << 20, 9);
    let mut req = RawRequest::new("PUT", "/graceful/in-flight", &body);
    req.declared_len = Some(body.len());
    let head = req.head(port, true);
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&body[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let pid = server.pid();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    socket.write_all(&body[1 << 20..]).unwrap();
    let mut resp = String::new();
    socket.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "the in-flight upload was cut off: {resp}"
    );

    let child = server.child.as_mut().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "basalt exited with {status}");
    server.child = None;

    let server = Server::start_on(&data, port);
    rt.block_on(async {
        let got = server
            .client()
            .get_object()
            .bucket("graceful")
            .key("in-flight")
            .send()
            .await
            .unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(bytes.as_ref(), body.as_slice());
    });
}
