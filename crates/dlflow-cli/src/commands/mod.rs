//! One module per subcommand, and what they share: how tables and models are named on the
//! command line, and how a table is shown or written.

pub mod fit;
pub mod model;
pub mod predict;
pub mod sql;
pub mod tensorboard;
pub mod train;

use std::path::{Path, PathBuf};

use dlflow::{Environment, Model, Table};
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

/// `--table NAME=FILE`, or `--table FILE` (named after the file: `points` for `points.csv`).
pub fn parse_named_table(value: &str) -> Result<(Option<String>, PathBuf), String> {
    match value.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok((Some(name.to_string()), PathBuf::from(file))),
        Some(_) => Err(format!("`{value}`: expected NAME=FILE or FILE")),
        None => Ok((None, PathBuf::from(value))),
    }
}

/// Register every `--table` in `env`, for the SQL that follows.
pub async fn register_tables(env: &Environment, tables: &[(Option<String>, PathBuf)]) -> dlflow::Result<()> {
    for (name, path) in tables {
        match name {
            Some(name) => env.register_file(name, path).await?,
            None => {
                env.read_file(path).await?;
            }
        }
    }
    Ok(())
}

/// A count that must be at least 1 (`--batch-size`, `--epochs`, `--workers`).
pub fn parse_positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("expected a number of at least 1, got 0".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{value}`: expected a whole number of at least 1")),
    }
}

/// After training: the loss curve from the TensorBoard events in `events` (if the job wrote
/// any), drawn on stderr and written as an SVG to `svg`. A curve that cannot be read or
/// written is a warning, not a failed training.
pub fn show_loss_curve(events: &Path, svg: &Path) {
    if !events.is_dir() {
        return;
    }
    match dlflow::LossCurve::read(events) {
        Ok(curve) if curve.is_empty() => {}
        Ok(curve) => {
            eprint!("{}", curve.to_text(LOSS_CURVE_WIDTH));
            match curve.write_svg(svg) {
                Ok(()) => eprintln!("loss curve: {} (TensorBoard: dlflow tensorboard {})", svg.display(), events.display()),
                Err(e) => eprintln!("warning: could not write the loss curve: {e}"),
            }
        }
        Err(e) => eprintln!("warning: could not read the loss curve: {e}"),
    }
}

/// Columns of the terminal loss curve: with its axis labels, it fits an 80-column terminal.
const LOSS_CURVE_WIDTH: usize = 60;

/// Load every `--model` and register it in `env` for SQL.
pub fn load_models(env: &Environment, models: &[(String, PathBuf)]) -> dlflow::Result<Vec<Model>> {
    models
        .iter()
        .map(|(name, dir)| {
            let model = Model::load(dir)?;
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
