//! Kills the server with SIGKILL in the middle of a concurrent PUT / overwrite / multipart /
//! DELETE workload, restarts it, and proves that every acknowledged write reads back
//! byte-exact, that no partial object is visible, that deleted objects stay deleted, and that
//! the chunks of interrupted writes are reclaimed.
//!
//! `BASALT_CRASH_ROUNDS` raises the number of rounds (default 20) for soak runs.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::{Server, bytes_of};
use md5::{Digest, Md5};
use rand::Rng;
use tokio::sync::Mutex;

const BUCKET: &str = "crash-bucket";
const WRITERS: usize = 6;
const KEYS_PER_WRITER: usize = 4;
const CHUNK: u64 = 4 << 20;
const INLINE_MAX: u64 = 32 << 10;
const PART: u64 = 5 << 20;

/// One state a key may be in: absent, or an object of known bytes and chunk count.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Absent,
    Object {
        md5: [u8; 16],
        len: u64,
        chunks: u64,
    },
}

fn chunks_of(len: u64) -> u64 {
    if len <= INLINE_MAX {
        0
    } else {
        len.div_ceil(CHUNK)
    }
}

fn object(parts: &[Vec<u8>], multipart: bool) -> State {
    let mut h = Md5::new();
    let mut len = 0;
    let mut chunks = 0;
    for p in parts {
        h.update(p);
        len += p.len() as u64;
        chunks += if multipart {
            (p.len() as u64).div_ceil(CHUNK).max(1)
        } else {
            0
        };
    }
    if !multipart {
        chunks = chunks_of(len);
    }
    State::Object {
        md5: h.finalize().into(),
        len,
        chunks,
    }
}

/// Per key, the states it may be in: one after an acknowledged operation, two while an
/// operation was in flight when the server died.
type Model = Arc<Mutex<HashMap<String, Vec<State>>>>;

async fn run_op(client: &aws_sdk_s3::Client, key: &str, rng_seed: u64, model: &Model) -> bool {
    let choice = rng_seed % 10;
    let seed = rng_seed;
    let (new_state, result) = match choice {
        0..=1 => (
            State::Absent,
            client
                .delete_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
        2..=3 => {
            let parts = vec![bytes_of(PART as usize, seed), bytes_of(1234, seed + 1)];
            let state = object(&parts, true);
            begin(model, key, &state).await;
            (state, multipart(client, key, parts).await)
        }
        _ => {
            let len = match choice {
                4..=6 => 1000 + (seed % 3000) as usize,
                7..=8 => 100_000 + (seed % 50_000) as usize,
                _ => (CHUNK + 777) as usize,
            };
            let body = bytes_of(len, seed);
            let state = object(std::slice::from_ref(&body), false);
            begin(model, key, &state).await;
            let r = client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await;
            (state, r.map(|_| ()).map_err(|e| e.to_string()))
        }
    };
    if new_state == State::Absent {
        begin(model, key, &State::Absent).await;
    }
    match result {
        Ok(()) => {
            model.lock().await.insert(key.to_owned(), vec![new_state]);
            true
        }
        // The server died mid-request: the key may be in either state.
        Err(_) => false,
    }
}

async fn begin(model: &Model, key: &str, next: &State) {
    let mut m = model.lock().await;
    let states = m
        .entry(key.to_owned())
        .or_insert_with(|| vec![State::Absent]);
    if !states.contains(next) {
        states.push(next.clone());
    }
}

async fn multipart(
    client: &aws_sdk_s3::Client,
    key: &str,
    parts: Vec<Vec<u8>>,
) -> Result<(), String> {
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let id = upload.upload_id().unwrap_or_default().to_owned();
    let mut done = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let n = i as i32 + 1;
        let r = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap_or_default())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks every key against its possible states and collapses the model to what is there.
async fn verify(client: &aws_sdk_s3::Client, model: &Model) -> u64 {
    let mut m = model.lock().await;
    let mut expected_chunks = 0;
    let mut present = Vec::new();
    for (key, states) in m.iter_mut() {
        let observed = match client.get_object().bucket(BUCKET).key(key).send().await {
            Ok(out) => {
                let body = out
                    .body
                    .collect()
                    .await
                    .expect("body of an acknowledged object")
                    .into_bytes();
                let md5: [u8; 16] = Md5::digest(&body).into();
                let found = states
                    .iter()
                    .find(|s| matches!(s, State::Object { md5: m, len, .. } if *m == md5 && *len == body.len() as u64));
                match found {
                    Some(s) => s.clone(),
                    None => panic!(
                        "{key}: {} bytes that match no write (partial or corrupt object); allowed {states:?}",
                        body.len()
                    ),
                }
            }
            Err(e) => {
                assert_eq!(
                    common::error_code(&e),
                    "NoSuchKey",
                    "{key}: unexpected error"
                );
                assert!(
                    states.contains(&State::Absent),
                    "{key}: acknowledged object lost; allowed {states:?}"
                );
                State::Absent
            }
        };
        if let State::Object { chunks, .. } = observed {
            expected_chunks += chunks;
            present.push(key.clone());
        }
        *states = vec![observed];
    }
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(BUCKET)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        listed.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    // Parts of uploads cut off by the crash stay referenced until the upload is aborted.
    let uploads = client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    for u in uploads.uploads() {
        let parts = client
            .list_parts()
            .bucket(BUCKET)
            .key(u.key().unwrap_or_default())
            .upload_id(u.upload_id().unwrap_or_default())
            .send()
            .await
            .expect("list parts");
        for p in parts.parts() {
            expected_chunks += (p.size().unwrap_or(0) as u64).div_ceil(CHUNK).max(1);
        }
    }
    present.sort();
    assert_eq!(
        listed, present,
        "the listing disagrees with the objects that exist"
    );
    expected_chunks
}

/// Shard files and leftover temporary files across the drives.
fn chunk_files(drives: &[std::path::PathBuf]) -> (u64, u64) {
    let (mut files, mut tmp) = (0, 0);
    for drive in drives {
        for dir in std::fs::read_dir(drive.join("chunks")).expect("chunks dir") {
            for f in std::fs::read_dir(dir.expect("entry").path()).expect("fan-out dir") {
                let name = f.expect("entry").file_name();
                if name.to_string_lossy().ends_with(".tmp") {
                    tmp += 1;
                } else {
                    files += 1;
                }
            }
        }
    }
    (files, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_at_any_point() {
    let rounds: usize = std::env::var("BASALT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    crash_rounds(rounds, 1, None).await;
}

/// The same workload on a six-drive node writing every chunk as an ec:4+2 stripe.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_an_erasure_coded_node() {
    let rounds: usize = std::env::var("BASALT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    crash_rounds(rounds, 6, Some("ec:4+2")).await;
}

async fn crash_rounds(rounds: usize, drive_count: usize, redundancy: Option<&str>) {
    // The test owns the drives: they must outlive every server process.
    let dir = tempfile::tempdir().expect("tempdir");
    let drives: Vec<_> = (1..=drive_count)
        .map(|i| dir.path().join(format!("d{i}")))
        .collect();
    let shards_per_chunk = drive_count as u64;
    let mut extra = Vec::new();
    for d in &drives[1..] {
        extra.push("--data".to_owned());
        extra.push(d.display().to_string());
    }
    if let Some(r) = redundancy {
        extra.push("--redundancy".to_owned());
        extra.push(r.to_owned());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let data = drives[0].clone();
    let port = common::free_port();
    let mut server = Server::start_on_with(&data, port, &extra);
    server
        .client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let model: Model = Arc::new(Mutex::new(HashMap::new()));
    let mut rng = rand::rng();
    let mut acknowledged = 0usize;

    for round in 0..rounds {
        let client = server.client_without_retries();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (client, model, stop) = (client.clone(), model.clone(), stop.clone());
            let base: u64 = rng.random();
            tasks.push(tokio::spawn(async move {
                let mut acked = 0;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}/k{}", (base.wrapping_add(i)) % KEYS_PER_WRITER as u64);
                    let seed = base.wrapping_mul(31).wrapping_add(i * 7919);
                    i += 1;
                    if run_op(&client, &key, seed, &model).await {
                        acked += 1;
                    } else {
                        break;
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            acknowledged += t.await.expect("writer task");
        }

        server = Server::start_on_with(&data, port, &extra);
        let expected_chunks = verify(&server.client(), &model).await;
        let (files, tmp) = chunk_files(&drives);
        assert_eq!(
            tmp, 0,
            "round {round}: temporary chunk files survived the restart"
        );
        assert_eq!(
            files,
            expected_chunks * shards_per_chunk,
            "round {round}: shard files of interrupted or deleted writes were not reclaimed"
        );
    }
    eprintln!("{rounds} crash rounds, {acknowledged} acknowledged operations verified");
    assert!(
        acknowledged > rounds,
        "the workload acknowledged too few writes ({acknowledged}) to prove anything"
    );
    server.terminate();
}
