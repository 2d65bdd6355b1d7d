//! A job's state folder: the engine's position log and the nodes' checkpoints, kept across
//! attempts (and across a crash of dlflow itself, for `--resume`), removed when the job ends
//! in success.
//!
//! ```text
//! STATE/attempt                 the last attempt started
//! STATE/positions-P.log         process P's log of fed positions (dlflow_engine::PositionLog)
//! STATE/checkpoints/worker-K/   worker K's checkpoints (TFContext.checkpoint)
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) struct State {
    dir: PathBuf,
    /// Kept after a failure, so that `--resume` can continue the job.
    keep_on_failure: bool,
}

impl State {
    /// The state folder `dir` (or a fresh one that no later run can resume), for a run from
    /// the start or, with `resume`, from where the last run stopped.
    pub fn open(dir: Option<&Path>, resume: bool) -> Result<(State, u32)> {
        let keep_on_failure = dir.is_some();
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => dlflow_common::paths::dlflow_home().join("jobs").join(dlflow_cluster::random_token()),
        };
        let state = State { dir, keep_on_failure };
        let first_attempt = if resume {
            let last = state.last_attempt().ok_or_else(|| {
                Error::Invalid(format!(
                    "nothing to resume: {} holds no earlier run of this job (run it without --resume)",
                    state.dir.display()
                ))
            })?;
            last + 1
        } else {
            if state.dir.exists() {
                std::fs::remove_dir_all(&state.dir).map_err(|e| io_error(&state.dir, e))?;
            }
            0
        };
        // Temp folders of a run that was killed: nothing uses them any more.
        let _ = std::fs::remove_dir_all(state.temp());
        std::fs::create_dir_all(state.checkpoints()).map_err(|e| io_error(&state.dir, e))?;
        Ok((state, first_attempt))
    }

    /// Where the nodes' temp folders go: with the state, so that a folder a killed dlflow
    /// left behind goes when the job ends.
    pub fn temp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// Whether any worker saved a checkpoint here (a restart then waits for every worker to
    /// say which it restores; without one, the input simply starts from the beginning).
    pub fn has_checkpoints(&self) -> bool {
        let Ok(workers) = std::fs::read_dir(self.checkpoints()) else { return false };
        workers.flatten().any(|worker| {
            std::fs::read_dir(worker.path())
                .is_ok_and(|mut files| files.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".dlflow.json"))))
        })
    }

    pub fn log(&self, process: usize) -> PathBuf {
        self.dir.join(format!("positions-{process}.log"))
    }

    fn last_attempt(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("attempt")).ok()?.trim().parse().ok()
    }

    /// Records that `attempt` starts (before any of its rows are fed).
    pub fn begin(&self, attempt: u32) -> Result<()> {
        let path = self.dir.join("attempt");
        let tmp = self.dir.join("attempt.tmp");
        std::fs::write(&tmp, attempt.to_string()).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
    }

    /// The job ended: success removes the folder, failure keeps it when it can be resumed.
    pub fn finish(self, success: bool) {
        // A run that never started an attempt (the processes did not connect) has nothing to resume.
        if success || !self.keep_on_failure || self.last_attempt().is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Invalid(format!("the job's state folder {}: {error}", path.display()))
}
