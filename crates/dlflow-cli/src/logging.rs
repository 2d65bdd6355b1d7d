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
/// No environment variable is changed (undefined behaviour once threads run): the flag is
/// this process's, and the processes dlflow starts get the level through `Command::env`
/// ([`dlflow_common::tf_logs::child_env`](dlflow::layers::dlflow_common::tf_logs::child_env)). TensorFlow in
/// this process logs only while it loads, inside a filter that hides those lines.
pub fn configure_tensorflow_logs(tf_log: bool) {
    if tf_log {
        dlflow::layers::dlflow_common::tf_logs::show_tf_logs();
    }
}
