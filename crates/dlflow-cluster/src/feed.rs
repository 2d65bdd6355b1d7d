//! [`NodeFeed`]: the engine's way into one node, with a backlog count for flow control.

use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use arrow::array::RecordBatch;

use crate::error::NodeName;
use crate::protocol;

/// What the engine sends a node.
pub(crate) enum Outgoing {
    Replay { start_epoch: u64, restore: Option<serde_json::Value> },
    Batch(RecordBatch),
    EpochEnd { epoch: u64, rows: u64, dropped: u64 },
    InputEnd,
}

/// The node behind a feed has gone (finished, failed or stopped); its rows have nowhere to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} no longer takes rows")]
pub struct FeedClosed(pub NodeName);

/// Rows into one worker node. Cheap to clone; sending never blocks.
///
/// Flow control is the caller's: [`backlog`](Self::backlog) counts batches queued for the
/// node and not yet written to its socket. The socket itself stops taking bytes when the
/// node's bounded inbox is full, so a slow trainer shows up here as a growing backlog.
#[derive(Clone)]
pub struct NodeFeed {
    name: NodeName,
    outbox: mpsc::Sender<Outgoing>,
    backlog: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for NodeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeFeed").field("name", &self.name).field("backlog", &self.backlog()).finish()
    }
}

impl NodeFeed {
    /// Starts the writer thread for `stream` and returns the feed into it.
    pub(crate) fn start(name: NodeName, stream: TcpStream) -> (NodeFeed, Arc<AtomicBool>) {
        let (outbox, inbox) = mpsc::channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let feed = NodeFeed { name, outbox, backlog: backlog.clone(), written: written.clone(), closed: closed.clone() };
        std::thread::Builder::new()
            .name(format!("dlflow-feed-{name}"))
            .spawn({
                let closed = closed.clone();
                move || write_loop(stream, inbox, &backlog, &written, &closed)
            })
            .map(drop)
            .unwrap_or_else(|_| closed.store(true, Ordering::SeqCst));
        (feed, closed)
    }

    /// The node this feed goes to.
    pub fn node(&self) -> NodeName {
        self.name
    }

    /// Tells the node where its input starts (the first frame of every feed): epoch
    /// `start_epoch`, after a restart from a checkpoint (0 otherwise), and which of its
    /// checkpoints to restore (`None`: none).
    pub fn start_at(&self, start_epoch: u64, restore: Option<serde_json::Value>) -> Result<(), FeedClosed> {
        self.send(Outgoing::Replay { start_epoch, restore }, false)
    }

    /// Queues a batch for the node.
    pub fn send_batch(&self, batch: RecordBatch) -> Result<(), FeedClosed> {
        self.send(Outgoing::Batch(batch), true)
    }

    /// Tells the node that epoch `epoch` has no more rows for it: `rows` were sent, `dropped`
    /// were held back to keep the workers' shares equal.
    pub fn end_epoch(&self, epoch: u64, rows: u64, dropped: u64) -> Result<(), FeedClosed> {
        self.send(Outgoing::EpochEnd { epoch, rows, dropped }, false)
    }

    /// Tells the node that no more epochs come.
    pub fn end_input(&self) -> Result<(), FeedClosed> {
        self.send(Outgoing::InputEnd, false)
    }

    /// Batches queued and not yet written to the node's socket.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::SeqCst)
    }

    /// Batches written to the node's socket so far.
    pub fn batches_written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether the node has gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn send(&self, message: Outgoing, counts: bool) -> Result<(), FeedClosed> {
        if self.is_closed() {
            return Err(FeedClosed(self.name));
        }
        if counts {
            self.backlog.fetch_add(1, Ordering::SeqCst);
        }
        self.outbox.send(message).map_err(|_| FeedClosed(self.name))
    }
}

fn write_loop(
    stream: TcpStream,
    inbox: mpsc::Receiver<Outgoing>,
    backlog: &AtomicUsize,
    written_batches: &AtomicUsize,
    closed: &AtomicBool,
) {
    let mut out = BufWriter::with_capacity(1 << 20, stream);
    let mut written = || -> std::io::Result<()> {
        while let Ok(message) = inbox.recv() {
            if closed.load(Ordering::SeqCst) {
                break;
            }
            match message {
                Outgoing::Replay { start_epoch, restore } => {
                    let body = serde_json::json!({"start_epoch": start_epoch, "restore": restore});
                    protocol::write_frame(&mut out, protocol::REPLAY, body.to_string().as_bytes())?;
                }
                Outgoing::Batch(batch) => {
                    let payload = protocol::encode_batch(&batch).map_err(std::io::Error::other)?;
                    protocol::write_frame(&mut out, protocol::BATCH, &payload)?;
                    backlog.fetch_sub(1, Ordering::SeqCst);
                    written_batches.fetch_add(1, Ordering::SeqCst);
                }
                Outgoing::EpochEnd { epoch, rows, dropped } => {
                    let body = serde_json::json!({"epoch": epoch, "rows": rows, "dropped": dropped});
                    protocol::write_frame(&mut out, protocol::EPOCH_END, body.to_string().as_bytes())?;
                }
                Outgoing::InputEnd => protocol::write_frame(&mut out, protocol::INPUT_END, &[])?,
            }
            // One write per frame: the node waits for whole frames, and batches are large.
            out.flush()?;
        }
        out.flush()
    };
    if written().is_err() {
        closed.store(true, Ordering::SeqCst);
    }
}
