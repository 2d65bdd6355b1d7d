//! # dlflow-tf: TensorFlow for dlflow
//!
//! The TensorFlow runtime under dlflow's inference and training: it finds libtensorflow
//! (the one inside a `tensorflow-cpu` wheel) and loads it at run time, loads SavedModels and
//! their signatures, converts Arrow columns to tensors and back, and runs a signature over
//! record batches.
//!
//! | module | what |
//! |---|---|
//! | [`library`] | find and load libtensorflow ([`TensorFlow`], [`locate`]) |
//! | [`saved_model`] | [`SavedModel`]: load with tags, list signatures, run them over tensors ([`SavedModel::call`]) |
//! | [`signature`] | [`Signature`], [`TensorSpec`], [`Shape`] |
//! | [`dtype`] | [`DType`] (TensorFlow), [`DlType`] (the seed's `FLOAT_32`... names) |
//! | [`convert`] | Arrow columns <-> tensors |
//! | [`tensor_value`] | [`TensorValue`]: a tensor as Arrow values and a shape |
//! | [`example_spec`] | [`ExampleSpec`]: the tf.Example features a signature parses, read from its graph |
//! | [`example`] | [`ExampleEncoder`]: serialized `tf.train.Example` protos from a table's columns |
//! | [`predict`] | [`Predictor`]: a signature bound to a schema, run batch by batch |
//!
//! ```no_run
//! use std::sync::Arc;
//! use dlflow_tf::{PredictOptions, Predictor, SavedModel};
//! use arrow::array::{Float32Array, RecordBatch};
//!
//! let model = Arc::new(SavedModel::load("models/linear")?);
//! let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![0.0, 1.0])) as _)])?;
//! let predictor = Predictor::new(model, &batch.schema(), &PredictOptions::default())?;
//! let y = predictor.predict(&batch)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod convert;
pub mod dtype;
mod error;
pub mod example;
pub mod example_spec;
mod ffi;
mod graph;
mod graph_shapes;
pub mod library;
pub mod logs;
pub mod predict;
mod proto;
pub mod saved_model;
pub mod signature;
mod status;
mod tensor;
pub mod tensor_value;

pub use dtype::{DType, DlType};
pub use error::{Result, TfError};
pub use example::ExampleEncoder;
pub use example_spec::{ExampleSpec, FeatureKind, FeatureSpec};
pub use library::{locate, TensorFlow};
pub use predict::{PredictOptions, Predictor, DEFAULT_BATCH_SIZE};
pub use saved_model::{LoadOptions, SavedModel};
pub use signature::{Shape, Signature, TensorSpec, STANDARD_SIGNATURES};
pub use tensor::Tensor;
pub use tensor_value::TensorValue;
