//! Stream sinks: standard output, a TCP socket, a Kafka topic, a directory of rolling files.
//!
//! Every sink writes each batch as soon as it comes (a micro-batch on a stream) and flushes
//! it, so a record's result is out as soon as it exists. Files are only ever visible whole.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::kafka::{client, kafka_error, partitions};
use super::spec::{Location, Reconnect};
use crate::error::{BoxError, Result, TableError};
use crate::files::FileFormat;
use crate::sink::FormatWriter;

/// Where a stream's results go.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamSink {
    /// Standard output, one NDJSON line per record (`-`).
    Stdout,
    /// A TCP server dlflow connects to, one NDJSON line per record (`tcp://HOST:PORT`).
    Tcp(String),
    /// A Kafka topic, one record (an NDJSON line) per row, spread over its partitions batch by
    /// batch (`kafka://BROKER/TOPIC`).
    Kafka {
        /// `HOST:PORT` of a bootstrap broker.
        broker: String,
        /// The topic; it must exist.
        topic: String,
    },
    /// A directory of files `part-00000.<ext>`, `part-00001.<ext>`, … each written whole and
    /// renamed into place, a new one after `roll_rows` rows or `roll_interval`.
    Directory {
        /// The directory (created if missing).
        dir: PathBuf,
        /// The files' format.
        format: FileFormat,
        /// Rows per file at most.
        roll_rows: u64,
        /// How long a file stays open at most (while records come).
        roll_interval: Duration,
    },
}

/// Rows per rolling file unless told otherwise.
pub const DEFAULT_ROLL_ROWS: u64 = 100_000;
/// Time per rolling file unless told otherwise.
pub const DEFAULT_ROLL_INTERVAL: Duration = Duration::from_secs(60);

impl StreamSink {
    /// The sink an `--output` names: `-`, `tcp://…`, `kafka://…`, or a directory (an existing
    /// one, or a path ending in `/`) of rolling files in `format` (NDJSON by default). `None`
    /// for anything else (a file path: not a stream sink).
    ///
    /// ```
    /// use dlflow_table::stream::StreamSink;
    /// assert_eq!(StreamSink::parse("-", None)?, Some(StreamSink::Stdout));
    /// assert_eq!(StreamSink::parse("out.parquet", None)?, None);
    /// assert!(matches!(StreamSink::parse("results/", None)?, Some(StreamSink::Directory { .. })));
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn parse(output: &str, format: Option<FileFormat>) -> Result<Option<StreamSink>> {
        if output == "-" {
            return Ok(Some(StreamSink::Stdout));
        }
        if output.starts_with("tcp://") || output.starts_with("kafka://") {
            return Ok(Some(match Location::parse(output)? {
                Location::Tcp(address) => StreamSink::Tcp(address),
                Location::Kafka { broker, topic } => StreamSink::Kafka { broker, topic },
                _ => unreachable_sink(output)?,
            }));
        }
        let path = Path::new(output);
        if output.ends_with('/') || path.is_dir() {
            return Ok(Some(StreamSink::Directory {
                dir: path.to_path_buf(),
                format: format.unwrap_or(FileFormat::Json),
                roll_rows: DEFAULT_ROLL_ROWS,
                roll_interval: DEFAULT_ROLL_INTERVAL,
            }));
        }
        Ok(None)
    }
}

fn unreachable_sink(output: &str) -> Result<StreamSink> {
    Err(TableError::invalid_stream_option("--output", format!("'{output}': expected -, tcp://HOST:PORT, kafka://HOST:PORT/TOPIC or a directory")))
}

/// Writes every batch of `stream` to `sink` as it comes; returns the rows written. `on_batch`
/// sees each batch once it is out (flushed).
pub async fn write_to_sink(mut stream: SendableRecordBatchStream, sink: &StreamSink, mut on_batch: impl FnMut(&RecordBatch)) -> Result<u64> {
    let mut rows = 0u64;
    match sink {
        StreamSink::Stdout => {
            let mut out = tokio::io::stdout();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let lines = ndjson(&batch)?;
                let written = out.write_all(&lines).await.and(out.flush().await);
                if let Err(error) = written {
                    // A closed pipe (`| head`) ends the job, not with a panic.
                    return Err(TableError::Stream { location: "standard output".into(), message: error.to_string() });
                }
                rows += batch.num_rows() as u64;
                on_batch(&batch);
            }
        }
        StreamSink::Tcp(address) => {
            let mut socket = super::socket::connect(address, Reconnect::default()).await?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let lines = ndjson(&batch)?;
                socket.write_all(&lines).await.and(socket.flush().await).map_err(|e| TableError::Stream { location: format!("tcp://{address}"), message: e.to_string() })?;
                rows += batch.num_rows() as u64;
                on_batch(&batch);
            }
        }
        StreamSink::Kafka { broker, topic } => {
            let client = client(broker).await?;
            let partitions = partitions(&client, broker, topic).await?;
            let mut producers = Vec::with_capacity(partitions.len());
            for partition in partitions {
                let producer = client
                    .partition_client(topic.clone(), partition, rskafka::client::partition::UnknownTopicHandling::Error)
                    .await
                    .map_err(|e| kafka_error(broker, topic, e))?;
                producers.push(producer);
            }
            let mut next = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let records = ndjson(&batch)?
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| rskafka::record::Record { key: None, value: Some(line.to_vec()), headers: Default::default(), timestamp: now_record_time() })
                    .collect::<Vec<_>>();
                let producer = &producers[next % producers.len()];
                next += 1;
                producer.produce(records, rskafka::client::partition::Compression::NoCompression).await.map_err(|e| kafka_error(broker, topic, e))?;
                rows += batch.num_rows() as u64;
                on_batch(&batch);
            }
        }
        StreamSink::Directory { dir, format, roll_rows, roll_interval } => {
            std::fs::create_dir_all(dir).map_err(|source| TableError::Io { path: dir.clone(), source })?;
            let mut rolling = Rolling::new(dir.clone(), *format, stream.schema(), *roll_rows, *roll_interval)?;
            let mut tick = tokio::time::interval((*roll_interval).max(Duration::from_millis(10)));
            tick.tick().await;
            loop {
                tokio::select! {
                    batch = stream.next() => {
                        let Some(batch) = batch else { break };
                        let batch = batch?;
                        rolling.write(&batch).await?;
                        rows += batch.num_rows() as u64;
                        on_batch(&batch);
                    }
                    _ = tick.tick() => rolling.roll_if_due().await?,
                }
            }
            rolling.finish().await?;
        }
    }
    Ok(rows)
}

/// One NDJSON line per row.
pub(crate) fn ndjson(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::with_capacity(batch.num_rows() * 32));
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

/// The open file of a directory sink, and when to start the next.
struct Rolling {
    dir: PathBuf,
    format: FileFormat,
    schema: SchemaRef,
    roll_rows: u64,
    roll_interval: Duration,
    next_index: u64,
    current: Option<OpenFile>,
}

struct OpenFile {
    temp: tempfile::NamedTempFile,
    writer: FormatWriter,
    target: PathBuf,
    rows: u64,
    opened: Instant,
}

impl Rolling {
    fn new(dir: PathBuf, format: FileFormat, schema: SchemaRef, roll_rows: u64, roll_interval: Duration) -> Result<Rolling> {
        // Continue the numbering of files already there, so a restarted job never replaces one.
        let next_index = std::fs::read_dir(&dir)
            .map_err(|source| TableError::Io { path: dir.clone(), source })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("part-")).and_then(|n| n.split('.').next()).and_then(|n| n.parse::<u64>().ok()))
            .max()
            .map_or(0, |max| max + 1);
        Ok(Rolling { dir, format, schema, roll_rows: roll_rows.max(1), roll_interval, next_index, current: None })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.is_none() {
                self.open()?;
            }
            let Some(file) = self.current.as_mut() else { break };
            let room = (self.roll_rows - file.rows) as usize;
            let part = batch.slice(offset, room.min(batch.num_rows() - offset));
            let target = file.target.clone();
            file.writer.write(&part).map_err(|source| TableError::Write { path: target, source })?;
            file.rows += part.num_rows() as u64;
            offset += part.num_rows();
            if file.rows >= self.roll_rows {
                self.close()?;
            }
        }
        Ok(())
    }

    async fn roll_if_due(&mut self) -> Result<()> {
        if self.current.as_ref().is_some_and(|f| f.opened.elapsed() >= self.roll_interval) {
            self.close()?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<()> {
        self.close()
    }

    fn open(&mut self) -> Result<()> {
        let extension = self.format.extensions()[0];
        let target = self.dir.join(format!("part-{:05}.{extension}", self.next_index));
        self.next_index += 1;
        let (temp, writer) = crate::sink::open(self.format, &target, &self.schema).map_err(|source| TableError::Write { path: target.clone(), source })?;
        self.current = Some(OpenFile { temp, writer, target, rows: 0, opened: Instant::now() });
        Ok(())
    }

    /// Finishes the open file and renames it into place.
    fn close(&mut self) -> Result<()> {
        let Some(file) = self.current.take() else { return Ok(()) };
        let target = file.target.clone();
        let done = || -> std::result::Result<(), BoxError> {
            file.writer.finish()?;
            file.temp.as_file().sync_all()?;
            file.temp.persist(&file.target).map_err(|e| e.error)?;
            Ok(())
        };
        done().map_err(|source| TableError::Write { path: target, source })
    }
}

/// Now, as a Kafka record timestamp.
fn now_record_time() -> chrono::DateTime<chrono::Utc> {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default()
}
