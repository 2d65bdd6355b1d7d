//! `dlflow predict`: a model's outputs appended to every row of a file, a query or a stream.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use dlflow::layers::dlflow_table::options::MicroBatching;
use dlflow::layers::dlflow_table::stream::{stream_table, Location, OnError, RecordFormat, StreamSpec};
use dlflow::layers::dlflow_tf::{DType, Signature};
use dlflow::{Environment, Model, Table};
use arrow::datatypes::{DataType, Field, Schema};

use super::{bounded_batches, deliver, load_models, parse_named_model, report_written, OutputArgs, TagsArg};
use crate::progress::RowProgress;

/// Arguments of `dlflow predict`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "sql"])))]
pub struct PredictArgs {
    /// The SavedModel directory, or a base directory of numbered versions (BASE/1, BASE/2, ...)
    /// served with hot reload; optionally named for SQL: NAME=DIR.
    #[arg(long, value_parser = parse_named_model)]
    model: (String, PathBuf),
    /// Input: a file (.csv, .parquet, .json/.jsonl, .arrow) or a directory of them; a stream:
    /// `-` (standard input), tcp://HOST:PORT, kafka://BROKER/TOPIC, or a directory with --follow.
    /// A stream's records are NDJSON (or CSV, --input-format) with the model's inputs as fields.
    #[arg(long)]
    input: Option<String>,
    /// Input query; `;`-separated statements, the last one a query. Tables from
    /// `CREATE [UNBOUNDED] EXTERNAL TABLE ... STORED AS DATAGEN|CSV|JSON|PARQUET ...`.
    #[arg(long)]
    sql: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
    /// Signature to run (default: serving_default, else predict/regress/classify).
    #[arg(long)]
    signature: Option<String>,
    /// Feed signature input INPUT from column COLUMN (repeatable): INPUT=COLUMN. For a
    /// tf.Example input, FEATURE=COLUMN writes COLUMN as feature FEATURE.
    #[arg(long = "map", value_parser = parse_mapping)]
    mappings: Vec<(String, String)>,
    /// Only append these outputs (repeatable).
    #[arg(long = "output-column")]
    outputs: Vec<String>,
    /// The seed's `input_types`: one of FLOAT_32, FLOAT_64, INT_32, INT_64, STRING per input
    /// column, comma separated, checked against the input before anything runs.
    #[arg(long)]
    input_types: Option<String>,
    /// Rows per TensorFlow run.
    #[arg(long, default_value_t = dlflow::layers::dlflow_common::DEFAULT_BATCH_SIZE, value_parser = super::parse_positive)]
    batch_size: usize,
    #[command(flatten)]
    stream: StreamInputArgs,
    #[command(flatten)]
    tags: TagsArg,
}

/// How a stream input is read.
#[derive(Args, Debug)]
pub struct StreamInputArgs {
    /// Follow a directory given as --input: read each file that appears once, in name order,
    /// until stopped (Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// How a stream's records are written: json (one object per line) or csv (no header).
    #[arg(long, value_enum, default_value_t = InputFormat::Json)]
    input_format: InputFormat,
    /// Columns a stream's records carry besides the model's inputs, passed through to the
    /// output, as SQL: 'id BIGINT, name VARCHAR'. Position columns _partition, _offset and
    /// _timestamp (arrival time) may be declared too.
    #[arg(long)]
    columns: Option<String>,
    /// A record that does not parse or fit: fail (the default: the error names the source, the
    /// offset and the record) or skip (count it, log it, go on).
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
    /// With --on-error skip: append each skipped record to this NDJSON file.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// On a stream: rows per micro-batch at most [default: 8192]. TensorFlow still runs at most
    /// --batch-size rows per call.
    #[arg(long)]
    max_batch_rows: Option<usize>,
    /// On a stream: how long (ms) a record may wait for its micro-batch to fill [default: 0:
    /// a batch leaves as soon as the source has nothing more ready].
    #[arg(long)]
    max_batch_delay_ms: Option<u64>,
}

/// `--input-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One JSON object per line.
    Json,
    /// Comma-separated values, one record per line.
    Csv,
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    /// End the job with an error.
    Fail,
    /// Count, log and skip the record.
    Skip,
}

fn parse_mapping(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((input, column)) if !input.is_empty() && !column.is_empty() => Ok((input.into(), column.into())),
        _ => Err(format!("`{value}`: expected INPUT=COLUMN")),
    }
}

impl PredictArgs {
    /// Run the command.
    pub async fn run(self) -> dlflow::Result<()> {
        if let Some(input) = &self.input {
            self.output.check_not_an_input([Path::new(input)])?;
        }
        let env = Environment::new();
        let mut model = load_models(&env, std::slice::from_ref(&self.model), &self.tags)?.remove(0).with_batch_size(self.batch_size);
        if let Some(signature) = &self.signature {
            model = model.with_signature(signature);
        }
        for (input, column) in &self.mappings {
            model = model.map_input(input, column);
        }
        if !self.outputs.is_empty() {
            model = model.with_outputs(self.outputs.clone());
        }
        if self.stream.max_batch_rows.is_some() || self.stream.max_batch_delay_ms.is_some() {
            let mut batching = MicroBatching::default();
            if let Some(rows) = self.stream.max_batch_rows {
                batching = batching.max_rows(rows);
            }
            if let Some(ms) = self.stream.max_batch_delay_ms {
                batching = batching.max_delay(Duration::from_millis(ms));
            }
            model = model.with_micro_batching(batching);
        }
        let input: Table = match (&self.input, &self.sql) {
            (Some(input), _) => match stream_location(input, self.stream.follow)? {
                Some(location) => {
                    let spec = self.stream.spec(&env, location, &model, &self.mappings).await?;
                    env.context().register_table("input", stream_table(spec).await?)?;
                    env.table("input").await?
                }
                None => env.read_file(input).await?,
            },
            (None, Some(sql)) => env.sql(sql).await?,
            (None, None) => return Err(dlflow::Error::Invalid("expected --input or --sql".into())),
        };
        if let Some(declared) = &self.input_types {
            input.check_input_types(declared)?;
        }
        if let Some(path) = self.output.single_file()?
            && !input.is_unbounded().await?
        {
            // Parquet to Parquet copies the columns the model does not change as they are stored.
            let input = bounded_batches(input, self.batch_size).await?;
            let mut progress = RowProgress::start("predicted");
            model.write_transformed(&input, path, |batch| progress.add(batch.num_rows())).await?;
            report_written(progress, path);
            return Ok(());
        }
        let predicted = bounded_batches(model.transform(&input)?, self.batch_size).await?;
        deliver(&predicted, &self.output, "predicted").await
    }
}

/// The stream `input` names, or `None` for a file (or a directory read once).
fn stream_location(input: &str, follow: bool) -> dlflow::Result<Option<Location>> {
    if Location::is_stream_location(input) {
        return Ok(Some(Location::parse(input)?));
    }
    if follow {
        if !Path::new(input).is_dir() {
            return Err(dlflow::Error::Invalid(format!("--follow needs a directory; '{input}' is not one")));
        }
        return Ok(Some(Location::Directory(PathBuf::from(input))));
    }
    Ok(None)
}

impl StreamInputArgs {
    /// The stream's spec: the model's inputs as columns (under their --map names), then
    /// --columns.
    async fn spec(&self, env: &Environment, location: Location, model: &Model, mappings: &[(String, String)]) -> dlflow::Result<StreamSpec> {
        let signature = match &model.options().signature {
            Some(name) => model.saved_model().signature(name)?.clone(),
            None => model.saved_model().default_signature()?.clone(),
        };
        let mut fields = input_fields(&signature, mappings)?;
        if let Some(columns) = &self.columns {
            for field in declared_columns(env, columns).await? {
                fields.retain(|f| f.name() != field.name());
                fields.push(field);
            }
        }
        let mut spec = StreamSpec::new(location, Arc::new(Schema::new(fields)));
        spec.format = match self.input_format {
            InputFormat::Json => RecordFormat::Json,
            InputFormat::Csv => RecordFormat::Csv { has_header: false },
        };
        spec.on_error = match self.on_error {
            OnErrorArg::Fail if self.dead_letter.is_some() => {
                return Err(dlflow::Error::Invalid("--dead-letter goes with --on-error skip".into()));
            }
            OnErrorArg::Fail => OnError::Fail,
            OnErrorArg::Skip => OnError::Skip { dead_letter: self.dead_letter.clone() },
        };
        Ok(spec)
    }
}

/// A column per signature input, typed and shaped as the signature wants it.
fn input_fields(signature: &Signature, mappings: &[(String, String)]) -> dlflow::Result<Vec<Field>> {
    signature
        .inputs()
        .iter()
        .map(|spec| {
            let column = mappings.iter().find(|(input, _)| *input == spec.key).map_or(spec.key.as_str(), |(_, c)| c.as_str());
            let element = match spec.dtype {
                DType::Float => DataType::Float32,
                DType::Double => DataType::Float64,
                DType::Int32 => DataType::Int32,
                DType::Int64 => DataType::Int64,
                DType::String => DataType::Utf8,
                DType::Bool => DataType::Boolean,
                other => {
                    return Err(dlflow::Error::Invalid(format!(
                        "signature input `{}` is {other}, which a stream record cannot carry; declare the input with --columns",
                        spec.key
                    )));
                }
            };
            let dims = spec.shape.dims().unwrap_or(&[]);
            let inner = dims.iter().skip(1).copied().collect::<Vec<_>>();
            let data_type = if inner.iter().all(|d| *d == 1) {
                element
            } else if inner.iter().all(|d| *d > 0) {
                DataType::FixedSizeList(Arc::new(Field::new("item", element, true)), inner.iter().product::<i64>() as i32)
            } else {
                DataType::List(Arc::new(Field::new("item", element, true)))
            };
            // Required: a record without a value for a model input is a bad record (failed or
            // skipped as --on-error says), not a null that would stop the model later.
            Ok(Field::new(column, data_type, false))
        })
        .collect()
}

/// Parses `'id BIGINT, name VARCHAR'` with DataFusion's own SQL types.
async fn declared_columns(env: &Environment, columns: &str) -> dlflow::Result<Vec<Field>> {
    let mut selects = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in columns.chars().chain(std::iter::once(',')) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                let item = current.trim().to_string();
                current.clear();
                if item.is_empty() {
                    continue;
                }
                let Some((name, sql_type)) = item.split_once(char::is_whitespace) else {
                    return Err(dlflow::Error::Invalid(format!("--columns: `{item}`: expected NAME TYPE, e.g. 'id BIGINT'")));
                };
                selects.push(format!("CAST(NULL AS {}) AS \"{}\"", sql_type.trim(), name.replace('"', "\"\"")));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if selects.is_empty() {
        return Ok(Vec::new());
    }
    let table = env
        .sql(&format!("SELECT {}", selects.join(", ")))
        .await
        .map_err(|e| dlflow::Error::Invalid(format!("--columns '{columns}': {e}; expected NAME TYPE pairs, e.g. 'id BIGINT, name VARCHAR'")))?;
    Ok(table.schema().fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect())
}
