//! Pieces shared by the commands: flags that recur, the thread pool, loading data.

use std::path::Path;

use super::args::{parse_list, Flag, Parsed, UsageError};
use super::CliError;
use crate::data::{mnist, Dataset, Split};
use crate::error::Error;
use crate::nn::optim::OptimizerKind;

pub const DATA: Flag = Flag::value(
    "data",
    "DIR",
    Some("data"),
    "folder with the four MNIST IDX files (.gz or raw)",
);
pub const THREADS: Flag = Flag::value("threads", "N", None, "worker threads [default: all cores]");
pub const SPLIT: Flag = Flag::value("split", "SPLIT", Some("test"), "which images: train or test");
pub const MODEL: Flag = Flag::value(
    "model",
    "FILE",
    None,
    "a model saved by `simdnet train --save FILE` (required)",
);

/// Parses `--split`.
pub fn split(p: &Parsed) -> Result<Split, UsageError> {
    match p.raw("split").unwrap_or("test") {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        s => Err(UsageError(format!(
            "invalid value '{s}' for --split: expected train or test"
        ))),
    }
}

/// Loads one split from the folder `--data` names.
pub fn load_data(p: &Parsed, which: Split) -> Result<Dataset, CliError> {
    let dir = p.path("data")?.unwrap_or_else(|| "data".into());
    Ok(mnist::load_split(Path::new(&dir), which)?)
}

/// Parses `--threads`: 1 to 1024, all cores when not given.
pub fn threads(p: &Parsed) -> Result<usize, UsageError> {
    match p.opt::<usize>("threads")? {
        Some(0) => Err(UsageError("--threads must be at least 1".into())),
        Some(n) if n > 1024 => Err(UsageError(format!("--threads {n} is too many (at most 1024)"))),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Runs `f` on a rayon pool of `--threads` threads (all cores when not given).
pub fn with_threads<R: Send>(p: &Parsed, f: impl FnOnce() -> R + Send) -> Result<R, CliError> {
    let threads = threads(p)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
    Ok(pool.install(f))
}

/// The number of threads `with_threads` uses inside its pool.
pub fn current_threads() -> usize {
    rayon::current_num_threads()
}

/// Reads `--index` and checks it against the data set's size.
pub fn index(p: &Parsed, data: &Dataset, split: Split) -> Result<usize, CliError> {
    let i: usize = p.get("index")?;
    if i >= data.len() {
        let name = if split == Split::Train { "training" } else { "test" };
        return Err(UsageError(format!(
            "--index {i} is out of range: the {name} set has {} images (0..={})",
            data.len(),
            data.len() - 1
        ))
        .into());
    }
    Ok(i)
}

/// An image as ASCII art, one character per pixel: darker pixels, denser characters.
pub fn ascii_art(pixels: &[u8], cols: usize) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for row in pixels.chunks(cols) {
        s.push_str("  |");
        for &p in row {
            s.push(RAMP[p as usize * (RAMP.len() - 1) / 255] as char);
        }
        s.push_str("|\n");
    }
    s
}

/// `--lr` of the f64 teaching commands (`teach`, `explain`); see [`given_lr`].
pub const TEACH_LR: Flag = Flag::value(
    "lr",
    "RATE",
    None,
    "learning rate > 0 [default: 0.01 for sgd, momentum; 0.001 for rmsprop, adam]",
);

/// Parses `--lr` for the f64 teaching commands (`teach`, `explain`): `None`
/// when not given, else a positive finite number; anything else is a usage
/// error that suggests the optimizer's default.
pub fn given_lr(p: &Parsed, kind: OptimizerKind) -> Result<Option<f64>, UsageError> {
    let lr: Option<f64> = p.opt("lr")?;
    if let Some(lr) = lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(UsageError(format!(
                "--lr must be a positive finite number, got {lr} (try {})",
                kind.default_lr()
            )));
        }
    }
    Ok(lr)
}

/// Parses `--layers` (hidden widths like `16,16`; empty: no hidden layer).
pub fn hidden_layers(p: &Parsed) -> Result<Vec<usize>, UsageError> {
    let hidden = parse_list::<usize>(p.raw("layers").unwrap_or(""))
        .map_err(|e| UsageError(format!("invalid --layers: {e} (expected widths like 16,16)")))?;
    if let Some(z) = hidden.iter().position(|&w| w == 0) {
        return Err(UsageError(format!(
            "--layers: hidden layer {} has 0 neurons; each needs at least 1",
            z + 1
        )));
    }
    Ok(hidden)
}

/// Parses `--activation` for `hidden` hidden layers: one name (`relu`) means
/// every hidden layer; a list (`relu,tanh`) gives one per hidden layer, in order.
pub fn activations(raw: &str, hidden: usize) -> Result<Vec<crate::activation::Activation>, UsageError> {
    let names: Vec<&str> = raw.split(',').map(str::trim).collect();
    let acts = names
        .iter()
        .map(|n| {
            n.parse()
                .map_err(|e| UsageError(format!("invalid --activation: {e}")))
        })
        .collect::<Result<Vec<crate::activation::Activation>, UsageError>>()?;
    match acts.len() {
        1 => Ok(vec![acts[0]; hidden]),
        n if n == hidden => Ok(acts),
        n => Err(UsageError(format!(
            "--activation lists {n} activations but --layers has {hidden} hidden layers: \
             give one name for all of them or exactly {hidden}, separated by commas"
        ))),
    }
}

/// Parses `--dropout RATE`: the fraction of hidden units dropped in
/// training, at least 0 and below 1 (Keras' `Dropout(0.2)` is `0.2`).
pub fn dropout_rate(raw: &str) -> Result<f32, UsageError> {
    match raw.trim().parse::<f32>() {
        Ok(r) if (0.0..1.0).contains(&r) => Ok(r),
        _ => Err(UsageError(format!(
            "invalid --dropout '{raw}': expected a fraction of units to drop, at least 0 and below 1, like 0.2"
        ))),
    }
}

/// Parses `--weight-decay L2`: the factor `λ` of the `λ·w` added to each
/// weight's gradient, a finite number >= 0 (like 0.0001).
pub fn weight_decay(raw: &str) -> Result<f32, UsageError> {
    match raw.trim().parse::<f32>() {
        Ok(l2) if l2.is_finite() && l2 >= 0.0 => Ok(l2),
        _ => Err(UsageError(format!(
            "invalid --weight-decay '{raw}': expected a finite number >= 0, like 0.0001"
        ))),
    }
}

/// Loads both splits from the folder `--data` names, `(train, test)`: all four
/// headers are checked first (one label per image; training and test images
/// of the same size, or an error naming both files), then the bodies are read.
pub fn load_train_test(p: &Parsed) -> Result<(Dataset, Dataset), CliError> {
    let dir = p.path("data")?.unwrap_or_else(|| "data".into());
    Ok(mnist::load_both(&dir)?)
}
