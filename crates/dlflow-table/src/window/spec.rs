//! [`WindowSpec`]: tumbling, sliding (hop) and session windows over event time.

use std::fmt;
use std::time::Duration;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};

/// How rows are grouped into windows of event time. Times are nanoseconds since the epoch.
///
/// ```
/// use std::time::Duration;
/// use dlflow_table::window::WindowSpec;
///
/// let second = WindowSpec::tumble(Duration::from_secs(1));
/// assert_eq!(second.windows_of(2_500_000_000), vec![(2_000_000_000, 3_000_000_000)]);
/// let hop = WindowSpec::hop(Duration::from_secs(1), Duration::from_secs(2));
/// assert_eq!(hop.windows_of(2_500_000_000), vec![(1_000_000_000, 3_000_000_000), (2_000_000_000, 4_000_000_000)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// Back-to-back windows of `size` (Flink's `TUMBLE(ts, size)`).
    Tumble {
        /// Window length, nanoseconds.
        size: i64,
    },
    /// Windows of `size` starting every `slide` (Flink's `HOP(ts, slide, size)`); a row is in
    /// `size / slide` windows.
    Hop {
        /// Distance between window starts, nanoseconds.
        slide: i64,
        /// Window length, nanoseconds.
        size: i64,
    },
    /// Per key, a window that lasts while rows come less than `gap` apart (Flink's
    /// `SESSION(ts, gap)`); it ends `gap` after its last row.
    Session {
        /// Longest silence inside a session, nanoseconds.
        gap: i64,
    },
}

impl WindowSpec {
    /// Tumbling windows of `size`.
    pub fn tumble(size: Duration) -> WindowSpec {
        WindowSpec::Tumble { size: size.as_nanos() as i64 }
    }

    /// Windows of `size` starting every `slide`.
    pub fn hop(slide: Duration, size: Duration) -> WindowSpec {
        WindowSpec::Hop { slide: slide.as_nanos() as i64, size: size.as_nanos() as i64 }
    }

    /// Session windows closed by a silence of `gap`.
    pub fn session(gap: Duration) -> WindowSpec {
        WindowSpec::Session { gap: gap.as_nanos() as i64 }
    }

    /// Checks the lengths: positive, and a hop's size a multiple of its slide.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(DataFusionError::Plan(format!("window: {what}")));
        match *self {
            WindowSpec::Tumble { size } if size <= 0 => bad("the size of a TUMBLE window must be positive".into()),
            WindowSpec::Hop { slide, size } if slide <= 0 || size <= 0 => bad("the slide and size of a HOP window must be positive".into()),
            WindowSpec::Hop { slide, size } if size % slide != 0 => {
                bad(format!("a HOP window's size ({}) must be a multiple of its slide ({})", nanos(size), nanos(slide)))
            }
            WindowSpec::Session { gap } if gap <= 0 => bad("the gap of a SESSION window must be positive".into()),
            _ => Ok(()),
        }
    }

    /// The `[start, end)` windows a row at `time` belongs to (for sessions: the session it would
    /// open alone).
    pub fn windows_of(&self, time: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowSpec::Tumble { size } => {
                let start = time - time.rem_euclid(size);
                vec![(start, start + size)]
            }
            WindowSpec::Hop { slide, size } => {
                let last = time - time.rem_euclid(slide);
                let mut windows: Vec<(i64, i64)> = (0..size / slide).map(|k| last - k * slide).map(|start| (start, start + size)).collect();
                windows.reverse();
                windows
            }
            WindowSpec::Session { gap } => vec![(time, time + gap)],
        }
    }

    /// The latest end of a window a row at `time` can be in: once the watermark is past it,
    /// the row is late.
    pub fn last_end(&self, time: i64) -> i64 {
        match *self {
            WindowSpec::Tumble { size } => time - time.rem_euclid(size) + size,
            WindowSpec::Hop { slide, .. } => time - time.rem_euclid(slide) + self.size(),
            WindowSpec::Session { gap } => time + gap,
        }
    }

    fn size(&self) -> i64 {
        match *self {
            WindowSpec::Tumble { size } | WindowSpec::Hop { size, .. } => size,
            WindowSpec::Session { gap } => gap,
        }
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WindowSpec::Tumble { size } => write!(f, "TUMBLE({})", nanos(size)),
            WindowSpec::Hop { slide, size } => write!(f, "HOP(slide {}, size {})", nanos(slide), nanos(size)),
            WindowSpec::Session { gap } => write!(f, "SESSION(gap {})", nanos(gap)),
        }
    }
}

fn nanos(n: i64) -> String {
    format!("{:?}", Duration::from_nanos(n.max(0) as u64))
}

/// A SQL interval literal (`INTERVAL '2' SECOND`) as nanoseconds; months cannot be: they have
/// no fixed length.
pub fn interval_nanos(value: &ScalarValue, what: &str) -> Result<i64> {
    let bad = || DataFusionError::Plan(format!("{what}: expected an interval of fixed length such as INTERVAL '1' SECOND, got {value}"));
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => Ok(i64::from(v.days) * 86_400_000_000_000 + v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => Ok(i64::from(v.days) * 86_400_000_000_000 + i64::from(v.milliseconds) * 1_000_000),
        ScalarValue::DurationSecond(Some(v)) => Ok(v * 1_000_000_000),
        ScalarValue::DurationMillisecond(Some(v)) => Ok(v * 1_000_000),
        ScalarValue::DurationMicrosecond(Some(v)) => Ok(v * 1_000),
        ScalarValue::DurationNanosecond(Some(v)) => Ok(*v),
        _ => Err(bad()),
    }
}

/// A duration option such as `'2s'`, `'500ms'`, `'1m'` or `'0'` as nanoseconds.
///
/// ```
/// assert_eq!(dlflow_table::window::parse_duration("2s").unwrap(), 2_000_000_000);
/// assert_eq!(dlflow_table::window::parse_duration("250 ms").unwrap(), 250_000_000);
/// assert!(dlflow_table::window::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (text[..split].trim(), text[split..].trim().to_ascii_lowercase());
    let value: f64 = number.parse().map_err(|_| format!("'{text}': expected a duration such as 2s, 500ms or 1m"))?;
    let scale = match unit.as_str() {
        "" if value == 0.0 => 0.0,
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "sec" | "second" | "seconds" => 1e9,
        "m" | "min" | "minute" | "minutes" => 60e9,
        "h" | "hour" | "hours" => 3600e9,
        _ => return Err(format!("'{text}': expected a duration such as 2s, 500ms or 1m")),
    };
    Ok((value * scale) as i64)
}
