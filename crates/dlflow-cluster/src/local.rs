//! [`LocalNodes`]: the nodes one dlflow process hosts: started here, fed from here, stopped
//! from here. Process 0's [`Cluster`](crate::Cluster) holds its own; every other process of a
//! job holds one per attempt, on process 0's word.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{NodeType, TfClusterConfig};
use crate::coordinator::JobIo;
use crate::error::{ClusterError, NodeName, Result};
use crate::feed::NodeFeed;
use crate::node::{Launch, NodeProcess, describe_status};
use crate::{protocol, python};

/// Which process hosts which node, and where each process is.
///
/// Worker `k` and parameter server `k` run on process `k % processes` (the engine feeds
/// worker `k` from the same process, see `dlflow_engine::Placement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Processes in the job.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// Each process's host (its hostfile line without the port): where its nodes' TF servers
    /// and its listeners are.
    pub hosts: Vec<String>,
}

impl Layout {
    /// A job of one process, on the loopback interface.
    pub fn single() -> Layout {
        Layout { processes: 1, process: 0, hosts: vec!["127.0.0.1".into()] }
    }

    /// The process that hosts `node`.
    pub fn process_of(&self, node: NodeName) -> usize {
        node.index % self.processes.max(1)
    }

    /// This process's host.
    pub fn host(&self) -> &str {
        self.hosts.get(self.process).map_or("127.0.0.1", String::as_str)
    }

    /// Every node of `config`, workers first.
    pub fn names(config: &TfClusterConfig) -> Vec<NodeName> {
        (0..config.workers)
            .map(|index| NodeName { node_type: NodeType::Worker, index })
            .chain((0..config.ps).map(|index| NodeName { node_type: NodeType::Ps, index }))
            .collect()
    }
}

/// What the nodes of one attempt need to find the coordinator: process 0 makes it and sends
/// it to the other processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLaunch {
    /// The attempt (0 on the first run).
    pub attempt: u32,
    /// The attempt's token: a node must show it to register.
    pub token: String,
    /// `host:port` of the coordinator on process 0.
    pub coordinator: String,
}

/// A node of this process that ended: its name, exit status in words, last output lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExit {
    /// The node.
    pub node: NodeName,
    /// `exit code 1`, `killed by signal 9 (SIGKILL)`.
    pub status: String,
    /// What it printed last.
    pub output_tail: String,
}

impl NodeExit {
    /// Whether a signal ended it (a kill, a crash) rather than its own exit.
    pub fn killed(&self) -> bool {
        // The words come from `node::describe_status`.
        self.status.starts_with("killed by signal")
    }
}

struct LocalFeed {
    name: NodeName,
    feed: NodeFeed,
    closed: Arc<AtomicBool>,
}

/// The nodes this process hosts for one attempt. Dropping it kills them and removes their
/// temp folder.
pub struct LocalNodes {
    processes: Vec<NodeProcess>,
    reported: Vec<bool>,
    feed_listener: TcpListener,
    feeds: Vec<LocalFeed>,
    wants_feeds: Vec<NodeName>,
    token: String,
    // Dropped after the processes (field order): nothing may write into it once it is gone.
    temp_dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNodes").field("nodes", &self.processes.iter().map(|p| p.name).collect::<Vec<_>>()).finish()
    }
}

impl LocalNodes {
    /// Starts the nodes of `config` that `layout` puts on this process.
    pub fn start(config: &TfClusterConfig, io: &JobIo, layout: &Layout, launch: &NodeLaunch) -> Result<LocalNodes> {
        let python = python::interpreter(&config.python)?;
        let package_root = python::package_root()?;
        let host = layout.host().to_string();
        let feed_listener = TcpListener::bind((host.as_str(), 0))
            .map_err(|source| ClusterError::Io { context: format!("opening the feed socket on {host}"), source })?;
        let feed = feed_listener
            .local_addr()
            .map_err(|source| ClusterError::Io { context: "reading the feed socket's address".into(), source })?
            .to_string();
        let temp_dir = match &io.temp_in {
            Some(dir) => std::fs::create_dir_all(dir).and_then(|()| tempfile::Builder::new().prefix("tmp-").tempdir_in(dir)),
            None => tempfile::Builder::new().prefix("dlflow-job-").tempdir(),
        }
        .map_err(|source| ClusterError::Io { context: "creating the nodes' temp folder".into(), source })?;
        let mine: Vec<NodeName> =
            Layout::names(config).into_iter().filter(|n| layout.process_of(*n) == layout.process).collect();
        let spawn = Launch {
            python: &python,
            package_root: &package_root,
            coordinator: &launch.coordinator,
            feed: &feed,
            host: &host,
            temp_dir: temp_dir.path(),
            token: &launch.token,
            config,
        };
        let mut processes = Vec::with_capacity(mine.len());
        for name in &mine {
            processes.push(NodeProcess::spawn(*name, &spawn)?);
        }
        let wants_feeds = if io.input_schema.is_some() {
            mine.iter().copied().filter(|n| n.node_type == NodeType::Worker).collect()
        } else {
            Vec::new()
        };
        Ok(LocalNodes {
            reported: vec![false; processes.len()],
            processes,
            feed_listener,
            feeds: Vec::new(),
            wants_feeds,
            token: launch.token.clone(),
            temp_dir,
        })
    }

    /// The nodes and their process ids.
    pub fn pids(&self) -> Vec<(NodeName, u32)> {
        self.processes.iter().map(|p| (p.name, p.child.id())).collect()
    }

    /// The nodes' temp folder (`TMPDIR`).
    pub fn temp_dir(&self) -> &std::path::Path {
        self.temp_dir.path()
    }

    /// Waits until every local worker has opened its feed (each does, once it has its spec).
    ///
    /// Fails when a node exits first (the exit is returned in the error), on `stop`, or after
    /// `timeout`.
    pub fn accept_feeds(&mut self, timeout: Duration, stop: &AtomicBool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.feed_listener.set_nonblocking(true).map_err(feed_io)?;
        while self.feeds.len() < self.wants_feeds.len() {
            if stop.load(Ordering::SeqCst) {
                return Err(ClusterError::Cancelled);
            }
            if let Some(exit) = self.exited_without_feed() {
                return Err(ClusterError::NodeExited {
                    node: exit.node,
                    status: format!("before it opened its feed, {}", exit.status),
                    output_tail: exit.output_tail,
                });
            }
            if Instant::now() > deadline {
                let missing: Vec<String> = self
                    .wants_feeds
                    .iter()
                    .filter(|n| !self.feeds.iter().any(|f| f.name == **n))
                    .map(ToString::to_string)
                    .collect();
                return Err(ClusterError::Register(format!(
                    "{} did not open its feed within {:.0} s",
                    missing.join(", "),
                    timeout.as_secs_f64()
                )));
            }
            match self.feed_listener.accept() {
                Ok((stream, _)) => {
                    if let Some(name) = feed_hello(&stream, &self.token).filter(|n| self.wants_feeds.contains(n))
                        && !self.feeds.iter().any(|f| f.name == name) {
                            let (feed, closed) = NodeFeed::start(name, stream);
                            self.feeds.push(LocalFeed { name, feed, closed });
                        }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => return Err(ClusterError::Io { context: "accepting a node's feed".into(), source }),
            }
        }
        Ok(())
    }

    /// A worker that ended without opening its feed (one that opened it and then ended, even
    /// at once, is the coordinator's to judge). Its exit stays to be reported by `poll_exits`.
    fn exited_without_feed(&mut self) -> Option<NodeExit> {
        let LocalNodes { processes, feeds, wants_feeds, feed_listener, token, .. } = self;
        for process in processes.iter_mut().filter(|p| wants_feeds.contains(&p.name)) {
            if feeds.iter().any(|f| f.name == process.name) {
                continue;
            }
            if let Some(status) = process.poll_exit() {
                // Its feed may wait in the listener's queue: take what is there first.
                while let Ok((stream, _)) = feed_listener.accept() {
                    if let Some(name) = feed_hello(&stream, token).filter(|n| wants_feeds.contains(n))
                        && !feeds.iter().any(|f| f.name == name) {
                            let (feed, closed) = NodeFeed::start(name, stream);
                            feeds.push(LocalFeed { name, feed, closed });
                        }
                }
                if !feeds.iter().any(|f| f.name == process.name) {
                    return Some(NodeExit { node: process.name, status: describe_status(status), output_tail: process.output.text() });
                }
            }
        }
        None
    }

    /// The feeds into this process's workers, by worker index (`None`: another process's
    /// worker), for `workers` workers.
    pub fn feeds(&self, workers: usize) -> Vec<Option<NodeFeed>> {
        (0..workers)
            .map(|index| {
                let name = NodeName { node_type: NodeType::Worker, index };
                self.feeds.iter().find(|f| f.name == name).map(|f| f.feed.clone())
            })
            .collect()
    }

    /// Stops sending rows to `node` (it finished).
    pub fn close_feed(&self, node: NodeName) {
        for feed in self.feeds.iter().filter(|f| f.name == node) {
            feed.closed.store(true, Ordering::SeqCst);
        }
    }

    /// The nodes that ended since the last call.
    pub fn poll_exits(&mut self) -> Vec<NodeExit> {
        let mut exits = Vec::new();
        for (process, reported) in self.processes.iter_mut().zip(self.reported.iter_mut()) {
            if *reported {
                continue;
            }
            if let Some(status) = process.poll_exit() {
                *reported = true;
                exits.push(NodeExit { node: process.name, status: describe_status(status), output_tail: process.output.text() });
            }
        }
        exits
    }

    /// Kills `node` if it runs here (a finished node that does not exit).
    pub fn kill(&mut self, node: NodeName) {
        for process in self.processes.iter_mut().filter(|p| p.name == node) {
            process.kill();
        }
    }

    /// Closes every feed and kills every node (and its children).
    pub fn kill_all(&mut self) {
        for feed in &self.feeds {
            feed.closed.store(true, Ordering::SeqCst);
        }
        for process in &mut self.processes {
            process.kill();
        }
    }

    /// The last lines `node` printed, if it runs here.
    pub fn output_tail(&self, node: NodeName) -> Option<String> {
        self.processes.iter().find(|p| p.name == node).map(|p| p.output.text())
    }
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Reads a feed's FEED_HELLO; a wrong token or an unknown node is dropped.
fn feed_hello(stream: &std::net::TcpStream, token: &str) -> Option<NodeName> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.set_nodelay(true).ok()?;
    let frame = protocol::read_frame(&mut &*stream).ok()??;
    if frame.kind != protocol::FEED_HELLO {
        return None;
    }
    let body: Value = serde_json::from_slice(&frame.payload).ok()?;
    if body["token"].as_str()? != token {
        return None;
    }
    let name = crate::coordinator::node_name(&body)?;
    stream.set_read_timeout(None).ok()?;
    Some(name)
}

fn feed_io(source: std::io::Error) -> ClusterError {
    ClusterError::Io { context: "the feed socket".into(), source }
}
