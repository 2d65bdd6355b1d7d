//! The `dlflow` command line: train on tables with Python TensorFlow nodes, inspect models, run
//! them over files, generated tables and SQL.

mod commands;
mod logging;
mod progress;
mod signals;

use clap::{Parser, Subcommand};

/// Deep learning on dataflow: TensorFlow models over tables and streams.
#[derive(Parser)]
#[command(name = "dlflow", version, about, propagate_version = true)]
struct Cli {
    /// What dlflow logs on stderr: error, warn (the default), info, debug, trace, or a filter
    /// such as `dlflow_cluster=debug,info`. Without the flag: the DLFLOW_LOG variable.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = logging::parse_filter)]
    log_level: Option<String>,
    /// Show TensorFlow's own log lines (start-up notices, CUDA probing), hidden by default;
    /// the same as DLFLOW_TF_LOG=1.
    #[arg(long, global = true)]
    tf_log: bool,
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
    /// Start TensorBoard on 127.0.0.1 over a folder of event files (dlflow's Python).
    Tensorboard(commands::tensorboard::TensorboardArgs),
}

/// glibc's malloc maps every buffer above its threshold (128 KiB, rising as buffers are freed)
/// afresh and unmaps it when freed, so each batch of wide rows (tens of MB) paid its page faults
/// and zeroing again: a third of `dlflow predict`'s time on a file of 784-float rows. Buffers
/// up to 32 MiB come from the heap instead, and up to 256 MiB of freed heap is kept for the next
/// batches rather than returned at once (decision 0013 has the figures).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    // Before anything loads TensorFlow or starts a node.
    logging::configure_tensorflow_logs(cli.tf_log);
    logging::init(cli.log_level.as_deref());
    quiet_network_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            // Training stops its nodes itself at Ctrl-C (they must not outlive dlflow), then exits 130.
            Command::Train(args) => Some(args.run().await),
            command => {
                let command = async {
                    match command {
                        Command::Model(command) => command.run(),
                        Command::Predict(args) => args.run().await,
                        Command::Sql(args) => args.run().await,
                        Command::Train(args) => args.run().await,
                        Command::Fit(args) => args.run().await,
                        Command::Tensorboard(args) => args.run().await,
                    }
                };
                // Cancelling drops the command: temporary files go with it.
                tokio::select! {
                    result = command => Some(result),
                    () = signals::cancelled() => None,
                }
            }
        }
    });
    if result.is_none() {
        // A cancelled job stops its nodes and removes its folders on its own thread, which
        // may still need the runtime: wait for it (bounded) before both go.
        dlflow::wait_for_jobs(std::time::Duration::from_secs(30));
    }
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
