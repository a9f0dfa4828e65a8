//! A full drive: the PUT that does not fit is refused with `507 InsufficientStorage`, leaves
//! nothing behind, and the node goes on serving; once space is freed, writes succeed again.
//! The drive is a small tmpfs, so the test needs root (it says so and passes trivially where
//! mounting is not allowed).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::{Server, bytes_of, error_code};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_owned()))
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for group in std::fs::read_dir(dir.join("chunks")).unwrap().flatten() {
        for f in std::fs::read_dir(group.path()).unwrap().flatten() {
            out.push(f.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test]
async fn a_full_drive_refuses_the_write_that_does_not_fit_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("small-drive");
    let Some(_mount) = mount_tmpfs(&drive, "6m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let meta = dir.path().join("meta").display().to_string();
    let server = Server::start_on_with(
        &drive,
        common::free_port(),
        // Freed chunks are deleted after the grace: keep it short, as a full drive wants.
        &[
            "--meta-dir",
            &meta,
            "--scrub-interval",
            "off",
            "--garbage-grace",
            "1s",
        ],
    );
    let client = server.client_without_retries();
    client.create_bucket().bucket("full").send().await.unwrap();
    let first = bytes_of(3 << 20, 1);
    client
        .put_object()
        .bucket("full")
        .key("first")
        .body(ByteStream::from(first.clone()))
        .send()
        .await
        .unwrap();
    let before = files_under(&drive);

    let err = client
        .put_object()
        .bucket("full")
        .key("second")
        .body(ByteStream::from(bytes_of(4 << 20, 2)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InsufficientStorage");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(507));
    assert_eq!(files_under(&drive), before, "the refused write left files");
    let got = client
        .get_object()
        .bucket("full")
        .key("first")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &first[..]
    );

    client
        .delete_object()
        .bucket("full")
        .key("first")
        .send()
        .await
        .unwrap();
    let mut stored = false;
    for _ in 0..100 {
        let put = client
            .put_object()
            .bucket("full")
            .key("second")
            .body(ByteStream::from(bytes_of(4 << 20, 2)))
            .send()
            .await;
        if put.is_ok() {
            stored = true;
            break;
        }
        // The deleted object's file goes after the garbage grace.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored, "writes did not resume once space was freed");
}
