//! A Parquet file made of other Parquet files' columns, copied as they are stored, and columns
//! computed from them.
//!
//! Scoring a file with a model (`dlflow predict IN.parquet --output OUT.parquet`) writes every
//! input column again beside the model's outputs. Decoding those columns and encoding them anew
//! is most of the work of such a run: for 784-float rows the Parquet writer alone took as long
//! as reading the file, and far longer than the model (decision 0013). The bytes of a column
//! chunk do not depend on the other columns of its row group, so an output whose row groups
//! are the input's row groups, row for row, can take the input's column chunks byte for byte
//! (pages, encodings, compression and statistics as they were) and encode only the new
//! columns. The model still reads the columns it needs; everything else is a file copy.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, parquet_to_arrow_schema, ArrowSchemaConverter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use super::writeback::WritebackFile;
use crate::error::{BoxError, Result, TableError};

/// Local Parquet files whose columns, as stored, go into a new file (see the
/// [module docs](self)): opened, their footers read and checked to share one schema.
pub struct StoredColumns {
    sources: Vec<Source>,
    /// The files' Parquet schema (its root group).
    root: TypePtr,
    /// The files' columns as Arrow reads them.
    arrow: SchemaRef,
}

struct Source {
    path: PathBuf,
    file: ChunkFile,
    metadata: ParquetMetaData,
}

impl StoredColumns {
    /// Opens `files` and reads their footers. `Ok(None)` when their columns cannot simply be
    /// copied: the files differ in schema (DataFusion would reconcile them), or their columns
    /// are not `columns` (names, in order).
    pub fn open(files: &[PathBuf], columns: &[&str]) -> Result<Option<StoredColumns>> {
        let mut sources = Vec::with_capacity(files.len());
        for path in files {
            let file = File::open(path).map_err(|source| TableError::Io { path: path.clone(), source })?;
            let metadata = ParquetMetaDataReader::new().parse_and_finish(&file).map_err(|e| not_parquet(path, e))?;
            sources.push(Source { path: path.clone(), file: ChunkFile(file), metadata });
        }
        let Some(first) = sources.first() else { return Ok(None) };
        let root = first.metadata.file_metadata().schema_descr().root_schema_ptr();
        if sources.iter().any(|s| s.metadata.file_metadata().schema_descr().root_schema_ptr() != root) {
            return Ok(None);
        }
        let file_metadata = first.metadata.file_metadata();
        let arrow = parquet_to_arrow_schema(file_metadata.schema_descr(), file_metadata.key_value_metadata())
            .map_err(|e| not_parquet(&first.path, e))?;
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        if names != columns {
            return Ok(None);
        }
        let arrow = Arc::new(Schema::new(arrow.fields().clone()));
        Ok(Some(StoredColumns { sources, root, arrow }))
    }
}

fn not_parquet(path: &std::path::Path, error: parquet::errors::ParquetError) -> TableError {
    TableError::InvalidPath { path: path.to_path_buf(), message: format!("expected a Parquet file: {error}") }
}

/// Writes the stored columns of `stored` and then those of `appended`, Parquet, to `file`: one
/// row group per row group of the stored files, each stored column chunk copied as it is, the
/// appended columns encoded from the batches given to [`write`](Self::write), which must hold
/// the files' rows in file order.
pub(crate) struct StoredColumnsWriter {
    writer: SerializedFileWriter<WritebackFile>,
    sources: Vec<Source>,
    /// The row groups still to write: (source, row group, rows).
    row_groups: VecDeque<(usize, usize, usize)>,
    appended: SchemaRef,
    columns: ArrowRowGroupWriterFactory,
    /// Appended rows not yet in a row group.
    pending: VecDeque<RecordBatch>,
    pending_rows: usize,
    written_groups: usize,
}

impl StoredColumnsWriter {
    pub(crate) fn new(file: File, stored: StoredColumns, appended: &SchemaRef) -> std::result::Result<Self, BoxError> {
        let StoredColumns { sources, root, arrow } = stored;
        if let Some(clash) = appended.fields().iter().find(|f| arrow.field_with_name(f.name()).is_ok()) {
            return Err(format!("the new column '{}' is already a column of {}", clash.name(), sources[0].path.display()).into());
        }
        let mut properties = super::parquet_properties(appended)?.build();
        // The appended columns get writers of their own, made for a schema of theirs alone
        // (a throwaway file writer carries it): their leaves are the last ones of the file's.
        let appended_root = ArrowSchemaConverter::new().convert(appended)?.root_schema_ptr();
        let appended_only = SerializedFileWriter::new(std::io::sink(), appended_root.clone(), Arc::new(properties.clone()))?;
        let columns = ArrowRowGroupWriterFactory::new(&appended_only, appended.clone());

        let mut fields = root.get_fields().to_vec();
        fields.extend(appended_root.get_fields().iter().cloned());
        let output_root = Type::group_type_builder(root.name()).with_fields(fields).build()?;
        let mut all = arrow.fields().to_vec();
        all.extend(appended.fields().iter().cloned());
        add_encoded_arrow_schema_to_metadata(&Schema::new(all), &mut properties);
        let writer = SerializedFileWriter::new(WritebackFile::new(file), Arc::new(output_root), Arc::new(properties))?;

        let row_groups = sources
            .iter()
            .enumerate()
            .flat_map(|(s, source)| source.metadata.row_groups().iter().enumerate().map(move |(g, group)| (s, g, group.num_rows().max(0) as usize)))
            .filter(|(_, _, rows)| *rows > 0)
            .collect();
        Ok(StoredColumnsWriter { writer, sources, row_groups, appended: appended.clone(), columns, pending: VecDeque::new(), pending_rows: 0, written_groups: 0 })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), BoxError> {
        self.pending_rows += batch.num_rows();
        self.pending.push_back(batch.clone());
        while let Some(&(_, _, rows)) = self.row_groups.front()
            && self.pending_rows >= rows
        {
            self.write_row_group()?;
        }
        if self.row_groups.is_empty() && self.pending_rows > 0 {
            return Err(self.row_count_error());
        }
        Ok(())
    }

    /// Writes the footer; every row group must have been written.
    pub(crate) fn finish(self) -> std::result::Result<(), BoxError> {
        if !self.row_groups.is_empty() || self.pending_rows > 0 {
            return Err(self.row_count_error());
        }
        self.writer.close()?;
        Ok(())
    }

    fn row_count_error(&self) -> BoxError {
        let expected: u64 = self.sources.iter().map(|s| s.metadata.file_metadata().num_rows().max(0) as u64).sum();
        let given = self.written_rows() + self.pending_rows as u64;
        format!("the computed columns have {given} row(s) so far, the files they extend {expected}").into()
    }

    fn written_rows(&self) -> u64 {
        self.writer.flushed_row_groups().iter().map(|g| g.num_rows().max(0) as u64).sum()
    }

    /// The next row group: its stored column chunks copied, the appended columns encoded from
    /// the next `rows` pending rows.
    fn write_row_group(&mut self) -> std::result::Result<(), BoxError> {
        let (source, group, rows) = self.row_groups.pop_front().expect("a row group to write");
        let mut writers = self.columns.create_column_writers(self.written_groups)?;
        let mut left = rows;
        while left > 0 {
            let batch = self.pending.pop_front().expect("pending rows cover the row group");
            let take = left.min(batch.num_rows());
            if take < batch.num_rows() {
                self.pending.push_front(batch.slice(take, batch.num_rows() - take));
            }
            encode(&mut writers, &self.appended, &batch.slice(0, take))?;
            left -= take;
            self.pending_rows -= take;
        }
        let source = &self.sources[source];
        let mut row_group = self.writer.next_row_group()?;
        for chunk in source.metadata.row_group(group).columns() {
            let close = ColumnCloseResult {
                bytes_written: chunk.compressed_size().max(0) as u64,
                rows_written: rows as u64,
                metadata: chunk.clone(),
                // Bloom filters and page indexes live outside the chunk's bytes; they are
                // optional (they speed up filtered reads), and readers read the chunk without.
                bloom_filter: None,
                column_index: None,
                offset_index: None,
            };
            row_group.append_column(&source.file, close)?;
        }
        for writer in writers {
            let mut chunk = writer.close()?;
            // A file's page index covers all of its columns or none (the Parquet crate's
            // footer writer requires it), and the copied chunks come without theirs.
            chunk.close_mut().column_index = None;
            chunk.close_mut().offset_index = None;
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.written_groups += 1;
        Ok(())
    }
}

/// Encodes `batch` (the appended columns) into their column writers.
fn encode(writers: &mut [ArrowColumnWriter], schema: &SchemaRef, batch: &RecordBatch) -> std::result::Result<(), BoxError> {
    let mut writers = writers.iter_mut();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column)? {
            writers.next().ok_or("fewer column writers than leaves")?.write(&leaf)?;
        }
    }
    Ok(())
}

/// A source file read for its column chunks in large pieces: the Parquet crate's `File`
/// reader buffers 8 KiB, which would copy a 600 MB file in 75 000 reads.
struct ChunkFile(File);

/// Bytes read at once when a column chunk is copied.
const COPY_BUFFER: usize = 1 << 20;

impl Length for ChunkFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl ChunkReader for ChunkFile {
    type T = BufReader<File>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let mut file = self.0.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        Ok(BufReader::with_capacity(COPY_BUFFER, file))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.get_bytes(start, length)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::StoredColumns;

    fn ids_file(path: &Path, column: &str, rows: i64) -> PathBuf {
        let batch = RecordBatch::try_from_iter([(column, Arc::new(Int64Array::from_iter_values(0..rows)) as _)]).expect("batch");
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(100)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).expect("create"), batch.schema(), Some(properties)).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        path.to_path_buf()
    }

    fn appended(rows: i64) -> datafusion::execution::SendableRecordBatchStream {
        let batch = RecordBatch::try_from_iter([("twice", Arc::new(Int64Array::from_iter_values((0..rows).map(|i| 2 * i))) as _)]).expect("batch");
        Box::pin(RecordBatchStreamAdapter::new(batch.schema(), futures::stream::iter([Ok(batch)])))
    }

    #[test]
    fn files_of_other_columns_or_schemas_are_not_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = ids_file(&dir.path().join("a.parquet"), "id", 250);
        let b = ids_file(&dir.path().join("b.parquet"), "other", 250);
        assert!(StoredColumns::open(std::slice::from_ref(&a), &["id"]).expect("open").is_some());
        assert!(StoredColumns::open(std::slice::from_ref(&a), &["x"]).expect("open").is_none(), "not the table's columns");
        assert!(StoredColumns::open(&[a, b], &["id"]).expect("open").is_none(), "two schemas");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appended_rows_that_do_not_match_the_files_fail_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = ids_file(&dir.path().join("in.parquet"), "id", 250);
        let output = dir.path().join("out.parquet");
        for rows in [249, 251] {
            let stored = StoredColumns::open(std::slice::from_ref(&input), &["id"]).expect("open").expect("stored");
            let error = super::super::write_with_stored_columns(stored, appended(rows), &output, |_| {}).await.expect_err("row counts differ");
            assert!(error.to_string().contains("the files they extend 250"), "{error}");
            let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
            assert_eq!(left, ["in.parquet"], "no output, no temporary file");
        }
        let stored = StoredColumns::open(std::slice::from_ref(&input), &["id"]).expect("open").expect("stored");
        let clash = super::super::write_with_stored_columns(stored, Box::pin(RecordBatchStreamAdapter::new(
            Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false)])),
            futures::stream::empty(),
        )), &output, |_| {}).await.expect_err("a new column named like a stored one");
        assert!(clash.to_string().contains("'id' is already a column"), "{clash}");
    }
}
