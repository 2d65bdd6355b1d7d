//! Writing a stream of record batches to a file, atomically.
//!
//! The file appears at its path only once the whole stream has been written: batches go to a
//! hidden temporary file in the same directory, which is renamed onto the path after the
//! stream ended without error and the writer was closed. A failed or cancelled job therefore
//! leaves no truncated output behind (and an older file at the path stays as it was), which
//! matters when the next job in a pipeline picks up "whatever file is there".

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use tempfile::NamedTempFile;

use crate::error::{BoxError, Result, TableError};
use crate::files::FileFormat;

pub mod stored_columns;
mod writeback;
pub use stored_columns::StoredColumns;
use stored_columns::StoredColumnsWriter;
use writeback::WritebackFile;

/// Writes every batch of `stream` to `path` in the format its extension names (see
/// [`FileFormat::from_path`]): CSV with a header line, newline-delimited JSON, Parquet
/// (Snappy-compressed), an Arrow IPC file, or an Arrow IPC stream for `.arrows`. Returns the
/// number of rows written. The file gets the permissions the umask gives new files.
///
/// `on_batch` is called with each batch as it goes to the writer, e.g. to drive a progress
/// bar. Encoding and writing run on a thread of their own while the next batches are computed;
/// memory stays bounded by a few batches plus one Parquet row group (at most
/// [`PARQUET_ROW_GROUP_BYTES`]).
///
/// On any error (from the stream or from writing) nothing is created at `path` and the
/// temporary file is removed.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use dlflow_table::datagen::{DataGen, Generator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let ctx = dlflow_table::new_session();
/// let table = DataGen::new(1000).column("id", Generator::sequence(0)).build()?;
/// let stream = ctx.read_table(Arc::new(table))?.execute_stream().await?;
///
/// let dir = tempfile::tempdir().expect("temp dir");
/// let path = dir.path().join("ids.parquet");
/// let mut batches = 0;
/// let rows = dlflow_table::write_stream(stream, &path, |_| batches += 1).await?;
/// assert_eq!(rows, 1000);
/// assert!(path.exists() && batches >= 1);
/// # Ok(())
/// # }
/// ```
pub async fn write_stream(
    stream: SendableRecordBatchStream,
    path: &Path,
    on_batch: impl FnMut(&RecordBatch),
) -> Result<u64> {
    let format = FileFormat::from_path(path)?;
    let schema = stream.schema();
    let target = path.to_path_buf();
    let (temp, writer) = blocking(path, move || open(format, &target, &schema)).await?;
    write_through(stream, temp, writer, path, on_batch).await
}

/// Writes `stored`'s columns as they are stored, then every column of `appended`, to `path`, a
/// Parquet file: what [`write_stream`] would write for a stream of `stored`'s rows with
/// `appended`'s columns beside them, but the stored columns are copied chunk by chunk, never
/// decoded or encoded (see [`stored_columns`]). `appended` must give one row per row of the
/// stored files, in file order (e.g. a model's outputs over
/// [`stored_parquet_files`](crate::ordered::stored_parquet_files) read with
/// [`execute_in_order`](crate::ordered::execute_in_order)); a different count is an error.
/// Row groups are the stored files' row groups. Returns the number of rows written; on any
/// error nothing is created at `path`.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use datafusion::prelude::ParquetReadOptions;
/// use dlflow_table::datagen::{DataGen, Generator};
/// use dlflow_table::sink::{write_with_stored_columns, StoredColumns};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let ctx = dlflow_table::new_session();
/// let dir = tempfile::tempdir().expect("temp dir");
/// let (input, output) = (dir.path().join("in.parquet"), dir.path().join("out.parquet"));
/// let ids = DataGen::new(1000).column("id", Generator::sequence(0)).build()?;
/// dlflow_table::write_stream(ctx.read_table(Arc::new(ids))?.execute_stream().await?, &input, |_| {}).await?;
///
/// // A column computed from the file's rows, in their order, beside its stored columns.
/// let doubled = ctx.read_parquet(input.to_str().unwrap(), ParquetReadOptions::default()).await?.select_exprs(&["id * 2 AS twice"])?;
/// let plan = doubled.create_physical_plan().await?;
/// let stream = dlflow_table::ordered::execute_in_order(plan, ctx.task_ctx(), 2)?;
/// let stored = StoredColumns::open(&[input.clone()], &["id"])?.expect("the file's columns are id");
/// let rows = write_with_stored_columns(stored, stream, &output, |_| {}).await?;
/// assert_eq!(rows, 1000);
/// let read = ctx.read_parquet(output.to_str().unwrap(), ParquetReadOptions::default()).await?;
/// let names: Vec<&str> = read.schema().fields().iter().map(|f| f.name().as_str()).collect();
/// assert_eq!(names, ["id", "twice"]);
/// # Ok(())
/// # }
/// ```
pub async fn write_with_stored_columns(
    stored: StoredColumns,
    appended: SendableRecordBatchStream,
    path: &Path,
    on_batch: impl FnMut(&RecordBatch),
) -> Result<u64> {
    let schema = appended.schema();
    let target = path.to_path_buf();
    let (temp, writer) = blocking(path, move || {
        let temp = create_temp(&target)?;
        let writer = StoredColumnsWriter::new(temp.as_file().try_clone()?, stored, &schema)?;
        Ok((temp, FormatWriter::StoredColumns(Box::new(writer))))
    })
    .await?;
    write_through(appended, temp, writer, path, on_batch).await
}

/// Feeds `stream` to `writer` on a thread of its own, then closes it, syncs `temp` and renames
/// it to `path`; on any error `temp` is deleted and nothing appears at `path`.
async fn write_through(
    mut stream: SendableRecordBatchStream,
    temp: NamedTempFile,
    mut writer: FormatWriter,
    path: &Path,
    mut on_batch: impl FnMut(&RecordBatch),
) -> Result<u64> {
    // Encoding and writing run on their own thread while the next batches are computed: a
    // bounded channel (back-pressure, bounded memory) between the query and the writer.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(WRITE_AHEAD);
    // Set only once the whole stream went to the writer. Without it (an error, or the job
    // dropped mid-way by Ctrl-C), the writer stops and its temporary file is deleted.
    let commit = Arc::new(AtomicBool::new(false));
    let target = path.to_path_buf();
    let committed = commit.clone();
    let writing = tokio::task::spawn_blocking(move || -> std::result::Result<(), BoxError> {
        while let Some(batch) = receiver.blocking_recv() {
            writer.write(&batch)?;
        }
        if !committed.load(Ordering::Acquire) {
            return Ok(()); // dropping `temp` deletes the temporary file
        }
        writer.finish()?;
        // Data must be on disk before the rename makes it visible, or a crash could leave a
        // complete-looking but empty file at `path`.
        temp.as_file().sync_all()?;
        temp.persist(&target).map_err(|e| e.error)?;
        Ok(())
    });
    let mut rows = 0;
    let mut failure = None;
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                failure = Some(TableError::from(error));
                break;
            }
        };
        rows += batch.num_rows() as u64;
        on_batch(&batch);
        if sender.send(batch).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    if let Some(error) = failure {
        drop(sender);
        let _ = writing.await; // it deletes its temporary file: nothing at `path`
        return Err(error);
    }
    commit.store(true, Ordering::Release);
    drop(sender);
    match writing.await {
        Ok(Ok(())) => Ok(rows),
        Ok(Err(source)) => Err(TableError::Write { path: path.to_path_buf(), source }),
        Err(join_error) => Err(TableError::Write { path: path.to_path_buf(), source: Box::new(join_error) }),
    }
}

/// Batches queued between the query and the file writer.
const WRITE_AHEAD: usize = 4;

/// A Parquet row group is flushed once it holds this many bytes, so memory stays bounded
/// however wide the rows (at 784 floats a row, a million-row group would be about 3 GB).
///
/// 16 MiB rather than 64: a reader (DataFusion's included) reads a column chunk into one fresh,
/// zeroed buffer, and above glibc's largest mmap threshold (32 MiB) every such buffer is a new
/// mapping, page-faulted in as it is zeroed. Reading a 629 MB file of 784-float rows written
/// with 16 MiB row groups took 60-100k page faults instead of 210-240k: `dlflow predict` over
/// it 0.87x the wall time (0.80-1.00x, 7 runs A/B), the copy 0.91x and 279 instead of 366 MiB
/// peak (decision 0013).
pub const PARQUET_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// Runs blocking file work on tokio's blocking pool, naming `path` in any error.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> std::result::Result<T, BoxError> + Send + 'static,
) -> Result<T> {
    let write_error = |source: BoxError| TableError::Write {
        path: path.to_path_buf(),
        source,
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(write_error),
        Err(join_error) => Err(write_error(Box::new(join_error))),
    }
}

/// Creates the temporary file next to `target` and a writer on it.
pub(crate) fn open(
    format: FileFormat,
    target: &Path,
    schema: &SchemaRef,
) -> std::result::Result<(NamedTempFile, FormatWriter), BoxError> {
    let temp = create_temp(target)?;
    let stream = target.extension().is_some_and(|e| e.eq_ignore_ascii_case("arrows"));
    let writer = FormatWriter::new(format, stream, temp.as_file().try_clone()?, schema)?;
    Ok((temp, writer))
}

/// Creates the hidden temporary file that becomes `target` once complete.
fn create_temp(target: &Path) -> std::result::Result<NamedTempFile, BoxError> {
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Errors here name the folder, not the hidden temporary file, which the user never asked for.
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} is a file, not a folder", dir.display()).into());
    }
    if !dir.is_dir() {
        return Err(format!("the folder {} does not exist", dir.display()).into());
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden and with a `.tmp` suffix, so that readers globbing `*.parquet` (or dlflow's own
    // directory reader, which skips dot files) never see a half-written file. Same directory,
    // so the final rename stays on one filesystem and is atomic.
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // rw for everyone less the umask, as any new file (tempfile's default is 0600).
        .permissions(new_file_permissions())
        .tempfile_in(&dir)
        .map_err(|error| {
            // tempfile's error names the temporary file; the OS error alone is what matters.
            let cause = error.raw_os_error().map_or_else(|| error.kind().to_string(), |code| std::io::Error::from_raw_os_error(code).to_string());
            format!("cannot create a file in the folder {}: {cause}", dir.display())
        })?;
    Ok(temp)
}

#[cfg(unix)]
fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// One writer per format. An enum rather than `Box<dyn RecordBatchWriter>` because closing
/// must report flush errors, and `RecordBatchWriter::close` takes `self` by value, which a
/// trait object cannot do.
pub(crate) enum FormatWriter {
    // arrow-csv and arrow-json buffer internally and flush per batch, so they write to the
    // file directly; IPC writes each buffer separately and gets a `BufWriter`.
    Csv(arrow::csv::Writer<WritebackFile>),
    Json(arrow::json::LineDelimitedWriter<WritebackFile>),
    Parquet(Box<ArrowWriter<WritebackFile>>),
    ArrowIpc(arrow::ipc::writer::FileWriter<BufWriter<WritebackFile>>),
    /// `.arrows`: the IPC stream format (no footer), what the extension means by convention.
    ArrowIpcStream(arrow::ipc::writer::StreamWriter<BufWriter<WritebackFile>>),
    /// Parquet with other files' column chunks copied in ([`write_with_stored_columns`]).
    StoredColumns(Box<StoredColumnsWriter>),
}

/// How dlflow writes Parquet: Snappy (fast to write and read, and what pyarrow and Spark default
/// to), row groups of at most [`PARQUET_ROW_GROUP_BYTES`], floating-point columns without a
/// dictionary.
fn parquet_properties(schema: &SchemaRef) -> std::result::Result<WriterPropertiesBuilder, BoxError> {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_bytes(Some(PARQUET_ROW_GROUP_BYTES));
    for path in floating_point_columns(schema)? {
        properties = properties.set_column_dictionary_enabled(path, false);
    }
    Ok(properties)
}

/// The Parquet columns (leaves, nested ones included) of floating-point values. They are written
/// without dictionary encoding: features, embeddings and model outputs rarely repeat, so a
/// dictionary only costs time (every value hashed, for every row group, until the writer gives
/// up on it) and never saves space.
fn floating_point_columns(schema: &SchemaRef) -> std::result::Result<Vec<ColumnPath>, BoxError> {
    let descriptor = ArrowSchemaConverter::new().convert(schema)?;
    Ok(descriptor
        .columns()
        .iter()
        .filter(|c| matches!(c.physical_type(), PhysicalType::FLOAT | PhysicalType::DOUBLE))
        .map(|c| c.path().clone())
        .collect())
}

impl FormatWriter {
    pub(crate) fn new(
        format: FileFormat,
        ipc_stream: bool,
        file: File,
        schema: &SchemaRef,
    ) -> std::result::Result<Self, BoxError> {
        let file = WritebackFile::new(file);
        Ok(match format {
            FileFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                // The header is written with the first batch; an empty batch up front makes
                // an empty result still a valid CSV file with its column names.
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
                FormatWriter::Csv(writer)
            }
            FileFormat::Json => FormatWriter::Json(arrow::json::LineDelimitedWriter::new(file)),
            FileFormat::Parquet => {
                let properties = parquet_properties(schema)?.build();
                FormatWriter::Parquet(Box::new(ArrowWriter::try_new(
                    file,
                    schema.clone(),
                    Some(properties),
                )?))
            }
            FileFormat::ArrowIpc if ipc_stream => FormatWriter::ArrowIpcStream(
                arrow::ipc::writer::StreamWriter::try_new_buffered(file, schema)?,
            ),
            FileFormat::ArrowIpc => FormatWriter::ArrowIpc(
                arrow::ipc::writer::FileWriter::try_new_buffered(file, schema)?,
            ),
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), BoxError> {
        match self {
            FormatWriter::Csv(w) => w.write(batch)?,
            FormatWriter::Json(w) => w.write(batch)?,
            FormatWriter::Parquet(w) => w.write(batch)?,
            FormatWriter::ArrowIpc(w) => w.write(batch)?,
            FormatWriter::ArrowIpcStream(w) => w.write(batch)?,
            FormatWriter::StoredColumns(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Writes footers and flushes everything to the file, reporting any error.
    pub(crate) fn finish(self) -> std::result::Result<(), BoxError> {
        match self {
            FormatWriter::Csv(w) => w.into_inner().flush()?,
            FormatWriter::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush()?;
            }
            FormatWriter::Parquet(w) => {
                (*w).close()?;
            }
            FormatWriter::ArrowIpc(mut w) => {
                w.finish()?;
                w.into_inner()?.flush()?;
            }
            FormatWriter::ArrowIpcStream(mut w) => {
                w.finish()?;
                w.into_inner()?.flush()?;
            }
            FormatWriter::StoredColumns(w) => w.finish()?,
        }
        Ok(())
    }
}
