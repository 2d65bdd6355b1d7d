//! [`LossCurve`]: the loss series of a training run, ready to draw.

use std::path::Path;

use crate::error::Result;
use crate::scalars::{ScalarSeries, read_scalars};

/// Tags holding the loss per epoch: what Keras's TensorBoard callback writes.
const EPOCH_TAGS: &[&str] = &["epoch_loss"];
/// Tags holding the loss per step: Keras's `batch_loss`, or a plain `loss` an entry logs itself.
const STEP_TAGS: &[&str] = &["batch_loss", "loss"];

/// A training run's loss, read from its TensorBoard event files: per epoch and, where the
/// entry logged it, per step; one line per run (`train`, `validation`).
///
/// ```no_run
/// use dlflow_tensorboard::LossCurve;
///
/// let curve = LossCurve::read("/tmp/linear.tensorboard".as_ref())?;
/// if !curve.is_empty() {
///     eprint!("{}", curve.to_text(60));          // drawn with characters, for a terminal
///     curve.write_svg("/tmp/linear.loss.svg".as_ref())?;
/// }
/// # Ok::<(), dlflow_tensorboard::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossCurve {
    /// `epoch_loss`, one series per run; the steps are epochs counted from 0 (drawn from 1,
    /// as dlflow counts epochs).
    pub per_epoch: Vec<ScalarSeries>,
    /// `batch_loss` (or `loss`), one series per run; the steps are optimizer steps.
    pub per_step: Vec<ScalarSeries>,
}

/// One chart: lines over a shared x axis.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    pub title: &'static str,
    pub x_label: &'static str,
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
    /// Draw y on a log scale: every value is positive and they span two decades or more.
    pub log_y: bool,
}

impl LossCurve {
    /// The loss series in the log directory `dir` (see [`read_scalars`]).
    pub fn read(dir: &Path) -> Result<LossCurve> {
        Ok(Self::from_series(read_scalars(dir)?))
    }

    /// Picks the loss series out of `series`.
    pub fn from_series(series: Vec<ScalarSeries>) -> LossCurve {
        let mut curve = LossCurve::default();
        for s in series.into_iter().filter(|s| !s.points.is_empty()) {
            if EPOCH_TAGS.contains(&s.tag.as_str()) {
                curve.per_epoch.push(s);
            } else if STEP_TAGS.contains(&s.tag.as_str()) {
                curve.per_step.push(s);
            }
        }
        curve
    }

    /// Whether there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.per_epoch.is_empty() && self.per_step.is_empty()
    }

    /// The charts to draw: per epoch, then per step, each only if logged.
    pub(crate) fn panels(&self) -> Vec<Panel> {
        let mut panels = Vec::new();
        if !self.per_epoch.is_empty() {
            panels.push(Panel::new("loss per epoch", "epoch", &self.per_epoch, 1.0));
        }
        if !self.per_step.is_empty() {
            panels.push(Panel::new("loss per step", "step", &self.per_step, 0.0));
        }
        panels
    }
}

impl Panel {
    fn new(title: &'static str, x_label: &'static str, series: &[ScalarSeries], x_offset: f64) -> Panel {
        let lines: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|s| {
                let points = s.points.iter().filter(|p| p.value.is_finite()).map(|p| (p.step as f64 + x_offset, p.value)).collect();
                (s.run.clone(), points)
            })
            .collect();
        let values = || lines.iter().flat_map(|(_, points)| points.iter().map(|p| p.1));
        let (low, high) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let log_y = low > 0.0 && high / low >= 100.0;
        Panel { title, x_label, lines, log_y }
    }

    /// The x range and the y range (in log10 when `log_y`), never empty.
    pub fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        let points = || self.lines.iter().flat_map(|(_, points)| points.iter().copied());
        let fold = |f: fn((f64, f64)) -> f64| {
            points().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
        };
        let widen = |(lo, hi): (f64, f64), pad: f64| {
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
                (lo - pad, hi + pad)
            } else {
                (lo, hi)
            }
        };
        let x = widen(fold(|p| p.0), 0.5);
        let y = if self.log_y { widen(fold(|p| p.1.log10()), 0.5) } else { widen(fold(|p| p.1), (fold(|p| p.1).0.abs() * 0.1).max(1e-12)) };
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalars::ScalarPoint;

    fn series(run: &str, tag: &str, values: &[f64]) -> ScalarSeries {
        let points = values.iter().enumerate().map(|(i, v)| ScalarPoint { step: i as i64, wall_time: 0.0, value: *v }).collect();
        ScalarSeries { run: run.into(), tag: tag.into(), points }
    }

    #[test]
    fn loss_tags_are_sorted_into_epochs_and_steps_other_tags_are_left_out() {
        let curve = LossCurve::from_series(vec![
            series("train", "epoch_loss", &[1.0, 0.5]),
            series("train", "epoch_mae", &[1.0]),
            series("train", "batch_loss", &[2.0, 1.0, 0.5]),
            series("validation", "epoch_loss", &[1.5]),
        ]);
        assert_eq!(curve.per_epoch.iter().map(|s| s.run.as_str()).collect::<Vec<_>>(), ["train", "validation"]);
        assert_eq!(curve.per_step.len(), 1);
        let panels = curve.panels();
        assert_eq!(panels[0].lines[0].1, vec![(1.0, 1.0), (2.0, 0.5)], "epochs are drawn from 1");
        assert!(LossCurve::from_series(vec![series("train", "epoch_mae", &[1.0])]).is_empty());
    }

    #[test]
    fn the_y_axis_is_logarithmic_only_for_positive_values_spanning_two_decades() {
        let panel = |values: &[f64]| LossCurve::from_series(vec![series("train", "epoch_loss", values)]).panels().remove(0);
        assert!(panel(&[0.1, 2.5e-14]).log_y);
        assert!(!panel(&[1.0, 0.05]).log_y);
        assert!(!panel(&[1.0, 0.0]).log_y);
        let flat = panel(&[3.0, 3.0]);
        let (_, (low, high)) = flat.bounds();
        assert!(low < 3.0 && high > 3.0, "a flat line gets a visible range: {low}..{high}");
    }
}
