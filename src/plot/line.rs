//! A line chart: several series (solid or dashed, distinct colours, with
//! markers), x and y axes with nice ticks and their labels, axis titles, a
//! title and a legend. Points that are NaN or infinite are skipped (the line
//! breaks there). A chart draws into a frame of a canvas, so a figure can
//! hold several charts side by side.

use super::axis::Scale;
use super::svg::{num, text_width, Svg};

/// Distinct colours for series (the "Tableau 10" palette), in order.
pub const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];

/// Series with more points than this are drawn without markers.
const MAX_MARKERS: usize = 60;
const TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 13.0;
const TICK_SIZE: f64 = 12.0;
const LEGEND_ROW: f64 = 18.0;
/// Pixels between the axes and the first and last ticks.
const INSET: f64 = 8.0;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The `(x, y)` points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Index into [`PALETTE`] (wraps around).
    pub color: usize,
}

/// A line chart: title, axis titles and series.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// The title above the chart.
    pub title: String,
    /// The x axis' title.
    pub x_label: String,
    /// The y axis' title.
    pub y_label: String,
    /// The lines, drawn in order and listed in the legend.
    pub series: Vec<Series>,
    /// Whether x only takes whole numbers (epochs): ticks then step by whole numbers.
    pub integer_x: bool,
}

/// A rectangle of the canvas: top-left corner, width and height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

fn finite(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

/// The smallest and largest of `values` (`None` if there are none).
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

impl LineChart {
    /// The chart as a standalone SVG document of `width x height` pixels.
    pub fn to_svg(&self, width: f64, height: f64) -> String {
        let mut svg = Svg::new(width, height);
        self.draw(
            &mut svg,
            Frame {
                x: 0.0,
                y: 0.0,
                w: width,
                h: height,
            },
        );
        svg.finish()
    }

    /// The legend's entries laid out in rows that fit `width`: `(row, x offset)` per series.
    fn legend_layout(&self, width: f64) -> Vec<(usize, f64)> {
        let (mut row, mut x) = (0, 0.0);
        let mut out = Vec::new();
        for s in &self.series {
            let w = 34.0 + text_width(&s.name, TICK_SIZE) + 18.0;
            if x > 0.0 && x + w > width {
                row += 1;
                x = 0.0;
            }
            out.push((row, x));
            x += w;
        }
        out
    }

    /// Draws the chart inside `frame` of `svg`.
    pub fn draw(&self, svg: &mut Svg, frame: Frame) {
        let points = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|p| finite(p))
        };
        let xr = range(points().map(|p| p.0));
        let yr = range(points().map(|p| p.1));
        let x_ticks = ((frame.w / 90.0) as usize).clamp(2, 10);
        let y_ticks = ((frame.h / 55.0) as usize).clamp(2, 10);
        let xs = match xr {
            Some((lo, hi)) => Scale::nice(lo, hi, x_ticks, self.integer_x),
            None => Scale::nice(0.0, 1.0, x_ticks, self.integer_x),
        };
        let ys = match yr {
            Some((lo, hi)) => Scale::nice(lo, hi, y_ticks, false),
            None => Scale::nice(0.0, 1.0, y_ticks, false),
        };
        let y_labels = ys.labels();
        let widest = y_labels
            .iter()
            .map(|l| text_width(l, TICK_SIZE))
            .fold(0.0, f64::max);

        // Title, then the legend under it, then the plot area.
        svg.text(
            (frame.x + frame.w / 2.0, frame.y + 22.0),
            &self.title,
            TITLE_SIZE,
            "middle",
            &[("class", "title".into()), ("font-weight", "bold".into())],
        );
        let legend_left = frame.x + 24.0 + widest + 10.0;
        let layout = self.legend_layout(frame.w - (legend_left - frame.x) - 16.0);
        let legend_rows = layout.iter().map(|&(r, _)| r + 1).max().unwrap_or(0);
        let left = legend_left;
        let right = frame.x + frame.w - 16.0;
        let top = frame.y + 40.0 + legend_rows as f64 * LEGEND_ROW + 8.0;
        let bottom = frame.y + frame.h - 52.0;
        // The data keeps a few pixels off the axes, so no marker sits on one.
        let (pw, ph) = (
            (right - left - 2.0 * INSET).max(1.0),
            (bottom - top - 2.0 * INSET).max(1.0),
        );
        let px = |x: f64| left + INSET + xs.fraction(x) * pw;
        let py = |y: f64| bottom - INSET - ys.fraction(y) * ph;

        for (s, &(row, dx)) in self.series.iter().zip(&layout) {
            let color = PALETTE[s.color % PALETTE.len()];
            let y = frame.y + 40.0 + row as f64 * LEGEND_ROW;
            let x = legend_left + dx;
            svg.open("g", &[("class", "legend-entry".into())]);
            let mut line_attrs = vec![];
            if s.dashed {
                line_attrs.push(("stroke-dasharray", "6 4".to_string()));
            }
            svg.line((x, y - 4.0), (x + 26.0, y - 4.0), color, 2.0, &line_attrs);
            svg.circle((x + 13.0, y - 4.0), 3.0, color, &[]);
            let empty = !s.points.iter().any(finite);
            let name = if empty {
                format!("{} (no data)", s.name)
            } else {
                s.name.clone()
            };
            svg.text(
                (x + 34.0, y),
                &name,
                TICK_SIZE,
                "start",
                &[("class", "legend".into())],
            );
            svg.close("g");
        }

        // Grid lines and ticks.
        for (&v, label) in ys.ticks.iter().zip(&y_labels) {
            let y = py(v);
            svg.line((left, y), (right, y), "#e6e6e6", 1.0, &[("class", "grid".into())]);
            svg.line((left - 5.0, y), (left, y), "#444444", 1.0, &[]);
            svg.text(
                (left - 8.0, y + TICK_SIZE * 0.35),
                label,
                TICK_SIZE,
                "end",
                &[("class", "tick-y".into())],
            );
        }
        for (&v, label) in xs.ticks.iter().zip(xs.labels()) {
            let x = px(v);
            svg.line((x, top), (x, bottom), "#f0f0f0", 1.0, &[("class", "grid".into())]);
            svg.line((x, bottom), (x, bottom + 5.0), "#444444", 1.0, &[]);
            svg.text(
                (x, bottom + 8.0 + TICK_SIZE),
                &label,
                TICK_SIZE,
                "middle",
                &[("class", "tick-x".into())],
            );
        }
        // The axes, over the grid.
        svg.line(
            (left, bottom),
            (right, bottom),
            "#444444",
            1.0,
            &[("class", "axis x".into())],
        );
        svg.line(
            (left, top),
            (left, bottom),
            "#444444",
            1.0,
            &[("class", "axis y".into())],
        );
        svg.text(
            ((left + right) / 2.0, frame.y + frame.h - 12.0),
            &self.x_label,
            LABEL_SIZE,
            "middle",
            &[("class", "axis-label x".into())],
        );
        let (lx, ly) = (frame.x + 16.0, (top + bottom) / 2.0);
        svg.text(
            (lx, ly),
            &self.y_label,
            LABEL_SIZE,
            "middle",
            &[
                ("class", "axis-label y".into()),
                ("transform", format!("rotate(-90 {} {})", num(lx), num(ly))),
            ],
        );
        if xr.is_none() {
            svg.text(
                ((left + right) / 2.0, (top + bottom) / 2.0),
                "no data",
                LABEL_SIZE,
                "middle",
                &[("class", "no-data".into()), ("fill", "#888888".into())],
            );
        }

        // The series: one path each ("M" starts a piece, "L" continues it), then markers.
        for s in &self.series {
            let color = PALETTE[s.color % PALETTE.len()];
            let mut d = String::new();
            let mut pen_down = false;
            for p in &s.points {
                if finite(p) {
                    d.push_str(if pen_down { " L" } else { " M" });
                    d.push_str(&format!("{} {}", num(px(p.0)), num(py(p.1))));
                    pen_down = true;
                } else {
                    pen_down = false;
                }
            }
            let mut attrs = vec![
                ("class", "series".to_string()),
                ("data-name", s.name.clone()),
                ("d", d.trim_start().to_string()),
                ("fill", "none".into()),
                ("stroke", color.into()),
                ("stroke-width", "2".into()),
                ("stroke-linejoin", "round".into()),
            ];
            if s.dashed {
                attrs.push(("stroke-dasharray", "6 4".into()));
            }
            svg.element("path", &attrs);
            let finite_points: Vec<_> = s.points.iter().filter(|p| finite(p)).collect();
            if finite_points.len() <= MAX_MARKERS {
                for p in finite_points {
                    svg.circle((px(p.0), py(p.1)), 3.0, color, &[("class", "marker".into())]);
                }
            }
        }
    }
}
