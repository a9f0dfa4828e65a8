//! `basalt bench`: a load generator for any S3 endpoint, in the spirit of MinIO's warp.
//!
//! It signs requests itself (SigV4 with `UNSIGNED-PAYLOAD`, microseconds per request), reuses
//! connections, sends bodies sliced from one pre-generated buffer and drains responses without
//! keeping them, so the generator is not the bottleneck of the machine it runs on.

mod client;
mod sigv4;
mod size;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use serde::Serialize;

pub use client::{BenchError, S3Client};
pub use size::{SizeSpec, parse_size};
pub use stats::{OpReport, Samples};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Put,
    Get,
    Mixed,
    List,
    Multipart,
    RangeGet,
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "put" => Op::Put,
            "get" => Op::Get,
            "mixed" => Op::Mixed,
            "list" => Op::List,
            "multipart" => Op::Multipart,
            "range-get" | "ranged-get" => Op::RangeGet,
            other => {
                return Err(format!(
                    "unknown operation {other:?}: put, get, mixed, list, multipart, range-get"
                ));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub op: Op,
    pub size: SizeSpec,
    pub concurrency: usize,
    /// Run for this long, or until `count` operations are done, whichever is set (count wins).
    pub duration: Duration,
    pub count: Option<u64>,
    /// For `mixed`: the share of GETs (the rest are PUTs).
    pub get_ratio: f64,
    /// Objects written before a get, mixed, list or range-get run.
    pub objects: usize,
    pub part_size: u64,
    pub range_size: u64,
    /// Live progress on stderr.
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub endpoint: String,
    pub op: Op,
    pub concurrency: usize,
    pub size_min: u64,
    pub size_max: u64,
    pub seconds: f64,
    pub results: Vec<OpReport>,
}

impl BenchReport {
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {} — concurrency {}, size {}, {:.1} s\n",
            serde_json::to_value(self.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            self.endpoint,
            self.concurrency,
            size::describe(self.size_min, self.size_max),
            self.seconds
        );
        for r in &self.results {
            out.push_str(&r.line());
            out.push('\n');
        }
        out
    }
}

/// What one worker measured, per operation kind.
#[derive(Default)]
struct WorkerSamples {
    by_op: Vec<(&'static str, Samples)>,
}

impl WorkerSamples {
    fn get(&mut self, op: &'static str) -> &mut Samples {
        if let Some(i) = self.by_op.iter().position(|(o, _)| *o == op) {
            return &mut self.by_op[i].1;
        }
        self.by_op.push((op, Samples::default()));
        let last = self.by_op.len() - 1;
        &mut self.by_op[last].1
    }
}

struct Shared {
    config: BenchConfig,
    client: S3Client,
    data: Bytes,
    prepared: Vec<(String, u64)>,
    started_ops: AtomicU64,
    done_ops: AtomicU64,
    deadline: Instant,
}

impl Shared {
    /// Claims the next operation; false when the run is over.
    fn next(&self) -> bool {
        match self.config.count {
            Some(count) => self.started_ops.fetch_add(1, Ordering::Relaxed) < count,
            None => Instant::now() < self.deadline,
        }
    }
}

pub async fn run(config: BenchConfig) -> Result<BenchReport, BenchError> {
    let client = S3Client::new(
        &config.endpoint,
        &config.access_key,
        &config.secret_key,
        &config.region,
    )?;
    client.ensure_bucket(&config.bucket).await?;
    let max = config.size.max.max(config.range_size).max(1);
    let data = Bytes::from((0..max).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());

    let prepared = match config.op {
        Op::Get | Op::Mixed | Op::RangeGet if config.objects == 0 => {
            return Err(BenchError::Other(
                "get, mixed and range-get runs need --objects of at least 1".into(),
            ));
        }
        // `--objects 0` lists what is already under the prefix.
        Op::List if config.objects == 0 => Vec::new(),
        Op::Get | Op::Mixed | Op::List | Op::RangeGet => prepare(&client, &config, &data).await?,
        Op::Put | Op::Multipart => Vec::new(),
    };

    let shared = Arc::new(Shared {
        deadline: Instant::now() + config.duration,
        client,
        data,
        prepared,
        started_ops: AtomicU64::new(0),
        done_ops: AtomicU64::new(0),
        config,
    });
    let started = Instant::now();
    let progress = shared.config.progress.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = shared.done_ops.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprint!(
                    "\r{secs:6.1} s  {done:>9} ops  {:>10.1} ops/s",
                    done as f64 / secs
                );
            }
        })
    });
    let workers: Vec<_> = (0..shared.config.concurrency)
        .map(|id| {
            let shared = shared.clone();
            tokio::spawn(async move { worker(id, &shared).await })
        })
        .collect();
    let mut merged: Vec<(&'static str, Samples)> = Vec::new();
    for w in workers {
        let samples = w
            .await
            .map_err(|e| BenchError::Other(format!("worker failed: {e}")))?;
        for (op, s) in samples.by_op {
            match merged.iter_mut().find(|(o, _)| *o == op) {
                Some((_, m)) => m.merge(s),
                None => merged.push((op, s)),
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let config = &shared.config;
    Ok(BenchReport {
        endpoint: config.endpoint.clone(),
        op: config.op,
        concurrency: config.concurrency,
        size_min: config.size.min,
        size_max: config.size.max,
        seconds: elapsed.as_secs_f64(),
        results: merged
            .into_iter()
            .map(|(op, s)| OpReport::from_samples(op, s, elapsed))
            .collect(),
    })
}

async fn prepare(
    client: &S3Client,
    config: &BenchConfig,
    data: &Bytes,
) -> Result<Vec<(String, u64)>, BenchError> {
    use futures::StreamExt;
    let mut rng = rand::rng();
    let objects: Vec<(String, u64)> = (0..config.objects)
        .map(|i| {
            (
                format!("{}prep-{i:08}", config.prefix),
                config.size.sample(&mut rng),
            )
        })
        .collect();
    let results: Vec<Result<(), BenchError>> = futures::stream::iter(objects.clone())
        .map(|(key, size)| {
            let body = data.slice(..size as usize);
            async move { client.put(&config.bucket, &key, body).await.map(|_| ()) }
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(objects)
}

async fn worker(id: usize, shared: &Shared) -> WorkerSamples {
    let config = &shared.config;
    let mut samples = WorkerSamples::default();
    let mut seq = 0u64;
    let mut list_token: Option<String> = None;
    while shared.next() {
        let (op, size) = {
            let mut rng = rand::rng();
            let op = match config.op {
                Op::Mixed if rng.random::<f64>() < config.get_ratio => Op::Get,
                Op::Mixed => Op::Put,
                other => other,
            };
            (op, config.size.sample(&mut rng))
        };
        let started = Instant::now();
        let result = match op {
            Op::Put | Op::Mixed => {
                let key = format!("{}obj-{id:04}-{seq:010}", config.prefix);
                seq += 1;
                shared
                    .client
                    .put(&config.bucket, &key, shared.data.slice(..size as usize))
                    .await
                    .map(|_| ("put", size))
            }
            Op::Get => {
                let (key, _) = &shared.prepared[rand::rng().random_range(0..shared.prepared.len())];
                shared
                    .client
                    .get(&config.bucket, key, None)
                    .await
                    .map(|n| ("get", n))
            }
            Op::RangeGet => {
                let (key, len) =
                    &shared.prepared[rand::rng().random_range(0..shared.prepared.len())];
                let want = config.range_size.min(*len).max(1);
                let start = rand::rng().random_range(0..=len.saturating_sub(want));
                shared
                    .client
                    .get(&config.bucket, key, Some((start, start + want - 1)))
                    .await
                    .map(|n| ("range-get", n))
            }
            Op::List => {
                let prefix = if shared.prepared.is_empty() {
                    config.prefix.clone()
                } else {
                    format!("{}prep-", config.prefix)
                };
                match shared
                    .client
                    .list_page(&config.bucket, &prefix, list_token.as_deref())
                    .await
                {
                    Ok((count, next)) => {
                        list_token = next;
                        Ok(("list", count))
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Multipart => {
                let key = format!("{}mp-{id:04}-{seq:010}", config.prefix);
                seq += 1;
                shared
                    .client
                    .multipart_put(
                        &config.bucket,
                        &key,
                        &shared.data.slice(..size as usize),
                        config.part_size,
                    )
                    .await
                    .map(|_| ("multipart", size))
            }
        };
        match result {
            Ok((name, bytes)) => {
                // A listing's figure is objects listed, not bytes.
                let bytes = if name == "list" { 0 } else { bytes };
                samples.get(name).record(started.elapsed(), bytes);
            }
            Err(e) => {
                let name = match op {
                    Op::Put | Op::Mixed => "put",
                    Op::Get => "get",
                    Op::RangeGet => "range-get",
                    Op::List => "list",
                    Op::Multipart => "multipart",
                };
                samples.get(name).errors += 1;
                if samples.get(name).errors <= 3 {
                    eprintln!("\n{name} failed: {e}");
                }
            }
        }
        shared.done_ops.fetch_add(1, Ordering::Relaxed);
    }
    samples
}
