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
