//! [`Watermarks`]: how far event time has surely come, over several input partitions.

use std::time::{Duration, Instant};

/// A stream's watermark: the largest event time seen minus a declared delay
/// (out-of-orderness), per input partition, and the minimum over partitions. A partition that
/// has sent nothing for `idle_timeout` stops holding the watermark back (until it sends again);
/// a partition that ended holds nothing back. When every partition has ended the watermark is
/// past everything: every open window fires.
///
/// ```
/// use std::time::Duration;
/// use dlflow_table::window::Watermarks;
///
/// let mut watermarks = Watermarks::new(2, 1_000, Duration::from_secs(5));
/// watermarks.observe(0, 10_000);
/// assert_eq!(watermarks.current(), None); // partition 1 has said nothing yet
/// watermarks.observe(1, 4_000);
/// assert_eq!(watermarks.current(), Some(3_000));
/// watermarks.end(1);
/// assert_eq!(watermarks.current(), Some(9_000));
/// ```
#[derive(Debug, Clone)]
pub struct Watermarks {
    delay: i64,
    idle_timeout: Duration,
    partitions: Vec<Partition>,
}

#[derive(Debug, Clone)]
struct Partition {
    max_event_time: Option<i64>,
    last_seen: Instant,
    ended: bool,
}

impl Watermarks {
    /// Watermarks over `partitions` input partitions, `delay` nanoseconds behind the largest
    /// event time, with idle partitions ignored after `idle_timeout`.
    pub fn new(partitions: usize, delay: i64, idle_timeout: Duration) -> Watermarks {
        let now = Instant::now();
        Watermarks { delay, idle_timeout, partitions: vec![Partition { max_event_time: None, last_seen: now, ended: false }; partitions.max(1)] }
    }

    /// Partition `partition` delivered rows up to event time `max_event_time`.
    pub fn observe(&mut self, partition: usize, max_event_time: i64) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.max_event_time = Some(p.max_event_time.map_or(max_event_time, |m| m.max(max_event_time)));
            p.last_seen = Instant::now();
        }
    }

    /// Partition `partition` delivered a batch (maybe with no rows): it is alive.
    pub fn touch(&mut self, partition: usize) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.last_seen = Instant::now();
        }
    }

    /// Partition `partition` has ended.
    pub fn end(&mut self, partition: usize) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.ended = true;
        }
    }

    /// Whether every partition has ended.
    pub fn all_ended(&self) -> bool {
        self.partitions.iter().all(|p| p.ended)
    }

    /// The watermark now: `None` until it can be told (a live partition has not sent an event
    /// yet and is not idle), `Some(i64::MAX)` once everything has ended.
    pub fn current(&self) -> Option<i64> {
        if self.all_ended() {
            return Some(i64::MAX);
        }
        let now = Instant::now();
        let mut watermark: Option<i64> = None;
        let mut holding = 0;
        for p in &self.partitions {
            if p.ended {
                continue;
            }
            let idle = now.duration_since(p.last_seen) >= self.idle_timeout;
            match (p.max_event_time, idle) {
                (_, true) => continue,
                (None, false) => return None,
                (Some(max), false) => {
                    holding += 1;
                    let mark = max.saturating_sub(self.delay);
                    watermark = Some(watermark.map_or(mark, |w| w.min(mark)));
                }
            }
        }
        if holding == 0 {
            // Every live partition is idle: the watermark stands where the data put it.
            return self.partitions.iter().filter_map(|p| p.max_event_time).max().map(|m| m.saturating_sub(self.delay));
        }
        // Ended partitions' events count too: their records are all in.
        watermark
    }

    /// The declared delay, nanoseconds.
    pub fn delay(&self) -> i64 {
        self.delay
    }
}
