//! What the command line prints besides its results: dlflow's `tracing` logs (`--log-level`,
//! `DLFLOW_LOG`) and TensorFlow's own log lines (hidden unless `--tf-log`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable read when `--log-level` is not given.
const LOG_ENV: &str = "DLFLOW_LOG";
/// What is logged when neither says: warnings and errors.
const DEFAULT_FILTER: &str = "warn";

/// Checks a `--log-level` value: a level or an `EnvFilter` directive list.
pub fn parse_filter(value: &str) -> Result<String, String> {
    EnvFilter::try_new(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("`{value}`: {e}; expected error, warn, info, debug, trace or a filter such as dlflow_cluster=debug"))
}

/// Starts the log output on stderr: `flag`, else `DLFLOW_LOG`, else warnings. Colours only on
/// a terminal.
pub fn init(flag: Option<&str>) {
    let from_env = std::env::var(LOG_ENV).ok().filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match (flag, from_env) {
        (Some(flag), _) => (EnvFilter::new(flag), None),
        (None, Some(text)) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("{LOG_ENV}=`{text}` is not a log filter ({e}); logging warnings only"))),
        },
        (None, None) => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(warning) = bad_env {
        tracing::warn!("{warning}");
    }
}

/// `--tf-log`: TensorFlow's lines are shown (dlflow stops filtering them, in this process and
/// in the nodes) and, unless the user chose a level, all of them. Without it, TensorFlow's
/// INFO and WARNING lines are turned off where TensorFlow reads its level.
///
/// Must run before any thread starts: it sets environment variables.
pub fn configure_tensorflow_logs(tf_log: bool) {
    let wanted = tf_log || dlflow::layers::dlflow_tf::logs::tf_logs_wanted();
    let level_unset = std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none();
    // SAFETY: called first thing in `main`, before the runtime or any other thread exists, so
    // nothing reads the environment concurrently.
    unsafe {
        if tf_log {
            std::env::set_var(dlflow::layers::dlflow_tf::logs::TF_LOG_ENV, "1");
        }
        if level_unset {
            std::env::set_var("TF_CPP_MIN_LOG_LEVEL", if wanted { "0" } else { "2" });
        }
    }
}
