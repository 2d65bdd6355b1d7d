//! `dlflow tensorboard DIR`: TensorBoard over a folder of event files, on 127.0.0.1, run by
//! the same Python as the training nodes (dlflow's virtualenv has `tensorboard` pinned).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Args;
use dlflow::Python;
use dlflow::layers::dlflow_cluster::interpreter;
use dlflow::layers::dlflow_common::tf_logs::{is_tensorflow_noise, tf_logs_wanted};

/// Starts TensorBoard; the child asks the kernel to kill it when dlflow dies (Linux), so that
/// no server outlives the command, however it ends.
const LAUNCHER: &str = "\
import ctypes, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
from tensorboard.main import run_main
sys.argv[0] = 'tensorboard'
run_main()
";

/// Arguments of `dlflow tensorboard`.
#[derive(Args)]
pub struct TensorboardArgs {
    /// The folder of event files: a job's `tensorboard_dir` (by default `MODEL_DIR.tensorboard`).
    dir: PathBuf,
    /// The port to serve on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 6006)]
    port: u16,
    /// The Python with TensorBoard installed (default: dlflow's virtualenv).
    #[arg(long)]
    python: Option<PathBuf>,
}

impl TensorboardArgs {
    /// Run TensorBoard until it ends or dlflow is interrupted.
    pub async fn run(self) -> dlflow::Result<()> {
        if !self.dir.is_dir() {
            return Err(dlflow::Error::Invalid(format!(
                "{} is not a folder of TensorBoard event files (training writes them to the tensorboard_dir \
                 property, by default MODEL_DIR.tensorboard)",
                self.dir.display()
            )));
        }
        let python = interpreter(&self.python.clone().map_or(Python::Default, Python::Executable))?;
        let mut child = Command::new(&python)
            .args(["-c", LAUNCHER, "--logdir"])
            .arg(&self.dir)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .envs(dlflow::layers::dlflow_common::tf_logs::child_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| dlflow::Error::Invalid(format!("could not start TensorBoard with {}: {e}", python.display())))?;
        let keep_tf_lines = tf_logs_wanted();
        let forwarders: Vec<_> = [child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), child.stderr.take().map(|s| Box::new(s) as _)]
            .into_iter()
            .flatten()
            .map(|stream| std::thread::spawn(move || forward(stream, keep_tf_lines)))
            .collect();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| dlflow::Error::Invalid(format!("waiting for TensorBoard: {e}")))?
            .map_err(|e| dlflow::Error::Invalid(format!("waiting for TensorBoard: {e}")))?;
        for forwarder in forwarders {
            let _ = forwarder.join();
        }
        if status.success() {
            Ok(())
        } else {
            Err(dlflow::Error::Invalid(format!(
                "TensorBoard ended with {status} (its output is above; {} needs the `tensorboard` package, which \
                 scripts/setup.sh installs in dlflow's virtualenv)",
                python.display()
            )))
        }
    }
}

/// TensorBoard's output to dlflow's stderr, without TensorFlow's start-up lines.
fn forward(stream: Box<dyn Read + Send>, keep_tf_lines: bool) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if keep_tf_lines || !is_tensorflow_noise(&line) {
            eprintln!("{line}");
        }
    }
}
