//! The `predict` scalar function: how a model call is named in SQL and planned.
//!
//! The function itself only types the call; running it is [`PredictExec`](super::PredictExec)'s
//! job: the [`PlanPredictions`](super::PlanPredictions) rule lifts every `predict(...)` out of
//! projections and filters into that operator. Calls the rule cannot lift (inside an aggregate's
//! arguments, a join condition) run inline, batch by batch, with the same [`ModelCall`].

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use dlflow_tf::PredictOptions;

use super::call::{Binding, ModelCall};
use super::{ModelHandle, ModelRegistry};

/// `predict(model, input...)`: run a SavedModel signature over columns.
///
/// Two forms:
/// - [`PredictFunction::sql`]: the session's `predict` function. Its first argument is a
///   string literal naming a registered model, optionally with a signature
///   (`'mlp:classify'`); the other arguments feed the signature's inputs in the order
///   `dlflow model inspect` lists them (sorted by name).
/// - [`PredictFunction::bound`]: one model and [`PredictOptions`] fixed in advance; the
///   arguments are a table's columns, which feed the inputs by name (tf.Example inputs are built
///   from them). `Model::transform` builds on this.
///
/// A signature with one output returns that output's column; with several (or a versioned
/// model, which adds `model_version`), a struct with one field per output. Types and shapes are
/// checked when the query is planned.
///
/// ```no_run
/// use std::sync::Arc;
/// use datafusion::logical_expr::ScalarUDF;
/// use datafusion::prelude::SessionContext;
/// use dlflow_table::inference::{ModelRegistry, PredictFunction};
///
/// let registry = Arc::new(ModelRegistry::default());
/// let ctx = SessionContext::new();
/// ctx.register_udf(ScalarUDF::new_from_impl(PredictFunction::sql(registry.clone())));
/// // ... registry.register("linear", model); ctx.sql("SELECT predict('linear', x) FROM t")
/// ```
#[derive(Debug)]
pub struct PredictFunction {
    source: Source,
    signature: Signature,
}

#[derive(Debug)]
enum Source {
    Registry(Arc<ModelRegistry>),
    Bound { name: String, model: ModelHandle, options: PredictOptions },
}

impl PredictFunction {
    /// The SQL `predict` function over the models in `registry`.
    pub fn sql(registry: Arc<ModelRegistry>) -> PredictFunction {
        PredictFunction { source: Source::Registry(registry), signature: Signature::variadic_any(Volatility::Immutable) }
    }

    /// A function named `name` running `model` with `options`; all arguments are inputs.
    pub fn bound(name: impl Into<String>, model: impl Into<ModelHandle>, options: PredictOptions) -> PredictFunction {
        PredictFunction {
            source: Source::Bound { name: name.into(), model: model.into(), options },
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// How many leading arguments are not model inputs (the SQL form's model name).
    pub(crate) fn first_input(&self) -> usize {
        match self.source {
            Source::Registry(_) => 1,
            Source::Bound { .. } => 0,
        }
    }

    /// The call this function makes for arguments of `input_fields` (and, for the SQL form,
    /// the first argument `model_arg`).
    pub(crate) fn call(&self, model_arg: Option<&ScalarValue>, input_fields: &[FieldRef]) -> Result<ModelCall> {
        let (model, options, binding) = match &self.source {
            Source::Bound { model, options, .. } => (model.clone(), options.clone(), Binding::ByName),
            Source::Registry(registry) => {
                let spec = match model_arg {
                    Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => s.as_str(),
                    _ => {
                        return Err(DataFusionError::Plan(
                            "predict: the first argument must be a string literal naming a model, e.g. predict('linear', x)".into(),
                        ));
                    }
                };
                let (name, signature) = match spec.split_once(':') {
                    Some((name, signature)) => (name, Some(signature.to_string())),
                    None => (spec, None),
                };
                (registry.get(name)?, PredictOptions { signature, ..PredictOptions::default() }, Binding::Positional)
            }
        };
        ModelCall::plan(model, options, binding, input_fields.to_vec())
    }
}

impl ScalarUDFImpl for PredictFunction {
    fn name(&self) -> &str {
        match &self.source {
            Source::Registry(_) => "predict",
            Source::Bound { name, .. } => name,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal("predict: return_field_from_args is used instead".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let first = self.first_input();
        if args.arg_fields.len() < first {
            return Err(DataFusionError::Plan("predict: expected predict('model', input...)".into()));
        }
        let model_arg = args.scalar_arguments.first().copied().flatten();
        let call = self.call(model_arg, &args.arg_fields[first..])?;
        Ok(Arc::new(Field::new(self.name(), call.output_type(), false)))
    }

    /// The inline path, for calls [`PlanPredictions`](super::PlanPredictions) did not lift into
    /// a `PredictExec`.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = self.first_input();
        let model_arg = match args.args.first() {
            Some(ColumnarValue::Scalar(value)) if first == 1 => Some(value.clone()),
            _ => None,
        };
        let call = self.call(model_arg.as_ref(), &args.arg_fields[first..])?;
        let columns = args.args[first..].iter().map(|value| value.clone().into_array(args.number_rows)).collect::<Result<Vec<ArrayRef>>>()?;
        let schema = Arc::new(Schema::new(args.arg_fields[first..].to_vec()));
        let batch = RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(args.number_rows)))?;
        Ok(ColumnarValue::Array(call.run(&batch)?))
    }
}

impl PartialEq for PredictFunction {
    fn eq(&self, other: &Self) -> bool {
        match (&self.source, &other.source) {
            (Source::Registry(a), Source::Registry(b)) => Arc::ptr_eq(a, b),
            (Source::Bound { name: a, model: ma, .. }, Source::Bound { name: b, model: mb, .. }) => a == b && ma.same(mb),
            _ => false,
        }
    }
}

impl Eq for PredictFunction {}

impl Hash for PredictFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}
