//! Latency of records through models on streams, for status lines and summaries.
//!
//! Measured per micro-batch, from the arrival of its oldest record at the model's micro-batcher
//! to the moment its predictions exist, and counted once per record of the batch (so a record's
//! latency is never under-reported: the others of its batch arrived later). Kept in
//! logarithmic buckets (5% wide), so percentiles cost nothing to keep and are good to 5%.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

/// Bucket `k` holds latencies in `[MIN * GROWTH^k, MIN * GROWTH^(k+1))`.
const MIN_MICROS: f64 = 1.0;
const GROWTH: f64 = 1.05;
const BUCKETS: usize = 400; // up to about 3e8 µs (5 minutes)

struct Histogram {
    counts: Vec<AtomicU64>,
    batches: AtomicU64,
    records: AtomicU64,
}

static LATENCY: LazyLock<Histogram> =
    LazyLock::new(|| Histogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), batches: AtomicU64::new(0), records: AtomicU64::new(0) });

/// Records that `records` records took `latency` through a model.
pub fn record(latency: Duration, records: usize) {
    let micros = (latency.as_secs_f64() * 1e6).max(MIN_MICROS);
    let bucket = ((micros / MIN_MICROS).ln() / GROWTH.ln()) as usize;
    LATENCY.counts[bucket.min(BUCKETS - 1)].fetch_add(records as u64, Ordering::Relaxed);
    LATENCY.batches.fetch_add(1, Ordering::Relaxed);
    LATENCY.records.fetch_add(records as u64, Ordering::Relaxed);
}

/// Streaming inference so far in this process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    /// Micro-batches through models.
    pub batches: u64,
    /// Records through models.
    pub records: u64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
}

/// The latencies recorded so far; `None` before any micro-batch went through a model.
///
/// ```
/// use std::time::Duration;
/// dlflow_table::stream::stats::record(Duration::from_millis(2), 10);
/// let summary = dlflow_table::stream::stats::summary().expect("recorded");
/// assert!(summary.p50 >= Duration::from_micros(1900) && summary.p50 <= Duration::from_micros(2100));
/// ```
pub fn summary() -> Option<LatencySummary> {
    let counts: Vec<u64> = LATENCY.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let quantile = |q: f64| {
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                // The middle of the bucket.
                let micros = MIN_MICROS * GROWTH.powf(bucket as f64 + 0.5);
                return Duration::from_secs_f64(micros / 1e6);
            }
        }
        Duration::ZERO
    };
    Some(LatencySummary {
        batches: LATENCY.batches.load(Ordering::Relaxed),
        records: LATENCY.records.load(Ordering::Relaxed),
        p50: quantile(0.5),
        p99: quantile(0.99),
        p999: quantile(0.999),
    })
}
