//! The workshop's trials table, written the way the workshop writes it:
//! `(16, 16, 10) | ReLU, ReLU, softmax | 4 | Scaled inputs | 93%`, with
//! validation accuracy, parameters and training time added; as Markdown, as
//! CSV (the same cells) and as a blank handout.

use std::fmt::Write as _;

use super::grid::Trial;
use crate::nn::spec::LayerKind;
use crate::nn::{Activation, OptimizerKind};

/// The workshop's columns, then the ones sweep adds.
pub const HEADER: [&str; 8] = [
    "Network architecture",
    "Activation functions",
    "Epochs",
    "Other comments",
    "Accuracy",
    "Validation accuracy",
    "Parameters",
    "Training time",
];

/// How many of [`HEADER`]'s columns the workshop's own table has.
const WORKSHOP_COLUMNS: usize = 5;

/// Empty rows under the workshop's row in the handout.
const BLANK_ROWS: usize = 8;

/// `(16, 16, 10)`: the widths of the layers that have weights, as the workshop writes them.
pub fn architecture(hidden: &[usize], outputs: usize) -> String {
    let widths: Vec<String> = hidden.iter().chain([&outputs]).map(|w| w.to_string()).collect();
    format!("({})", widths.join(", "))
}

/// Keras' spelling of an activation.
fn keras_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "ReLU",
        Activation::Sigmoid => "sigmoid",
        Activation::Tanh => "tanh",
        Activation::Identity => "linear",
    }
}

/// `ReLU, ReLU, softmax`: every layer's activation.
pub fn activations(t: &Trial) -> String {
    if let Some((_, arch)) = &t.arch {
        let weighted: Vec<&str> = arch
            .layers()
            .iter()
            .filter(|l| !matches!(l.kind, LayerKind::Pool | LayerKind::Flatten))
            .map(|l| keras_name(l.act))
            .collect();
        let mut names = weighted[..weighted.len().saturating_sub(1)].to_vec();
        names.push("softmax");
        return names.join(", ");
    }
    let mut names: Vec<&str> = t.layer_activations().into_iter().map(keras_name).collect();
    names.push("softmax");
    names.join(", ")
}

/// The "Other comments" cell: the inputs, and every setting that is not the workshop's.
pub fn comments(t: &Trial) -> String {
    let mut c = vec![if t.scale {
        "Scaled inputs".to_string()
    } else {
        "Raw 0-255 inputs".to_string()
    }];
    let name = match t.optimizer {
        OptimizerKind::Sgd => "SGD",
        OptimizerKind::Momentum => "SGD with momentum 0.9",
        OptimizerKind::RmsProp => "RMSprop",
        OptimizerKind::Adam => "Adam",
    };
    if t.optimizer != OptimizerKind::RmsProp {
        c.push(name.to_string());
    }
    if let Some(lr) = t.lr {
        if f64::from(lr) != f64::from(t.optimizer.default_lr() as f32) {
            let small_or_huge = !(1e-4..1e4).contains(&lr.abs());
            c.push(if small_or_huge {
                format!("lr {lr:e}")
            } else {
                format!("lr {lr}")
            });
        }
    }
    if t.batch != 128 {
        c.push(format!("batch {}", t.batch));
    }
    if t.dropout > 0.0 {
        c.push(format!("dropout {}", t.dropout));
    }
    if t.weight_decay > 0.0 {
        c.push(format!("weight decay {}", t.weight_decay));
    }
    c.join(", ")
}

/// A set of measurements (one per seed) as `mean` or `mean ± standard deviation`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// The mean over the seeds.
    pub mean: f64,
    /// The sample standard deviation; `None` for a single seed.
    pub sd: Option<f64>,
}

impl Spread {
    /// Mean and sample standard deviation of `xs` (no deviation for one value).
    pub fn of(xs: &[f64]) -> Spread {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.len() > 1).then(|| {
            let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1.0)).sqrt()
        });
        Spread { mean, sd }
    }

    /// A fraction as a percentage with one decimal: `94.2%`, `94.2% ± 0.3`.
    fn percent(&self) -> String {
        match self.sd {
            None => format!("{:.1}%", self.mean * 100.0),
            Some(sd) => format!("{:.1}% ± {:.1}", self.mean * 100.0, sd * 100.0),
        }
    }
}

/// What became of one row.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Trained: test and validation accuracy over the seeds, mean seconds per run.
    Trained {
        /// Test accuracy.
        test: Spread,
        /// Validation accuracy.
        validation: Spread,
        /// Mean seconds of training per run.
        seconds: f64,
    },
    /// Not trained; the reason is a footnote.
    Skipped(String),
}

/// One finished row.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the row trains.
    pub trial: Trial,
    /// Its network's number of weights and biases.
    pub params: usize,
    /// Its network's number of outputs (classes).
    pub outputs: usize,
    /// What became of it.
    pub outcome: Outcome,
}

impl Row {
    /// The row's cells, in [`HEADER`] order.
    pub fn cells(&self) -> Vec<String> {
        let t = &self.trial;
        let mut cells = vec![
            t.architecture(self.outputs),
            activations(t),
            t.epochs.to_string(),
            comments(t),
        ];
        match &self.outcome {
            Outcome::Trained {
                test,
                validation,
                seconds,
            } => cells.extend([
                test.percent(),
                validation.percent(),
                self.params.to_string(),
                format!("{seconds:.2}s"),
            ]),
            Outcome::Skipped(_) => cells.extend([
                "not trained".to_string(),
                "-".to_string(),
                self.params.to_string(),
                "-".to_string(),
            ]),
        }
        cells
    }
}

fn markdown_line(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// The header and its `|---|` line.
fn markdown_header(columns: &[&str]) -> String {
    let head: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let rule = vec!["---".to_string(); columns.len()];
    format!("{}|{}|\n", markdown_line(&head), rule.join("|"))
}

/// The table in Markdown, then a footnote for every row not trained.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = markdown_header(&HEADER);
    for r in rows {
        s.push_str(&markdown_line(&r.cells()));
    }
    let skipped: Vec<(usize, &str)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.outcome {
            Outcome::Skipped(why) => Some((i + 1, why.as_str())),
            Outcome::Trained { .. } => None,
        })
        .collect();
    if !skipped.is_empty() {
        s.push('\n');
        for (i, why) in skipped {
            let _ = writeln!(s, "Row {i} was not trained: {why}.");
        }
    }
    s
}

/// One CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

fn csv_line(cells: &[String]) -> String {
    let fields: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
    format!("{}\n", fields.join(","))
}

/// The same rows as [`markdown`], as CSV (RFC 4180 quoting).
pub fn csv(rows: &[Row]) -> String {
    let head: Vec<String> = HEADER.iter().map(|c| c.to_string()).collect();
    let mut s = csv_line(&head);
    for r in rows {
        s.push_str(&csv_line(&r.cells()));
    }
    s
}

/// The workshop's table for a handout: its header, its first row filled, blank rows.
pub fn blank() -> String {
    let columns = &HEADER[..WORKSHOP_COLUMNS];
    let mut s = markdown_header(columns);
    let first = Trial::default();
    s.push_str(&markdown_line(&[
        architecture(&first.hidden, crate::data::NUM_CLASSES),
        activations(&first),
        first.epochs.to_string(),
        comments(&first),
        "93%".to_string(),
    ]));
    let empty = format!("|{}\n", "  |".repeat(WORKSHOP_COLUMNS));
    s.push_str(&empty.repeat(BLANK_ROWS));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_written_as_the_workshop_writes_them() {
        let t = Trial::default();
        assert_eq!(architecture(&t.hidden, 10), "(16, 16, 10)");
        assert_eq!(architecture(&[], 10), "(10)");
        assert_eq!(activations(&t), "ReLU, ReLU, softmax");
        assert_eq!(comments(&t), "Scaled inputs");
        let odd = Trial {
            scale: false,
            optimizer: OptimizerKind::Adam,
            lr: Some(0.01),
            dropout: 0.2,
            ..Trial::default()
        };
        assert_eq!(comments(&odd), "Raw 0-255 inputs, Adam, lr 0.01, dropout 0.2");
    }

    #[test]
    fn spread_is_mean_and_sample_deviation() {
        let s = Spread::of(&[0.9, 0.92]);
        assert!((s.mean - 0.91).abs() < 1e-12);
        assert!((s.sd.unwrap() - 0.014142135623730963).abs() < 1e-12);
        assert_eq!(s.percent(), "91.0% ± 1.4");
        assert_eq!(Spread::of(&[0.9416]).percent(), "94.2%");
    }

    #[test]
    fn csv_quotes_cells_with_commas() {
        assert_eq!(csv_field("(16, 16, 10)"), "\"(16, 16, 10)\"");
        assert_eq!(csv_field("4"), "4");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
