//! The coordinator (on process 0): starts the nodes, registers them, hands out the cluster
//! spec, and watches them to the end.
//!
//! Finish and failure rules:
//! - the job succeeds when every worker has reported the end of its entry; parameter servers
//!   are then stopped (they serve until told otherwise);
//! - it fails, and every node is stopped, as soon as one node raises (its traceback is in the
//!   error), exits without reporting, misses heartbeats for longer than the limit, or takes
//!   no rows for longer than the progress limit while rows wait for it (frozen: its Python
//!   stack is in the error), or a process of the job goes away;
//! - every end (success, failure, cancel, drop) kills and reaps whatever still runs here.
//!
//! Every node has two connections: a control connection to the coordinator, wherever the
//! node runs, and a feed from the dlflow process that hosts it ([`LocalNodes`]), so rows
//! never cross hosts twice.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde_json::{Value, json};

use crate::config::{CheckpointEvery, NodeType, TfClusterConfig};
use crate::error::{ClusterError, NodeName, Result};
use crate::feed::NodeFeed;
use crate::local::{Layout, LocalNodes, NodeExit, NodeLaunch};
use crate::protocol;

/// How often the coordinator looks at processes, heartbeats and the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// How long a node's failure waits for news of a killed peer, its likely first cause.
const ROOT_CAUSE_GRACE: Duration = Duration::from_millis(500);
/// How long a frozen node has to send its stack before it is killed.
const STACK_WAIT: Duration = Duration::from_secs(3);

/// What the job gives the nodes besides the config.
#[derive(Debug, Clone, Default)]
pub struct JobIo {
    /// Schema of the rows the workers receive; `None`: a job without input.
    pub input_schema: Option<SchemaRef>,
    /// Schema of the rows the nodes write back; `None`: nothing comes back.
    pub output_schema: Option<SchemaRef>,
    /// Passes over a bounded input; `None` for unbounded input or no input.
    pub epochs: Option<u64>,
    /// How many times the job ran before (0 on the first run).
    pub attempt: u32,
    /// Where the nodes' checkpoint helper keeps checkpoints (one folder per worker under it).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Where the nodes' temp folder goes (default: the system's temp folder). In the job's
    /// state folder, a folder that a killed dlflow could not remove goes with the state.
    pub temp_in: Option<std::path::PathBuf>,
}

/// Something a node sent while the job ran.
#[derive(Debug)]
pub enum NodeEvent {
    /// Rows from the node's row writer.
    Batch(NodeName, RecordBatch),
    /// A notice: `{"event": "first_batch"}`, per-epoch metrics, ...
    Notice(NodeName, Value),
    /// Where a worker's restored checkpoint had trained to (`None`: no checkpoint, or the
    /// worker finished without reading its input); every worker sends one per attempt.
    Position(NodeName, Option<Value>),
}

/// Something the other processes of a job tell process 0 about their nodes.
#[derive(Debug, Clone)]
pub enum RemoteEvent {
    /// A node on another process ended.
    Exited(NodeExit),
    /// Another process went away or failed.
    Lost {
        /// Its index.
        process: usize,
        /// What happened.
        reason: String,
    },
}

/// When things happened, for reports and the startup benchmark.
#[derive(Debug, Clone, Default)]
pub struct ClusterReport {
    /// The nodes of this process, with their process ids.
    pub nodes: Vec<(NodeName, u32)>,
    /// From start until every node had registered.
    pub registered_after: Duration,
    /// From start until the first batch reached a worker's `tf.data` pipeline.
    pub first_batch_after: Option<Duration>,
    /// From start until the last worker finished.
    pub finished_after: Duration,
}

enum Event {
    Frame(usize, protocol::Frame),
    Closed(usize),
}

/// What a node's heartbeats say about its main thread.
#[derive(Default)]
struct Liveness {
    last_seen_ms: AtomicU64,
    /// Frames waiting in the node's inbox, as of its last heartbeat.
    pending: AtomicU64,
    /// Milliseconds since the node last took a batch or sent a notice, as of its last heartbeat.
    idle_ms: AtomicU64,
}

struct Node {
    name: NodeName,
    control: TcpStream,
    liveness: Arc<Liveness>,
    done_at: Option<Instant>,
    /// The node's connection has ended: every frame it sent has been handled.
    disconnected: bool,
    position_sent: bool,
    /// How it ended, if it ended (a local exit or another process's word).
    exit: Option<NodeExit>,
    /// Its Python stack, when it was asked for one.
    stack: Option<String>,
}

/// A running cluster of nodes, watched from process 0. Dropping it kills whatever still runs
/// on this process.
pub struct Cluster {
    nodes: Vec<Node>,
    local: LocalNodes,
    layout: Layout,
    events: mpsc::Receiver<Event>,
    remote: mpsc::Receiver<RemoteEvent>,
    started: Instant,
    config: TfClusterConfig,
    report: ClusterReport,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("nodes", &self.report.nodes).finish()
    }
}

impl Cluster {
    /// Starts a cluster in this one process: every node here.
    pub fn start(config: &TfClusterConfig, io: &JobIo, stop: &AtomicBool) -> Result<Cluster> {
        let (_no_remote, remote) = mpsc::channel();
        Cluster::start_on(config, io, stop, &Layout::single(), remote, |_| Ok(()))
    }

    /// Starts the nodes of this process (process 0 of `layout`), has `start_remote` start the
    /// others' (every other process gets the [`NodeLaunch`]), waits for all to register, and
    /// sends each its spec. `remote` brings what the other processes report.
    ///
    /// Fails (and stops what it started here) when a node exits or does not register within
    /// [`Timeouts::register`](crate::Timeouts::register), or when `stop` is set.
    pub fn start_on(
        config: &TfClusterConfig,
        io: &JobIo,
        stop: &AtomicBool,
        layout: &Layout,
        remote: mpsc::Receiver<RemoteEvent>,
        start_remote: impl FnOnce(&NodeLaunch) -> Result<()>,
    ) -> Result<Cluster> {
        let started = Instant::now();
        let host = layout.host().to_string();
        let listener = TcpListener::bind((host.as_str(), 0))
            .map_err(|source| ClusterError::Io { context: format!("opening the coordinator's socket on {host}"), source })?;
        let address = listener
            .local_addr()
            .map_err(|source| ClusterError::Io { context: "reading the coordinator's address".into(), source })?;
        let launch = NodeLaunch { attempt: io.attempt, token: random_token(), coordinator: address.to_string() };
        let mut local = LocalNodes::start(config, io, layout, &launch)?;
        start_remote(&launch)?;
        let names = Layout::names(config);
        let registered = register(&listener, &names, &mut local, &remote, &launch.token, config, stop)?;
        let registered_after = started.elapsed();
        tracing::info!(nodes = names.len(), seconds = registered_after.as_secs_f64(), "every node registered");

        let addresses = |node_type: NodeType| -> Vec<String> {
            names
                .iter()
                .zip(&registered)
                .filter(|(n, _)| n.node_type == node_type)
                .map(|(_, r)| format!("{}:{}", r.host, r.port))
                .collect()
        };
        let mut cluster_spec = json!({ "worker": addresses(NodeType::Worker) });
        if config.ps > 0 {
            cluster_spec["ps"] = json!(addresses(NodeType::Ps));
        }
        let input_schema = io.input_schema.as_deref().map(protocol::encode_schema).transpose().map_err(arrow_io)?;
        let output_schema = io.output_schema.as_deref().map(protocol::encode_schema).transpose().map_err(arrow_io)?;
        tracing::info!(cluster_spec = %cluster_spec, attempt = io.attempt, epochs = ?io.epochs, "handing out the cluster spec");
        let checkpoint_every = match config.recovery.checkpoint_every {
            CheckpointEvery::Steps(n) => json!({ "steps": n }),
            CheckpointEvery::Epochs(n) => json!({ "epochs": n }),
        };

        let (events_in, events) = mpsc::channel();
        let mut nodes = Vec::with_capacity(names.len());
        for (i, (name, node)) in names.iter().zip(registered).enumerate() {
            let spec = json!({
                "cluster": cluster_spec,
                "node_type": name.node_type.as_str(),
                "index": name.index,
                "properties": config.properties,
                "attempt": io.attempt,
                "epochs": io.epochs,
                "has_input": io.input_schema.is_some() && name.node_type == NodeType::Worker,
                "input_schema": input_schema.as_deref().map(hex),
                "has_output": output_schema.is_some(),
                "checkpoint_dir": io.checkpoint_dir.as_ref().map(|d| d.join(format!("{}-{}", name.node_type, name.index))),
                "checkpoint_every": checkpoint_every,
                "process": layout.process_of(*name),
            });
            let mut writer = node.stream.try_clone().map_err(socket_io)?;
            protocol::write_frame(&mut writer, protocol::SPEC, spec.to_string().as_bytes()).map_err(socket_io)?;
            if let Some(schema) = &output_schema {
                protocol::write_frame(&mut writer, protocol::OUTPUT_SCHEMA, schema).map_err(socket_io)?;
            }
            let liveness = Arc::new(Liveness { last_seen_ms: AtomicU64::new(millis_since(started)), ..Liveness::default() });
            read_frames(i, node.stream.try_clone().map_err(socket_io)?, events_in.clone(), liveness.clone(), started);
            nodes.push(Node {
                name: *name,
                control: node.stream,
                liveness,
                done_at: None,
                disconnected: false,
                position_sent: false,
                exit: None,
                stack: None,
            });
        }
        local.accept_feeds(config.timeouts.register, stop)?;
        let report = ClusterReport { nodes: local.pids(), registered_after, ..ClusterReport::default() };
        Ok(Cluster { nodes, local, layout: layout.clone(), events, remote, started, config: config.clone(), report })
    }

    /// The feeds into the workers, by index (empty for a job without input). Only for a job
    /// of one process; see [`local_feeds`](Self::local_feeds).
    pub fn feeds(&self) -> Vec<NodeFeed> {
        self.local.feeds(self.config.workers).into_iter().flatten().collect()
    }

    /// The feeds into this process's workers, one entry per worker of the job (`None`: fed
    /// by another process).
    pub fn local_feeds(&self) -> Vec<Option<NodeFeed>> {
        self.local.feeds(self.config.workers)
    }

    /// The nodes of this process and their process ids.
    pub fn processes(&self) -> &[(NodeName, u32)] {
        &self.report.nodes
    }

    /// The nodes' temp folder on this process (`TMPDIR`; removed with the cluster).
    pub fn temp_dir(&self) -> &std::path::Path {
        self.local.temp_dir()
    }

    /// Watches the nodes until the job ends (see the module docs for the rules).
    ///
    /// `on_event` gets every batch, notice and position; an `Err` from it fails the job,
    /// naming the node. Setting `stop` cancels the job.
    pub fn run(mut self, stop: &AtomicBool, mut on_event: impl FnMut(NodeEvent) -> Result<(), String>) -> Result<ClusterReport> {
        let outcome = self.watch(stop, &mut on_event).map_err(|error| self.root_cause(error));
        self.shutdown();
        outcome.map(|()| {
            self.report.finished_after = self.started.elapsed();
            self.report.clone()
        })
    }

    fn watch(&mut self, stop: &AtomicBool, on_event: &mut dyn FnMut(NodeEvent) -> Result<(), String>) -> Result<()> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(ClusterError::Cancelled);
            }
            match self.events.recv_timeout(TICK) {
                Ok(event) => self.handle(event, on_event)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            self.collect_exits()?;
            self.check_nodes(on_event)?;
            if self.nodes.iter().filter(|n| n.name.node_type == NodeType::Worker).all(|n| n.done_at.is_some()) {
                return Ok(());
            }
        }
    }

    /// Notes the nodes that have exited, here and on the other processes.
    fn collect_exits(&mut self) -> Result<()> {
        while let Ok(remote) = self.remote.try_recv() {
            match remote {
                RemoteEvent::Exited(exit) => self.note_exit(exit),
                RemoteEvent::Lost { process, reason } => return Err(ClusterError::ProcessLost { process, reason }),
            }
        }
        for exit in self.local.poll_exits() {
            self.note_exit(exit);
        }
        Ok(())
    }

    fn note_exit(&mut self, exit: NodeExit) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.name == exit.node) {
            node.exit = Some(exit);
        }
    }

    /// The first cause of a failure. When a node dies, its peers fail too (TensorFlow's
    /// collectives raise `UnavailableError` once a peer is gone), and their reports can
    /// arrive before the dead process is reaped. So a node that raised is named as the
    /// cause only if no other node was killed within [`ROOT_CAUSE_GRACE`].
    fn root_cause(&mut self, error: ClusterError) -> ClusterError {
        let ClusterError::NodeFailed { node: failed, .. } = &error else { return error };
        let failed = *failed;
        let deadline = Instant::now() + ROOT_CAUSE_GRACE;
        loop {
            if let Err(lost) = self.collect_exits() {
                return lost;
            }
            let killed = self
                .nodes
                .iter()
                .filter(|n| n.name != failed && n.done_at.is_none())
                .find_map(|n| n.exit.clone().filter(NodeExit::killed));
            if let Some(exit) = killed {
                tracing::warn!(node = %failed, cause = %exit.node, "a node failed after another was killed");
                return ClusterError::NodeExited { node: exit.node, status: self.on_process(exit.node, exit.status), output_tail: exit.output_tail };
            }
            if Instant::now() >= deadline {
                return error;
            }
            std::thread::sleep(TICK);
        }
    }

    fn handle(&mut self, event: Event, on_event: &mut dyn FnMut(NodeEvent) -> Result<(), String>) -> Result<()> {
        let (i, frame) = match event {
            Event::Frame(i, frame) => (i, frame),
            Event::Closed(i) => {
                self.nodes[i].disconnected = true;
                return Ok(());
            }
        };
        let name = self.nodes[i].name;
        let protocol_error = |message: String| ClusterError::Protocol { node: name, message };
        match frame.kind {
            protocol::HEARTBEAT => Ok(()),
            protocol::DONE => {
                tracing::info!(node = %name, "node finished its entry");
                self.nodes[i].done_at = Some(Instant::now());
                // Rows not yet sent to a finished node have nowhere to go.
                self.local.close_feed(name);
                if name.node_type == NodeType::Worker && !self.nodes[i].position_sent {
                    // It never read its input: the engine must not wait for its position.
                    self.nodes[i].position_sent = true;
                    on_event(NodeEvent::Position(name, None)).map_err(protocol_error)?;
                }
                Ok(())
            }
            protocol::FAILED => {
                let body: Value = serde_json::from_slice(&frame.payload).unwrap_or_default();
                tracing::warn!(node = %name, error = body["error"].as_str().unwrap_or("unknown error"), "node failed");
                Err(ClusterError::NodeFailed {
                    node: name,
                    error: body["error"].as_str().unwrap_or("unknown error").to_string(),
                    traceback: body["traceback"].as_str().unwrap_or("").trim_end().to_string(),
                    retryable: !body["final"].as_bool().unwrap_or(false),
                })
            }
            protocol::BATCH => {
                let batches = protocol::decode_batches(&frame.payload)
                    .map_err(|e| protocol_error(format!("sent rows that are not Arrow IPC: {e}")))?;
                for batch in batches {
                    on_event(NodeEvent::Batch(name, batch)).map_err(protocol_error)?;
                }
                Ok(())
            }
            protocol::NOTICE => {
                let body: Value = serde_json::from_slice(&frame.payload)
                    .map_err(|e| protocol_error(format!("sent a notice that is not JSON: {e}")))?;
                if body["event"] == "stack" {
                    self.nodes[i].stack = Some(body["stack"].as_str().unwrap_or("").to_string());
                    return Ok(());
                }
                if body["event"] == "first_batch" && self.report.first_batch_after.is_none() {
                    self.report.first_batch_after = Some(self.started.elapsed());
                }
                on_event(NodeEvent::Notice(name, body)).map_err(protocol_error)
            }
            protocol::POSITION => {
                let body: Value = serde_json::from_slice(&frame.payload)
                    .map_err(|e| protocol_error(format!("sent a position that is not JSON: {e}")))?;
                if self.nodes[i].position_sent {
                    return Err(protocol_error("sent its restored position twice".into()));
                }
                self.nodes[i].position_sent = true;
                let position = body.as_object().is_some_and(|o| !o.is_empty()).then_some(body);
                on_event(NodeEvent::Position(name, position)).map_err(protocol_error)
            }
            kind => Err(protocol_error(format!("sent a frame of unknown kind {kind}"))),
        }
    }

    fn check_nodes(&mut self, on_event: &mut dyn FnMut(NodeEvent) -> Result<(), String>) -> Result<()> {
        let limit = self.config.timeouts.heartbeat;
        let progress_limit = self.config.timeouts.progress;
        let now = millis_since(self.started);
        for i in 0..self.nodes.len() {
            if self.nodes[i].exit.is_some() {
                if self.nodes[i].done_at.is_none() {
                    // A node that raised sends FAILED before it exits: read until its connection
                    // ends so that the traceback, not just the exit code, reaches the user.
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while !self.nodes[i].disconnected && Instant::now() < deadline {
                        if let Ok(event) = self.events.recv_timeout(TICK) {
                            self.handle(event, on_event)?;
                        }
                    }
                    let node = &self.nodes[i];
                    // `exit` was Some above and is never reset.
                    if let (None, Some(exit)) = (node.done_at, node.exit.clone()) {
                        return Err(ClusterError::NodeExited {
                            node: node.name,
                            status: self.on_process(node.name, exit.status),
                            output_tail: exit.output_tail,
                        });
                    }
                }
                continue;
            }
            let node = &self.nodes[i];
            if let Some(done_at) = node.done_at {
                if done_at.elapsed() > self.config.timeouts.exit_grace {
                    self.local.kill(node.name);
                }
                continue;
            }
            let silent = Duration::from_millis(now.saturating_sub(node.liveness.last_seen_ms.load(Ordering::SeqCst)));
            if silent > limit {
                tracing::warn!(node = %node.name, seconds = silent.as_secs_f64(), "node missed its heartbeats");
                let name = node.name;
                self.local.kill(name);
                return Err(ClusterError::NodeUnresponsive { node: name, seconds: silent.as_secs_f64(), limit: limit.as_secs_f64() });
            }
            let idle = Duration::from_millis(node.liveness.idle_ms.load(Ordering::SeqCst));
            if node.liveness.pending.load(Ordering::SeqCst) > 0 && idle > progress_limit {
                return Err(self.frozen(i, idle, on_event));
            }
        }
        Ok(())
    }

    /// A worker whose main thread takes no rows while rows wait: asks for its Python stack,
    /// then gives up on it.
    fn frozen(&mut self, i: usize, idle: Duration, on_event: &mut dyn FnMut(NodeEvent) -> Result<(), String>) -> ClusterError {
        let name = self.nodes[i].name;
        let _ = protocol::write_frame(&mut self.nodes[i].control, protocol::STACK, &[]);
        let deadline = Instant::now() + STACK_WAIT;
        while self.nodes[i].stack.is_none() && Instant::now() < deadline {
            if let Ok(event) = self.events.recv_timeout(TICK)
                && let Err(error) = self.handle(event, on_event) {
                    return error;
                }
        }
        self.local.kill(name);
        ClusterError::NodeFrozen {
            node: name,
            seconds: idle.as_secs_f64(),
            limit: self.config.timeouts.progress.as_secs_f64(),
            stack: self.nodes[i].stack.take().unwrap_or_else(|| "(it sent no stack: its interpreter is stuck too)".into()),
        }
    }

    fn on_process(&self, node: NodeName, status: String) -> String {
        if self.layout.processes > 1 { format!("{status}, on process {}", self.layout.process_of(node)) } else { status }
    }

    /// Stops every node that still runs here: parameter servers at the end of a good run,
    /// everything after a failure. Feeds close first, so the engine stops sending.
    fn shutdown(&mut self) {
        self.local.kill_all();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A registered node: its control connection and where its TF server listens.
struct Registered {
    stream: TcpStream,
    host: String,
    port: u16,
}

/// Accepts one connection per node and reads its HELLO, until all are in or something fails.
fn register(
    listener: &TcpListener,
    names: &[NodeName],
    local: &mut LocalNodes,
    remote: &mpsc::Receiver<RemoteEvent>,
    token: &str,
    config: &TfClusterConfig,
    stop: &AtomicBool,
) -> Result<Vec<Registered>> {
    let deadline = Instant::now() + config.timeouts.register;
    listener.set_nonblocking(true).map_err(socket_io)?;
    let mut registered: Vec<Option<Registered>> = names.iter().map(|_| None).collect();
    while registered.iter().any(Option::is_none) {
        if stop.load(Ordering::SeqCst) {
            return Err(ClusterError::Cancelled);
        }
        let exited = local.poll_exits().into_iter().next().or_else(|| match remote.try_recv() {
            Ok(RemoteEvent::Exited(exit)) => Some(exit),
            _ => None,
        });
        if let Some(exit) = exited {
            return Err(ClusterError::NodeExited {
                node: exit.node,
                status: format!("before it registered, {}", exit.status),
                output_tail: exit.output_tail,
            });
        }
        if Instant::now() > deadline {
            let missing: Vec<String> =
                names.iter().zip(&registered).filter(|(_, s)| s.is_none()).map(|(n, _)| n.to_string()).collect();
            return Err(ClusterError::Register(format!(
                "{} did not register within {:.0} s (is the python able to import dlflow? see the output above)",
                missing.join(", "),
                config.timeouts.register.as_secs_f64()
            )));
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some((name, host, port)) = hello(&stream, token)
                    && let Some(slot) = names.iter().position(|n| *n == name)
                        && registered[slot].is_none() {
                            tracing::info!(node = %name, %host, port, "node registered");
                            registered[slot] = Some(Registered { stream, host, port });
                        }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(ClusterError::Io { context: "accepting a node".into(), source }),
        }
    }
    Ok(registered.into_iter().flatten().collect())
}

/// The node a HELLO or FEED_HELLO names.
pub(crate) fn node_name(body: &Value) -> Option<NodeName> {
    let node_type = match body["node_type"].as_str()? {
        "worker" => NodeType::Worker,
        "ps" => NodeType::Ps,
        _ => return None,
    };
    let index = usize::try_from(body["index"].as_u64()?).ok()?;
    Some(NodeName { node_type, index })
}

/// Reads a HELLO; a connection with a wrong token or an unknown node is dropped.
fn hello(stream: &TcpStream, token: &str) -> Option<(NodeName, String, u16)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.set_nodelay(true).ok()?;
    let frame = protocol::read_frame(&mut &*stream).ok()??;
    if frame.kind != protocol::HELLO {
        return None;
    }
    let body: Value = serde_json::from_slice(&frame.payload).ok()?;
    if body["token"].as_str()? != token {
        return None;
    }
    let name = node_name(&body)?;
    let port = u16::try_from(body["port"].as_u64()?).ok()?;
    let host = body["host"].as_str().unwrap_or("127.0.0.1").to_string();
    stream.set_read_timeout(None).ok()?;
    Some((name, host, port))
}

fn read_frames(i: usize, stream: TcpStream, events: mpsc::Sender<Event>, liveness: Arc<Liveness>, started: Instant) {
    std::thread::spawn(move || {
        let mut input = BufReader::with_capacity(1 << 20, stream);
        while let Ok(Some(frame)) = protocol::read_frame(&mut input) {
            liveness.last_seen_ms.store(millis_since(started), Ordering::SeqCst);
            if frame.kind == protocol::HEARTBEAT {
                if let Ok(beat) = serde_json::from_slice::<Value>(&frame.payload) {
                    liveness.pending.store(beat["pending"].as_u64().unwrap_or(0), Ordering::SeqCst);
                    liveness.idle_ms.store(beat["idle_ms"].as_u64().unwrap_or(0), Ordering::SeqCst);
                }
                continue;
            }
            if events.send(Event::Frame(i, frame)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::Closed(i));
    });
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A token no other job guesses: a stray or stale node cannot register.
pub fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        hasher.finish()
    };
    format!("{:016x}{:016x}", part(), part())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn socket_io(source: std::io::Error) -> ClusterError {
    ClusterError::Io { context: "talking to a node".into(), source }
}

fn arrow_io(error: arrow::error::ArrowError) -> ClusterError {
    ClusterError::Io { context: "encoding a schema".into(), source: std::io::Error::other(error) }
}
