//! Encode and decode throughput of the stripe codec on one core, for the chunk size in use,
//! beside the same work done by calling `reed-solomon-simd` directly (the raw crate's cost).
//!
//! `cargo bench -p basalt-data --bench codec` (env `CODEC_CHUNK` sets the chunk size in bytes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use basalt_data::Redundancy;
use bytes::Bytes;

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
