//! # dlflow-common: what every dlflow crate agrees on
//!
//! The bottom of dlflow's crate graph: small definitions that several layers need and that
//! must not drift apart, with no TensorFlow, DataFusion or engine behind them.
//!
//! | module | what | used by |
//! |---|---|---|
//! | [`types`] | the element type table: Arrow type, TensorFlow dtype, the seed's `FLOAT_32` names, what training nodes take | tensors, jobs, the Python nodes (`python/dlflow/_types.py`, cross-checked by a test) |
//! | [`paths`] | dlflow's cache folder and the project's virtualenv | the TensorFlow loader, the node launcher |
//! | [`tf_logs`] | TensorFlow's own log lines: which to hide, the switches that show them | in-process loads, node output |
//! | [`tensor_proto`] | `TensorProto` / `TensorShapeProto`, declared by hand with prost | SavedModel signatures, TensorBoard event files |
//!
//! ```
//! use dlflow_common::types;
//! use arrow_schema::DataType;
//! let float = types::by_arrow(&DataType::Float32).expect("a tensor type");
//! assert_eq!((float.tf_name, float.seed_name), ("float32", Some("FLOAT_32")));
//! ```

pub mod paths;
pub mod tensor_proto;
pub mod tf_logs;
pub mod types;

/// Rows per TensorFlow call when the user sets none (`--batch-size`, `PredictOptions`,
/// the SQL session's batch size): large enough that the fixed cost of a run (tens of
/// microseconds) is noise, small enough to keep tensors in cache-sized chunks.
pub const DEFAULT_BATCH_SIZE: usize = 1024;
