//! `dlflow predict`: a model's outputs appended to every row of a file or a query.

use std::path::PathBuf;

use clap::Args;
use dlflow::{Environment, Table};

use super::{deliver, load_models, parse_named_model};

/// Arguments of `dlflow predict`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "sql"])))]
pub struct PredictArgs {
    /// The SavedModel directory, optionally named for SQL: NAME=DIR.
    #[arg(long, value_parser = parse_named_model)]
    model: (String, PathBuf),
    /// Input file: .csv, .parquet, .json/.jsonl (one object per line), .arrow.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input query; `;`-separated statements, the last one a query. Tables from
    /// `CREATE EXTERNAL TABLE ... STORED AS DATAGEN|CSV|PARQUET ...`.
    #[arg(long)]
    sql: Option<String>,
    /// Output file (format from the extension); without it the first rows are printed.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Signature to run (default: serving_default, else predict/regress/classify).
    #[arg(long)]
    signature: Option<String>,
    /// Feed signature input INPUT from column COLUMN (repeatable): INPUT=COLUMN.
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
    #[arg(long, default_value_t = dlflow::layers::dlflow_tf::DEFAULT_BATCH_SIZE, value_parser = super::parse_positive)]
    batch_size: usize,
    /// Rows to print when there is no --output.
    #[arg(long, default_value_t = 10)]
    show: usize,
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
        let env = Environment::new();
        let mut model = load_models(&env, std::slice::from_ref(&self.model))?.remove(0).with_batch_size(self.batch_size);
        if let Some(signature) = &self.signature {
            model = model.with_signature(signature);
        }
        for (input, column) in &self.mappings {
            model = model.map_input(input, column);
        }
        if !self.outputs.is_empty() {
            model = model.with_outputs(self.outputs.clone());
        }
        let input: Table = match (&self.input, &self.sql) {
            (Some(path), _) => env.read_file(path).await?,
            (None, Some(sql)) => env.sql(sql).await?,
            (None, None) => unreachable!("clap requires --input or --sql"),
        };
        if let Some(declared) = &self.input_types {
            input.check_input_types(declared)?;
        }
        let predicted = model.transform(&input)?;
        deliver(&predicted, self.output.as_deref(), self.show, "predicted").await
    }
}
