//! Streams: unbounded sources and sinks.
//!
//! A stream is an unbounded DataFusion table, one partition per source partition (a Kafka
//! partition, a socket, a followed directory, standard input), each read on its own, so an idle
//! partition never starves another. Records are NDJSON or CSV lines (files in a followed
//! directory: any supported format), decoded into Arrow batches as they arrive: a batch is
//! whatever one read brought in, so a lone record is not held back. Stateless SQL (projection,
//! filter, `predict(...)`) runs over them as over files.
//!
//! ```sql
//! CREATE UNBOUNDED EXTERNAL TABLE clicks (user_id BIGINT, x FLOAT, _partition INT, _offset BIGINT)
//! STORED AS JSON LOCATION 'kafka://localhost:9092/clicks'
//! ```
//!
//! | `LOCATION` | source |
//! |---|---|
//! | `'-'` | standard input, until it ends |
//! | `'tcp://HOST:PORT'` | dlflow connects; reconnects with backoff when the peer goes away |
//! | `'kafka://BROKER/TOPIC'` | every partition of the topic |
//! | `'DIR'` | a directory followed for new files, each read once, in name order |
//!
//! Declared columns `_partition`, `_offset` and `_timestamp` are filled with each record's
//! position ([`decode::PARTITION_COLUMN`] …); `_timestamp` is the event time from the column
//! named by `'timestamp.column'`, or the arrival time. Options: [`StreamSpec::from_options`].
//! Sinks: [`StreamSink`]. Graceful end (Ctrl-C): [`request_stop`].

pub mod decode;
mod factory;
mod follow;
mod kafka;
mod lines;
pub(crate) mod partition;
mod plan;
mod sink;
mod socket;
mod spec;
pub mod stats;
pub(crate) mod stop;

pub use decode::{skipped_records, OnError, RecordDecoder, RecordFormat};
pub use factory::{stream_table, StreamTableFactory};
pub use kafka::BROKER_TIMEOUT;
pub use partition::open_sources;
pub use plan::StreamingPlan;
pub(crate) use sink::ndjson;
pub use sink::{write_to_sink, StreamSink, DEFAULT_ROLL_INTERVAL, DEFAULT_ROLL_ROWS};
pub use spec::{KafkaStart, Location, Reconnect, StreamSpec, WatermarkDeclaration, STREAM_OPTIONS};
pub use stop::{records_read, request_stop, stop_requested};
