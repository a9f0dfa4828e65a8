//! Throughput of the digests a PUT computes, one core: MD5 (the ETag, always) and the
//! flexible checksums. `cargo bench -p basalt-object --bench digests`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use md5::Digest as _;
use sha2::Digest as _;

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
