//! In-process inference: SavedModels as functions over tables and streams.
//!
//! | item | what |
//! |---|---|
//! | [`ModelHandle`], [`VersionedModel`] | the model a call runs: one SavedModel, or the newest version of `BASE/<n>` (hot reload) |
//! | [`ModelRegistry`] | models a session's SQL can call, by name |
//! | [`PredictFunction`] | the `predict` SQL function (typing and naming a call) |
//! | [`ModelCall`] | one planned call: model, signature, argument types, outputs |
//! | [`PredictExec`] | the physical operator that runs calls, partition by partition, off the async threads |
//! | [`PlanPredictions`] | the optimizer rule that lifts `predict(...)` calls into `PredictExec`s |
//! | [`transform`] | a table with a model's outputs appended (`Model::transform`) |
//!
//! ```sql
//! SELECT x, predict('linear', x) AS y FROM points          -- one output: the value
//! SELECT predict('mlp:classify', pixels)['classes'] FROM t -- several outputs: a struct
//! ```

mod call;
mod exec;
mod handle;
mod plan;
mod predict_function;
mod registry;
mod transform;
mod versions;

pub use call::{Binding, ModelCall, MODEL_VERSION_COLUMN};
pub use exec::{PredictColumn, PredictExec};
pub use handle::ModelHandle;
pub use plan::PlanPredictions;
pub use predict_function::PredictFunction;
pub use registry::ModelRegistry;
pub use transform::transform;
pub use versions::{VersionEvent, VersionListener, VersionedModel, DEFAULT_POLL};

use datafusion::error::DataFusionError;
use dlflow_tf::TfError;

/// TensorFlow errors inside DataFusion keep their own message (and stay downcastable).
pub(crate) fn tf_error(error: TfError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
