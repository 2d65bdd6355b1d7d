//! A job as several dlflow processes: process 0 (the leader) plans, coordinates every node
//! and decides restarts; the others (followers) host their share of the nodes and feed them,
//! on the leader's word, attempt after attempt.
//!
//! Each follower keeps one control connection to the leader for the whole job (dlflow's
//! handshake: job id, attempt, process index). Per attempt:
//!
//! ```text
//! leader                                   follower
//!   Start {launch}          ------------>   starts its nodes (they register with the leader)
//!   <nodes register, send positions>
//!   Positions {positions}   ------------>   what its own log says the checkpoints covered
//!                           <------------   Consumed {replay}
//!   Plan {replay, threads}  ------------>   joins the engine's mesh for this attempt, feeds
//!   <the attempt ends>
//!   Stop                    ------------>   stops its nodes and engine
//!                           <------------   Stopped
//!   ... Start again (attempt + 1), or Finish {error}
//! ```
//!
//! Followers also send their nodes' output lines and exits. A process that goes away ends the
//! job on every other process, with an error that names it.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dlflow_cluster::{Cluster, ClusterError, JobIo, Layout, LocalNodes, NodeEvent, NodeExit, NodeLaunch, NodeName, RemoteEvent};
use dlflow_engine::{Endpoint, EngineReport, Hosts, Mesh, PositionLog, Replay, WorkerPosition};
use serde::{Deserialize, Serialize};

use super::{AttemptDone, AttemptFailed, EngineInput, Plan, Positions, Prepared, State, attempt_outcome, conform_none, join_engine};
use crate::error::{Error, Result};

/// How long processes wait for each other at the job's start, by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the leader waits for a follower's answer within an attempt.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The frame kind of control messages.
const MESSAGE: u8 = 1;
/// How often each end of a control connection says it is alive.
const BEAT: Duration = Duration::from_secs(1);
/// Silence after which the other end counts as gone (a host cut off sends no FIN, no RST).
const SILENCE: Duration = Duration::from_secs(10);

/// Where this process is among the job's processes.
#[derive(Debug, Clone)]
pub(crate) struct Processes {
    pub hosts: Hosts,
    pub process: usize,
    pub job_id: String,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Message {
    Start { launch: NodeLaunch },
    Positions { positions: Vec<Option<WorkerPosition>> },
    Consumed { replay: Replay },
    Plan { replay: Replay, restore: Vec<Option<WorkerPosition>>, threads: usize },
    Stop,
    Stopped,
    Finish { error: Option<String> },
    Output { node: NodeName, line: String },
    Exited { exit: NodeExit },
    Failed { error: String },
    Beat,
}

/// One end of a control connection: messages out, and a thread that reads messages in.
#[derive(Clone)]
struct Control {
    out: Arc<Mutex<TcpStream>>,
}

impl Control {
    fn send(&self, message: &Message) -> std::io::Result<()> {
        let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        dlflow_cluster::protocol::write_frame(&mut *out, MESSAGE, &body)
    }
}

/// On the leader, what the followers report about their nodes goes straight to the running
/// attempt's coordinator (and their output to the screen), as it arrives.
#[derive(Default)]
struct Router {
    remote: Mutex<Option<mpsc::Sender<RemoteEvent>>>,
    output: Mutex<Option<dlflow_cluster::OutputHandler>>,
    quiet: AtomicBool,
}

impl Router {
    fn remote(&self, event: RemoteEvent) {
        if let Some(remote) = &*self.remote.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = remote.send(event);
        }
    }
}

/// Reads messages from `stream` until it closes (then `None`): node reports to the router (on
/// the leader), everything else to `inbox`.
fn read_messages(process: usize, stream: TcpStream, inbox: mpsc::Sender<(usize, Option<Message>)>, router: Option<Arc<Router>>) {
    std::thread::spawn(move || {
        // The other end beats every second: a read that waits longer means it is gone.
        let _ = stream.set_read_timeout(Some(SILENCE));
        let mut input = std::io::BufReader::new(stream);
        let reason = loop {
            let frame = match dlflow_cluster::protocol::read_frame(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break "went away (its connection closed)".to_string(),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    break format!("went silent for {} s (its host cut off or stopped?)", SILENCE.as_secs());
                }
                Err(e) => break format!("went away ({e})"),
            };
            let Ok(message) = serde_json::from_slice::<Message>(&frame.payload) else { continue };
            let message = match (&router, message) {
                (_, Message::Beat) => continue,
                (Some(router), Message::Output { node, line }) => {
                    let handler = router.output.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    show_output(&handler, router.quiet.load(Ordering::SeqCst), node, &line);
                    continue;
                }
                (Some(router), Message::Exited { exit }) => {
                    router.remote(RemoteEvent::Exited(exit));
                    continue;
                }
                (Some(router), Message::Failed { error }) => {
                    router.remote(RemoteEvent::Lost { process, reason: format!("failed: {error}") });
                    continue;
                }
                (_, message) => message,
            };
            if inbox.send((process, Some(message))).is_err() {
                return;
            }
        };
        if let Some(router) = &router {
            router.remote(RemoteEvent::Lost { process, reason });
        }
        let _ = inbox.send((process, None));
    });
}

/// Says "alive" on `control` every second until the connection fails.
fn beat(control: Control) {
    std::thread::spawn(move || {
        while control.send(&Message::Beat).is_ok() {
            std::thread::sleep(BEAT);
        }
    });
}

/// This process's connections to the others, for the whole job.
pub(crate) struct Network {
    endpoint: Arc<Endpoint>,
    layout: Layout,
    connect_timeout: Duration,
    /// The leader: one control connection per follower (index `p - 1`). A follower: the one to the leader.
    controls: Vec<Control>,
    inbox: mpsc::Receiver<(usize, Option<Message>)>,
    router: Arc<Router>,
    /// Processes that went away (no restart can bring them back).
    lost: Vec<usize>,
    /// A follower: whether this attempt's Stopped went out already.
    stopped_sent: bool,
}

impl Drop for Network {
    /// Closes the control connections: the other ends see the job's end, and the beat and
    /// reader threads of this end stop.
    fn drop(&mut self) {
        for control in &self.controls {
            let out = control.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = out.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Network {
    /// Binds this process's address and connects to the others (the leader waits for every
    /// follower; a follower connects to the leader).
    pub fn connect(processes: &Processes, stop: &AtomicBool) -> Result<Network> {
        let endpoint = Endpoint::bind(&processes.job_id, processes.hosts.clone(), processes.process)?;
        let timeout = processes.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
        let (inbox_in, inbox) = mpsc::channel();
        let streams = if processes.process == 0 {
            endpoint.accept_control(timeout, stop)?
        } else {
            vec![endpoint.connect_control(timeout, stop)?]
        };
        let router = Arc::new(Router::default());
        let mut controls = Vec::new();
        for (i, stream) in streams.into_iter().enumerate() {
            let peer = if processes.process == 0 { i + 1 } else { 0 };
            let reader = stream.try_clone().map_err(|e| Error::Invalid(format!("the control connection to process {peer}: {e}")))?;
            read_messages(peer, reader, inbox_in.clone(), (processes.process == 0).then(|| router.clone()));
            let control = Control { out: Arc::new(Mutex::new(stream)) };
            beat(control.clone());
            controls.push(control);
        }
        let hosts = &processes.hosts;
        let layout = Layout {
            processes: hosts.len(),
            process: processes.process,
            hosts: (0..hosts.len()).map(|p| hosts.host(p).to_string()).collect(),
        };
        Ok(Network { endpoint: Arc::new(endpoint), layout, connect_timeout: timeout, controls, inbox, router, lost: Vec::new(), stopped_sent: false })
    }

    pub fn is_leader(&self) -> bool {
        self.layout.process == 0
    }

    /// Whether every process is still there to restart with.
    pub fn may_restart(&self) -> bool {
        self.lost.is_empty()
    }

    /// Leader: nothing to tell the followers yet (the next Start carries the attempt).
    pub fn restart(&mut self, _attempt: u32, _cause: &Error) -> Result<()> {
        Ok(())
    }

    /// Leader: the job is over; every follower ends too, with the job's error if any.
    pub fn finish(&mut self, error: Option<&Error>) {
        if self.is_leader() {
            let message = Message::Finish { error: error.map(ToString::to_string) };
            for control in &self.controls {
                let _ = control.send(&message);
            }
        }
    }

    fn mesh_connector(
        &self,
        attempt: u32,
        stop: Arc<AtomicBool>,
    ) -> Box<dyn FnOnce() -> Result<Mesh, dlflow_engine::EngineError> + Send> {
        let endpoint = self.endpoint.clone();
        let timeout = self.connect_timeout;
        Box::new(move || {
            let sockets = endpoint.mesh(attempt, timeout, &stop)?;
            Ok(Mesh { process: endpoint.process(), sockets })
        })
    }

    /// Leader: one attempt over every process.
    pub fn run_attempt(&mut self, job: &Prepared, state: &State, attempt: u32) -> Result<AttemptDone, AttemptFailed> {
        self.endpoint.set_attempt(attempt);
        let io = JobIo { attempt, checkpoint_dir: Some(state.checkpoints()), temp_in: Some(state.temp()), ..job.io.clone() };
        let attempt_stop = Arc::new(AtomicBool::new(false));
        let (remote_in, remote) = mpsc::channel();
        *self.router.remote.lock().unwrap_or_else(|e| e.into_inner()) = Some(remote_in);
        *self.router.output.lock().unwrap_or_else(|e| e.into_inner()) = job.config.output_handler();
        self.router.quiet.store(job.config.is_quiet(), Ordering::SeqCst);
        // Messages that arrived between attempts are about the last one.
        while let Ok((process, message)) = self.inbox.try_recv() {
            if message.is_none() && !self.lost.contains(&process) {
                self.lost.push(process);
            }
        }
        if let Some(&process) = self.lost.first() {
            return Err(AttemptFailed::new(ClusterError::ProcessLost { process, reason: "went away".into() }));
        }
        let controls = self.controls.clone();
        let cluster = Cluster::start_on(&job.config, &io, &job.stop, &self.layout, remote, |launch| {
            for (i, control) in controls.iter().enumerate() {
                control.send(&Message::Start { launch: launch.clone() }).map_err(|e| ClusterError::ProcessLost {
                    process: i + 1,
                    reason: format!("went away ({e})"),
                })?;
            }
            Ok(())
        });
        let cluster = match cluster {
            Ok(cluster) => cluster,
            Err(error) => {
                let _ = self.stop_followers();
                return Err(AttemptFailed::new(error));
            }
        };
        let threads = distributed_engine_threads(job, self.layout.processes);
        let (plan, planned) = mpsc::channel::<Plan>();
        let engine = job.source.clone().map(|source| {
            let log = PositionLog::open(&state.log(0), attempt);
            let mesh = self.mesh_connector(attempt, attempt_stop.clone());
            job.start_engine(EngineInput { source, feeds: cluster.local_feeds(), threads, mesh: Some(mesh) }, planned, log, attempt_stop.clone())
        });
        let mut positions = Positions::new(job.config.worker_count());
        let mut replay: Option<Replay> = None;
        if attempt == 0 {
            // A fresh run (every process cleared its state): nothing to restore, feed at once.
            let start = Plan::from_start(job.config.worker_count());
            for control in &self.controls {
                let message = Message::Plan { replay: start.replay.clone(), restore: start.restore.clone(), threads };
                if control.send(&message).is_err() {
                    break;
                }
            }
            replay = Some(start.replay.clone());
            let _ = plan.send(start);
        }
        let notices = Mutex::new(Vec::new());
        let log = state.log(0);
        let inbox = &self.inbox;
        let lost = &mut self.lost;
        let controls = &self.controls;
        let (watch, _relay) = super::either(job.stop.clone(), attempt_stop.clone());
        let watched = cluster.run(&watch, |event| {
            match event {
                NodeEvent::Batch(node, batch) => conform_none(node, batch),
                NodeEvent::Notice(node, notice) => job.notice(&notices, node, notice),
                NodeEvent::Position(node, position) => {
                    if replay.is_some() {
                        return Ok(());
                    }
                    let Some(all) = positions.set(node, position)? else { return Ok(()) };
                    let mut merged = dlflow_engine::positions::plan_replay(std::slice::from_ref(&log), &all)
                        .map_err(|e| format!("reading the position log: {e}"))?;
                    for control in controls {
                        control.send(&Message::Positions { positions: all.clone() }).map_err(|e| e.to_string())?;
                    }
                    let deadline = Instant::now() + ANSWER_TIMEOUT;
                    let mut answered = 0;
                    while answered < controls.len() {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match inbox.recv_timeout(left) {
                            Ok((_, Some(Message::Consumed { replay }))) => {
                                merged.merge(&replay);
                                answered += 1;
                            }
                            Ok((process, None)) => {
                                lost.push(process);
                                return Err(format!("process {process} went away while planning the replay"));
                            }
                            Ok(_) => {}
                            Err(_) => return Err("the other processes did not answer with their positions in time".into()),
                        }
                    }
                    for control in controls {
                        let message = Message::Plan { replay: merged.clone(), restore: all.clone(), threads };
                        control.send(&message).map_err(|e| e.to_string())?;
                    }
                    replay = Some(merged.clone());
                    let _ = plan.send(Plan { replay: merged, restore: all });
                    Ok(())
                }
            }
        });
        attempt_stop.store(true, Ordering::SeqCst);
        let lost_before = self.lost.len();
        let gone = self.stop_followers();
        *self.router.remote.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // A node failing because a process went away (TensorFlow often notices first): the
        // process is the cause to report.
        let watched = match (watched, gone.get(lost_before)) {
            (Err(error), Some(&process)) if error.is_node_failure() && !matches!(error, ClusterError::ProcessLost { .. }) => {
                let first_line = error.to_string().lines().next().unwrap_or("").to_string();
                Err(ClusterError::ProcessLost {
                    process,
                    reason: format!("stopped answering (its host cut off or stopped?); meanwhile {first_line}"),
                })
            }
            (watched, _) => watched,
        };
        let fed = engine.map(join_engine);
        attempt_outcome(watched, fed, notices, replay)
    }

    /// Leader: ends the attempt on every follower and waits until they have stopped.
    /// Returns the processes that did not answer (gone, or their host cut off).
    fn stop_followers(&mut self) -> Vec<usize> {
        for (i, control) in self.controls.iter().enumerate() {
            if control.send(&Message::Stop).is_err() && !self.lost.contains(&(i + 1)) {
                self.lost.push(i + 1);
            }
        }
        let deadline = Instant::now() + SILENCE;
        let mut waiting: Vec<usize> = (1..=self.controls.len()).filter(|p| !self.lost.contains(p)).collect();
        while !waiting.is_empty() {
            match self.inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((process, Some(Message::Stopped))) => waiting.retain(|&p| p != process),
                Ok((process, None)) => {
                    waiting.retain(|&p| p != process);
                    if !self.lost.contains(&process) {
                        self.lost.push(process);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Silent through the whole wait: as good as gone, and no restart can count on it.
        for &process in &waiting {
            if !self.lost.contains(&process) {
                self.lost.push(process);
            }
        }
        self.lost.clone()
    }

    /// A follower: runs attempts as the leader says until it says the job is over.
    pub fn follow(&mut self, job: &Prepared, state: &State) -> Result<EngineReport> {
        let leader = self.controls[0].clone();
        let mut last = EngineReport::default();
        loop {
            let message = match self.inbox.recv() {
                Ok((_, Some(message))) => message,
                Ok((_, None)) | Err(_) => {
                    return Err(ClusterError::ProcessLost { process: 0, reason: "(the coordinator) went away".into() }.into());
                }
            };
            match message {
                Message::Start { launch } => {
                    self.stopped_sent = false;
                    match self.follow_attempt(job, state, &leader, &launch) {
                        Ok(report) => last = report,
                        Err(error) => {
                            let _ = leader.send(&Message::Failed { error: error.to_string() });
                            if matches!(error, Error::Cluster(ClusterError::ProcessLost { .. })) {
                                return Err(error);
                            }
                        }
                    }
                    if !self.stopped_sent {
                        let _ = leader.send(&Message::Stopped);
                    }
                }
                Message::Finish { error: None } => return Ok(last),
                Message::Finish { error: Some(error) } => {
                    return Err(Error::Invalid(format!("the job failed on process 0: {error}")));
                }
                // A Stop for an attempt this process had already left.
                Message::Stop => {
                    let _ = leader.send(&Message::Stopped);
                }
                _ => {}
            }
            if job.stop.load(Ordering::SeqCst) {
                return Err(ClusterError::Cancelled.into());
            }
        }
    }

    /// A follower's part of one attempt: its nodes and its engine, until the leader says Stop.
    fn follow_attempt(&mut self, job: &Prepared, state: &State, leader: &Control, launch: &NodeLaunch) -> Result<EngineReport> {
        self.endpoint.set_attempt(launch.attempt);
        state.begin(launch.attempt)?;
        let io = JobIo { attempt: launch.attempt, checkpoint_dir: Some(state.checkpoints()), temp_in: Some(state.temp()), ..job.io.clone() };
        let forward = leader.clone();
        let config = job.config.clone().with_output_handler(Arc::new(move |node: NodeName, line: &str| {
            let _ = forward.send(&Message::Output { node, line: line.to_string() });
        }));
        let mut nodes = LocalNodes::start(&config, &io, &self.layout, launch)?;
        let attempt_stop = Arc::new(AtomicBool::new(false));
        // The leader's Stop (or its going away) ends waiting for feeds too; its plan waits
        // until every local worker's feed is there (rows for a worker without one would be lost).
        let mut pending: std::collections::VecDeque<Message> = std::collections::VecDeque::new();
        let feeds_ready = loop {
            match nodes.accept_feeds(Duration::from_millis(200), &attempt_stop) {
                Ok(()) => break Ok(()),
                Err(ClusterError::Register(_)) => {}
                Err(error) => break Err(error),
            }
            self.report_exits(&mut nodes, leader);
            match self.inbox.try_recv() {
                Ok((_, Some(message))) => {
                    let ends = matches!(message, Message::Stop | Message::Finish { .. });
                    pending.push_back(message);
                    if ends {
                        break Ok(());
                    }
                }
                Ok((_, None)) => return Err(ClusterError::ProcessLost { process: 0, reason: "(the coordinator) went away".into() }.into()),
                Err(_) => {}
            }
            if job.stop.load(Ordering::SeqCst) {
                return Err(ClusterError::Cancelled.into());
            }
        };
        if let Err(error) = feeds_ready {
            if let ClusterError::NodeExited { node, status, output_tail } = &error {
                let exit = NodeExit { node: *node, status: status.clone(), output_tail: output_tail.clone() };
                let _ = leader.send(&Message::Exited { exit });
            }
            // The leader learns of it from the node's exit; wait for its Stop.
            self.wait_for_stop(&mut nodes, leader, None);
            return Err(error.into());
        }
        let (plan, planned) = mpsc::channel::<Plan>();
        let mut planned = Some(planned);
        let log_path = state.log(self.layout.process);
        let mut engine = None;
        let mut source_and_feeds = job.source.clone().map(|source| (source, nodes.feeds(job.config.worker_count())));
        loop {
            let next = match pending.pop_front() {
                Some(m) => Some(m),
                None => match self.inbox.recv_timeout(Duration::from_millis(50)) {
                    Ok((_, Some(m))) => Some(m),
                    Ok((_, None)) => {
                        attempt_stop.store(true, Ordering::SeqCst);
                        return Err(ClusterError::ProcessLost { process: 0, reason: "(the coordinator) went away".into() }.into());
                    }
                    Err(_) => None,
                },
            };
            match next {
                Some(Message::Positions { positions }) => {
                    let replay = dlflow_engine::positions::plan_replay(std::slice::from_ref(&log_path), &positions)
                        .map_err(|e| Error::Invalid(format!("reading the position log {}: {e}", log_path.display())))?;
                    leader.send(&Message::Consumed { replay }).map_err(lost_leader)?;
                }
                Some(Message::Plan { replay, restore, threads }) => {
                    if let (Some((source, feeds)), Some(planned)) = (source_and_feeds.take(), planned.take()) {
                        let log = PositionLog::open(&log_path, launch.attempt);
                        let mesh = self.mesh_connector(launch.attempt, attempt_stop.clone());
                        engine = Some(job.start_engine(EngineInput { source, feeds, threads, mesh: Some(mesh) }, planned, log, attempt_stop.clone()));
                        let _ = plan.send(Plan { replay, restore });
                    }
                }
                Some(Message::Stop) => break,
                Some(Message::Finish { .. }) => break,
                Some(_) => {}
                None => {}
            }
            self.report_exits(&mut nodes, leader);
            if job.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        attempt_stop.store(true, Ordering::SeqCst);
        nodes.kill_all();
        drop(nodes);
        // The nodes are gone: the leader may go on (the engine winds down meanwhile; the next
        // Start is read only after it has).
        let _ = leader.send(&Message::Stopped);
        self.stopped_sent = true;
        match engine.map(join_engine) {
            Some(Err(error)) if !matches!(error, dlflow_engine::EngineError::Network(_)) => Err(error.into()),
            Some(Ok(report)) => Ok(report),
            _ => Ok(EngineReport::default()),
        }
    }

    fn report_exits(&self, nodes: &mut LocalNodes, leader: &Control) {
        for exit in nodes.poll_exits() {
            let _ = leader.send(&Message::Exited { exit });
        }
    }

    fn wait_for_stop(&mut self, nodes: &mut LocalNodes, leader: &Control, _until: Option<Instant>) {
        loop {
            self.report_exits(nodes, leader);
            match self.inbox.recv_timeout(Duration::from_millis(50)) {
                Ok((_, Some(Message::Stop))) | Ok((_, None)) => return,
                Ok((_, Some(Message::Finish { .. }))) => return,
                _ => {}
            }
        }
    }
}

fn lost_leader(error: std::io::Error) -> Error {
    ClusterError::ProcessLost { process: 0, reason: format!("(the coordinator) went away ({error})") }.into()
}

/// Engine threads per process: the same on every process (timely needs it), so they come from
/// the table's partitions and the process count, not from each host's cores.
fn distributed_engine_threads(job: &Prepared, processes: usize) -> usize {
    let partitions = job.source.as_ref().map_or(1, |s| dlflow_engine::PartitionSource::partitions(s.as_ref()));
    partitions.div_ceil(processes.max(1)).clamp(1, 4)
}

fn show_output(handler: &Option<dlflow_cluster::OutputHandler>, quiet: bool, node: NodeName, line: &str) {
    match handler {
        Some(handler) => handler(node, line),
        None if !quiet => eprintln!("[{node}] {line}"),
        None => {}
    }
}
