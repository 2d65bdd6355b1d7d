//! # dlflow: deep learning on dataflow
//!
//! Train TensorFlow models on the rows of tables and streams, and run trained models inside
//! the same pipelines: columnar Arrow batches straight into TensorFlow, batched in-process
//! SavedModel inference over tables, SQL and streams.
//!
//! This crate is the public API; the layers under it are
//! [`dlflow_tf`] (TensorFlow runtime, SavedModels, Arrow <-> tensors) and
//! [`dlflow_table`] (DataFusion tables, sources, sinks, the `predict` SQL function).
//!
//! | type | what |
//! |---|---|
//! | [`Environment`] | sources (files, `datagen`, SQL) and registered models |
//! | [`Table`] | a lazy table: collect, stream, write, show |
//! | [`Model`] | a SavedModel applied to tables: `transform` |
//! | [`TfClusterConfig`] | a cluster of Python TensorFlow nodes: workers, ps, entry, properties |
//! | [`train`], [`inference`], [`Job`] | feed a table to the cluster's workers, epoch by epoch |
//! | [`Estimator`] | fit a Keras model on feature and label columns, get a [`Model`] back |
//! | [`pattern`] | "these events in this order within this time", per key, on event time |
//! | [`LossCurve`] | a training run's loss, read from its TensorBoard event files; text and SVG |
//!
//! ```no_run
//! # async fn demo() -> dlflow::Result<()> {
//! use dlflow::{DataGen, Environment, Generator, Model};
//!
//! let env = Environment::new();
//! let points = env.datagen(DataGen::new(5120).seed(1).column("x", Generator::uniform(0.0, 1.0)))?;
//! let model = Model::load("models/linear")?;
//! let predicted = model.transform(&points)?; // x, y = 2x + 1
//! println!("{}", predicted.show(5).await?);
//! # Ok(()) }
//! ```

mod environment;
mod error;
mod estimator;
mod job;
mod model;
pub mod pattern;
mod table;

pub use dlflow_table::datagen::{DataGen, Generator};
pub use dlflow_table::window::{WindowRows, WindowSpec};
pub use dlflow_tf::{DType, DlType, LoadOptions, PredictOptions, SavedModel, Signature, TensorSpec};
pub use dlflow_cluster::{CheckpointEvery, NodeName, NodeType, Python, Recovery, TfClusterConfig, TfClusterConfigBuilder, Timeouts};
pub use dlflow_engine::{EpochReport, Hosts, Progress, Replay};
pub use dlflow_tensorboard::LossCurve;
pub use environment::Environment;
pub use estimator::{EpochMetrics, Estimator, KerasModel};
pub use job::{Job, JobReport, Restart, inference, train, train_without_input, wait_for_jobs};
pub use error::{Error, Result};
pub use model::{FittedWith, Model};
pub use table::Table;

/// The layers under the facade, for what it does not wrap.
pub mod layers {
    pub use dlflow_cluster;
    pub use dlflow_common;
    pub use dlflow_engine;
    pub use dlflow_table;
    pub use dlflow_tensorboard;
    pub use dlflow_tf;
}

/// The README and the user guide, as doc tests: their Rust snippets compile, and run unless
/// marked `no_run` (the other blocks are run by `crates/dlflow-cli/tests/it/docs.rs`). The guides
/// name the files their blocks become with a `file=NAME` attribute, which rustdoc does not know.
#[cfg(doctest)]
#[allow(rustdoc::invalid_codeblock_attributes)]
mod guides {
    #[doc = include_str!("../../../README.md")]
    struct Readme;
    #[doc = include_str!("../../../docs/guide/training.md")]
    struct Training;
    #[doc = include_str!("../../../docs/guide/estimator.md")]
    struct Estimator;
    #[doc = include_str!("../../../docs/guide/inference.md")]
    struct Inference;
    #[doc = include_str!("../../../docs/guide/tables.md")]
    struct Tables;
    #[doc = include_str!("../../../docs/guide/cli.md")]
    struct Cli;
    #[doc = include_str!("../../../docs/guide/tensorflow.md")]
    struct Tensorflow;
    #[doc = include_str!("../../../docs/guide/streams.md")]
    struct Streams;
    #[doc = include_str!("../../../docs/guide/event-time.md")]
    struct EventTime;
    #[doc = include_str!("../../../docs/guide/recovery.md")]
    struct Recovery;
    #[doc = include_str!("../../../docs/guide/hosts.md")]
    struct Hosts;
}
