//! `simdnet explain`: one training step, every number with the formula that made it.
//!
//! By default it explains the tiny 3-4-2 lesson network of
//! [`crate::teach::network::NetworkF64::tiny`] on its fixed batch of two examples;
//! with `--index I` the workshop's network (784-16-16-10 on MNIST; the hidden
//! widths from `--layers`, the input size from the data set's images;
//! Glorot-uniform weights from a seeded `StdRng`) on training image `I`.
//! With `--conv`, a tiny convolutional network instead (lesson 11,
//! [`crate::teach::conv_network`]) on a 6x6 image made from training image
//! `I` (0 unless `--index`): `conv.rs` and `conv_back.rs` print it.
//!
//! All the computing is done once, by [`crate::teach::network::train_step`],
//! which records every number in a [`StepTrace`]; these files only print it,
//! one file per part of the step:
//!
//! - `mod.rs` — the flags, `run`, and the header
//! - `format.rs` — how numbers, sums and buffers are written
//! - `forward.rs`, `error.rs`, `backward.rs`, `update.rs` — the four parts
//! - `check.rs` — with `--check`: every gradient against a finite difference
//! - `conv.rs`, `conv_back.rs` — the same parts for `--conv`
//!
//! Small buffers are printed in full, every entry with its formula; large ones
//! (the 784 inputs, W1 with 12,544 weights, ...) as a readable excerpt — a few
//! entries with their formulas — and a summary (count, nonzero, min, max, mean).

mod backward;
mod check;
mod conv;
mod conv_back;
mod error;
mod format;
mod forward;
mod update;

use std::path::PathBuf;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::args::{parse_list, Flag, Parsed, UsageError};
use super::CliError;
use crate::activation::Activation;
use crate::data::mnist::{load_split, Split};
use crate::data::NUM_CLASSES;
use crate::teach::gradcheck::{self, TensorCheck};
use crate::teach::network::{tiny_batch, train_step, NetworkF64, NetworkOptimizerF64, StepTrace};
use crate::teach::optimizers::OptimizerKind;
use crate::teach::pitfalls::{wrong_backward, Bug};

use format::{num, Out};

/// The line in `simdnet --help`.
pub const ABOUT: &str = "run one training step and print every number with the formula that made it";

/// The flags of `simdnet explain`.
pub const FLAGS: &[Flag] = &[
    Flag::value(
        "step",
        "PART",
        Some("all"),
        "the part to print: forward, error, backward, update or all",
    )
    .with_alias("part"),
    Flag::value(
        "optimizer",
        "NAME",
        Some("sgd"),
        "sgd, momentum, rmsprop or adam, with Keras' defaults",
    ),
    Flag::value(
        "activation",
        "NAME",
        Some("relu"),
        "hidden-layer activation: relu, sigmoid, tanh or identity; or one per layer: relu,tanh",
    ),
    super::common::TEACH_LR,
    // `--index`, as every other command names an image; `--digit`, its name
    // before, still works (hidden).
    Flag::value(
        "index",
        "I",
        None,
        "the workshop's network (784-16-16-10) on MNIST training image I, not the tiny one \
         (with --conv: the digit the 6x6 image is made from)",
    )
    .with_alias("digit"),
    Flag::value(
        "layers",
        "WIDTHS",
        Some("16,16"),
        "hidden layer widths, comma-separated (with --index)",
    ),
    Flag::value(
        "seed",
        "N",
        Some("1"),
        "seed of the Glorot-uniform starting weights (with --index or --conv)",
    ),
    Flag::value(
        "data",
        "DIR",
        Some("data"),
        "folder with the MNIST files (with --index or --conv)",
    ),
    Flag::switch(
        "check",
        "check every dW and db against a central finite difference (f64), with a verdict per tensor",
    ),
    Flag::switch(
        "conv",
        "a tiny convolutional network instead: a 6x6 image from MNIST training image --index (default 0), \
         one 3x3 filter, 2x2 max-pool, dense 10",
    ),
    Flag::value(
        "bug",
        "NAME",
        None,
        "check a backward pass with one wrong line: forgotten-slope or overwrite (implies --check)",
    ),
];

/// Which part of the step to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The forward pass.
    Forward,
    /// The loss and the error at the output.
    Error,
    /// The backward pass: every gradient.
    Backward,
    /// The optimizer's update of every weight and bias.
    Update,
    /// All four, in order.
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

/// The image of `--index`: what the header and the forward pass show of it.
struct Digit {
    index: usize,
    label: u8,
    /// The raw pixels, (image_rows · image_cols), row-major.
    pixels: Vec<u8>,
    image_rows: usize,
    image_cols: usize,
    seed: u64,
    /// The hidden widths (`--layers`).
    hidden: Vec<usize>,
}

/// Everything the printer needs: the trace and how it was made.
struct Lesson {
    part: Part,
    lr_is_default: bool,
    digit: Option<Digit>,
    trace: StepTrace,
    /// With `--check`: the gradient check of every tensor, and the bug checked, if any.
    check: Option<(Vec<TensorCheck>, Option<Bug>)>,
    /// The network before the step (for the cost of the check).
    net_before: NetworkF64,
}

/// `--activation`: one name for every hidden layer, or one per hidden layer.
fn hidden_activations(p: &Parsed, hidden_layers: usize) -> Result<Vec<Activation>, UsageError> {
    let acts = parse_list::<Activation>(p.raw("activation").unwrap_or("relu"))
        .map_err(|e| UsageError(format!("invalid --activation: {e}")))?;
    match acts.len() {
        1 => Ok(vec![acts[0]; hidden_layers]),
        n if n == hidden_layers => Ok(acts),
        n => Err(UsageError(format!(
            "--activation: {n} activations for {hidden_layers} hidden layers \
             (give one for all, or one per hidden layer)"
        ))),
    }
}

/// The most weights and biases `--index` explains: the lesson keeps about 14
/// f64 copies of each (weights before and after, gradient, update, optimizer
/// state before and after), so this is about 250 MB; 784-1024-1024-10 fits.
pub const MAX_PARAMETERS: usize = 2_000_000;

/// The most weights and biases `--check` checks: its cost grows with their square
/// (4 forward passes per parameter); the workshop network's 13,002 take about a second.
pub const MAX_CHECK_PARAMETERS: usize = 50_000;

/// Refuses a network (layer `sizes`, inputs first) too big for the lesson, before
/// anything is allocated, naming the image size, the layers and the fix.
fn check_size(sizes: &[usize], image_rows: usize, image_cols: usize) -> Result<(), UsageError> {
    let params = sizes.windows(2).try_fold(0usize, |sum, w| {
        w[0].checked_mul(w[1])
            .and_then(|weights| weights.checked_add(w[1]))
            .and_then(|layer| sum.checked_add(layer))
    });
    match params {
        Some(n) if n <= MAX_PARAMETERS => Ok(()),
        _ => {
            let shape: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
            let count = params.map_or("over 2^64".to_string(), |n| n.to_string());
            Err(UsageError(format!(
                "--index: the network {} (inputs from the {image_rows}x{image_cols} images of --data) \
                 has {count} weights and biases, more than the {MAX_PARAMETERS} that explain \
                 prints a step of; use narrower --layers (e.g. 16,16) or smaller images",
                shape.join(" -> ")
            )))
        }
    }
}

/// Runs `simdnet explain`.
pub fn run(p: &Parsed) -> Result<(), CliError> {
    let part: Part = p.get("step")?;
    let kind: OptimizerKind = p.get("optimizer")?;
    let lr_given = super::common::given_lr(p, kind)?;
    let lr = lr_given.unwrap_or(kind.default_lr());
    let digit: Option<usize> = p.opt("index")?;
    let seed: u64 = p.get("seed")?;
    let data: PathBuf = p.path("data")?.unwrap_or_else(|| "data".into());
    let hidden = super::common::hidden_layers(p)?;
    let bug: Option<Bug> = p.opt("bug")?;
    let check = p.switch("check") || bug.is_some();
    if p.switch("conv") {
        if p.given("layers") {
            return Err(UsageError(
                "--layers sets the hidden dense layers of the MLP; the network of --conv has none \
                 (conv 3x3, max-pool, dense 10): drop --layers, or drop --conv"
                    .into(),
            )
            .into());
        }
        let act = hidden_activations(p, 1)
            .map_err(|UsageError(e)| UsageError(format!("{e} (--conv has one: the convolution's)")))?[0];
        return conv::run(&conv::ConvRequest {
            part,
            kind,
            lr,
            lr_is_default: lr_given.is_none(),
            index: digit.unwrap_or(0),
            seed,
            data: &data,
            act,
            check,
            bug,
        });
    }

    let (mut net, x, labels, digit) = match digit {
        None => {
            let acts = hidden_activations(p, 1)?;
            let (x, labels) = tiny_batch();
            (NetworkF64::tiny(acts[0]), x, labels, None)
        }
        Some(i) => {
            let acts = hidden_activations(p, hidden.len())?;
            let train = load_split(&data, Split::Train)?;
            if i >= train.len() {
                return Err(crate::Error::Invalid(format!(
                    "--index {i} is past the {} training images in '{}' (use 0 to {})",
                    train.len(),
                    data.display(),
                    train.len().saturating_sub(1)
                ))
                .into());
            }
            // the input layer takes the data set's own image size (28x28 for MNIST)
            let mut sizes = vec![train.features()];
            sizes.extend(&hidden);
            sizes.push(NUM_CLASSES);
            check_size(&sizes, train.image_rows(), train.image_cols())?;
            let pixels = train.image(i).to_vec();
            let label = train.labels()[i];
            // the workshop's preprocessing: flatten the image to one row, scale to 0..1
            let x: Vec<f64> = pixels.iter().map(|&v| v as f64 / 255.0).collect();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut net = NetworkF64::glorot_uniform(&sizes, Activation::Relu, &mut rng);
            for (layer, act) in net.layers.iter_mut().zip(acts) {
                layer.act = act; // the hidden layers; the output layer stays Identity
            }
            let digit = Digit {
                index: i,
                label,
                pixels,
                image_rows: train.image_rows(),
                image_cols: train.image_cols(),
                seed,
                hidden,
            };
            (net, x, vec![label as usize], Some(digit))
        }
    };
    if check && net.parameter_count() > MAX_CHECK_PARAMETERS {
        return Err(UsageError(format!(
            "--check: the network has {} weights and biases; checking each by finite differences \
             costs 4 forward passes per parameter, so --check takes at most {MAX_CHECK_PARAMETERS} \
             (use narrower --layers, e.g. 16,16)",
            net.parameter_count()
        ))
        .into());
    }
    let net_before = net.clone();
    // the check is of the gradients at the weights before the step (the optimizer plays no part)
    let check = check.then(|| {
        let fwd = net.forward(&x, labels.len());
        let grads = match bug {
            None => net.backward(&x, &labels, &fwd),
            Some(b) => wrong_backward(&net, &x, &labels, &fwd, b),
        };
        (gradcheck::check(&net, &x, &labels, &grads), bug)
    });
    let mut opt = NetworkOptimizerF64::new(kind, lr, &net);
    let trace = train_step(&mut net, &mut opt, &x, &labels);
    let lesson = Lesson {
        part,
        lr_is_default: lr_given.is_none(),
        digit,
        trace,
        check,
        net_before,
    };
    print!("{}", render(&lesson));
    Ok(())
}

fn render(l: &Lesson) -> String {
    let mut o = Out(String::new());
    header(&mut o, l);
    let all = l.part == Part::All;
    if all || l.part == Part::Forward {
        forward::forward(&mut o, l);
    }
    if all || l.part == Part::Error {
        error::error(&mut o, l);
    }
    if all || l.part == Part::Backward {
        backward::backward(&mut o, l);
    }
    if all || l.part == Part::Update {
        update::update(&mut o, l);
    }
    if let Some((checks, bug)) = &l.check {
        check::check(&mut o, l, checks, *bug);
    }
    o.0
}

fn header(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    let sizes: Vec<String> = std::iter::once(t.layers[0].inputs)
        .chain(t.layers.iter().map(|x| x.outputs))
        .map(|s| s.to_string())
        .collect();
    let params: usize = t.layers.iter().map(|x| x.w.len() + x.b.len()).sum();
    o.line("simdnet explain: one training step, every number with the formula that made it");
    o.blank();
    let what = match &l.digit {
        None => "the tiny lesson network, fixed readable weights (teach::NetworkF64::tiny)".to_string(),
        Some(d) => {
            let name = if d.hidden == [16, 16] && d.pixels.len() == 784 {
                "the workshop network"
            } else {
                "an MLP"
            };
            format!("{name}, Glorot-uniform W (StdRng seed {}), b = 0", d.seed)
        }
    };
    o.line(format!("network    {}: {what}", sizes.join(" -> ")));
    let mut hidden: Vec<String> = t.layers[..n - 1].iter().map(|x| x.act.to_string()).collect();
    hidden.dedup();
    let hidden = if hidden.is_empty() {
        "none".to_string()
    } else {
        format!("dense + {}", hidden.join(", "))
    };
    o.line(format!(
        "layers     hidden: {hidden}; output: dense + {} (the logits); {params} weights and biases",
        t.layers[n - 1].act
    ));
    match &l.digit {
        None => o.line(format!(
            "batch      {} examples of {} features (already in 0..1), one example per row",
            t.rows, t.layers[0].inputs
        )),
        Some(d) => o.line(format!(
            "batch      MNIST training image {} (label {}), {}x{} pixels flattened to {}, / 255",
            d.index,
            d.label,
            d.image_rows,
            d.image_cols,
            d.pixels.len()
        )),
    }
    o.line("loss       softmax, then categorical cross-entropy, mean over the batch");
    o.line(format!(
        "optimizer  {}, lr {}{}",
        t.kind,
        num(t.lr),
        if l.lr_is_default { " (Keras' default)" } else { "" }
    ));
    o.line("notation   W (inputs, outputs), z = x·W + b, a = f(z); [r,j] = example r, neuron j; dX = dL/dX");
}
