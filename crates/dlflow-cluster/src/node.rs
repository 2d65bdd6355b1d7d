//! One node process: how it is started, and what it printed (kept for error messages).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use crate::config::{OutputHandler, TfClusterConfig};
use crate::error::{ClusterError, NodeName, Result};

/// How many of a node's last output lines an error message shows.
const TAIL_LINES: usize = 40;

/// The last lines a node printed on stdout and stderr.
#[derive(Debug, Clone, Default)]
pub struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, joined.
    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

/// What every node of a job shares in its environment.
pub(crate) struct Launch<'a> {
    pub python: &'a Path,
    pub package_root: &'a Path,
    /// `host:port` of the coordinator (on process 0).
    pub coordinator: &'a str,
    /// `host:port` of this process's feed listener.
    pub feed: &'a str,
    /// This process's host: where the nodes' TF servers listen.
    pub host: &'a str,
    /// The job's temp folder for the nodes (`TMPDIR`), removed when the nodes are gone.
    pub temp_dir: &'a Path,
    pub token: &'a str,
    pub config: &'a TfClusterConfig,
}

/// A started node process.
pub(crate) struct NodeProcess {
    pub name: NodeName,
    pub child: Child,
    pub output: OutputTail,
    pub status: Option<ExitStatus>,
    group_killed: bool,
    /// One message per output pipe when it reaches its end.
    output_done: std::sync::mpsc::Receiver<()>,
}

impl NodeProcess {
    /// Starts `python -m dlflow._node` for `name`.
    ///
    /// The node gets its own process group, so a terminal's Ctrl-C reaches dlflow, which then
    /// stops the nodes in order, instead of every node dying with a KeyboardInterrupt traceback.
    pub fn spawn(name: NodeName, launch: &Launch<'_>) -> Result<NodeProcess> {
        let config = launch.config;
        let mut python_path = vec![launch.package_root.to_path_buf()];
        if let Some(dir) = config.entry.file.parent() {
            python_path.push(dir.to_path_buf());
        }
        python_path.extend(config.python_path.iter().cloned());
        if let Some(existing) = std::env::var_os("PYTHONPATH") {
            python_path.extend(std::env::split_paths(&existing));
        }
        let python_path = std::env::join_paths(python_path)
            .map_err(|e| ClusterError::Config(format!("a python_path entry cannot be on PYTHONPATH: {e}")))?;

        let mut command = Command::new(launch.python);
        let tf_logs = dlflow_common::tf_logs::tf_logs_wanted();
        if !tf_logs {
            // TensorFlow's INFO and WARNING lines after start-up; those before it are filtered
            // from the output below (TensorFlow prints them before it reads this variable).
            command.env(dlflow_common::tf_logs::TF_LEVEL_ENV, "2");
        }
        command
            // `--tf-log` is a flag of this process: the node's own processes see it here.
            .envs(dlflow_common::tf_logs::child_env().into_iter().filter(|(name, _)| *name == dlflow_common::tf_logs::TF_LOG_ENV))
            .args(["-u", "-m", "dlflow._node"])
            .env("PYTHONPATH", python_path)
            // Keras 2: Keras 3 cannot fit under MultiWorkerMirroredStrategy (decision 0004).
            .env("TF_USE_LEGACY_KERAS", "1")
            .env("DLFLOW_COORDINATOR", launch.coordinator)
            .env("DLFLOW_FEED", launch.feed)
            .env("DLFLOW_NODE_HOST", launch.host)
            // TensorFlow's autograph and every tempfile of the entry land here, removed with the job.
            .env("TMPDIR", launch.temp_dir)
            .env("DLFLOW_TOKEN", launch.token)
            .env("DLFLOW_NODE_TYPE", name.node_type.as_str())
            .env("DLFLOW_NODE_INDEX", name.index.to_string())
            .env("DLFLOW_ENTRY_FILE", &config.entry.file)
            .env("DLFLOW_ENTRY_FUNC", &config.entry.function)
            .env("DLFLOW_HEARTBEAT_MS", heartbeat_period_ms(config).to_string())
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ClusterError::Python(format!(
                "{} not found: run scripts/setup.sh, or set the cluster's python",
                launch.python.display()
            )),
            _ => ClusterError::Spawn { node: name, source },
        })?;
        let output = OutputTail::default();
        let sink = match (&config.on_output, config.quiet) {
            (_, true) => None,
            (Some(handler), false) => Some(handler.clone()),
            (None, false) => Some(Arc::new(move |name: NodeName, line: &str| eprintln!("[{name}] {line}")) as OutputHandler),
        };
        let (done, output_done) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, name, output.clone(), sink.clone(), tf_logs, done.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, name, output.clone(), sink, tf_logs, done);
        }
        tracing::info!(node = %name, pid = child.id(), python = %launch.python.display(), "started a node");
        Ok(NodeProcess { name, child, output, status: None, group_killed: false, output_done })
    }

    /// The exit status, if the process has ended (reaped once, remembered).
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if let Some(status) = self.status {
                tracing::info!(node = %self.name, status = %describe_status(status), "node exited");
                // Its last lines may still be in the pipes: they are what an error shows.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
                for _ in 0..2 {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if self.output_done.recv_timeout(left).is_err() {
                        break;
                    }
                }
            }
        }
        self.status
    }

    /// Kills the node's whole process group (the node and whatever it started) and reaps
    /// the node: no orphan, no zombie.
    pub fn kill(&mut self) {
        if !self.group_killed {
            self.group_killed = true;
            kill_group(self.child.id());
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            tracing::info!(node = %self.name, "stopped a node");
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to process group `group` (a node is the leader of its own group).
fn kill_group(group: u32) {
    let Ok(group) = i32::try_from(group) else { return };
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// Heartbeats come three times per timeout period, so one late beat is not a failure.
fn heartbeat_period_ms(config: &TfClusterConfig) -> u128 {
    (config.timeouts.heartbeat.as_millis() / 3).clamp(50, 1000)
}

/// Copies a node's output lines to `sink` (none when quiet) and keeps the last ones.
/// TensorFlow's own log lines are left out unless `tf_logs` (see `dlflow_common::tf_logs`).
fn forward(
    stream: impl Read + Send + 'static,
    name: NodeName,
    tail: OutputTail,
    sink: Option<OutputHandler>,
    tf_logs: bool,
    done: std::sync::mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !tf_logs && dlflow_common::tf_logs::is_tensorflow_noise(&line) {
                continue;
            }
            if let Some(sink) = &sink {
                sink(name, &line);
            }
            tail.push(line);
        }
        let _ = done.send(());
    });
}

/// Exit status in words: `exit code 1`, `killed by signal 9 (SIGKILL)`.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(9)) => "killed by signal 9 (SIGKILL)".into(),
        (None, Some(15)) => "killed by signal 15 (SIGTERM)".into(),
        (None, Some(11)) => "killed by signal 11 (SIGSEGV)".into(),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".into(),
    }
}
