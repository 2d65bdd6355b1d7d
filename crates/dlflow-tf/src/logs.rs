//! TensorFlow's own log lines, hidden in this process while TensorFlow loads and a SavedModel
//! is read ([`quietly`]): the process's stderr passes through
//! [`is_tensorflow_noise`](dlflow_common::tf_logs::is_tensorflow_noise) for that time.
//! TensorFlow writes most of these lines before it reads `TF_CPP_MIN_LOG_LEVEL`, so that
//! variable cannot hide them. The rules and the switches (`--tf-log`, `DLFLOW_TF_LOG=1`) are in
//! [`dlflow_common::tf_logs`], re-exported here.

use std::cell::Cell;
use std::sync::Mutex;

pub use dlflow_common::tf_logs::*;

/// Only one thread redirects stderr at a time.
static REDIRECT: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread is inside [`quietly`] already (loading TensorFlow inside loading a model).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` with TensorFlow's log lines filtered out of this process's stderr (everything
/// else written to stderr meanwhile is passed through). Does nothing special when
/// [`tf_logs_wanted`], or if stderr cannot be redirected.
///
/// ```
/// let answer = dlflow_tf::logs::quietly(|| 42);
/// assert_eq!(answer, 42);
/// ```
pub fn quietly<T>(work: impl FnOnce() -> T) -> T {
    if tf_logs_wanted() || INSIDE.with(Cell::get) {
        return work();
    }
    let _one_at_a_time = REDIRECT.lock().unwrap_or_else(|e| e.into_inner());
    INSIDE.with(|inside| inside.set(true));
    let filter = redirect::StderrFilter::install();
    let result = work();
    drop(filter);
    INSIDE.with(|inside| inside.set(false));
    result
}

#[cfg(unix)]
mod redirect {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::raw::c_int;
    use std::sync::mpsc;
    use std::time::Duration;

    const STDERR: c_int = 2;
    /// How long closing the filter waits for the lines still in the pipe to be forwarded.
    const DRAIN: Duration = Duration::from_millis(500);

    // The C library's descriptor calls; std links it anyway, so no binding crate is needed.
    unsafe extern "C" {
        fn pipe(fds: *mut c_int) -> c_int;
        fn dup2(from: c_int, to: c_int) -> c_int;
    }

    /// A pipe's (read, write) ends, both close-on-exec (std's duplicates are), so that a child
    /// process started meanwhile does not inherit them.
    fn new_pipe() -> Option<(File, OwnedFd)> {
        let mut fds: [c_int; 2] = [-1, -1];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: both descriptors are fresh and owned from here on (closed when dropped).
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Some((File::from(read.try_clone().ok()?), write.try_clone().ok()?))
    }

    /// Stderr pointed at a pipe whose reader forwards every line that is not TensorFlow
    /// noise to the real stderr; dropping it points stderr back.
    pub(super) struct StderrFilter {
        saved: OwnedFd,
        drained: mpsc::Receiver<()>,
    }

    impl StderrFilter {
        pub(super) fn install() -> Option<StderrFilter> {
            let saved = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
            let mut out = File::from(saved.try_clone().ok()?);
            let (reader, writer) = new_pipe()?;
            let (drained_in, drained) = mpsc::channel();
            std::thread::Builder::new()
                .name("dlflow-tf-log-filter".into())
                .spawn(move || {
                    let mut lines = BufReader::new(reader);
                    let mut line = Vec::new();
                    while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                        if !super::is_tensorflow_noise(&String::from_utf8_lossy(&line)) {
                            let _ = out.write_all(&line);
                        }
                        line.clear();
                    }
                    let _ = drained_in.send(());
                })
                .ok()?;
            let _ = std::io::stderr().flush();
            // SAFETY: both descriptors are open; dup2 replaces fd 2 atomically. `writer` is
            // dropped at the end of this function, leaving fd 2 the pipe's only writer here.
            if unsafe { dup2(writer.as_raw_fd(), STDERR) } < 0 {
                return None;
            }
            Some(StderrFilter { saved, drained })
        }
    }

    impl Drop for StderrFilter {
        fn drop(&mut self) {
            let _ = std::io::stderr().flush();
            // SAFETY: `saved` is open; restoring fd 2 closes this process's last writer of the
            // pipe, so the forwarder reaches its end once it has read everything.
            unsafe { dup2(self.saved.as_raw_fd(), STDERR) };
            // Bounded: a child process started meanwhile inherited fd 2 and may hold the pipe
            // open; its lines are still forwarded (and filtered) until it exits.
            let _ = self.drained.recv_timeout(DRAIN);
        }
    }
}

#[cfg(not(unix))]
mod redirect {
    pub(super) struct StderrFilter;

    impl StderrFilter {
        pub(super) fn install() -> Option<StderrFilter> {
            None
        }
    }
}

