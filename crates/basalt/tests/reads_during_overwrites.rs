//! A GET that has started is served in full, from the version it started on, however many
//! times the object is overwritten or deleted meanwhile: freed chunks go to the metadata's
//! garbage table and their files are deleted only once no read can need them. Then they do
//! go, and a crash (or a stop) between the commit and the collection leaks nothing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, wait_for};

const BUCKET: &str = "overwritten";
const KEY: &str = "big";
const SIZE: usize = 24 << 20;
/// Every block of a version starts with the version's seed, so any range names its version.
const BLOCK: usize = 64 << 10;

/// The bytes of version `seed`.
fn version(seed: u64) -> Vec<u8> {
    let mut body = common::bytes_of(SIZE, seed);
    for block in body.chunks_mut(BLOCK) {
        block[..8].copy_from_slice(&seed.to_le_bytes());
    }
    body
}

/// Checks that `got` is `range` of some version; returns the seed.
fn check_range(
    got: &[u8],
    start: usize,
    cache: &mut std::collections::HashMap<u64, Vec<u8>>,
) -> u64 {
    let first_block = start.div_ceil(BLOCK) * BLOCK;
    let at = first_block - start;
    assert!(at + 8 <= got.len(), "the range covers a block start");
    let seed = u64::from_le_bytes(got[at..at + 8].try_into().expect("8 bytes"));
    let expected = cache.entry(seed).or_insert_with(|| version(seed));
    assert_eq!(got.len(), got.len().min(SIZE - start));
    assert!(
        got == &expected[start..start + got.len()],
        "bytes of version {seed} at {start}"
    );
    seed
}

/// Shard files of the drives under `dirs`.
fn chunk_files(dirs: &[PathBuf]) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { count(&p) } else { 1 }
                })
                .sum()
        })
    }
    dirs.iter().map(|d| count(&d.join("chunks"))).sum()
}

/// Overwrites the object `overwrites` times (and deletes it once in the middle) while full
/// and ranged readers GET it; every GET that starts must deliver its version whole.
async fn readers_survive_overwrites(server: &Server, overwrites: u64) {
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    client
        .put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(version(0).into())
        .send()
        .await
        .expect("first version");
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let slow_reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    // Two readers are quick; two read slowly (a GET of several seconds, past the grace), as a
    // slow client does: their stripes must outlive the grace while they read.
    for (n, ranged, slow) in [
        (0u64, false, false),
        (1, true, false),
        (2, false, true),
        (3, true, true),
    ] {
        let (client, done, reads, slow_reads) = (
            server.client(),
            done.clone(),
            reads.clone(),
            slow_reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut cache = std::collections::HashMap::new();
            let mut i = n;
            while !done.load(Ordering::Acquire) {
                i += 1;
                let start = if ranged {
                    (i as usize * 3_333_331) % (SIZE - (5 << 20))
                } else {
                    0
                };
                let mut get = client.get_object().bucket(BUCKET).key(KEY);
                if ranged {
                    get = get.range(format!("bytes={start}-{}", start + (4 << 20) + 77));
                }
                let resp = match get.send().await {
                    Ok(r) => r,
                    // Between the delete and the next PUT there is no object: that GET has
                    // not started, so a 404 is the right answer.
                    Err(e) if common::error_code(&e) == "NoSuchKey" => continue,
                    Err(e) => panic!("GET failed: {e:?}"),
                };
                let mut body = resp.body;
                let mut got = Vec::new();
                let mut paced = 0;
                while let Some(piece) = body.next().await {
                    let piece =
                        piece.unwrap_or_else(|e| panic!("a started GET was cut short: {e:?}"));
                    got.extend_from_slice(&piece);
                    if slow && got.len() >= paced + (1 << 20) {
                        paced = got.len();
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
                if !ranged {
                    assert_eq!(got.len(), SIZE, "a full GET delivers the whole object");
                }
                check_range(&got, start, &mut cache);
                reads.fetch_add(1, Ordering::Relaxed);
                if slow && !ranged {
                    slow_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // At least `overwrites`, and on until the slow full reader has finished two GETs (of
    // several seconds each), both spanning overwrites.
    let started = Instant::now();
    let mut seed = 0;
    while seed < overwrites
        || (slow_reads.load(Ordering::Relaxed) < 2 && started.elapsed() < Duration::from_secs(90))
    {
        seed += 1;
        if seed == overwrites / 2 {
            client
                .delete_object()
                .bucket(BUCKET)
                .key(KEY)
                .send()
                .await
                .expect("delete");
        }
        client
            .put_object()
            .bucket(BUCKET)
            .key(KEY)
            .body(version(seed).into())
            .send()
            .await
            .expect("overwrite");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.await.expect("a reader failed");
    }
    let reads = reads.load(Ordering::Relaxed);
    let slow = slow_reads.load(Ordering::Relaxed);
    eprintln!(
        "{seed} overwrites, {reads} complete GETs ({slow} slow whole ones), 0 errors, 0 wrong bytes"
    );
    assert!(slow >= 2, "the slow full reader read through overwrites");
    assert!(reads >= 4, "the readers read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_on_one_drive_are_whole_while_the_object_is_overwritten() {
    // Small chunks: the server reads a few chunks ahead of a slow client and the sockets
    // buffer some more, so large ones would all be read before the client slows down.
    let server = Server::start_with(&["--garbage-grace", "1s", "--chunk-size", "65536"]);
    readers_survive_overwrites(&server, 16).await;
    // Once the readers are gone and the grace has passed, only the current version's chunks
    // remain.
    let drives = [server.data.clone()];
    wait_for("freed chunks collected", Duration::from_secs(30), || {
        chunk_files(&drives) == SIZE / (64 << 10)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_on_erasure_coded_drives_are_whole_while_the_object_is_overwritten() {
    let more = tempfile::tempdir().expect("tempdir");
    let mut flags: Vec<String> = Vec::new();
    let mut drives = Vec::new();
    for i in 2..=6 {
        let d = more.path().join(format!("d{i}"));
        flags.extend(["--data".to_owned(), d.display().to_string()]);
        drives.push(d);
    }
    flags.extend(
        [
            "--redundancy",
            "ec:4+2",
            "--chunk-size",
            "65536",
            "--garbage-grace",
            "1s",
        ]
        .map(str::to_owned),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(&flags);
    drives.push(server.data.clone());
    readers_survive_overwrites(&server, 10).await;
    // 384 chunks of 64 KiB, six shards each.
    wait_for("freed shards collected", Duration::from_secs(30), || {
        chunk_files(&drives) == SIZE / (64 << 10) * 6
    });
}

/// With a grace far longer than the test, freed chunks are still in the garbage table when
/// the node stops; the next start collects them.
async fn freed_chunks_survive_a_stop_only_as_table_entries(kill: bool) {
    let mut server = Server::start_with(&["--garbage-grace", "1h"]);
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    for seed in 0..3 {
        client
            .put_object()
            .bucket(BUCKET)
            .key(KEY)
            .body(version(seed).into())
            .send()
            .await
            .expect("put");
    }
    let drives = [server.data.clone()];
    let live = SIZE / (4 << 20);
    assert_eq!(
        chunk_files(&drives),
        3 * live,
        "freed chunks wait out the grace"
    );
    let (data, port) = (server.data.clone(), server.port);
    if kill {
        server.kill();
    } else {
        assert!(server.terminate().success());
    }
    let server = Server::start_on_with(&data, port, &["--garbage-grace", "1h"]);
    assert_eq!(chunk_files(&drives), live, "the start collected the table");
    let got = server
        .client()
        .get_object()
        .bucket(BUCKET)
        .key(KEY)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert!(got[..] == version(2)[..], "the current version is whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_commit_and_the_collection_leaks_nothing() {
    freed_chunks_survive_a_stop_only_as_table_entries(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_between_the_commit_and_the_collection_leaks_nothing() {
    freed_chunks_survive_a_stop_only_as_table_entries(false).await;
}
