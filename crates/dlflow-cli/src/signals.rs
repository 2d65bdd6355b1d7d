//! Ctrl-C and SIGTERM, handled by dlflow itself.
//!
//! A batch job (files, generated tables) is cancelled at once: its future is dropped, which
//! removes the temporary output file, and dlflow exits with 130. A stream ends gracefully on the
//! first signal: its sources stop reading and every record already read still goes through the
//! model and out to the sink; a second signal cancels at once.

use std::sync::atomic::{AtomicBool, Ordering};

use dlflow::layers::dlflow_table::stream;
use tokio::signal::unix::{signal, SignalKind};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a signal asked dlflow to stop (the exit code is then 130).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Completes when the running command must be cancelled: at the first Ctrl-C or SIGTERM when
/// no stream is being read, at the second otherwise (the first one stops the streams).
pub async fn cancelled() {
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handling the default (the process ends) still applies.
        return std::future::pending().await;
    };
    let mut next = async move || {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    next().await;
    INTERRUPTED.store(true, Ordering::SeqCst);
    if stream::open_sources() == 0 {
        return;
    }
    eprintln!("stopping: the records already read are being finished (Ctrl-C again to stop at once)");
    stream::request_stop();
    next().await;
    let (read, written) = (stream::records_read(), crate::progress::rows_written());
    eprintln!("stopped at once: {read} records read, {written} rows written; records still in flight were not written");
}
