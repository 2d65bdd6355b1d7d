//! Signatures ("methods" in seed 003): the named functions a SavedModel exports, each with
//! typed, shaped inputs and outputs.

use std::fmt;

use crate::dtype::DType;

/// Standard signature names, in the order dlflow picks a default from them.
pub const STANDARD_SIGNATURES: [&str; 4] = ["serving_default", "predict", "regress", "classify"];

/// A tensor shape as a signature declares it: `None` for unknown rank, `-1` for an unknown
/// dimension (usually the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Option<Vec<i64>>);

impl Shape {
    /// The dimensions, if the rank is known.
    pub fn dims(&self) -> Option<&[i64]> {
        self.0.as_deref()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("<unknown rank>"),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(|d| if *d < 0 { "-1".into() } else { d.to_string() }).collect();
                write!(f, "[{}]", dims.join(", "))
            }
        }
    }
}

/// One input or output of a signature.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The signature's name for it (`x`, `logits`): what columns are matched against.
    pub key: String,
    /// The graph tensor behind it (`serving_default_x:0`).
    pub tensor_name: String,
    /// Element type.
    pub dtype: DType,
    /// Declared shape.
    pub shape: Shape,
}

/// A named function of a SavedModel, with its inputs and outputs sorted by key.
///
/// ```no_run
/// let model = dlflow_tf::SavedModel::load("models/linear")?;
/// let signature = model.signature("serving_default")?;
/// for input in signature.inputs() {
///     println!("{}: {} {}", input.key, input.dtype, input.shape);
/// }
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub(crate) name: String,
    pub(crate) method_name: String,
    pub(crate) inputs: Vec<TensorSpec>,
    pub(crate) outputs: Vec<TensorSpec>,
}

impl Signature {
    /// The signature's name (`serving_default`, `classify`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The method name recorded with it (`tensorflow/serving/predict`, ...).
    pub fn method_name(&self) -> &str {
        &self.method_name
    }

    /// Inputs, sorted by key.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Outputs, sorted by key.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The input called `key`.
    pub fn input(&self, key: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|spec| spec.key == key)
    }

    /// The output called `key`.
    pub fn output(&self, key: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|spec| spec.key == key)
    }
}

/// Comma-separated keys, for error messages.
pub(crate) fn keys(specs: &[TensorSpec]) -> String {
    specs.iter().map(|s| s.key.as_str()).collect::<Vec<_>>().join(", ")
}
