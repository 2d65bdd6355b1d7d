//! [`Matcher`]: a pattern's partial matches per key, fed events in event-time order.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::{MatchedEvent, Pattern, PatternEvent};

/// A partial match: the events met so far and when its time runs out.
struct Partial<E> {
    /// Creation order, for a stable order among partial matches that time out together.
    seq: u64,
    /// First event time + bound; `None` without a bound.
    deadline: Option<Duration>,
    events: Vec<MatchedEvent<E>>,
}

/// Runs a [`Pattern`] per key. See the [module docs](super) for the rules.
///
/// Give it events in event-time order ([`Pattern::run`](super::Pattern::run) does, from a
/// table, using the watermark), and call [`Matcher::advance_to`] when event time moves on
/// without an event (a watermark), so that partial matches time out.
///
/// ```
/// use std::time::Duration;
/// use dlflow::pattern::Pattern;
///
/// let pattern = Pattern::begin("a", |c: &char| *c == 'a').followed_by("b", |c| *c == 'b').within(Duration::from_secs(5));
/// let mut matcher = pattern.matcher::<u32>();
/// matcher.on_event(1, Duration::from_secs(0), 'a');
/// matcher.on_event(2, Duration::from_secs(1), 'a');
/// assert_eq!(matcher.pending(), 2);
/// // Deadlines are 5 s and 6 s: at 5.5 s only key 1's has passed.
/// let timed_out = matcher.advance_to(Duration::from_millis(5500));
/// assert_eq!(timed_out.iter().map(|t| *t.key()).collect::<Vec<_>>(), [1]);
/// ```
pub struct Matcher<K, E> {
    pattern: Pattern<E>,
    partials: HashMap<K, Vec<Partial<E>>>,
    next_seq: u64,
}

impl<K: Eq + Hash + Clone, E: Clone> Matcher<K, E> {
    pub(super) fn new(pattern: Pattern<E>) -> Matcher<K, E> {
        Matcher { pattern, partials: HashMap::new(), next_seq: 0 }
    }

    /// Takes one event of `key` at event time `time`; returns what it ended, in order: partial
    /// matches of this key whose deadline it is past (timed out), then the match it completed.
    pub fn on_event(&mut self, key: K, time: Duration, event: E) -> Vec<PatternEvent<K, E>> {
        let mut out = Vec::new();
        let steps = &self.pattern.steps;
        let partials = self.partials.entry(key.clone()).or_default();
        // A partial match whose deadline is before this event can never complete.
        out.extend(take_expired(partials, time).into_iter().map(|p| PatternEvent::TimedOut { key: key.clone(), events: p.events }));

        let mut completed = None;
        for (i, partial) in partials.iter_mut().enumerate() {
            let step = &steps[partial.events.len()];
            if (step.condition)(&event, &partial.events) {
                partial.events.push(MatchedEvent { step: step.name.clone(), time, event: event.clone() });
                if partial.events.len() == steps.len() {
                    completed = Some(i);
                    break;
                }
            }
        }
        if completed.is_none() && (steps[0].condition)(&event, &[]) {
            let deadline = self.pattern.within.map(|bound| time.saturating_add(bound));
            partials.push(Partial { seq: self.next_seq, deadline, events: vec![MatchedEvent { step: steps[0].name.clone(), time, event }] });
            self.next_seq += 1;
            if steps.len() == 1 {
                completed = Some(partials.len() - 1);
            }
        }
        if let Some(i) = completed {
            let matched = partials.swap_remove(i);
            // Skip past the last event: every other partial match of the key started at or
            // before it, so none may reuse its events.
            partials.clear();
            out.push(PatternEvent::Matched { key: key.clone(), events: matched.events });
        }
        if partials.is_empty() {
            self.partials.remove(&key);
        }
        out
    }

    /// Event time has reached `watermark` (every event before it has been fed): every partial
    /// match whose deadline is before it times out, earliest deadline first.
    pub fn advance_to(&mut self, watermark: Duration) -> Vec<PatternEvent<K, E>> {
        let mut expired: Vec<(Duration, u64, K, Vec<MatchedEvent<E>>)> = Vec::new();
        self.partials.retain(|key, partials| {
            for partial in take_expired(partials, watermark) {
                expired.push((partial.deadline.unwrap_or(Duration::MAX), partial.seq, key.clone(), partial.events));
            }
            !partials.is_empty()
        });
        expired.sort_by_key(|(deadline, seq, ..)| (*deadline, *seq));
        expired.into_iter().map(|(_, _, key, events)| PatternEvent::TimedOut { key, events }).collect()
    }

    /// Partial matches in progress, over all keys.
    pub fn pending(&self) -> usize {
        self.partials.values().map(Vec::len).sum()
    }
}

/// Removes and returns the partial matches whose deadline is before `time`, in order.
fn take_expired<E>(partials: &mut Vec<Partial<E>>, time: Duration) -> Vec<Partial<E>> {
    let (expired, live) = std::mem::take(partials).into_iter().partition(|p| p.deadline.is_some_and(|d| d < time));
    *partials = live;
    expired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// The Johnny door: 3, 1, 4 within 60 s.
    fn door() -> Pattern<u8> {
        Pattern::begin("three", |d: &u8| *d == 3).followed_by("one", |d| *d == 1).followed_by("four", |d| *d == 4).within(secs(60.0))
    }

    /// `(decision, key, times of the events taken)`, one per reported event.
    fn summary(events: &[PatternEvent<&'static str, u8>]) -> Vec<(&'static str, &'static str, Vec<f64>)> {
        events
            .iter()
            .map(|e| (if e.is_match() { "GRANTED" } else { "DENIED" }, *e.key(), e.events().iter().map(|m| m.time.as_secs_f64()).collect()))
            .collect()
    }

    /// Gives it `(time, key, digit)` in order, advancing event time to each event first (as the
    /// table runner does), then to `end`.
    fn play(pattern: &Pattern<u8>, schedule: &[(f64, &'static str, u8)], end: f64) -> Vec<PatternEvent<&'static str, u8>> {
        let mut matcher = pattern.matcher();
        let mut out = Vec::new();
        for &(time, key, digit) in schedule {
            out.extend(matcher.advance_to(secs(time)));
            out.extend(matcher.on_event(key, secs(time), digit));
        }
        out.extend(matcher.advance_to(secs(end)));
        assert_eq!(matcher.pending(), 0, "every partial match ended by {end}");
        out
    }

    #[test]
    fn a_door_grants_in_order_within_the_bound_and_denies_when_time_runs_out() {
        let schedule = [
            // front: 3, 1, 4 with a wrong digit in between: granted at 25.
            (0.0, "front", 3),
            (10.0, "front", 7),
            (20.0, "front", 1),
            (25.0, "front", 4),
            // back: 3, 1, and the 4 comes too late (61 s after the 3): denied at the deadline,
            // then the 4 alone starts nothing.
            (30.0, "back", 3),
            (40.0, "back", 1),
            (91.0, "back", 4),
            // front again: 1 and 4 before any 3 start nothing; then 3, 1, 4 exactly 60 s after
            // the 3 (the bound is inclusive): granted.
            (100.0, "front", 1),
            (101.0, "front", 4),
            (110.0, "front", 3),
            (150.0, "front", 1),
            (170.0, "front", 4),
            // side: a lone 3: denied when event time passes 200 + 60.
            (200.0, "side", 3),
        ];
        assert_eq!(
            summary(&play(&door(), &schedule, 300.0)),
            vec![
                ("GRANTED", "front", vec![0.0, 20.0, 25.0]),
                ("DENIED", "back", vec![30.0, 40.0]),
                ("GRANTED", "front", vec![110.0, 150.0, 170.0]),
                ("DENIED", "side", vec![200.0]),
            ]
        );
    }

    #[test]
    fn every_first_step_starts_a_partial_match_and_a_match_ends_the_others() {
        let schedule = [
            // Two 3s, then 1 and 4: one grant (the older attempt), the younger one is dropped.
            (0.0, "front", 3),
            (5.0, "front", 3),
            (10.0, "front", 1),
            (20.0, "front", 4),
            // A 3 that times out while a later 3 goes on to a grant: denied at 60+, granted after.
            (100.0, "front", 3),
            (150.0, "front", 3),
            (170.0, "front", 1),
            (180.0, "front", 4),
            // Two lone 3s: each is an attempt that times out.
            (300.0, "front", 3),
            (301.0, "front", 3),
        ];
        assert_eq!(
            summary(&play(&door(), &schedule, 500.0)),
            vec![
                ("GRANTED", "front", vec![0.0, 10.0, 20.0]),
                ("DENIED", "front", vec![100.0]),
                ("GRANTED", "front", vec![150.0, 170.0, 180.0]),
                ("DENIED", "front", vec![300.0]),
                ("DENIED", "front", vec![301.0]),
            ]
        );
    }

    #[test]
    fn the_deadline_is_inclusive_for_events_and_exclusive_for_the_watermark() {
        let mut matcher = door().matcher::<&str>();
        matcher.on_event("k", secs(0.0), 3);
        matcher.on_event("k", secs(30.0), 1);
        // The watermark at the deadline: an event at 60 s may still come.
        assert!(matcher.advance_to(secs(60.0)).is_empty());
        let granted = matcher.on_event("k", secs(60.0), 4);
        assert_eq!(summary(&granted), vec![("GRANTED", "k", vec![0.0, 30.0, 60.0])]);

        matcher.on_event("k", secs(100.0), 3);
        matcher.on_event("k", secs(110.0), 1);
        // An event after the deadline ends the attempt before it is looked at.
        let denied = matcher.on_event("k", secs(160.001), 4);
        assert_eq!(summary(&denied), vec![("DENIED", "k", vec![100.0, 110.0])]);
        assert_eq!(matcher.pending(), 0);
    }

    #[test]
    fn timeouts_across_keys_come_in_deadline_order() {
        let mut matcher = door().matcher::<&str>();
        for (time, key) in [(5.0, "c"), (1.0, "b"), (3.0, "a"), (3.0, "d")] {
            matcher.on_event(key, secs(time), 3);
        }
        let timed_out = matcher.advance_to(secs(1000.0));
        assert_eq!(summary(&timed_out).iter().map(|(_, k, _)| *k).collect::<Vec<_>>(), ["b", "a", "d", "c"]);
    }

    #[test]
    fn a_card_used_in_two_countries_within_ten_minutes_raises_one_alert() {
        #[derive(Debug, Clone, PartialEq)]
        struct CardUse {
            country: &'static str,
        }
        let fraud = Pattern::begin("first", |_: &CardUse| true)
            .followed_by_with("elsewhere", |u, so_far| u.country != so_far[0].event.country)
            .within(Duration::from_secs(600));
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let mut matcher = fraud.matcher::<u32>();
        let mut alerts = Vec::new();
        let uses = [(7, 0, "FR"), (7, 2, "FR"), (9, 3, "US"), (7, 9, "DE"), (7, 30, "DE"), (9, 31, "US"), (7, 41, "FR"), (9, 50, "MX")];
        for (card, minute, country) in uses {
            for event in matcher.advance_to(minutes(minute)).into_iter().chain(matcher.on_event(card, minutes(minute), CardUse { country })) {
                if let PatternEvent::Matched { key, events } = event {
                    alerts.push((key, events.iter().map(|e| (e.time.as_secs() / 60, e.event.country)).collect::<Vec<_>>()));
                }
            }
        }
        // Card 7: FR at 0 then DE at 9 (one alert, the FR at 2 is not reported again); DE at 30
        // then FR at 41 is 11 minutes: no alert. Card 9: US at 31 then MX at 50: 19 minutes.
        assert_eq!(alerts, vec![(7, vec![(0, "FR"), (9, "DE")])]);
    }

    #[test]
    fn without_a_bound_a_partial_match_waits_forever_and_one_step_matches_at_once() {
        let pattern = Pattern::begin("a", |c: &char| *c == 'a').followed_by("b", |c| *c == 'b');
        let mut matcher = pattern.matcher::<()>();
        matcher.on_event((), secs(0.0), 'a');
        assert!(matcher.advance_to(Duration::MAX).is_empty());
        assert!(matcher.on_event((), secs(1e6), 'b')[0].is_match());

        let single = Pattern::begin("alarm", |v: &i32| *v > 100).within(secs(1.0));
        let mut matcher = single.matcher::<()>();
        assert!(matcher.on_event((), secs(0.0), 5).is_empty());
        let matched = matcher.on_event((), secs(1.0), 101);
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].events()[0].event, 101);
        assert_eq!(&*matched[0].events()[0].step, "alarm");
        assert_eq!(matcher.pending(), 0);
    }
}
