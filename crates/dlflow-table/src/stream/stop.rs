//! Stopping streams gracefully: sources end as if their input had ended, so every record
//! already read still goes through the pipeline and is written out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::array::RecordBatch;
use std::sync::LazyLock;

use tokio::sync::Notify;

static STOP: AtomicBool = AtomicBool::new(false);
static STOPPED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Ask every stream source of this process to end after the records it has read (Ctrl-C in
/// the CLI). Sources notice at once, also while waiting for input.
///
/// ```
/// assert!(!dlflow_table::stream::stop_requested());
/// ```
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
    STOPPED.notify_waiters();
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Completes when a stop is requested (at once if it already was).
pub(crate) async fn stopped() {
    let notified = STOPPED.notified();
    if stop_requested() {
        return;
    }
    notified.await;
}

/// `stream` as a stream source: counted in [`open_sources`](super::open_sources) while it
/// lives, and ended (between two items, never in the middle of one) when a stop is requested.
pub(crate) fn until_stopped<S, E>(stream: S) -> impl futures::Stream<Item = Result<RecordBatch, E>> + Send
where
    S: futures::Stream<Item = Result<RecordBatch, E>> + Send + Unpin + 'static,
    E: Send,
{
    use futures::StreamExt;
    let open = super::partition::OpenSource::new();
    futures::stream::unfold(Some((stream, open)), |state| async move {
        let (mut stream, open) = state?;
        tokio::select! {
            biased;
            item = stream.next() => item.map(|item| {
                if let Ok(batch) = &item {
                    RECORDS_READ.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                }
                (item, Some((stream, open)))
            }),
            () = stopped() => None,
        }
    })
}

static RECORDS_READ: AtomicU64 = AtomicU64::new(0);

/// Records stream sources of this process have read so far: with the rows a sink wrote, what
/// tells how many were not written when a job is stopped at once.
pub fn records_read() -> u64 {
    RECORDS_READ.load(Ordering::Relaxed)
}
