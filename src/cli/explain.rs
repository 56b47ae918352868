//! `simdnet explain`: one training step, every number with the formula that made it.
//!
//! By default it explains the tiny 3-4-2 lesson network of
//! [`crate::teach::network::Network::tiny`] on its fixed batch of two examples;
//! with `--digit I` the workshop's 784-16-16-10 network (Glorot-uniform weights
//! from a seeded `StdRng`) on MNIST training image `I`. The computing is done by
//! [`crate::teach`]; this file only prints its [`StepTrace`].
//!
//! Small buffers are printed in full, every entry with its formula; large ones
//! (the 784 inputs, W1 with 12,544 weights, ...) as a readable excerpt — a few
//! entries with their formulas — and a summary (count, nonzero, min, max, mean).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::args::{Flag, Parsed, UsageError};
use super::CliError;
use crate::activation::Activation;
use crate::data::mnist::{load_split, Split};
use crate::teach::forward::activation_slope;
use crate::teach::network::{tiny_batch, train_step, Network, NetworkOptimizer, StepTrace};
use crate::teach::optimizers::{Optimizer, OptimizerKind};

pub const ABOUT: &str = "run one training step and print every number with the formula that made it";

pub const FLAGS: &[Flag] = &[
    Flag::value(
        "step",
        "PART",
        Some("all"),
        "the part to print: forward, error, backward, update or all",
    ),
    Flag::value(
        "optimizer",
        "NAME",
        Some("sgd"),
        "sgd, momentum (0.9), rmsprop or adam, with Keras' defaults",
    ),
    Flag::value(
        "activation",
        "NAME",
        Some("relu"),
        "hidden-layer activation: relu, sigmoid, tanh or identity",
    ),
    Flag::value(
        "lr",
        "RATE",
        None,
        "learning rate > 0 [default: 0.01 for sgd, momentum; 0.001 for rmsprop, adam]",
    ),
    Flag::value(
        "digit",
        "I",
        None,
        "the workshop's 784-16-16-10 network on MNIST training image I, not the tiny one",
    ),
    Flag::value(
        "seed",
        "N",
        Some("1"),
        "seed of the Glorot-uniform starting weights (with --digit)",
    ),
    Flag::value(
        "data",
        "DIR",
        Some("data"),
        "folder with the MNIST files (with --digit)",
    ),
];

/// Which part of the step to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Forward,
    Error,
    Backward,
    Update,
    All,
}

impl FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        match s.to_ascii_lowercase().as_str() {
            "forward" => Ok(Part::Forward),
            "error" | "loss" => Ok(Part::Error),
            "backward" => Ok(Part::Backward),
            "update" => Ok(Part::Update),
            "all" => Ok(Part::All),
            _ => Err(format!(
                "unknown part '{s}': expected one of forward, error, backward, update, all"
            )),
        }
    }
}

/// The widest line we print (the terminal and the notes it is pasted into).
const WIDTH: usize = 100;
/// Buffers with at most this many entries are printed in full.
const FULL: usize = 32;
/// Entries of a large buffer shown with their formula.
const EXCERPT: usize = 4;
/// Sums with more terms than this are shortened to their first few.
const MAX_TERMS: usize = 8;

/// Everything the printer needs besides the trace.
struct Lesson {
    part: Part,
    kind: OptimizerKind,
    lr: f64,
    lr_is_default: bool,
    activation: Activation,
    /// `Some((index, label, raw pixels, seed))` for `--digit`.
    digit: Option<(usize, u8, Vec<u8>, u64)>,
    /// The optimizer state before and after the step.
    opt_before: NetworkOptimizer,
    opt_after: NetworkOptimizer,
    trace: StepTrace,
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let part: Part = p.get("step")?;
    let kind: OptimizerKind = p.get("optimizer")?;
    let activation: Activation = p.get("activation")?;
    let lr_given: Option<f64> = p.opt("lr")?;
    if let Some(lr) = lr_given {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(UsageError(format!(
                "--lr must be a positive finite number, got {lr} (try {})",
                kind.default_lr()
            ))
            .into());
        }
    }
    let lr = lr_given.unwrap_or(kind.default_lr());
    let digit: Option<usize> = p.opt("digit")?;
    let seed: u64 = p.get("seed")?;
    let data: PathBuf = p.get("data")?;

    let (mut net, x, labels, digit_info) = match digit {
        None => {
            let (x, labels) = tiny_batch();
            (Network::tiny(activation), x, labels, None)
        }
        Some(i) => {
            let train = load_split(&data, Split::Train)?;
            if i >= train.len() {
                return Err(crate::Error::Invalid(format!(
                    "--digit {i} is past the {} training images in '{}' (use 0 to {})",
                    train.len(),
                    data.display(),
                    train.len().saturating_sub(1)
                ))
                .into());
            }
            let pixels = train.image(i).to_vec();
            let label = train.labels()[i];
            // the workshop's preprocessing: flatten 28x28 to 784, scale to 0..1
            let x: Vec<f64> = pixels.iter().map(|&v| v as f64 / 255.0).collect();
            let mut rng = StdRng::seed_from_u64(seed);
            let net = Network::glorot_uniform(&[pixels.len(), 16, 16, 10], activation, &mut rng);
            (net, x, vec![label as usize], Some((i, label, pixels, seed)))
        }
    };
    let mut opt = NetworkOptimizer::new(kind, lr, &net);
    let opt_before = opt.clone();
    let trace = train_step(&mut net, &mut opt, &x, &labels);
    let lesson = Lesson {
        part,
        kind,
        lr,
        lr_is_default: lr_given.is_none(),
        activation,
        digit: digit_info,
        opt_before,
        opt_after: opt,
        trace,
    };
    print!("{}", render(&lesson));
    Ok(())
}

// ------------------------------------------------------------------ formatting

/// A number with 6 decimals (and no "-0.000000").
fn num(x: f64) -> String {
    let s = format!("{x:.6}");
    if s == "-0.000000" {
        "0.000000".into()
    } else {
        s
    }
}

/// A number inside a formula: negative numbers in parentheses.
fn par(x: f64) -> String {
    let s = num(x);
    if s.starts_with('-') {
        format!("({s})")
    } else {
        s
    }
}

/// A small positive number (a mean square) that 6 decimals would round away.
fn small(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.6e}")
    } else {
        num(x)
    }
}

/// A hyperparameter such as 0.9 or 0.001: as few decimals as it needs.
fn hp(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `a·b` in a formula.
fn prod(a: f64, b: f64) -> String {
    format!("{}·{}", par(a), par(b))
}

/// `name[r,c]` for a (rows, cols) buffer, `name[c]` for a vector.
fn at(name: &str, r: Option<usize>, c: usize) -> String {
    match r {
        Some(r) => format!("{name}[{r},{c}]"),
        None => format!("{name}[{c}]"),
    }
}

/// The printed text, built line by line.
struct Out(String);

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    fn title(&mut self, s: &str) {
        self.blank();
        let bar = "=".repeat(76usize.saturating_sub(s.chars().count()).max(4));
        self.line(format!("== {s} {bar}"));
    }

    /// `prefix term + term + ... tail`, wrapped under the first term at [`WIDTH`] columns.
    fn sum(&mut self, prefix: &str, terms: &[String], tail: &str) {
        let indent = " ".repeat(prefix.chars().count().min(40) + 1);
        let mut pieces: Vec<String> = Vec::new();
        for (k, t) in terms.iter().enumerate() {
            pieces.push(if k == 0 { t.clone() } else { format!("+ {t}") });
        }
        if !tail.is_empty() {
            pieces.push(tail.to_string());
        }
        let mut line = prefix.to_string();
        let mut fresh = true; // nothing but the prefix or the indent on this line yet
        for piece in pieces {
            if !fresh && line.chars().count() + 1 + piece.chars().count() > WIDTH {
                self.line(line.trim_end());
                line = format!("{indent}{piece}");
            } else {
                if !line.ends_with(' ') {
                    line.push(' ');
                }
                line.push_str(&piece);
            }
            fresh = false;
        }
        self.line(line.trim_end());
    }

    /// `label` followed by the values, 8 to a line.
    fn values(&mut self, label: &str, values: &[f64]) {
        self.values_then(label, values, "");
    }

    /// [`Out::values`], then `suffix` at the end of the last line.
    fn values_then(&mut self, label: &str, values: &[f64], suffix: &str) {
        let indent = " ".repeat(label.chars().count());
        let per_line = ((WIDTH - label.chars().count()) / 11).clamp(1, 8);
        let chunks: Vec<&[f64]> = values.chunks(per_line).collect();
        for (k, chunk) in chunks.iter().enumerate() {
            let mut s = if k == 0 { label.to_string() } else { indent.clone() };
            for v in chunk.iter() {
                let _ = write!(s, " {:>10}", num(*v));
            }
            if k + 1 == chunks.len() {
                s.push_str(suffix);
            }
            self.line(s);
        }
        if values.is_empty() {
            self.line(format!("{label}{suffix}"));
        }
    }

    /// A matrix in full (small) or summarised (large).
    fn matrix(&mut self, name: &str, data: &[f64], rows: usize, cols: usize) {
        if rows * cols <= FULL {
            self.line(format!("  {name} ({rows}, {cols}):"));
            for r in 0..rows {
                self.values("   ", &data[r * cols..(r + 1) * cols]);
            }
        } else {
            self.line(format!("  {name} ({rows}, {cols}): {}", stats(data)));
        }
    }
}

/// `count, nonzero, min, max, mean` of a buffer, in one line.
fn stats(v: &[f64]) -> String {
    let n = v.len();
    let nonzero = v.iter().filter(|&&x| x != 0.0).count();
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    format!(
        "{n} numbers, {nonzero} nonzero, min {}, max {}, mean {}",
        num(min),
        num(max),
        num(mean)
    )
}

/// Shortens a long sum to its first terms and a count of the rest.
fn shorten(mut terms: Vec<String>) -> Vec<String> {
    if terms.len() > MAX_TERMS {
        let more = terms.len() - 3;
        terms.truncate(3);
        terms.push(format!("... ({more} more terms)"));
    }
    terms
}

/// The (row, col) entries of a (rows, cols) buffer to show with formulas: all of a
/// small one; of a large one the first few entries of the first rows that pass `row_ok`
/// (e.g. the rows of nonzero pixels: the others are all zero).
fn pick(rows: usize, cols: usize, row_ok: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    if rows * cols <= FULL {
        return (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))).collect();
    }
    let per_row = cols.clamp(1, EXCERPT / 2);
    let mut out = Vec::new();
    for r in (0..rows).filter(|&r| row_ok(r)) {
        for c in 0..per_row {
            if out.len() < EXCERPT {
                out.push((r, c));
            }
        }
    }
    if out.is_empty() {
        out = (0..cols.min(EXCERPT)).map(|c| (0, c)).collect();
    }
    out
}

fn act_name(act: Option<Activation>) -> &'static str {
    act.map_or("softmax", |a| a.name())
}

// ------------------------------------------------------------------ the lesson

fn render(l: &Lesson) -> String {
    let mut o = Out(String::new());
    header(&mut o, l);
    let all = l.part == Part::All;
    if all || l.part == Part::Forward {
        forward(&mut o, l);
    }
    if all || l.part == Part::Error {
        error(&mut o, l);
    }
    if all || l.part == Part::Backward {
        backward(&mut o, l);
    }
    if all || l.part == Part::Update {
        update(&mut o, l);
    }
    o.0
}

fn header(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let sizes: Vec<String> = std::iter::once(t.layers[0].inputs)
        .chain(t.layers.iter().map(|x| x.outputs))
        .map(|s| s.to_string())
        .collect();
    let params: usize = t.layers.iter().map(|x| x.w.len() + x.b.len()).sum();
    o.line("simdnet explain: one training step, every number with the formula that made it");
    o.blank();
    let what = match &l.digit {
        None => "the tiny lesson network, fixed readable weights (teach::Network::tiny)".to_string(),
        Some((_, _, _, seed)) => {
            format!("the workshop network, Glorot-uniform W (StdRng seed {seed}), b = 0")
        }
    };
    o.line(format!("network    {}: {what}", sizes.join(" -> ")));
    o.line(format!(
        "layers     hidden: dense + {}; output: dense + softmax; {params} weights and biases",
        l.activation
    ));
    match &l.digit {
        None => o.line(format!(
            "batch      {} examples of {} features (already in 0..1), one example per row",
            t.rows, t.layers[0].inputs
        )),
        Some((i, label, _, _)) => o.line(format!(
            "batch      MNIST training image {i} (label {label}), 28x28 pixels flattened to 784, / 255"
        )),
    }
    o.line("loss       categorical cross-entropy, mean over the batch");
    o.line(format!(
        "optimizer  {}, lr {}{}",
        l.kind,
        num(l.lr),
        if l.lr_is_default { " (Keras' default)" } else { "" }
    ));
    o.line("notation   W (inputs, outputs), z = a_prev·W + b; [r,j] = example r, neuron j; dX = dL/dX");
}

fn input_name(layer: usize) -> String {
    if layer == 0 {
        "x".into()
    } else {
        format!("a{layer}")
    }
}

fn forward(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title("1. forward pass");
    let features = t.layers[0].inputs;
    o.line(format!("inputs x ({}, {features}):", t.rows));
    match &l.digit {
        None => {
            for r in 0..t.rows {
                let row = &t.x[r * features..(r + 1) * features];
                o.values_then(&format!("  x[{r}] ="), row, &format!("    label {}", t.labels[r]));
            }
        }
        Some((_, label, pixels, _)) => {
            o.line(format!(
                "  the image (label {label}), '#' = ink > 0.5, '+' = ink > 0:"
            ));
            for r in 0..28 {
                let mut s = String::from("    ");
                for c in 0..28 {
                    let v = pixels[r * 28 + c];
                    s.push_str(if v > 127 {
                        "##"
                    } else if v > 0 {
                        "++"
                    } else {
                        " ."
                    });
                }
                o.line(s.trim_end());
            }
            let nonzero: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i] > 0).collect();
            o.line(format!(
                "  x[i] = pixel[i] / 255; {} of {} pixels are nonzero, the first of them:",
                nonzero.len(),
                pixels.len()
            ));
            for &i in nonzero.iter().take(EXCERPT) {
                o.line(format!("    x[{i}] = {} / 255 = {}", pixels[i], num(t.x[i])));
            }
            o.line(format!("  x: {}", stats(&t.x)));
        }
    }

    for (li, lt) in t.layers.iter().enumerate() {
        let k = li + 1;
        let a_prev: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let prev = input_name(li);
        let last = li + 1 == n;
        let a_name = if last { "p".to_string() } else { format!("a{k}") };
        o.blank();
        o.line(format!(
            "layer {k}: {} -> {}, {}.   z{k} = {prev}·W{k} + b{k},   {a_name} = {}(z{k})",
            lt.inputs,
            lt.outputs,
            act_name(lt.activation),
            act_name(lt.activation)
        ));
        o.matrix(&format!("W{k}"), &lt.w, lt.inputs, lt.outputs);
        if lt.outputs <= FULL {
            o.values(&format!("  b{k} ({}):", lt.outputs), &lt.b);
        } else {
            o.line(format!("  b{k} ({}): {}", lt.outputs, stats(&lt.b)));
        }
        let skip_zeros = lt.inputs > MAX_TERMS;
        if skip_zeros {
            o.line(format!(
                "  (terms where {prev} = 0 add nothing and are left out of the sums below)"
            ));
        }
        for r in 0..t.rows {
            let shown = if lt.outputs <= FULL / 4 {
                lt.outputs
            } else {
                EXCERPT
            };
            for j in 0..shown {
                let mut terms = Vec::new();
                for i in 0..lt.inputs {
                    let av = a_prev[r * lt.inputs + i];
                    if !(skip_zeros && av == 0.0) {
                        terms.push(prod(av, lt.w[i * lt.outputs + j]));
                    }
                }
                let mut terms = shorten(terms);
                terms.push(par(lt.b[j]));
                let z = lt.z[r * lt.outputs + j];
                let mut tail = format!("= {}", num(z));
                if let Some(act) = lt.activation {
                    let _ = write!(
                        tail,
                        "   a{k}[{r},{j}] = {act}({}) = {}",
                        num(z),
                        num(lt.a[r * lt.outputs + j])
                    );
                }
                o.sum(&format!("  z{k}[{r},{j}] ="), &terms, &tail);
            }
            if shown < lt.outputs {
                o.values(
                    &format!("  z{k}[{r}] ="),
                    &lt.z[r * lt.outputs..(r + 1) * lt.outputs],
                );
                if lt.activation.is_some() {
                    o.values(
                        &format!("  a{k}[{r}] ="),
                        &lt.a[r * lt.outputs..(r + 1) * lt.outputs],
                    );
                }
            }
            if last {
                softmax_lines(o, lt.outputs, &lt.z[r * lt.outputs..(r + 1) * lt.outputs], r);
                o.values(
                    &format!("  p[{r}] ="),
                    &lt.a[r * lt.outputs..(r + 1) * lt.outputs],
                );
            }
        }
    }
}

fn softmax_lines(o: &mut Out, classes: usize, z: &[f64], r: usize) {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    o.line(format!(
        "  softmax of example {r}: p[{r},k] = e^(z[{r},k] - m) / Σ_c e^(z[{r},c] - m), m = max = {}",
        num(m)
    ));
    o.values("    e^(z - m) =", &e);
    o.line(format!("    Σ = {}", num(sum)));
    if classes <= MAX_TERMS {
        for (k, ek) in e.iter().enumerate() {
            o.line(format!(
                "    p[{r},{k}] = {} / {} = {}",
                num(*ek),
                num(sum),
                num(ek / sum)
            ));
        }
    }
}

fn error(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    let classes = t.layers[n - 1].outputs;
    let p = &t.probabilities;
    o.title("2. error");
    o.line("loss of each example: L_r = -Σ_k y[r,k]·ln p[r,k] = -ln p[r, label]");
    let mut losses = Vec::new();
    for r in 0..t.rows {
        let pl = p[r * classes + t.labels[r]];
        losses.push(-pl.ln());
        o.line(format!(
            "  L_{r} = -ln p[{r},{}] = -ln {} = {}",
            t.labels[r],
            num(pl),
            num(-pl.ln())
        ));
    }
    let terms: Vec<String> = losses.iter().map(|&v| num(v)).collect();
    o.line(format!(
        "mean loss L = ({}) / {} = {}",
        terms.join(" + "),
        t.rows,
        num(t.loss)
    ));
    let preds = crate::teach::loss::predictions(p, t.rows);
    let right = preds.iter().zip(&t.labels).filter(|(a, b)| a == b).count();
    o.line(format!(
        "accuracy: predicted class (largest p) {:?}, labels {:?}: {right} of {} right = {}",
        preds,
        t.labels,
        t.rows,
        num(t.accuracy)
    ));
    o.blank();
    o.line(format!(
        "error at the output: dz{n} = dL/dz{n} = (p - y) / {}   (y = one-hot label)",
        t.rows
    ));
    o.line("  (softmax + cross-entropy: the 1/p of ln cancels the p of softmax; see teach::loss)");
    for r in 0..t.rows {
        for k in 0..classes {
            let idx = r * classes + k;
            o.line(format!(
                "  dz{n}[{r},{k}] = ({} - {}) / {} = {}",
                num(p[idx]),
                t.y[idx],
                t.rows,
                num(t.output_error[idx])
            ));
        }
    }
}

fn backward(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title("3. backward pass");
    o.line(format!(
        "from the last layer to the first, starting at dz{n} = (p - y) / {} (the error above)",
        t.rows
    ));
    for li in (0..n).rev() {
        let lt = &t.layers[li];
        let k = li + 1;
        let a_prev: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let prev = input_name(li);
        let (ins, outs) = (lt.inputs, lt.outputs);
        o.blank();
        o.line(format!(
            "layer {k} ({ins} -> {outs}). The forward pass was z{k} = {prev}·W{k} + b{k}, so:"
        ));
        // dW = a_prevᵀ·dz
        o.line(format!(
            "  dW{k} = {prev}ᵀ·dz{k}:  dW{k}[i,j] = Σ_r {prev}[r,i]·dz{k}[r,j]   ({ins}, {outs})"
        ));
        let row_ok = |i: usize| (0..t.rows).any(|r| a_prev[r * ins + i] != 0.0);
        let entries = pick(ins, outs, row_ok);
        for &(i, j) in &entries {
            let terms: Vec<String> = (0..t.rows)
                .map(|r| prod(a_prev[r * ins + i], lt.dz[r * outs + j]))
                .collect();
            o.sum(
                &format!("    dW{k}[{i},{j}] ="),
                &terms,
                &format!("= {}", num(lt.dw[i * outs + j])),
            );
        }
        if entries.len() < lt.dw.len() {
            o.line(format!("    all of dW{k}: {}", stats(&lt.dw)));
            if li == 0 && l.digit.is_some() {
                o.line("    (the rows of black pixels, x = 0, are exactly 0: those weights get no gradient)");
            }
        }
        // db = Σ dz
        o.line(format!(
            "  db{k} = Σ_r dz{k}[r,j]   ({outs})   (b{k} is added to every example)"
        ));
        if t.rows == 1 {
            o.values(
                &format!("    one example, nothing to add up: db{k} = dz{k}[0] ="),
                &lt.db,
            );
        } else {
            for j in 0..outs.min(if outs <= FULL { outs } else { EXCERPT }) {
                let terms: Vec<String> = (0..t.rows).map(|r| par(lt.dz[r * outs + j])).collect();
                o.sum(
                    &format!("    db{k}[{j}] ="),
                    &terms,
                    &format!("= {}", num(lt.db[j])),
                );
            }
        }
        if li == 0 {
            o.line(format!(
                "  (no d{prev}: the inputs are data, not weights; the backward pass ends here)"
            ));
            continue;
        }
        // da_prev = dz·Wᵀ
        o.line(format!(
            "  d{prev} = dz{k}·W{k}ᵀ:  d{prev}[r,i] = Σ_j dz{k}[r,j]·W{k}[i,j]   ({}, {ins})",
            t.rows
        ));
        let prev_layer = &t.layers[li - 1];
        let show = if t.rows * ins <= FULL && outs <= MAX_TERMS {
            ins
        } else {
            EXCERPT.min(ins)
        };
        for r in 0..t.rows {
            for i in 0..show {
                let terms: Vec<String> = (0..outs)
                    .map(|j| prod(lt.dz[r * outs + j], lt.w[i * outs + j]))
                    .collect();
                o.sum(
                    &format!("    d{prev}[{r},{i}] ="),
                    &shorten(terms),
                    &format!("= {}", num(prev_layer.da[r * ins + i])),
                );
            }
            if show < ins {
                o.values(
                    &format!("    d{prev}[{r}] ="),
                    &prev_layer.da[r * ins..(r + 1) * ins],
                );
            }
        }
        // dz_prev = da_prev ⊙ f'(z_prev)
        let act = prev_layer.activation.unwrap_or(Activation::Identity);
        let slope_rule = match act {
            Activation::Identity => "1",
            Activation::Relu => "1 if z > 0 else 0",
            Activation::Sigmoid => "a·(1 - a)",
            Activation::Tanh => "1 - a²",
        };
        o.line(format!(
            "  and the forward pass was {prev} = {act}(z{li}), so dz{li} = d{prev} ⊙ {act}'(z{li}),  \
             {act}'(z) = {slope_rule}"
        ));
        for r in 0..t.rows {
            for i in 0..ins {
                let idx = r * ins + i;
                let z = prev_layer.z[idx];
                let s = activation_slope(act, z);
                o.line(format!(
                    "    dz{li}[{r},{i}] = {}·{act}'({}) = {}·{} = {}",
                    par(prev_layer.da[idx]),
                    num(z),
                    par(prev_layer.da[idx]),
                    num(s),
                    num(prev_layer.dz[idx])
                ));
            }
        }
    }
}

fn update(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title(&format!("4. update ({}, lr {})", l.kind, num(l.lr)));
    let rule = match l.kind {
        OptimizerKind::Sgd => vec!["w = w - lr·g".to_string()],
        OptimizerKind::Momentum => vec![
            "v = momentum·v - lr·g      (momentum 0.9; v starts at 0)".into(),
            "w = w + v".into(),
        ],
        OptimizerKind::RmsProp => vec![
            "v = rho·v + (1 - rho)·g²   (rho 0.9; v starts at 0)".into(),
            "w = w - lr·g / sqrt(v + eps)   (eps 1e-7)".into(),
        ],
        OptimizerKind::Adam => vec![
            "m = b1·m + (1 - b1)·g,  v = b2·v + (1 - b2)·g²   (b1 0.9, b2 0.999; m, v start at 0)".into(),
            "m̂ = m / (1 - b1^t),  v̂ = v / (1 - b2^t)            (t = 1: the first step)".into(),
            "w = w - lr·m̂ / (sqrt(v̂) + eps)                    (eps 1e-7)".into(),
        ],
    };
    o.line("every weight and bias, with its gradient g from the backward pass:");
    for r in rule {
        o.line(format!("  {r}"));
    }
    for (li, lt) in t.layers.iter().enumerate() {
        let k = li + 1;
        let a_prev: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let row_ok = |i: usize| (0..t.rows).any(|r| a_prev[r * lt.inputs + i] != 0.0);
        o.blank();
        o.line(format!("layer {k}:"));
        let entries = pick(lt.inputs, lt.outputs, row_ok);
        for &(i, j) in &entries {
            let idx = i * lt.outputs + j;
            let name = format!("W{k}[{i},{j}]");
            update_lines(o, l, &name, li, false, idx);
        }
        if entries.len() < lt.w.len() {
            o.line(format!("  updates of all of W{k}: {}", stats(&lt.w_update)));
        }
        let shown = if lt.outputs <= FULL { lt.outputs } else { EXCERPT };
        for j in 0..shown {
            update_lines(o, l, &at(&format!("b{k}"), None, j), li, true, j);
        }
        if shown < lt.outputs {
            o.line(format!("  updates of all of b{k}: {}", stats(&lt.b_update)));
        }
    }

    o.blank();
    o.line("the same batch again, with the new weights:");
    let classes = t.layers[n - 1].outputs;
    for r in 0..t.rows {
        let label = t.labels[r];
        o.line(format!(
            "  p[{r},{label}] (the true class) {} -> {}",
            num(t.probabilities[r * classes + label]),
            num(t.probabilities_after[r * classes + label])
        ));
    }
    let change = t.loss_after - t.loss;
    o.line(format!(
        "loss before the step {}, after {}: change {} ({})",
        num(t.loss),
        num(t.loss_after),
        num(change),
        if change < 0.0 {
            "lower: the step went downhill"
        } else {
            "not lower: the step was too big, try a smaller --lr"
        }
    ));
}

/// The update of one weight (`bias = false`, `W[idx]`) or bias of layer `li`, formula by formula.
fn update_lines(o: &mut Out, l: &Lesson, name: &str, li: usize, bias: bool, idx: usize) {
    let lt = &l.trace.layers[li];
    let (w, g, up, after) = if bias {
        (lt.b[idx], lt.db[idx], lt.b_update[idx], lt.b_after[idx])
    } else {
        (lt.w[idx], lt.dw[idx], lt.w_update[idx], lt.w_after[idx])
    };
    let pick_opt = |opt: &NetworkOptimizer| -> Optimizer {
        if bias {
            opt.b[li].clone()
        } else {
            opt.w[li].clone()
        }
    };
    let (before, now) = (pick_opt(&l.opt_before), pick_opt(&l.opt_after));
    let pad = " ".repeat(name.len() + 4);
    match (before, now) {
        (Optimizer::Sgd(s), _) => {
            o.line(format!(
                "  {name} = {} - {}·{} = {}",
                num(w),
                num(s.lr),
                par(g),
                num(after)
            ));
        }
        (Optimizer::Momentum(b), Optimizer::Momentum(a)) => {
            o.line(format!(
                "  {name}  v = {}·{} - {}·{} = {}",
                hp(b.momentum),
                par(b.velocity[idx]),
                num(b.lr),
                par(g),
                num(a.velocity[idx])
            ));
            o.line(format!("{pad}w = {} + {} = {}", num(w), par(up), num(after)));
        }
        (Optimizer::RmsProp(b), Optimizer::RmsProp(a)) => {
            o.line(format!(
                "  {name}  v = {}·{} + {}·{}² = {}",
                hp(b.rho),
                small(b.mean_square[idx]),
                hp(1.0 - b.rho),
                par(g),
                small(a.mean_square[idx])
            ));
            o.line(format!(
                "{pad}w = {} - {}·{} / sqrt({} + {:e}) = {}",
                num(w),
                num(b.lr),
                par(g),
                small(a.mean_square[idx]),
                b.eps,
                num(after)
            ));
        }
        (Optimizer::Adam(b), Optimizer::Adam(a)) => {
            let t = a.t as i32;
            let m_hat = a.m[idx] / (1.0 - a.beta1.powi(t));
            let v_hat = a.v[idx] / (1.0 - a.beta2.powi(t));
            o.line(format!(
                "  {name}  m = {}·{} + {}·{} = {}",
                hp(b.beta1),
                par(b.m[idx]),
                hp(1.0 - b.beta1),
                par(g),
                num(a.m[idx]),
            ));
            o.line(format!(
                "{pad}v = {}·{} + {}·{}² = {}",
                hp(b.beta2),
                small(b.v[idx]),
                hp(1.0 - b.beta2),
                par(g),
                small(a.v[idx]),
            ));
            o.line(format!(
                "{pad}m̂ = m / (1 - {}^{t}) = {},   v̂ = v / (1 - {}^{t}) = {}",
                hp(b.beta1),
                num(m_hat),
                hp(b.beta2),
                small(v_hat)
            ));
            o.line(format!(
                "{pad}w = {} - {}·{} / (sqrt({}) + {:e}) = {}",
                num(w),
                num(b.lr),
                par(m_hat),
                small(v_hat),
                b.eps,
                num(after)
            ));
        }
        _ => unreachable!("the optimizer does not change kind during a step"),
    }
}
