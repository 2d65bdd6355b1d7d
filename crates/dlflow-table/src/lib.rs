//! Tables for dlflow: the DataFusion session, sources (files and generated `datagen`
//! tables), sinks and printing.
//!
//! Everything here speaks Arrow [`RecordBatch`](arrow::array::RecordBatch)es and DataFusion
//! tables, so tables can be shaped with SQL before they reach a model.
//!
//! | module | what |
//! |---|---|
//! | [`session`] | [`new_session`]: DataFusion plus dlflow's sources |
//! | [`datagen`] | generated tables, in Rust ([`datagen::DataGen`]) or SQL (`STORED AS DATAGEN`) |
//! | [`files`] | [`register_file`]: CSV, Parquet, NDJSON, Arrow IPC by extension |
//! | [`sink`] | [`write_stream`]: atomic, streaming file output |
//! | [`inference`] | (feature `inference`, on by default) models in queries: `predict(...)`, [`PredictExec`](inference::PredictExec), `transform`, hot reload |
//! | [`options`] | dlflow's session settings (`SET dlflow.max_batch_rows = …`) |
//! | [`micro_batch`] | cutting streams into micro-batches bounded by rows and delay |
//! | [`ordered`] | reading partitions in order, each read ahead on its own task |
//! | [`stream`] | unbounded sources (stdin, TCP, Kafka, followed directories) and stream sinks |
//! | [`window`] | event time: watermarks, `TUMBLE`/`HOP`/`SESSION` group windows |
//! | [`print`](mod@print) | [`format_table`]: readable text tables, vectors abbreviated |
//! | [`error`] | [`TableError`], [`Result`] |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dlflow_table::Result<()> {
//! let ctx = dlflow_table::new_session();
//! ctx.sql(
//!     "CREATE EXTERNAL TABLE points (x DOUBLE, label INT) STORED AS DATAGEN \
//!      LOCATION 'datagen://' \
//!      OPTIONS ('number-of-rows' '5120', 'seed' '7', \
//!               'fields.x.min' '-1', 'fields.x.max' '1', \
//!               'fields.label.min' '0', 'fields.label.max' '1')",
//! )
//! .await?;
//! let batches = ctx
//!     .sql("SELECT label, count(*) AS n FROM points WHERE x > 0 GROUP BY label ORDER BY label")
//!     .await?
//!     .collect()
//!     .await?;
//! println!("{}", dlflow_table::format_table(&batches, 10));
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
//! # Ok(())
//! # }
//! ```

pub mod datagen;
pub mod error;
pub mod files;
#[cfg(feature = "inference")]
pub mod inference;
pub mod micro_batch;
pub mod options;
pub mod ordered;
pub mod print;
pub mod session;
pub mod sink;
pub mod stream;
pub mod window;

pub use error::{Result, TableError};
pub use files::{register_file, register_file_with_schema, FileFormat};
pub use print::format_table;
pub use session::{new_session, new_session_with_config, with_dlflow_sources};
pub use sink::write_stream;
