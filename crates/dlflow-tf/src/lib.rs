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
//! | [`saved_model`] | [`SavedModel`]: load with tags, list and run signatures |
//! | [`signature`] | [`Signature`], [`TensorSpec`], [`Shape`] |
//! | [`dtype`] | [`DType`] (TensorFlow), [`DlType`] (the seed's `FLOAT_32`... names) |
//! | [`convert`] | Arrow columns <-> tensors |
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
mod ffi;
pub mod library;
pub mod logs;
pub mod predict;
mod proto;
pub mod saved_model;
pub mod signature;
mod status;
mod tensor;

pub use dtype::{DType, DlType};
pub use error::{Result, TfError};
pub use library::{locate, TensorFlow};
pub use predict::{PredictOptions, Predictor, DEFAULT_BATCH_SIZE};
pub use saved_model::{LoadOptions, SavedModel};
pub use signature::{Shape, Signature, TensorSpec, STANDARD_SIGNATURES};
pub use tensor::Tensor;
