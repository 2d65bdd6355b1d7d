//! [`Pattern::run`]: a pattern over a table or a stream, in event-time order.
//!
//! Records arrive out of order (by up to the watermark's declared delay), but a pattern is about
//! order. So events wait in a buffer sorted by event time, and are fed to the [`Matcher`] only
//! when the watermark passes them: then nothing earlier can still come. Between two events the
//! matcher's clock is advanced to the next event's time, and after the last one to the
//! watermark, so partial matches time out in event time, in order with the matches. Events
//! older than a watermark already passed are late: dropped and counted.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlanProperties;
use dlflow_table::window::{Watermarks, WATERMARK_DELAY_KEY, WATERMARK_IDLE_KEY};
use futures::stream::{BoxStream, Stream, StreamExt};

use super::{Matcher, Pattern, PatternEvent, Row};
use crate::error::{Error, Result};
use crate::table::Table;

/// How often idle partitions are looked at when no record comes.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// What a pattern run reports, as event time passes: a stream of [`PatternEvent`]s (see
/// [`Pattern::run`]), plus the count of late events dropped.
pub struct PatternStream<K, E> {
    events: BoxStream<'static, Result<PatternEvent<K, E>>>,
    late: Arc<AtomicU64>,
}

impl<K, E> PatternStream<K, E> {
    /// Events dropped so far because they came after the watermark had passed their time.
    pub fn late_events(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }
}

impl<K, E> Stream for PatternStream<K, E> {
    type Item = Result<PatternEvent<K, E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

impl<E: Clone + Send + 'static> Pattern<E> {
    /// Runs the pattern over `table`: each record becomes a `(key, event)` through `to_event`
    /// (typed getters on a [`Row`]), at the event time in TIMESTAMP column `time`. Matches and
    /// timeouts come out as event time passes them: on a stream, as the watermark declared on
    /// `time` moves on (the largest event time seen minus the delay, per source partition, the
    /// minimum over partitions); when the input ends, event time runs to its end, so every
    /// partial match left times out. Records out of order by less than the delay match as if in
    /// order; later ones are dropped and counted ([`PatternStream::late_events`]).
    ///
    /// A stream must declare its watermark (`OPTIONS ('watermark.column' 'ts', 'watermark.delay'
    /// '2s')`); a bounded table without one is ordered as a whole at its end.
    ///
    /// ```no_run
    /// # async fn demo(env: dlflow::Environment) -> dlflow::Result<()> {
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use dlflow::pattern::{Pattern, PatternEvent};
    ///
    /// let labelled = env
    ///     .sql("CREATE UNBOUNDED EXTERNAL TABLE seen (id BIGINT, door VARCHAR, ts TIMESTAMP, label BIGINT)
    ///           STORED AS JSON LOCATION 'tcp://127.0.0.1:9000'
    ///           OPTIONS ('watermark.column' 'ts', 'watermark.delay' '5s');
    ///           SELECT * FROM seen")
    ///     .await?;
    /// let pattern = Pattern::begin("three", |(_, d): &(i64, i64)| *d == 3)
    ///     .followed_by("one", |(_, d)| *d == 1)
    ///     .followed_by("four", |(_, d)| *d == 4)
    ///     .within(Duration::from_secs(60));
    /// let mut decisions = pattern.run(&labelled, "ts", |row| Ok((row.string("door")?, (row.i64("id")?, row.i64("label")?)))).await?;
    /// while let Some(decision) = decisions.next().await {
    ///     match decision? {
    ///         PatternEvent::Matched { key, .. } => println!("GRANTED {key}"),
    ///         PatternEvent::TimedOut { key, .. } => println!("DENIED {key}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run<K, F>(&self, table: &Table, time: &str, to_event: F) -> Result<PatternStream<K, E>>
    where
        K: Eq + Hash + Clone + Send + 'static,
        F: Fn(&Row<'_>) -> Result<(K, E)> + Send + 'static,
    {
        let declared = declared_watermark(&table.schema(), time)?;
        let df = table.dataframe().clone();
        let context = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        if declared.is_none() && plan.boundedness().is_unbounded() {
            return Err(Error::Invalid(format!(
                "a pattern over a stream needs a watermark on `{time}` to put events in order and time out partial matches: \
                 declare OPTIONS ('watermark.column' '{time}', 'watermark.delay' '2s') on the stream table"
            )));
        }
        let partitions = plan.output_partitioning().partition_count();
        let mut sources = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let batches = plan.execute(partition, context.clone())?;
            sources.push(batches.map(move |batch| Delivery::Batch(partition, batch)).chain(futures::stream::once(async move { Delivery::End(partition) })).boxed());
        }
        let (delay, idle) = declared.unwrap_or((0, Duration::from_secs(3600)));
        let late = Arc::new(AtomicU64::new(0));
        let run = Run {
            deliveries: futures::stream::select_all(sources).boxed(),
            watermarks: Watermarks::new(partitions, delay, idle),
            follows_watermark: declared.is_some(),
            time_column: time.to_string(),
            to_event,
            buffer: BTreeMap::new(),
            arrivals: 0,
            released_to: i64::MIN,
            matcher: self.matcher(),
            ready: VecDeque::new(),
            late: late.clone(),
            finished: false,
        };
        let events = futures::stream::unfold(Some(run), |run| async move {
            let mut run = run?;
            match run.next().await {
                Ok(Some(event)) => Some((Ok(event), Some(run))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        });
        Ok(PatternStream { events: events.boxed(), late })
    }
}

/// The watermark delay and idle timeout declared on event-time column `time`, after checking
/// that the column is a TIMESTAMP.
fn declared_watermark(schema: &Schema, time: &str) -> Result<Option<(i64, Duration)>> {
    let field = schema.field_with_name(time).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::Invalid(format!("pattern: no event-time column `{time}`; the columns are {}", names.join(", ")))
    })?;
    if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
        return Err(Error::Invalid(format!("pattern: the event-time column `{time}` is {}; expected a TIMESTAMP", field.data_type())));
    }
    let number = |key: &str| field.metadata().get(key).and_then(|v| v.parse::<i64>().ok());
    Ok(number(WATERMARK_DELAY_KEY).map(|delay| {
        let idle = number(WATERMARK_IDLE_KEY).unwrap_or(5_000_000_000).max(0);
        (delay, Duration::from_nanos(idle as u64))
    }))
}

/// What one input partition delivers.
enum Delivery {
    Batch(usize, std::result::Result<RecordBatch, DataFusionError>),
    End(usize),
}

/// A running pattern: partitions in, watermark, event-time buffer, matcher, events out.
struct Run<K, E, F> {
    deliveries: BoxStream<'static, Delivery>,
    watermarks: Watermarks,
    /// Whether a watermark was declared (else events wait for the end of the input).
    follows_watermark: bool,
    time_column: String,
    to_event: F,
    /// Events waiting for the watermark, by (event time in ns, arrival).
    buffer: BTreeMap<(i64, u64), (K, E)>,
    arrivals: u64,
    /// Events before this time have been fed to the matcher; later arrivals before it are late.
    released_to: i64,
    matcher: Matcher<K, E>,
    ready: VecDeque<PatternEvent<K, E>>,
    late: Arc<AtomicU64>,
    finished: bool,
}

impl<K, E, F> Run<K, E, F>
where
    K: Eq + Hash + Clone,
    E: Clone,
    F: Fn(&Row<'_>) -> Result<(K, E)>,
{
    /// The next match or timeout; `None` once the input has ended and everything is out.
    async fn next(&mut self) -> Result<Option<PatternEvent<K, E>>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            if self.watermarks.all_ended() {
                self.release(i64::MAX);
                self.finished = true;
                continue;
            }
            tokio::select! {
                delivery = self.deliveries.next() => match delivery {
                    Some(Delivery::Batch(partition, batch)) => self.take(partition, &batch?)?,
                    Some(Delivery::End(partition)) => self.watermarks.end(partition),
                    None => self.finished = true,
                },
                () = tokio::time::sleep(IDLE_CHECK) => {}
            }
            if self.finished {
                self.release(i64::MAX);
            } else if let (true, Some(watermark)) = (self.follows_watermark, self.watermarks.current()) {
                self.release(watermark);
            }
        }
    }

    /// Buffers a batch's events (or counts them late) and moves its partition's watermark.
    fn take(&mut self, partition: usize, batch: &RecordBatch) -> Result<()> {
        let mut max_time = None;
        for index in 0..batch.num_rows() {
            let row = Row::new(batch, index);
            let time = i64::try_from(row.time(&self.time_column)?.as_nanos()).unwrap_or(i64::MAX);
            max_time = max_time.max(Some(time));
            if time < self.released_to {
                self.late.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let keyed = (self.to_event)(&row)?;
            self.buffer.insert((time, self.arrivals), keyed);
            self.arrivals += 1;
        }
        match max_time {
            Some(time) => self.watermarks.observe(partition, time),
            None => self.watermarks.touch(partition),
        }
        Ok(())
    }

    /// Feeds every buffered event before `watermark` to the matcher in event-time order, the
    /// matcher's clock advanced to each event first and to the watermark last.
    fn release(&mut self, watermark: i64) {
        if watermark <= self.released_to {
            return;
        }
        let later = self.buffer.split_off(&(watermark, 0));
        for ((time, _), (key, event)) in std::mem::replace(&mut self.buffer, later) {
            let time = nanos(time);
            self.ready.extend(self.matcher.advance_to(time));
            self.ready.extend(self.matcher.on_event(key, time, event));
        }
        self.ready.extend(self.matcher.advance_to(nanos(watermark)));
        self.released_to = watermark;
    }
}

/// Nanoseconds since the epoch as a duration (before the epoch: zero; `i64::MAX`: forever).
fn nanos(time: i64) -> Duration {
    match time {
        i64::MAX => Duration::MAX,
        t => Duration::from_nanos(t.max(0) as u64),
    }
}
