//! File sources: CSV, Parquet, newline-delimited JSON and Arrow IPC files (or directories of
//! them) registered as DataFusion tables, with the format told from the extension.
//!
//! Files are read by DataFusion's `ListingTable`; dlflow adds two things on top: the format
//! comes from the extension (DataFusion's `register_csv` & co. want the caller to know it and
//! insist on one default extension each), and every read error names the file it is about
//! (DataFusion's scan errors do not; see the `scan` submodule).

pub(crate) mod scan;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::options::{
    ArrowReadOptions, CsvReadOptions, JsonReadOptions, ParquetReadOptions, ReadOptions,
};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::error::{Result, TableError};
use scan::FileTable;

/// A data file format dlflow reads and writes.
///
/// # Example
///
/// ```
/// use dlflow_table::FileFormat;
///
/// assert_eq!(FileFormat::from_path("data/train.PQ".as_ref())?, FileFormat::Parquet);
/// assert_eq!(FileFormat::from_path("rows.ndjson".as_ref())?, FileFormat::Json);
/// # Ok::<(), dlflow_table::TableError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// Comma-separated values with a header line (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Newline-delimited JSON, one object per line (`.json`, `.jsonl`, `.ndjson`).
    Json,
    /// Arrow IPC: the file format, a.k.a. Feather v2 (`.arrow`, `.ipc`, `.feather`), or the
    /// stream format (`.arrows`). Either is read whatever the extension; `.arrows` is written
    /// as a stream.
    ArrowIpc,
}

impl FileFormat {
    /// Every format, in the order used by error messages.
    pub const ALL: [FileFormat; 4] = [
        FileFormat::Csv,
        FileFormat::Parquet,
        FileFormat::Json,
        FileFormat::ArrowIpc,
    ];

    /// The extensions (lower case, without the dot) recognised for this format.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::FileFormat;
    /// assert_eq!(FileFormat::Parquet.extensions(), &["parquet", "pq"]);
    /// ```
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileFormat::Csv => &["csv"],
            FileFormat::Parquet => &["parquet", "pq"],
            FileFormat::Json => &["json", "jsonl", "ndjson"],
            FileFormat::ArrowIpc => &["arrow", "arrows", "ipc", "feather"],
        }
    }

    /// The format of `path`, from its extension (case-insensitive), or
    /// [`TableError::UnknownFormat`] listing the supported extensions.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::FileFormat;
    /// assert_eq!(FileFormat::from_path("x.Feather".as_ref())?, FileFormat::ArrowIpc);
    /// assert!(FileFormat::from_path("x.txt".as_ref()).is_err());
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn from_path(path: &Path) -> Result<FileFormat> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        extension
            .and_then(|ext| {
                Self::ALL
                    .into_iter()
                    .find(|f| f.extensions().contains(&ext.as_str()))
            })
            .ok_or_else(|| TableError::UnknownFormat {
                path: path.to_path_buf(),
            })
    }

    /// `.csv, .parquet, .pq, …`: the list shown in [`TableError::UnknownFormat`].
    pub(crate) fn supported_extensions_list() -> String {
        Self::ALL
            .iter()
            .flat_map(|f| f.extensions())
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// DataFusion listing options for this format, honouring the session's table options
    /// (e.g. `datafusion.catalog.has_header`), and selecting files ending in `extension`.
    fn listing_options(self, ctx: &SessionContext, extension: &str) -> ListingOptions {
        let config = ctx.copied_config();
        let table_options = ctx.copied_table_options();
        let options = match self {
            FileFormat::Csv => CsvReadOptions::new()
                .has_header(true)
                .to_listing_options(&config, table_options),
            FileFormat::Parquet => {
                ParquetReadOptions::new().to_listing_options(&config, table_options)
            }
            FileFormat::Json => {
                JsonReadOptions::default().to_listing_options(&config, table_options)
            }
            FileFormat::ArrowIpc => {
                ArrowReadOptions::default().to_listing_options(&config, table_options)
            }
        };
        options.with_file_extension(extension)
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
            FileFormat::Json => "newline-delimited JSON",
            FileFormat::ArrowIpc => "Arrow IPC",
        })
    }
}

/// Registers the file or directory at `path` as table `table_name`, inferring the schema
/// from the data. A directory must hold files of one format with one extension (hidden files
/// and names starting with `_`, such as `_SUCCESS`, are ignored).
///
/// Errors name the path: a missing path is [`TableError::NotFound`], an unrecognised
/// extension [`TableError::UnknownFormat`], and unreadable content [`TableError::Read`],
/// both here and later when the table is scanned.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let path = dir.path().join("points.csv");
/// std::fs::write(&path, "x,y\n1,2\n3,4\n").expect("write");
///
/// let ctx = dlflow_table::new_session();
/// dlflow_table::register_file(&ctx, "points", &path).await?;
/// let batches = ctx.sql("SELECT sum(y) AS s FROM points").await?.collect().await?;
/// assert!(dlflow_table::format_table(&batches, 10).contains('6'));
/// # Ok(())
/// # }
/// ```
pub async fn register_file(ctx: &SessionContext, table_name: &str, path: &Path) -> Result<()> {
    register(ctx, table_name, path, None).await
}

/// Like [`register_file`], with the schema given instead of inferred. Values that do not
/// fit the schema (e.g. `abc` in a `Float64` column of a CSV) are reported when the table is
/// scanned, as [`TableError::Read`] naming the path.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let path = dir.path().join("xs.csv");
/// std::fs::write(&path, "x\n1\n2\n").expect("write");
///
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float32, true)]));
/// let ctx = dlflow_table::new_session();
/// dlflow_table::register_file_with_schema(&ctx, "xs", &path, schema).await?;
/// let df = ctx.table("xs").await?;
/// assert_eq!(df.schema().field(0).data_type(), &DataType::Float32);
/// # Ok(())
/// # }
/// ```
pub async fn register_file_with_schema(
    ctx: &SessionContext,
    table_name: &str,
    path: &Path,
    schema: SchemaRef,
) -> Result<()> {
    register(ctx, table_name, path, Some(schema)).await
}

async fn register(
    ctx: &SessionContext,
    table_name: &str,
    path: &Path,
    schema: Option<SchemaRef>,
) -> Result<()> {
    let source = DataSource::resolve(path)?;
    let read_error = |source| TableError::Read {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let url = ListingTableUrl::parse(&source.url).map_err(read_error)?;
    let options = source.format.listing_options(ctx, &source.extension);
    let schema = match schema {
        Some(schema) => schema,
        None => match options.infer_schema(&ctx.state(), &url).await {
            Ok(schema) => schema,
            Err(error) if source.format == FileFormat::Json => return Err(first_bad_json_line(path, &source.extension).unwrap_or_else(|| read_error(error))),
            Err(error) => return Err(read_error(error)),
        },
    };
    if schema.fields().is_empty() {
        // DataFusion reads an empty file as a table without columns; every later error
        // (a model input or a feature not found) would then list no columns.
        return Err(TableError::InvalidPath {
            path: path.to_path_buf(),
            message: format!(
                "it has no columns (an empty file?); expected {}",
                match source.format {
                    FileFormat::Csv => "a CSV file with a header line naming its columns",
                    _ => "rows with named columns",
                }
            ),
        });
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config)
        .map_err(read_error)?
        .with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache());
    ctx.register_table(
        table_name,
        Arc::new(FileTable::new(path.to_path_buf(), Arc::new(table))),
    )?;
    Ok(())
}

/// A checked file or directory: what DataFusion needs to list and read it.
/// The first line of a newline-delimited JSON file (or of the files of a directory, in name
/// order) that is not a JSON value, as an error naming the file and the line. Schema inference
/// parses each line on its own, so its message says "line 1" whatever the line.
fn first_bad_json_line(path: &Path, extension: &str) -> Option<TableError> {
    let mut files = if path.is_dir() {
        std::fs::read_dir(path).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == extension)).collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).ok()?;
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            if let Err(error) = serde_json::from_str::<serde_json::Value>(line) {
                return Some(TableError::InvalidPath {
                    path: file,
                    message: format!("line {} is not valid JSON ({error}); expected one JSON object per line", number + 1),
                });
            }
        }
    }
    None
}

struct DataSource {
    /// Absolute path, with a trailing `/` for directories (DataFusion's marker for "all files
    /// under this prefix").
    url: String,
    format: FileFormat,
    /// The extension to select, exactly as spelled in the file names (case included).
    extension: String,
}

impl DataSource {
    fn resolve(path: &Path) -> Result<DataSource> {
        // Checked here because DataFusion reports a missing file as an empty table or an
        // object-store error that does not say which path was wrong.
        let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => TableError::NotFound {
                path: path.to_path_buf(),
            },
            _ => TableError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let absolute = std::path::absolute(path).map_err(|source| TableError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let Some(absolute_str) = absolute.to_str() else {
            return Err(TableError::InvalidPath {
                path: path.to_path_buf(),
                message: "the path is not valid UTF-8; expected a UTF-8 path".into(),
            });
        };
        if metadata.is_dir() {
            let (format, extension) = directory_format(path)?;
            let separator = if absolute_str.ends_with('/') { "" } else { "/" };
            Ok(DataSource {
                url: format!("{absolute_str}{separator}"),
                format,
                extension,
            })
        } else {
            let format = FileFormat::from_path(path)?;
            let extension = extension_of(path).unwrap_or_default();
            Ok(DataSource {
                url: absolute_str.to_string(),
                format,
                extension,
            })
        }
    }
}

/// `.ext` as spelled in the file name.
fn extension_of(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
}

/// The single format and extension of the data files in `dir`.
fn directory_format(dir: &Path) -> Result<(FileFormat, String)> {
    let io_error = |source| TableError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let hidden = name
            .to_str()
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        if !hidden && entry.file_type().map_err(io_error)?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    let Some(first) = files.first() else {
        return Err(TableError::InvalidPath {
            path: dir.to_path_buf(),
            message: "the directory holds no data files; expected files with one of the supported extensions".into(),
        });
    };
    let format = FileFormat::from_path(first)?;
    let extension = extension_of(first).unwrap_or_default();
    if let Some(other) = files
        .iter()
        .find(|p| extension_of(p).as_deref() != Some(extension.as_str()))
    {
        return Err(TableError::InvalidPath {
            path: dir.to_path_buf(),
            message: format!(
                "the directory mixes '{}' and '{}'; expected every data file to have the same extension",
                first.display(),
                other.display()
            ),
        });
    }
    Ok((format, extension))
}
