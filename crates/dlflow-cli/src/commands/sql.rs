//! `dlflow sql`: run a query, with models callable as `predict('name', ...)`.

use std::path::PathBuf;

use clap::Args;
use dlflow::Environment;

use super::{bounded_batches, deliver, load_models, parse_named_model, parse_named_table, register_tables, OutputArgs, TagsArg};

/// Arguments of `dlflow sql`.
#[derive(Args)]
pub struct SqlArgs {
    /// `;`-separated statements; the last one is the query whose rows are shown or written.
    /// Streams are tables too: `CREATE UNBOUNDED EXTERNAL TABLE t (...) STORED AS JSON LOCATION
    /// '-' | 'tcp://HOST:PORT' | 'kafka://BROKER/TOPIC' | 'DIR'`; a query over one writes a line
    /// per result row as soon as it exists.
    query: String,
    /// A model callable as predict('NAME', ...) (repeatable): NAME=DIR or DIR.
    #[arg(long = "model", value_parser = parse_named_model)]
    models: Vec<(String, PathBuf)>,
    /// A file registered as a table (repeatable): NAME=FILE, or FILE (named after it: `points`
    /// for points.csv).
    #[arg(long = "table", value_parser = parse_named_table)]
    tables: Vec<(Option<String>, PathBuf)>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    tags: TagsArg,
}

impl SqlArgs {
    /// Run the command.
    pub async fn run(self) -> dlflow::Result<()> {
        let env = Environment::new();
        self.output.check_not_an_input(self.tables.iter().map(|(_, path)| path.as_path()))?;
        load_models(&env, &self.models, &self.tags)?;
        register_tables(&env, &self.tables).await?;
        // Whole 1024-row runs of any model the query calls (the default batch size).
        let table = bounded_batches(env.sql(&self.query).await?, dlflow::layers::dlflow_common::DEFAULT_BATCH_SIZE).await?;
        deliver(&table, &self.output, "query").await
    }
}
