//! One module per subcommand, and what they share: how tables and models are named on the
//! command line, and how a table is shown or written.

pub mod fit;
pub mod model;
pub mod predict;
pub mod sql;
pub mod tensorboard;
pub mod train;

use std::path::{Path, PathBuf};

use clap::Args;
use dlflow::layers::dlflow_table::inference::ModelHandle;
use dlflow::layers::dlflow_table::stream::{write_to_sink, StreamSink};
use dlflow::layers::dlflow_table::FileFormat;
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
            if let ModelHandle::Versioned(versions) = model.handle() {
                let (version, _) = versions.current();
                eprintln!("serving model version {version} of {} (watching for newer versions)", dir.display());
                versions.on_event(std::sync::Arc::new(|event| eprintln!("{event}")));
            }
            env.register_model(name.clone(), &model);
            Ok(model)
        })
        .collect()
}

/// Where and how results go: `--output` and the options of stream sinks.
#[derive(clap::Args, Debug, Default)]
pub struct OutputArgs {
    /// Output: a file (format from the extension); `-` for NDJSON on standard output (one line
    /// per row, flushed per micro-batch); a directory (existing, or ending in `/`) of rolling
    /// files; tcp://HOST:PORT; kafka://BROKER/TOPIC. Without it, the first rows are printed (a
    /// stream goes to standard output).
    #[arg(long)]
    output: Option<String>,
    /// Rows to print when there is no --output.
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// Format of the files of a directory output: json, csv, parquet or arrow.
    #[arg(long, value_parser = parse_file_format)]
    output_format: Option<FileFormat>,
    /// Rows per file of a directory output.
    #[arg(long, default_value_t = dlflow::layers::dlflow_table::stream::DEFAULT_ROLL_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    roll_rows: u64,
    /// Seconds a file of a directory output stays open at most.
    #[arg(long, default_value_t = dlflow::layers::dlflow_table::stream::DEFAULT_ROLL_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    roll_seconds: u64,
}

impl OutputArgs {
    /// The file the output goes to when it is one file (not `-`, a directory or a stream).
    pub fn single_file(&self) -> dlflow::Result<Option<&Path>> {
        match self.output.as_deref() {
            Some(target) if StreamSink::parse(target, self.output_format)?.is_none() => Ok(Some(Path::new(target))),
            _ => Ok(None),
        }
    }

    /// Refuses an output file that is one of the `inputs`: the atomic write would replace the
    /// rows being read with the results, and a mistyped path would lose the input for good.
    pub fn check_not_an_input<'a>(&self, inputs: impl IntoIterator<Item = &'a Path>) -> dlflow::Result<()> {
        let Some(output) = self.output.as_deref() else { return Ok(()) };
        let Ok(output_path) = std::fs::canonicalize(output) else {
            return Ok(()); // a new file (or a stream): nothing to overwrite
        };
        if output_path.is_dir() {
            return Ok(()); // a directory output gets new files of its own
        }
        match inputs.into_iter().find(|input| std::fs::canonicalize(input).is_ok_and(|p| p == output_path)) {
            Some(input) => Err(dlflow::Error::Invalid(format!(
                "--output {output} is also the input {}: writing it would replace the rows being read; write the results to another file",
                input.display()
            ))),
            None => Ok(()),
        }
    }
}

fn parse_file_format(value: &str) -> Result<FileFormat, String> {
    FileFormat::from_path(Path::new(&format!("x.{value}"))).map_err(|_| format!("`{value}`: expected json, csv, parquet or arrow"))
}

/// Write `table` where `output` says, with a progress line, then print a summary: a file, a
/// stream sink, or (without an output) the first rows of a bounded table.
pub async fn deliver(table: &Table, output: &OutputArgs, what: &str) -> dlflow::Result<()> {
    let unbounded = table.is_unbounded().await?;
    let sink = match output.output.as_deref() {
        Some(target) => StreamSink::parse(target, output.output_format)?,
        None if unbounded => Some(StreamSink::Stdout),
        None => None,
    };
    if let Some(mut sink) = sink {
        if let StreamSink::Directory { roll_rows, roll_interval, .. } = &mut sink {
            *roll_rows = output.roll_rows;
            *roll_interval = std::time::Duration::from_secs(output.roll_seconds);
        }
        let mut progress = if unbounded { RowProgress::start_stream(what) } else { RowProgress::start(what) };
        let result = write_to_sink(table.stream().await?, &sink, |batch| progress.add(batch.num_rows())).await;
        let summary = progress.finish();
        result?;
        eprintln!("{what}: {summary}");
        return Ok(());
    }
    if unbounded {
        return Err(dlflow::Error::Invalid(
            "the input is a stream with no end: write it to -, a directory (DIR/), tcp://HOST:PORT or kafka://BROKER/TOPIC, not to one file".into(),
        ));
    }
    deliver_bounded(table, output.output.as_deref().map(Path::new), output.show, what).await
}

/// Ends a file's progress bar with its summary line.
pub fn report_written(progress: RowProgress, path: &Path) {
    let summary = progress.finish();
    eprintln!("wrote {summary} to {}", path.display());
}

/// `table`, when bounded and its rows are wide, read in batches of at most [`BATCH_BYTES`],
/// each a multiple of `unit` rows (the model's batch size), rather than DataFusion's 8192 rows.
/// The reader, the model and the writer each hold a few batches, so this is most of the memory
/// of a file-to-file run: `dlflow predict` over 784-float rows (3 KB a row) peaked at about
/// 700 MB of heap with 25 MB batches, about 350 MB with 3 MB ones, and ran no slower.
pub async fn bounded_batches(table: Table, unit: usize) -> dlflow::Result<Table> {
    if table.is_unbounded().await? {
        return Ok(table); // a stream's batches are its micro-batches
    }
    Ok(match table.batch_rows_within(BATCH_BYTES, unit) {
        Some(rows) => table.with_batch_rows(rows),
        None => table,
    })
}

/// The size a batch of a bounded query's rows is kept under when its rows have a fixed width.
const BATCH_BYTES: usize = 4 << 20;

/// Write a bounded `table` to `output` with a progress bar, or, without an output, run it to
/// the end, print its first `show` rows; either way print a summary line.
async fn deliver_bounded(table: &Table, output: Option<&Path>, show: usize, what: &str) -> dlflow::Result<()> {
    let mut progress = RowProgress::start(what);
    match output {
        Some(path) => {
            table.write(path, |batch| progress.add(batch.num_rows())).await?;
            report_written(progress, path);
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
