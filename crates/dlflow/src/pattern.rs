//! Patterns over time: "these events, in this order, within this time", per key, on event time
//! (seed 003's "Johnny": three expected labels within 60 seconds grant access; a partial match
//! that runs out of time denies it).
//!
//! A [`Pattern`] is a sequence of named steps, each a condition on an event, and a time bound. A
//! [`Matcher`] runs it per key over events in arrival order: an event that meets the first step
//! starts a partial match (unless one is running for that key); an event that meets the next step
//! extends it (other events in between are skipped, Flink's "followed by"); the last step
//! completes it as a [`PatternEvent::Matched`], if it came within the bound of the first event.
//! When the watermark (event time) passes the first event's time plus the bound, a partial match
//! ends as a [`PatternEvent::TimedOut`].
//!
//! ```
//! use std::time::Duration;
//! use dlflow::pattern::{Pattern, PatternEvent};
//!
//! // Digits shown at a door: 3, then 1, then 4, within a minute.
//! let pattern = Pattern::begin("three", |d: &u8| *d == 3)
//!     .followed_by("one", |d| *d == 1)
//!     .followed_by("four", |d| *d == 4)
//!     .within(Duration::from_secs(60));
//! let mut matcher = pattern.matcher::<&str>();
//! let s = |secs: u64| Duration::from_secs(secs);
//! assert!(matcher.on_event("front", s(0), 3).is_empty());
//! assert!(matcher.on_event("front", s(10), 7).is_empty()); // skipped
//! assert!(matcher.on_event("front", s(20), 1).is_empty());
//! let done = matcher.on_event("front", s(30), 4);
//! assert!(matches!(&done[..], [PatternEvent::Matched { key: "front", .. }]));
//!
//! assert!(matcher.on_event("back", s(100), 3).is_empty());
//! let late = matcher.advance_to(s(161));
//! assert!(matches!(&late[..], [PatternEvent::TimedOut { key: "back", .. }]));
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

type Condition<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A sequence of conditions on events, within a time bound. See the [module docs](self).
pub struct Pattern<E> {
    steps: Vec<(String, Condition<E>)>,
    within: Option<Duration>,
}

impl<E> Clone for Pattern<E> {
    fn clone(&self) -> Self {
        Pattern { steps: self.steps.clone(), within: self.within }
    }
}

impl<E> Pattern<E> {
    /// A pattern whose first step, `name`, is an event meeting `condition`.
    pub fn begin(name: impl Into<String>, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Pattern<E> {
        Pattern { steps: vec![(name.into(), Arc::new(condition))], within: None }
    }

    /// Then, later (other events may come in between), an event meeting `condition`.
    pub fn followed_by(mut self, name: impl Into<String>, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Pattern<E> {
        self.steps.push((name.into(), Arc::new(condition)));
        self
    }

    /// The whole match must come within `bound` of its first event (event time).
    pub fn within(mut self, bound: Duration) -> Pattern<E> {
        self.within = Some(bound);
        self
    }

    /// A matcher of this pattern, per key of type `K`.
    pub fn matcher<K: Eq + Hash + Clone>(&self) -> Matcher<K, E> {
        Matcher { pattern: self.clone(), partial: HashMap::new() }
    }
}

/// What a [`Matcher`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternEvent<K, E> {
    /// Every step was met in order, within the bound: the events, with their step names and event
    /// times, in step order.
    Matched {
        /// The key.
        key: K,
        /// `(step, event time, event)` per step.
        events: Vec<(String, Duration, E)>,
    },
    /// The bound ran out (the watermark passed the first event's time plus the bound) with only
    /// these steps met.
    TimedOut {
        /// The key.
        key: K,
        /// The steps met so far.
        events: Vec<(String, Duration, E)>,
    },
}

/// Runs a [`Pattern`] per key. See the [module docs](self).
pub struct Matcher<K, E> {
    pattern: Pattern<E>,
    partial: HashMap<K, Vec<(String, Duration, E)>>,
}

impl<K: Eq + Hash + Clone, E: Clone> Matcher<K, E> {
    /// Feeds one event of `key` at event time `time`; returns what it completed (a match, or a
    /// partial match it proved too slow).
    pub fn on_event(&mut self, key: K, time: Duration, event: E) -> Vec<PatternEvent<K, E>> {
        let mut out = Vec::new();
        let steps = &self.pattern.steps;
        let within = self.pattern.within;
        let partial = self.partial.entry(key.clone()).or_default();
        if let (Some(first), Some(bound)) = (partial.first(), within) {
            if time > first.1 + bound {
                // Past the bound: the partial match has failed, whether or not a watermark said so.
                out.push(PatternEvent::TimedOut { key: key.clone(), events: std::mem::take(partial) });
            }
        }
        let step = partial.len();
        if (steps[step].1)(&event) {
            partial.push((steps[step].0.clone(), time, event));
            if partial.len() == steps.len() {
                out.push(PatternEvent::Matched { key: key.clone(), events: std::mem::take(partial) });
            }
        }
        if self.partial.get(&key).is_some_and(Vec::is_empty) {
            self.partial.remove(&key);
        }
        out
    }

    /// Event time has come to `watermark`: every partial match whose bound ended at or before it
    /// times out.
    pub fn advance_to(&mut self, watermark: Duration) -> Vec<PatternEvent<K, E>> {
        let Some(bound) = self.pattern.within else { return Vec::new() };
        let expired: Vec<K> = self.partial.iter().filter(|(_, p)| p.first().is_some_and(|f| f.1 + bound <= watermark)).map(|(k, _)| k.clone()).collect();
        expired
            .into_iter()
            .filter_map(|key| self.partial.remove(&key).map(|events| PatternEvent::TimedOut { key, events }))
            .collect()
    }

    /// Partial matches in progress.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}
