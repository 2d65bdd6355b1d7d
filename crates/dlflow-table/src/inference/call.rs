//! [`ModelCall`]: one planned model call site, run batch after batch.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::error::Result;
use dlflow_tf::{PredictOptions, Predictor};

use super::{tf_error, ModelHandle};

/// The column a versioned model's calls add: the version that computed the row.
pub const MODEL_VERSION_COLUMN: &str = "model_version";

/// A model call as planned: the model, how to apply it, the fields of its arguments (which
/// feed the signature's inputs in order), and what it returns. Checked when it is made; then
/// run on batches of arguments by [`ModelCall::run`] (one column: the output, or a struct of
/// outputs) or [`ModelCall::run_columns`] (one column per output).
///
/// With a versioned model the call follows the version in service: it binds each new version
/// when it sees it (between two batches) and adds a `model_version` column. A new version whose
/// outputs differ from the planned ones is refused (logged) and the previous one keeps serving.
pub struct ModelCall {
    model: ModelHandle,
    options: PredictOptions,
    binding: Binding,
    arg_schema: SchemaRef,
    /// The outputs as planned, without `model_version`.
    outputs: Vec<FieldRef>,
    /// The predictor in use, and the versions last seen and served.
    bound: Mutex<Bound>,
}

/// How a call's arguments feed the signature's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Argument `i` feeds input `i` (inputs sorted by key): SQL's `predict('m', a, b)`.
    Positional,
    /// The arguments are a table's columns; inputs read them by name (or the options' mapping),
    /// tf.Example inputs are built from the feature columns: `Model::transform`.
    ByName,
}

/// A versioned call's state: `seen` moves on with every new version, `serving` only when the
/// new version fits the planned call.
struct Bound {
    seen: Option<u64>,
    serving: Option<u64>,
    predictor: Arc<Predictor>,
}

impl fmt::Debug for ModelCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `model=DIR, signature=NAME, batch_size=N`: how `EXPLAIN` shows a call.
impl fmt::Display for ModelCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signature = self.bound.lock().unwrap_or_else(|e| e.into_inner()).predictor.signature().name().to_string();
        write!(f, "model={}, signature={signature}, batch_size={}", self.model, self.options.batch_size)
    }
}

impl ModelCall {
    /// Plans a call of `model` on arguments of `arg_fields`: checks columns, types and shapes
    /// against the signature now, before any row is read.
    pub fn plan(model: ModelHandle, options: PredictOptions, binding: Binding, arg_fields: Vec<FieldRef>) -> Result<ModelCall> {
        let arg_schema = Arc::new(Schema::new(arg_fields));
        let (saved_model, version) = model.current();
        let predictor = bind(binding, saved_model, &arg_schema, &options).map_err(tf_error)?;
        let outputs = predictor.output_fields();
        let bound = Bound { seen: version, serving: version, predictor: Arc::new(predictor) };
        Ok(ModelCall { model, options, binding, arg_schema, outputs, bound: Mutex::new(bound) })
    }

    /// The model.
    pub fn model(&self) -> &ModelHandle {
        &self.model
    }

    /// The schema of the arguments, in signature input order.
    pub fn arg_schema(&self) -> &SchemaRef {
        &self.arg_schema
    }

    /// One field per output, then `model_version` (Int64) for a versioned model.
    pub fn output_fields(&self) -> Vec<FieldRef> {
        let mut fields = self.outputs.clone();
        if self.model.is_versioned() {
            fields.push(Arc::new(Field::new(MODEL_VERSION_COLUMN, DataType::Int64, false)));
        }
        fields
    }

    /// What [`ModelCall::run`] returns: the single output's type, or a struct of all fields.
    pub fn output_type(&self) -> DataType {
        match self.output_fields().as_slice() {
            [single] => single.data_type().clone(),
            many => DataType::Struct(Fields::from(many.to_vec())),
        }
    }

    /// The predictor to use for the next batch, bound to the version in service. Taken once per
    /// batch, in input order, so versions never go back along a stream.
    pub fn predictor(&self) -> (Arc<Predictor>, Option<u64>) {
        let (model, version) = self.model.current();
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if version != bound.seen {
            bound.seen = version;
            match bind(self.binding, model, &self.arg_schema, &self.options) {
                Ok(predictor) if predictor.output_fields() == self.outputs => {
                    bound.predictor = Arc::new(predictor);
                    bound.serving = version;
                }
                Ok(_) => tracing::warn!(model = %self.model, ?version, "the new model version has other outputs than the query was planned with; the previous version keeps serving"),
                Err(error) => tracing::warn!(model = %self.model, ?version, "the new model version does not fit this query ({error}); the previous version keeps serving"),
            }
        }
        (bound.predictor.clone(), bound.serving)
    }

    /// Runs the call on `args` (columns of [`ModelCall::arg_schema`]): one column per output
    /// field, row-aligned with `args`.
    pub fn run_columns(&self, args: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let (predictor, version) = self.predictor();
        run_columns(&predictor, version, args)
    }

    /// Runs the call on `args`: the single output, or a struct of all output fields.
    pub fn run(&self, args: &RecordBatch) -> Result<ArrayRef> {
        let columns = self.run_columns(args)?;
        self.assemble(columns)
    }

    /// The single column of [`ModelCall::run`] from [`ModelCall::run_columns`]' columns.
    pub fn assemble(&self, mut columns: Vec<ArrayRef>) -> Result<ArrayRef> {
        Ok(if columns.len() == 1 {
            columns.remove(0)
        } else {
            Arc::new(StructArray::try_new(Fields::from(self.output_fields()), columns, None)?)
        })
    }
}

fn bind(binding: Binding, model: Arc<dlflow_tf::SavedModel>, schema: &Schema, options: &PredictOptions) -> dlflow_tf::Result<Predictor> {
    match binding {
        Binding::Positional => Predictor::positional(model, schema, options),
        Binding::ByName => Predictor::new(model, schema, options),
    }
}

/// Runs `predictor` on `args` and appends the version column when `version` is set.
pub(crate) fn run_columns(predictor: &Predictor, version: Option<u64>, args: &RecordBatch) -> Result<Vec<ArrayRef>> {
    let mut columns = predictor.predict(args).map_err(tf_error)?;
    if let Some(version) = version {
        columns.push(Arc::new(Int64Array::from_value(version as i64, args.num_rows())));
    }
    Ok(columns)
}
