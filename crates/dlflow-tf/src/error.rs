//! Errors of the TensorFlow runtime. Each message names the thing that is wrong and says
//! what was expected, because the person reading it usually did not write the model.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TfError> = std::result::Result<T, E>;

/// Everything that can go wrong between a table and a TensorFlow model.
#[derive(Debug, thiserror::Error)]
pub enum TfError {
    /// No libtensorflow was found in any of the places dlflow looks.
    #[error(
        "could not find libtensorflow; looked in:\n{searched}\nfix: run `scripts/setup.sh` (makes the \
         project virtualenv with tensorflow-cpu==2.21.0), or `pip install tensorflow-cpu==2.21.0` into a \
         virtualenv and set DLFLOW_TF_LIB=<venv>/lib/python3.X/site-packages/tensorflow"
    )]
    LibraryNotFound {
        /// One line per place looked, with why it did not fit.
        searched: String,
    },
    /// The library file exists but the dynamic loader refused it.
    #[error("could not load TensorFlow library {path}: {message}")]
    LibraryLoad {
        /// The file dlflow tried to load.
        path: PathBuf,
        /// What the dynamic loader said.
        message: String,
    },
    /// The library loaded but is not a TensorFlow C API library.
    #[error("{path} is not a TensorFlow C API library: symbol `{symbol}` is missing")]
    NotTensorFlow {
        /// The file dlflow loaded.
        path: PathBuf,
        /// The first symbol that was not found.
        symbol: &'static str,
    },
    /// A TensorFlow that dlflow does not support.
    #[error(
        "TensorFlow {found} at {path} is not supported: dlflow needs TensorFlow 2.16 or newer \
         (tested with 2.21.0); fix: `pip install tensorflow-cpu==2.21.0` or run `scripts/setup.sh`"
    )]
    UnsupportedVersion {
        /// The file dlflow loaded.
        path: PathBuf,
        /// The version it reported.
        found: String,
    },
    /// The model directory does not exist.
    #[error("model directory {path} does not exist")]
    ModelNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The directory exists but holds no SavedModel.
    #[error(
        "{path} is not a TensorFlow SavedModel: expected a directory with saved_model.pb (or \
         saved_model.pbtxt), usually with variables/, as written by tf.saved_model.save or model.export"
    )]
    NotASavedModel {
        /// The path given.
        path: PathBuf,
    },
    /// No MetaGraph of the SavedModel has the tags asked for.
    #[error(
        "the SavedModel at {path} has no MetaGraph tagged {tags}; its tag sets are: {available}; load it with one \
         of those (`--tags {example}` on the command line, `LoadOptions::with_tags` in Rust)"
    )]
    NoSuchTags {
        /// The model directory.
        path: PathBuf,
        /// The tags asked for, as `{serve}`.
        tags: String,
        /// The tag sets the model has, as `{train, serve}`, comma separated.
        available: String,
        /// The first tag set, comma separated, as the `--tags` value that loads it.
        example: String,
    },
    /// The model uses an op this TensorFlow does not have.
    #[error(
        "the SavedModel at {path} uses the op `{op}`, which TensorFlow {running} (the library dlflow loaded) does not \
         have; the model was written by TensorFlow {written_by}. A custom op needs its library, which dlflow \
         cannot load; re-export the model with TensorFlow's built-in ops"
    )]
    UnknownOp {
        /// The model directory.
        path: PathBuf,
        /// The op type.
        op: String,
        /// The TensorFlow version that wrote the model (from its `meta_info_def`).
        written_by: String,
        /// The TensorFlow version dlflow runs.
        running: String,
    },
    /// A signature that cannot run (a wrong declared type, sparse inputs, ...).
    #[error("signature `{signature}` cannot run: {reason}")]
    UnusableSignature {
        /// The signature.
        signature: String,
        /// Why.
        reason: String,
    },
    /// A signature without inputs used over rows.
    #[error(
        "signature `{signature}` takes no inputs, so there is nothing to feed from rows; call it instead \
         (`dlflow model call DIR --signature {signature}`, `SavedModel::call` in Rust)"
    )]
    NoInputs {
        /// The signature.
        signature: String,
    },
    /// A required tf.Example feature with no column.
    #[error("the model reads tf.Example feature {feature}, but the table has no column `{column}`; columns: {available}")]
    MissingFeature {
        /// The feature, as `name: dtype [shape], required`.
        feature: String,
        /// The column it reads.
        column: String,
        /// The table's columns, comma separated.
        available: String,
    },
    /// A column that cannot be written as its tf.Example feature.
    #[error("column `{column}` cannot feed tf.Example feature `{feature}`: {message}")]
    FeatureMismatch {
        /// The column.
        column: String,
        /// The feature.
        feature: String,
        /// What does not fit.
        message: String,
    },
    /// Values handed to [`crate::SavedModel::call`] that do not fit the signature.
    #[error("signature `{signature}`, input `{input}`: {message}")]
    CallInput {
        /// The signature.
        signature: String,
        /// The input.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// TensorFlow failed to load the SavedModel.
    #[error("TensorFlow could not load the SavedModel at {path} with tags {tags:?}: {message}")]
    ModelLoad {
        /// The model directory.
        path: PathBuf,
        /// The tags asked for.
        tags: Vec<String>,
        /// TensorFlow's message.
        message: String,
    },
    /// The SavedModel's metadata could not be read.
    #[error("could not read the signatures of the SavedModel at {path}: {message}")]
    BadMetaGraph {
        /// The model directory.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A signature name that the model does not have.
    #[error("the model has no signature `{name}`; it has: {available}")]
    UnknownSignature {
        /// The name asked for.
        name: String,
        /// The names the model has, comma separated.
        available: String,
    },
    /// A signature input with no column to feed it.
    #[error("signature `{signature}` needs input `{input}` but the table has no column `{column}`; columns: {available}")]
    MissingColumn {
        /// The signature.
        signature: String,
        /// The signature input.
        input: String,
        /// The column it maps to.
        column: String,
        /// The table's columns, comma separated.
        available: String,
    },
    /// An input mapping that names something the signature does not have.
    #[error("signature `{signature}` has no input `{input}`; its inputs are: {available}")]
    UnknownInput {
        /// The signature.
        signature: String,
        /// The input named in the mapping.
        input: String,
        /// The inputs it has, comma separated.
        available: String,
    },
    /// Positional inputs (SQL `predict(model, a, b)`) of the wrong count.
    #[error("signature `{signature}` takes {expected} input(s) ({inputs}, in this order), but {given} value(s) were given")]
    InputCount {
        /// The signature.
        signature: String,
        /// How many inputs it has.
        expected: usize,
        /// Their keys, in order.
        inputs: String,
        /// How many were given.
        given: usize,
    },
    /// A column whose Arrow type cannot feed the signature input.
    #[error("column `{column}` has type {found} but signature input `{input}` expects {expected}{}", text_hint(found, expected, column))]
    TypeMismatch {
        /// The column.
        column: String,
        /// The signature input.
        input: String,
        /// The column's Arrow type.
        found: String,
        /// What the input accepts.
        expected: String,
    },
    /// A column whose values have the wrong shape for the signature input.
    #[error("column `{column}` does not fit signature input `{input}` of shape {shape}: {message}")]
    ShapeMismatch {
        /// The column.
        column: String,
        /// The signature input.
        input: String,
        /// The input's shape, as TensorFlow prints it.
        shape: String,
        /// What does not fit.
        message: String,
    },
    /// Null values in an input column.
    #[error(
        "column `{column}` has {count} null value(s); TensorFlow tensors cannot hold nulls: filter them \
         (WHERE {column} IS NOT NULL) or fill them (COALESCE({column}, 0)) first"
    )]
    NullValues {
        /// The column.
        column: String,
        /// How many nulls.
        count: usize,
    },
    /// An `input_types` / `output_types` declaration that does not parse or does not match.
    #[error("{0}")]
    DeclaredTypes(String),
    /// A signature output dlflow cannot turn into a column.
    #[error("signature output `{output}`: {message}")]
    Output {
        /// The output.
        output: String,
        /// What is wrong with it.
        message: String,
    },
    /// TensorFlow failed while running the model.
    #[error("TensorFlow failed running signature `{signature}`: {message}")]
    Run {
        /// The signature.
        signature: String,
        /// TensorFlow's message.
        message: String,
    },
    /// A tensor that cannot be made: a negative or overflowing shape, or TensorFlow's
    /// allocator returning nothing.
    #[error("cannot make a {dtype} tensor of shape {dims:?}: {message}")]
    TensorAllocation {
        /// The element type.
        dtype: String,
        /// The shape asked for.
        dims: Vec<i64>,
        /// What went wrong.
        message: String,
    },
    /// A batch whose columns differ from the schema a [`crate::Predictor`] (or an
    /// [`crate::ExampleEncoder`]) was made for.
    #[error("column {index} (`{column}`) has type {found}, but it was planned for a table where it is {expected}; make a new Predictor (or ExampleEncoder) for the new schema")]
    SchemaChanged {
        /// Position of the column.
        index: usize,
        /// Its name in the batch (or `missing` when the batch has fewer columns).
        column: String,
        /// The type the predictor was made for.
        expected: String,
        /// The type in the batch (or `no column`).
        found: String,
    },
    /// An Arrow error while building output columns.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Why a column meant to hold numbers is text, and how to find the values that made it so.
fn text_hint(found: &str, expected: &str, column: &str) -> String {
    let is_text = matches!(found, "Utf8" | "LargeUtf8" | "Utf8View");
    let wants_number = ["float", "double", "int", "uint", "half", "bfloat"].iter().any(|p| expected.starts_with(p));
    if !is_text || !wants_number {
        return String::new();
    }
    format!(
        "; a column is read as text when one of its values is not a number (in a CSV file one is enough): \
         find them with `SELECT {column} FROM t WHERE TRY_CAST({column} AS DOUBLE) IS NULL`, then fix or filter them"
    )
}
