//! The error type of dlflow-table.
//!
//! One flat enum for the whole crate, so that callers match on one type and `?` works across
//! modules. Every variant that is about a file carries its path, because "No such file or
//! directory" without a name is the most common useless error in data pipelines.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result alias used throughout dlflow-table.
///
/// # Example
///
/// ```
/// use dlflow_table::{FileFormat, Result};
///
/// fn format_of(name: &str) -> Result<FileFormat> {
///     FileFormat::from_path(name.as_ref())
/// }
/// assert!(format_of("rows.csv").is_ok());
/// ```
pub type Result<T> = std::result::Result<T, TableError>;

/// Boxed error used as the cause of a failed write, which may come from Arrow, Parquet or the OS.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building, reading or writing tables.
///
/// # Example
///
/// ```
/// use dlflow_table::{FileFormat, TableError};
///
/// let err = FileFormat::from_path("model.bin".as_ref()).unwrap_err();
/// assert!(matches!(err, TableError::UnknownFormat { .. }));
/// assert!(err.to_string().contains("model.bin"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// An error raised by DataFusion while planning or executing a query.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    /// An error raised by Arrow while building or converting record batches.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// An operating-system error on a file or directory.
    #[error("I/O error on '{path}': {source}")]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A path given as a data source does not exist.
    #[error(
        "no such file or directory: '{path}' (expected a data file or a directory of data files)"
    )]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },

    /// A path exists but cannot be used as asked (for example a directory mixing formats).
    #[error("cannot use '{path}': {message}")]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },

    /// The file format cannot be told from the path's extension.
    #[error(
        "cannot tell the file format of '{path}' from its extension; expected one of {}",
        crate::files::FileFormat::supported_extensions_list()
    )]
    UnknownFormat {
        /// The path whose extension was not recognised.
        path: PathBuf,
    },

    /// A data file could not be read (malformed content, wrong schema, ...). The message
    /// shows DataFusion's innermost cause: the outer layers name the file again, as an
    /// object-store path without its leading `/`.
    #[error("cannot read '{path}': {}", root_cause(source))]
    Read {
        /// The file or directory being read.
        path: PathBuf,
        /// The error DataFusion reported.
        source: Box<DataFusionError>,
    },

    /// A result file could not be written.
    #[error("cannot write '{path}': {source}")]
    Write {
        /// The destination path.
        path: PathBuf,
        /// The cause, from Arrow, Parquet or the OS.
        source: BoxError,
    },

    /// A TensorFlow error: loading or running a model.
    #[cfg(feature = "inference")]
    #[error(transparent)]
    Tf(#[from] dlflow_tf::TfError),

    /// A versioned model directory (`BASE/1`, `BASE/2`, ...) cannot be served.
    #[error("cannot serve the versioned model at '{base}': {message}")]
    ModelVersions {
        /// The base directory.
        base: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },

    /// A stream option (SQL `OPTIONS` key, `LOCATION`, CLI flag) is invalid.
    #[error("invalid stream option '{option}': {message}")]
    InvalidStreamOption {
        /// The option, as spelled in SQL or on the command line.
        option: String,
        /// What is wrong and what was expected.
        message: String,
    },

    /// A record of a stream does not parse or does not fit the declared columns.
    #[error("bad record in {source_name}, partition {partition}, offset {offset}: {message}; the record starts: {start}")]
    BadRecord {
        /// The stream (its location), and the file for a followed directory.
        source_name: String,
        /// The source partition.
        partition: usize,
        /// The record's offset in its partition (the line index for line sources).
        offset: i64,
        /// The start of the record.
        start: String,
        /// What the decoder said.
        message: String,
    },

    /// A stream source or sink failed: unreachable, refused, gone for good.
    #[error("{location}: {message}")]
    Stream {
        /// The source or sink.
        location: String,
        /// What happened and what was expected.
        message: String,
    },

    /// A datagen option (SQL `OPTIONS` key or the equivalent builder setting) is invalid.
    #[error("invalid datagen option '{option}': {message}")]
    InvalidOption {
        /// The option in its SQL spelling, such as `fields.x.min` or `number-of-rows`.
        option: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl TableError {
    /// Builds a [`TableError::InvalidStreamOption`].
    pub(crate) fn invalid_stream_option(option: impl Into<String>, message: impl Into<String>) -> Self {
        TableError::InvalidStreamOption { option: option.into(), message: message.into() }
    }

    /// Builds a [`TableError::InvalidOption`]; shorthand for the datagen validation.
    pub(crate) fn invalid_option(option: impl Into<String>, message: impl Into<String>) -> Self {
        TableError::InvalidOption {
            option: option.into(),
            message: message.into(),
        }
    }
}

/// Lets dlflow errors cross DataFusion trait boundaries (`TableProviderFactory`,
/// `ExecutionPlan` streams) without losing their message; a wrapped DataFusion error is
/// unwrapped rather than nested twice.
impl From<TableError> for DataFusionError {
    fn from(err: TableError) -> Self {
        match err {
            TableError::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// The innermost error DataFusion wrapped, as text.
fn root_cause(error: &DataFusionError) -> String {
    match error.find_root() {
        DataFusionError::ArrowError(inner, _) => inner.to_string(),
        DataFusionError::External(inner) => inner.to_string(),
        root => root.strip_backtrace(),
    }
}
