//! In-process inference: SavedModels as functions over tables.
//!
//! A [`ModelRegistry`] names loaded models; [`PredictFunction`] is the `predict` SQL function
//! that runs them over the columns it is given, batch by batch, inside DataFusion's own
//! partitioned, streaming execution (so inference uses every core and bounded memory).
//!
//! ```sql
//! SELECT x, predict('linear', x) AS y FROM points          -- one output: the value
//! SELECT predict('mlp:classify', pixels)['classes'] FROM t -- several outputs: a struct
//! ```

mod predict_function;
mod transform;
mod registry;

pub use predict_function::PredictFunction;
pub use registry::ModelRegistry;
pub use transform::transform;

use datafusion::error::DataFusionError;
use dlflow_tf::TfError;

/// TensorFlow errors inside DataFusion keep their own message (and stay downcastable).
pub(crate) fn tf_error(error: TfError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
