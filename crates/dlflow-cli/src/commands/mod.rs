//! One module per subcommand, and what they share: how tables and models are named on the
//! command line, and how a table is shown or written.

pub mod fit;
pub mod model;
pub mod predict;
pub mod sql;
pub mod train;

use std::path::{Path, PathBuf};

use clap::Args;
use dlflow::{Environment, LoadOptions, Model, Table};
use futures::StreamExt;

use crate::progress::RowProgress;

/// `NAME=DIR` or `DIR` (named after the directory).
pub fn parse_named_model(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok((name.to_string(), PathBuf::from(dir))),
        Some(_) => Err(format!("`{value}`: expected NAME=DIR or DIR")),
        None => {
            let dir = PathBuf::from(value);
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            Ok((name, dir))
        }
    }
}

/// `--tags`: the MetaGraph to load, for every command that loads models.
#[derive(Args, Clone)]
pub struct TagsArg {
    /// MetaGraph tags of the models to load, comma separated (e.g. `train,serve`); a model
    /// is loaded from the MetaGraph with exactly these tags.
    #[arg(long, default_value = "serve", value_name = "TAG,...")]
    tags: String,
}

/// How to load models given `--tags`.
pub fn load_options(tags: &TagsArg) -> LoadOptions {
    LoadOptions::default().with_tags(LoadOptions::parse_tags(&tags.tags))
}

/// Load every `--model` (with `--tags`) and register it in `env` for SQL.
pub fn load_models(env: &Environment, models: &[(String, PathBuf)], tags: &TagsArg) -> dlflow::Result<Vec<Model>> {
    let options = load_options(tags);
    models
        .iter()
        .map(|(name, dir)| {
            let model = Model::load_with(dir, &options)?;
            env.register_model(name.clone(), &model);
            Ok(model)
        })
        .collect()
}

/// Write `table` to `output` with a progress bar, or, without an output, run it to the end,
/// print its first `show` rows; either way print a summary line.
pub async fn deliver(table: &Table, output: Option<&Path>, show: usize, what: &str) -> dlflow::Result<()> {
    let mut progress = RowProgress::start(what);
    match output {
        Some(path) => {
            table.write(path, |batch| progress.add(batch.num_rows())).await?;
            let summary = progress.finish();
            eprintln!("wrote {summary} to {}", path.display());
        }
        None => {
            let mut stream = table.stream().await?;
            let mut head = Vec::new();
            let mut kept = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                progress.add(batch.num_rows());
                if kept < show {
                    let take = batch.num_rows().min(show - kept);
                    head.push(batch.slice(0, take));
                    kept += take;
                }
            }
            let summary = progress.finish();
            println!("{}", dlflow::layers::dlflow_table::format_table(&head, show));
            eprintln!("{what}: {summary}");
        }
    }
    Ok(())
}
