//! A job's state folder: the engine's position log and the nodes' checkpoints, kept across
//! attempts (and across a crash of dlflow itself, for `--resume`), removed when the job ends
//! in success.
//!
//! ```text
//! STATE.lock                    held (flock) by the run using STATE, with its process id
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
    /// Held for the whole run: two runs of one job file on one machine must not share a
    /// state folder (the second would clear the first's temp folders and checkpoints).
    lock: Option<StateLock>,
}

impl State {
    /// The state folder `dir` (or a fresh one that no later run can resume), for a run from
    /// the start or, with `resume`, from where the last run stopped.
    ///
    /// If another live run holds `dir`, a run from the start takes a fresh folder instead (with
    /// a warning: it cannot be resumed) and `resume` fails with an error that names the holder.
    pub fn open(dir: Option<&Path>, resume: bool) -> Result<(State, u32)> {
        let claimed = match dir {
            Some(dir) => match StateLock::try_take(dir)? {
                Ok(lock) => Some((dir.to_path_buf(), lock)),
                Err(holder) if resume => {
                    return Err(Error::Invalid(format!(
                        "cannot resume: another run of this job ({holder}) is using its state folder {}; wait for it to end",
                        dir.display()
                    )))
                }
                Err(holder) => {
                    tracing::warn!(
                        "another run of this job ({holder}) is using its state folder {}: this run keeps its state in a folder of its own and cannot be resumed",
                        dir.display()
                    );
                    None
                }
            },
            None => None,
        };
        let state = match claimed {
            Some((dir, lock)) => State { dir, keep_on_failure: true, lock: Some(lock) },
            None => State {
                dir: dlflow_common::paths::dlflow_home().join("jobs").join(dlflow_cluster::random_token()),
                keep_on_failure: false,
                lock: None,
            },
        };
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
        if let Some(lock) = self.lock {
            lock.release();
        }
    }
}

/// An exclusive lock on a state folder: `FOLDER.lock` beside it, locked with `flock` (so a
/// killed run's lock goes with its process) and holding the holder's process id for messages.
struct StateLock {
    file: std::fs::File,
    path: PathBuf,
}

impl StateLock {
    /// The lock, or (in the inner `Err`) a description of the live run that holds it.
    fn try_take(dir: &Path) -> Result<std::result::Result<StateLock, String>> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::MetadataExt;
        let mut path = dir.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    let holder = match pid.trim() {
                        "" => "another process".to_string(),
                        pid => format!("process {pid}"),
                    };
                    return Ok(Err(holder));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path, e)),
            }
            // The holder before us may have removed the file between our open and our lock:
            // then the lock is on a file nobody else will open; take the one at the path.
            let locked = file.metadata().map_err(|e| io_error(&path, e))?;
            let current = std::fs::metadata(&path);
            if current.is_ok_and(|c| c.ino() == locked.ino() && c.dev() == locked.dev()) {
                file.set_len(0).map_err(|e| io_error(&path, e))?;
                file.rewind().map_err(|e| io_error(&path, e))?;
                write!(file, "{}", std::process::id()).map_err(|e| io_error(&path, e))?;
                return Ok(Ok(StateLock { file, path }));
            }
        }
    }

    /// Removes the lock file while still holding it (see `try_take` for the race this leaves).
    fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Invalid(format!("the job's state folder {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_of_one_job_neither_shares_nor_clears_the_first_runs_state() {
        let jobs = tempfile::tempdir().expect("temp dir");
        let dir = jobs.path().join("job-p0");
        let (first, attempt) = State::open(Some(&dir), false).expect("the first run");
        assert_eq!(attempt, 0);
        first.begin(0).expect("begin");
        std::fs::create_dir_all(first.temp()).expect("temp");
        let in_use = first.temp().join("dlflow-worker-0");
        std::fs::write(&in_use, "used by the first run").expect("write");

        // From the start: a folder of its own, not resumable, the first run's files untouched.
        let (second, _) = State::open(Some(&dir), false).expect("the second run");
        assert_ne!(second.dir, dir);
        assert!(!second.keep_on_failure && second.lock.is_none());
        assert!(in_use.is_file(), "the second run cleared the first run's temp folder");
        second.finish(false);

        // Resuming what a live run holds is refused, naming the holder.
        let error = State::open(Some(&dir), true).err().expect("resume refused").to_string();
        assert!(error.contains(&format!("process {}", std::process::id())) && error.contains("job-p0"), "{error}");

        // Once the first run ends (failed, so resumable), the folder and its lock are free.
        first.finish(false);
        assert!(!jobs.path().join("job-p0.lock").exists(), "the lock file is left behind");
        let (resumed, attempt) = State::open(Some(&dir), true).expect("resume");
        assert_eq!((resumed.dir.clone(), attempt), (dir.clone(), 1));
        resumed.finish(true);
        assert!(!dir.exists() && !jobs.path().join("job-p0.lock").exists());
    }
}
