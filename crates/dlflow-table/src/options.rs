//! dlflow's session settings, as a DataFusion config extension (`SET dlflow.… = …` in SQL).
//!
//! They tune how models run inside queries: how many rows one TensorFlow call takes at most on
//! a stream, how long a record may wait for its micro-batch to fill, and how many batches run
//! through TensorFlow at once.

use std::time::Duration;

use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::extensions_options;

/// Rows per micro-batch on a stream unless told otherwise: DataFusion's batch size, as a table
/// read from a file has. The model still runs at most its own batch size
/// ([`dlflow_common::DEFAULT_BATCH_SIZE`] unless told otherwise) per TensorFlow call; what a
/// larger micro-batch saves is the pipeline's cost per batch (task hand-offs, a write and a flush
/// of the sink), about 0.2 ms each.
///
/// Chosen by measurement (docs/decisions/0010-streams.md): 8192 rows gave 1.75x the peak
/// throughput of 1024 on the linear model, the same on the MLP, and the same latency below the
/// peak (where batches are small anyway).
pub const DEFAULT_MAX_BATCH_ROWS: usize = 8192;

/// How long the first record of a micro-batch may wait for more unless told otherwise: not at
/// all. A batch leaves as soon as the source has nothing more ready, so it holds what arrived
/// while the previous batch ran: small when the stream is quiet, full on a busy stream.
///
/// Chosen by measurement (docs/decisions/0010-streams.md): against 1, 2, 5 and 10 ms, a delay
/// of 0 gave the lowest latency at half the peak rate and the same peak throughput.
pub const DEFAULT_MAX_BATCH_DELAY: Duration = Duration::ZERO;

extensions_options! {
    /// Model settings of a session: `SET dlflow.max_batch_rows = 256` in SQL,
    /// [`ModelSettings::install`] in Rust.
    ///
    /// ```
    /// use dlflow_table::options::ModelSettings;
    /// let ctx = dlflow_table::new_session();
    /// let settings = ModelSettings::of(&ctx.copied_config().options());
    /// assert_eq!(settings.max_batch_rows, dlflow_table::options::DEFAULT_MAX_BATCH_ROWS);
    /// ```
    pub struct ModelSettings {
        /// On a stream, rows per micro-batch at most (at least 1).
        pub max_batch_rows: usize, default = DEFAULT_MAX_BATCH_ROWS
        /// On a stream, how long (milliseconds) the first record of a micro-batch may wait for
        /// more before the batch goes to the model; 0 sends whatever is ready at once.
        pub max_batch_delay_ms: u64, default = DEFAULT_MAX_BATCH_DELAY.as_millis() as u64
        /// Batches in TensorFlow at once per model call site; 0 means the number of cores.
        pub concurrency: usize, default = 0
    }
}

impl ConfigExtension for ModelSettings {
    const PREFIX: &'static str = "dlflow";
}

impl ModelSettings {
    /// The settings in `options`, or the defaults when the session has none.
    pub fn of(options: &ConfigOptions) -> ModelSettings {
        options.extensions.get::<ModelSettings>().cloned().unwrap_or_default()
    }

    /// The micro-batch bounds these settings give.
    pub fn batching(&self) -> MicroBatching {
        MicroBatching { max_rows: self.max_batch_rows.max(1), max_delay: Duration::from_millis(self.max_batch_delay_ms) }
    }

    /// Batches in TensorFlow at once: the setting, or the number of cores.
    pub fn concurrency(&self) -> usize {
        match self.concurrency {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        }
    }
}

/// How records of a stream are cut into micro-batches before they reach a model: at most
/// `max_rows` rows, and no record waits longer than `max_delay` for its batch to fill (0: a
/// batch is whatever is ready when the model asks for one).
///
/// ```
/// use std::time::Duration;
/// use dlflow_table::options::MicroBatching;
/// let batching = MicroBatching { max_rows: 256, max_delay: Duration::from_millis(5) };
/// assert_eq!(batching, MicroBatching::default().max_rows(256).max_delay(Duration::from_millis(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroBatching {
    /// Rows per micro-batch at most.
    pub max_rows: usize,
    /// The longest a record waits for its micro-batch to fill.
    pub max_delay: Duration,
}

impl Default for MicroBatching {
    fn default() -> Self {
        MicroBatching { max_rows: DEFAULT_MAX_BATCH_ROWS, max_delay: DEFAULT_MAX_BATCH_DELAY }
    }
}

impl MicroBatching {
    /// At most `rows` rows per micro-batch (at least 1).
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows.max(1);
        self
    }

    /// No record waits longer than `delay` for its micro-batch.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }
}
