//! The loss curve drawn with characters, for a terminal: plain ASCII, so it reads the same in
//! a log file, a CI console or a terminal without Unicode.

use crate::curve::{LossCurve, Panel};

/// Rows of the plot area.
const HEIGHT: usize = 10;
/// One marker per line: the first run (`train`) gets `*`.
const MARKERS: [char; 4] = ['*', 'o', '+', 'x'];
/// Width of the y-axis labels.
const LABEL_WIDTH: usize = 10;

impl LossCurve {
    /// The curve drawn with ASCII characters, `width` columns of plot (at least 10): one chart
    /// per epoch and, when steps were logged, one per step. Empty when there is nothing to draw.
    ///
    /// ```
    /// use dlflow_tensorboard::{LossCurve, ScalarPoint, ScalarSeries};
    ///
    /// let points = [0.9, 0.4, 0.2, 0.1].iter().enumerate()
    ///     .map(|(i, &value)| ScalarPoint { step: i as i64, wall_time: 0.0, value })
    ///     .collect();
    /// let curve = LossCurve::from_series(vec![ScalarSeries { run: "train".into(), tag: "epoch_loss".into(), points }]);
    /// let text = curve.to_text(40);
    /// assert!(text.starts_with("loss per epoch"));
    /// assert!(text.contains("0.9") && text.contains("0.1") && text.contains('*'));
    /// ```
    pub fn to_text(&self, width: usize) -> String {
        self.panels().iter().map(|panel| draw(panel, width.max(10))).collect::<Vec<_>>().join("\n")
    }
}

fn draw(panel: &Panel, width: usize) -> String {
    let ((x_low, x_high), (y_low, y_high)) = panel.bounds();
    let y_of = |value: f64| if panel.log_y { value.log10() } else { value };
    let row_of = |y: f64| (((y_high - y) / (y_high - y_low)) * (HEIGHT - 1) as f64).round().clamp(0.0, (HEIGHT - 1) as f64) as usize;
    let column_of = |x: f64| (((x - x_low) / (x_high - x_low)) * (width - 1) as f64).round().clamp(0.0, (width - 1) as f64) as usize;

    let mut grid = vec![vec![' '; width]; HEIGHT];
    // The first line (`train`) is drawn last, so that it stays visible where lines overlap.
    let marked: Vec<_> = panel.lines.iter().zip(MARKERS.iter().cycle()).collect();
    for ((_, points), marker) in marked.into_iter().rev() {
        let cells: Vec<(usize, usize)> = points.iter().map(|&(x, y)| (column_of(x), row_of(y_of(y)))).collect();
        for pair in cells.windows(2) {
            let ((c0, r0), (c1, r1)) = (pair[0], pair[1]);
            // A line between the two points, one cell per column, with the vertical gaps
            // filled so that steep drops stay connected.
            let mut previous = r0;
            for c in c0..=c1 {
                let t = if c1 == c0 { 1.0 } else { (c - c0) as f64 / (c1 - c0) as f64 };
                let r = (r0 as f64 + t * (r1 as f64 - r0 as f64)).round() as usize;
                for cells in &mut grid[previous.min(r)..=previous.max(r)] {
                    cells[c] = *marker;
                }
                previous = r;
            }
        }
        if let [(c, r)] = cells[..] {
            grid[r][c] = *marker;
        }
    }

    let mut out = panel.title.to_string();
    if panel.log_y {
        out.push_str(" (log scale)");
    }
    if panel.lines.len() > 1 {
        let legend: Vec<String> = panel.lines.iter().zip(MARKERS.iter().cycle()).map(|((name, _), m)| format!("{m} {name}")).collect();
        out.push_str(&format!("   {}", legend.join("  ")));
    }
    out.push('\n');
    for (row, cells) in grid.iter().enumerate() {
        let label = match row {
            0 => number(unscale(y_high, panel.log_y)),
            r if r == HEIGHT - 1 => number(unscale(y_low, panel.log_y)),
            r if r == HEIGHT / 2 => number(unscale(y_high - (y_high - y_low) * r as f64 / (HEIGHT - 1) as f64, panel.log_y)),
            _ => String::new(),
        };
        let line: String = cells.iter().collect();
        out.push_str(&format!("{label:>LABEL_WIDTH$} |{}\n", line.trim_end()));
    }
    out.push_str(&format!("{:>LABEL_WIDTH$} +{}\n", "", "-".repeat(width)));
    let (first, last) = (number(x_low), number(x_high));
    let gap = (width + 1).saturating_sub(first.len() + last.len()).max(1);
    out.push_str(&format!("{:>LABEL_WIDTH$}  {first}{}{last}  {}\n", "", " ".repeat(gap), panel.x_label));
    out
}

fn unscale(y: f64, log: bool) -> f64 {
    if log { 10f64.powf(y) } else { y }
}

/// A short, readable number: 4 significant digits, scientific when very large or small.
pub(crate) fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&magnitude) {
        format!("{value:.2e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
        let text = format!("{value:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalars::{ScalarPoint, ScalarSeries};

    fn curve(lines: &[(&str, &str, &[f64])]) -> LossCurve {
        LossCurve::from_series(
            lines
                .iter()
                .map(|(run, tag, values)| ScalarSeries {
                    run: run.to_string(),
                    tag: tag.to_string(),
                    points: values.iter().enumerate().map(|(i, v)| ScalarPoint { step: i as i64, wall_time: 0.0, value: *v }).collect(),
                })
                .collect(),
        )
    }

    #[test]
    fn a_falling_loss_starts_top_left_and_ends_bottom_right() {
        let text = curve(&[("train", "epoch_loss", &[1.0, 0.6, 0.3, 0.1])]).to_text(30);
        let rows: Vec<&str> = text.lines().skip(1).take(HEIGHT).collect();
        assert_eq!(rows.len(), HEIGHT, "{text}");
        let plot = |row: &str| row.split_once('|').map(|(_, p)| p.to_string()).unwrap_or_default();
        assert!(plot(rows[0]).starts_with('*'), "first point top left:\n{text}");
        assert!(plot(rows[HEIGHT - 1]).ends_with('*') && plot(rows[HEIGHT - 1]).len() == 30, "last point bottom right:\n{text}");
        assert!(rows[0].trim_start().starts_with('1') && rows[HEIGHT - 1].trim_start().starts_with("0.1"), "{text}");
        assert!(text.contains("  1") && text.contains("4  epoch"), "x axis from epoch 1 to 4:\n{text}");
    }

    #[test]
    fn two_runs_get_a_legend_and_steps_a_chart_of_their_own() {
        let text = curve(&[("train", "epoch_loss", &[1.0, 0.5]), ("validation", "epoch_loss", &[1.2, 0.7]), ("train", "batch_loss", &[3.0, 2.0, 1.0])]).to_text(20);
        assert!(text.contains("* train  o validation"), "{text}");
        assert!(text.contains("loss per step") && text.contains("step\n"), "{text}");
        assert!(text.contains('o'));
    }

    #[test]
    fn a_loss_falling_by_decades_is_drawn_on_a_log_scale() {
        let text = curve(&[("train", "epoch_loss", &[0.107, 1e-6, 2.56e-14])]).to_text(20);
        assert!(text.starts_with("loss per epoch (log scale)"), "{text}");
        assert!(text.contains("0.107") && text.contains("2.56e-14"), "{text}");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(0.00123), "0.00123");
        assert_eq!(number(2.5632e-14), "2.56e-14");
        assert_eq!(number(4.0), "4");
    }
}
