//! Progress on long runs: a live row counter on stderr (hidden when stderr is not a
//! terminal), and the one-line summary printed at the end.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Counts rows as they stream past.
pub struct RowProgress {
    bar: ProgressBar,
    started: Instant,
    rows: u64,
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
        RowProgress { bar, started: Instant::now(), rows: 0 }
    }

    /// `rows` more rows are done.
    pub fn add(&mut self, rows: usize) {
        self.rows += rows as u64;
        self.bar.inc(rows as u64);
    }

    /// Stop the bar and return `rows, seconds, rows/s` as text.
    pub fn finish(self) -> String {
        self.bar.finish_and_clear();
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { self.rows as f64 / seconds } else { 0.0 };
        format!("{} rows in {:.2} s ({} rows/s)", self.rows, seconds, human(rate))
    }
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
pub struct EpochProgress {
    bar: ProgressBar,
    epochs: Option<u64>,
    workers: u64,
}

/// What the notice handler remembers between notices.
struct EpochState {
    done: u64,
    started: Instant,
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
        EpochProgress { bar, epochs, workers: workers as u64 }
    }

    /// Where the nodes' output lines go: above the bar.
    pub fn printer(&self) -> dlflow::layers::dlflow_cluster::OutputHandler {
        let bar = self.bar.clone();
        std::sync::Arc::new(move |node: dlflow::NodeName, line: &str| say(&bar, format!("[{node}] {line}")))
    }

    /// Follows the nodes' notices: rows taken, ends of epochs (worker 0's mark the epoch).
    pub fn notice_handler(&self) -> impl Fn(dlflow::NodeName, &serde_json::Value) + Send + Sync + 'static {
        let (bar, workers) = (self.bar.clone(), self.workers);
        let total = self.epochs.unwrap_or(1);
        let state = std::sync::Mutex::new(EpochState { done: 0, started: Instant::now() });
        move |node, notice| match notice["event"].as_str() {
            Some("rows") => bar.inc(notice["rows"].as_u64().unwrap_or(0)),
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
                say(
                    &bar,
                    format!(
                        "epoch {}/{total}: {rows} rows per worker in {seconds:.1} s ({} rows/s per worker)",
                        state.done + 1,
                        human(rows as f64 / seconds.max(1e-9))
                    ),
                );
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
            _ => {}
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
