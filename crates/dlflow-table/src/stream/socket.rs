//! Line sources: standard input and TCP sockets.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;
use tokio::net::TcpStream;

use super::decode::RecordDecoder;
use super::lines::LineChunks;
use super::partition::{batch_stream, LineCounter};
use super::spec::{Reconnect, StreamSpec};
use crate::error::{Result, TableError};

/// Standard input as one stream partition: a record per line, until the end of input.
pub(crate) struct StdinPartition {
    spec: StreamSpec,
}

impl StdinPartition {
    pub(crate) fn new(spec: StreamSpec) -> Self {
        StdinPartition { spec }
    }
}

impl std::fmt::Debug for StdinPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StdinPartition")
    }
}

impl PartitionStream for StdinPartition {
    fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let spec = self.spec.clone();
        let state = match decoder(&spec, 0) {
            Ok(decoder) => Ok((LineChunks::new(tokio::io::stdin()), LineCounter::new(decoder))),
            Err(error) => Err(error),
        };
        batch_stream(spec.schema.clone(), Some(state), |state| async move {
            let Some(state) = state else { return Ok(None) };
            let (mut lines, mut counter) = state?;
            loop {
                let Some(chunk) = lines.next_chunk().await.map_err(|source| TableError::Stream { location: "standard input".into(), message: source.to_string() })? else {
                    return Ok(None);
                };
                if let Some(batch) = counter.decode(&chunk)? {
                    return Ok(Some((batch, Some(Ok((lines, counter))))));
                }
            }
        })
    }
}

/// A TCP server as one stream partition: dlflow connects, reads a record per line, and when the
/// peer goes away reconnects with backoff ([`Reconnect`]), failing with a clear error after the
/// last try; with reconnection off, the end of the connection ends the stream.
pub(crate) struct TcpPartition {
    spec: StreamSpec,
    address: String,
}

impl TcpPartition {
    pub(crate) fn new(spec: StreamSpec, address: String) -> Self {
        TcpPartition { spec, address }
    }
}

impl std::fmt::Debug for TcpPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpPartition({})", self.address)
    }
}

/// A connection being read, or none yet.
struct TcpState {
    address: String,
    reconnect: Reconnect,
    lines: Option<LineChunks<TcpStream>>,
    counter: LineCounter,
    connected_once: bool,
}

impl PartitionStream for TcpPartition {
    fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let spec = self.spec.clone();
        let state = decoder(&spec, 0).map(|decoder| TcpState {
            address: self.address.clone(),
            reconnect: spec.reconnect,
            lines: None,
            counter: LineCounter::new(decoder),
            connected_once: false,
        });
        batch_stream(spec.schema.clone(), Some(state), |state| async move {
            let Some(state) = state else { return Ok(None) };
            let mut state = state?;
            loop {
                if state.lines.is_none() {
                    if state.connected_once && !state.reconnect.enabled {
                        return Ok(None);
                    }
                    let stream = connect(&state.address, state.reconnect).await?;
                    state.lines = Some(LineChunks::new(stream));
                    state.counter.restart();
                    state.connected_once = true;
                }
                let Some(lines) = state.lines.as_mut() else { continue };
                match lines.next_chunk().await {
                    Ok(Some(chunk)) => {
                        if let Some(batch) = state.counter.decode(&chunk)? {
                            return Ok(Some((batch, Some(Ok(state)))));
                        }
                    }
                    Ok(None) => state.lines = None,
                    Err(error) => {
                        tracing::warn!(address = %state.address, "connection lost: {error}");
                        state.lines = None;
                    }
                }
            }
        })
    }
}

/// Connects to `address`, retrying with doubling waits; the error names the address, the tries
/// and the last failure.
pub(crate) async fn connect(address: &str, reconnect: Reconnect) -> Result<TcpStream> {
    let started = Instant::now();
    let mut wait = reconnect.backoff;
    let attempts = reconnect.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true).ok();
                if attempt > 1 {
                    tracing::info!(address, attempt, "connected again");
                }
                return Ok(stream);
            }
            Err(error) => last = error.to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Reconnect::MAX_BACKOFF);
        }
    }
    Err(TableError::Stream {
        location: format!("tcp://{address}"),
        message: format!(
            "could not connect after {attempts} tries in {:.1} s (last error: {last}); expected a server listening there \
             (set 'reconnect.attempts' to wait longer)",
            started.elapsed().as_secs_f64()
        ),
    })
}

/// The decoder of partition `partition` of `spec`.
pub(crate) fn decoder(spec: &StreamSpec, partition: usize) -> Result<RecordDecoder> {
    let positions = super::decode::Positions::new(spec.schema.clone(), spec.event_time.as_deref())?;
    RecordDecoder::new(spec.format, positions, spec.name(), partition, spec.on_error.clone())
}
