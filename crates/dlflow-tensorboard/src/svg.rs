//! The loss curve as an SVG image, drawn with plotters' SVG backend (text is written as SVG
//! `<text>`, so no font library is needed), with the numbers it shows kept inside it.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::curve::{LossCurve, Panel};
use crate::error::{Error, Result};
use crate::scalars::ScalarSeries;
use crate::text::number;

/// Width of the image, and height of one chart.
const WIDTH: u32 = 800;
const PANEL_HEIGHT: u32 = 400;
/// One colour per line: the first run (`train`) is blue.
const COLOURS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];
/// The id of the element that holds the curve's numbers.
pub const DATA_ELEMENT_ID: &str = "dlflow-loss-data";

impl LossCurve {
    /// The curve as an SVG document: a chart per epoch and, when steps were logged, one per
    /// step. The values drawn are kept in the document as JSON, in
    /// `<desc id="dlflow-loss-data">`: `{"per_epoch": [{"run", "tag", "steps", "values"}],
    /// "per_step": [...]}`, steps as the event files have them (epochs from 0).
    ///
    /// ```
    /// use dlflow_tensorboard::{LossCurve, ScalarPoint, ScalarSeries};
    ///
    /// let points = vec![ScalarPoint { step: 0, wall_time: 0.0, value: 0.5 }, ScalarPoint { step: 1, wall_time: 0.0, value: 0.25 }];
    /// let curve = LossCurve::from_series(vec![ScalarSeries { run: "train".into(), tag: "epoch_loss".into(), points }]);
    /// let svg = curve.to_svg()?;
    /// assert!(svg.starts_with("<svg") && svg.contains("loss per epoch") && svg.contains(r#""values":[0.5,0.25]"#));
    /// # Ok::<(), dlflow_tensorboard::Error>(())
    /// ```
    pub fn to_svg(&self) -> Result<String> {
        let panels = self.panels();
        let mut svg = String::new();
        {
            let height = PANEL_HEIGHT * panels.len().max(1) as u32;
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            let areas = root.split_evenly((panels.len().max(1), 1));
            for (panel, area) in panels.iter().zip(&areas) {
                let ((x_low, x_high), (y_low, y_high)) = panel.bounds();
                let x = x_low..x_high;
                if panel.log_y {
                    let y = (10f64.powf(y_low)..10f64.powf(y_high)).log_scale();
                    draw_panel(area, panel, x, y)?;
                } else {
                    draw_panel(area, panel, x, y_low..y_high)?;
                }
            }
            root.present().map_err(draw_error)?;
        }
        Ok(with_data(svg, self))
    }

    /// Writes [`to_svg`](Self::to_svg) to `path`, atomically (a temporary file beside it,
    /// renamed), with the permissions the umask gives new files.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        let svg = self.to_svg()?;
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut file = tempfile::Builder::new()
            .prefix(".dlflow-loss-")
            .suffix(".svg.tmp")
            .permissions(new_file_permissions())
            .tempfile_in(dir)
            .map_err(io)?;
        file.write_all(svg.as_bytes()).map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// rw for everyone, less the umask (applied by the system when the file is created).
#[cfg(unix)]
fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

fn draw_panel<DB, Y>(area: &DrawingArea<DB, Shift>, panel: &Panel, x: Range<f64>, y: Y) -> Result<()>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let title = if panel.log_y { format!("{} (log scale)", panel.title) } else { panel.title.to_string() };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(draw_error)?;
    // Whole epochs and steps on x; short numbers on y (a log axis otherwise prints float noise
    // such as 1.0000000000000001e-7).
    let x_label = |x: &f64| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() };
    let y_label = |y: &f64| number(*y);
    chart
        .configure_mesh()
        .x_desc(panel.x_label)
        .y_desc("loss")
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()
        .map_err(draw_error)?;
    for ((name, points), colour) in panel.lines.iter().zip(COLOURS.iter().cycle()) {
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(draw_error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if points.len() <= 50 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(draw_error)?;
        }
    }
    if panel.lines.len() > 1 {
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(draw_error)?;
    }
    Ok(())
}

fn draw_error(error: impl std::fmt::Display) -> Error {
    Error::Draw(error.to_string())
}

/// The SVG with the curve's numbers inserted as its first child.
fn with_data(svg: String, curve: &LossCurve) -> String {
    let series = |list: &[ScalarSeries]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|s| {
                serde_json::json!({
                    "run": s.run,
                    "tag": s.tag,
                    "steps": s.points.iter().map(|p| p.step).collect::<Vec<_>>(),
                    "values": s.points.iter().map(|p| p.value).collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    let data = serde_json::json!({ "per_epoch": series(&curve.per_epoch), "per_step": series(&curve.per_step) });
    let escaped = data.to_string().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let element = format!("\n<desc id=\"{DATA_ELEMENT_ID}\">{escaped}</desc>");
    match svg.find("<svg").and_then(|start| svg[start..].find('>').map(|end| start + end + 1)) {
        Some(at) => format!("{}{element}{}", &svg[..at], &svg[at..]),
        None => svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalars::ScalarPoint;

    fn curve(values: &[f64], steps: &[f64]) -> LossCurve {
        let series = |tag: &str, values: &[f64]| ScalarSeries {
            run: "train".into(),
            tag: tag.into(),
            points: values.iter().enumerate().map(|(i, v)| ScalarPoint { step: i as i64, wall_time: 0.0, value: *v }).collect(),
        };
        let mut list = vec![series("epoch_loss", values)];
        if !steps.is_empty() {
            list.push(series("batch_loss", steps));
        }
        LossCurve::from_series(list)
    }

    #[test]
    fn the_svg_has_a_chart_per_kind_a_polyline_per_series_and_its_numbers() {
        let svg = curve(&[0.107, 1e-6, 2.5632e-14], &[0.3, 0.2, 0.1, 0.05]).to_svg().expect("svg");
        assert!(svg.contains("loss per epoch (log scale)") && svg.contains("loss per step"), "{svg}");
        // Series are drawn 2 px wide (axes and ticks 1 px).
        assert_eq!(svg.matches(r#"stroke-width="2" points="#).count(), 2, "{svg}");
        assert!(svg.contains(r#"<desc id="dlflow-loss-data">{"per_epoch":[{"run":"train","steps":[0,1,2],"tag":"epoch_loss","values":[0.107,1e-6,2.5632e-14]}]"#), "{svg}");
        assert!(!svg.contains("font-face") && !svg.contains("<image"), "text stays text");
    }

    #[test]
    fn written_files_are_complete_and_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("linear.loss.svg");
        curve(&[1.0, 0.5], &[]).write_svg(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.trim_end().ends_with("</svg>"), "{text}");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_ne!(mode, 0o600, "not tempfile's private mode");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "no temp file left");

        let error = curve(&[1.0], &[]).write_svg(Path::new("/nonexistent/dir/loss.svg")).expect_err("missing dir").to_string();
        assert!(error.contains("/nonexistent/dir/loss.svg"), "{error}");
    }
}
