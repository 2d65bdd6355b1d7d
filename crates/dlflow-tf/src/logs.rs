//! TensorFlow's own log lines: hidden unless asked for.
//!
//! Loading TensorFlow on a CPU machine prints a dozen lines to stderr that are not about the
//! user's job ("oneDNN custom operations are on", "Could not find cuda drivers on your machine",
//! "failed call to cuInit: INTERNAL: CUDA error", ...); a new user reads "CUDA error" as a
//! failure. TensorFlow writes most of them before it reads `TF_CPP_MIN_LOG_LEVEL`, so that
//! variable cannot hide them. dlflow filters them instead:
//!
//! - from node processes, line by line as it forwards their output ([`is_tensorflow_noise`]);
//! - in-process, while TensorFlow loads and a SavedModel is read ([`quietly`]), by passing the
//!   process's stderr through the same filter for that time.
//!
//! `DLFLOW_TF_LOG=1` (the command line's `--tf-log`) turns the filtering off.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set to `1` to see TensorFlow's own log lines (the command line's `--tf-log`).
pub const TF_LOG_ENV: &str = "DLFLOW_TF_LOG";

/// TensorFlow's level variable, read by TensorFlow in this process and in the nodes.
pub const TF_LEVEL_ENV: &str = "TF_CPP_MIN_LOG_LEVEL";

/// Set by [`show_tf_logs`]: a flag of this process, not an environment variable, because
/// changing the environment while other threads may read it is undefined behaviour.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Shows TensorFlow's own log lines from now on, in this process and the processes it starts
/// (the command line's `--tf-log`), as `DLFLOW_TF_LOG=1` does.
///
/// ```
/// dlflow_tf::logs::show_tf_logs();
/// assert!(dlflow_tf::logs::tf_logs_wanted());
/// assert!(std::env::var_os(dlflow_tf::logs::TF_LOG_ENV).is_none(), "the environment is left alone");
/// ```
pub fn show_tf_logs() {
    SHOWN.store(true, Ordering::SeqCst);
}

/// Whether the user asked for TensorFlow's own log lines (`--tf-log`, `DLFLOW_TF_LOG=1`).
pub fn tf_logs_wanted() -> bool {
    SHOWN.load(Ordering::SeqCst)
        || std::env::var(TF_LOG_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// The environment a process dlflow starts gets for TensorFlow's logs, to pass with
/// `Command::envs`: `DLFLOW_TF_LOG=1` when the logs are wanted, and TensorFlow's level when
/// the user set none (all lines when wanted, else errors only).
///
/// ```
/// let env = dlflow_tf::logs::child_env();
/// assert!(env.iter().all(|(name, _)| [dlflow_tf::logs::TF_LOG_ENV, dlflow_tf::logs::TF_LEVEL_ENV].contains(name)));
/// ```
pub fn child_env() -> Vec<(&'static str, &'static str)> {
    let wanted = tf_logs_wanted();
    let mut env = Vec::new();
    if wanted {
        env.push((TF_LOG_ENV, "1"));
    }
    if std::env::var_os(TF_LEVEL_ENV).is_none() {
        env.push((TF_LEVEL_ENV, if wanted { "0" } else { "2" }));
    }
    env
}

/// Whether `line` is one of TensorFlow's own log lines that dlflow hides by default:
/// abseil's preamble, TensorFlow's INFO and WARNING lines (`I0000 00:00:... file.cc:12] ...`),
/// and the errors TensorFlow logs while looking for a GPU that a CPU machine does not have.
/// Errors about the job itself (and everything that is not a TensorFlow log line) are kept.
///
/// ```
/// use dlflow_tf::logs::is_tensorflow_noise;
/// assert!(is_tensorflow_noise("I0000 00:00:1796174152.360326   11912 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used."));
/// assert!(is_tensorflow_noise("E0000 00:00:1796174154.842644   11912 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"));
/// assert!(!is_tensorflow_noise("E0000 00:00:1796174154.842644   11912 collective_ops.cc:12] Collective ops is aborted"));
/// assert!(!is_tensorflow_noise("epoch 1/4: 2560 rows per worker"));
/// ```
pub fn is_tensorflow_noise(line: &str) -> bool {
    let line = line.trim_end();
    if line == "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
        // The second line of cpu_feature_guard.cc's INFO message.
        || (line.starts_with("To enable the following instructions:") && line.ends_with("rebuild TensorFlow with the appropriate compiler flags."))
    {
        return true;
    }
    match absl_line(line) {
        Some(('I' | 'W', _, _)) => true,
        Some(('E', file, message)) => file.starts_with("cuda_") || message.contains("cuInit") || message.contains("TensorRT"),
        _ => false,
    }
}

/// Severity, source file and message of an abseil log line:
/// `I0000 00:00:1796174152.360048   11912 port.cc:153] message`.
fn absl_line(line: &str) -> Option<(char, &str, &str)> {
    let mut chars = line.chars();
    let severity = chars.next().filter(|c| matches!(c, 'I' | 'W' | 'E' | 'F'))?;
    let rest = chars.as_str();
    let (date, rest) = rest.split_once(' ')?;
    if date.len() != 4 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (time, rest) = rest.split_once(' ')?;
    if !time.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'.') || !time.contains(':') {
        return None;
    }
    let rest = rest.trim_start();
    let (thread, rest) = rest.split_once(' ')?;
    if !thread.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (location, message) = rest.split_once("] ").or_else(|| rest.strip_suffix(']').map(|l| (l, "")))?;
    let (file, line_number) = location.rsplit_once(':')?;
    if !line_number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((severity, file.rsplit('/').next().unwrap_or(file), message))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorflow_start_up_lines_are_noise_and_other_lines_are_not() {
        let noise = [
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
            "I0000 00:00:1796174152.360048   11912 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.",
            "I0000 00:00:1796174152.360326   11912 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
            "E0000 00:00:1796174154.842644   11912 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
            "W0000 00:00:1796174154.842644   11912 external/local_tsl/tsl/platform/cloud/google_auth_provider.cc:184] some warning",
            "E0000 00:00:1733000000.000000   42 external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:8310] Unable to register cuDNN factory",
            "I0000 00:00:1796174984.859823   26285 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.",
            "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.",
        ];
        for line in noise {
            assert!(is_tensorflow_noise(line), "{line}");
        }
        let kept = [
            "E0000 00:00:1796174154.842644   11912 collective_ops_utils.cc:12] Collective ops is aborted by: ...",
            "F0000 00:00:1796174154.842644   11912 check.cc:1] Check failed",
            "Traceback (most recent call last):",
            "ValueError: bad input",
            "I am a line a user printed",
            "Epoch 1/4",
            "",
        ];
        for line in kept {
            assert!(!is_tensorflow_noise(line), "{line}");
        }
    }
}
