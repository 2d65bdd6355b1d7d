//! `dlflow train` over an unbounded TCP stream, as a user runs it: the pass ends with the input
//! and a last model version is exported; two workers export a version every second as they
//! train (they agree on when: their clocks differ, their steps do not); Ctrl-C (SIGINT to the
//! process) ends the input, the nodes finish their pass and export, and dlflow exits 130 with
//! nothing left running.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The training stream's table over the producer on `port`; its end ends the input.
fn stream_sql(port: u16) -> String {
    format!(
        "CREATE UNBOUNDED EXTERNAL TABLE samples (x FLOAT, y FLOAT) STORED AS JSON LOCATION 'tcp://127.0.0.1:{port}'
         OPTIONS ('reconnect' 'false');
         SELECT x, y FROM samples"
    )
}

/// When a [`producer`] closes its stream.
enum Until {
    /// After this many rows, sent as fast as the peer reads them.
    Rows(usize),
    /// When the peer goes away; about 1000 rows a second.
    PeerLeaves,
    /// When the flag is set (or the peer goes away); about 1000 rows a second.
    Flag(Arc<AtomicBool>),
}

/// Serves `{"x", "y"}` lines (y = 2x + 1) to the first peer until `until` says; returns the
/// port and a thread that ends with the number of rows sent.
fn producer(until: Until) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let thread = std::thread::spawn(move || {
        let (peer, _) = listener.accept().expect("dlflow connects");
        let mut peer = std::io::BufWriter::new(peer);
        let mut sent = 0;
        loop {
            let paced = match &until {
                Until::Rows(rows) if sent >= *rows => break,
                Until::Flag(stop) if stop.load(Ordering::SeqCst) => break,
                Until::Rows(_) => false,
                Until::PeerLeaves | Until::Flag(_) => true,
            };
            let x = (sent % 200) as f64 / 100.0 - 1.0;
            if writeln!(peer, "{{\"x\": {x}, \"y\": {}}}", 2.0 * x + 1.0).is_err() {
                break;
            }
            sent += 1;
            if paced && sent % 50 == 0 {
                if peer.flush().is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = peer.flush();
        sent
    });
    (port, thread)
}

/// The numbered folders and other entries of a versions' base folder.
fn entries(base: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(base).expect("base").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Dead, or a zombie whose new parent has not reaped it yet: either way not running.
fn not_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn train_over_a_tcp_stream_ends_with_its_input_and_exports_a_last_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("linear");
    let (port, producer) = producer(Until::Rows(800));
    let entry = repo().join("examples/online/train.py");
    let output = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args(["train", "--sql", &stream_sql(port), "--entry", &format!("{}:train_entry", entry.display())])
        .args(["--property", &format!("model_dir={}", base.display()), "--property", "every_steps=1000000"])
        .output()
        .expect("run dlflow");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(producer.join().expect("producer"), 800);
    // No version during the pass (every 1000000 steps); the one at its end, complete.
    assert_eq!(entries(&base), vec!["1".to_string()], "{stderr}");
    assert!(base.join("1/saved_model.pb").is_file());
    assert!(stderr.contains("model version 1 exported to"), "{stderr}");
    assert!(stderr.contains("800 rows fed"), "the report counts every row: {stderr}");
}

/// A loop of its own (TFContext.version_exporter's step_done/finish): writes its pid, a marker
/// once it trained a step, and its step count at the end.
const ONLINE_ENTRY: &str = r#"
import os
import tensorflow as tf
from dlflow import TFContext

def online_entry(context):
    ctx = TFContext(context)
    out = ctx.get_property("out_dir")
    with open(os.path.join(out, "worker.pid"), "w") as f:
        f.write(str(os.getpid()))
    model = tf.keras.Sequential([tf.keras.Input(shape=(1,), name="x"), tf.keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    exporter = ctx.version_exporter(model, ctx.get_property("model_dir"), every_steps=1000000)
    steps = 0
    for x, y in ctx.get_tfdataset(features="x", label="y", batch_size=16):
        model.train_on_batch(tf.expand_dims(x, -1), y)
        exporter.step_done()
        steps += 1
        if steps == 1:
            open(os.path.join(out, "training"), "w").close()
    exporter.finish()
    with open(os.path.join(out, "steps.txt"), "w") as f:
        f.write(str(steps))
"#;

#[test]
fn sigint_ends_online_training_with_a_last_version_and_no_node_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("linear");
    let entry = dir.path().join("online_entry.py");
    std::fs::write(&entry, ONLINE_ENTRY).expect("entry");
    let (port, producer) = producer(Until::PeerLeaves);
    let child = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args(["train", "--sql", &stream_sql(port), "--entry", &format!("{}:online_entry", entry.display())])
        .args(["--property", &format!("model_dir={}", base.display()), "--property", &format!("out_dir={}", dir.path().display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.path().join("training").is_file() {
        assert!(Instant::now() < deadline, "the worker did not start training");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!base.join("1").exists(), "no version before the end of the pass");
    // What Ctrl-C in a terminal does to dlflow (the nodes have their own process group).
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping: the stream's input ends here"), "{stderr}");
    assert!(stderr.contains("interrupted: the stream's input was ended; every node finished its pass"), "{stderr}");
    // The pass finished: the entry wrote its steps, and the last version is there, complete.
    let steps: u64 = std::fs::read_to_string(dir.path().join("steps.txt")).expect("the entry finished its pass").trim().parse().expect("steps");
    assert!(steps >= 1);
    assert_eq!(entries(&base), vec!["1".to_string()], "the last version and nothing half written: {stderr}");
    assert!(base.join("1/saved_model.pb").is_file() && base.join("1/variables/variables.index").is_file());
    // The node is gone, and the producer saw dlflow go away.
    let pid: u32 = std::fs::read_to_string(dir.path().join("worker.pid")).expect("pid").trim().parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !not_running(pid) {
        assert!(Instant::now() < deadline, "the node outlived dlflow: {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(producer.join().expect("producer") > 0);
}

#[test]
fn two_workers_export_versions_every_second_during_the_pass_and_share_the_stream_evenly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("linear");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, producer) = producer(Until::Flag(stop.clone()));
    let entry = repo().join("examples/online/train.py");
    let child = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args(["train", "--workers", "2", "--sql", &stream_sql(port), "--entry", &format!("{}:train_entry", entry.display())])
        .args(["--property", &format!("model_dir={}", base.display()), "--property", "every_seconds=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The stream flows until two versions were exported during the pass; then it ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !base.join("2").is_dir() {
        assert!(Instant::now() < deadline, "no second version within 120 s of streaming: {:?}", base.is_dir().then(|| entries(&base)));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    // The end of the stream must end the job: it is not left to hang the test.
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let Ok(output) = receiver.recv_timeout(Duration::from_secs(120)) else {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("dlflow did not end within 120 s of the end of its input stream");
    };
    let output = output.expect("wait");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let sent = producer.join().expect("producer");

    // Versions 1..n, the last exported when the stream ended; all complete, nothing else left.
    let versions = entries(&base);
    let n = versions.len();
    assert!(n >= 3, "two versions during the pass and one at its end: {versions:?}");
    // `entries` sorts names as text, so the expected names are sorted the same way.
    let mut expected: Vec<String> = (1..=n).map(|v| v.to_string()).collect();
    expected.sort();
    assert_eq!(versions, expected, "numbered from 1, none half written: {stderr}");
    for version in &versions {
        assert!(base.join(version).join("saved_model.pb").is_file() && base.join(version).join("variables/variables.index").is_file());
    }
    // Exported once each, by the chief.
    let exports = stderr.lines().filter(|l| l.starts_with("model version ") && l.contains(" exported to ")).count();
    assert_eq!(exports, n, "{stderr}");
    // Both workers took equal shares of every row sent, less at most one.
    let per_worker = sent / 2;
    assert!(stderr.contains(&format!("rows per worker {per_worker} / {per_worker}")), "{sent} rows sent: {stderr}");
    assert!(stderr.contains(&format!("{} rows fed in all", 2 * per_worker)), "{sent} rows sent: {stderr}");
}
