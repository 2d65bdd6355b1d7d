//! Batched prediction: a signature applied to Arrow record batches.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::concat;
use arrow::datatypes::{FieldRef, Schema};
use arrow::record_batch::RecordBatch;

use crate::convert::{output_field, tensor_to_array, InputPlan};
use crate::error::{Result, TfError};
use crate::saved_model::SavedModel;
use crate::signature::{keys, Signature};

/// Rows per `TF_SessionRun` unless told otherwise: large enough that the fixed cost of a
/// run (tens of microseconds) is noise, small enough to keep tensors in cache-sized chunks.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// How to apply a model to a table.
///
/// ```
/// use dlflow_tf::PredictOptions;
/// let options = PredictOptions::default()
///     .signature("classify")
///     .map_input("pixels", "image")   // signature input `pixels` reads column `image`
///     .outputs(["classes"])
///     .batch_size(4096);
/// assert_eq!(options.batch_size, 4096);
/// ```
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Signature name; the model's default signature when `None`.
    pub signature: Option<String>,
    /// Explicit `(signature input, column)` pairs; other inputs read the column of their name.
    pub input_columns: Vec<(String, String)>,
    /// Outputs to compute (a subset); all outputs when `None`.
    pub outputs: Option<Vec<String>>,
    /// Rows per TensorFlow run.
    pub batch_size: usize,
    /// Convert numbers to the signature's number type (e.g. DOUBLE columns into a float32
    /// input). When false, column types must match exactly.
    pub allow_cast: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions { signature: None, input_columns: Vec::new(), outputs: None, batch_size: DEFAULT_BATCH_SIZE, allow_cast: true }
    }
}

impl PredictOptions {
    /// Use the signature called `name`.
    pub fn signature(mut self, name: impl Into<String>) -> Self {
        self.signature = Some(name.into());
        self
    }

    /// Feed signature input `input` from column `column`.
    pub fn map_input(mut self, input: impl Into<String>, column: impl Into<String>) -> Self {
        self.input_columns.push((input.into(), column.into()));
        self
    }

    /// Compute only these outputs.
    pub fn outputs<S: Into<String>>(mut self, outputs: impl IntoIterator<Item = S>) -> Self {
        self.outputs = Some(outputs.into_iter().map(Into::into).collect());
        self
    }

    /// Rows per TensorFlow run (at least 1).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Whether numbers may be converted to the signature's number types.
    pub fn allow_cast(mut self, allow: bool) -> Self {
        self.allow_cast = allow;
        self
    }
}

/// A model signature bound to a table schema: which column feeds which input, and what
/// columns come out. Everything that can be checked without data is checked when it is made.
///
/// ```no_run
/// use std::sync::Arc;
/// use dlflow_tf::{PredictOptions, Predictor, SavedModel};
/// # fn batch() -> arrow::record_batch::RecordBatch { unimplemented!() }
/// let model = Arc::new(SavedModel::load("models/linear")?);
/// let batch = batch();
/// let predictor = Predictor::new(model, &batch.schema(), &PredictOptions::default())?;
/// let outputs = predictor.predict(&batch)?; // one column per output, a row per input row
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
pub struct Predictor {
    model: Arc<SavedModel>,
    signature: Signature,
    /// Per signature input (in signature order): the column index and its conversion.
    inputs: Vec<(usize, InputPlan)>,
    /// Indices into the signature's outputs, and their fields.
    outputs: Vec<(usize, FieldRef)>,
    batch_size: usize,
}

impl Predictor {
    /// Bind `model` to `schema`: each signature input reads the column of its name, or the
    /// column [`PredictOptions::map_input`] gives.
    pub fn new(model: Arc<SavedModel>, schema: &Schema, options: &PredictOptions) -> Result<Predictor> {
        let signature = choose_signature(&model, options)?;
        for (input, _) in &options.input_columns {
            if signature.input(input).is_none() {
                return Err(TfError::UnknownInput { signature: signature.name.clone(), input: input.clone(), available: keys(&signature.inputs) });
            }
        }
        let columns = signature
            .inputs
            .iter()
            .map(|spec| {
                let column = options.input_columns.iter().find(|(input, _)| *input == spec.key).map(|(_, c)| c.as_str()).unwrap_or(&spec.key);
                schema.index_of(column).map_err(|_| TfError::MissingColumn {
                    signature: signature.name.clone(),
                    input: spec.key.clone(),
                    column: column.to_string(),
                    available: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::bind(model, signature, schema, columns, options)
    }

    /// Bind `model` to columns by position: column `i` of `schema` feeds the signature's
    /// input `i` (inputs sorted by key, as [`Signature::inputs`] lists them). This is how
    /// the SQL `predict(model, a, b)` function passes its arguments.
    pub fn positional(model: Arc<SavedModel>, schema: &Schema, options: &PredictOptions) -> Result<Predictor> {
        let signature = choose_signature(&model, options)?;
        let count = signature.inputs.len();
        if schema.fields().len() != count {
            return Err(TfError::InputCount {
                signature: signature.name.clone(),
                expected: count,
                inputs: keys(&signature.inputs),
                given: schema.fields().len(),
            });
        }
        Self::bind(model, signature, schema, (0..count).collect(), options)
    }

    fn bind(model: Arc<SavedModel>, signature: Signature, schema: &Schema, columns: Vec<usize>, options: &PredictOptions) -> Result<Predictor> {
        let inputs = columns
            .into_iter()
            .zip(&signature.inputs)
            .map(|(index, spec)| Ok((index, InputPlan::new(schema.field(index), spec, options.allow_cast)?)))
            .collect::<Result<Vec<_>>>()?;
        let wanted: Vec<usize> = match &options.outputs {
            None => (0..signature.outputs.len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    signature.outputs.iter().position(|s| &s.key == name).ok_or_else(|| TfError::Output {
                        output: name.clone(),
                        message: format!("signature `{}` has no such output; its outputs are: {}", signature.name, keys(&signature.outputs)),
                    })
                })
                .collect::<Result<_>>()?,
        };
        let outputs = wanted
            .into_iter()
            .map(|i| Ok((i, output_field(&signature.outputs[i], &signature.outputs[i].key)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Predictor { model, signature, inputs, outputs, batch_size: options.batch_size.max(1) })
    }

    /// The bound signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The model.
    pub fn model(&self) -> &Arc<SavedModel> {
        &self.model
    }

    /// The output columns `predict` returns, named after the signature outputs.
    pub fn output_fields(&self) -> Vec<FieldRef> {
        self.outputs.iter().map(|(_, field)| field.clone()).collect()
    }

    /// The column feeding each signature input (an index into the schema the predictor was
    /// bound to), in the signature's input order.
    pub fn feeding_columns(&self) -> Vec<usize> {
        self.inputs.iter().map(|(index, _)| *index).collect()
    }

    /// Rows per TensorFlow run.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Run the model over `batch` (of the schema given to [`Predictor::new`]), `batch_size`
    /// rows per TensorFlow run, and return one column per output, row-aligned with `batch`.
    pub fn predict(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        if rows <= self.batch_size {
            return self.run_chunk(batch);
        }
        let mut chunks: Vec<Vec<ArrayRef>> = Vec::with_capacity(rows.div_ceil(self.batch_size));
        for start in (0..rows).step_by(self.batch_size) {
            chunks.push(self.run_chunk(&batch.slice(start, self.batch_size.min(rows - start)))?);
        }
        (0..self.outputs.len())
            .map(|o| {
                let parts: Vec<&dyn arrow::array::Array> = chunks.iter().map(|c| c[o].as_ref()).collect();
                Ok(concat(&parts)?)
            })
            .collect()
    }

    fn run_chunk(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(self.outputs.iter().map(|(_, field)| arrow::array::new_empty_array(field.data_type())).collect());
        }
        let tf = self.model.tensorflow();
        let tensors = self.inputs.iter().map(|(index, plan)| plan.to_tensor(tf, batch.column(*index).as_ref())).collect::<Result<Vec<_>>>()?;
        let fetch: Vec<usize> = self.outputs.iter().map(|(i, _)| *i).collect();
        let results = self.model.run(&self.signature, &tensors, &fetch)?;
        let columns = results
            .iter()
            .zip(&self.outputs)
            .map(|(tensor, (i, field))| tensor_to_array(tensor, &self.signature.outputs[*i], field, rows))
            .collect();
        // Outputs may share buffers with inputs (an identity op); release them first.
        drop(results);
        drop(tensors);
        columns
    }
}

fn choose_signature(model: &SavedModel, options: &PredictOptions) -> Result<Signature> {
    Ok(match &options.signature {
        Some(name) => model.signature(name)?,
        None => model.default_signature()?,
    }
    .clone())
}
