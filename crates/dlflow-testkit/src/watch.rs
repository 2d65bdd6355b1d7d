//! Running a child process while watching its resident memory, as read from `/proc/PID/status`
//! (Linux): the peak a benchmark prints beside a command, and a memory cap a test enforces.
//!
//! Why polling `/proc` rather than `getrusage`/`wait4` (`ru_maxrss`) or `/usr/bin/time`: the
//! crates using this do not depend on `libc`, `/usr/bin/time` is not on every machine, and a cap
//! has to be checked while the child runs anyway. Why a cap enforced here rather than `ulimit -v`
//! or a cgroup: `RLIMIT_AS` limits address space, and TensorFlow reserves far more of it than it
//! ever touches (see crates/dlflow-cli/tests/it/bounded_memory.rs for the numbers), and a memory
//! cgroup needs a writable cgroup v2 tree with the memory controller, which containers and CI
//! machines often do not give.
//!
//! The peak is the kernel's own high-water mark (`VmHWM`), read until the process exits, so a
//! spike between two samples is still counted; only growth in its last few milliseconds (after
//! the last read) can be missed. It covers the child process itself, not processes it starts.
//!
//! The cap applies to anonymous memory (`RssAnon`: heap, stacks, what the process allocated),
//! not to the whole resident set: the rest is pages of mapped files, mostly TensorFlow's shared
//! library (about 370 MB of `dlflow predict`'s resident set), clean pages the kernel drops and
//! reads again under pressure, as a memory cgroup would make it. What grows with data is the
//! anonymous part.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the child's memory is read: often enough that a cap is caught while the overshoot
/// is small (dlflow's memory grows by at most a few batches between reads), rare enough to cost
/// nothing measurable (a read of `/proc/PID/status` takes some microseconds).
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// What one watched run of a command did.
#[derive(Debug)]
pub struct Watched {
    /// How the child ended (killed by a signal when it went over the cap).
    pub status: ExitStatus,
    /// Its standard output and error.
    pub stdout: String,
    pub stderr: String,
    /// From the spawn to the exit.
    pub wall: Duration,
    /// The largest resident set (`VmHWM`) the kernel recorded, in bytes.
    pub peak_rss: u64,
    /// The largest anonymous resident memory (`RssAnon`) seen, in bytes.
    pub peak_anon: u64,
    /// The anonymous resident memory at which the child was killed for going over the cap.
    pub over_cap: Option<u64>,
}

impl Watched {
    /// The peak resident set in MiB, for printing.
    pub fn peak_mib(&self) -> f64 {
        self.peak_rss as f64 / (1024.0 * 1024.0)
    }

    /// Panics, naming `what` and showing its output, unless the command exited with success.
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success() && self.over_cap.is_none(),
            "{what} failed ({}{}):\nstdout: {}\nstderr: {}",
            self.status,
            self.over_cap.map(|anon| format!(", killed at {} MiB anonymous memory, over the cap", anon >> 20)).unwrap_or_default(),
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `command` to its end (its standard input closed, its output captured), reading its
/// memory every [`POLL_INTERVAL`]. With `cap` (bytes), the child is killed as soon as its
/// anonymous resident memory is seen above it, and [`Watched::over_cap`] says at what size.
pub fn run_watched(command: &mut Command, cap: Option<u64>) -> Watched {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    // Read both pipes on threads of their own, or a child writing much would block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status_file = format!("/proc/{}/status", child.id());
    let (mut peak_rss, mut peak_anon, mut over_cap) = (0, 0, None);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        // Absent once the child is a zombie: the last values read stand.
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            peak_rss = peak_rss.max(field_bytes(&text, "VmHWM:").unwrap_or(0));
            let anon = field_bytes(&text, "RssAnon:").unwrap_or(0);
            peak_anon = peak_anon.max(anon);
            if cap.is_some_and(|cap| anon > cap) {
                over_cap = Some(anon);
                break kill(&mut child);
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let wall = started.elapsed();
    Watched { status, stdout: joined(stdout), stderr: joined(stderr), wall, peak_rss, peak_anon, over_cap }
}

fn kill(child: &mut Child) -> ExitStatus {
    let _ = child.kill(); // it may have exited on its own meanwhile
    child.wait().expect("wait for the killed child")
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn joined(reader: JoinHandle<String>) -> String {
    reader.join().expect("the output reader thread")
}

/// A `NAME:   1234 kB` line of `/proc/PID/status`, in bytes.
fn field_bytes(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kilobytes: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kilobytes * 1024)
}
