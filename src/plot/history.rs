//! The training-curves figure of a run: loss per epoch and accuracy per
//! epoch side by side, training solid and validation dashed, as Keras users
//! plot `history.history`.

use super::line::{Frame, LineChart, Series};
use super::svg::Svg;

/// One epoch of a run's history (the caller converts its own records).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// The epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Training accuracy over the epoch.
    pub accuracy: f64,
    /// Loss on the validation data, if there was any.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation data, if there was any.
    pub val_accuracy: Option<f64>,
}

/// Width and height of the figure, in pixels.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 440.0;

fn panel(
    title: &str,
    y_label: &str,
    epochs: &[EpochPoint],
    train: fn(&EpochPoint) -> f64,
    val: fn(&EpochPoint) -> Option<f64>,
) -> LineChart {
    let mut series = vec![Series {
        name: "training".into(),
        points: epochs.iter().map(|e| (e.epoch as f64, train(e))).collect(),
        dashed: false,
        color: 0,
    }];
    if epochs.iter().any(|e| val(e).is_some()) {
        series.push(Series {
            name: "validation".into(),
            // An epoch without a validation value is a gap in the line.
            points: epochs
                .iter()
                .map(|e| (e.epoch as f64, val(e).unwrap_or(f64::NAN)))
                .collect(),
            dashed: true,
            color: 1,
        });
    }
    LineChart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        series,
        integer_x: true,
    }
}

/// The figure as a standalone SVG document: `title` on top, then two panels,
/// loss (left) and accuracy (right), each with training and, when any epoch
/// has one, validation. Non-finite values are skipped.
pub fn history_svg(title: &str, epochs: &[EpochPoint]) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT);
    svg.text(
        (WIDTH / 2.0, 26.0),
        title,
        18.0,
        "middle",
        &[("class", "figure-title".into()), ("font-weight", "bold".into())],
    );
    let top = 36.0;
    let half = WIDTH / 2.0;
    let loss = panel("Loss", "loss", epochs, |e| e.loss, |e| e.val_loss);
    let acc = panel("Accuracy", "accuracy", epochs, |e| e.accuracy, |e| e.val_accuracy);
    for (i, chart) in [loss, acc].iter().enumerate() {
        svg.open("g", &[("class", "panel".into())]);
        chart.draw(
            &mut svg,
            Frame {
                x: i as f64 * half,
                y: top,
                w: half,
                h: HEIGHT - top,
            },
        );
        svg.close("g");
    }
    svg.finish()
}
