//! The `dlflow` command line: train on tables with Python TensorFlow nodes, inspect models, run
//! them over files, generated tables and SQL.

mod commands;
mod progress;
mod signals;

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
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let command = async {
            match cli.command {
                Command::Model(command) => command.run(),
                Command::Predict(args) => args.run().await,
                Command::Sql(args) => args.run().await,
                Command::Train(args) => args.run().await,
                Command::Fit(args) => args.run().await,
            }
        };
        // Cancelling drops the command: temporary files go with it.
        tokio::select! {
            result = command => Some(result),
            () = signals::cancelled() => None,
        }
    });
    // Don't wait for blocking work (a TensorFlow call, a file being written) to notice.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Some(Ok(())) if !signals::interrupted() => std::process::ExitCode::SUCCESS,
        Some(Ok(())) | None => {
            eprintln!("interrupted");
            std::process::ExitCode::from(130)
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
