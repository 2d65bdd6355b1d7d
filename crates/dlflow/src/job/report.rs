//! [`JobReport`]: what a job did, for the caller and the CLI's closing summary.

use std::fmt;
use std::time::Duration;

use dlflow_cluster::{ClusterReport, NodeName};
use dlflow_engine::{EngineReport, EpochReport};
use serde_json::Value;

/// A restart of the cluster after a failure.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The attempt it started (1 for the first restart).
    pub attempt: u32,
    /// The failure that caused it.
    pub cause: String,
    /// Where that attempt's input started: the epoch and the rows skipped (already trained on
    /// according to the restored checkpoints); `None` if it never got that far.
    pub replay: Option<dlflow_engine::Replay>,
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Node processes and start-up times.
    pub cluster: ClusterReport,
    /// Rows fed to each worker in each epoch, and rows trimmed for equal shares.
    pub epochs: Vec<EpochReport>,
    /// Notices the nodes sent (metrics, milestones), in arrival order.
    pub notices: Vec<(NodeName, Value)>,
    /// From the call to the end.
    pub elapsed: Duration,
    /// The restarts after failures, in order (empty when nothing failed).
    pub restarts: Vec<Restart>,
}

impl JobReport {
    pub(crate) fn new(cluster: ClusterReport, engine: EngineReport, notices: Vec<(NodeName, Value)>, elapsed: Duration) -> Self {
        JobReport { cluster, epochs: engine.epochs, notices, elapsed, restarts: Vec::new() }
    }

    /// Rows fed to all workers over all epochs.
    pub fn rows_fed(&self) -> u64 {
        self.epochs.iter().flat_map(|e| &e.rows).sum()
    }

    /// Rows trimmed over all epochs so that every worker took the same number of steps.
    pub fn rows_dropped(&self) -> u64 {
        self.epochs.iter().map(EpochReport::dropped).sum()
    }

    /// The notices of one kind (`event` field), in order.
    pub fn notices_of<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a (NodeName, Value)> + 'a {
        self.notices.iter().filter(move |(_, notice)| notice["event"] == event)
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.cluster.nodes.iter().filter(|(n, _)| n.node_type == dlflow_cluster::NodeType::Worker).count();
        let ps = self.cluster.nodes.len() - workers;
        writeln!(
            f,
            "{workers} worker(s), {ps} ps; registered in {:.2} s; first batch in TF after {}; done in {:.1} s",
            self.cluster.registered_after.as_secs_f64(),
            self.cluster.first_batch_after.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
            self.elapsed.as_secs_f64()
        )?;
        for restart in &self.restarts {
            let cause = restart.cause.lines().next().unwrap_or("");
            write!(f, "restarted as attempt {} after: {cause}", restart.attempt)?;
            if let Some(replay) = &restart.replay {
                write!(f, "; resumed at epoch {}", replay.start_epoch + 1)?;
                if replay.rows_skipped() > 0 {
                    write!(f, ", skipping {} row(s) the restored checkpoints had trained on", replay.rows_skipped())?;
                }
            }
            writeln!(f)?;
        }
        // After a restart the report starts at the epoch the job resumed at.
        let total = self.epochs.last().map_or(0, |e| e.epoch + 1);
        for epoch in &self.epochs {
            let rows: Vec<String> = epoch.rows.iter().map(u64::to_string).collect();
            write!(f, "epoch {}/{total}: rows per worker {}", epoch.epoch + 1, rows.join(" / "))?;
            if epoch.dropped() > 0 {
                write!(f, " ({} row(s) dropped so that every worker takes the same number of steps)", epoch.dropped())?;
            }
            writeln!(f)?;
        }
        if !self.epochs.is_empty() {
            let rate = self.rows_fed() as f64 / self.elapsed.as_secs_f64().max(1e-9);
            writeln!(f, "{} rows fed in all ({rate:.0} rows/s)", self.rows_fed())?;
        }
        Ok(())
    }
}
