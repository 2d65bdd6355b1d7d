//! `dlflow train` as several real dlflow processes on loopback (`--hosts`, `--process`), and
//! recovery as a user meets it: a killed worker node, a killed dlflow process and `--resume`,
//! a process that never comes, a process of another job, Ctrl-C. No orphan process and no
//! temp file after any of them.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};


fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/job.toml")
}

/// A sandbox for dlflow processes: their own dlflow home (state folders) and temp folder,
/// so that the test sees everything they leave behind.
struct Sandbox {
    dir: tempfile::TempDir,
    /// One sandbox at a time: a hostfile's ports are free when written, and a job started
    /// again (`--resume`) binds them again; another test's processes must not take them between.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static ONE_JOB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Sandbox {
    fn new() -> Sandbox {
        let serial = ONE_JOB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let sandbox = Sandbox { dir: tempfile::tempdir().expect("tempdir"), _serial: serial };
        std::fs::create_dir_all(sandbox.home()).expect("home");
        std::fs::create_dir_all(sandbox.tmp()).expect("tmp");
        sandbox
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hostfile(&self, processes: usize) -> PathBuf {
        let path = self.path("hosts");
        std::fs::write(&path, dlflow_testkit::loopback_hostfile(processes)).expect("hostfile");
        path
    }

    fn dlflow(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dlflow"));
        command
            .args(args)
            .env("DLFLOW_HOME", self.home())
            .env("DLFLOW_VENV", dlflow::layers::dlflow_common::paths::project_venv())
            .env("TMPDIR", self.tmp())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Nothing left: no temp files (nodes' folders, autograph files) and no job state.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp()).expect("tmp").filter_map(|e| e.ok()).map(|e| e.path()).collect();
        assert!(left.is_empty(), "temp files left behind: {left:?}");
        let jobs = self.home().join("jobs");
        let states: Vec<_> =
            std::fs::read_dir(&jobs).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        assert!(states.is_empty(), "job state left after success: {states:?}");
    }
}

/// A running dlflow process whose stderr is collected.
struct Running {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command.spawn().expect("spawn dlflow");
        let mut pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Running { child, stderr }
    }

    fn wait(mut self, limit: Duration) -> (Option<i32>, String, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), self.stderr.join().expect("stderr"), started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("dlflow did not end within {limit:?}: {}", self.stderr.join().expect("stderr"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `ready` holds; fails, with dlflow's stderr, if dlflow ends first or `limit`
    /// passes (so a run that failed early shows why instead of a bare timeout).
    fn wait_for(&mut self, what: &str, limit: Duration, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                panic!("dlflow ended ({status}) before {what}: {}", stderr.join().expect("stderr"));
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                panic!("not within {limit:?}: {what}: {}", stderr.join().expect("stderr"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process ids of this dlflow's node processes (its children).
    fn nodes(&self) -> Vec<u32> {
        children(self.child.id())
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return found };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    found
}

fn not_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn assert_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| not_running(p)) {
        assert!(Instant::now() < deadline, "node processes outlived dlflow: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The trained linear model's weight and bias, through `dlflow sql`: y(0) is the bias,
/// y(1) - y(0) the weight.
fn weight_and_bias(model: &Path) -> (f64, f64) {
    let output = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args([
            "sql",
            "--model",
            &format!("m={}", model.display()),
            "SELECT predict('m', CAST(0.0 AS FLOAT)) AS y0, predict('m', CAST(1.0 AS FLOAT)) AS y1",
        ])
        .output()
        .expect("dlflow sql");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let row = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .nth(1)
        .unwrap_or_else(|| panic!("no result row: {text}{}", String::from_utf8_lossy(&output.stderr)));
    let values: Vec<f64> = row.split('|').filter_map(|v| v.trim().parse().ok()).collect();
    assert_eq!(values.len(), 2, "{text}");
    (values[1] - values[0], values[0])
}

fn train_args<'a>(job: &'a str, model: &'a str) -> Vec<String> {
    vec!["train".into(), "--job".into(), job.into(), "--property".into(), format!("model_dir={model}")]
}

#[test]
fn two_processes_of_one_worker_train_the_quick_start_like_one_process_of_two() {
    let sandbox = Sandbox::new();
    let job = quickstart();
    let job = job.to_str().expect("utf8");

    let one = sandbox.path("one");
    let mut command = sandbox.dlflow(&[]);
    command.args(train_args(job, one.to_str().expect("utf8")));
    let (code, stderr, _) = Running::start(command).wait(Duration::from_secs(300));
    assert_eq!(code, Some(0), "{stderr}");

    let two = sandbox.path("two");
    let hosts = sandbox.hostfile(2);
    let processes: Vec<Running> = (0..2)
        .map(|process| {
            let mut command = sandbox.dlflow(&[]);
            command.args(train_args(job, two.to_str().expect("utf8")));
            command.args(["--hosts", hosts.to_str().expect("utf8"), "--process", &process.to_string()]);
            Running::start(command)
        })
        .collect();
    let mut outputs = Vec::new();
    for running in processes {
        let (code, stderr, _) = running.wait(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{stderr}");
        outputs.push(stderr);
    }
    // Process 0 reports the whole job: both workers' epochs, and worker 1's output too.
    assert!(outputs[0].contains("epoch 4/4: rows per worker 2560 / 2560"), "{}", outputs[0]);
    assert!(!outputs[1].contains("rows per worker"), "only process 0 prints the report: {}", outputs[1]);

    let (w1, b1) = weight_and_bias(&one);
    let (w2, b2) = weight_and_bias(&two);
    assert!((w1 - 2.0).abs() < 0.05 && (b1 - 1.0).abs() < 0.05, "one process: w {w1}, b {b1}");
    assert!((w2 - w1).abs() < 0.05 && (b2 - b1).abs() < 0.05, "two processes: w {w2}, b {b2}; one: w {w1}, b {b1}");
    sandbox.assert_clean();
}

const TOPOLOGY_ENTRY: &str = r#"
import json, os, time
import tensorflow as tf
from dlflow import TFContext

def topology_entry(context):
    ctx = TFContext(context)
    if ctx.get_node_type() == "ps":
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(ctx.get_tf_cluster_config()), task_type="ps", task_id=ctx.get_index(), rpc_layer="grpc")
        tf.distribute.Server(resolver.cluster_spec(), job_name="ps", task_index=ctx.get_index(), protocol="grpc").join()
        return
    rows = [sum(1 for _ in ctx.get_tfdataset()) for _ in range(ctx.get_epochs())]
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump({"cluster": ctx.get_tf_cluster_config(), "rows": rows, "pid": os.getpid()}, f)
"#;

#[test]
fn two_processes_of_two_workers_and_a_parameter_server() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path("entries.py"), TOPOLOGY_ENTRY).expect("entry");
    let out = sandbox.path("out");
    std::fs::create_dir_all(&out).expect("out");
    let job = sandbox.path("job.toml");
    std::fs::write(
        &job,
        format!(
            "epochs = 2\n[input]\nsql = \"\"\"\nCREATE EXTERNAL TABLE t (x DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' \
             OPTIONS ('number-of-rows' '4000');\nSELECT x FROM t\n\"\"\"\n[cluster]\nworkers = 4\nps = 1\n\
             entry = \"entries.py\"\nfunction = \"topology_entry\"\n[properties]\nout_dir = \"{}\"\n",
            out.display()
        ),
    )
    .expect("job");
    let hosts = sandbox.hostfile(2);
    let processes: Vec<Running> = (0..2)
        .map(|process| {
            let mut command = sandbox.dlflow(&["train", "--job", job.to_str().expect("utf8")]);
            command.args(["--hosts", hosts.to_str().expect("utf8"), "--process", &process.to_string()]);
            Running::start(command)
        })
        .collect();
    for running in processes {
        let (code, stderr, _) = running.wait(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{stderr}");
    }
    let mut shares = Vec::new();
    for worker in 0..4 {
        let seen: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("worker_{worker}.json"))).expect("result")).expect("json");
        assert_eq!(seen["cluster"]["worker"].as_array().expect("workers").len(), 4, "{seen}");
        assert_eq!(seen["cluster"]["ps"].as_array().expect("ps").len(), 1, "{seen}");
        shares.push(seen["rows"].clone());
    }
    assert!(shares.iter().all(|s| *s == shares[0]), "equal shares on every worker of both processes: {shares:?}");
    let share = shares[0][0].as_u64().expect("rows");
    assert!((997..=1000).contains(&share), "{shares:?}");
    sandbox.assert_clean();
}

#[test]
fn a_missing_process_ends_the_job_with_its_name() {
    let sandbox = Sandbox::new();
    let hosts = sandbox.hostfile(2);
    let job = quickstart();
    let mut command = sandbox.dlflow(&["train", "--job", job.to_str().expect("utf8"), "--connect-timeout", "2"]);
    command.args(["--hosts", hosts.to_str().expect("utf8"), "--process", "0"]);
    let (code, stderr, took) = Running::start(command).wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    let address = std::fs::read_to_string(&hosts).expect("hosts").lines().nth(1).expect("line 2").to_string();
    assert!(stderr.contains(&format!("process 1 ({address}) did not connect within 2 s")), "{stderr}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    sandbox.assert_clean();
}

#[test]
fn a_process_of_another_job_is_refused_on_both_sides() {
    let sandbox = Sandbox::new();
    let hosts = sandbox.hostfile(2);
    let job = quickstart();
    let other = sandbox.path("other.toml");
    let entry = job.parent().expect("folder").join("train.py");
    let text = std::fs::read_to_string(&job).expect("job").replace("epochs = 4", "epochs = 3");
    let text = text.replace("entry = \"train.py\"", &format!("entry = \"{}\"", entry.display()));
    std::fs::write(&other, text).expect("other");
    let mut first = sandbox.dlflow(&["train", "--job", job.to_str().expect("utf8"), "--connect-timeout", "5"]);
    first.args(["--hosts", hosts.to_str().expect("utf8"), "--process", "0"]);
    let first = Running::start(first);
    let mut intruder = sandbox.dlflow(&["train", "--job", other.to_str().expect("utf8"), "--connect-timeout", "5"]);
    intruder.args(["--hosts", hosts.to_str().expect("utf8"), "--process", "1"]);
    let (code, stderr, _) = Running::start(intruder).wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("process 0") && stderr.contains("refused this process: it belongs to job `other-"), "{stderr}");
    let (code, stderr, _) = first.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refused process 1") && stderr.contains("did not connect"), "{stderr}");
    sandbox.assert_clean();
}

#[test]
fn a_killed_worker_node_restarts_the_quick_start_with_no_flag() {
    let sandbox = Sandbox::new();
    let model = sandbox.path("linear");
    let job = quickstart();
    let mut command = sandbox.dlflow(&[]);
    command.args(train_args(job.to_str().expect("utf8"), model.to_str().expect("utf8")));
    let mut running = Running::start(command);
    // Wait until both workers saved their first checkpoint, then kill one (before both have
    // one, the restart rightly starts over: nobody restores). `jobs/` holds the job's state
    // folder and its lock file; any state folder with both workers' checkpoints will do.
    let checkpoint = || {
        std::fs::read_dir(sandbox.home().join("jobs")).into_iter().flatten().flatten().any(|job| {
            ["worker-0", "worker-1"].iter().all(|worker| {
                std::fs::read_dir(job.path().join("checkpoints").join(worker)).into_iter().flatten().flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".dlflow.json")
                })
            })
        })
    };
    running.wait_for("both workers saved a checkpoint", Duration::from_secs(180), checkpoint);
    let nodes = running.nodes();
    assert_eq!(nodes.len(), 2, "two worker nodes: {nodes:?}");
    let worker_1 = *nodes.iter().find(|&&pid| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
            env.split(|&b| b == 0).any(|kv| kv == b"DLFLOW_NODE_INDEX=1")
        })
    }).expect("worker 1");
    Command::new("kill").args(["-9", &worker_1.to_string()]).status().expect("kill");
    let (code, stderr, _) = running.wait(Duration::from_secs(300));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("restarting the cluster as attempt 1 after: worker 1 exited unexpectedly (killed by signal 9"), "{stderr}");
    assert!(stderr.contains("worker 0 restored its checkpoint of step"), "{stderr}");
    assert!(stderr.contains("restarted as attempt 1 after: worker 1 exited unexpectedly"), "{stderr}");
    assert!(stderr.contains("epoch 4/4: rows per worker"), "{stderr}");
    let (w, b) = weight_and_bias(&model);
    assert!((w - 2.0).abs() < 0.05 && (b - 1.0).abs() < 0.05, "w {w}, b {b}");
    assert_gone(&nodes);
    sandbox.assert_clean();
}

#[test]
fn a_killed_dlflow_process_ends_the_other_in_seconds_and_resume_finishes() {
    let sandbox = Sandbox::new();
    let model = sandbox.path("linear");
    let job = quickstart();
    let job = job.to_str().expect("utf8");
    let hosts = sandbox.hostfile(2);
    let start = |resume: bool| -> Vec<Running> {
        (0..2)
            .map(|process| {
                let mut command = sandbox.dlflow(&[]);
                command.args(train_args(job, model.to_str().expect("utf8")));
                command.args(["--hosts", hosts.to_str().expect("utf8"), "--process", &process.to_string()]);
                if resume {
                    command.arg("--resume");
                }
                Running::start(command)
            })
            .collect()
    };
    let mut processes = start(false);
    // Kill process 1 once training is under way: both workers saved their first checkpoint (in
    // process 0's state folder). Before that, a resumed job rightly starts over: a worker
    // without a checkpoint makes every worker start from scratch.
    let saved_by = |worker: &str| {
        std::fs::read_dir(sandbox.home().join("jobs")).ok().is_some_and(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                e.file_name().to_string_lossy().ends_with("-p0")
                    && std::fs::read_dir(e.path().join("checkpoints").join(worker))
                        .is_ok_and(|mut c| c.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".dlflow.json"))))
            })
        })
    };
    processes[0].wait_for("both workers saved a checkpoint", Duration::from_secs(180), || saved_by("worker-0") && saved_by("worker-1"));
    let mut nodes = processes[0].nodes();
    nodes.extend(processes[1].nodes());
    let second = processes.pop().expect("process 1");
    let mut second_child = second.child;
    second_child.kill().expect("kill -9 process 1");
    let _ = second_child.wait();
    let killed_at = Instant::now();
    let (code, stderr, _) = processes.pop().expect("process 0").wait(Duration::from_secs(60));
    let took = killed_at.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("process 1 of the job went away"), "{stderr}");
    assert!(took < Duration::from_secs(15), "process 0 took {took:?} to notice");
    assert_gone(&nodes);

    // Both processes again, with --resume: they continue from the checkpoint and finish.
    let mut outputs = Vec::new();
    for running in start(true) {
        let (code, stderr, _) = running.wait(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{stderr}");
        outputs.push(stderr);
    }
    assert!(outputs[0].contains("worker 0 restored its checkpoint of step"), "{}", outputs[0]);
    let (w, b) = weight_and_bias(&model);
    assert!((w - 2.0).abs() < 0.05 && (b - 1.0).abs() < 0.05, "w {w}, b {b}");
    sandbox.assert_clean();
}

/// Runs `ip ARGS` (as root); false when it cannot.
fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A network namespace and the veth pair into it, removed on drop.
struct Namespace {
    name: String,
    outer: String,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        ip(&["link", "del", &self.outer]);
        ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_host_cut_off_ends_the_job_on_the_other_process_in_seconds() {
    // Process 1 runs on its own "host": a network namespace made here, joined by a veth pair.
    let tag = std::process::id() % 10_000;
    let net = Namespace { name: format!("dlflow-t{tag}"), outer: format!("dlo{tag}") };
    if !ip(&["netns", "add", &net.name]) {
        eprintln!("skipped: cannot make a network namespace here (needs root and iproute2)");
        return;
    }
    let inner = format!("dli{tag}");
    let subnet = format!("10.213.{}", tag % 250);
    let (outer_ip, inner_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
    assert!(ip(&["link", "add", &net.outer, "type", "veth", "peer", "name", &inner]));
    assert!(ip(&["link", "set", &inner, "netns", &net.name]));
    assert!(ip(&["addr", "add", &format!("{outer_ip}/24"), "dev", &net.outer]));
    assert!(ip(&["link", "set", &net.outer, "up"]));
    assert!(ip(&["netns", "exec", &net.name, "ip", "addr", "add", &format!("{inner_ip}/24"), "dev", &inner]));
    assert!(ip(&["netns", "exec", &net.name, "ip", "link", "set", &inner, "up"]));
    assert!(ip(&["netns", "exec", &net.name, "ip", "link", "set", "lo", "up"]));

    let sandbox = Sandbox::new();
    let port = TcpListener::bind((outer_ip.as_str(), 0)).expect("bind").local_addr().expect("addr").port();
    let hosts = sandbox.path("hosts");
    std::fs::write(&hosts, format!("{outer_ip}:{port}\n{inner_ip}:{}\n", 17_000 + tag % 1000)).expect("hostfile");
    let job = quickstart();
    let model = sandbox.path("linear");
    let args = |process: &str| -> Vec<String> {
        let mut args = train_args(job.to_str().expect("utf8"), model.to_str().expect("utf8"));
        args.extend(["--hosts".into(), hosts.to_str().expect("utf8").into(), "--process".into(), process.into()]);
        args
    };
    let mut first = sandbox.dlflow(&[]);
    first.args(args("0"));
    let mut first = Running::start(first);
    let second = sandbox.dlflow(&[]);
    let program = second.get_program().to_owned();
    let mut in_namespace = Command::new("ip");
    in_namespace.args(["netns", "exec", &net.name]).arg(program).args(args("1"));
    for (key, value) in second.get_envs() {
        if let Some(value) = value {
            in_namespace.env(key, value);
        }
    }
    in_namespace.stdout(Stdio::null()).stderr(Stdio::piped());
    let second = Running::start(in_namespace);

    // Once training is under way (worker 0 saved a checkpoint), cut process 1's host off.
    let saved = || {
        std::fs::read_dir(sandbox.home().join("jobs")).ok().is_some_and(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                std::fs::read_dir(e.path().join("checkpoints/worker-0"))
                    .is_ok_and(|mut c| c.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".dlflow.json"))))
            })
        })
    };
    first.wait_for("worker 0 saved a checkpoint", Duration::from_secs(180), saved);
    let nodes = first.nodes();
    assert!(ip(&["link", "set", &net.outer, "down"]), "cutting the link");
    let cut_at = Instant::now();
    let (code, stderr, _) = first.wait(Duration::from_secs(90));
    let took = cut_at.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    // Its silence, or TensorFlow's own heartbeats failing first and then its silence.
    assert!(stderr.contains("error: process 1 of the job"), "{stderr}");
    assert!(took < Duration::from_secs(45), "process 0 took {took:?} to give up on the cut-off host");
    assert_gone(&nodes);
    // Process 1 gives up on process 0 the same way.
    let (code, stderr, _) = second.wait(Duration::from_secs(90));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("process 0"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(sandbox.tmp()).expect("tmp").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}
