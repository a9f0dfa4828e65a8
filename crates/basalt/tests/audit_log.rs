//! The audit log names who was denied what, from where, and every admin call — and never a
//! secret.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::{ACCESS_KEY, SECRET_KEY, client_for, error_code, free_port, http_get};

#[tokio::test]
async fn denied_requests_and_admin_calls_are_audited_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "server",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .env("BASALT_ROOT_USER", ACCESS_KEY)
        .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
        .env("BASALT_LOG", "warn,basalt::audit=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http_get(port, "/health/ready").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }

    let forged = client_for(&endpoint, ACCESS_KEY, "wrong-secret-value");
    let err = forged.list_buckets().send().await.unwrap_err();
    assert_eq!(error_code(&err), "SignatureDoesNotMatch");
    // An existing bucket: an anonymous request for a missing one is told NoSuchBucket.
    client_for(&endpoint, ACCESS_KEY, SECRET_KEY)
        .create_bucket()
        .bucket("private")
        .send()
        .await
        .unwrap();
    let anonymous = http_get(port, "/private/data.csv").unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 403"), "{anonymous}");
    let admin = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["admin", "status", "--endpoint", &endpoint])
        .env("BASALT_ROOT_USER", ACCESS_KEY)
        .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .unwrap();
    assert!(admin.status.success());
    // A permitted S3 call is not audited.
    client_for(&endpoint, ACCESS_KEY, SECRET_KEY)
        .list_buckets()
        .send()
        .await
        .unwrap();

    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("basalt::audit"))
        .collect();
    assert_eq!(audit.len(), 3, "{text}");
    assert!(
        audit[0].contains("event=\"denied\"")
            && audit[0].contains("code=\"SignatureDoesNotMatch\"")
    );
    assert!(audit[0].contains(&format!("access_key=\"{ACCESS_KEY}\"")));
    assert!(audit[0].contains("peer=\"127.0.0.1:"), "{}", audit[0]);
    assert!(
        audit[1].contains("resource=\"/private/data.csv\"")
            && audit[1].contains("access_key=\"-\"")
    );
    assert!(audit[2].contains("event=\"admin\"") && audit[2].contains("/basalt-admin/v1/status"));
    assert!(
        !text.contains("wrong-secret-value") && !text.contains(SECRET_KEY),
        "{text}"
    );
}
