//! Summaries of timed samples: nearest-rank percentiles, mean from the wall clock.

use serde::{Deserialize, Serialize};

/// One measurement (one run of one row): the time per operation in nanoseconds.
///
/// `mean_ns` is wall time over operations; the percentiles are over samples, and a sample
/// is the mean of `batch` consecutive operations (batching keeps the ~20 ns cost of reading
/// the clock out of sub-microsecond figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Wall time divided by operations.
    pub mean_ns: f64,
    /// Median sample.
    pub p50_ns: f64,
    /// 90th percentile sample.
    pub p90_ns: f64,
    /// 99th percentile sample.
    pub p99_ns: f64,
    /// 99.9th percentile sample.
    pub p999_ns: f64,
    /// Largest sample.
    pub max_ns: f64,
    /// Operations timed (warm-up excluded).
    pub ops: u64,
    /// Samples taken.
    pub samples: u64,
    /// Operations per sample.
    pub batch: u64,
    /// Bytes moved per operation (throughput rows), else 0.
    pub bytes_per_op: u64,
}

impl Measurement {
    /// Every time figure multiplied by `factor` (RTT/2 rows).
    pub fn scaled(mut self, factor: f64) -> Measurement {
        self.mean_ns *= factor;
        self.p50_ns *= factor;
        self.p90_ns *= factor;
        self.p99_ns *= factor;
        self.p999_ns *= factor;
        self.max_ns *= factor;
        self
    }

    /// Bytes per second at the median sample (0 when the row moves no bytes): the throughput
    /// figure, robust against a writer preempted by a noisy neighbour.
    pub fn bytes_per_sec_p50(&self) -> f64 {
        if self.p50_ns > 0.0 { self.bytes_per_op as f64 * 1e9 / self.p50_ns } else { 0.0 }
    }

    /// Bytes per second from the mean (0 when the row moves no bytes).
    pub fn bytes_per_sec(&self) -> f64 {
        if self.mean_ns > 0.0 { self.bytes_per_op as f64 * 1e9 / self.mean_ns } else { 0.0 }
    }
}

/// Nearest-rank percentile of sorted samples (`q` in 0..=1); 0 for no samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}

/// Summarise samples (ns per op each) taken over `wall_ns` for `ops` operations.
pub fn summarize(
    samples: &mut [f64],
    wall_ns: f64,
    ops: u64,
    batch: u64,
    bytes_per_op: u64,
) -> Measurement {
    samples.sort_by(f64::total_cmp);
    Measurement {
        mean_ns: if ops > 0 { wall_ns / ops as f64 } else { 0.0 },
        p50_ns: percentile(samples, 0.50),
        p90_ns: percentile(samples, 0.90),
        p99_ns: percentile(samples, 0.99),
        p999_ns: percentile(samples, 0.999),
        max_ns: samples.last().copied().unwrap_or(0.0),
        ops,
        samples: samples.len() as u64,
        batch,
        bytes_per_op,
    }
}

/// Median of a list (the mean of the two middle values for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = n / 2;
    if n % 2 == 1 { v.get(mid).copied() } else { Some((v.get(mid - 1)? + v.get(mid)?) / 2.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 500.0);
        assert_eq!(percentile(&s, 0.99), 990.0);
        assert_eq!(percentile(&s, 0.999), 999.0);
        assert_eq!(percentile(&s, 1.0), 1000.0);
        assert_eq!(percentile(&[7.0], 0.999), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn summary_uses_wall_mean() {
        let mut s = vec![30.0, 10.0, 20.0];
        let m = summarize(&mut s, 90.0, 3, 1, 8);
        assert_eq!(m.mean_ns, 30.0);
        assert_eq!(m.p50_ns, 20.0);
        assert_eq!(m.max_ns, 30.0);
        assert!((m.bytes_per_sec() - 8.0 / 30.0 * 1e9).abs() < 1.0);
        assert_eq!(m.scaled(0.5).p50_ns, 10.0);
    }
}
