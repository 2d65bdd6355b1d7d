//! A directory followed for new files: each file that appears is read once, in name order.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;

use super::decode::OnError;
use super::partition::{batch_stream, LineCounter};
use super::socket::decoder;
use super::spec::StreamSpec;
use crate::error::{BoxError, Result, TableError};
use crate::files::FileFormat;

/// Lines of an NDJSON or CSV file decoded per batch.
const LINES_PER_BATCH: usize = 8192;

/// A followed directory as one stream partition. Files are expected to appear whole (written
/// elsewhere and renamed in, as dlflow's own sinks do); names starting with `.` or `_` are
/// ignored (temporary files, `_SUCCESS` markers). Each file is read once, in name order, in the
/// format its extension names; offsets count records across files.
pub(crate) struct FollowPartition {
    spec: StreamSpec,
    dir: PathBuf,
}

impl FollowPartition {
    pub(crate) fn new(spec: StreamSpec, dir: PathBuf) -> Result<Self> {
        if !dir.is_dir() {
            return Err(TableError::InvalidPath { path: dir, message: "expected a directory to follow for new files".into() });
        }
        Ok(FollowPartition { spec, dir })
    }
}

impl std::fmt::Debug for FollowPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FollowPartition({})", self.dir.display())
    }
}

struct FollowState {
    dir: PathBuf,
    poll: std::time::Duration,
    seen: BTreeSet<PathBuf>,
    queue: VecDeque<PathBuf>,
    /// Batches of the file being read, next first.
    ready: VecDeque<RecordBatch>,
    counter: LineCounter,
    skip_bad_files: bool,
}

impl PartitionStream for FollowPartition {
    fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let spec = self.spec.clone();
        let state = decoder(&spec, 0).map(|decoder| FollowState {
            dir: self.dir.clone(),
            poll: spec.poll,
            seen: BTreeSet::new(),
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            counter: LineCounter::new(decoder),
            skip_bad_files: matches!(spec.on_error, OnError::Skip { .. }),
        });
        batch_stream(spec.schema.clone(), Some(state), |state| async move {
            let Some(state) = state else { return Ok(None) };
            let mut state = state?;
            loop {
                if let Some(batch) = state.ready.pop_front() {
                    return Ok(Some((batch, Some(Ok(state)))));
                }
                if let Some(path) = state.queue.pop_front() {
                    match read_file(&path, &mut state.counter).await {
                        Ok(batches) => state.ready.extend(batches),
                        Err(error) if state.skip_bad_files => tracing::warn!(file = %path.display(), "skipped a file that cannot be read: {error}"),
                        Err(error) => return Err(error),
                    }
                    continue;
                }
                let mut new: Vec<PathBuf> = list(&state.dir)?.into_iter().filter(|p| !state.seen.contains(p)).collect();
                if new.is_empty() {
                    tokio::time::sleep(state.poll).await;
                    continue;
                }
                new.sort();
                state.seen.extend(new.iter().cloned());
                state.queue.extend(new);
            }
        })
    }
}

/// The data files in `dir` now: not hidden, not `_`-prefixed, regular files.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| TableError::Io { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let hidden = entry.file_name().to_str().is_none_or(|n| n.starts_with('.') || n.starts_with('_'));
        if !hidden && entry.file_type().map_err(io)?.is_file() {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Every record of the file at `path`, as batches of the declared schema.
async fn read_file(path: &Path, counter: &mut LineCounter) -> Result<Vec<RecordBatch>> {
    let format = FileFormat::from_path(path)?;
    let owned = path.to_path_buf();
    let read_error = |source: BoxError| TableError::Write { path: path.to_path_buf(), source };
    match format {
        FileFormat::Json | FileFormat::Csv => {
            let bytes = tokio::fs::read(path).await.map_err(|source| TableError::Io { path: owned.clone(), source })?;
            counter.restart();
            let mut batches = Vec::new();
            for piece in super::lines::line_pieces(&bytes, LINES_PER_BATCH) {
                batches.extend(counter.decode(piece).map_err(|e| in_file(path, e))?);
            }
            Ok(batches)
        }
        FileFormat::Parquet | FileFormat::ArrowIpc => {
            let read = tokio::task::spawn_blocking(move || read_columnar(&owned, format)).await.map_err(|e| read_error(Box::new(e)))?;
            let raw = read.map_err(|source| TableError::Io { path: path.to_path_buf(), source: std::io::Error::other(source) })?;
            let mut batches = Vec::with_capacity(raw.len());
            for batch in raw {
                let first = counter.next_offset;
                counter.next_offset += batch.num_rows() as i64;
                batches.push(counter.decoder.conform(&batch, first).map_err(|e| in_file(path, e))?);
            }
            Ok(batches)
        }
    }
}

fn read_columnar(path: &Path, format: FileFormat) -> std::result::Result<Vec<RecordBatch>, BoxError> {
    let file = File::open(path)?;
    Ok(match format {
        FileFormat::Parquet => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?.collect::<std::result::Result<_, _>>()?,
        _ => match arrow::ipc::reader::FileReader::try_new(File::open(path)?, None) {
            Ok(reader) => reader.collect::<std::result::Result<_, _>>()?,
            // `.arrows` files are IPC streams.
            Err(_) => arrow::ipc::reader::StreamReader::try_new(file, None)?.collect::<std::result::Result<_, _>>()?,
        },
    })
}

/// `error` with the file it came from.
fn in_file(path: &Path, error: TableError) -> TableError {
    match error {
        TableError::BadRecord { source_name, partition, offset, start, message } => {
            TableError::BadRecord { source_name: format!("{source_name} (file {})", path.display()), partition, offset, start, message }
        }
        other => other,
    }
}
