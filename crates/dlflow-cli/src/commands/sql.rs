//! `dlflow sql`: run a query, with models callable as `predict('name', ...)`.

use std::path::PathBuf;

use clap::Args;
use dlflow::Environment;

use super::{deliver, load_models, parse_named_model, parse_named_table, register_tables};

/// Arguments of `dlflow sql`.
#[derive(Args)]
pub struct SqlArgs {
    /// `;`-separated statements; the last one is the query whose rows are shown or written.
    query: String,
    /// A model callable as predict('NAME', ...) (repeatable): NAME=DIR or DIR.
    #[arg(long = "model", value_parser = parse_named_model)]
    models: Vec<(String, PathBuf)>,
    /// A file registered as a table (repeatable): NAME=FILE, or FILE (named after it: `points`
    /// for points.csv).
    #[arg(long = "table", value_parser = parse_named_table)]
    tables: Vec<(Option<String>, PathBuf)>,
    /// Output file (format from the extension); without it the first rows are printed.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Rows to print when there is no --output.
    #[arg(long, default_value_t = 10)]
    show: usize,
}

impl SqlArgs {
    /// Run the command.
    pub async fn run(self) -> dlflow::Result<()> {
        let env = Environment::new();
        load_models(&env, &self.models)?;
        register_tables(&env, &self.tables).await?;
        let table = env.sql(&self.query).await?;
        deliver(&table, self.output.as_deref(), self.show, "query").await
    }
}
