//! `dlflow train`: a training job from flags or a small TOML job file.
//!
//! ```toml
//! epochs = 4
//! max_failures = 3         # restarts after a node fails (default 3)
//! checkpoint_every = "1 epoch"   # or "100 steps": how often TFContext.checkpoint saves
//!
//! [input]                  # one of: sql, file; none for an entry that reads its own data
//! sql = "SELECT x, 2 * x + 1 AS y FROM points"
//! tables = { points = "points.csv" }   # files the SQL reads, relative to the job file
//!
//! [cluster]
//! workers = 2
//! ps = 0
//! entry = "train.py"       # relative to the job file
//! function = "train_entry"
//! python_path = ["lib"]    # optional; also: python = "/path/to/python" or venv = "/path/to/venv"
//! env = { TF_CPP_MIN_LOG_LEVEL = "3" }
//!
//! [properties]             # TFContext.get_property(...)
//! model_dir = "/tmp/linear"
//! ```
//!
//! Flags override the file. At the end, the loss curve of the chief's TensorBoard events (the
//! `tensorboard_dir` property, by default `<model_dir>.tensorboard`) is drawn, and written as
//! `<model_dir>.loss.svg`.
//!
//! Several processes (and hosts): start the same command on each, with `--hosts FILE` (one
//! `HOST:PORT` per process) and `--process I`; process 0 coordinates and prints the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use dlflow::{CheckpointEvery, Environment, Job, Python, Recovery, Table, TfClusterConfig, Timeouts};
use serde::Deserialize;

use crate::progress::EpochProgress;

/// The exit code after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;

/// Arguments of `dlflow train`.
#[derive(Args)]
pub struct TrainArgs {
    /// A TOML job file: `epochs`, `[input]` (sql or file, tables), `[cluster]` (workers, ps,
    /// entry, function, python, venv, python_path, env, heartbeat_timeout), `[properties]`;
    /// documented in docs/guide/cli.md (section `dlflow train`).
    #[arg(long)]
    job: Option<PathBuf>,
    /// Input file: .csv, .parquet, .json/.jsonl, .arrow.
    #[arg(long, conflicts_with = "sql")]
    input: Option<PathBuf>,
    /// Input query; `;`-separated statements, the last one a query.
    #[arg(long)]
    sql: Option<String>,
    /// A file the query reads, registered as a table (repeatable): NAME=FILE, or FILE (named
    /// after it: `points` for points.csv).
    #[arg(long = "table", value_parser = super::parse_named_table)]
    tables: Vec<(Option<String>, PathBuf)>,
    /// The node entry: FILE:FUNCTION, for example train.py:train_entry.
    #[arg(long, value_parser = parse_entry)]
    entry: Option<(PathBuf, String)>,
    /// Number of workers.
    #[arg(long, value_parser = super::parse_positive)]
    workers: Option<usize>,
    /// Number of parameter servers.
    #[arg(long)]
    ps: Option<usize>,
    /// Passes over the input.
    #[arg(long, value_parser = super::parse_positive)]
    epochs: Option<usize>,
    /// A property for the nodes (repeatable): KEY=VALUE.
    #[arg(long = "property", value_parser = parse_pair)]
    properties: Vec<(String, String)>,
    /// The Python that runs the nodes (default: dlflow's virtualenv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// A folder or file the nodes find on PYTHONPATH (repeatable).
    #[arg(long = "python-path")]
    python_path: Vec<PathBuf>,
    /// An environment variable for the nodes (repeatable): KEY=VALUE.
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Seconds without a heartbeat after which a node counts as hung.
    #[arg(long)]
    heartbeat_timeout: Option<f64>,
    /// Seconds a worker may take no rows while rows wait for it before it counts as frozen.
    #[arg(long)]
    progress_timeout: Option<f64>,
    /// Restarts of the cluster after node failures before the job fails (default 3).
    #[arg(long)]
    max_failures: Option<u32>,
    /// How often the nodes' checkpoints are saved: "100 steps" or "1 epoch" (default).
    #[arg(long)]
    checkpoint_every: Option<String>,
    /// The hostfile of a job on several processes: one HOST:PORT per process.
    #[arg(long, requires = "process")]
    hosts: Option<PathBuf>,
    /// This process's index in the hostfile (0 coordinates).
    #[arg(long, requires = "hosts")]
    process: Option<usize>,
    /// Seconds the processes of a job wait for each other at start (default 60).
    #[arg(long)]
    connect_timeout: Option<f64>,
    /// Continue the last run of this job (its processes died) from its checkpoints.
    #[arg(long, requires = "job")]
    resume: bool,
}

/// The TOML job file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    epochs: Option<u64>,
    max_failures: Option<u32>,
    checkpoint_every: Option<String>,
    #[serde(default)]
    input: InputSection,
    #[serde(default)]
    cluster: ClusterSection,
    #[serde(default)]
    properties: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSection {
    sql: Option<String>,
    file: Option<PathBuf>,
    /// Files registered as tables for `sql`: `{ points = "points.csv" }`.
    #[serde(default)]
    tables: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    workers: Option<usize>,
    ps: Option<usize>,
    entry: Option<PathBuf>,
    function: Option<String>,
    python: Option<PathBuf>,
    venv: Option<PathBuf>,
    #[serde(default)]
    python_path: Vec<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    heartbeat_timeout: Option<f64>,
    progress_timeout: Option<f64>,
}

pub(crate) fn parse_entry(value: &str) -> Result<(PathBuf, String), String> {
    match value.rsplit_once(':') {
        Some((file, function)) if !file.is_empty() && !function.is_empty() => Ok((file.into(), function.into())),
        _ => Err(format!("`{value}`: expected FILE:FUNCTION, for example train.py:train_entry")),
    }
}

fn parse_pair(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, v)) if !key.is_empty() => Ok((key.into(), v.into())),
        _ => Err(format!("`{value}`: expected KEY=VALUE")),
    }
}

impl TrainArgs {
    /// Run the command.
    pub async fn run(self) -> dlflow::Result<()> {
        let (file, base, job_text) = match &self.job {
            Some(path) => {
                let (file, text) = read_job_file(path)?;
                (file, path.parent().map(Path::to_path_buf).unwrap_or_default(), text)
            }
            None => (JobFile::default(), PathBuf::new(), String::new()),
        };
        let hosts = self.hosts.as_deref().map(dlflow::Hosts::read).transpose()?;
        let env = Environment::new();
        for (name, path) in &file.input.tables {
            env.register_file(name, base.join(path)).await?;
        }
        super::register_tables(&env, &self.tables).await?;
        let input: Option<Table> = match (&self.input, &self.sql, &file.input.file, &file.input.sql) {
            (Some(path), ..) => Some(env.read_file(path).await?),
            (None, Some(sql), ..) => Some(env.sql(sql).await?),
            (None, None, Some(path), _) => Some(env.read_file(base.join(path)).await?),
            (None, None, None, Some(sql)) => Some(env.sql(sql).await?),
            (None, None, None, None) => None,
        };
        let epochs = self.epochs.map(|e| e as u64).or(file.epochs).unwrap_or(1);
        let config = self.cluster_config(file, &base)?;

        let progress = EpochProgress::start(input.is_some().then_some(epochs), config.worker_count());
        let config = config.with_output_handler(progress.printer());
        let mut job = match &input {
            Some(table) => Job::train(table, &config, epochs),
            None => Job::without_input(&config),
        };
        job = job.on_notice(progress.notice_handler()).on_restart(progress.restart_handler());
        if let Some(path) = &self.job {
            // A job file's runs keep their state (checkpoints, positions) until they succeed,
            // so that `--resume` can continue one whose processes all died.
            let process = self.process.unwrap_or(0);
            let id = job_id(path, &job_text, self.hosts.as_deref());
            let state = dlflow::layers::dlflow_common::paths::dlflow_home().join("jobs").join(format!("{id}-p{process}"));
            if !self.resume && state.join("attempt").is_file() {
                progress.say(format!(
                    "note: starting over; an earlier run of this job left its state in {} (--resume continues it)",
                    state.display()
                ));
            }
            job = job.state_dir(state).resume(self.resume);
            if let (Some(hosts), Some(process)) = (hosts, self.process) {
                job = job.on_hosts(hosts, process, id);
            }
        }
        if let Some(seconds) = self.connect_timeout {
            job = job.connect_timeout(seconds_flag("connect timeout", seconds)?);
        }
        let unbounded = match &input {
            Some(table) => table.is_unbounded().await?,
            None => false,
        };
        // Ctrl-C (or SIGTERM): over a stream the first one ends the input, so that the nodes
        // finish their pass (online training exports its last version) and the job ends
        // normally; otherwise, or at the second one, dlflow stops its nodes and removes its temp
        // files itself. Either way it exits 130.
        let cancel = job.cancel_flag();
        let mut signals = Signals::new()?;
        let mut running = std::pin::pin!(job.run());
        let mut stopping = false;
        let report = loop {
            tokio::select! {
                report = &mut running => break report,
                () = signals.next() => {
                    if unbounded && !stopping {
                        stopping = true;
                        progress.say("stopping: the stream's input ends here; the nodes finish their pass (Ctrl-C again to stop at once)".into());
                        dlflow::layers::dlflow_table::stream::request_stop();
                        continue;
                    }
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = running.await;
                    progress.finish();
                    eprintln!("interrupted: every node stopped");
                    std::process::exit(INTERRUPTED);
                }
            }
        };
        progress.finish();
        let report = report?;
        if self.process.unwrap_or(0) == 0 {
            eprint!("{report}");
            if let Some((events, svg)) = loss_curve_files(&config) {
                super::show_loss_curve(&events, &svg);
            }
        }
        if stopping {
            eprintln!("interrupted: the stream's input was ended; every node finished its pass and stopped");
            std::process::exit(INTERRUPTED);
        }
        Ok(())
    }

    fn cluster_config(&self, file: JobFile, base: &Path) -> dlflow::Result<TfClusterConfig> {
        let cluster = file.cluster;
        let (entry_file, function) = match (&self.entry, cluster.entry, cluster.function) {
            (Some((path, function)), ..) => (path.clone(), function.clone()),
            (None, Some(path), function) => (base.join(path), function.unwrap_or_else(|| "train_entry".into())),
            (None, None, _) => {
                return Err(dlflow::Error::Invalid(
                    "no node entry: give --entry FILE:FUNCTION or [cluster] entry = \"train.py\" in the job file".into(),
                ));
            }
        };
        let mut recovery = Recovery::default();
        if let Some(max_failures) = self.max_failures.or(file.max_failures) {
            recovery.max_failures = max_failures;
        }
        if let Some(every) = self.checkpoint_every.as_deref().or(file.checkpoint_every.as_deref()) {
            recovery.checkpoint_every = CheckpointEvery::parse(every).map_err(dlflow::Error::Invalid)?;
        }
        let mut builder = TfClusterConfig::builder()
            .recovery(recovery)
            .worker_count(self.workers.or(cluster.workers).unwrap_or(1))
            .ps_count(self.ps.or(cluster.ps).unwrap_or(0))
            .node_entry(entry_file, function);
        for (key, value) in file.properties {
            let text = match value {
                toml::Value::String(text) => text,
                other => other.to_string(),
            };
            builder = builder.property(key, text);
        }
        for (key, value) in &self.properties {
            builder = builder.property(key, value);
        }
        match (&self.python, cluster.python, cluster.venv) {
            (Some(python), ..) => builder = builder.python(Python::Executable(python.clone())),
            (None, Some(python), _) => builder = builder.python(Python::Executable(base.join(python))),
            (None, None, Some(venv)) => builder = builder.python(Python::Venv(base.join(venv))),
            (None, None, None) => {}
        }
        for path in cluster.python_path {
            builder = builder.python_path(base.join(path));
        }
        for path in &self.python_path {
            builder = builder.python_path(path);
        }
        for (key, value) in cluster.env.into_iter().chain(self.env.iter().cloned()) {
            builder = builder.env(key, value);
        }
        let mut timeouts = Timeouts::default();
        if let Some(seconds) = self.heartbeat_timeout.or(cluster.heartbeat_timeout) {
            timeouts.heartbeat = seconds_flag("heartbeat timeout", seconds)?;
        }
        if let Some(seconds) = self.progress_timeout.or(cluster.progress_timeout) {
            timeouts.progress = seconds_flag("progress timeout", seconds)?;
        }
        Ok(builder.timeouts(timeouts).build()?)
    }
}

/// Where the job's TensorBoard events are and where its loss curve goes: the
/// `tensorboard_dir` property (curve inside it), else beside `model_dir`; nothing without either.
fn loss_curve_files(config: &TfClusterConfig) -> Option<(PathBuf, PathBuf)> {
    use dlflow::layers::dlflow_tensorboard::{loss_svg_for, tensorboard_dir_for};
    let model_dir = config.property("model_dir").filter(|d| !d.is_empty()).map(PathBuf::from);
    match (config.property("tensorboard_dir").filter(|d| !d.is_empty()), model_dir) {
        (Some(events), Some(model_dir)) => Some((PathBuf::from(events), loss_svg_for(&model_dir))),
        (Some(events), None) => Some((PathBuf::from(events), Path::new(events).join("loss.svg"))),
        (None, Some(model_dir)) => Some((tensorboard_dir_for(&model_dir), loss_svg_for(&model_dir))),
        (None, None) => None,
    }
}

fn read_job_file(path: &Path) -> dlflow::Result<(JobFile, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| dlflow::Error::Invalid(format!("cannot read the job file {}: {e}", path.display())))?;
    let file = toml::from_str(&text).map_err(|e| dlflow::Error::Invalid(format!("job file {}: {e}", path.display())))?;
    Ok((file, text))
}

fn seconds_flag(what: &str, seconds: f64) -> dlflow::Result<Duration> {
    if seconds > 0.0 && seconds.is_finite() {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(dlflow::Error::Invalid(format!("{what} {seconds}: expected a positive number of seconds")))
    }
}

/// The job's id: the same on every process of one job (the job file's name and text, and the
/// hostfile's text), different for another job, so that processes of another job are refused.
fn job_id(path: &Path, text: &str, hosts: Option<&Path>) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    if let Some(hosts) = hosts {
        std::fs::read_to_string(hosts).unwrap_or_default().hash(&mut hasher);
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "job".into());
    let stem: String = stem.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{stem}-{:016x}", hasher.finish())
}


/// Ctrl-C and SIGTERM, as one stream of "stop" requests (train handles both itself: its nodes
/// must not outlive dlflow).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> dlflow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| dlflow::Error::Invalid(format!("cannot listen for {name}: {e}")))
        };
        Ok(Signals { interrupt: listen(SignalKind::interrupt(), "Ctrl-C (SIGINT)")?, terminate: listen(SignalKind::terminate(), "SIGTERM")? })
    }

    /// Completes at the next Ctrl-C or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
