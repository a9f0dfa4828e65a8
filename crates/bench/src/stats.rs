//! Latency samples and the figures reported from them.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    pub bytes: u64,
    pub errors: u64,
}

impl Samples {
    pub fn record(&mut self, latency: Duration, bytes: u64) {
        self.latencies_us
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
        self.bytes += bytes;
    }

    pub fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.bytes += other.bytes;
        self.errors += other.errors;
    }
}

/// The figures of one operation kind over a run.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub op: String,
    pub ops: u64,
    pub errors: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

impl OpReport {
    pub fn from_samples(op: &str, mut samples: Samples, elapsed: Duration) -> Self {
        samples.latencies_us.sort_unstable();
        let s = &samples.latencies_us;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Self {
            op: op.to_owned(),
            ops: s.len() as u64,
            errors: samples.errors,
            bytes: samples.bytes,
            seconds,
            ops_per_sec: s.len() as f64 / seconds,
            mb_per_sec: samples.bytes as f64 / seconds / 1e6,
            p50_ms: percentile(s, 50.0),
            p90_ms: percentile(s, 90.0),
            p99_ms: percentile(s, 99.0),
            max_ms: s.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{:<10} {:>9} ops {:>10.1} ops/s {:>10.1} MB/s  p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  errors {}",
            self.op,
            self.ops,
            self.ops_per_sec,
            self.mb_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = Samples::default();
        for ms in 1..=100u64 {
            s.record(Duration::from_millis(ms), 10);
        }
        let r = OpReport::from_samples("get", s, Duration::from_secs(2));
        assert_eq!(r.ops, 100);
        assert_eq!(r.p50_ms, 50.0);
        assert_eq!(r.p90_ms, 90.0);
        assert_eq!(r.p99_ms, 99.0);
        assert_eq!(r.max_ms, 100.0);
        assert_eq!(r.ops_per_sec, 50.0);
        assert_eq!(r.bytes, 1000);
    }
}
