//! `simdnet train`: practical 2, build, compile and fit the network.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::args::{Flag, Parsed, UsageError};
use super::common::{self, DATA, THREADS};
use super::CliError;
use crate::data::{Split, NUM_CLASSES};
use crate::nn::{fit, model_file, Activation, Network, Optimizer, Progress, TrainConfig};

pub const ABOUT: &str = "train an MLP on MNIST (defaults: the workshop's 784-16-16-10 network)";

pub const FLAGS: &[Flag] = &[
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
        "hidden activation: relu, sigmoid, tanh or identity",
    ),
    Flag::value("epochs", "N", Some("4"), "passes over the training set"),
    Flag::value("batch", "N", Some("128"), "examples per mini-batch"),
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
    THREADS,
    DATA,
    Flag::value(
        "save",
        "FILE",
        None,
        "save the trained model to FILE (atomically)",
    ),
    Flag::switch("quiet", "print only the final test accuracy"),
    Flag::switch("profile", "after training, print a table of where the time went"),
    Flag::switch("no-tune-config", "ignore the block sizes saved by `simdnet tune`"),
];

/// Everything `train` was asked to do, checked.
struct Plan {
    hidden: Vec<usize>,
    activation: Activation,
    optimizer: Optimizer,
    cfg: TrainConfig,
    limit: Option<usize>,
    save: Option<PathBuf>,
    quiet: bool,
}

fn plan(p: &Parsed) -> Result<Plan, UsageError> {
    let hidden = common::hidden_layers(p)?;
    let activation: Activation = p.get("activation")?;
    let lr: Option<f32> = p.opt("lr")?;
    let optimizer = Optimizer::from_name(p.raw("optimizer").unwrap_or("rmsprop"), lr)
        .map_err(|e| UsageError(format!("--optimizer/--lr: {e}")))?;
    let epochs: usize = p.get("epochs")?;
    if epochs == 0 {
        return Err(UsageError("--epochs must be at least 1".into()));
    }
    let batch_size: usize = p.get("batch")?;
    if batch_size == 0 {
        return Err(UsageError("--batch must be at least 1".into()));
    }
    let limit: Option<usize> = p.opt("limit")?;
    if limit == Some(0) {
        return Err(UsageError("--limit must be at least 1".into()));
    }
    Ok(Plan {
        hidden,
        activation,
        optimizer,
        cfg: TrainConfig {
            epochs,
            batch_size,
            seed: p.get("seed")?,
            shuffle: true,
        },
        limit,
        save: p.path("save")?,
        quiet: p.switch("quiet"),
    })
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let plan = plan(p)?;
    let mut train = common::load_data(p, Split::Train)?;
    let test = common::load_data(p, Split::Test)?;
    if let Some(n) = plan.limit {
        train = train.take(n);
    }
    let mut net = Network::mlp(
        train.features(),
        &plan.hidden,
        NUM_CLASSES,
        plan.activation,
        plan.cfg.seed,
    )
    .map_err(|e| UsageError(format!("--layers: {e}")))?;
    let quiet = plan.quiet;
    let profile = p.switch("profile");
    if let Some(msg) = crate::profile::tune_config::apply_if_present(p.switch("no-tune-config"))? {
        if !quiet {
            println!("{msg}");
        }
    }
    common::with_threads(p, || -> Result<(), CliError> {
        if !quiet {
            println!("Model: {} ({} parameters)", net.describe(), net.num_params());
            println!(
                "Optimizer: {}, batch {}, {}, seed {}, {}",
                plan.optimizer,
                plan.cfg.batch_size,
                plural(plan.cfg.epochs, "epoch"),
                plan.cfg.seed,
                plural(common::current_threads(), "thread")
            );
            println!(
                "Data: {} training images, {} test images (validation = test set)",
                train.len(),
                test.len()
            );
        }
        let mut bar = ProgressBar::new(quiet);
        if profile {
            crate::trace::reset();
            crate::trace::enable(true);
        }
        let start = Instant::now();
        let history = fit(
            &mut net,
            plan.optimizer,
            &train,
            Some(&test),
            &plan.cfg,
            &mut |ev| bar.show(ev),
        )?;
        let total = start.elapsed().as_secs_f64();
        if profile {
            crate::trace::enable(false);
            print!(
                "{}",
                crate::profile::report::training_table(&history, common::current_threads())
            );
        }
        let test_eval = match history.last().and_then(|h| h.validation) {
            Some(v) => v,
            None => net.evaluate(&test)?,
        };
        if !quiet {
            let train_time: f64 = history.iter().map(|h| h.train_seconds).sum();
            println!(
                "Trained in {total:.2}s ({:.3}s per epoch without validation)",
                train_time / history.len().max(1) as f64
            );
            println!("Test loss: {:.4}", test_eval.loss);
        }
        println!("Test accuracy: {:.4}", test_eval.accuracy);
        if let Some(path) = &plan.save {
            model_file::save(&net, path)?;
            if !quiet {
                println!("Saved the model to {}", path.display());
            }
        }
        Ok(())
    })?
}

/// `1 epoch`, `4 epochs`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Keras-style progress: a live line on a terminal, plain lines otherwise.
struct ProgressBar {
    quiet: bool,
    live: bool,
    last_draw: Instant,
}

impl ProgressBar {
    fn new(quiet: bool) -> Self {
        ProgressBar {
            quiet,
            live: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
        }
    }

    fn show(&mut self, ev: Progress) {
        if self.quiet {
            return;
        }
        match ev {
            Progress::Step {
                epoch,
                epochs,
                step,
                steps,
                loss,
                accuracy,
                seconds,
            } => {
                // Redraw at most ten times a second on a terminal; every 10 s otherwise.
                let every = if self.live { 0.1 } else { 10.0 };
                if step == steps || self.last_draw.elapsed().as_secs_f64() < every {
                    return;
                }
                self.last_draw = Instant::now();
                let width = 30;
                let done = step * width / steps;
                let line = format!(
                    "Epoch {epoch}/{epochs} {step:>5}/{steps} [{}{}] {seconds:.1}s - loss: {loss:.4} - acc: {accuracy:.4}",
                    "=".repeat(done),
                    ".".repeat(width - done)
                );
                let mut err = std::io::stderr();
                if self.live {
                    let _ = write!(err, "\r{line}\x1b[K");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
            }
            Progress::Epoch { epochs, stats } => {
                if self.live {
                    let _ = write!(std::io::stderr(), "\r\x1b[K");
                }
                let mut line = format!(
                    "Epoch {}/{epochs} - {:.3}s - loss: {:.4} - acc: {:.4}",
                    stats.epoch, stats.train_seconds, stats.loss, stats.accuracy
                );
                if let Some(v) = stats.validation {
                    line.push_str(&format!(
                        " - val_loss: {:.4} - val_acc: {:.4}",
                        v.loss, v.accuracy
                    ));
                }
                println!("{line}");
            }
        }
    }
}
