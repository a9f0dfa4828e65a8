//! One-core throughput of the work a PUT or GET does per byte: the digests (MD5 for the ETag,
//! the flexible checksums, CRC32C of every shard), a memory copy, and the stripe codec at the
//! chunk size in use beside the same work done by calling `reed-solomon-simd` directly.
//!
//! `cargo bench -p basalt-object --bench hot_paths` (env `CODEC_CHUNK` sets the chunk size).

use std::hint::black_box;
use std::time::{Duration, Instant};

use basalt_data::Redundancy;
use bytes::Bytes;
use md5::Digest as _;
use sha2::Digest as _;

/// Runs `f` repeatedly for about a second; returns MB/s of `bytes` per call (median of 5).
fn throughput(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < Duration::from_millis(250) {
            f();
            calls += 1;
        }
        rates.push(bytes as f64 * f64::from(calls) / start.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    rates[2]
}

fn main() {
    digests();
    codec();
}

fn digests() {
    let data: Vec<u8> = (0..4usize << 20).map(|i| (i * 13 % 251) as u8).collect();
    println!("4 MiB buffer, one core, MB/s (median of 5)");
    let md5 = throughput(data.len(), || {
        black_box(md5::Md5::digest(black_box(&data)));
    });
    let crc32c = throughput(data.len(), || {
        black_box(crc_fast::checksum(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            black_box(&data),
        ));
    });
    let crc64 = throughput(data.len(), || {
        black_box(crc_fast::checksum(
            crc_fast::CrcAlgorithm::Crc64Nvme,
            black_box(&data),
        ));
    });
    let sha256 = throughput(data.len(), || {
        black_box(sha2::Sha256::digest(black_box(&data)));
    });
    let copy = throughput(data.len(), || {
        black_box(black_box(&data).clone());
    });
    println!(
        "md5 {md5:.0}  crc32c {crc32c:.0}  crc64nvme {crc64:.0}  sha256 {sha256:.0}  memcpy {copy:.0}"
    );
}

fn codec() {
    let chunk_len: usize = std::env::var("CODEC_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 << 20);
    let chunk: Bytes = (0..chunk_len)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    println!("chunk {chunk_len} bytes, one core, MB/s of chunk data (median of 5)");
    for (k, m) in [(4u8, 2u8), (8, 4)] {
        let policy = Redundancy::ErasureCoded { data: k, parity: m };
        let shards = policy.encode(&chunk).expect("encode");
        let encode = throughput(chunk_len, || {
            black_box(policy.encode(black_box(&chunk)).expect("encode"));
        });
        let originals: Vec<&[u8]> = shards[..usize::from(k)].iter().map(|s| &s[..]).collect();
        let raw_encode = throughput(chunk_len, || {
            black_box(
                reed_solomon_simd::encode(usize::from(k), usize::from(m), black_box(&originals))
                    .expect("encode"),
            );
        });
        // The worst loss a stripe survives: m data shards gone.
        let decode = throughput(chunk_len, || {
            let mut damaged: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            for lost in damaged.iter_mut().take(usize::from(m)) {
                *lost = None;
            }
            policy
                .reconstruct_data(chunk_len, &mut damaged)
                .expect("decode");
            black_box(damaged);
        });
        let present: Vec<(usize, &[u8])> = (usize::from(m)..usize::from(k))
            .map(|i| (i, &shards[i][..]))
            .collect();
        let recovery: Vec<(usize, &[u8])> = (0..usize::from(m))
            .map(|i| (i, &shards[usize::from(k) + i][..]))
            .collect();
        let raw_decode = throughput(chunk_len, || {
            black_box(
                reed_solomon_simd::decode(
                    usize::from(k),
                    usize::from(m),
                    present.iter().copied(),
                    recovery.iter().copied(),
                )
                .expect("decode"),
            );
        });
        println!(
            "ec:{k}+{m}  encode {encode:8.0}  (raw crate {raw_encode:8.0})   decode, {m} data shards lost {decode:8.0}  (raw crate {raw_decode:8.0})"
        );
    }
}
