//! A six-drive node writing ec:4+2 stripes (64 KiB chunks, so objects span many stripes):
//! drives lost during reads and writes, bitrot, the healer and the scrubber, replaced drives,
//! and `basalt fsck` finding and repairing each kind of damage. Drives are directories; the
//! metadata lives apart from them so that any drive can be removed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::{ACCESS_KEY, RawRequest, SECRET_KEY, Server, bytes_of, error_code};
use serde_json::Value;

const BUCKET: &str = "ecb";

struct Node {
    dir: tempfile::TempDir,
    drives: Vec<PathBuf>,
    port: u16,
    server: Option<Server>,
    extra: Vec<String>,
}

impl Node {
    fn start(more: &[&str]) -> Self {
        Self::start_with_drives(6, more)
    }

    fn start_with_drives(count: usize, more: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let drives: Vec<PathBuf> = (1..=count)
            .map(|i| dir.path().join(format!("d{i}")))
            .collect();
        let mut extra = Vec::new();
        for d in &drives[1..] {
            extra.extend(["--data".to_owned(), d.display().to_string()]);
        }
        let meta = dir.path().join("meta").display().to_string();
        extra.extend(
            [
                "--meta-dir",
                &meta,
                "--redundancy",
                "ec:4+2",
                "--chunk-size",
                "65536",
            ]
            .map(str::to_owned),
        );
        if !more.contains(&"--scrub-interval") {
            extra.extend(["--scrub-interval".to_owned(), "off".to_owned()]);
        }
        extra.extend(more.iter().map(|s| s.to_string()));
        let mut node = Self {
            dir,
            drives,
            port: common::free_port(),
            server: None,
            extra,
        };
        node.restart();
        node
    }

    fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.server = Some(Server::start_on_with(&self.drives[0], self.port, &extra));
    }

    fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.terminate();
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        self.server.as_ref().unwrap().client_without_retries()
    }

    fn admin(&self, args: &[&str]) -> (Output, Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .arg("admin")
            .args(args)
            .args(["--json", "--endpoint"])
            .arg(format!("http://127.0.0.1:{}", self.port))
            .env("BASALT_ROOT_USER", ACCESS_KEY)
            .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
            .output()
            .unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, json)
    }

    fn fsck(&self, repair: bool) -> (bool, Value) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
        cmd.arg("fsck").arg("--json");
        for d in &self.drives {
            cmd.arg("--data").arg(d);
        }
        cmd.arg("--meta-dir").arg(self.dir.path().join("meta"));
        if repair {
            cmd.arg("--repair");
        }
        let out = cmd.env("BASALT_LOG", "error").output().unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("fsck output: {e}: {}", String::from_utf8_lossy(&out.stdout))
        });
        (out.status.success(), json)
    }
}

/// Every shard file of a drive (temporary files excluded).
fn shard_files(drive: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(dirs) = std::fs::read_dir(drive.join("chunks")) else {
        return out;
    };
    for dir in dirs.flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if !f.file_name().to_string_lossy().ends_with(".tmp") {
                out.insert(f.path());
            }
        }
    }
    out
}

fn all_shard_files(node: &Node) -> BTreeSet<PathBuf> {
    node.drives.iter().flat_map(|d| shard_files(d)).collect()
}

/// The stripe a shard file belongs to: its id but the last byte.
fn stripe_of(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    name[..30].to_owned()
}

/// A drive vanishes at once (as an unmounted disk does): renamed away, then deleted. Deleting in
/// place would race with the healer, which may write a shard back while the directory empties.
fn lose_drive(path: &Path) {
    let gone = path.with_extension("lost");
    std::fs::rename(path, &gone).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
}

fn flip_byte(path: &Path, offset: usize) {
    let mut raw = std::fs::read(path).unwrap();
    raw[offset] ^= 0x40;
    std::fs::write(path, raw).unwrap();
}

async fn put(client: &aws_sdk_s3::Client, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn get(client: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn get_range(client: &aws_sdk_s3::Client, key: &str, from: usize, to: usize) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range(format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn node_with_bucket(more: &[&str]) -> Node {
    let node = Node::start(more);
    node.client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    node
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

const SIZES: [usize; 6] = [0, 1, 33_000, 65_536, 65_536 * 3 + 17, 1_000_003];

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_two_lost_drives_and_heal_refills_replaced_ones() {
    let node = node_with_bucket(&[]).await;
    let client = node.client();
    let objects: Vec<(String, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("o{i}"), bytes_of(n, i as u64)))
        .collect();
    for (key, body) in &objects {
        put(&client, key, body).await;
    }
    let files_per_drive: Vec<usize> = node.drives.iter().map(|d| shard_files(d).len()).collect();
    assert!(
        files_per_drive.iter().all(|n| *n > 0),
        "every drive holds shards: {files_per_drive:?}"
    );

    lose_drive(&node.drives[1]);
    lose_drive(&node.drives[4]);
    for (key, body) in &objects {
        assert_eq!(&get(&client, key).await, body, "{key} with two drives gone");
        if body.len() > 200_000 {
            let part = get_range(&client, key, 70_000, 140_000).await;
            assert_eq!(part, &body[70_000..=140_000]);
        }
    }
    // Four drives are the write quorum of ec:4+2: writes go on.
    let late = bytes_of(300_000, 99);
    put(&client, "late", &late).await;
    assert_eq!(get(&client, "late").await, late);

    // Replacement drives: empty directories where the lost ones were.
    std::fs::create_dir(&node.drives[1]).unwrap();
    std::fs::create_dir(&node.drives[4]).unwrap();
    let (out, report) = node.admin(&["heal"]);
    assert!(
        out.status.success(),
        "heal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = report["shards_missing"].as_u64().unwrap();
    assert!(missing > 0);
    assert_eq!(report["shards_rebuilt"].as_u64().unwrap(), missing);
    assert_eq!(report["drives_adopted"], serde_json::json!([1, 4]));
    assert!(report["unrecoverable"].as_array().unwrap().is_empty());
    assert!(shard_files(&node.drives[1]).len() >= files_per_drive[1]);

    let (_, again) = node.admin(&["heal"]);
    assert_eq!(
        again["shards_missing"].as_u64(),
        Some(0),
        "heal left shards missing"
    );

    // The rebuilt shards carry the data: lose two other drives and read everything.
    lose_drive(&node.drives[0]);
    lose_drive(&node.drives[2]);
    for (key, body) in objects.iter().chain([&("late".to_owned(), late)]) {
        assert_eq!(&get(&client, key).await, body, "{key} from healed shards");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heal_rebuilds_a_lost_drive_s_shards_on_spare_drives() {
    let node = Node::start_with_drives(8, &[]);
    let client = node.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("o{i}"), bytes_of(n, 50 + i as u64)))
        .collect();
    for (key, body) in &objects {
        put(&client, key, body).await;
    }
    // A drive dies for good: nothing replaces it.
    lose_drive(&node.drives[2]);
    let (out, report) = node.admin(&["heal"]);
    assert!(
        out.status.success(),
        "heal: {}\n{report:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = report["shards_missing"].as_u64().unwrap();
    assert!(missing > 0);
    assert_eq!(report["shards_moved"].as_u64(), Some(missing));
    assert_eq!(report["shards_rebuilt"].as_u64(), Some(missing));
    let (_, again) = node.admin(&["heal"]);
    assert_eq!(again["shards_missing"].as_u64(), Some(0), "{again:#}");

    // Full redundancy again on the seven drives left: any two more may go.
    lose_drive(&node.drives[0]);
    lose_drive(&node.drives[5]);
    for (key, body) in &objects {
        assert_eq!(&get(&client, key).await, body, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn new_metadata_for_existing_drives_is_refused_and_missing_drives_are_not_created() {
    let mut node = node_with_bucket(&[]).await;
    let body = bytes_of(300_000, 4);
    put(&node.client(), "keep", &body).await;
    node.stop();
    let shards_before = all_shard_files(&node);

    // The metadata disk did not mount: an empty directory where it was. Starting would make
    // the start-up clean-up delete every shard; the node must refuse.
    let meta = node.dir.path().join("meta");
    let away = node.dir.path().join("meta.away");
    std::fs::rename(&meta, &away).unwrap();
    let mut args = vec!["server".to_owned(), "--address".to_owned()];
    args.push(format!("127.0.0.1:{}", node.port));
    args.extend(["--data".to_owned(), node.drives[0].display().to_string()]);
    args.extend(node.extra.iter().cloned());
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(&args)
        .env("BASALT_ROOT_USER", ACCESS_KEY)
        .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node started on new metadata"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert_eq!(all_shard_files(&node), shards_before, "shards were touched");

    // With its metadata back and one drive unmounted (its path gone), the node starts, does
    // not create the path, and serves the object from the other drives.
    std::fs::remove_dir_all(&meta).unwrap();
    std::fs::rename(&away, &meta).unwrap();
    lose_drive(&node.drives[2]);
    node.restart();
    assert_eq!(get(&node.client(), "keep").await, body);
    assert!(!node.drives[2].exists(), "a missing drive path was created");
    let (_, status) = node.admin(&["status"]);
    let online: Vec<bool> = status["drives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["online"].as_bool().unwrap())
        .collect();
    assert_eq!(online, [true, true, false, true, true, true], "{status:#}");
    assert!(status["drives"][0]["available_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_without_a_quorum_of_drives_are_refused_and_leave_nothing() {
    let node = node_with_bucket(&[]).await;
    let client = node.client();
    for d in &node.drives[..3] {
        lose_drive(d);
    }
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("refused")
        .body(ByteStream::from(bytes_of(200_000, 1)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "SlowDown");
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(503));
    wait_until("the refused write's shards to be gone", || {
        all_shard_files(&node).is_empty()
    });
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("refused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_drives_lost_in_the_middle_of_a_streaming_put() {
    let node = node_with_bucket(&[]).await;
    let body = bytes_of(3 << 20, 7);
    let request = RawRequest::new("PUT", "/ecb/streamed", &body);
    let head = request.head(node.port, true);
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&body[..1 << 20]).unwrap();
    socket.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lose_drive(&node.drives[2]);
    lose_drive(&node.drives[5]);
    socket.write_all(&body[1 << 20..]).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    assert_eq!(common::status_of(&response), 200, "{response}");
    assert_eq!(get(&node.client(), "streamed").await, body);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_drives_lost_in_the_middle_of_a_streaming_get() {
    let node = node_with_bucket(&[]).await;
    let client = node.client();
    let body = bytes_of(4 << 20, 8);
    put(&client, "long", &body).await;
    let mut stream = client
        .get_object()
        .bucket(BUCKET)
        .key("long")
        .send()
        .await
        .unwrap()
        .body;
    let mut received = Vec::new();
    while received.len() < 512 << 10 {
        received.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    lose_drive(&node.drives[0]);
    lose_drive(&node.drives[3]);
    while let Some(piece) = stream.next().await {
        received.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(received.len(), body.len());
    assert!(received == body, "bytes differ after the drives went away");
}

#[tokio::test(flavor = "multi_thread")]
async fn bitrot_is_read_around_and_healed_in_the_background() {
    let node = node_with_bucket(&[]).await;
    let client = node.client();
    let body = bytes_of(500_000, 3);
    put(&client, "rot", &body).await;
    // One shard of every stripe rots; a GET reads (and notices) those that are data shards.
    let victims: Vec<PathBuf> = shard_files(&node.drives[0]).into_iter().collect();
    let originals: Vec<Vec<u8>> = victims.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for v in &victims {
        flip_byte(v, 32 + 5);
    }
    // And a second drive's shards are cut short: two bad shards per stripe, still readable.
    for f in shard_files(&node.drives[1]) {
        let len = std::fs::metadata(&f).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    assert_eq!(get(&client, "rot").await, body);
    wait_until("the healer to rewrite a rotten shard", || {
        victims
            .iter()
            .zip(&originals)
            .any(|(f, o)| std::fs::read(f).is_ok_and(|now| &now == o))
    });
    // The healer counts a shard once it is written back: the count may follow the file.
    wait_until("the healer to count its rebuilt shard", || {
        let (_, status) = node.admin(&["status"]);
        status["healer"]["shards_rebuilt"].as_u64().unwrap_or(0) >= 1
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrubber_finds_silent_corruption_before_anyone_reads_it() {
    let node = node_with_bucket(&["--scrub-interval", "1s"]).await;
    let body = bytes_of(400_000, 5);
    put(&node.client(), "quiet", &body).await;
    let files: Vec<PathBuf> = shard_files(&node.drives[3]).into_iter().collect();
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    flip_byte(&files[0], 40);
    std::fs::remove_file(&files[files.len() - 1]).unwrap();
    wait_until("the scrubber to repair both shards", || {
        files
            .iter()
            .zip(&originals)
            .all(|(f, o)| std::fs::read(f).is_ok_and(|now| &now == o))
    });
    let (_, status) = node.admin(&["status"]);
    assert_eq!(status["last"]["kind"], "scrub");
}

#[tokio::test(flavor = "multi_thread")]
async fn fsck_finds_and_repairs_each_kind_of_damage() {
    let mut node = node_with_bucket(&[]).await;
    let client = node.client();
    let mut files_of: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    let mut bodies = BTreeMap::new();
    for (i, key) in ["whole", "damaged", "lost"].into_iter().enumerate() {
        let before = all_shard_files(&node);
        // "lost" is one chunk: losing its stripe fails the GET before any byte is sent.
        let len = if key == "lost" { 60_000 } else { 300_000 };
        let body = bytes_of(len, 10 + i as u64);
        put(&client, key, &body).await;
        bodies.insert(key, body);
        files_of.insert(
            key,
            all_shard_files(&node)
                .difference(&before)
                .cloned()
                .collect(),
        );
    }
    node.stop();

    let damaged = &files_of["damaged"];
    std::fs::remove_file(&damaged[0]).unwrap();
    flip_byte(&damaged[7], 32 + 100);
    let lost_stripe = stripe_of(&files_of["lost"][0]);
    let lost: Vec<&PathBuf> = files_of["lost"]
        .iter()
        .filter(|f| stripe_of(f) == lost_stripe)
        .take(3)
        .collect();
    for f in &lost {
        std::fs::remove_file(f).unwrap();
    }
    let source = &files_of["whole"][0];
    let mut orphan_name = source.file_name().unwrap().to_string_lossy().into_owned();
    orphan_name.replace_range(
        20..22,
        if &orphan_name[20..22] == "00" {
            "01"
        } else {
            "00"
        },
    );
    std::fs::copy(source, source.with_file_name(orphan_name)).unwrap();
    std::fs::write(source.with_file_name("0123.tmp"), b"cut off").unwrap();

    let (clean, report) = node.fsck(false);
    assert!(!clean);
    assert_eq!(report["sweep"]["shards_missing"], 1 + 3);
    assert_eq!(report["sweep"]["shards_corrupt"], 1);
    assert_eq!(report["orphans"], 1);
    assert_eq!(report["temporary_files"], 1);
    let unrecoverable = report["sweep"]["unrecoverable"].as_array().unwrap();
    assert_eq!(unrecoverable.len(), 1, "{unrecoverable:?}");
    assert!(
        unrecoverable[0]
            .as_str()
            .unwrap()
            .contains("object ecb/lost")
    );

    let (clean, report) = node.fsck(true);
    assert!(!clean, "the lost object cannot be repaired");
    assert_eq!(report["sweep"]["shards_rebuilt"], 2);
    assert_eq!(report["orphans_removed"], 1);

    let (_, report) = node.fsck(false);
    assert_eq!(
        report["sweep"]["shards_missing"], 3,
        "only the lost stripe remains damaged"
    );
    assert_eq!(report["sweep"]["shards_corrupt"], 0);
    assert_eq!(report["orphans"], 0);
    assert_eq!(report["temporary_files"], 0);

    node.restart();
    let client = node.client();
    assert_eq!(get(&client, "whole").await, bodies["whole"]);
    assert_eq!(get(&client, "damaged").await, bodies["damaged"]);
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("lost")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InternalError");
}
