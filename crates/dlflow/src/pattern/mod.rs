//! Patterns over time: "these events, in this order, within this time", per key, on event time
//! (seed 003's "Johnny": three expected labels within 60 seconds grant access; a partial match
//! that runs out of time denies it).
//!
//! A [`Pattern`] is a sequence of named steps, each a condition on a typed event (and, with
//! [`Pattern::followed_by_with`], on the events matched so far), and a time bound. A [`Matcher`]
//! runs it per key over events in event-time order:
//!
//! - every event that meets the first step starts a partial match;
//! - an event that meets a partial match's next step extends it; other events in between are
//!   skipped (Flink CEP's relaxed contiguity, `followedBy`);
//! - the first partial match to take its last step within the bound (last event time <= first
//!   event time + bound) is reported as [`PatternEvent::Matched`]; every other partial match of
//!   the key that started at or before that event is dropped (Flink's "skip past last event": one
//!   entry, one grant);
//! - when event time passes a partial match's deadline (first event time + bound) it ends as
//!   [`PatternEvent::TimedOut`] with the steps it met.
//!
//! [`Pattern::run`] runs a pattern over a dlflow [`Table`](crate::Table), bounded or a stream: it
//! turns each record into a typed `(key, event)` with a closure over a [`Row`], takes event time
//! from the table's TIMESTAMP column, and orders events by event time using the watermark
//! declared on that column (`OPTIONS ('watermark.column' 'ts', 'watermark.delay' '5s')`), so
//! records out of order by less than the delay match as if they had come in order.
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
//! let late = matcher.advance_to(s(161)); // event time passed 100 s + 60 s
//! assert!(matches!(&late[..], [PatternEvent::TimedOut { key: "back", .. }]));
//! ```
//!
//! A fraud-style rule, whose second step looks at the first event: a card used in two countries
//! within 10 minutes.
//!
//! ```
//! use std::time::Duration;
//! use dlflow::pattern::Pattern;
//!
//! #[derive(Clone, Debug)]
//! struct CardUse { country: &'static str }
//!
//! let pattern = Pattern::begin("first", |_: &CardUse| true)
//!     .followed_by_with("elsewhere", |card_use, so_far| card_use.country != so_far[0].event.country)
//!     .within(Duration::from_secs(600));
//! let mut matcher = pattern.matcher::<u64>();
//! let minutes = |m: u64| Duration::from_secs(60 * m);
//! assert!(matcher.on_event(42, minutes(0), CardUse { country: "FR" }).is_empty());
//! assert!(matcher.on_event(42, minutes(3), CardUse { country: "FR" }).is_empty());
//! let alert = matcher.on_event(42, minutes(8), CardUse { country: "BR" });
//! assert_eq!(alert.len(), 1);
//! assert!(alert[0].is_match());
//! let countries: Vec<_> = alert[0].events().iter().map(|e| e.event.country).collect();
//! assert_eq!(countries, ["FR", "BR"]);
//! ```

mod matcher;
mod row;
mod run;

use std::sync::Arc;
use std::time::Duration;

pub use matcher::Matcher;
pub use row::Row;
pub use run::PatternStream;

/// A condition on an event, given the events the partial match has met so far.
type Condition<E> = Arc<dyn Fn(&E, &[MatchedEvent<E>]) -> bool + Send + Sync>;

/// One named step of a pattern.
struct Step<E> {
    name: Arc<str>,
    condition: Condition<E>,
}

impl<E> Clone for Step<E> {
    fn clone(&self) -> Self {
        Step { name: self.name.clone(), condition: self.condition.clone() }
    }
}

/// A sequence of conditions on events of type `E`, within a time bound. See the
/// [module docs](self).
pub struct Pattern<E> {
    steps: Vec<Step<E>>,
    within: Option<Duration>,
}

impl<E> Clone for Pattern<E> {
    fn clone(&self) -> Self {
        Pattern { steps: self.steps.clone(), within: self.within }
    }
}

impl<E> std::fmt::Debug for Pattern<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<&str> = self.steps.iter().map(|s| &*s.name).collect();
        f.debug_struct("Pattern").field("steps", &steps).field("within", &self.within).finish()
    }
}

impl<E> Pattern<E> {
    /// A pattern whose first step, `name`, is an event meeting `condition`.
    ///
    /// ```
    /// let pattern = dlflow::pattern::Pattern::begin("three", |digit: &u8| *digit == 3);
    /// assert_eq!(pattern.step_names(), ["three"]);
    /// ```
    pub fn begin(name: impl Into<String>, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Pattern<E> {
        Pattern { steps: vec![Step { name: name.into().into(), condition: Arc::new(move |event, _| condition(event)) }], within: None }
    }

    /// Then, later (other events may come in between), an event meeting `condition`.
    ///
    /// ```
    /// let pattern = dlflow::pattern::Pattern::begin("three", |d: &u8| *d == 3).followed_by("one", |d| *d == 1);
    /// assert_eq!(pattern.step_names(), ["three", "one"]);
    /// ```
    pub fn followed_by(self, name: impl Into<String>, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Pattern<E> {
        self.followed_by_with(name, move |event, _| condition(event))
    }

    /// Then, later, an event meeting `condition`, which also sees the events the partial match
    /// has met so far, in step order (Flink's iterative conditions): "used in another country
    /// than the first use".
    ///
    /// ```
    /// // A rising pair: a reading, then a higher one.
    /// let pattern = dlflow::pattern::Pattern::begin("low", |_: &f64| true)
    ///     .followed_by_with("high", |v, so_far| *v > so_far[0].event);
    /// assert_eq!(pattern.step_names(), ["low", "high"]);
    /// ```
    pub fn followed_by_with(
        mut self,
        name: impl Into<String>,
        condition: impl Fn(&E, &[MatchedEvent<E>]) -> bool + Send + Sync + 'static,
    ) -> Pattern<E> {
        self.steps.push(Step { name: name.into().into(), condition: Arc::new(condition) });
        self
    }

    /// The whole match must come within `bound` of its first event (event time): its last event
    /// at most `bound` after its first. Without a bound a partial match never times out.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pattern = dlflow::pattern::Pattern::begin("any", |_: &u8| true).within(Duration::from_secs(60));
    /// assert_eq!(pattern.bound(), Some(Duration::from_secs(60)));
    /// ```
    pub fn within(mut self, bound: Duration) -> Pattern<E> {
        self.within = Some(bound);
        self
    }

    /// The steps' names, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| &*s.name).collect()
    }

    /// The time bound, if any.
    pub fn bound(&self) -> Option<Duration> {
        self.within
    }

    /// A matcher of this pattern, per key of type `K`, fed events one at a time (see
    /// [`Matcher`]); [`Pattern::run`] feeds one from a table.
    pub fn matcher<K: Eq + std::hash::Hash + Clone>(&self) -> Matcher<K, E>
    where
        E: Clone,
    {
        Matcher::new(self.clone())
    }
}

/// An event a match (or partial match) took: the step it met, its event time, the event.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedEvent<E> {
    /// The step's name.
    pub step: Arc<str>,
    /// Event time (since the Unix epoch).
    pub time: Duration,
    /// The event.
    pub event: E,
}

/// What a [`Matcher`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternEvent<K, E> {
    /// Every step was met in order, within the bound: the events, in step order.
    Matched {
        /// The key.
        key: K,
        /// One event per step.
        events: Vec<MatchedEvent<E>>,
    },
    /// Event time passed the bound (first event time + bound) with only these steps met.
    TimedOut {
        /// The key.
        key: K,
        /// The steps met, in order (at least the first).
        events: Vec<MatchedEvent<E>>,
    },
}

impl<K, E> PatternEvent<K, E> {
    /// The key.
    pub fn key(&self) -> &K {
        match self {
            PatternEvent::Matched { key, .. } | PatternEvent::TimedOut { key, .. } => key,
        }
    }

    /// The events taken, in step order.
    pub fn events(&self) -> &[MatchedEvent<E>] {
        match self {
            PatternEvent::Matched { events, .. } | PatternEvent::TimedOut { events, .. } => events,
        }
    }

    /// Whether it is a complete match.
    pub fn is_match(&self) -> bool {
        matches!(self, PatternEvent::Matched { .. })
    }
}
