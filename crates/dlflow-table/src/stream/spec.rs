//! [`StreamSpec`]: where a stream comes from and how to read it, from SQL DDL or Rust.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::SchemaRef;

use super::decode::{OnError, RecordFormat};
use crate::error::{Result, TableError};

/// Where a stream's records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Standard input (`'-'`).
    Stdin,
    /// A TCP server dlflow connects to (`'tcp://HOST:PORT'`).
    Tcp(String),
    /// Every partition of a Kafka topic (`'kafka://BROKER/TOPIC'`).
    Kafka {
        /// `HOST:PORT` of a bootstrap broker.
        broker: String,
        /// The topic.
        topic: String,
    },
    /// A directory followed for new files (`'DIR'`).
    Directory(PathBuf),
}

impl Location {
    /// Parses a `LOCATION` (or `--input`): `-`, `tcp://HOST:PORT`, `kafka://BROKER/TOPIC`, or a
    /// directory path.
    ///
    /// ```
    /// use dlflow_table::stream::Location;
    /// assert_eq!(Location::parse("-")?, Location::Stdin);
    /// assert_eq!(Location::parse("tcp://127.0.0.1:9000")?, Location::Tcp("127.0.0.1:9000".into()));
    /// assert_eq!(Location::parse("kafka://localhost:9092/clicks")?, Location::Kafka { broker: "localhost:9092".into(), topic: "clicks".into() });
    /// assert!(Location::parse("tcp://nohost").is_err());
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn parse(location: &str) -> Result<Location> {
        let bad = |expected: &str| TableError::Stream { location: location.to_string(), message: format!("not a stream address; expected {expected}") };
        if location == "-" {
            return Ok(Location::Stdin);
        }
        if let Some(address) = location.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            return match address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(Location::Tcp(address.to_string())),
                _ => Err(bad("tcp://HOST:PORT")),
            };
        }
        if let Some(rest) = location.strip_prefix("kafka://") {
            return match rest.split_once('/') {
                Some((broker, topic)) if broker.contains(':') && !topic.is_empty() && !topic.contains('/') => {
                    Ok(Location::Kafka { broker: broker.to_string(), topic: topic.to_string() })
                }
                _ => Err(bad("kafka://HOST:PORT/TOPIC")),
            };
        }
        if location.contains("://") {
            return Err(bad("-, tcp://HOST:PORT, kafka://HOST:PORT/TOPIC or a directory"));
        }
        Ok(Location::Directory(PathBuf::from(location)))
    }

    /// Whether a `LOCATION` names a stream whatever the DDL says (`-`, `tcp://`, `kafka://`).
    pub fn is_stream_location(location: &str) -> bool {
        location == "-" || location.starts_with("tcp://") || location.starts_with("kafka://")
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Stdin => f.write_str("standard input"),
            Location::Tcp(address) => write!(f, "tcp://{address}"),
            Location::Kafka { broker, topic } => write!(f, "kafka://{broker}/{topic}"),
            Location::Directory(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// How a TCP source reconnects when its peer goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Reconnect at all; when false, the end of the connection ends the stream.
    pub enabled: bool,
    /// Tries before giving up with an error (each connection that works resets the count).
    pub attempts: u32,
    /// Wait before the first retry; doubled after each, up to [`Reconnect::MAX_BACKOFF`].
    pub backoff: Duration,
}

impl Reconnect {
    /// The longest wait between two tries.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect { enabled: true, attempts: 10, backoff: Duration::from_millis(100) }
    }
}

/// Where a Kafka source starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KafkaStart {
    /// The oldest record kept.
    #[default]
    Earliest,
    /// Only records written from now on.
    Latest,
    /// This offset in every partition.
    Offset(i64),
}

/// Everything needed to read a stream: where, in which format, with which columns, and what to
/// do with bad records. Made from SQL DDL by the table factory
/// ([`StreamSpec::from_options`]) or in Rust.
///
/// ```
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use dlflow_table::stream::{Location, StreamSpec};
///
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float32, true)]));
/// let spec = StreamSpec::new(Location::parse("tcp://127.0.0.1:9000")?, schema);
/// assert!(spec.reconnect.enabled);
/// # Ok::<(), dlflow_table::TableError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Where records come from.
    pub location: Location,
    /// How they are written.
    pub format: RecordFormat,
    /// The declared columns, position columns (`_partition`, `_offset`, `_timestamp`) included.
    pub schema: SchemaRef,
    /// The column `_timestamp` copies (event time); arrival time when `None`.
    pub event_time: Option<String>,
    /// What to do with a record that does not parse or fit.
    pub on_error: OnError,
    /// TCP reconnection.
    pub reconnect: Reconnect,
    /// How often a followed directory is listed.
    pub poll: Duration,
    /// Where a Kafka source starts.
    pub kafka_start: KafkaStart,
    /// The event-time column and its watermark, for windows.
    pub watermark: Option<WatermarkDeclaration>,
}

/// A stream's watermark: `OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s')`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDeclaration {
    /// The event-time column (a TIMESTAMP).
    pub column: String,
    /// How far behind the largest event time seen the watermark is, nanoseconds.
    pub delay: i64,
    /// A partition silent this long stops holding the watermark back, nanoseconds (default 5 s).
    pub idle_timeout: i64,
    /// Late rows go to this NDJSON file (besides being counted) instead of being dropped.
    pub late_output: Option<PathBuf>,
}

impl WatermarkDeclaration {
    /// The declaration for `column`, `delay` behind.
    pub fn new(column: impl Into<String>, delay: std::time::Duration) -> WatermarkDeclaration {
        WatermarkDeclaration { column: column.into(), delay: delay.as_nanos() as i64, idle_timeout: 5_000_000_000, late_output: None }
    }

    /// `schema` with this declaration on its event-time column (field metadata the window
    /// planner reads), or an error if the column is missing or not a TIMESTAMP.
    pub fn apply(&self, schema: &arrow::datatypes::Schema) -> Result<arrow::datatypes::Schema> {
        let index = schema.index_of(&self.column).map_err(|_| {
            TableError::invalid_stream_option("watermark.column", format!("no column `{}`; the columns are {}", self.column, schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")))
        })?;
        let field = schema.field(index);
        if !matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
            return Err(TableError::invalid_stream_option("watermark.column", format!("`{}` is {}; expected a TIMESTAMP", self.column, field.data_type())));
        }
        let mut metadata = field.metadata().clone();
        metadata.insert(crate::window::WATERMARK_DELAY_KEY.into(), self.delay.to_string());
        metadata.insert(crate::window::WATERMARK_IDLE_KEY.into(), self.idle_timeout.to_string());
        if let Some(path) = &self.late_output {
            metadata.insert(crate::window::LATE_OUTPUT_KEY.into(), path.display().to_string());
        }
        let mut fields: Vec<arrow::datatypes::FieldRef> = schema.fields().iter().cloned().collect();
        fields[index] = std::sync::Arc::new(field.clone().with_metadata(metadata));
        Ok(arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone()))
    }
}

/// The options a stream table takes, for error messages.
pub const STREAM_OPTIONS: &[&str] = &[
    "timestamp.column",
    "on-error",
    "dead-letter",
    "reconnect",
    "reconnect.attempts",
    "reconnect.backoff-ms",
    "follow",
    "follow.interval-ms",
    "kafka.startup",
    "has_header",
    "watermark.column",
    "watermark.delay",
    "watermark.idle-timeout",
    "watermark.late-output",
];

impl StreamSpec {
    /// NDJSON records from `location` with columns `schema`, failing on bad records.
    pub fn new(location: Location, schema: SchemaRef) -> StreamSpec {
        StreamSpec {
            location,
            format: RecordFormat::Json,
            schema,
            event_time: None,
            on_error: OnError::Fail,
            reconnect: Reconnect::default(),
            poll: Duration::from_millis(100),
            kafka_start: KafkaStart::Earliest,
            watermark: None,
        }
    }

    /// The spec of `CREATE UNBOUNDED EXTERNAL TABLE ... STORED AS <file_type> LOCATION
    /// '<location>' OPTIONS (...)`. Option keys may carry DataFusion's `format.` prefix.
    pub fn from_options(location: &str, file_type: &str, schema: SchemaRef, options: &HashMap<String, String>) -> Result<StreamSpec> {
        if schema.fields().is_empty() {
            return Err(TableError::invalid_stream_option(
                "columns",
                "a stream's columns must be declared: CREATE UNBOUNDED EXTERNAL TABLE t (x FLOAT, id BIGINT) ...",
            ));
        }
        let mut spec = StreamSpec::new(Location::parse(location)?, schema);
        let mut has_header = false;
        let mut entries: Vec<(&String, &String)> = options.iter().collect();
        entries.sort();
        let mut dead_letter = None;
        let mut skip = false;
        let mut watermark_column = None;
        let (mut delay, mut idle, mut late) = (None, None, None);
        for (key, value) in entries {
            let key = key.strip_prefix("format.").unwrap_or(key).replace('_', "-");
            match key.as_str() {
                "timestamp.column" => spec.event_time = Some(value.clone()),
                "on-error" => {
                    skip = match value.as_str() {
                        "fail" => false,
                        "skip" => true,
                        _ => return Err(TableError::invalid_stream_option("on-error", format!("'{value}': expected fail or skip"))),
                    }
                }
                "dead-letter" => dead_letter = Some(PathBuf::from(value)),
                "reconnect" => spec.reconnect.enabled = parse_bool("reconnect", value)?,
                "reconnect.attempts" => spec.reconnect.attempts = parse_number("reconnect.attempts", value)?,
                "reconnect.backoff-ms" => spec.reconnect.backoff = Duration::from_millis(parse_number("reconnect.backoff-ms", value)?),
                "follow" => {
                    if !parse_bool("follow", value)? {
                        return Err(TableError::invalid_stream_option("follow", "an unbounded table over a directory follows it; for the files as they are, drop UNBOUNDED"));
                    }
                }
                "follow.interval-ms" => spec.poll = Duration::from_millis(parse_number("follow.interval-ms", value)?),
                "kafka.startup" => {
                    spec.kafka_start = match value.as_str() {
                        "earliest" => KafkaStart::Earliest,
                        "latest" => KafkaStart::Latest,
                        offset => KafkaStart::Offset(offset.parse().map_err(|_| {
                            TableError::invalid_stream_option("kafka.startup", format!("'{value}': expected earliest, latest or an offset"))
                        })?),
                    }
                }
                "has-header" => has_header = parse_bool("has_header", value)?,
                "watermark.column" => watermark_column = Some(value.clone()),
                "watermark.delay" => delay = Some(parse_duration_option("watermark.delay", value)?),
                "watermark.idle-timeout" => idle = Some(parse_duration_option("watermark.idle-timeout", value)?),
                "watermark.late-output" => late = Some(PathBuf::from(value)),
                // DataFusion's CSV/JSON settings that mean nothing for a stream of lines.
                "delimiter" | "compression" => {}
                other => {
                    return Err(TableError::invalid_stream_option(other, format!("unknown option; a stream table takes {}", STREAM_OPTIONS.join(", "))));
                }
            }
        }
        spec.format = match file_type.to_ascii_uppercase().as_str() {
            "JSON" | "NDJSON" => RecordFormat::Json,
            "CSV" => RecordFormat::Csv { has_header },
            other => match spec.location {
                Location::Directory(_) => RecordFormat::Json, // files are read by their extension
                _ => {
                    return Err(TableError::invalid_stream_option("STORED AS", format!("{other}: a stream of records is STORED AS JSON (one object per line) or CSV")));
                }
            },
        };
        match watermark_column {
            Some(column) => {
                let mut declaration = WatermarkDeclaration::new(column, Duration::ZERO);
                declaration.delay = delay.unwrap_or(0);
                declaration.idle_timeout = idle.unwrap_or(declaration.idle_timeout);
                declaration.late_output = late;
                spec.watermark = Some(declaration);
            }
            None if delay.is_some() || idle.is_some() || late.is_some() => {
                return Err(TableError::invalid_stream_option("watermark.column", "the watermark options need 'watermark.column', the event-time column"));
            }
            None => {}
        }
        if skip {
            spec.on_error = OnError::Skip { dead_letter };
        } else if dead_letter.is_some() {
            return Err(TableError::invalid_stream_option("dead-letter", "a dead-letter file goes with 'on-error' 'skip'"));
        }
        Ok(spec)
    }

    /// A name for the stream in messages: its location.
    pub fn name(&self) -> String {
        self.location.to_string()
    }
}

fn parse_bool(option: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(TableError::invalid_stream_option(option, format!("'{value}': expected true or false"))),
    }
}

fn parse_number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| TableError::invalid_stream_option(option, format!("'{value}': expected a non-negative integer")))
}

fn parse_duration_option(option: &str, value: &str) -> Result<i64> {
    crate::window::parse_duration(value).map_err(|message| TableError::invalid_stream_option(option, message))
}
