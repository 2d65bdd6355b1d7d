//! `dlflow tensorboard DIR`: a real TensorBoard, started with dlflow's Python on 127.0.0.1,
//! serving the runs of a folder of event files, and gone when dlflow is.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes one scalar with TensorBoard's own writer into `dir/train`.
fn write_events(dir: &Path) {
    let script = r#"
import sys, os
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
writer = EventFileWriter(os.path.join(sys.argv[1], "train"))
value = summary_pb2.Summary.Value(tag="epoch_loss", simple_value=0.5)
writer.add_event(event_pb2.Event(step=0, wall_time=1.0, summary=summary_pb2.Summary(value=[value])))
writer.close()
"#;
    let python = PathBuf::from(std::env::var_os("DLFLOW_VENV").expect("DLFLOW_VENV is not set: run scripts/test.sh")).join("bin/python");
    let output = Command::new(python).args(["-c", script]).arg(dir).output().expect("python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Processes whose command line mentions `needle` (the test's own folder: only its server).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
            alive && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

#[test]
fn tensorboard_serves_the_runs_on_loopback_and_stops_with_dlflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("linear.tensorboard");
    write_events(&logs);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args(["tensorboard", logs.to_str().expect("utf8"), "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_in, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_in.send(line);
        }
    });
    // TensorBoard prints "TensorBoard 2.x at http://127.0.0.1:PORT/ (Press CTRL+C to quit)".
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let port = loop {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("no address from TensorBoard; it printed:\n{}", seen.join("\n"))
        });
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().and_then(|p| p.parse::<u16>().ok()).expect("a port");
        }
        seen.push(line);
    };
    let mut runs = None;
    while Instant::now() < deadline {
        if let Some(response) = http_get(port, "/data/runs").filter(|r| r.contains("train")) {
            runs = Some(response);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs = runs.unwrap_or_else(|| panic!("TensorBoard on port {port} did not list the run"));
    assert!(runs.starts_with("HTTP/1.1 200") && runs.contains("[\"train\"]"), "{runs}");
    assert!(seen.iter().all(|l| !l.contains("oneDNN") && !l.contains("cuInit")), "TensorFlow's start-up lines are hidden: {seen:?}");

    // dlflow killed (not even a chance to clean up): TensorBoard goes with it.
    let needle = logs.to_str().expect("utf8").to_string();
    assert!(!processes_mentioning(&needle).is_empty(), "the server runs");
    child.kill().expect("kill");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&needle).is_empty() {
        assert!(Instant::now() < deadline, "TensorBoard outlived dlflow: {:?}", processes_mentioning(&needle));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_missing_folder_is_refused_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_dlflow")).args(["tensorboard", "/nonexistent/linear.tensorboard"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/linear.tensorboard is not a folder of TensorBoard event files"), "{stderr}");
}
