//! Benchmarks of several processes and of recovery, each against its baseline in the same run,
//! repeated, with the spread of the ratios (min..max over the repetitions):
//!
//! - `scaling`: the MLP 784-128-10 (MultiWorkerMirroredStrategy) trained by `dlflow train` as
//!   2 processes x 1 worker against 1 process x 2 workers, on this machine: the overhead of
//!   several processes (target >= 0.9x);
//! - `exchange`: rows/s through the engine alone, 2 processes x 1 engine thread (rows cross
//!   processes as Arrow IPC over timely) against 1 process x 2 threads;
//! - `recovery`: seconds from `kill -9` of a worker to training again (the restarted workers
//!   restored their checkpoint and the replayed rows flow);
//! - `checkpoint`: the MLP's samples/s with `checkpoint_every` at its default (1 epoch) and at
//!   "50 steps", against no checkpoints (target: at most 5% slower at the default).
//!
//! Run with `scripts/bench.sh cluster [scaling|exchange|recovery|checkpoint]`. Sizes:
//! DLFLOW_BENCH_CLUSTER_ROWS (MLP rows, default 20000), DLFLOW_BENCH_REPEAT (default 3).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dlflow::layers::dlflow_engine::{
    BatchIter, EngineConfig, Endpoint, Hosts, Mesh, PartitionSource, Progress, RunOptions, SinkClosed, WorkerSink, run_with,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn entry() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/entries/cluster_bench.py")
}

fn free_hostfile(dir: &Path, processes: usize) -> PathBuf {
    let path = dir.join("hosts");
    std::fs::write(&path, dlflow_testkit::loopback_hostfile(processes)).expect("hostfile");
    path
}

/// `rows` rows of 784 floats in [0, 1) and a label in 0..10, as a Parquet file (made once).
fn mlp_data(dir: &Path, rows: u64) -> PathBuf {
    use arrow::datatypes::DataType;
    use dlflow::{DataGen, Environment, Generator};
    let path = dir.join(format!("mlp-{rows}.parquet"));
    if path.exists() {
        return path;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let env = Environment::new();
        let pixels = Generator::uniform_vector(784, 0.0, 1.0).with_data_type(DataType::new_fixed_size_list(DataType::Float32, 784, false));
        let table = env
            .datagen(DataGen::new(rows).seed(4).column("pixels", pixels).column("label", Generator::uniform_int(0, 9)))
            .expect("datagen");
        table.write(&path, |_| {}).await.expect("write the MLP data");
    });
    path
}

/// The MLP job file: `rows` rows of 784 floats and a label, 3 epochs, 2 workers.
fn mlp_job(dir: &Path, rows: u64, checkpoints: &str, every: &str) -> PathBuf {
    let data = mlp_data(dir, rows);
    let job = format!(
        r#"epochs = 3
checkpoint_every = "{every}"
[input]
file = "{}"
[cluster]
workers = 2
entry = "{}"
function = "mlp_entry"
[properties]
batch_size = 256
checkpoints = "{checkpoints}"
"#,
        data.display(),
        entry().display()
    );
    let path = dir.join(format!("mlp-{checkpoints}-{}.toml", every.replace(' ', "_")));
    std::fs::write(&path, job).expect("job file");
    path
}

/// Runs `dlflow train` processes to their end; the chief's samples/s of the last epoch.
fn train(job: &Path, hosts: Option<&Path>) -> f64 {
    let processes = hosts.map_or(1, |_| 2);
    let children: Vec<Child> = (0..processes)
        .map(|process| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_dlflow"));
            command.args(["train", "--job", job.to_str().expect("utf8")]).stdout(Stdio::null()).stderr(Stdio::piped());
            if let Some(hosts) = hosts {
                command.args(["--hosts", hosts.to_str().expect("utf8"), "--process", &process.to_string()]);
            }
            command.spawn().expect("dlflow")
        })
        .collect();
    let mut rate = None;
    for mut child in children {
        let stderr = child.stderr.take().expect("stderr");
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(value) = line.split("samples_per_s=").nth(1) {
                rate = value.trim().parse::<f64>().ok();
            }
            text.push_str(&line);
            text.push('\n');
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "dlflow train failed:\n{text}");
    }
    rate.expect("the chief printed no samples/s")
}

struct Ratios(Vec<f64>);

impl Ratios {
    fn summary(&self) -> String {
        let mean = self.0.iter().sum::<f64>() / self.0.len() as f64;
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{mean:.2}x (spread {min:.2}..{max:.2} over {} runs)", self.0.len())
    }
}

fn scaling(dir: &Path, repeat: u64) {
    let rows = env_u64("DLFLOW_BENCH_CLUSTER_ROWS", 20_000);
    let job = mlp_job(dir, rows, "on", "1 epoch");
    let mut ratios = Vec::new();
    println!("scaling: MLP 784-128-10, {rows} rows, batch 256, 2 workers, last of 3 epochs timed");
    for run in 0..repeat {
        let one = train(&job, None);
        let hosts = free_hostfile(dir, 2);
        let two = train(&job, Some(&hosts));
        println!("  run {run}: 1 process x 2 workers {one:>8.0} samples/s   2 processes x 1 worker {two:>8.0} samples/s");
        ratios.push(two / one);
    }
    println!("  ratio 2 processes / 1 process: {} (target >= 0.9x)", Ratios(ratios).summary());
}

fn checkpoint(dir: &Path, repeat: u64) {
    let rows = env_u64("DLFLOW_BENCH_CLUSTER_ROWS", 20_000);
    let off = mlp_job(dir, rows, "off", "1 epoch");
    let default = mlp_job(dir, rows, "on", "1 epoch");
    let steps = mlp_job(dir, rows, "on", "50 steps");
    let (mut at_default, mut at_steps) = (Vec::new(), Vec::new());
    println!("checkpoint: MLP 784-128-10, {rows} rows, 1 process x 2 workers, last of 3 epochs timed");
    for run in 0..repeat {
        let none = train(&off, None);
        let epoch = train(&default, None);
        let fifty = train(&steps, None);
        println!("  run {run}: none {none:>8.0}   every epoch {epoch:>8.0}   every 50 steps {fifty:>8.0} samples/s");
        at_default.push(epoch / none);
        at_steps.push(fifty / none);
    }
    println!("  ratio every epoch (default) / none: {} (target >= 0.95x)", Ratios(at_default).summary());
    println!("  ratio every 50 steps / none:        {}", Ratios(at_steps).summary());
}

/// Seconds from killing worker 1 to the restarted cluster training again.
fn recovery(dir: &Path, repeat: u64) {
    let quickstart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/job.toml");
    let home = dir.join("home");
    let mut seconds = Vec::new();
    println!("recovery: the quick start (2 workers), kill -9 of worker 1 after the first checkpoint");
    for run in 0..repeat {
        let _ = std::fs::remove_dir_all(&home);
        let mut child = Command::new(env!("CARGO_BIN_EXE_dlflow"))
            .args(["train", "--job", quickstart.to_str().expect("utf8"), "--property"])
            .arg(format!("model_dir={}", dir.join("linear").display()))
            .env("DLFLOW_HOME", &home)
            .env("DLFLOW_VENV", dlflow::layers::dlflow_common::paths::project_venv())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dlflow");
        let (lines_in, lines) = mpsc::channel::<(Instant, String)>();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_in.send((Instant::now(), line));
            }
        });
        // Kill once worker 1's first checkpoint is on disk (the epoch line can come before it is
        // written; a kill then restarts from scratch, with nothing to restore).
        let killed_at = loop {
            let (_, line) = lines.recv_timeout(Duration::from_secs(300)).expect("the job runs");
            if line.starts_with("epoch 1/4") {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !has_checkpoint(&home.join("jobs"), "worker-1") {
                    assert!(Instant::now() < deadline, "worker 1 wrote no checkpoint");
                    std::thread::sleep(Duration::from_millis(20));
                }
                let worker_1 = node_pid(child.id(), 1).expect("worker 1");
                let at = Instant::now();
                Command::new("kill").args(["-9", &worker_1.to_string()]).status().expect("kill");
                break at;
            }
        };
        let mut restored_at = None;
        let mut training_at = None;
        while let Ok((at, line)) = lines.recv_timeout(Duration::from_secs(300)) {
            if line.contains("restored its checkpoint") {
                restored_at = Some(at);
            } else if restored_at.is_some() && training_at.is_none() && line.starts_with("epoch ") {
                training_at = Some(at);
            }
        }
        assert!(child.wait().expect("wait").success(), "the job did not recover");
        let restored = restored_at.expect("no restore").duration_since(killed_at).as_secs_f64();
        let epoch = training_at.expect("no epoch after the restore").duration_since(killed_at).as_secs_f64();
        println!("  run {run}: kill -> checkpoint restored {restored:.2} s, -> next epoch done {epoch:.2} s");
        seconds.push(restored);
    }
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let (min, max) = seconds.iter().fold((f64::INFINITY, 0f64), |(a, b), &s| (a.min(s), b.max(s)));
    println!("  kill -> training again (checkpoint restored, rows replayed next): {mean:.2} s (spread {min:.2}..{max:.2})");
}

/// Whether a job folder under `jobs` holds a checkpoint of `worker` (`worker-1`).
fn has_checkpoint(jobs: &Path, worker: &str) -> bool {
    let Ok(jobs) = std::fs::read_dir(jobs) else { return false };
    jobs.flatten().any(|job| {
        std::fs::read_dir(job.path().join("checkpoints").join(worker))
            .is_ok_and(|mut files| files.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".dlflow.json"))))
    })
}

fn node_pid(dlflow: u32, worker: usize) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{dlflow}/task")).ok()?;
    let wanted = format!("DLFLOW_NODE_INDEX={worker}");
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ.split(|&b| b == 0).any(|kv| kv == wanted.as_bytes()) {
                return Some(pid);
            }
        }
    }
    None
}

/// `partitions` partitions of `rows` rows with 10 float columns, in batches of 8192.
struct Floats {
    partitions: usize,
    rows: usize,
}

impl PartitionSource for Floats {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn open(&self, _partition: usize, _epoch: u64) -> Result<BatchIter, String> {
        use arrow::array::{Float32Array, RecordBatch};
        let batch = RecordBatch::try_from_iter(
            (0..10).map(|c| (format!("f{c}"), Arc::new(Float32Array::from(vec![c as f32; 8192])) as arrow::array::ArrayRef)),
        )
        .map_err(|e| e.to_string())?;
        Ok(Box::new(std::iter::repeat_n(batch, self.rows / 8192).map(Ok)))
    }
}

#[derive(Default)]
struct Discard(Mutex<u64>);

impl WorkerSink for Discard {
    fn send(&self, batch: arrow::array::RecordBatch) -> Result<(), SinkClosed> {
        *self.0.lock().expect("lock") += batch.num_rows() as u64;
        Ok(())
    }
}

/// Rows/s through the engine: 2 partitions dealt to 2 ML workers, in one process or two.
fn engine_rate(processes: usize, rows: usize) -> f64 {
    let source = Arc::new(Floats { partitions: 2, rows });
    let started = Instant::now();
    if processes == 1 {
        let sinks: Vec<Option<Arc<dyn WorkerSink>>> = (0..2).map(|_| Some(Arc::new(Discard::default()) as Arc<dyn WorkerSink>)).collect();
        let config = EngineConfig { threads: 2, epochs: 1, ..EngineConfig::default() };
        run_with(source, sinks, config, Arc::new(Progress::default()), Arc::new(AtomicBool::new(false)), RunOptions::default())
            .expect("run");
    } else {
        let hosts = Hosts::parse(&dlflow_testkit::loopback_hostfile(2)).expect("hosts");
        let endpoints: Vec<Endpoint> = (0..2).map(|p| Endpoint::bind("bench", hosts.clone(), p).expect("bind")).collect();
        let started_mesh = Instant::now();
        std::thread::scope(|s| {
            for (process, endpoint) in endpoints.iter().enumerate() {
                let source = source.clone();
                s.spawn(move || {
                    let stop = Arc::new(AtomicBool::new(false));
                    let sockets = endpoint.mesh(0, Duration::from_secs(10), &stop).expect("mesh");
                    let sinks: Vec<Option<Arc<dyn WorkerSink>>> = (0..2)
                        .map(|k| (k == process).then(|| Arc::new(Discard::default()) as Arc<dyn WorkerSink>))
                        .collect();
                    let config = EngineConfig { threads: 1, epochs: 1, ..EngineConfig::default() };
                    let options = RunOptions { mesh: Some(Mesh { process, sockets }), ..RunOptions::default() };
                    run_with(source, sinks, config, Arc::new(Progress::default()), stop, options).expect("run");
                });
            }
        });
        let _ = started_mesh;
    }
    (2 * (rows / 8192) * 8192) as f64 / started.elapsed().as_secs_f64()
}

fn exchange(repeat: u64) {
    let rows = 2_000_000;
    println!("exchange: the engine alone, 2 partitions of {rows} rows x 10 float32 columns, dealt to 2 workers");
    let mut ratios = Vec::new();
    for run in 0..repeat.max(5) {
        let one = engine_rate(1, rows);
        let two = engine_rate(2, rows);
        println!("  run {run}: 1 process x 2 threads {:>6.1} M rows/s   2 processes x 1 thread {:>6.1} M rows/s", one / 1e6, two / 1e6);
        ratios.push(two / one);
    }
    println!("  ratio cross-process / in-process: {}", Ratios(ratios).summary());
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = which.is_empty() || which.iter().any(|w| w == "all");
    let wants = |name: &str| all || which.iter().any(|w| w == name);
    let repeat = env_u64("DLFLOW_BENCH_REPEAT", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    if wants("exchange") {
        exchange(repeat);
    }
    if wants("scaling") {
        scaling(dir.path(), repeat);
    }
    if wants("checkpoint") {
        checkpoint(dir.path(), repeat);
    }
    if wants("recovery") {
        recovery(dir.path(), repeat);
    }
}
