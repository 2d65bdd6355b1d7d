//! What the benchmarks share: settings from the environment and the Arrow file a Python
//! baseline reads its rows from.

use std::path::Path;

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
