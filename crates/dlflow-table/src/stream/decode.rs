//! Records (NDJSON or CSV lines) to Arrow batches, with positions and bad-record handling.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::error::{Result, TableError};

/// Column names a stream fills with each record's position when the schema declares them.
pub const PARTITION_COLUMN: &str = "_partition";
/// See [`PARTITION_COLUMN`]: the record's offset in its partition (Kafka offset, line index).
pub const OFFSET_COLUMN: &str = "_offset";
/// See [`PARTITION_COLUMN`]: event time (from a named column) or arrival time.
pub const TIMESTAMP_COLUMN: &str = "_timestamp";

/// How records are written in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line (`STORED AS JSON`, as in DataFusion).
    Json,
    /// Comma-separated values, one record per line, no header unless `has_header`.
    Csv {
        /// Whether each connection or file starts with a header line to skip.
        has_header: bool,
    },
}

/// What a stream does with a record that does not parse or fit the schema.
#[derive(Debug, Clone, Default)]
pub enum OnError {
    /// End the job with an error naming the source, the position and the start of the record.
    #[default]
    Fail,
    /// Count it, log it, append it to the dead-letter file if there is one, and go on.
    Skip {
        /// NDJSON file of `{"source", "partition", "offset", "error", "record"}` lines.
        dead_letter: Option<PathBuf>,
    },
}

/// Records skipped by [`OnError::Skip`] in this process, for summaries.
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// How many bad records streams of this process skipped so far.
pub fn skipped_records() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

/// Where position columns go in the declared schema, and where event time comes from.
#[derive(Debug, Clone)]
pub struct Positions {
    /// The declared schema (data columns and position columns).
    pub schema: SchemaRef,
    /// The data columns only: what the records hold.
    pub data_schema: SchemaRef,
    /// `data_schema` with every column nullable: what the decoders read, so that a record
    /// missing a required column is found by [`require_values`] and named, not failed inside
    /// the decoder.
    read_schema: SchemaRef,
    /// Index in `schema` of each data column, in `data_schema` order.
    data_index: Vec<usize>,
    partition: Option<usize>,
    offset: Option<usize>,
    timestamp: Option<usize>,
    /// Data column whose value is the event time (`'timestamp.column'`); arrival time if `None`.
    event_time: Option<usize>,
}

impl Positions {
    /// Splits `schema` into data and position columns; `event_time` names the data column
    /// `_timestamp` copies (when declared).
    pub fn new(schema: SchemaRef, event_time: Option<&str>) -> Result<Positions> {
        let mut data_fields = Vec::new();
        let mut data_index = Vec::new();
        let (mut partition, mut offset, mut timestamp) = (None, None, None);
        for (i, field) in schema.fields().iter().enumerate() {
            let (slot, expected) = match field.name().as_str() {
                PARTITION_COLUMN => (&mut partition, "an integer type (INT or BIGINT)"),
                OFFSET_COLUMN => (&mut offset, "BIGINT"),
                TIMESTAMP_COLUMN => (&mut timestamp, "TIMESTAMP"),
                _ => {
                    data_fields.push(field.clone());
                    data_index.push(i);
                    continue;
                }
            };
            let fits = match field.name().as_str() {
                PARTITION_COLUMN => matches!(field.data_type(), DataType::Int32 | DataType::Int64),
                OFFSET_COLUMN => matches!(field.data_type(), DataType::Int64),
                _ => matches!(field.data_type(), DataType::Timestamp(_, _)),
            };
            if !fits {
                return Err(TableError::invalid_stream_option(
                    field.name(),
                    format!("the position column {} is {}; expected {expected}", field.name(), field.data_type()),
                ));
            }
            *slot = Some(i);
        }
        let read_schema = Arc::new(Schema::new(data_fields.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>()));
        let data_schema = Arc::new(Schema::new(data_fields));
        let event_time = match event_time {
            None => None,
            Some(name) => Some(data_schema.index_of(name).map_err(|_| {
                TableError::invalid_stream_option(
                    "timestamp.column",
                    format!("no column `{name}`; expected one of {}", names(&data_schema)),
                )
            })?),
        };
        Ok(Positions { schema, data_schema, read_schema, data_index, partition, offset, timestamp, event_time })
    }

    /// The declared batch: `data` plus the position columns, rows at `first_offset..`.
    fn complete(&self, data: RecordBatch, partition: usize, offsets: &[i64]) -> Result<RecordBatch> {
        if self.partition.is_none() && self.offset.is_none() && self.timestamp.is_none() {
            return Ok(data);
        }
        let rows = data.num_rows();
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        for (data_column, index) in self.data_index.iter().enumerate() {
            columns[*index] = Some(data.column(data_column).clone());
        }
        if let Some(index) = self.partition {
            let column: ArrayRef = match self.schema.field(index).data_type() {
                DataType::Int32 => Arc::new(Int32Array::from_value(partition as i32, rows)),
                _ => Arc::new(Int64Array::from_value(partition as i64, rows)),
            };
            columns[index] = Some(column);
        }
        if let Some(index) = self.offset {
            columns[index] = Some(Arc::new(Int64Array::from(offsets.to_vec())));
        }
        if let Some(index) = self.timestamp {
            let target = self.schema.field(index).data_type();
            let column = match self.event_time {
                Some(event) => cast(data.column(event), target)?,
                None => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
                    let arrival: ArrayRef = Arc::new(TimestampMicrosecondArray::from_value(now, rows));
                    cast(&arrival, target)?
                }
            };
            columns[index] = Some(column);
        }
        let columns = columns.into_iter().map(|c| c.ok_or_else(|| ArrowError::SchemaError("a declared column was not filled".into()))).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Turns the records of one stream partition into batches of the declared schema.
///
/// Records go through Arrow's JSON or CSV decoder many at a time; when a chunk fails, its records
/// are decoded one by one to find the bad ones, which fail the stream or are skipped as
/// [`OnError`] says, with the source, partition, offset and the start of the record in the
/// message.
pub struct RecordDecoder {
    format: RecordFormat,
    positions: Positions,
    source: String,
    partition: usize,
    on_error: OnError,
    dead_letter: Option<Arc<Mutex<std::fs::File>>>,
}

impl RecordDecoder {
    /// A decoder for partition `partition` of the stream named `source` (its location).
    pub fn new(format: RecordFormat, positions: Positions, source: impl Into<String>, partition: usize, on_error: OnError) -> Result<RecordDecoder> {
        let dead_letter = match &on_error {
            OnError::Skip { dead_letter: Some(path) } => Some(Arc::new(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path).map_err(|source| TableError::Io { path: path.clone(), source })?,
            ))),
            _ => None,
        };
        Ok(RecordDecoder { format, positions, source: source.into(), partition, on_error, dead_letter })
    }

    /// How records are written.
    pub fn format(&self) -> RecordFormat {
        self.format
    }

    /// The declared schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.positions.schema.clone()
    }

    /// `batch` (read from a Parquet or Arrow file) as the declared schema: data columns taken
    /// by name and converted to the declared types, position columns filled from `first_offset`.
    pub fn conform(&self, batch: &RecordBatch, first_offset: i64) -> Result<RecordBatch> {
        let data_schema = &self.positions.data_schema;
        let columns = data_schema
            .fields()
            .iter()
            .map(|field| {
                let index = batch.schema().index_of(field.name()).map_err(|_| {
                    TableError::invalid_stream_option(
                        "columns",
                        format!("a file of {} has no column `{}`; its columns are {}", self.source, field.name(), names(&batch.schema())),
                    )
                })?;
                Ok(cast(batch.column(index), field.data_type())?)
            })
            .collect::<Result<Vec<_>>>()?;
        let data = RecordBatch::try_new_with_options(data_schema.clone(), columns, &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))?;
        let offsets: Vec<i64> = (first_offset..first_offset + batch.num_rows() as i64).collect();
        self.positions.complete(data, self.partition, &offsets)
    }

    /// Decodes `records` (one per slice, without line ends), whose offsets in the partition are
    /// `offsets`; `None` when every record was skipped. Empty records are ignored.
    pub fn decode(&self, records: &[&[u8]], offsets: &[i64]) -> Result<Option<RecordBatch>> {
        let kept: Vec<usize> = (0..records.len()).filter(|i| !records[*i].iter().all(u8::is_ascii_whitespace)).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let mut text = Vec::with_capacity(kept.iter().map(|i| records[*i].len() + 1).sum());
        for i in &kept {
            text.extend_from_slice(records[*i]);
            text.push(b'\n');
        }
        let data = match self.decode_text(&text, kept.len()) {
            Ok(batch) => batch,
            Err(_) => return self.decode_one_by_one(records, offsets, &kept),
        };
        let kept_offsets: Vec<i64> = kept.iter().map(|i| offsets[*i]).collect();
        Ok(Some(self.positions.complete(data, self.partition, &kept_offsets)?))
    }

    /// Decodes `records`, which are the lines of `text` (without their line ends) in order: when
    /// every record is kept, `text` goes to the decoder as it is, without copying the records
    /// into a new text first (what makes a stream as fast as a file).
    pub fn decode_text_of(&self, text: &[u8], records: &[&[u8]], offsets: &[i64]) -> Result<Option<RecordBatch>> {
        if records.is_empty() || records.iter().any(|r| r.iter().all(u8::is_ascii_whitespace)) {
            return self.decode(records, offsets);
        }
        match self.decode_text(text, records.len()) {
            Ok(data) if data.num_rows() == records.len() => Ok(Some(self.positions.complete(data, self.partition, offsets)?)),
            _ => self.decode(records, offsets),
        }
    }

    fn decode_one_by_one(&self, records: &[&[u8]], offsets: &[i64], kept: &[usize]) -> Result<Option<RecordBatch>> {
        let mut batches = Vec::new();
        let mut good_offsets = Vec::new();
        for i in kept {
            let mut line = records[*i].to_vec();
            line.push(b'\n');
            match self.decode_text(&line, 1) {
                Ok(batch) => {
                    batches.push(batch);
                    good_offsets.push(offsets[*i]);
                }
                Err(error) => self.bad_record(records[*i], offsets[*i], &error)?,
            }
        }
        if batches.is_empty() {
            return Ok(None);
        }
        let data = arrow::compute::concat_batches(&self.positions.data_schema, &batches)?;
        Ok(Some(self.positions.complete(data, self.partition, &good_offsets)?))
    }

    fn bad_record(&self, record: &[u8], offset: i64, error: &ArrowError) -> Result<()> {
        let text = String::from_utf8_lossy(record);
        match &self.on_error {
            OnError::Fail => Err(TableError::BadRecord {
                source_name: self.source.clone(),
                partition: self.partition,
                offset,
                start: record_start(&text),
                message: error.to_string(),
            }),
            OnError::Skip { .. } => {
                SKIPPED.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %self.source, partition = self.partition, offset, "skipped a bad record: {error}: {}", record_start(&text));
                if let Some(file) = &self.dead_letter {
                    let line = serde_line(&self.source, self.partition, offset, &error.to_string(), &text);
                    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                    file.write_all(line.as_bytes()).and_then(|_| file.flush()).map_err(|source| TableError::Io {
                        path: PathBuf::from("dead-letter file"),
                        source,
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Decodes `rows` records in `text` (newline-terminated) into one batch of data columns.
    fn decode_text(&self, text: &[u8], rows: usize) -> std::result::Result<RecordBatch, ArrowError> {
        let batch = self.decode_nullable(text, rows)?;
        require_values(&self.positions.data_schema, batch)
    }

    /// [`Self::decode_text`] into the schema with every column nullable.
    fn decode_nullable(&self, text: &[u8], rows: usize) -> std::result::Result<RecordBatch, ArrowError> {
        let schema = self.positions.read_schema.clone();
        let batch = match self.format {
            RecordFormat::Json => {
                let mut decoder = arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(rows.max(1)).build_decoder()?;
                let consumed = decoder.decode(text)?;
                if consumed < text.len() {
                    return Err(ArrowError::JsonError(format!("{} bytes left undecoded", text.len() - consumed)));
                }
                decoder.flush()?
            }
            RecordFormat::Csv { .. } => {
                let mut decoder = arrow::csv::ReaderBuilder::new(schema.clone()).with_header(false).with_batch_size(rows.max(1)).build_decoder();
                let mut offset = 0;
                while offset < text.len() {
                    let consumed = decoder.decode(&text[offset..])?;
                    if consumed == 0 {
                        break;
                    }
                    offset += consumed;
                }
                decoder.flush()?
            }
        };
        let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(schema));
        if batch.num_rows() != rows {
            return Err(ArrowError::ParseError(format!("expected {rows} records, decoded {}", batch.num_rows())));
        }
        Ok(batch)
    }
}

/// `batch` (decoded with every column nullable) as `schema`, whose non-nullable columns (a
/// model's inputs, or `NOT NULL` in a declaration) must have a value in every record.
fn require_values(schema: &SchemaRef, batch: RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(ArrowError::InvalidArgumentError(format!(
                "field `{}` is missing or null; every record needs it ({})",
                field.name(),
                field.data_type()
            )));
        }
    }
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
}

/// The first 80 characters of a record, for error messages.
fn record_start(text: &str) -> String {
    let mut start: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        start.push('…');
    }
    start
}

fn serde_line(source: &str, partition: usize, offset: i64, error: &str, record: &str) -> String {
    let value = serde_json::json!({ "source": source, "partition": partition, "offset": offset, "error": error, "record": record });
    format!("{value}\n")
}
