//! What the benchmarks share: settings from the environment, the Arrow file a Python
//! baseline reads its rows from, the `dlflow` binary, and the median and range of repeated runs.
// Each benchmark is a crate of its own that uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;

/// A number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `batches` as an Arrow IPC file at `path`.
pub fn write_arrow(batches: &[RecordBatch], path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer = datafusion::arrow::ipc::writer::FileWriter::try_new(file, &batches[0].schema()).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.finish().expect("finish");
}

/// The `dlflow` binary next to this benchmark's (scripts/bench.sh builds it).
pub fn dlflow_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let release = exe.parent().and_then(|deps| deps.parent()).expect("target/release");
    let binary = release.join("dlflow");
    assert!(binary.is_file(), "{} is missing: build it (scripts/bench.sh builds it)", binary.display());
    binary
}

/// The median of `values` (sorts them).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median and range of `values`.
pub fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    let (low, high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    (median(values), low, high)
}
