//! The coordinator: starts the nodes, registers them, hands out the cluster spec, and watches
//! them to the end.
//!
//! Finish and failure rules:
//! - the job succeeds when every worker has reported the end of its entry; parameter servers
//!   are then stopped (they serve until told otherwise);
//! - it fails, and every node is stopped, as soon as one node raises (its traceback is in the
//!   error), exits without reporting, or misses heartbeats for longer than the limit;
//! - every end (success, failure, cancel, drop) kills and reaps whatever still runs.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde_json::{Value, json};

use crate::config::{NodeType, TfClusterConfig};
use crate::error::{ClusterError, NodeName, Result};
use crate::feed::NodeFeed;
use crate::node::{Launch, NodeProcess, describe_status};
use crate::{protocol, python};

/// How often the coordinator looks at processes, heartbeats and the stop flag.
const TICK: Duration = Duration::from_millis(20);

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
}

/// Something a node sent while the job ran.
#[derive(Debug)]
pub enum NodeEvent {
    /// Rows from the node's row writer.
    Batch(NodeName, RecordBatch),
    /// A notice: `{"event": "first_batch"}`, per-epoch metrics, ...
    Notice(NodeName, Value),
}

/// When things happened, for reports and the startup benchmark.
#[derive(Debug, Clone, Default)]
pub struct ClusterReport {
    /// The nodes, with their process ids.
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

struct Node {
    process: NodeProcess,
    feed: Option<NodeFeed>,
    feed_closed: Option<Arc<AtomicBool>>,
    last_seen_ms: Arc<AtomicU64>,
    done_at: Option<Instant>,
    /// The node's connection has ended: every frame it sent has been handled.
    disconnected: bool,
}

/// A running cluster of nodes. Dropping it kills whatever still runs.
pub struct Cluster {
    nodes: Vec<Node>,
    events: mpsc::Receiver<Event>,
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
    /// Starts every node, waits for all to register, and sends each its spec.
    ///
    /// Fails (and stops what it started) when a node exits or does not register within
    /// [`Timeouts::register`](crate::Timeouts::register), or when `stop` is set.
    pub fn start(config: &TfClusterConfig, io: &JobIo, stop: &AtomicBool) -> Result<Cluster> {
        let started = Instant::now();
        let python = python::interpreter(&config.python)?;
        let package_root = python::package_root()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|source| ClusterError::Io { context: "opening the coordinator's socket".into(), source })?;
        let address = listener
            .local_addr()
            .map_err(|source| ClusterError::Io { context: "reading the coordinator's address".into(), source })?;
        let token = random_token();
        let launch = Launch {
            python: &python,
            package_root: &package_root,
            coordinator: address.to_string(),
            token: &token,
            config,
        };
        let names: Vec<NodeName> = (0..config.workers)
            .map(|index| NodeName { node_type: NodeType::Worker, index })
            .chain((0..config.ps).map(|index| NodeName { node_type: NodeType::Ps, index }))
            .collect();
        let mut processes = Vec::with_capacity(names.len());
        for name in &names {
            processes.push(NodeProcess::spawn(*name, &launch)?);
        }
        let (streams, ports) = register(&listener, &names, &mut processes, &token, config, stop)?;
        let registered_after = started.elapsed();
        tracing::info!(nodes = names.len(), seconds = registered_after.as_secs_f64(), "every node registered");

        let host = address.ip().to_string();
        let addresses = |node_type: NodeType| -> Vec<String> {
            names.iter().zip(&ports).filter(|(n, _)| n.node_type == node_type).map(|(_, p)| format!("{host}:{p}")).collect()
        };
        let mut cluster_spec = json!({ "worker": addresses(NodeType::Worker) });
        if config.ps > 0 {
            cluster_spec["ps"] = json!(addresses(NodeType::Ps));
        }
        let input_schema = io.input_schema.as_deref().map(protocol::encode_schema).transpose().map_err(arrow_io)?;
        let output_schema = io.output_schema.as_deref().map(protocol::encode_schema).transpose().map_err(arrow_io)?;
        tracing::info!(cluster_spec = %cluster_spec, attempt = io.attempt, epochs = ?io.epochs, "handing out the cluster spec");

        let (events_in, events) = mpsc::channel();
        let mut nodes = Vec::with_capacity(names.len());
        for (i, ((name, stream), process)) in names.iter().zip(streams).zip(processes).enumerate() {
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
            });
            let mut writer = stream.try_clone().map_err(socket_io)?;
            protocol::write_frame(&mut writer, protocol::SPEC, spec.to_string().as_bytes()).map_err(socket_io)?;
            if let Some(schema) = &output_schema {
                protocol::write_frame(&mut writer, protocol::OUTPUT_SCHEMA, schema).map_err(socket_io)?;
            }
            let last_seen_ms = Arc::new(AtomicU64::new(millis_since(started)));
            read_frames(i, stream.try_clone().map_err(socket_io)?, events_in.clone(), last_seen_ms.clone(), started);
            let (feed, feed_closed) = if name.node_type == NodeType::Worker && io.input_schema.is_some() {
                let (feed, closed) = NodeFeed::start(*name, stream);
                (Some(feed), Some(closed))
            } else {
                (None, None)
            };
            nodes.push(Node { process, feed, feed_closed, last_seen_ms, done_at: None, disconnected: false });
        }
        let report = ClusterReport {
            nodes: nodes.iter().map(|n| (n.process.name, n.process.child.id())).collect(),
            registered_after,
            ..ClusterReport::default()
        };
        Ok(Cluster { nodes, events, started, config: config.clone(), report })
    }

    /// The feeds into the workers, by index (empty for a job without input).
    pub fn feeds(&self) -> Vec<NodeFeed> {
        self.nodes.iter().filter_map(|n| n.feed.clone()).collect()
    }

    /// The nodes and their process ids.
    pub fn processes(&self) -> &[(NodeName, u32)] {
        &self.report.nodes
    }

    /// Watches the nodes until the job ends (see the module docs for the rules).
    ///
    /// `on_event` gets every batch and notice; an `Err` from it fails the job, naming the node.
    /// Setting `stop` cancels the job.
    pub fn run(mut self, stop: &AtomicBool, mut on_event: impl FnMut(NodeEvent) -> Result<(), String>) -> Result<ClusterReport> {
        let outcome = self.watch(stop, &mut on_event);
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
            self.check_processes(on_event)?;
            if self.nodes.iter().filter(|n| n.process.name.node_type == NodeType::Worker).all(|n| n.done_at.is_some()) {
                return Ok(());
            }
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
        let name = self.nodes[i].process.name;
        let protocol_error = |message: String| ClusterError::Protocol { node: name, message };
        match frame.kind {
            protocol::HEARTBEAT => Ok(()),
            protocol::DONE => {
                tracing::info!(node = %name, "node finished its entry");
                self.nodes[i].done_at = Some(Instant::now());
                // Rows not yet sent to a finished node have nowhere to go.
                if let Some(closed) = &self.nodes[i].feed_closed {
                    closed.store(true, Ordering::SeqCst);
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
                if body["event"] == "first_batch" && self.report.first_batch_after.is_none() {
                    self.report.first_batch_after = Some(self.started.elapsed());
                }
                on_event(NodeEvent::Notice(name, body)).map_err(protocol_error)
            }
            kind => Err(protocol_error(format!("sent a frame of unknown kind {kind}"))),
        }
    }

    fn check_processes(&mut self, on_event: &mut dyn FnMut(NodeEvent) -> Result<(), String>) -> Result<()> {
        let limit = self.config.timeouts.heartbeat;
        let now = millis_since(self.started);
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if let Some(status) = node.process.poll_exit() {
                if node.done_at.is_none() {
                    // A node that raised sends FAILED before it exits: read until its connection
                    // ends so that the traceback, not just the exit code, reaches the user.
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while !self.nodes[i].disconnected && Instant::now() < deadline {
                        if let Ok(event) = self.events.recv_timeout(TICK) {
                            self.handle(event, on_event)?;
                        }
                    }
                    let node = &self.nodes[i];
                    if node.done_at.is_none() {
                        return Err(ClusterError::NodeExited {
                            node: node.process.name,
                            status: describe_status(status),
                            output_tail: node.process.output.text(),
                        });
                    }
                }
                continue;
            }
            if let Some(done_at) = node.done_at {
                if done_at.elapsed() > self.config.timeouts.exit_grace {
                    node.process.kill();
                }
                continue;
            }
            let silent = Duration::from_millis(now.saturating_sub(node.last_seen_ms.load(Ordering::SeqCst)));
            if silent > limit {
                tracing::warn!(node = %node.process.name, seconds = silent.as_secs_f64(), "node missed its heartbeats");
                node.process.kill();
                return Err(ClusterError::NodeUnresponsive {
                    node: node.process.name,
                    seconds: silent.as_secs_f64(),
                    limit: limit.as_secs_f64(),
                });
            }
        }
        Ok(())
    }

    /// Stops every node that still runs: parameter servers at the end of a good run, everything
    /// after a failure. Feeds close first, so the engine stops sending.
    fn shutdown(&mut self) {
        for node in &self.nodes {
            if let Some(closed) = &node.feed_closed {
                closed.store(true, Ordering::SeqCst);
            }
        }
        for node in &mut self.nodes {
            node.process.kill();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts one connection per node and reads its HELLO, until all are in or something fails.
fn register(
    listener: &TcpListener,
    names: &[NodeName],
    processes: &mut [NodeProcess],
    token: &str,
    config: &TfClusterConfig,
    stop: &AtomicBool,
) -> Result<(Vec<TcpStream>, Vec<u16>)> {
    let deadline = Instant::now() + config.timeouts.register;
    listener.set_nonblocking(true).map_err(socket_io)?;
    let mut streams: Vec<Option<TcpStream>> = names.iter().map(|_| None).collect();
    let mut ports = vec![0u16; names.len()];
    while streams.iter().any(Option::is_none) {
        if stop.load(Ordering::SeqCst) {
            return Err(ClusterError::Cancelled);
        }
        for process in processes.iter_mut() {
            if let Some(status) = process.poll_exit() {
                return Err(ClusterError::NodeExited {
                    node: process.name,
                    status: format!("before it registered, {}", describe_status(status)),
                    output_tail: process.output.text(),
                });
            }
        }
        if Instant::now() > deadline {
            let missing: Vec<String> =
                names.iter().zip(&streams).filter(|(_, s)| s.is_none()).map(|(n, _)| n.to_string()).collect();
            return Err(ClusterError::Register(format!(
                "{} did not register within {:.0} s (is the python able to import dlflow? see the output above)",
                missing.join(", "),
                config.timeouts.register.as_secs_f64()
            )));
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some((slot, port, stream)) = hello(stream, names, token) {
                    if streams[slot].is_none() {
                        tracing::info!(node = %names[slot], port, "node registered");
                        ports[slot] = port;
                        streams[slot] = Some(stream);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(ClusterError::Io { context: "accepting a node".into(), source }),
        }
    }
    Ok((streams.into_iter().flatten().collect(), ports))
}

/// Reads a HELLO; a connection with a wrong token or an unknown node is dropped.
fn hello(stream: TcpStream, names: &[NodeName], token: &str) -> Option<(usize, u16, TcpStream)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.set_nodelay(true).ok()?;
    let frame = protocol::read_frame(&mut &stream).ok()??;
    if frame.kind != protocol::HELLO {
        return None;
    }
    let body: Value = serde_json::from_slice(&frame.payload).ok()?;
    if body["token"].as_str()? != token {
        return None;
    }
    let node_type = match body["node_type"].as_str()? {
        "worker" => NodeType::Worker,
        "ps" => NodeType::Ps,
        _ => return None,
    };
    let index = usize::try_from(body["index"].as_u64()?).ok()?;
    let slot = names.iter().position(|n| *n == NodeName { node_type, index })?;
    let port = u16::try_from(body["port"].as_u64()?).ok()?;
    stream.set_read_timeout(None).ok()?;
    Some((slot, port, stream))
}

fn read_frames(i: usize, stream: TcpStream, events: mpsc::Sender<Event>, last_seen_ms: Arc<AtomicU64>, started: Instant) {
    std::thread::spawn(move || {
        let mut input = BufReader::with_capacity(1 << 20, stream);
        while let Ok(Some(frame)) = protocol::read_frame(&mut input) {
            last_seen_ms.store(millis_since(started), Ordering::SeqCst);
            if frame.kind != protocol::HEARTBEAT && events.send(Event::Frame(i, frame)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::Closed(i));
    });
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn random_token() -> String {
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

