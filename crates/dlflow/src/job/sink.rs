//! A cluster [`NodeFeed`] as the engine's [`WorkerSink`].

use arrow::array::RecordBatch;
use dlflow_cluster::NodeFeed;
use dlflow_engine::{SinkClosed, WorkerSink};

pub(crate) struct FeedSink(pub NodeFeed);

impl WorkerSink for FeedSink {
    fn send(&self, batch: RecordBatch) -> Result<(), SinkClosed> {
        self.0.send_batch(batch).map_err(|_| SinkClosed)
    }

    fn end_epoch(&self, epoch: u64, rows: u64, dropped: u64) -> Result<(), SinkClosed> {
        self.0.end_epoch(epoch, rows, dropped).map_err(|_| SinkClosed)
    }

    fn end_input(&self) -> Result<(), SinkClosed> {
        self.0.end_input().map_err(|_| SinkClosed)
    }

    fn backlog(&self) -> usize {
        self.0.backlog()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}
