//! A confusion matrix as a heat map: rows are the true classes, columns the
//! predicted ones; each cell is coloured by its share of its row (so a row
//! reads as "where the images of this class went") and shows its count,
//! white on dark cells.

use super::svg::{num, text_width, truncate, Svg};

const FONT: f64 = 12.0;
const TOP: f64 = 64.0;
const GRID: f64 = 480.0;
const MAX_CELL: f64 = 48.0;
const MIN_CELL: f64 = 6.0;

/// The colour scale from 0 (no images) to 1 (the whole row): white to dark blue.
const STOPS: [(f64, [f64; 3]); 3] = [
    (0.0, [247.0, 251.0, 255.0]),
    (0.5, [107.0, 174.0, 214.0]),
    (1.0, [8.0, 48.0, 107.0]),
];

/// The colour of a share in 0..=1, as `#rrggbb`.
pub fn share_colour(share: f64) -> String {
    let t = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (a, b) = if t <= STOPS[1].0 {
        (STOPS[0], STOPS[1])
    } else {
        (STOPS[1], STOPS[2])
    };
    let f = (t - a.0) / (b.0 - a.0);
    let c: Vec<u8> = (0..3)
        .map(|i| (a.1[i] + (b.1[i] - a.1[i]) * f).round() as u8)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Shares above this are drawn on a dark colour: their count is written in white.
const DARK: f64 = 0.45;

/// The heat map as a standalone SVG document. `counts[t][p]` is the number
/// of examples of true class `t` predicted as `p`; `labels` names the
/// classes (a missing label shows the class number; missing counts are 0).
pub fn confusion_svg(title: &str, counts: &[Vec<u64>], labels: &[String]) -> String {
    let k = counts.len();
    let label = |i: usize| truncate(&labels.get(i).cloned().unwrap_or_else(|| i.to_string()), 12);
    let cell = (GRID / k.max(1) as f64).clamp(MIN_CELL, MAX_CELL);
    let side = cell * k as f64;
    let widest = (0..k).map(|i| text_width(&label(i), FONT)).fold(0.0, f64::max);
    let left = 44.0 + widest + 8.0;
    let bar_x = left + side + 24.0;
    let width = (bar_x + 16.0 + 56.0).max(text_width(title, 16.0) + 40.0);
    let height = TOP + side + 64.0;
    let mut svg = Svg::new(width, height);
    svg.text(
        (width / 2.0, 28.0),
        title,
        16.0,
        "middle",
        &[("class", "title".into()), ("font-weight", "bold".into())],
    );

    // Thin white lines between the cells.
    svg.open("g", &[("stroke", "#ffffff".into()), ("stroke-width", "1".into())]);
    for (t, row) in counts.iter().enumerate() {
        let support: u64 = row.iter().sum();
        let y = TOP + t as f64 * cell;
        for p in 0..k {
            let count = row.get(p).copied().unwrap_or(0);
            let share = if support == 0 {
                0.0
            } else {
                count as f64 / support as f64
            };
            let x = left + p as f64 * cell;
            svg.rect(
                x,
                y,
                cell,
                cell,
                &share_colour(share),
                &[
                    ("class", "cell".into()),
                    ("data-true", t.to_string()),
                    ("data-predicted", p.to_string()),
                    ("data-count", count.to_string()),
                ],
            );
            let digits = count.to_string().len() as f64;
            let size = (cell * 0.85 / (digits * 0.6)).min(13.0);
            if size >= 6.0 {
                svg.text(
                    (x + cell / 2.0, y + cell / 2.0 + size * 0.35),
                    &count.to_string(),
                    size,
                    "middle",
                    &[
                        ("class", "count".into()),
                        ("stroke", "none".into()),
                        ("fill", if share > DARK { "#ffffff" } else { "#222222" }.into()),
                    ],
                );
            }
        }
    }
    svg.close("g");
    // Class labels: true classes down the left, predicted ones along the bottom.
    let tick = FONT.min(cell * 0.9);
    for i in 0..k {
        let c = i as f64 * cell + cell / 2.0;
        svg.text(
            (left - 6.0, TOP + c + tick * 0.35),
            &label(i),
            tick,
            "end",
            &[("class", "tick-y".into())],
        );
        svg.text(
            (left + c, TOP + side + 6.0 + tick),
            &label(i),
            tick,
            "middle",
            &[("class", "tick-x".into())],
        );
    }
    svg.rect(
        left,
        TOP,
        side,
        side,
        "none",
        &[("class", "frame".into()), ("stroke", "#444444".into())],
    );
    svg.text(
        (left + side / 2.0, TOP + side + 46.0),
        "predicted label",
        13.0,
        "middle",
        &[("class", "axis-label x".into())],
    );
    let (lx, ly) = (18.0, TOP + side / 2.0);
    svg.text(
        (lx, ly),
        "true label",
        13.0,
        "middle",
        &[
            ("class", "axis-label y".into()),
            ("transform", format!("rotate(-90 {} {})", num(lx), num(ly))),
        ],
    );

    // The colour scale: share of the true class, 0% at the bottom, 100% on top.
    svg.open("defs", &[]);
    svg.open(
        "linearGradient",
        &[
            ("id", "share".into()),
            ("x1", "0".into()),
            ("y1", "1".into()),
            ("x2", "0".into()),
            ("y2", "0".into()),
        ],
    );
    for (at, _) in STOPS {
        svg.element("stop", &[("offset", num(at)), ("stop-color", share_colour(at))]);
    }
    svg.close("linearGradient");
    svg.close("defs");
    svg.rect(
        bar_x,
        TOP,
        16.0,
        side,
        "url(#share)",
        &[("class", "colour-scale".into()), ("stroke", "#444444".into())],
    );
    for (f, text) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        svg.text(
            (bar_x + 22.0, TOP + side * (1.0 - f) + FONT * 0.35),
            text,
            FONT,
            "start",
            &[("class", "scale-label".into())],
        );
    }
    svg.text(
        (bar_x + 8.0, TOP - 10.0),
        "share of row",
        FONT - 1.0,
        "middle",
        &[("class", "scale-title".into())],
    );
    svg.finish()
}
