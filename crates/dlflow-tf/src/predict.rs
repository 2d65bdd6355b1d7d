//! Batched prediction: a signature applied to Arrow record batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::{concat, take_record_batch};
use arrow::datatypes::{FieldRef, Schema};
use arrow::record_batch::RecordBatch;

use crate::convert::{output_field_with, tensor_to_column, InputPlan, OutputLayout};
use crate::error::{Result, TfError};
use crate::example::ExampleEncoder;
use crate::library::TensorFlow;
use crate::saved_model::SavedModel;
use crate::signature::{keys, Shape, Signature, TensorSpec};
use crate::tensor::Tensor;

pub use dlflow_common::DEFAULT_BATCH_SIZE;

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
/// How rows meet TensorFlow runs follows the signature's shapes:
/// - inputs with a batch dimension (`[-1, ...]`) take `batch_size` rows per run; a fixed
///   one (`[1]`, `[1, 10]`) takes exactly that many (the last run padded with copies of
///   the last row, whose outputs are dropped);
/// - a scalar input (`[]`) takes one row per run, fed without a batch dimension;
/// - inputs of unknown rank take `[n]` for a scalar column, `[n, k]` for a vector column,
///   when TensorFlow's shape inference says the outputs then keep that batch dimension
///   (`a + b`); otherwise the signature is called once per row with `[]` or `[k]` (a
///   counter's `incr_counter_by(delta)`, `zeros(2, 3) + x`);
/// - a string input of serialized `tf.train.Example` protos ([`Signature::takes_examples`])
///   with no column of its name is built from the table's columns, a feature per column.
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
    /// Per signature input, in signature order.
    inputs: Vec<BoundInput>,
    outputs: Vec<OutputPlan>,
    runs: Runs,
    batch_size: usize,
    /// The columns the bound inputs read, as (position, type) in the schema it was made for: a
    /// batch of another schema is refused instead of read at the wrong place.
    reads: Vec<(usize, arrow::datatypes::DataType)>,
}

/// Where a signature input's tensor comes from.
enum BoundInput {
    /// One column, converted.
    Column { index: usize, plan: InputPlan },
    /// Serialized tf.Example protos built from the feature columns: `[n]`, or `[]` per row.
    Examples { encoder: ExampleEncoder, batched: bool },
}

struct OutputPlan {
    /// Index into the signature's outputs.
    index: usize,
    field: FieldRef,
    layout: OutputLayout,
}

/// Rows per TensorFlow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// Up to `batch_size` rows.
    Batches,
    /// Exactly this many (a fixed batch dimension).
    Exactly(usize),
    /// One row, fed without a batch dimension.
    PerRow,
}

/// Where a signature input is fed from, before its conversion is planned.
enum Source {
    Column(usize),
    Examples,
}

impl Predictor {
    /// Bind `model` to `schema`: each signature input reads the column of its name, or the
    /// column [`PredictOptions::map_input`] gives; an input of serialized tf.Example protos
    /// without such a column is built from the feature columns (and `map_input(feature,
    /// column)` renames a feature's column).
    pub fn new(model: Arc<SavedModel>, schema: &Schema, options: &PredictOptions) -> Result<Predictor> {
        let signature = choose_signature(&model, options)?;
        for (input, _) in &options.input_columns {
            if signature.input(input).is_none() && !is_example_feature(&signature, input) {
                return Err(TfError::UnknownInput { signature: signature.name.clone(), input: input.clone(), available: keys(&signature.inputs) });
            }
        }
        let sources = signature
            .inputs
            .iter()
            .map(|spec| {
                let column = options.input_columns.iter().find(|(input, _)| *input == spec.key).map(|(_, c)| c.as_str()).unwrap_or(&spec.key);
                match schema.index_of(column) {
                    Ok(index) => Ok(Source::Column(index)),
                    Err(_) if signature.takes_examples(&spec.key) => Ok(Source::Examples),
                    Err(_) => Err(TfError::MissingColumn {
                        signature: signature.name.clone(),
                        input: spec.key.clone(),
                        column: column.to_string(),
                        available: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
                    }),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Self::bind(model, signature, schema, sources, options)
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
        Self::bind(model, signature, schema, (0..count).map(Source::Column).collect(), options)
    }

    fn bind(model: Arc<SavedModel>, signature: Signature, schema: &Schema, sources: Vec<Source>, options: &PredictOptions) -> Result<Predictor> {
        if let Some(reason) = signature.problem() {
            return Err(TfError::UnusableSignature { signature: signature.name.clone(), reason: reason.to_string() });
        }
        if signature.inputs.is_empty() {
            return Err(TfError::NoInputs { signature: signature.name.clone() });
        }
        // Inputs as dlflow feeds them: the graph's shape where the signature declares none.
        let specs: Vec<TensorSpec> = signature.inputs.iter().map(|s| TensorSpec { shape: s.effective_shape().clone(), ..s.clone() }).collect();
        let runs = runs_for_inputs(&signature, &specs)?;
        let wanted = wanted_outputs(&signature, options)?;
        let bind_inputs = |batched: bool| -> Result<Vec<BoundInput>> {
            sources.iter().zip(&specs).map(|(source, spec)| bind_input(&signature, schema, source, spec, batched, options)).collect()
        };
        let mut inputs = bind_inputs(runs != Some(Runs::PerRow))?;
        let mut shapes = output_shapes(&model, &signature, &inputs)?;
        let runs = match runs {
            Some(runs) => runs,
            // Every input has unknown rank: batches when the outputs keep the batch dimension
            // of what is fed (`a + b`), else one row at a time (a counter's `incr_by(delta)`,
            // `zeros(2, 3) + x`).
            None if shapes.iter().all(|s| s.dims().and_then(|d| d.first()) == Some(&-1)) => Runs::Batches,
            None => {
                inputs = bind_inputs(false)?;
                shapes = output_shapes(&model, &signature, &inputs)?;
                Runs::PerRow
            }
        };
        let outputs = wanted
            .into_iter()
            .map(|index| {
                let (spec, shape) = (&signature.outputs[index], &shapes[index]);
                let layout = output_layout(runs, shape);
                Ok(OutputPlan { index, field: output_field_with(spec, &spec.key, shape, layout)?, layout })
            })
            .collect::<Result<Vec<_>>>()?;
        let batch_size = match runs {
            Runs::Batches => options.batch_size.max(1),
            Runs::Exactly(rows) => rows,
            Runs::PerRow => 1,
        };
        let mut read: Vec<usize> = inputs
            .iter()
            .flat_map(|bound| match bound {
                BoundInput::Column { index, .. } => vec![*index],
                BoundInput::Examples { encoder, .. } => encoder.columns().collect(),
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        let reads = read.into_iter().map(|i| (i, schema.field(i).data_type().clone())).collect();
        Ok(Predictor { model, signature, inputs, outputs, runs, batch_size, reads })
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
        self.outputs.iter().map(|o| o.field.clone()).collect()
    }

    /// Rows per TensorFlow run: the configured batch size, or what the signature fixes
    /// (its batch dimension, or 1 for a signature called once per row).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether the signature is called once per row (no input or output has a batch
    /// dimension).
    pub fn runs_per_row(&self) -> bool {
        self.runs == Runs::PerRow
    }

    /// Run the model over `batch` (of the schema given to [`Predictor::new`]), `batch_size`
    /// rows per TensorFlow run, and return one column per output, row-aligned with `batch`.
    pub fn predict(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.check_schema(batch)?;
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

    /// Whether `batch` has, at each position an input reads, a column of the type planned for.
    fn check_schema(&self, batch: &RecordBatch) -> Result<()> {
        for (index, expected) in &self.reads {
            let found = batch.columns().get(*index).map(|c| c.data_type());
            if found != Some(expected) {
                return Err(TfError::SchemaChanged {
                    index: *index,
                    column: batch.schema().fields().get(*index).map_or_else(|| "missing".to_string(), |f| f.name().clone()),
                    expected: expected.to_string(),
                    found: found.map_or_else(|| format!("no column (the batch has {})", batch.num_columns()), |t| t.to_string()),
                });
            }
        }
        Ok(())
    }

    fn run_chunk(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(self.outputs.iter().map(|o| arrow::array::new_empty_array(o.field.data_type())).collect());
        }
        // A fixed batch dimension takes exactly that many rows: pad with the last row.
        let padded = match self.runs {
            Runs::Exactly(size) if rows < size => {
                let indices = UInt32Array::from_iter_values((0..size).map(|i| i.min(rows - 1) as u32));
                Some(take_record_batch(batch, &indices)?)
            }
            _ => None,
        };
        let input = padded.as_ref().unwrap_or(batch);
        let tf = self.model.tensorflow();
        let tensors = self.inputs.iter().map(|bound| bound.tensor(tf, input)).collect::<Result<Vec<_>>>()?;
        let fetch: Vec<usize> = self.outputs.iter().map(|o| o.index).collect();
        let results = self.model.run(&self.signature, &tensors, &fetch)?;
        let columns = results
            .iter()
            .zip(&self.outputs)
            .map(|(tensor, o)| {
                let column = tensor_to_column(tensor, &self.signature.outputs[o.index], &o.field, input.num_rows(), o.layout)?;
                Ok(if padded.is_some() { column.slice(0, rows) } else { column })
            })
            .collect();
        // Outputs may share buffers with inputs (an identity op); release them first.
        drop(results);
        drop(tensors);
        columns
    }
}

impl BoundInput {
    fn tensor(&self, tf: &'static TensorFlow, batch: &RecordBatch) -> Result<Tensor> {
        match self {
            BoundInput::Column { index, plan } => plan.to_tensor(tf, batch.column(*index).as_ref()),
            BoundInput::Examples { encoder, batched } => {
                encoder.check_required(batch)?;
                let examples = encoder.encode(batch)?;
                let dims: &[i64] = if *batched { &[examples.len() as i64] } else { &[] };
                Tensor::strings(tf, dims, examples.iter())
            }
        }
    }

    /// The shape fed for a batch (`-1` rows) or a row; `None` when unknown.
    fn dims(&self) -> Option<Vec<i64>> {
        match self {
            BoundInput::Column { plan, .. } => Some(plan.tensor_dims()),
            BoundInput::Examples { batched: true, .. } => Some(vec![-1]),
            BoundInput::Examples { batched: false, .. } => Some(vec![]),
        }
    }
}

/// Whether `name` can be a feature of one of the signature's tf.Example inputs: one of its
/// spec's features, or any name when the model does not reveal its spec.
fn is_example_feature(signature: &Signature, name: &str) -> bool {
    signature
        .inputs
        .iter()
        .filter(|input| signature.takes_examples(&input.key))
        .any(|input| signature.example_spec(&input.key).is_none_or(|spec| spec.feature(name).is_some()))
}

/// The runs the inputs' shapes call for; `None` when every input has unknown rank and the
/// outputs decide.
fn runs_for_inputs(signature: &Signature, specs: &[TensorSpec]) -> Result<Option<Runs>> {
    let batched: Vec<&TensorSpec> = specs.iter().filter(|s| s.shape.rank().is_some_and(|r| r >= 1)).collect();
    let scalar: Vec<&TensorSpec> = specs.iter().filter(|s| s.shape.rank() == Some(0)).collect();
    match (batched.first(), scalar.first()) {
        (Some(b), Some(s)) => Err(TfError::UnusableSignature {
            signature: signature.name.clone(),
            reason: format!(
                "input `{}` is a scalar (one value per run) while input `{}` takes a batch of rows ({}); dlflow feeds every \
                 input from the same rows",
                s.key, b.key, b.shape
            ),
        }),
        (Some(_), None) => {
            let mut fixed = batched.iter().filter_map(|s| s.shape.dims().and_then(|d| d.first().copied()).filter(|d| *d > 0).map(|d| (d, &s.key)));
            match fixed.next() {
                None => Ok(Some(Runs::Batches)),
                Some((size, key)) => match fixed.find(|(other, _)| *other != size) {
                    Some((other, other_key)) => Err(TfError::UnusableSignature {
                        signature: signature.name.clone(),
                        reason: format!("input `{key}` fixes the batch at {size} rows but input `{other_key}` at {other}"),
                    }),
                    None => Ok(Some(Runs::Exactly(size as usize))),
                },
            }
        }
        (None, Some(_)) => Ok(Some(Runs::PerRow)),
        (None, None) => Ok(None),
    }
}

fn bind_input(signature: &Signature, schema: &Schema, source: &Source, spec: &TensorSpec, batched: bool, options: &PredictOptions) -> Result<BoundInput> {
    Ok(match source {
        Source::Column(index) => {
            let field = schema.field(*index);
            let plan = if batched { InputPlan::new(field, spec, options.allow_cast)? } else { InputPlan::per_row(field, spec, options.allow_cast)? };
            BoundInput::Column { index: *index, plan }
        }
        Source::Examples => {
            let mappings: Vec<(String, String)> = options.input_columns.iter().filter(|(input, _)| signature.input(input).is_none()).cloned().collect();
            let encoder = ExampleEncoder::new(schema, signature.example_spec(&spec.key), &mappings, options.allow_cast)?;
            BoundInput::Examples { encoder, batched }
        }
    })
}

/// Output shapes: the declared (or graph) shapes, and where those leave a rank or an inner
/// dimension unknown, what TensorFlow infers from the shapes dlflow feeds.
fn output_shapes(model: &SavedModel, signature: &Signature, inputs: &[BoundInput]) -> Result<Vec<Shape>> {
    let known = |shape: &Shape| matches!(shape.dims(), Some(dims) if dims.iter().skip(1).all(|d| *d >= 0));
    let declared: Vec<Shape> = signature.outputs.iter().map(|o| o.effective_shape().clone()).collect();
    if declared.iter().all(known) {
        return Ok(declared);
    }
    let fed: Vec<Option<Vec<i64>>> = inputs.iter().map(BoundInput::dims).collect();
    model.infer_output_shapes(signature, &fed)
}

/// How an output of `shape` lines up with the rows of a run.
fn output_layout(runs: Runs, shape: &Shape) -> OutputLayout {
    match (runs, shape.dims()) {
        (Runs::PerRow, _) => OutputLayout::Single,
        (_, Some([])) => OutputLayout::PerRun,
        (Runs::Exactly(size), Some([first, ..])) if *first > 0 && *first != size as i64 => OutputLayout::PerRun,
        (Runs::Batches, Some([first, ..])) if *first > 0 => OutputLayout::PerRun,
        _ => OutputLayout::Batched,
    }
}

fn wanted_outputs(signature: &Signature, options: &PredictOptions) -> Result<Vec<usize>> {
    match &options.outputs {
        None => Ok((0..signature.outputs.len()).collect()),
        Some(names) => names
            .iter()
            .map(|name| {
                signature.outputs.iter().position(|s| &s.key == name).ok_or_else(|| TfError::Output {
                    output: name.clone(),
                    message: format!("signature `{}` has no such output; its outputs are: {}", signature.name, keys(&signature.outputs)),
                })
            })
            .collect(),
    }
}

fn choose_signature(model: &SavedModel, options: &PredictOptions) -> Result<Signature> {
    Ok(match &options.signature {
        Some(name) => model.signature(name)?,
        None => model.default_signature()?,
    }
    .clone())
}
