//! A horizontal bar chart: one bar per row (a sweep's accuracy per
//! configuration), long labels on the left, an optional ± spread drawn as
//! an error bar, and the value written at the end of each bar.

use super::axis::Scale;
use super::svg::{text_width, truncate, Svg};

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// The row's label, e.g. `(16, 16, 10) relu,relu 4 ep scaled`.
    pub label: String,
    /// The bar's length (e.g. an accuracy); NaN or infinite: no bar, `n/a`.
    pub value: f64,
    /// A spread (e.g. a standard deviation) drawn as `value ± spread`.
    pub spread: Option<f64>,
}

const WIDTH: f64 = 900.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;
const FONT: f64 = 12.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 56.0;
/// Room on the right for the value written after the longest bar.
const VALUE_ROOM: f64 = 130.0;

/// A value as its label: at most four decimals, without trailing zeros
/// (`0.9416`, `93.75`, `0.5`), whole numbers from 1000 up.
fn value_text(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The spread a bar shows, if it has a usable one.
fn spread(b: &Bar) -> Option<f64> {
    b.spread.filter(|s| s.is_finite()).map(f64::abs)
}

/// The chart as a standalone SVG document: `title` on top, one row per bar,
/// and an x axis (titled `x_label`) that always includes 0.
pub fn bars_svg(title: &str, x_label: &str, rows: &[Bar]) -> String {
    let height = TOP + ROW * rows.len().max(1) as f64 + BOTTOM;
    let mut svg = Svg::new(WIDTH, height);
    svg.text(
        (WIDTH / 2.0, 28.0),
        title,
        16.0,
        "middle",
        &[("class", "title".into()), ("font-weight", "bold".into())],
    );

    // Labels take what they need, up to 45% of the width; longer ones are cut
    // (the whole label shows as a tooltip).
    let widest = rows
        .iter()
        .map(|b| text_width(&b.label, FONT))
        .fold(0.0, f64::max);
    let label_room = widest.min(WIDTH * 0.45);
    let max_chars = (label_room / (FONT * 0.6)).floor().max(4.0) as usize;
    let left = 16.0 + label_room + 10.0;
    let right = WIDTH - VALUE_ROOM;
    let bottom = TOP + ROW * rows.len().max(1) as f64;

    let ends = rows.iter().filter(|b| b.value.is_finite()).flat_map(|b| {
        let s = spread(b).unwrap_or(0.0);
        [b.value - s, b.value + s]
    });
    let (lo, hi) = ends.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let scale = Scale::nice(lo, if hi > lo { hi } else { lo + 1.0 }, 6, false);
    let px = |v: f64| left + scale.fraction(v) * (right - left);

    for (&v, label) in scale.ticks.iter().zip(scale.labels()) {
        let x = px(v);
        svg.line(
            (x, TOP - 4.0),
            (x, bottom),
            "#e6e6e6",
            1.0,
            &[("class", "grid".into())],
        );
        svg.line((x, bottom), (x, bottom + 5.0), "#444444", 1.0, &[]);
        svg.text(
            (x, bottom + 8.0 + FONT),
            &label,
            FONT,
            "middle",
            &[("class", "tick-x".into())],
        );
    }
    svg.line(
        (left, bottom),
        (right, bottom),
        "#444444",
        1.0,
        &[("class", "axis x".into())],
    );
    svg.line(
        (px(0.0), TOP - 4.0),
        (px(0.0), bottom),
        "#444444",
        1.0,
        &[("class", "axis y".into())],
    );
    svg.text(
        ((left + right) / 2.0, height - 12.0),
        x_label,
        13.0,
        "middle",
        &[("class", "axis-label x".into())],
    );
    if rows.is_empty() {
        svg.text(
            ((left + right) / 2.0, TOP + ROW * 0.6),
            "no data",
            13.0,
            "middle",
            &[("class", "no-data".into()), ("fill", "#888888".into())],
        );
    }

    for (i, b) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let mid = y + ROW / 2.0;
        svg.open("g", &[("class", "bar-row".into())]);
        svg.element_with_text("title", &[], &b.label);
        svg.text(
            (left - 10.0, mid + FONT * 0.35),
            &truncate(&b.label, max_chars),
            FONT,
            "end",
            &[("class", "bar-label".into())],
        );
        if b.value.is_finite() {
            let (x0, x1) = (px(0.0), px(b.value));
            svg.rect(
                x0.min(x1),
                mid - BAR / 2.0,
                (x1 - x0).abs(),
                BAR,
                "#4c78a8",
                &[("class", "bar".into()), ("data-value", b.value.to_string())],
            );
            let mut end = x0.max(x1);
            let mut text = value_text(b.value);
            if let Some(s) = spread(b) {
                let (e0, e1) = (px(b.value - s), px(b.value + s));
                let eb = [("class", "error-bar".to_string())];
                svg.line((e0, mid), (e1, mid), "#222222", 1.5, &eb);
                svg.line((e0, mid - 5.0), (e0, mid + 5.0), "#222222", 1.5, &eb);
                svg.line((e1, mid - 5.0), (e1, mid + 5.0), "#222222", 1.5, &eb);
                end = end.max(e1);
                text = format!("{text} ± {}", value_text(s));
            }
            svg.text(
                (end + 6.0, mid + FONT * 0.35),
                &text,
                FONT,
                "start",
                &[("class", "value".into())],
            );
        } else {
            svg.text(
                (px(0.0) + 6.0, mid + FONT * 0.35),
                "n/a",
                FONT,
                "start",
                &[("class", "value".into()), ("fill", "#888888".into())],
            );
        }
        svg.close("g");
    }
    svg.finish()
}
