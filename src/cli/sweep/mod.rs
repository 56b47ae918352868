//! `simdnet sweep`: practicals 4 and 5 in one command. Trains a grid of
//! networks (repeated flags, a grid file, or the default grid that answers the
//! workshop's questions) and prints the workshop's trials table in Markdown,
//! with validation accuracy, parameters and training time added.
//!
//! Every row holds out the last 10% of the training set for validation (as
//! Keras' `validation_split=0.1` does, before any shuffling), trains on the
//! rest, and touches the test set only for the Accuracy column. All training
//! goes through [`train_trial`].

pub mod grid;
pub mod table;

use std::path::PathBuf;
use std::time::Instant;

use super::args::{Flag, Parsed, UsageError};
use super::common::{self, DATA, THREADS};
use super::progress::StatusLine;
use super::CliError;
use crate::data::{Dataset, NUM_CLASSES};
use crate::error::Error;
use crate::nn::spec::{self, InputShape};
use crate::nn::{fit, Network, TrainConfig};
use crate::plot::{bars_svg, Bar};
use grid::{Trial, AXES};
use table::{Outcome, Row, Spread};

/// The line in `simdnet --help`.
pub const ABOUT: &str = "train a grid of networks and print the workshop's trials table";

/// The flags of `simdnet sweep`: the axes (repeatable) and the sweep's own.
pub const FLAGS: &[Flag] = &[
    AXES[0],
    AXES[1],
    AXES[2],
    AXES[3],
    AXES[4],
    AXES[5],
    AXES[6],
    AXES[7],
    AXES[8],
    AXES[9],
    Flag::value(
        "grid",
        "FILE",
        None,
        "rows from a file, one per line as train flags (# comments) [default: the flags above, \
         or the default grid when none is given]",
    ),
    Flag::value("seed", "S", Some("1"), "first seed of every row"),
    Flag::value(
        "seeds",
        "N",
        Some("1"),
        "train each row with seeds S..S+N-1 and report mean ± standard deviation",
    ),
    Flag::value(
        "limit",
        "N",
        None,
        "use the first N training images only (10% of them for validation) [default: all]",
    ),
    THREADS,
    DATA,
    Flag::value("csv", "FILE", None, "also write the table as CSV to FILE"),
    Flag::value(
        "plot",
        "FILE",
        None,
        "also draw each row's test accuracy as an SVG bar chart",
    ),
    Flag::switch(
        "blank",
        "print the empty table for a workshop handout (no training)",
    ),
    Flag::switch("quiet", "print only the table (no plan, no progress)"),
];

/// The fraction of the training set held out for validation (its end).
const VALIDATION_SPLIT_TENTHS: usize = 1;
/// The most seeds per row.
const MAX_SEEDS: u64 = 100;

/// Everything the sweep was asked to do, checked before any data is read.
struct Plan {
    trials: Vec<Trial>,
    seed: u64,
    seeds: u64,
    limit: Option<usize>,
    csv: Option<PathBuf>,
    plot: Option<PathBuf>,
    quiet: bool,
}

fn plan(p: &Parsed) -> Result<Plan, CliError> {
    let trials = match p.path("grid")? {
        Some(file) => {
            if grid::any_axis(p) {
                return Err(UsageError(format!(
                    "give the rows either with --grid {} or with axis flags (--layers, \
                     --epochs, ...), not both",
                    file.display()
                ))
                .into());
            }
            grid::from_file(&file)?
        }
        None if grid::any_axis(p) => grid::from_flags(p)?,
        None => grid::default_grid(),
    };
    let seed: u64 = p.get("seed")?;
    let seeds: u64 = p.get("seeds")?;
    if !(1..=MAX_SEEDS).contains(&seeds) {
        return Err(UsageError(format!("--seeds must be 1 to {MAX_SEEDS}, got {seeds}")).into());
    }
    if seed.checked_add(seeds - 1).is_none() {
        return Err(UsageError(format!(
            "--seed {seed} with --seeds {seeds} runs past the largest seed"
        ))
        .into());
    }
    let limit: Option<usize> = p.opt("limit")?;
    if limit == Some(0) {
        return Err(UsageError("--limit must be at least 1".into()).into());
    }
    let csv = p.path("csv")?;
    let plot = p.path("plot")?;
    // Refuse a bad destination now, not after minutes of training.
    if let Some(path) = &csv {
        crate::safe_file::check_destination(path, "sweep table")?;
    }
    if let Some(path) = &plot {
        crate::safe_file::check_destination(path, "sweep chart")?;
    }
    Ok(Plan {
        trials,
        seed,
        seeds,
        limit,
        csv,
        plot,
        quiet: p.switch("quiet"),
    })
}

/// Runs `simdnet sweep`.
pub fn run(p: &Parsed) -> Result<(), CliError> {
    if p.switch("blank") {
        print!("{}", table::blank());
        return Ok(());
    }
    let plan = plan(p)?;
    let (mut train, test) = common::load_train_test(p)?;
    if let Some(n) = plan.limit {
        train = train.take(n);
    }
    let (train, val) = split_validation(&train)?;
    let input = InputShape::of(&train);
    grid::check_sizes(&plan.trials, input, NUM_CLASSES)?;
    // Every row must fit in memory before the first one trains.
    let threads = common::threads(p)?;
    for (i, t) in plan.trials.iter().enumerate() {
        if let Some((_, arch)) = &t.arch {
            let shapes = arch
                .shapes(input, NUM_CLASSES)
                .map_err(|e| UsageError(format!("row {}: {e}", i + 1)))?;
            crate::nn::memory::check(
                spec::training_bytes(
                    &shapes,
                    t.params(input, NUM_CLASSES),
                    t.batch.min(train.len()),
                    threads,
                ),
                &format!("row {} of the sweep", i + 1),
            )?;
            continue;
        }
        let widths: Vec<usize> = std::iter::once(train.features())
            .chain(t.hidden.iter().copied())
            .chain([NUM_CLASSES])
            .collect();
        crate::nn::memory::check(
            crate::nn::memory::training_bytes(&widths, t.batch.min(train.len()), threads),
            &format!("row {} of the sweep", i + 1),
        )?;
    }
    if let Some(msg) = crate::profile::tune_config::apply_if_present(false)? {
        if !plan.quiet {
            eprintln!("{msg}");
        }
    }
    let rows = common::with_threads(p, || sweep(&plan, &train, &val, &test))??;
    print!("{}", table::markdown(&rows));
    println!("\n{}", caption(&plan, &val, &test));
    if let Some(path) = &plan.csv {
        crate::safe_file::write_atomic(path, table::csv(&rows).as_bytes(), "sweep table")?;
        if !plan.quiet {
            eprintln!("Wrote the table to {}", path.display());
        }
    }
    if let Some(path) = &plan.plot {
        let svg = plot_rows(&rows);
        crate::safe_file::write_atomic(path, svg.as_bytes(), "sweep chart")?;
    }
    // A table with no number in it is a failure: say why (the first row's reason).
    let trained = rows.iter().any(|r| matches!(r.outcome, Outcome::Trained { .. }));
    match rows.first().map(|r| &r.outcome) {
        Some(Outcome::Skipped(why)) if !trained => {
            Err(Error::Invalid(format!("no row of the sweep could be trained: {why}")).into())
        }
        _ => Ok(()),
    }
}

/// What the numbers in the table are.
fn caption(plan: &Plan, val: &Dataset, test: &Dataset) -> String {
    let seeds = if plan.seeds == 1 {
        format!("Seed {}", plan.seed)
    } else {
        format!(
            "Mean ± standard deviation over seeds {}-{}",
            plan.seed,
            plan.seed + plan.seeds - 1
        )
    };
    format!(
        "Accuracy: on the {} test images. Validation accuracy: on the last {} training images, \
         held out. {seeds}.",
        test.len(),
        val.len()
    )
}

/// Splits off the last tenth of `train` as the validation set (Keras'
/// `validation_split=0.1`: the end of the data, before shuffling).
fn split_validation(train: &Dataset) -> Result<(Dataset, Dataset), CliError> {
    let n = train.len();
    let keep = n * (10 - VALIDATION_SPLIT_TENTHS) / 10;
    if n < 10 {
        return Err(UsageError(format!(
            "{n} training images are too few: sweep holds out the last 10% of them for \
             validation; use --limit 10 or more"
        ))
        .into());
    }
    let f = train.features();
    let part = |from: usize, to: usize| {
        Dataset::new(
            train.pixels()[from * f..to * f].to_vec(),
            train.labels()[from..to].to_vec(),
            train.image_rows(),
            train.image_cols(),
        )
    };
    Ok((part(0, keep)?, part(keep, n)?))
}

/// What one training run of a row achieved.
#[derive(Clone, Copy, Debug)]
pub struct TrialOutcome {
    /// Accuracy on the test set.
    pub test_accuracy: f64,
    /// Accuracy on the held-out end of the training set.
    pub validation_accuracy: f64,
    /// Wall time of the training alone (no evaluation).
    pub seconds: f64,
}

/// Trains one row with one seed: builds its network, fits it on `train`
/// quietly, then measures it on `val` and `test`. The only place a sweep trains.
pub fn train_trial(
    trial: &Trial,
    seed: u64,
    train: &Dataset,
    val: &Dataset,
    test: &Dataset,
) -> Result<TrialOutcome, CliError> {
    let mut net = match &trial.arch {
        Some((_, arch)) => arch.build(InputShape::of(train), NUM_CLASSES, seed)?,
        None => {
            let acts = trial.layer_activations();
            Network::mlp_with(train.features(), &trial.hidden, &acts, NUM_CLASSES, seed)?
                .with_dropout(trial.dropout)?
        }
    };
    if !trial.scale {
        net = net.with_input_scale(1.0)?;
    }
    let mut net = net.with_weight_decay(trial.weight_decay)?;
    let optimizer = trial.build_optimizer().map_err(Error::Invalid)?;
    let cfg = TrainConfig {
        epochs: trial.epochs,
        batch_size: trial.batch,
        seed,
        shuffle: true,
        early_stopping: None,
    };
    let start = Instant::now();
    fit(&mut net, optimizer, train, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    // The last update, which no step's loss measures, can leave weights
    // finite but so large that the outputs overflow: such a row diverged.
    let (validation, test) = (net.evaluate(val)?, net.evaluate(test)?);
    for (set, e) in [("validation", &validation), ("test", &test)] {
        if !e.loss.is_finite() {
            return Err(Error::HeldOutDiverged {
                epoch: trial.epochs,
                set,
                loss: e.loss as f32,
            }
            .into());
        }
    }
    Ok(TrialOutcome {
        test_accuracy: test.accuracy,
        validation_accuracy: validation.accuracy,
        seconds,
    })
}

/// Trains every row with every seed, reporting progress on stderr.
fn sweep(plan: &Plan, train: &Dataset, val: &Dataset, test: &Dataset) -> Result<Vec<Row>, CliError> {
    let costs: Vec<f64> = plan
        .trials
        .iter()
        .map(|t| cost(t, InputShape::of(train), train.len(), val.len() + test.len()) * plan.seeds as f64)
        .collect();
    let mut progress = ProgressLine::new(plan.quiet, costs);
    if !plan.quiet {
        eprintln!(
            "Sweep: {} row{} x {} seed{}, {} thread{}; {} training images, {} held out for \
             validation, {} test images. Planned work: about {} (a rough guess).",
            plan.trials.len(),
            if plan.trials.len() == 1 { "" } else { "s" },
            plan.seeds,
            if plan.seeds == 1 { "" } else { "s" },
            common::current_threads(),
            if common::current_threads() == 1 { "" } else { "s" },
            train.len(),
            val.len(),
            test.len(),
            duration(progress.total * 2.0 / common::current_threads().clamp(1, 2) as f64)
        );
    }
    let mut rows = Vec::with_capacity(plan.trials.len());
    for (i, trial) in plan.trials.iter().enumerate() {
        progress.show(i, trial);
        let (mut tests, mut vals, mut secs) = (Vec::new(), Vec::new(), 0.0);
        let mut skipped = None;
        for s in 0..plan.seeds {
            match train_trial(trial, plan.seed + s, train, val, test) {
                Ok(o) => {
                    tests.push(o.test_accuracy);
                    vals.push(o.validation_accuracy);
                    secs += o.seconds;
                }
                Err(CliError::Run(
                    e @ (Error::Diverged { .. }
                    | Error::HeldOutDiverged { .. }
                    | Error::WeightsNotFinite { .. }),
                )) => {
                    skipped = Some(format!("with seed {}, {e}", plan.seed + s));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        progress.done(i);
        rows.push(Row {
            params: trial.params(InputShape::of(train), NUM_CLASSES),
            outputs: NUM_CLASSES,
            trial: trial.clone(),
            outcome: match skipped {
                Some(why) => Outcome::Skipped(why),
                None => Outcome::Trained {
                    test: Spread::of(&tests),
                    validation: Spread::of(&vals),
                    seconds: secs / plan.seeds as f64,
                },
            },
        });
    }
    progress.finish();
    Ok(rows)
}

/// A rough cost in seconds on 2 threads of one run of `t`: per image and epoch
/// a fixed part plus a part per parameter (fitted to the workshop network at
/// 0.045 s and the 512-512 one at 0.7 s per epoch of 60,000 images), plus the
/// evaluation of `eval_images` (a forward pass, about a third of a step).
fn cost(t: &Trial, input: InputShape, images: usize, eval_images: usize) -> f64 {
    // Per multiply-add of the forward pass: a dense layer does one per weight.
    let work = match &t.arch {
        Some((_, arch)) => arch
            .shapes(input, NUM_CLASSES)
            .map_or(0, |shapes| spec::multiply_adds(arch, input, &shapes)),
        None => t.params(input, NUM_CLASSES),
    };
    let per_image = 5.3e-7 + 1.67e-11 * work as f64;
    per_image * (images * t.epochs) as f64 + per_image * eval_images as f64 / 3.0
}

/// `45 s`, `3 min 20 s`.
fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s < 60 {
        format!("{} s", s.max(1))
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// The line on stderr that shows the row running and the time left: redrawn in
/// place on a terminal (cut to its width), one plain line per row otherwise
/// (see [`StatusLine`]).
struct ProgressLine {
    quiet: bool,
    line: StatusLine,
    costs: Vec<f64>,
    total: f64,
    done: f64,
    start: Instant,
}

impl ProgressLine {
    fn new(quiet: bool, costs: Vec<f64>) -> Self {
        ProgressLine {
            quiet,
            line: StatusLine::new(),
            total: costs.iter().sum(),
            costs,
            done: 0.0,
            start: Instant::now(),
        }
    }

    /// The time left: the rows done tell how fast this machine is now; before
    /// any is done, the guess of [`cost`].
    fn left(&self) -> f64 {
        let remaining = self.total - self.done;
        if self.done > 0.0 {
            self.start.elapsed().as_secs_f64() / self.done * remaining
        } else {
            remaining
        }
    }

    fn show(&mut self, i: usize, t: &Trial) {
        if self.quiet {
            return;
        }
        let line = format!(
            "[{}/{}] {} ... about {} left",
            i + 1,
            self.costs.len(),
            t.short(NUM_CLASSES),
            duration(self.left())
        );
        self.line.draw(|_| line);
    }

    fn done(&mut self, i: usize) {
        self.done += self.costs[i];
    }

    fn finish(&mut self) {
        if self.quiet {
            return;
        }
        self.line.clear();
        eprintln!(
            "Swept {} rows in {:.1} s",
            self.costs.len(),
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// The SVG bar chart of every trained row's test accuracy (with its spread over seeds).
fn plot_rows(rows: &[Row]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Trained { test, .. } => Some(Bar {
                label: r.trial.short(r.outputs),
                value: test.mean * 100.0,
                spread: test.sd.map(|s| s * 100.0),
            }),
            Outcome::Skipped(_) => None,
        })
        .collect();
    bars_svg("Test accuracy per row of the sweep", "test accuracy (%)", &bars)
}
