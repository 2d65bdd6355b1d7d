//! Several dlflow processes: the hostfile, dlflow's connection handshake, and timely's
//! cluster allocators built from the sockets dlflow connected itself.
//!
//! Every connection between two processes of a job opens with a [`Hello`] (magic, job id,
//! attempt, process index, role) and gets an answer. A process of another job, of a finished
//! attempt, or with a different hostfile is refused, and both sides say why; only then does
//! timely get the socket. Process `i` dials processes `0..i` and is dialled by the others (the
//! timely way); the processes `1..n` also keep one control connection to process 0, the
//! coordinator, for the whole job.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// First bytes of every dlflow connection between processes.
const MAGIC: &[u8; 8] = b"DLFLOW\x00\x01";
/// How long a connection may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to reach a process that is not listening yet.
const RETRY: Duration = Duration::from_millis(100);

/// The processes of a job: one `HOST:PORT` per line, process `i` on line `i` (timely's hostfile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts(Vec<String>);

impl Hosts {
    /// Reads a hostfile: one `HOST:PORT` per line; blank lines and `#` comments are skipped.
    pub fn read(path: &Path) -> Result<Hosts, EngineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Network(format!("cannot read the hostfile {}: {e}", path.display())))?;
        Hosts::parse(&text).map_err(|e| EngineError::Network(format!("hostfile {}: {e}", path.display())))
    }

    /// Parses hostfile text.
    ///
    /// ```
    /// let hosts = dlflow_engine::Hosts::parse("127.0.0.1:7001\n# the second\n127.0.0.1:7002\n")?;
    /// assert_eq!(hosts.len(), 2);
    /// assert_eq!(hosts.address(1), "127.0.0.1:7002");
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(text: &str) -> Result<Hosts, String> {
        let mut addresses = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                    addresses.push(line.to_string());
                }
                _ => return Err(format!("line {}: `{line}` is not HOST:PORT (for example 10.0.0.5:7001)", number + 1)),
            }
        }
        if addresses.is_empty() {
            return Err("no HOST:PORT line".into());
        }
        Ok(Hosts(addresses))
    }

    /// How many processes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no process (never true for a parsed hostfile).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Process `i`'s address.
    pub fn address(&self, process: usize) -> &str {
        &self.0[process]
    }

    /// Process `i`'s host (the address without the port).
    pub fn host(&self, process: usize) -> &str {
        self.0[process].rsplit_once(':').map_or(self.0[process].as_str(), |(host, _)| host)
    }
}

/// What a connection between processes is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// One of timely's data connections, for one attempt.
    Mesh,
    /// The job-long control connection from a process to process 0.
    Control,
}

/// The handshake: who is calling, for which job and attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    job: String,
    attempt: u32,
    process: usize,
    processes: usize,
    role: Role,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    reason: String,
}

/// A connection that passed the handshake and waits to be taken.
struct Incoming {
    role: Role,
    attempt: u32,
    process: usize,
    stream: TcpStream,
}

/// One process's place in a job: it listens at its hostfile address, answers handshakes, and
/// connects to the others. Dropping it stops listening.
pub struct Endpoint {
    job: String,
    process: usize,
    hosts: Hosts,
    attempt: Arc<AtomicU32>,
    incoming: Arc<Mutex<Vec<Incoming>>>,
    refused: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("job", &self.job).field("process", &self.process).finish()
    }
}

impl Endpoint {
    /// Listens at process `process`'s address of `hosts` for job `job`.
    pub fn bind(job: &str, hosts: Hosts, process: usize) -> Result<Endpoint, EngineError> {
        if process >= hosts.len() {
            return Err(EngineError::Network(format!(
                "process index {process} is not in the hostfile, which has {} line(s) (indices 0 to {})",
                hosts.len(),
                hosts.len() - 1
            )));
        }
        let address = hosts.address(process).to_string();
        let listener = TcpListener::bind(&address).map_err(|e| {
            EngineError::Network(format!("process {process} cannot listen at {address} (line {} of the hostfile): {e}", process + 1))
        })?;
        listener.set_nonblocking(true).map_err(|e| EngineError::Network(format!("listening at {address}: {e}")))?;
        let endpoint = Endpoint {
            job: job.to_string(),
            process,
            hosts,
            attempt: Arc::new(AtomicU32::new(0)),
            incoming: Arc::default(),
            refused: Arc::default(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        let accept = Acceptor {
            job: endpoint.job.clone(),
            process,
            processes: endpoint.hosts.len(),
            attempt: endpoint.attempt.clone(),
            incoming: endpoint.incoming.clone(),
            refused: endpoint.refused.clone(),
            closed: endpoint.closed.clone(),
        };
        std::thread::Builder::new()
            .name("dlflow-accept".into())
            .spawn(move || accept.run(listener))
            .map_err(|e| EngineError::Network(format!("starting the accept thread: {e}")))?;
        Ok(endpoint)
    }

    /// This process's index.
    pub fn process(&self) -> usize {
        self.process
    }

    /// The job's processes.
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// The job id every connection must carry.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Moves to `attempt`: connections of earlier attempts are refused from now on.
    pub fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::SeqCst);
        let mut incoming = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        incoming.retain(|i| i.role != Role::Mesh || i.attempt >= attempt);
    }

    /// Process 0: waits for the control connection of every other process.
    pub fn accept_control(&self, timeout: Duration, stop: &AtomicBool) -> Result<Vec<TcpStream>, EngineError> {
        let others: Vec<usize> = (1..self.hosts.len()).collect();
        let mut streams = self.take(Role::Control, 0, &others, timeout, stop)?;
        // `take` returns every process asked for or an error; a gap is still an error, not a panic.
        others
            .iter()
            .map(|p| streams.remove(p).ok_or_else(|| EngineError::Network(format!("process {p} opened no control connection"))))
            .collect()
    }

    /// Processes 1..n: the control connection to process 0.
    pub fn connect_control(&self, timeout: Duration, stop: &AtomicBool) -> Result<TcpStream, EngineError> {
        self.dial(0, Role::Control, 0, Instant::now() + timeout, stop)
    }

    /// Connects this process to every other for `attempt` and returns the sockets, one per
    /// process in order, `None` at this process's own place: what timely's networking takes.
    pub fn mesh(&self, attempt: u32, timeout: Duration, stop: &AtomicBool) -> Result<Vec<Option<TcpStream>>, EngineError> {
        let deadline = Instant::now() + timeout;
        let mut sockets: Vec<Option<TcpStream>> = (0..self.hosts.len()).map(|_| None).collect();
        for (process, socket) in sockets.iter_mut().enumerate().take(self.process) {
            *socket = Some(self.dial(process, Role::Mesh, attempt, deadline, stop)?);
        }
        let later: Vec<usize> = (self.process + 1..self.hosts.len()).collect();
        let remaining = deadline.saturating_duration_since(Instant::now());
        for (process, stream) in self.take(Role::Mesh, attempt, &later, remaining, stop)? {
            sockets[process] = Some(stream);
        }
        Ok(sockets)
    }

    /// Waits for handshaken connections of `role` and `attempt` from each of `from`.
    fn take(
        &self,
        role: Role,
        attempt: u32,
        from: &[usize],
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<HashMap<usize, TcpStream>, EngineError> {
        let deadline = Instant::now() + timeout;
        let mut taken = HashMap::new();
        loop {
            {
                let mut incoming = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
                let mut i = 0;
                while i < incoming.len() {
                    let c = &incoming[i];
                    if c.role == role && c.attempt == attempt && from.contains(&c.process) {
                        let c = incoming.remove(i);
                        taken.insert(c.process, c.stream);
                    } else {
                        i += 1;
                    }
                }
            }
            if from.iter().all(|p| taken.contains_key(p)) {
                return Ok(taken);
            }
            if stop.load(Ordering::SeqCst) {
                return Err(EngineError::Network("cancelled while waiting for the other processes".into()));
            }
            if Instant::now() > deadline {
                let missing: Vec<String> = from
                    .iter()
                    .filter(|p| !taken.contains_key(p))
                    .map(|&p| format!("process {p} ({})", self.hosts.address(p)))
                    .collect();
                return Err(EngineError::Network(format!(
                    "{} did not connect within {:.0} s{}",
                    missing.join(", "),
                    timeout.as_secs_f64(),
                    self.refusals()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connects to `process` and passes the handshake, retrying while it is not listening.
    fn dial(&self, process: usize, role: Role, attempt: u32, deadline: Instant, stop: &AtomicBool) -> Result<TcpStream, EngineError> {
        let address = self.hosts.address(process);
        let hello = Hello { job: self.job.clone(), attempt, process: self.process, processes: self.hosts.len(), role };
        let mut last_error = String::from("no answer");
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(EngineError::Network("cancelled while connecting to the other processes".into()));
            }
            if Instant::now() > deadline {
                return Err(EngineError::Network(format!(
                    "process {process} ({address}) could not be reached: {last_error}; is `--process {process}` running with the same hostfile?"
                )));
            }
            match connect(address) {
                Ok(mut stream) => match handshake(&mut stream, &hello) {
                    Ok(answer) if answer.ok => {
                        stream.set_read_timeout(None).ok();
                        stream.set_nodelay(true).ok();
                        return Ok(stream);
                    }
                    Ok(answer) => {
                        return Err(EngineError::Network(format!("process {process} ({address}) refused this process: {}", answer.reason)));
                    }
                    Err(e) => last_error = format!("handshake failed: {e}"),
                },
                Err(e) => last_error = e.to_string(),
            }
            std::thread::sleep(RETRY);
        }
    }

    fn refusals(&self) -> String {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.is_empty() { String::new() } else { format!("; refused: {}", refused.join("; ")) }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

fn connect(address: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other(format!("{address} resolves to no address"));
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn handshake(stream: &mut TcpStream, hello: &Hello) -> std::io::Result<Answer> {
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    stream.write_all(MAGIC)?;
    write_json(stream, hello)?;
    read_json(stream)
}

fn write_json(stream: &mut TcpStream, value: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    stream.write_all(&(body.len() as u32).to_le_bytes())?;
    stream.write_all(&body)?;
    stream.flush()
}

fn read_json<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > 1 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "handshake larger than 1 MiB"));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The accept loop: answers handshakes and queues the connections that pass.
struct Acceptor {
    job: String,
    process: usize,
    processes: usize,
    attempt: Arc<AtomicU32>,
    incoming: Arc<Mutex<Vec<Incoming>>>,
    refused: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl Acceptor {
    fn run(self, listener: TcpListener) {
        while !self.closed.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, peer)) => self.answer(stream, peer.to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn answer(&self, mut stream: TcpStream, peer: String) {
        if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(HELLO_TIMEOUT)).is_err() {
            return;
        }
        let mut magic = [0u8; 8];
        if stream.read_exact(&mut magic).is_err() || &magic != MAGIC {
            self.refuse_quietly(format!("a connection from {peer} that is not a dlflow process"));
            return;
        }
        let hello: Hello = match read_json(&mut stream) {
            Ok(hello) => hello,
            Err(e) => {
                self.refuse_quietly(format!("a connection from {peer} with an unreadable handshake ({e})"));
                return;
            }
        };
        let current = self.attempt.load(Ordering::SeqCst);
        let reason = if hello.job != self.job {
            Some(format!("it belongs to job `{}`, and this process runs job `{}`", hello.job, self.job))
        } else if hello.processes != self.processes {
            Some(format!("its hostfile has {} process(es), this process's has {}", hello.processes, self.processes))
        } else if hello.process >= self.processes || hello.process == self.process {
            Some(format!("it claims process index {}, which is not another process of this job", hello.process))
        } else if hello.role == Role::Mesh && hello.attempt < current {
            Some(format!("it is from attempt {}, and the job is at attempt {current} (a stale process)", hello.attempt))
        } else if hello.role == Role::Control && self.process != 0 {
            Some("control connections go to process 0".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            let message = format!("refused process {} at {peer}: {reason}", hello.process);
            tracing::error!("{message}");
            self.refused.lock().unwrap_or_else(|e| e.into_inner()).push(message);
            let _ = write_json(&mut stream, &Answer { ok: false, reason });
            return;
        }
        if write_json(&mut stream, &Answer { ok: true, reason: String::new() }).is_err() {
            return;
        }
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_nodelay(true);
        let mut incoming = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        // A process that reconnects replaces its earlier connection of the same kind.
        incoming.retain(|i| !(i.role == hello.role && i.process == hello.process && i.attempt == hello.attempt));
        incoming.push(Incoming { role: hello.role, attempt: hello.attempt, process: hello.process, stream });
    }

    fn refuse_quietly(&self, message: String) {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).push(message);
    }
}

/// Starts timely on `threads` worker threads per process over the connected `sockets`.
pub(crate) fn timely_allocators(
    sockets: Vec<Option<TcpStream>>,
    process: usize,
    threads: usize,
) -> Result<(Vec<timely::communication::AllocatorBuilder>, Box<dyn std::any::Any + Send>), EngineError> {
    use timely::communication::allocator::ProcessBuilder;
    use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
    let hooks = timely::communication::Hooks::default();
    let local = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), None);
    let (builders, guard) = initialize_networking_from_sockets(local, sockets, process, threads, hooks)
        .map_err(|e| EngineError::Network(format!("starting timely's networking: {e}")))?;
    Ok((builders.into_iter().map(timely::communication::AllocatorBuilder::Tcp).collect(), Box::new(guard)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
    }

    fn hosts(n: usize) -> Hosts {
        Hosts((0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect())
    }

    #[test]
    fn bad_hostfiles_are_refused_with_the_line() {
        let error = Hosts::parse("127.0.0.1:7001\nnot-an-address\n").expect_err("bad line");
        assert!(error.contains("line 2") && error.contains("not-an-address"), "{error}");
        assert!(Hosts::parse("# nothing\n").expect_err("empty").contains("no HOST:PORT"));
    }

    #[test]
    fn three_processes_connect_and_a_foreign_or_stale_one_is_refused() {
        let hosts = hosts(3);
        let stop = AtomicBool::new(false);
        let endpoints: Vec<Endpoint> = (0..3).map(|p| Endpoint::bind("job-a", hosts.clone(), p).expect("bind")).collect();
        let meshes: Vec<Vec<Option<TcpStream>>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                endpoints.iter().map(|e| s.spawn(|| e.mesh(0, Duration::from_secs(10), &stop).expect("mesh"))).collect();
            handles.into_iter().map(|h| h.join().expect("join")).collect()
        });
        for (p, mesh) in meshes.iter().enumerate() {
            assert_eq!(mesh.iter().filter(|s| s.is_some()).count(), 2, "process {p}");
            assert!(mesh[p].is_none());
        }

        // Another job, at process 1's place, is refused by process 0, and says so.
        let foreign = Endpoint::bind("job-b", hosts.clone(), 1).expect_err("port taken by process 1");
        assert!(foreign.to_string().contains("cannot listen"), "{foreign}");
        let other_hosts = Hosts(vec![hosts.address(0).to_string(), format!("127.0.0.1:{}", free_port())]);
        let intruder = Endpoint::bind("job-b", other_hosts, 1).expect("bind");
        let error = intruder.mesh(0, Duration::from_secs(5), &stop).expect_err("refused");
        assert!(error.to_string().contains("refused this process") && error.to_string().contains("job `job-b`"), "{error}");

        // A stale process of attempt 0, once the job is at attempt 1.
        endpoints[0].set_attempt(1);
        let stale = endpoints[2].dial(0, Role::Mesh, 0, Instant::now() + Duration::from_secs(5), &stop).expect_err("stale");
        assert!(stale.to_string().contains("attempt 0") && stale.to_string().contains("stale"), "{stale}");
        let refused = endpoints[0].refusals();
        assert!(refused.contains("job-b") && refused.contains("stale"), "{refused}");
    }

    #[test]
    fn a_missing_process_is_named() {
        let hosts = hosts(2);
        let stop = AtomicBool::new(false);
        let endpoint = Endpoint::bind("job", hosts.clone(), 0).expect("bind");
        let error = endpoint.mesh(0, Duration::from_millis(300), &stop).expect_err("process 1 is missing");
        assert!(error.to_string().contains(&format!("process 1 ({}) did not connect", hosts.address(1))), "{error}");
        let nobody_at_0 = Hosts(vec![format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())]);
        let dialer = Endpoint::bind("job", nobody_at_0, 1).expect("bind");
        let error = dialer.mesh(0, Duration::from_millis(300), &stop).expect_err("process 0 is missing");
        assert!(error.to_string().contains("process 0") && error.to_string().contains("could not be reached"), "{error}");
    }
}
