//! Kafka topics as streams (every partition its own stream partition) and as sinks, through
//! `rskafka`, a pure-Rust client (no librdkafka; gzip and snappy only).

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::BackoffConfig;

use super::partition::{batch_stream, LineCounter};
use super::socket::decoder;
use super::spec::{KafkaStart, StreamSpec};
use crate::error::{Result, TableError};

/// How long dlflow tries to reach a broker before it reports it unreachable.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes asked per fetch at most.
const FETCH_BYTES: i32 = 8 * 1024 * 1024;
/// How long the broker may hold a fetch open waiting for records.
const FETCH_WAIT_MS: i32 = 100;
/// Pause after an empty fetch, for brokers that answer empty fetches at once.
const EMPTY_PAUSE: Duration = Duration::from_millis(5);

/// A client for `broker`, or an error naming it if it cannot be reached in [`BROKER_TIMEOUT`].
pub(crate) async fn client(broker: &str) -> Result<Client> {
    let unreachable = |detail: String| TableError::Stream {
        location: format!("kafka://{broker}"),
        message: format!("cannot reach the Kafka broker in {} s: {detail}; expected a broker listening at {broker}", BROKER_TIMEOUT.as_secs()),
    };
    let backoff = BackoffConfig { deadline: Some(BROKER_TIMEOUT), ..BackoffConfig::default() };
    let build = ClientBuilder::new(vec![broker.to_string()]).backoff_config(backoff).build();
    let client = tokio::time::timeout(BROKER_TIMEOUT, build).await.map_err(|_| unreachable("no answer".into()))?.map_err(|e| unreachable(e.to_string()))?;
    // The client connects lazily; a metadata request proves the broker answers.
    tokio::time::timeout(BROKER_TIMEOUT, client.list_topics()).await.map_err(|_| unreachable("no answer".into()))?.map_err(|e| unreachable(e.to_string()))?;
    Ok(client)
}

/// The partitions of `topic`, sorted, or an error listing the topics there are.
pub(crate) async fn partitions(client: &Client, broker: &str, topic: &str) -> Result<Vec<i32>> {
    let topics = client.list_topics().await.map_err(|e| kafka_error(broker, topic, e))?;
    match topics.iter().find(|t| t.name == topic) {
        Some(found) => Ok(found.partitions.iter().copied().collect()),
        None => Err(TableError::Stream {
            location: format!("kafka://{broker}/{topic}"),
            message: format!(
                "no topic `{topic}`; the broker has {}",
                if topics.is_empty() { "no topics".to_string() } else { topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ") }
            ),
        }),
    }
}

pub(crate) fn kafka_error(broker: &str, topic: &str, error: impl std::fmt::Display) -> TableError {
    TableError::Stream { location: format!("kafka://{broker}/{topic}"), message: error.to_string() }
}

/// One partition of a Kafka topic: each record's value is one record of the stream (NDJSON or
/// CSV), its Kafka offset the stream offset.
pub(crate) struct KafkaPartition {
    spec: StreamSpec,
    client: Arc<Client>,
    broker: String,
    topic: String,
    /// The Kafka partition number.
    partition: i32,
    /// The stream partition number (its index among the topic's partitions).
    index: usize,
}

impl KafkaPartition {
    pub(crate) fn new(spec: StreamSpec, client: Arc<Client>, broker: String, topic: String, partition: i32, index: usize) -> Self {
        KafkaPartition { spec, client, broker, topic, partition, index }
    }
}

impl std::fmt::Debug for KafkaPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaPartition({}/{}#{})", self.broker, self.topic, self.partition)
    }
}

struct KafkaState {
    client: Option<PartitionClient>,
    next: Option<i64>,
    counter: LineCounter,
}

impl PartitionStream for KafkaPartition {
    fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let spec = self.spec.clone();
        let state = decoder(&spec, self.index).map(|decoder| KafkaState { client: None, next: None, counter: LineCounter::new(decoder) });
        let (client, broker, topic, partition, start) = (self.client.clone(), self.broker.clone(), self.topic.clone(), self.partition, spec.kafka_start);
        batch_stream(spec.schema.clone(), Some(state), move |state| {
            let (client, broker, topic) = (client.clone(), broker.clone(), topic.clone());
            async move {
                let Some(state) = state else { return Ok(None) };
                let mut state = state?;
                let fail = |e: rskafka::client::error::Error| kafka_error(&broker, &topic, format!("partition {partition}: {e}"));
                if state.client.is_none() {
                    state.client = Some(client.partition_client(topic.clone(), partition, UnknownTopicHandling::Error).await.map_err(fail)?);
                }
                let Some(partition_client) = state.client.as_ref() else { return Ok(None) };
                let mut offset = match state.next {
                    Some(offset) => offset,
                    // Tansu (the test broker) answers "latest" wrongly after batched produces; an
                    // explicit offset is always right.
                    None => match start {
                        KafkaStart::Earliest => partition_client.get_offset(OffsetAt::Earliest).await.map_err(fail)?,
                        KafkaStart::Latest => partition_client.get_offset(OffsetAt::Latest).await.map_err(fail)?,
                        KafkaStart::Offset(offset) => offset,
                    },
                };
                loop {
                    let (records, _high_watermark) = partition_client.fetch_records(offset, 1..FETCH_BYTES, FETCH_WAIT_MS).await.map_err(fail)?;
                    let records: Vec<_> = records.into_iter().filter(|r| r.offset >= offset).collect();
                    let Some(last) = records.last() else {
                        tokio::time::sleep(EMPTY_PAUSE).await;
                        continue;
                    };
                    offset = last.offset + 1;
                    let values: Vec<&[u8]> = records.iter().map(|r| r.record.value.as_deref().unwrap_or_default()).collect();
                    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
                    if let Some(batch) = state.counter.decoder.decode(&values, &offsets)? {
                        state.next = Some(offset);
                        return Ok(Some((batch, Some(Ok(state)))));
                    }
                }
            }
        })
    }
}
