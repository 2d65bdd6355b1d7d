//! Errors of the ML cluster: each names the node and says what happened.

use crate::config::NodeType;

/// Result with [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// What went wrong in a cluster of nodes.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration cannot work.
    #[error("cluster config: {0}")]
    Config(String),
    /// No Python to run the nodes with, or the dlflow package could not be put in place.
    #[error("python: {0}")]
    Python(String),
    /// A node process could not be started.
    #[error("could not start {node}: {source}")]
    Spawn {
        /// The node.
        node: NodeName,
        /// Why.
        source: std::io::Error,
    },
    /// Nodes did not register in time.
    #[error("{0}")]
    Register(String),
    /// A node's entry raised: its Python traceback follows.
    #[error("{node} failed: {error}\n{traceback}")]
    NodeFailed {
        /// The node.
        node: NodeName,
        /// The exception, `Type: message`.
        error: String,
        /// The Python traceback.
        traceback: String,
        /// Whether a restart may get past it: not when the entry could not be loaded or
        /// raised `dlflow.JobError` (a mistake in the job that a restart would meet again).
        retryable: bool,
    },
    /// A node process ended without reporting (killed, crashed, exited).
    #[error("{node} exited unexpectedly ({status}){}", tail_text(.output_tail))]
    NodeExited {
        /// The node.
        node: NodeName,
        /// Exit code or signal.
        status: String,
        /// The last lines the node printed.
        output_tail: String,
    },
    /// A node stopped sending heartbeats: it is frozen, stopped or starved.
    #[error("{node} is unresponsive: no heartbeat for {seconds:.1} s (limit {limit:.1} s); it was killed")]
    NodeUnresponsive {
        /// The node.
        node: NodeName,
        /// Seconds since the last heartbeat.
        seconds: f64,
        /// The configured limit.
        limit: f64,
    },
    /// A worker took no rows for too long while rows waited for it: its main thread is stuck.
    #[error("{node} is frozen: it took no rows for {seconds:.1} s while rows waited for it (limit {limit:.1} s); it was killed. Its Python stack:\n{stack}")]
    NodeFrozen {
        /// The node.
        node: NodeName,
        /// Seconds since it last took a batch or sent a notice.
        seconds: f64,
        /// The configured limit.
        limit: f64,
        /// Its threads' Python stacks (`faulthandler`).
        stack: String,
    },
    /// Another process of the job went away or failed.
    #[error("process {process} of the job {reason}")]
    ProcessLost {
        /// Its index.
        process: usize,
        /// What happened ("went away: connection closed").
        reason: String,
    },
    /// A node sent something the protocol does not allow.
    #[error("{node}: {message}")]
    Protocol {
        /// The node.
        node: NodeName,
        /// What was wrong.
        message: String,
    },
    /// The job was cancelled (Ctrl-C, dropped future).
    #[error("cancelled")]
    Cancelled,
    /// Local I/O (sockets, the Python package cache).
    #[error("{context}: {source}")]
    Io {
        /// What dlflow was doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn tail_text(tail: &str) -> String {
    if tail.trim().is_empty() { String::new() } else { format!("; its last output:\n{tail}") }
}

/// A node's name in messages: `worker 1`, `ps 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct NodeName {
    /// Worker or ps.
    pub node_type: NodeType,
    /// Index among the nodes of its type.
    pub index: usize,
}

impl ClusterError {
    /// Whether restarting the cluster from its checkpoints may get past this error: a node
    /// that raised, died, hung or froze, or a process that went away; not a bad config, an
    /// entry that does not load or raised `dlflow.JobError`, a missing Python, or a cancel.
    pub fn is_node_failure(&self) -> bool {
        matches!(
            self,
            ClusterError::NodeFailed { retryable: true, .. }
                | ClusterError::NodeExited { .. }
                | ClusterError::NodeUnresponsive { .. }
                | ClusterError::NodeFrozen { .. }
                | ClusterError::ProcessLost { .. }
        )
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.node_type, self.index)
    }
}
