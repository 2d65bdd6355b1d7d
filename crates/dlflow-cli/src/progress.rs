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

/// A training job's progress: one bar per epoch (rows fed, rows/s), a line per finished
/// epoch, and the nodes' output printed above the bar instead of through it.
pub struct EpochProgress {
    bar: ProgressBar,
    epochs: Option<u64>,
}

impl EpochProgress {
    /// Starts the bar; `epochs` is `None` for a job without input.
    pub fn start(epochs: Option<u64>) -> EpochProgress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(spinner_style());
        bar.set_message(match epochs {
            Some(total) => format!("epoch 1/{total}: starting the nodes"),
            None => "running the nodes".to_string(),
        });
        bar.enable_steady_tick(Duration::from_millis(120));
        EpochProgress { bar, epochs }
    }

    /// Where the nodes' output lines go: above the bar.
    pub fn printer(&self) -> dlflow::layers::dlflow_cluster::OutputHandler {
        let bar = self.bar.clone();
        std::sync::Arc::new(move |node: dlflow::NodeName, line: &str| say(&bar, format!("[{node}] {line}")))
    }

    /// Follows the engine's counters until aborted.
    pub fn watch(&self, progress: std::sync::Arc<dlflow::Progress>) -> tokio::task::JoinHandle<()> {
        let bar = self.bar.clone();
        let Some(total) = self.epochs else { return tokio::spawn(async {}) };
        tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            let (mut done, mut start_rows, mut started) = (0u64, 0u64, Instant::now());
            let mut per_epoch: Option<u64> = None;
            loop {
                let completed = progress.epochs_completed.load(Ordering::SeqCst);
                let rows = progress.rows_read.load(Ordering::Relaxed);
                while done < completed.min(total) {
                    let epoch_rows = per_epoch.unwrap_or(rows - start_rows);
                    let seconds = started.elapsed().as_secs_f64();
                    say(
                        &bar,
                        format!(
                            "epoch {}/{total}: {epoch_rows} rows fed in {seconds:.1} s ({} rows/s)",
                            done + 1,
                            human(epoch_rows as f64 / seconds.max(1e-9))
                        ),
                    );
                    if per_epoch.is_none() {
                        per_epoch = Some(epoch_rows);
                        bar.set_style(bar_style());
                        bar.set_length(epoch_rows);
                    }
                    done += 1;
                    start_rows += epoch_rows;
                    started = Instant::now();
                    bar.reset_eta();
                }
                if done < total {
                    bar.set_message(format!("epoch {}/{total}", done + 1));
                    bar.set_position(rows.saturating_sub(start_rows));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
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
