//! Progress on long runs: a live row counter on stderr (hidden when stderr is not a
//! terminal), and the one-line summary printed at the end.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Rows written out by this process so far (all [`RowProgress`]es).
static ROWS_WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows written out by this process so far.
pub fn rows_written() -> u64 {
    ROWS_WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts rows as they stream past; on a stream also micro-batches and model latency.
pub struct RowProgress {
    bar: ProgressBar,
    started: Instant,
    rows: u64,
    batches: u64,
    stream: bool,
    shown: Instant,
}

impl RowProgress {
    /// Start counting; `what` labels the bar ("predicting").
    pub fn start(what: &str) -> RowProgress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} rows  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let now = Instant::now();
        RowProgress { bar, started: now, rows: 0, batches: 0, stream: false, shown: now }
    }

    /// Start counting the records of a stream: a status line with records/s, micro-batches
    /// and p50/p99 latency (while stderr is a terminal).
    pub fn start_stream(what: &str) -> RowProgress {
        let progress = RowProgress { stream: true, ..Self::start(what) };
        progress.bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} records  {per_sec}  {msg}  {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        progress
    }

    /// `rows` more rows are done.
    pub fn add(&mut self, rows: usize) {
        ROWS_WRITTEN.fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
        self.rows += rows as u64;
        self.batches += 1;
        self.bar.inc(rows as u64);
        if self.stream && self.shown.elapsed() >= Duration::from_millis(250) {
            self.shown = Instant::now();
            self.bar.set_message(format!("{} batches{}", self.batches, latency(false)));
        }
    }

    /// Stop the bar and return `rows, seconds, rows/s` as text (and, on a stream, micro-batches,
    /// latency and skipped records).
    pub fn finish(self) -> String {
        self.bar.finish_and_clear();
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { self.rows as f64 / seconds } else { 0.0 };
        let unit = if self.stream { "records" } else { "rows" };
        let mut summary = format!("{} {unit} in {:.2} s ({} {unit}/s)", self.rows, seconds, human(rate));
        if self.stream {
            summary += &format!(", {} batches{}", self.batches, latency(true));
            let skipped = dlflow::layers::dlflow_table::stream::skipped_records();
            if skipped > 0 {
                summary += &format!(", {skipped} bad records skipped");
            }
            let late = dlflow::layers::dlflow_table::window::late_rows();
            if late > 0 {
                summary += &format!(", {late} late rows dropped");
            }
        }
        summary
    }
}

/// `, latency p50 … p99 …` from what models recorded, or nothing before any model ran.
fn latency(with_p999: bool) -> String {
    let Some(summary) = dlflow::layers::dlflow_table::stream::stats::summary() else { return String::new() };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut text = format!(", latency p50 {:.2} ms, p99 {:.2} ms", ms(summary.p50), ms(summary.p99));
    if with_p999 {
        text += &format!(", p99.9 {:.2} ms (read to predicted)", ms(summary.p999));
    }
    text
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

/// A training job's progress, from what the nodes report as they take rows: one bar per
/// epoch (rows taken by all workers, rows/s), a line per finished epoch, and the nodes'
/// output printed above the bar instead of through it.
///
/// With [`with_metrics`](Self::with_metrics) (the estimator's `epoch` notices carry the
/// loss), the line waits for the epoch's metrics and shows them after its rows and rate.
pub struct EpochProgress {
    bar: ProgressBar,
    epochs: Option<u64>,
    workers: u64,
    metrics: bool,
}

/// What the notice handler remembers between notices.
struct EpochState {
    done: u64,
    started: Instant,
    /// Per finished epoch whose metrics have not come yet: (rows per worker, seconds).
    pending: std::collections::BTreeMap<u64, (u64, f64)>,
}

impl EpochProgress {
    /// Starts the bar; `epochs` is `None` for a job without input.
    pub fn start(epochs: Option<u64>, workers: usize) -> EpochProgress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(spinner_style());
        bar.set_message(match epochs {
            Some(total) => format!("epoch 1/{total}: starting the nodes"),
            None => "running the nodes".to_string(),
        });
        bar.enable_steady_tick(Duration::from_millis(120));
        EpochProgress { bar, epochs, workers: workers as u64, metrics: false }
    }

    /// Print each epoch's line when its metrics arrive (`epoch` notices from worker 0), with
    /// the loss and metrics after the rows: `epoch 3/12: 60000 rows in 0.6 s (100k rows/s),
    /// loss 0.1234, val_loss 0.2345`.
    pub fn with_metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Where the nodes' output lines go: above the bar.
    pub fn printer(&self) -> dlflow::layers::dlflow_cluster::OutputHandler {
        let bar = self.bar.clone();
        std::sync::Arc::new(move |node: dlflow::NodeName, line: &str| say(&bar, format!("[{node}] {line}")))
    }

    /// Follows the nodes' notices: rows taken, ends of epochs (worker 0's mark the epoch), and
    /// what entries `report(...)`, printed as `[worker 0] report: EVENT key=value ...`.
    pub fn notice_handler(&self) -> impl Fn(dlflow::NodeName, &serde_json::Value) + Send + Sync + 'static {
        let (bar, workers, metrics) = (self.bar.clone(), self.workers, self.metrics);
        let total = self.epochs.unwrap_or(1);
        let state = std::sync::Mutex::new(EpochState { done: 0, started: Instant::now(), pending: Default::default() });
        move |node, notice| match notice["event"].as_str() {
            Some("rows") => bar.inc(notice["rows"].as_u64().unwrap_or(0)),
            Some("epoch") if metrics && node.index == 0 => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let epoch = notice["epoch"].as_u64().unwrap_or(state.done.saturating_sub(1));
                let (rows, seconds) = state.pending.remove(&epoch).unwrap_or((0, 0.0));
                let all = rows * workers;
                say(
                    &bar,
                    format!(
                        "epoch {}/{total}: {all} rows in {seconds:.2} s ({} rows/s){}",
                        epoch + 1,
                        human(all as f64 / seconds.max(1e-9)),
                        metric_values(notice)
                    ),
                );
            }
            // The estimator read its rows into memory (one pass): the epochs start now.
            Some("loaded") if metrics && node.index == 0 => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                *state = EpochState { done: 0, started: Instant::now(), pending: Default::default() };
                let rows = notice["rows"].as_u64().unwrap_or(0);
                say(&bar, format!("the workers hold their {} rows in memory; training", rows * workers));
                bar.set_style(bar_style());
                bar.set_length(rows * workers);
                bar.set_position(0);
                bar.reset_eta();
                bar.set_message(format!("epoch 1/{total}"));
            }
            Some("restored") if node.index == 0 => say(
                &bar,
                format!(
                    "worker 0 restored its checkpoint of step {} (epoch {}, attempt {})",
                    notice["step"],
                    notice["epoch"].as_u64().unwrap_or(0) + 1,
                    notice["attempt"]
                ),
            ),
            Some("epoch_end") if node.index == 0 => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                // After a restart the epochs go on from the restored one.
                if let Some(epoch) = notice["epoch"].as_u64() {
                    state.done = epoch;
                }
                let rows = notice["rows"].as_u64().unwrap_or(0);
                let seconds = state.started.elapsed().as_secs_f64();
                if metrics {
                    let epoch = state.done;
                    state.pending.insert(epoch, (rows, seconds));
                } else {
                    say(
                        &bar,
                        format!(
                            "epoch {}/{total}: {rows} rows per worker in {seconds:.1} s ({} rows/s per worker)",
                            state.done + 1,
                            human(rows as f64 / seconds.max(1e-9))
                        ),
                    );
                }
                state.done += 1;
                state.started = Instant::now();
                if state.done < total {
                    bar.set_style(bar_style());
                    bar.set_length(rows * workers);
                    bar.set_position(0);
                    bar.reset_eta();
                    bar.set_message(format!("epoch {}/{total}", state.done + 1));
                }
            }
            // Online training's versions (TFContext.version_exporter), as readers will see them.
            Some("version_exported") => say(
                &bar,
                format!(
                    "model version {} exported to {} ({:.2} s to save)",
                    notice["version"],
                    notice["path"].as_str().unwrap_or("?"),
                    notice["seconds"].as_f64().unwrap_or(0.0)
                ),
            ),
            // Every worker reports these; worker 0's (above) speak for all.
            Some("epoch_end" | "first_batch" | "epoch" | "loaded" | "restored") => {}
            Some(event) => say(&bar, format!("[{node}] report: {event}{}", report_fields(notice))),
            None => {}
        }
    }

    /// Prints a line above the bar.
    pub fn say(&self, line: String) {
        say(&self.bar, line);
    }

    /// Prints each restart of the cluster: the attempt and its cause.
    pub fn restart_handler(&self) -> impl Fn(u32, &str) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |attempt, cause| {
            let cause = cause.lines().next().unwrap_or("");
            say(&bar, format!("restarting the cluster as attempt {attempt} after: {cause}"));
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// `, loss 0.1234, accuracy 0.9876`: an `epoch` notice's values, loss first, then by name.
fn metric_values(notice: &serde_json::Value) -> String {
    let Some(values) = notice.as_object() else { return String::new() };
    let mut shown: Vec<(&String, f64)> = values
        .iter()
        .filter(|(k, _)| *k != "event" && *k != "epoch")
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect();
    shown.sort_by_key(|(k, _)| (k.starts_with("val_"), k.as_str() != "loss" && k.as_str() != "val_loss", k.to_string()));
    shown.iter().map(|(k, v)| format!(", {k} {v:.4}")).collect()
}

/// ` key=value` for every field of a notice but its `event`, in key order.
fn report_fields(notice: &serde_json::Value) -> String {
    let Some(fields) = notice.as_object() else { return String::new() };
    let mut pairs: Vec<(&String, &serde_json::Value)> = fields.iter().filter(|(k, _)| *k != "event").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => format!(" {key}={text}"),
            other => format!(" {key}={other}"),
        })
        .collect()
}

/// A line above the bar; straight to stderr when there is no bar (stderr is not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {human_pos} rows  {per_sec}  {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
