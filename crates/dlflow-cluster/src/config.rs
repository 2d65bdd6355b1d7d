//! [`TfClusterConfig`]: how many nodes of each type, what they run, with which Python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ClusterError, Result};

/// The kind of a node in a TensorFlow cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum NodeType {
    /// Trains (or infers) on its share of the rows. Worker 0 is the chief.
    Worker,
    /// Holds variables for `ParameterServerStrategy`; stopped once the workers finish.
    Ps,
}

impl NodeType {
    /// The name TensorFlow uses in `TF_CONFIG`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Worker => "worker",
            NodeType::Ps => "ps",
        }
    }
}

impl std::fmt::Display for NodeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Python entry every node calls: `function(context)` in `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The Python file that defines the function.
    pub file: PathBuf,
    /// The function's name, for example `train_entry`.
    pub function: String,
}

/// Which Python runs the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Python {
    /// dlflow's own virtualenv (`scripts/setup.sh` makes it), else `$VIRTUAL_ENV`, else `python3`.
    Default,
    /// A Python executable.
    Executable(PathBuf),
    /// A virtualenv directory (its `bin/python`).
    Venv(PathBuf),
}

/// Time limits that turn a stuck cluster into an error instead of a silent wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From start until every node has registered (Python start-up, not TensorFlow's import).
    pub register: Duration,
    /// A node that sends no heartbeat for this long is unresponsive (stopped, frozen, swapped out).
    pub heartbeat: Duration,
    /// How long a node may take to exit after it reported its entry's end, before it is killed.
    pub exit_grace: Duration,
    /// A worker that takes no batch and sends no notice for this long while rows wait for it
    /// is frozen (its main thread is stuck; its heartbeat thread may still beat): it fails,
    /// with its Python stack in the error.
    pub progress: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            register: Duration::from_secs(60),
            heartbeat: Duration::from_secs(30),
            exit_grace: Duration::from_secs(10),
            progress: Duration::from_secs(300),
        }
    }
}

/// How often the nodes' dlflow checkpoint helper saves (`TFContext.checkpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// Every this many training steps.
    Steps(u64),
    /// At the end of every this many epochs.
    Epochs(u64),
}

impl CheckpointEvery {
    /// Parses `"100 steps"`, `"1 epoch"`, `"2 epochs"` (a bare number is steps).
    ///
    /// ```
    /// use dlflow_cluster::CheckpointEvery;
    /// assert_eq!(CheckpointEvery::parse("50 steps"), Ok(CheckpointEvery::Steps(50)));
    /// assert_eq!(CheckpointEvery::parse("1 epoch"), Ok(CheckpointEvery::Epochs(1)));
    /// assert!(CheckpointEvery::parse("often").is_err());
    /// ```
    pub fn parse(text: &str) -> std::result::Result<CheckpointEvery, String> {
        let text = text.trim();
        let (number, unit) = text.split_once(char::is_whitespace).map_or((text, "steps"), |(n, u)| (n, u.trim()));
        let bad = || format!("checkpoint_every `{text}`: expected a positive number of steps or epochs, like \"100 steps\" or \"1 epoch\"");
        let n: u64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        match unit {
            "step" | "steps" => Ok(CheckpointEvery::Steps(n)),
            "epoch" | "epochs" => Ok(CheckpointEvery::Epochs(n)),
            _ => Err(bad()),
        }
    }
}

impl Default for CheckpointEvery {
    fn default() -> Self {
        CheckpointEvery::Epochs(1)
    }
}

/// What happens when a node fails: how often the whole cluster restarts, how long it waits
/// first, and how often the nodes checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Restarts before a failure ends the job (default 3; 0: the first failure ends it).
    pub max_failures: u32,
    /// Wait before the first restart; it doubles with each further one (default 1 s).
    pub backoff: Duration,
    /// How often the nodes' checkpoint helper saves (default every epoch).
    pub checkpoint_every: CheckpointEvery,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery { max_failures: 3, backoff: Duration::from_secs(1), checkpoint_every: CheckpointEvery::default() }
    }
}

/// What a cluster of TensorFlow nodes looks like and runs: DL on Flink's `TFClusterConfig`.
///
/// ```
/// use dlflow_cluster::TfClusterConfig;
/// # let dir = tempfile::tempdir()?;
/// # let train_py = dir.path().join("train.py");
/// # std::fs::write(&train_py, "def train_entry(context): pass")?;
///
/// let config = TfClusterConfig::builder()
///     .worker_count(2)
///     .ps_count(1)
///     .node_entry(&train_py, "train_entry")
///     .property("model_dir", "/tmp/linear")
///     .build()?;
/// assert_eq!(config.worker_count(), 2);
/// assert_eq!(config.property("model_dir"), Some("/tmp/linear"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TfClusterConfig {
    pub(crate) workers: usize,
    pub(crate) ps: usize,
    pub(crate) entry: NodeEntry,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) python: Python,
    pub(crate) python_path: Vec<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeouts: Timeouts,
    pub(crate) recovery: Recovery,
    pub(crate) quiet: bool,
    pub(crate) on_output: Option<OutputHandler>,
}

/// Receives every line a node prints (instead of stderr), for example to print it above a
/// progress bar.
pub type OutputHandler = Arc<dyn Fn(crate::NodeName, &str) + Send + Sync>;

impl std::fmt::Debug for TfClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfClusterConfig")
            .field("workers", &self.workers)
            .field("ps", &self.ps)
            .field("entry", &self.entry)
            .field("properties", &self.properties)
            .field("python", &self.python)
            .finish_non_exhaustive()
    }
}

impl TfClusterConfig {
    /// Starts a builder: one worker, no parameter server, dlflow's Python.
    pub fn builder() -> TfClusterConfigBuilder {
        TfClusterConfigBuilder::default()
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers
    }

    /// Number of parameter servers.
    pub fn ps_count(&self) -> usize {
        self.ps
    }

    /// The entry every node calls.
    pub fn entry(&self) -> &NodeEntry {
        &self.entry
    }

    /// A property, as set with [`TfClusterConfigBuilder::property`].
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// All properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The time limits.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// What happens when a node fails.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Where the nodes' output lines go (`None`: stderr, unless quiet).
    pub fn output_handler(&self) -> Option<OutputHandler> {
        if self.quiet { None } else { self.on_output.clone() }
    }

    /// Whether the nodes' output is kept out of stderr.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A copy whose nodes' output lines go to `handler` instead of stderr.
    pub fn with_output_handler(mut self, handler: OutputHandler) -> Self {
        self.on_output = Some(handler);
        self
    }

    /// A copy with one more property (how the layers above pass settings to the nodes).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }
}

/// Builds a [`TfClusterConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone, Default)]
pub struct TfClusterConfigBuilder {
    workers: Option<usize>,
    ps: usize,
    entry: Option<NodeEntry>,
    properties: BTreeMap<String, String>,
    python: Option<Python>,
    python_path: Vec<PathBuf>,
    env: Vec<(String, String)>,
    timeouts: Timeouts,
    recovery: Recovery,
    quiet: bool,
}

impl TfClusterConfigBuilder {
    /// Number of workers (default 1). DL on Flink's `setWorkerCount` / `setWorldSize`.
    pub fn worker_count(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Number of parameter servers (default 0).
    pub fn ps_count(mut self, ps: usize) -> Self {
        self.ps = ps;
        self
    }

    /// The Python file and function every node calls with its context.
    pub fn node_entry(mut self, file: impl Into<PathBuf>, function: impl Into<String>) -> Self {
        self.entry = Some(NodeEntry { file: file.into(), function: function.into() });
        self
    }

    /// A property the nodes read with `TFContext.get_property(key)`.
    ///
    /// `input_types` and `output_types` (comma-separated `FLOAT_32`, `INT_64`, ...) are checked
    /// against the input table and the output schema before any node starts.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The Python that runs the nodes (default: dlflow's virtualenv).
    pub fn python(mut self, python: Python) -> Self {
        self.python = Some(python);
        self
    }

    /// A file or folder the nodes find on their `PYTHONPATH` (the entry's folder always is).
    pub fn python_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.python_path.push(path.into());
        self
    }

    /// An environment variable for the nodes.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Time limits (defaults: register 60 s, heartbeat 30 s, exit grace 10 s).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// What happens when a node fails (default: 3 restarts, 1 s backoff, checkpoints every epoch).
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Restarts before a node's failure ends the job (default 3). DL on Flink restarts the
    /// whole cluster on a failure too, and hands the entry `get_attempt_index()`.
    pub fn max_failures(mut self, max_failures: u32) -> Self {
        self.recovery.max_failures = max_failures;
        self
    }

    /// How often the nodes' checkpoint helper (`TFContext.checkpoint`) saves.
    pub fn checkpoint_every(mut self, every: CheckpointEvery) -> Self {
        self.recovery.checkpoint_every = every;
        self
    }

    /// Do not copy the nodes' output to stderr (it is still kept for error messages).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Checks the configuration: at least one worker, an entry whose file exists.
    pub fn build(self) -> Result<TfClusterConfig> {
        let workers = self.workers.unwrap_or(1);
        if workers == 0 {
            return Err(ClusterError::Config("worker_count must be at least 1".into()));
        }
        let entry = self.entry.ok_or_else(|| {
            ClusterError::Config("no node entry: call node_entry(\"train.py\", \"train_entry\")".into())
        })?;
        if !entry.file.is_file() {
            return Err(ClusterError::Config(format!("the node entry file {} does not exist", entry.file.display())));
        }
        if entry.function.is_empty() || !entry.function.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ClusterError::Config(format!(
                "the node entry function '{}' is not a Python function name",
                entry.function
            )));
        }
        for path in &self.python_path {
            if !path.exists() {
                return Err(ClusterError::Config(format!("the python_path entry {} does not exist", path.display())));
            }
        }
        Ok(TfClusterConfig {
            workers,
            ps: self.ps,
            entry: NodeEntry { file: absolute(&entry.file), function: entry.function },
            properties: self.properties,
            python: self.python.unwrap_or(Python::Default),
            python_path: self.python_path.iter().map(|p| absolute(p)).collect(),
            env: self.env,
            timeouts: self.timeouts,
            recovery: self.recovery,
            quiet: self.quiet,
            on_output: None,
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let no_entry = TfClusterConfig::builder().build().expect_err("no entry");
        assert!(no_entry.to_string().contains("node_entry"), "{no_entry}");
        let missing = TfClusterConfig::builder().node_entry("/nonexistent/train.py", "f").build().expect_err("missing");
        assert!(missing.to_string().contains("/nonexistent/train.py"), "{missing}");
        let zero = TfClusterConfig::builder().worker_count(0).build().expect_err("zero");
        assert!(zero.to_string().contains("at least 1"), "{zero}");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let bad_name = TfClusterConfig::builder().node_entry(file.path(), "a-b").build().expect_err("name");
        assert!(bad_name.to_string().contains("'a-b'"), "{bad_name}");
    }
}
