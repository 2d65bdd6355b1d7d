//! Cutting a stream of record batches into micro-batches bounded by rows and by delay.
//!
//! A model call has a fixed cost (tens of microseconds) plus a cost per row, so on a busy
//! stream rows should go to the model many at a time; but a record that arrives alone must not
//! wait for company. [`MicroBatcher`] does both: it gathers whatever its input has ready, up to
//! [`MicroBatching::max_rows`], and sends the batch when it is full or when its first record has
//! waited [`MicroBatching::max_delay`], whichever comes first (with a delay of 0, as soon as the
//! input has nothing more ready). When the model is slower than the source,
//! records pile up in the input meanwhile and the next batch is simply larger: back-pressure,
//! not an unbounded queue, because the batcher only reads when it is asked for a batch.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::options::MicroBatching;

/// A stream of micro-batches over `input`; see the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use arrow::array::{Int64Array, RecordBatch};
/// use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
/// use futures::StreamExt;
/// use dlflow_table::micro_batch::MicroBatcher;
/// use dlflow_table::options::MicroBatching;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let batch = |n: i64| RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap();
/// let schema = batch(1).schema();
/// let input = futures::stream::iter([batch(3), batch(4), batch(5)].map(Ok));
/// let input = Box::pin(RecordBatchStreamAdapter::new(schema, input));
/// let batching = MicroBatching::default().max_rows(8).max_delay(Duration::from_millis(10));
/// let sizes: Vec<usize> = MicroBatcher::new(input, batching).map(|b| b.unwrap().num_rows()).collect().await;
/// assert_eq!(sizes, vec![8, 4]); // everything was ready: full batches, then the rest at the end
/// # }
/// ```
pub struct MicroBatcher {
    input: SendableRecordBatchStream,
    batching: MicroBatching,
    schema: SchemaRef,
    /// Rows waiting for their batch, oldest first.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// When the oldest pending record must leave.
    deadline: Option<Pin<Box<Sleep>>>,
    /// When the oldest pending record arrived.
    oldest: Option<std::time::Instant>,
    /// The arrival of each batch's oldest record, in the order the batches left.
    arrivals: Arrivals,
    input_done: bool,
}

/// The arrival time of each micro-batch's oldest record, in the order the batches leave the
/// [`MicroBatcher`]: what a consumer pops as it takes each batch, to measure latency.
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<Mutex<VecDeque<std::time::Instant>>>);

impl Arrivals {
    /// The arrival of the next batch's oldest record.
    pub fn pop(&self) -> Option<std::time::Instant> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    fn push(&self, arrived: std::time::Instant) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push_back(arrived);
    }
}

impl MicroBatcher {
    /// Micro-batches of `input`, bounded by `batching`.
    pub fn new(input: SendableRecordBatchStream, batching: MicroBatching) -> MicroBatcher {
        let schema = input.schema();
        MicroBatcher { input, batching, schema, pending: Vec::new(), pending_rows: 0, deadline: None, oldest: None, arrivals: Arrivals::default(), input_done: false }
    }

    /// Where the arrival of each batch's oldest record goes (see [`Arrivals`]).
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.clone()
    }

    /// Takes up to `max_rows` pending rows as one batch.
    fn take_batch(&mut self) -> Result<RecordBatch> {
        let max = self.batching.max_rows.max(1);
        let mut taken = Vec::new();
        let mut rows = 0;
        while rows < max {
            let Some(first) = self.pending.first_mut() else { break };
            let want = max - rows;
            if first.num_rows() <= want {
                rows += first.num_rows();
                taken.push(self.pending.remove(0));
            } else {
                taken.push(first.slice(0, want));
                *first = first.slice(want, first.num_rows() - want);
                rows += want;
            }
        }
        self.pending_rows -= rows;
        // The rows left (if any) arrived later than the ones taken but are already due by the
        // same deadline at the latest, so the deadline stays while anything is pending.
        if let Some(oldest) = self.oldest {
            self.arrivals.push(oldest);
        }
        if self.pending.is_empty() {
            self.deadline = None;
            self.oldest = None;
        }
        Ok(match taken.len() {
            1 => taken.remove(0),
            _ => concat_batches(&self.schema, &taken)?,
        })
    }

    fn due(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.deadline {
            None => true,
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
        }
    }
}

impl Stream for MicroBatcher {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.pending_rows >= self.batching.max_rows.max(1) {
                return Poll::Ready(Some(self.take_batch()));
            }
            if self.input_done {
                return Poll::Ready(if self.pending_rows > 0 { Some(self.take_batch()) } else { None });
            }
            match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    if self.pending.is_empty() {
                        self.oldest = Some(std::time::Instant::now());
                        if !self.batching.max_delay.is_zero() {
                            self.deadline = Some(Box::pin(tokio::time::sleep_until(Instant::now() + self.batching.max_delay)));
                        }
                    }
                    self.pending_rows += batch.num_rows();
                    self.pending.push(batch);
                }
                // An error ends the stream; rows still pending are reported as not written by
                // whoever counts rows (the sink's summary), not silently dropped.
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => {
                    if self.pending_rows > 0 && self.due(cx) {
                        return Poll::Ready(Some(self.take_batch()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl RecordBatchStream for MicroBatcher {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
