//! TensorFlow's own log lines: which ones dlflow hides by default, and the switches that show
//! them (`--tf-log`, `DLFLOW_TF_LOG=1`).
//!
//! Loading TensorFlow on a CPU machine prints a dozen lines to stderr that are not about the
//! user's job ("oneDNN custom operations are on", "Could not find cuda drivers on your machine",
//! "failed call to cuInit: INTERNAL: CUDA error", ...); a new user reads "CUDA error" as a
//! failure. The node launcher filters node output with [`is_tensorflow_noise`]; `dlflow-tf`
//! filters the process's own stderr with it while TensorFlow loads.

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
/// dlflow_common::tf_logs::show_tf_logs();
/// assert!(dlflow_common::tf_logs::tf_logs_wanted());
/// assert!(std::env::var_os(dlflow_common::tf_logs::TF_LOG_ENV).is_none(), "the environment is left alone");
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
/// let env = dlflow_common::tf_logs::child_env();
/// assert!(env.iter().all(|(name, _)| [dlflow_common::tf_logs::TF_LOG_ENV, dlflow_common::tf_logs::TF_LEVEL_ENV].contains(name)));
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
/// use dlflow_common::tf_logs::is_tensorflow_noise;
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
