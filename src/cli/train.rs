//! `simdnet train`: practical 2, build, compile and fit the network; with
//! checkpoints and exact resume, a clean stop on Ctrl-C/SIGTERM, and Keras'
//! training habits (validation split, early stopping, history CSV, JSON).

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::args::{Flag, Parsed, UsageError};
use super::common::{self, DATA, THREADS};
use super::CliError;
use crate::data::{Dataset, NUM_CLASSES};
use crate::error::Error;
use crate::nn::checkpoint::{self, Checkpoint};
use crate::nn::memory;
use crate::nn::model_file::{self, fnv1a64};
use crate::nn::spec::{self, Arch, InputShape};
use crate::nn::train::MAX_EPOCHS;
use crate::nn::{Activation, EpochStats, Evaluation, Network, Optimizer, Outcome, Session, TrainConfig};
use crate::plot::{history_svg, EpochPoint};
use crate::profile::json::Json;
use crate::{interrupt, safe_file};

pub const ABOUT: &str =
    "train a network on MNIST (defaults: the workshop's 784-16-16-10 network; --model lenet for a CNN)";

pub const FLAGS: &[Flag] = &[
    Flag::value(
        "model",
        "NAME",
        Some("mlp"),
        "mlp (the --layers network), lenet (LeNet-5: conv5x5x6same,relu,pool2,conv5x5x16,relu,pool2,flatten,dense120,relu,dense84,relu,dense10) or keras-cnn (Keras' mnist_cnn: conv3x3x32,relu,conv3x3x64,relu,pool2,dropout0.25,flatten,dense128,relu,dropout0.5,dense10); lenet and keras-cnn default to --optimizer adam (lr 0.001) and --epochs 10 (lenet) or 12 (keras-cnn)",
    ),
    Flag::value(
        "arch",
        "SPEC",
        None,
        "any network, as comma-separated items: convKHxKWxF (stride 1, padding valid; convKHxKWxFsame keeps the size, and p2 is accepted where it equals same), pool2 (2x2 max-pool), flatten (required before a dense layer that follows an image: nothing is flattened silently), denseN, an activation (relu, tanh, sigmoid, identity; none: identity) or dropoutR for the layer before; it must end with dense10, the softmax output; e.g. conv3x3x8,relu,pool2,flatten,dense10; defaults to --optimizer adam (lr 0.001)",
    ),
    Flag::value(
        "layers",
        "W,W,..",
        Some("16,16"),
        "hidden layer widths, comma-separated (empty: none)",
    ),
    Flag::value(
        "activation",
        "NAME",
        Some("relu"),
        "hidden activation: relu, sigmoid, tanh or identity; one for all, or one per hidden layer (relu,tanh)",
    ),
    Flag::value(
        "epochs",
        "N",
        Some("4"),
        "passes over the training set (at most 1000000; with --resume, the new total)",
    ),
    Flag::value("batch", "N", Some("128"), "examples per mini-batch"),
    Flag::value(
        "dropout",
        "RATE",
        Some("0"),
        "drop this fraction of each hidden layer's outputs while training (Keras' Dropout), e.g. 0.2",
    ),
    Flag::value(
        "weight-decay",
        "L2",
        Some("0"),
        "L2 penalty on the weights (not the biases): adds L2·w to each weight's gradient",
    ),
    Flag::switch(
        "no-scale",
        "feed raw 0-255 pixels instead of pixels scaled to 0..1 (the workshop's \"scaled inputs\" trial)",
    ),
    Flag::value(
        "optimizer",
        "NAME",
        Some("rmsprop"),
        "sgd, momentum (0.9), rmsprop or adam",
    ),
    Flag::value(
        "lr",
        "RATE",
        None,
        "learning rate [default: 0.001 for rmsprop and adam, 0.01 for sgd and momentum]",
    ),
    Flag::value(
        "seed",
        "N",
        Some("1"),
        "seeds the initial weights and the shuffles",
    ),
    Flag::value(
        "limit",
        "N",
        None,
        "train on the first N training images only [default: all]",
    ),
    Flag::value(
        "validation-split",
        "FRACTION",
        None,
        "hold out the last FRACTION (0 < f < 1) of the training images for validation; the test set is then used only for the final line [default: validate on the test set]",
    ),
    Flag::value(
        "early-stopping",
        "PATIENCE",
        None,
        "stop when val_loss has not improved for PATIENCE epochs and restore the best weights (needs --validation-split)",
    ),
    THREADS,
    DATA,
    Flag::value(
        "save",
        "FILE",
        None,
        "save the trained model to FILE (atomically)",
    ),
    Flag::value(
        "checkpoint",
        "FILE",
        None,
        "write a checkpoint to FILE after every epoch and on Ctrl-C, to continue with --resume",
    ),
    Flag::value(
        "resume",
        "FILE",
        None,
        "continue the run saved in checkpoint FILE, bit for bit (its settings apply; --epochs may raise the total)",
    ),
    Flag::value(
        "history",
        "FILE",
        None,
        "write the per-epoch history as CSV (epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds)",
    ),
    Flag::value(
        "plot",
        "FILE",
        None,
        "draw the loss and accuracy per epoch (training and validation) as an SVG chart",
    ),
    Flag::switch("json", "print one JSON object with the results instead of text"),
    Flag::switch("quiet", "print only the final test accuracy"),
    Flag::switch("profile", "after training, print a table of where the time went"),
    Flag::switch("no-tune-config", "ignore the block sizes saved by `simdnet tune`"),
];

/// The flags a checkpoint fixes: given with `--resume`, each must agree with
/// the checkpoint's `key` (the same name). New options that change the
/// results must be added here and to [`Plan::pairs`].
const FIXED_BY_CHECKPOINT: &[&str] = &[
    "layers",
    "activation",
    "dropout",
    "weight-decay",
    "no-scale",
    "optimizer",
    "lr",
    "batch",
    "seed",
    "limit",
    "validation-split",
    "early-stopping",
];

/// Everything `train` was asked to do, checked.
struct Plan {
    /// The network as a spec (`--model lenet`, `--model keras-cnn`, `--arch`);
    /// `None`: the MLP of `--layers`.
    arch: Option<Arch>,
    /// How the network was asked for: `lenet`, `keras-cnn`, `--arch`, or `mlp`.
    model_name: String,
    hidden: Vec<usize>,
    /// One per hidden layer.
    activations: Vec<Activation>,
    dropout: f32,
    weight_decay: f32,
    /// Raw 0-255 pixels (`--no-scale`) instead of 0..1.
    no_scale: bool,
    optimizer: Optimizer,
    cfg: TrainConfig,
    limit: Option<usize>,
    validation_split: Option<f64>,
    save: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    resume: Option<PathBuf>,
    history: Option<PathBuf>,
    plot: Option<PathBuf>,
    quiet: bool,
    json: bool,
}

impl Plan {
    /// The settings a checkpoint records and a resume must not contradict,
    /// as `(flag, canonical value)`; besides those [`checkpoint::to_bytes`]
    /// writes itself (epochs, batch, seed, optimizer, lr, early-stopping).
    fn pairs(&self) -> Vec<(String, String)> {
        if let Some(arch) = &self.arch {
            let mut v = vec![
                ("model".to_string(), self.model_name.clone()),
                ("arch".to_string(), arch.canonical()),
                ("weight-decay".to_string(), self.weight_decay.to_string()),
                ("no-scale".to_string(), self.no_scale.to_string()),
            ];
            if let Some(l) = self.limit {
                v.push(("limit".into(), l.to_string()));
            }
            if let Some(f) = self.validation_split {
                v.push(("validation-split".into(), f.to_string()));
            }
            return v;
        }
        let mut v = vec![
            (
                "layers".to_string(),
                self.hidden
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("activation".to_string(), activation_names(&self.activations)),
            ("dropout".to_string(), self.dropout.to_string()),
            ("weight-decay".to_string(), self.weight_decay.to_string()),
            ("no-scale".to_string(), self.no_scale.to_string()),
        ];
        if let Some(l) = self.limit {
            v.push(("limit".into(), l.to_string()));
        }
        if let Some(f) = self.validation_split {
            v.push(("validation-split".into(), f.to_string()));
        }
        v
    }

    /// The canonical value of `flag` in this plan (`none` when unset).
    fn value_of(&self, flag: &str) -> String {
        let mut all = self.pairs();
        all.extend(checkpoint::optimizer_pairs(&self.optimizer));
        all.push(("batch".into(), self.cfg.batch_size.to_string()));
        all.push(("seed".into(), self.cfg.seed.to_string()));
        if let Some(p) = self.cfg.early_stopping {
            all.push(("early-stopping".into(), p.to_string()));
        }
        all.into_iter()
            .find(|(k, _)| k == flag)
            .map_or_else(|| "none".to_string(), |(_, v)| v)
    }
}

/// `--model` and `--arch`: the network as a spec (`None`: the MLP of
/// `--layers`), and the name it was asked for by; refuses the MLP's flags
/// beside a spec.
fn network_choice(p: &Parsed) -> Result<(Option<Arch>, String), UsageError> {
    let name = p.raw("model").unwrap_or("mlp");
    if p.given("model") && p.given("arch") {
        return Err(UsageError(format!(
            "--model {name} and --arch both say which network to train: give one of them"
        )));
    }
    let (arch, shown) = if let Some(spec) = p.raw("arch") {
        let arch = Arch::parse(spec).map_err(|e| UsageError(format!("--arch: {e}")))?;
        (Some(arch), "--arch")
    } else if name == "mlp" {
        (None, "mlp")
    } else {
        let arch = Arch::preset(name).ok_or_else(|| {
            UsageError(format!(
                "unknown --model '{name}': expected mlp, {} (or --arch SPEC for any other network)",
                spec::PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
            ))
        })?;
        (Some(arch), name)
    };
    if arch.is_some() {
        for flag in ["layers", "activation", "dropout"] {
            if p.given(flag) {
                let by = if shown == "--arch" {
                    "--arch".to_string()
                } else {
                    format!("--model {shown}")
                };
                return Err(UsageError(format!(
                    "--{flag} is for the MLP (--model mlp), but {by} already says every layer: drop --{flag}, or say it in --arch (e.g. {})",
                    match flag {
                        "layers" => "dense128,relu,dense10",
                        "activation" => "conv3x3x8,tanh,...",
                        _ => "...,dense128,relu,dropout0.5,dense10",
                    }
                )));
            }
        }
    }
    Ok((arch, shown.to_string()))
}

fn plan(p: &Parsed) -> Result<Plan, UsageError> {
    let (arch, model_name) = network_choice(p)?;
    let hidden = common::hidden_layers(p)?;
    let activations = common::activations(p.raw("activation").unwrap_or("relu"), hidden.len())?;
    let dropout = common::dropout_rate(p.raw("dropout").unwrap_or("0"))?;
    let weight_decay = common::weight_decay(p.raw("weight-decay").unwrap_or("0"))?;
    let lr: Option<f32> = p.opt("lr")?;
    // A convolutional network trains with Adam by default (the issue's PyTorch runs: Adam 1e-3).
    let default_optimizer = if arch.is_some() { "adam" } else { "rmsprop" };
    let name = match p.raw("optimizer") {
        Some(given) if p.given("optimizer") => given,
        _ => default_optimizer,
    };
    let optimizer =
        Optimizer::from_name(name, lr).map_err(|e| UsageError(format!("--optimizer/--lr: {e}")))?;
    let mut epochs: usize = p.get("epochs")?;
    if !p.given("epochs") {
        epochs = match model_name.as_str() {
            "lenet" => 10,
            "keras-cnn" => 12,
            _ => epochs,
        };
    }
    if epochs == 0 {
        return Err(UsageError("--epochs must be at least 1".into()));
    }
    if epochs > MAX_EPOCHS {
        return Err(UsageError(format!(
            "--epochs {epochs} is more than the maximum of {MAX_EPOCHS}; ask for fewer"
        )));
    }
    let batch_size: usize = p.get("batch")?;
    if batch_size == 0 {
        return Err(UsageError("--batch must be at least 1".into()));
    }
    let limit: Option<usize> = p.opt("limit")?;
    if limit == Some(0) {
        return Err(UsageError("--limit must be at least 1".into()));
    }
    let validation_split: Option<f64> = p.opt("validation-split")?;
    if let Some(f) = validation_split {
        if !(f > 0.0 && f < 1.0) {
            return Err(UsageError(format!(
                "--validation-split {f} is out of range: give a fraction between 0 and 1, e.g. 0.1"
            )));
        }
    }
    let early_stopping: Option<usize> = p.opt("early-stopping")?;
    if early_stopping == Some(0) {
        return Err(UsageError(
            "--early-stopping must be at least 1 (epochs without improvement)".into(),
        ));
    }
    if early_stopping.is_some() && validation_split.is_none() && !p.given("resume") {
        return Err(UsageError(
            "--early-stopping needs --validation-split FRACTION: it chooses the epoch to keep, and that choice must not be made on the test set (e.g. --validation-split 0.1 --early-stopping 3)".into(),
        ));
    }
    Ok(Plan {
        arch,
        model_name,
        hidden,
        activations,
        dropout,
        weight_decay,
        no_scale: p.switch("no-scale"),
        optimizer,
        cfg: TrainConfig {
            epochs,
            batch_size,
            seed: p.get("seed")?,
            shuffle: true,
            early_stopping,
        },
        limit,
        validation_split,
        save: p.path("save")?,
        checkpoint: p.path("checkpoint")?,
        resume: p.path("resume")?,
        history: p.path("history")?,
        plot: p.path("plot")?,
        quiet: p.switch("quiet"),
        json: p.switch("json"),
    })
}

/// With `--resume`: refuses flags that contradict the checkpoint, then takes
/// the checkpoint's settings (only `--epochs` may change, upwards).
fn adopt_checkpoint(p: &Parsed, plan: &mut Plan, ck: &Checkpoint, path: &Path) -> Result<(), UsageError> {
    // The network: --model and --arch must say the checkpoint's (compared as canonical specs).
    let theirs_arch = ck.get("arch");
    if p.given("model") || p.given("arch") {
        let mine = plan.arch.as_ref().map(Arch::canonical);
        if mine.as_deref() != theirs_arch {
            let said = |name: &str, arch: Option<&str>| match (name, arch) {
                ("--arch", Some(a)) => format!("--arch {a}"),
                (n, Some(a)) => format!("--model {n} ({a})"),
                (_, None) => "--model mlp".to_string(),
            };
            let given = if p.given("arch") {
                "--arch"
            } else {
                plan.model_name.as_str()
            };
            let theirs_name = ck.get("model").unwrap_or("--arch");
            return Err(UsageError(format!(
                "{} contradicts the checkpoint '{}', which was trained with {}; drop it (a resumed run keeps its network) or start a new run without --resume",
                said(given, mine.as_deref()),
                path.display(),
                said(theirs_name, theirs_arch)
            )));
        }
    }
    for &flag in FIXED_BY_CHECKPOINT {
        if !p.given(flag) {
            continue;
        }
        let mine = plan.value_of(flag);
        let theirs = ck.get(flag).unwrap_or("none");
        if mine != theirs {
            return Err(UsageError(format!(
                "--{flag} {mine} contradicts the checkpoint '{}', which was trained with --{flag} {theirs}; drop --{flag} (a resumed run keeps its settings) or start a new run without --resume",
                path.display()
            )));
        }
    }
    if let Some(a) = theirs_arch {
        plan.arch = Some(Arch::parse(a).map_err(|_| {
            UsageError(format!(
                "the checkpoint '{}' has an invalid arch={a:?}; resume from another checkpoint",
                path.display()
            ))
        })?);
        plan.model_name = ck.get("model").unwrap_or("--arch").to_string();
    }
    let parse = |k: &str| -> Result<Option<String>, UsageError> { Ok(ck.get(k).map(str::to_string)) };
    let bad = |k: &str, v: &str| {
        UsageError(format!(
            "the checkpoint '{}' has an invalid {k}={v:?}; resume from another checkpoint",
            path.display()
        ))
    };
    if let Some(v) = parse("layers")? {
        plan.hidden = super::args::parse_list(&v).map_err(|_| bad("layers", &v))?;
    }
    if let Some(v) = parse("activation")? {
        plan.activations = common::activations(&v, plan.hidden.len()).map_err(|_| bad("activation", &v))?;
    }
    if let Some(v) = parse("dropout")? {
        plan.dropout = v.parse().map_err(|_| bad("dropout", &v))?;
    }
    if let Some(v) = parse("weight-decay")? {
        plan.weight_decay = v.parse().map_err(|_| bad("weight-decay", &v))?;
    }
    if let Some(v) = parse("no-scale")? {
        plan.no_scale = v.parse().map_err(|_| bad("no-scale", &v))?;
    }
    plan.limit = match parse("limit")? {
        Some(v) => Some(v.parse().map_err(|_| bad("limit", &v))?),
        None => None,
    };
    plan.validation_split = match parse("validation-split")? {
        Some(v) => Some(v.parse().map_err(|_| bad("validation-split", &v))?),
        None => None,
    };
    plan.optimizer = ck.session.trainer.optimizer;
    let epochs = if p.given("epochs") {
        plan.cfg.epochs
    } else {
        ck.cfg.epochs
    };
    if epochs < ck.session.epochs_done {
        return Err(UsageError(format!(
            "--epochs {epochs} is fewer than the {} epochs the checkpoint '{}' has done; give at least {}",
            ck.session.epochs_done,
            path.display(),
            ck.session.epochs_done
        )));
    }
    plan.cfg = TrainConfig {
        epochs,
        ..ck.cfg.clone()
    };
    Ok(())
}

/// A fingerprint of the training images and labels, so that a resume on other data is refused.
fn fingerprint(data: &Dataset) -> String {
    let h = fnv1a64(data.labels()) ^ fnv1a64(data.pixels()).rotate_left(1);
    format!("{h:016x}")
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that continues from checkpoint `ck`, with the given flags that do not change results.
fn resume_command(p: &Parsed, ck: &Path) -> String {
    let mut cmd = format!("simdnet train --resume {}", shell_quote(&ck.to_string_lossy()));
    for flag in ["data", "threads", "save", "history"] {
        if p.given(flag) {
            if let Some(v) = p.raw(flag) {
                let _ = write!(cmd, " --{flag} {}", shell_quote(v));
            }
        }
    }
    for flag in ["json", "quiet", "profile", "no-tune-config"] {
        if p.switch(flag) {
            let _ = write!(cmd, " --{flag}");
        }
    }
    cmd
}

/// The flag that said the network, for messages: `--model lenet`, `--arch`.
fn spec_flag(plan: &Plan) -> String {
    match plan.model_name.as_str() {
        "--arch" => "--arch".into(),
        name => format!("--model {name}"),
    }
}

/// `lenet (conv5x5x6same,relu,...)` or the spec of `--arch`.
fn model_title(plan: &Plan) -> String {
    let spec = plan.arch.as_ref().map(Arch::canonical).unwrap_or_default();
    match plan.model_name.as_str() {
        "--arch" | "mlp" => spec,
        name => format!("{name} ({spec})"),
    }
}

/// `relu,tanh`: one activation name per hidden layer.
fn activation_names(acts: &[Activation]) -> String {
    acts.iter().map(|a| a.name()).collect::<Vec<_>>().join(",")
}

/// The loss and accuracy curves of a run, as a standalone SVG.
fn history_chart(net: &Network, history: &[EpochStats]) -> String {
    let points: Vec<EpochPoint> = history
        .iter()
        .map(|h| EpochPoint {
            epoch: h.epoch,
            loss: h.loss,
            accuracy: h.accuracy,
            val_loss: h.validation.map(|v| v.loss),
            val_accuracy: h.validation.map(|v| v.accuracy),
        })
        .collect();
    history_svg(&net.describe(), &points)
}

/// The history as CSV: `epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds`.
fn history_csv(history: &[EpochStats], lr: f32) -> String {
    let mut s = String::from("epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    for h in history {
        let (vl, va) = h.validation.map_or((String::new(), String::new()), |v| {
            (v.loss.to_string(), v.accuracy.to_string())
        });
        let _ = writeln!(
            s,
            "{},{},{},{vl},{va},{lr},{:.6}",
            h.epoch,
            h.loss,
            h.accuracy,
            h.train_seconds + h.validation_seconds
        );
    }
    s
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let mut plan = plan(p)?;
    // A resumed run starts from its checkpoint, and by default keeps writing to it.
    let resumed = match plan.resume.clone() {
        Some(path) => {
            let ck = checkpoint::load(&path)?;
            adopt_checkpoint(p, &mut plan, &ck, &path)?;
            if plan.checkpoint.is_none() {
                plan.checkpoint = Some(path);
            }
            Some(ck)
        }
        None => None,
    };
    // Every file this run will write is checked before any long work starts.
    for (path, what) in [
        (&plan.save, "model"),
        (&plan.checkpoint, "checkpoint"),
        (&plan.history, "history"),
        (&plan.plot, "chart"),
    ] {
        if let Some(path) = path {
            safe_file::check_destination(path, what)?;
        }
    }
    interrupt::install();
    let (mut train, test) = common::load_train_test(p)?;
    if let Some(n) = plan.limit {
        train = train.take(n);
    }
    let data_key = (plan.checkpoint.is_some() || resumed.is_some()).then(|| fingerprint(&train));
    let (train, validation) = match plan.validation_split {
        Some(f) => {
            let (t, v) = train
                .split_tail(f)
                .map_err(|e| UsageError(format!("--validation-split: {e}")))?;
            (t, Some(v))
        }
        None => (train, None),
    };
    // Refuse a network and batch that would not fit in memory before allocating them.
    let batch = plan.cfg.batch_size.min(train.len());
    let input = InputShape::of(&train);
    let flag = spec_flag(&plan);
    if let Some(arch) = &plan.arch {
        let shapes = arch
            .shapes(input, NUM_CLASSES)
            .map_err(|e| UsageError(format!("{flag}: {e}")))?;
        let params = spec::count_params(arch, input, &shapes);
        memory::check_with(
            spec::training_bytes(&shapes, params, batch, common::threads(p)?),
            &format!("training {flag} at --batch {}", plan.cfg.batch_size),
            "use a smaller --batch, or fewer filters or units, or",
        )?;
    } else {
        let widths: Vec<usize> = std::iter::once(train.features())
            .chain(plan.hidden.iter().copied())
            .chain([NUM_CLASSES])
            .collect();
        if resumed.is_none() {
            Network::check_widths(&widths).map_err(|e| UsageError(format!("--layers: {e}")))?;
        }
        memory::check(
            memory::training_bytes(&widths, batch, common::threads(p)?),
            &format!(
                "training --layers {} at --batch {}",
                widths[1..widths.len() - 1]
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                plan.cfg.batch_size
            ),
        )?;
    }
    let (mut net, mut session) = match resumed {
        Some(ck) => {
            if ck.get("data") != data_key.as_deref() {
                return Err(Error::Invalid(format!(
                    "the training data in '{}' differ from the data the checkpoint '{}' was trained on; resume with the same --data folder",
                    p.raw("data").unwrap_or("data"),
                    plan.resume.as_deref().unwrap_or(Path::new("")).display()
                ))
                .into());
            }
            (ck.net, ck.session)
        }
        None => {
            let mut net = match &plan.arch {
                Some(arch) => arch
                    .build(input, NUM_CLASSES, plan.cfg.seed)
                    .map_err(|e| UsageError(format!("{flag}: {e}")))?,
                None => Network::mlp_with(
                    train.features(),
                    &plan.hidden,
                    &plan.activations,
                    NUM_CLASSES,
                    plan.cfg.seed,
                )
                .map_err(|e| UsageError(format!("--layers: {e}")))?
                .with_dropout(plan.dropout)?,
            };
            if plan.no_scale {
                net = net.with_input_scale(1.0)?;
            }
            let net = net.with_weight_decay(plan.weight_decay)?;
            let session = Session::new(&net, plan.optimizer, &train, &plan.cfg)?;
            (net, session)
        }
    };
    let mut extra = plan.pairs();
    if let Some(key) = &data_key {
        extra.push(("data".into(), key.clone()));
    }
    let text = !plan.quiet && !plan.json;
    let profile = p.switch("profile");
    if let Some(w) = crate::simd::native_warning() {
        eprintln!("{w}");
    }
    if let Some(msg) = crate::profile::tune_config::apply_if_present(p.switch("no-tune-config"))? {
        if text {
            println!("{msg}");
        }
    }
    common::with_threads(p, || -> Result<(), CliError> {
        if text {
            if plan.arch.is_some() {
                println!("Model: {}", model_title(&plan));
                print!("{}", spec::summary(&net));
            } else {
                println!("Model: {} ({} parameters)", net.describe(), net.num_params());
            }
            println!(
                "Optimizer: {}{}, batch {}, {}, seed {}, {}",
                plan.optimizer,
                match net.weight_decay() {
                    0.0 => String::new(),
                    l2 => format!(", weight decay {l2}"),
                },
                plan.cfg.batch_size,
                plural(plan.cfg.epochs, "epoch"),
                plan.cfg.seed,
                plural(common::current_threads(), "thread")
            );
            match (&validation, plan.validation_split) {
                (Some(v), Some(f)) => println!(
                    "Data: {} training images, {} validation images (the last {f} of the training set), {} test images (used only for the final test)",
                    train.len(),
                    v.len(),
                    test.len()
                ),
                _ => println!(
                    "Data: {} training images, {} test images (validation = test set)",
                    train.len(),
                    test.len()
                ),
            }
            if let Some(path) = &plan.resume {
                let mut at = format!(
                    "{} of {} done",
                    session.epochs_done,
                    plural(plan.cfg.epochs, "epoch")
                );
                if let Some(part) = &session.partial {
                    let steps = session.examples().div_ceil(session.trainer.batch_size());
                    let _ = write!(
                        at,
                        ", and {}/{steps} steps of epoch {}",
                        part.step,
                        session.epochs_done + 1
                    );
                }
                println!("Resuming from {}: {at}", path.display());
            }
        }
        let mut bar = super::progress::TrainProgress::new(!text);
        if profile {
            crate::trace::reset();
            crate::trace::enable(true);
        }
        let val_set = validation.as_ref().unwrap_or(&test);
        let start = Instant::now();
        let outcome = loop {
            let outcome = session.next_epoch(&mut net, &train, Some(val_set), &plan.cfg, &mut |ev| {
                bar.show(ev);
                if interrupt::requested() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if let Some(path) = &plan.checkpoint {
                checkpoint::save(path, &net, &session, &plan.cfg, &extra)?;
            }
            if outcome != Outcome::Epoch {
                break outcome;
            }
        };
        let total = start.elapsed().as_secs_f64();
        if profile {
            crate::trace::enable(false);
            print!(
                "{}",
                crate::profile::report::training_table(&session.history, common::current_threads())
            );
        }
        if let Some(path) = &plan.history {
            safe_file::write_atomic(
                path,
                history_csv(&session.history, plan.optimizer.lr()).as_bytes(),
                "history",
            )?;
        }
        if let Some(path) = &plan.plot {
            safe_file::write_atomic(path, history_chart(&net, &session.history).as_bytes(), "chart")?;
        }
        if outcome == Outcome::Interrupted {
            return Err(interrupted(p, &plan, &net, &session));
        }
        let mut restored = None;
        if let Outcome::EarlyStopped { best_epoch } = outcome {
            let v = net.evaluate(val_set)?;
            restored = Some((best_epoch, v));
            if text {
                println!(
                    "Early stopping: val_loss has not improved for {} since epoch {best_epoch}; restored the weights of epoch {best_epoch} (val_loss: {:.4} - val_acc: {:.4})",
                    plural(plan.cfg.early_stopping.unwrap_or(0), "epoch"),
                    v.loss,
                    v.accuracy
                );
            }
        }
        let test_eval = match (
            &validation,
            restored,
            session.history.last().and_then(|h| h.validation),
        ) {
            (None, None, Some(v)) => v,
            _ => net.evaluate(&test)?,
        };
        // The validation set can stay finite where the test set overflows.
        if !test_eval.loss.is_finite() {
            return Err(Error::HeldOutDiverged {
                epoch: session.epochs_done,
                set: "test",
                loss: test_eval.loss as f32,
            }
            .into());
        }
        let train_time: f64 = session.history.iter().map(|h| h.train_seconds).sum();
        if text {
            println!(
                "Trained in {total:.2}s ({:.3}s per epoch without validation)",
                train_time / session.history.len().max(1) as f64
            );
            println!("Test loss: {:.4}", test_eval.loss);
        }
        if !plan.json {
            println!("Test accuracy: {:.4}", test_eval.accuracy);
        }
        if let Some(path) = &plan.save {
            model_file::save(&net, path)?;
            if text {
                println!("Saved the model to {}", path.display());
            }
        }
        if plan.json {
            print!(
                "{}",
                json_report(
                    &plan,
                    &net,
                    &session,
                    &train,
                    validation.as_ref(),
                    &test,
                    test_eval,
                    restored,
                    total
                )
                .render()
            );
        }
        Ok(())
    })?
}

/// After Ctrl-C or SIGTERM: saves what can be saved, says how to go on, and
/// returns the exit code (128 + the signal).
fn interrupted(p: &Parsed, plan: &Plan, net: &Network, session: &Session) -> CliError {
    let sig = interrupt::signal().unwrap_or(interrupt::SIGINT);
    let name = if sig == interrupt::SIGTERM {
        "SIGTERM"
    } else {
        "Ctrl-C"
    };
    let steps = session.examples().div_ceil(session.trainer.batch_size());
    let mut at = plural(session.epochs_done, "epoch");
    if let Some(part) = &session.partial {
        let _ = write!(
            at,
            " and {}/{steps} steps of epoch {}",
            part.step,
            session.epochs_done + 1
        );
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "Interrupted by {name} after {at}.");
    match (&plan.checkpoint, &plan.save) {
        (Some(ck), _) => {
            let _ = writeln!(err, "Saved the checkpoint to {}", ck.display());
            let _ = writeln!(err, "Resume with: {}", resume_command(p, ck));
        }
        (None, Some(path)) => {
            let _ = match model_file::save(net, path) {
                Ok(()) => writeln!(
                    err,
                    "Saved the partial model ({at} trained) to {}; this run cannot be resumed: add --checkpoint FILE next time",
                    path.display()
                ),
                Err(e) => writeln!(err, "error: {e}"),
            };
        }
        (None, None) => {
            let _ = writeln!(
                err,
                "Nothing was saved: give --checkpoint FILE to be able to resume (or --save FILE for the model)"
            );
        }
    }
    CliError::Exit(128 + sig)
}

/// The results of a run as one JSON object.
#[allow(clippy::too_many_arguments)]
fn json_report(
    plan: &Plan,
    net: &Network,
    session: &Session,
    train: &Dataset,
    validation: Option<&Dataset>,
    test: &Dataset,
    test_eval: Evaluation,
    restored: Option<(usize, Evaluation)>,
    total: f64,
) -> Json {
    let int = |n: usize| Json::Int(n as i64);
    let path = |p: &Option<PathBuf>| p.as_ref().map_or(Json::Null, |p| Json::str(p.to_string_lossy()));
    let history = session
        .history
        .iter()
        .map(|h| {
            Json::obj([
                ("epoch", int(h.epoch)),
                ("loss", Json::Num(h.loss)),
                ("accuracy", Json::Num(h.accuracy)),
                ("val_loss", Json::opt(h.validation.map(|v| v.loss))),
                ("val_accuracy", Json::opt(h.validation.map(|v| v.accuracy))),
                ("seconds", Json::Num(h.train_seconds + h.validation_seconds)),
                // The median training step: steadier than the epoch on a
                // busy machine (see nn::step_times).
                ("step_median_seconds", Json::opt(h.steps.map(|t| t.median))),
            ])
        })
        .collect();
    Json::obj([
        ("model", Json::str(net.describe())),
        ("parameters", int(net.num_params())),
        (
            "config",
            Json::obj([
                (
                    "model",
                    match plan.model_name.as_str() {
                        "--arch" => Json::Null,
                        name => Json::str(name),
                    },
                ),
                (
                    "arch",
                    plan.arch
                        .as_ref()
                        .map_or(Json::Null, |a| Json::str(a.canonical())),
                ),
                (
                    "layers",
                    match plan.arch {
                        Some(_) => Json::Null,
                        None => Json::Arr(plan.hidden.iter().map(|&w| int(w)).collect()),
                    },
                ),
                (
                    "activation",
                    match plan.arch {
                        Some(_) => Json::Null,
                        None => Json::str(activation_names(&plan.activations)),
                    },
                ),
                (
                    "dropout",
                    match plan.arch {
                        Some(_) => Json::Null,
                        None => Json::Num(plan.dropout as f64),
                    },
                ),
                ("weight_decay", Json::Num(plan.weight_decay as f64)),
                ("scaled_inputs", Json::Bool(!plan.no_scale)),
                ("optimizer", Json::str(plan.optimizer.to_string())),
                ("lr", Json::Num(plan.optimizer.lr() as f64)),
                ("batch", int(plan.cfg.batch_size)),
                ("epochs", int(plan.cfg.epochs)),
                ("seed", Json::Int(plan.cfg.seed as i64)),
                ("threads", int(common::current_threads())),
                ("validation_split", Json::opt(plan.validation_split)),
                ("early_stopping", plan.cfg.early_stopping.map_or(Json::Null, int)),
                ("resumed_from", path(&plan.resume)),
            ]),
        ),
        (
            "data",
            Json::obj([
                ("train", int(train.len())),
                ("validation", validation.map_or(Json::Null, |v| int(v.len()))),
                ("test", int(test.len())),
            ]),
        ),
        ("history", Json::Arr(history)),
        ("restored_epoch", restored.map_or(Json::Null, |(e, _)| int(e))),
        ("test_loss", Json::Num(test_eval.loss)),
        ("test_accuracy", Json::Num(test_eval.accuracy)),
        ("seconds", Json::Num(total)),
        ("saved", path(&plan.save)),
        ("checkpoint", path(&plan.checkpoint)),
    ])
}

/// `1 epoch`, `4 epochs`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
