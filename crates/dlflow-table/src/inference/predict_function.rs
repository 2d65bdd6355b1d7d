//! The `predict` scalar function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use dlflow_tf::{PredictOptions, Predictor, SavedModel};

use super::{tf_error, ModelRegistry};

/// `predict(model, input...)`: run a SavedModel signature over columns.
///
/// Two forms:
/// - [`PredictFunction::sql`]: the session's `predict` function. Its first argument is a
///   string literal naming a registered model, optionally with a signature
///   (`'mlp:classify'`); the other arguments feed the signature's inputs in the order
///   `dlflow model inspect` lists them (sorted by name).
/// - [`PredictFunction::bound`]: one model and [`PredictOptions`] fixed in advance; every
///   argument feeds an input. `Model::transform` builds on this.
///
/// A signature with one output returns that output's column; with several, a struct with one
/// field per output. Types and shapes are checked when the query is planned.
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
    Bound { name: String, model: BoundModel, options: PredictOptions },
}

/// A model held by a bound function (SavedModel is not `Debug`).
struct BoundModel(Arc<SavedModel>);

impl std::fmt::Debug for BoundModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SavedModel({})", self.0.dir().display())
    }
}

impl PredictFunction {
    /// The SQL `predict` function over the models in `registry`.
    pub fn sql(registry: Arc<ModelRegistry>) -> PredictFunction {
        PredictFunction { source: Source::Registry(registry), signature: Signature::variadic_any(Volatility::Immutable) }
    }

    /// A function named `name` running `model` with `options`; all arguments are inputs.
    pub fn bound(name: impl Into<String>, model: Arc<SavedModel>, options: PredictOptions) -> PredictFunction {
        PredictFunction {
            source: Source::Bound { name: name.into(), model: BoundModel(model), options },
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// The predictor for a call whose arguments have `fields` (and, for the SQL form, a
    /// first argument `model_arg`).
    fn predictor(&self, model_arg: Option<&ScalarValue>, input_fields: &[FieldRef]) -> Result<Predictor> {
        let schema = Schema::new(input_fields.to_vec());
        let (model, options) = match &self.source {
            Source::Bound { model, options, .. } => (model.0.clone(), options.clone()),
            Source::Registry(registry) => {
                let spec = match model_arg {
                    Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => s.as_str(),
                    _ => {
                        return Err(DataFusionError::Plan(
                            "predict: the first argument must be a string literal naming a model, e.g. predict('linear', x)".into(),
                        ))
                    }
                };
                let (name, signature) = match spec.split_once(':') {
                    Some((name, signature)) => (name, Some(signature.to_string())),
                    None => (spec, None),
                };
                (registry.get(name)?, PredictOptions { signature, ..PredictOptions::default() })
            }
        };
        Predictor::positional(model, &schema, &options).map_err(tf_error)
    }

    fn input_range(&self) -> usize {
        match self.source {
            Source::Registry(_) => 1,
            Source::Bound { .. } => 0,
        }
    }
}

/// What one call returns: the single output, or a struct of all of them.
fn return_type(outputs: &[FieldRef]) -> DataType {
    match outputs {
        [single] => single.data_type().clone(),
        many => DataType::Struct(Fields::from(many.to_vec())),
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
        let first = self.input_range();
        if args.arg_fields.len() < first {
            return Err(DataFusionError::Plan("predict: expected predict('model', input...)".into()));
        }
        let model_arg = args.scalar_arguments.first().copied().flatten();
        let predictor = self.predictor(model_arg, &args.arg_fields[first..])?;
        Ok(Arc::new(Field::new(self.name(), return_type(&predictor.output_fields()), false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = self.input_range();
        let model_arg = match args.args.first() {
            Some(ColumnarValue::Scalar(value)) if first == 1 => Some(value.clone()),
            _ => None,
        };
        let predictor = self.predictor(model_arg.as_ref(), &args.arg_fields[first..])?;
        let columns = args.args[first..]
            .iter()
            .map(|value| value.clone().into_array(args.number_rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let schema = Arc::new(Schema::new(args.arg_fields[first..].to_vec()));
        let batch = RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(args.number_rows)))?;
        let mut outputs = predictor.predict(&batch).map_err(tf_error)?;
        let fields = predictor.output_fields();
        Ok(ColumnarValue::Array(if outputs.len() == 1 {
            outputs.remove(0)
        } else {
            Arc::new(StructArray::try_new(Fields::from(fields), outputs, None)?)
        }))
    }
}

impl PartialEq for PredictFunction {
    fn eq(&self, other: &Self) -> bool {
        match (&self.source, &other.source) {
            (Source::Registry(a), Source::Registry(b)) => Arc::ptr_eq(a, b),
            (Source::Bound { name: a, model: ma, .. }, Source::Bound { name: b, model: mb, .. }) => a == b && Arc::ptr_eq(&ma.0, &mb.0),
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
