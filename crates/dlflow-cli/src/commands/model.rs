//! `dlflow model inspect DIR`: signatures, inputs, outputs and tf.Example features of a
//! SavedModel; `dlflow model call DIR --signature NAME`: call one signature and print its
//! outputs (signatures without inputs, stateful ones).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use clap::{Args, Subcommand};
use dlflow::layers::dlflow_tf::{DType, ExampleSpec, FeatureKind, SavedModel, Signature, TensorValue};
use dlflow::Model;

use super::{load_options, TagsArg};

/// Model subcommands.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Print a SavedModel's signatures with their method, inputs and outputs (name, dtype,
    /// shape), and the tf.Example features of inputs that take serialized examples.
    Inspect {
        /// The SavedModel directory.
        dir: PathBuf,
        #[command(flatten)]
        tags: TagsArg,
    },
    /// Call one signature and print its outputs: signatures without inputs (`w`,
    /// `get_counter`), or with inputs given as KEY=VALUE[,VALUE...].
    Call(CallArgs),
}

/// Arguments of `dlflow model call`.
#[derive(Args)]
pub struct CallArgs {
    /// The SavedModel directory.
    dir: PathBuf,
    /// The signature to call.
    #[arg(long)]
    signature: String,
    /// An input value (repeatable): KEY=VALUE for a scalar, KEY=V1,V2,... for a vector.
    #[arg(long = "input", value_parser = parse_input)]
    inputs: Vec<(String, String)>,
    /// Call it this many times in the same loaded model (stateful signatures change state).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    #[command(flatten)]
    tags: TagsArg,
}

fn parse_input(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, values)) if !key.is_empty() => Ok((key.into(), values.into())),
        _ => Err(format!("`{value}`: expected KEY=VALUE or KEY=V1,V2,...")),
    }
}

impl ModelCommand {
    /// Run the subcommand.
    pub fn run(self) -> dlflow::Result<()> {
        match self {
            ModelCommand::Inspect { dir, tags } => {
                let model = Model::load_with(&dir, &load_options(&tags))?;
                print!("{}", describe(&model));
                Ok(())
            }
            ModelCommand::Call(args) => args.run(),
        }
    }
}

impl CallArgs {
    fn run(self) -> dlflow::Result<()> {
        let model = Model::load_with(&self.dir, &load_options(&self.tags))?;
        let saved = model.saved_model();
        let signature = saved.signature(&self.signature)?;
        let mut inputs = Vec::new();
        for (key, text) in &self.inputs {
            let spec = signature.input(key).ok_or_else(|| {
                let available: Vec<&str> = signature.inputs().iter().map(|i| i.key.as_str()).collect();
                dlflow::Error::Invalid(format!("signature `{}` has no input `{key}`; its inputs are: {}", self.signature, available.join(", ")))
            })?;
            let value = parse_value(spec.dtype, spec.effective_shape().dims(), text)
                .map_err(|e| dlflow::Error::Invalid(format!("--input {key}={text}: {e}")))?;
            inputs.push((key.as_str(), value));
        }
        let mut rows: Vec<[String; 5]> = Vec::new();
        for call in 1..=self.repeat {
            for (name, value) in saved.call(&self.signature, &inputs)? {
                let dtype = signature.output(&name).map(|o| o.dtype.to_string()).unwrap_or_default();
                rows.push([call.to_string(), name, dtype, format!("{:?}", value.dims()), value.to_string()]);
            }
        }
        let header = ["call", "output", "dtype", "shape", "value"].map(String::from);
        let skip_call = self.repeat <= 1;
        let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.into_iter().skip(usize::from(skip_call)).collect()).collect();
        print!("{}", text_table(&header[usize::from(skip_call)..], &rows));
        Ok(())
    }
}

/// A value typed on the command line as a tensor for an input of `dtype`: one value is a
/// scalar unless the input's shape says otherwise; a list fills the shape's free dimension.
fn parse_value(dtype: DType, shape: Option<&[i64]>, text: &str) -> Result<TensorValue, String> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    let count = items.len() as i64;
    let values: ArrayRef = match dtype {
        DType::Float | DType::Double => {
            Arc::new(Float64Array::from(items.iter().map(|v| v.parse::<f64>().map_err(|_| format!("`{v}` is not a number"))).collect::<Result<Vec<_>, _>>()?))
        }
        DType::Int32 | DType::Int64 | DType::Int16 | DType::Int8 | DType::UInt8 => {
            Arc::new(Int64Array::from(items.iter().map(|v| v.parse::<i64>().map_err(|_| format!("`{v}` is not an integer"))).collect::<Result<Vec<_>, _>>()?))
        }
        DType::Bool => Arc::new(BooleanArray::from(
            items.iter().map(|v| v.parse::<bool>().map_err(|_| format!("`{v}` is not true or false"))).collect::<Result<Vec<_>, _>>()?,
        )),
        DType::String => Arc::new(StringArray::from(items.clone())),
        DType::Other(_) => return Err(format!("inputs of type {dtype} cannot be given on the command line")),
    };
    let dims = match shape {
        None if count == 1 => vec![],
        None => vec![count],
        Some(dims) => {
            let known: i64 = dims.iter().filter(|d| **d >= 0).product();
            match dims.iter().filter(|d| **d < 0).count() {
                0 if known == count => dims.to_vec(),
                1 if known > 0 && count % known == 0 => dims.iter().map(|d| if *d < 0 { count / known } else { *d }).collect(),
                _ => return Err(format!("{count} value(s) do not fit the input's shape {dims:?}")),
            }
        }
    };
    TensorValue::new(dims, values)
}

/// The model's signatures as a text table, then the tf.Example features of inputs that
/// take serialized examples, then what cannot run and why.
fn describe(model: &Model) -> String {
    let saved = model.saved_model();
    let default = saved.default_signature().ok().map(|s| s.name().to_string());
    let mut rows: Vec<Vec<String>> = Vec::new();
    for signature in model.signatures() {
        let name = if default.as_deref() == Some(signature.name()) { format!("{} (default)", signature.name()) } else { signature.name().to_string() };
        for (kind, specs) in [("input", signature.inputs()), ("output", signature.outputs())] {
            for spec in specs {
                let shape = match (&spec.shape.0, &spec.graph_shape.0) {
                    (None, Some(_)) => format!("{} (graph {})", spec.shape, spec.graph_shape),
                    _ => spec.shape.to_string(),
                };
                rows.push(vec![name.clone(), signature.method().to_string(), kind.into(), spec.key.clone(), spec.dtype.to_string(), shape, spec.tensor_name.clone()]);
            }
        }
    }
    let written_by = saved.written_by().map(|v| format!("written by TensorFlow {v}; ")).unwrap_or_default();
    let mut out = format!(
        "SavedModel {} (tags {}; {written_by}running on TensorFlow {})\n",
        saved.dir().display(),
        saved.tags().join(","),
        saved.tensorflow().version()
    );
    let header = ["signature", "method", "kind", "name", "dtype", "shape", "tensor"].map(String::from);
    out += &text_table(&header, &rows);
    out += &describe_examples(&model.signatures());
    out += &describe_notes(&saved, &model.signatures());
    out
}

/// One section per distinct tf.Example spec, naming the signature inputs that parse it.
fn describe_examples(signatures: &[Signature]) -> String {
    let mut groups: Vec<(Option<&ExampleSpec>, Vec<String>)> = Vec::new();
    for signature in signatures {
        for input in signature.inputs().iter().filter(|i| signature.takes_examples(&i.key)) {
            let spec = signature.example_spec(&input.key);
            let user = format!("{}.{}", signature.name(), input.key);
            match groups.iter_mut().find(|(s, _)| *s == spec) {
                Some((_, users)) => users.push(user),
                None => groups.push((spec, vec![user])),
            }
        }
    }
    let mut out = String::new();
    for (spec, users) in groups {
        out += &format!("\ntf.Example input {}: dlflow builds the protos from columns named after the features\n", users.join(", "));
        let Some(spec) = spec else {
            out += "  (the model does not reveal its features: every column is written as a feature)\n";
            continue;
        };
        let rows: Vec<Vec<String>> = spec
            .features
            .iter()
            .map(|f| {
                let (kind, shape, default) = match &f.kind {
                    FeatureKind::Dense { shape, default } => {
                        ("fixed".to_string(), format!("{shape:?}"), default.clone().unwrap_or_else(|| "required".into()))
                    }
                    FeatureKind::VarLen => ("var-len (sparse)".to_string(), "[-1]".into(), "optional".into()),
                    FeatureKind::Ragged => ("ragged".to_string(), "[-1]".into(), "optional".into()),
                };
                vec![f.name.clone(), f.dtype.to_string(), kind, shape, default]
            })
            .collect();
        let header = ["feature", "dtype", "kind", "shape", "default"].map(String::from);
        out += &indent(&text_table(&header, &rows));
    }
    out
}

/// Signatures that cannot run, and signatures without inputs.
fn describe_notes(saved: &SavedModel, signatures: &[Signature]) -> String {
    let mut notes = Vec::new();
    for signature in signatures {
        if let Some(problem) = signature.problem() {
            notes.push(format!("{} cannot run: {problem}", signature.name()));
        } else if signature.inputs().is_empty() {
            notes.push(format!("{} takes no inputs: dlflow model call {} --signature {}", signature.name(), saved.dir().display(), signature.name()));
        }
    }
    if notes.is_empty() {
        return String::new();
    }
    format!("\nnotes:\n{}", notes.iter().map(|n| format!("  {n}\n")).collect::<String>())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Left-aligned columns under a header and a dashed rule.
fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r.get(c).map_or(0, |cell| cell.chars().count())).chain([header[c].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |row: &[String]| row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n";
    let separator: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = line(header);
    out += &line(&separator);
    for row in rows {
        out += &line(row);
    }
    out
}
