//! The `dlflow` command line: train on tables with Python TensorFlow nodes, inspect models, run
//! them over files, generated tables and SQL.

mod commands;
mod progress;

use clap::{Parser, Subcommand};

/// Deep learning on dataflow: TensorFlow models over tables and streams.
#[derive(Parser)]
#[command(name = "dlflow", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with SavedModels.
    #[command(subcommand)]
    Model(commands::model::ModelCommand),
    /// Append a model's predictions to every row of a file or query.
    Predict(commands::predict::PredictArgs),
    /// Run SQL; registered models are callable as predict('name', columns...).
    Sql(commands::sql::SqlArgs),
    /// Fit a Keras model on feature and label columns (no training script) and save it.
    Fit(commands::fit::FitArgs),
    /// Train on a table with a cluster of Python TensorFlow nodes (flags or a TOML job file).
    Train(commands::train::TrainArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("DLFLOW_LOG"))
        .with_writer(std::io::stderr)
        .init();
    quiet_network_panics();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Model(command) => command.run(),
            Command::Predict(args) => args.run().await,
            Command::Sql(args) => args.run().await,
            Command::Train(args) => args.run().await,
            Command::Fit(args) => args.run().await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// When another process of a job goes away, timely's network and worker threads panic; dlflow
/// turns that into an error naming the process, so their panic messages are noise.
fn quiet_network_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let thread = std::thread::current();
        let timely = thread.name().is_some_and(|name| name.starts_with("timely:"));
        if timely || message.contains("timely communication error") || message.contains("MergeQueue poisoned") {
            tracing::debug!("{message}");
            return;
        }
        default(info);
    }));
}
