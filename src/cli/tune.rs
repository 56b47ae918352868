//! `simdnet tune`: search the GEMM's block sizes (and micro-kernel) for this
//! machine and a network shape, and save the winner for `train` and `bench`.
//!
//! The search and its rules are in [`crate::profile::tuner`]: a setting is
//! kept only if it is no slower than the defaults on every shape tried and
//! faster in total; otherwise the defaults are kept (and saved, so that the
//! file records what was decided). The file format is in
//! [`crate::profile::tune_config`].

use super::args::{Flag, Parsed, UsageError};
use super::bench::parse_networks;
use super::common::{self, THREADS};
use super::CliError;
use crate::error::Error;
use crate::gemm;
use crate::nn::memory;
use crate::profile::bench::{mnist_widths, GemmShape};
use crate::profile::facts::describe;
use crate::profile::tune_config::{self, TuneConfig};
use crate::profile::tuner::{self, Effort};

/// One line for the command list.
pub const ABOUT: &str =
    "search the GEMM block sizes for this machine and a network; save them for train and bench";

/// The flags of `simdnet tune`.
pub const FLAGS: &[Flag] = &[
    Flag::value(
        "layers",
        "W,W,..",
        Some("16,16"),
        "hidden widths of the network to tune for (';' between several networks)",
    ),
    Flag::value("batch", "N", Some("128"), "mini-batch size to tune for"),
    Flag::switch("square", "also time a square 512 GEMM"),
    Flag::value(
        "config",
        "FILE",
        None,
        "where to save [default: $SIMDNET_TUNE_CONFIG, else simdnet-tune.cfg]",
    ),
    Flag::value(
        "runs",
        "N",
        Some("5"),
        "samples per measurement (the median is used)",
    ),
    THREADS,
    Flag::switch("quick", "a coarse, fast search (for tests and CI)"),
    Flag::switch("dry-run", "search and report, but do not write the file"),
];

/// Runs `simdnet tune`.
pub fn run(p: &Parsed) -> Result<(), CliError> {
    let networks = parse_networks(p.raw("layers").unwrap_or(""))?;
    let batch: usize = p.get("batch")?;
    if batch == 0 || batch > 1 << 16 {
        return Err(UsageError("--batch must be between 1 and 65536".into()).into());
    }
    let runs: usize = p.get("runs")?;
    if runs == 0 || runs > 1000 {
        return Err(UsageError("--runs must be between 1 and 1000".into()).into());
    }
    let path = p.path("config")?.unwrap_or_else(tune_config::default_path);
    crate::gemm::blocking::check_env()?;
    if !p.switch("dry-run") {
        crate::safe_file::check_destination(&path, "tuning file")?;
    }
    let effort = if p.switch("quick") {
        Effort::quick(runs.min(3))
    } else {
        Effort::normal(runs)
    };
    let mut shapes = Vec::new();
    let mut names = Vec::new();
    for hidden in &networks {
        let widths = mnist_widths(hidden);
        names.push(widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-"));
        shapes.extend(GemmShape::training(&widths, batch));
    }
    if p.switch("square") {
        shapes.push(GemmShape::square(512));
    }
    memory::check(
        memory_bytes(&shapes, common::threads(p)?),
        &format!(
            "tune with --batch {batch} and --layers '{}'",
            p.raw("layers").unwrap_or("")
        ),
    )?;
    let outcome = common::with_threads(p, || {
        println!(
            "Tuning for {} at batch {batch} ({} GEMM shapes) on {} threads",
            names.join(", "),
            shapes.len(),
            common::current_threads()
        );
        tuner::search(&shapes, &effort, &mut |s| eprintln!("{s}"))
    })?
    .map_err(Error::Invalid)?;

    println!(
        "\n{:<30} {:>12} {:>12} {:>8}",
        "shape", "default ms", "best ms", "speedup"
    );
    for (name, d, b) in &outcome.shapes {
        println!("{name:<30} {:>12.4} {:>12.4} {:>7.2}x", d * 1e3, b * 1e3, d / b);
    }
    let (dt, bt) = outcome.totals();
    println!(
        "{:<30} {:>12.4} {:>12.4} {:>7.2}x",
        "total",
        dt * 1e3,
        bt * 1e3,
        dt / bt
    );
    println!(
        "Searched {} settings in {:.1}s.",
        outcome.evaluations, outcome.seconds
    );
    match &outcome.rejected_because {
        None => println!(
            "Best: {} ({:.2}x faster than the defaults {} in total).",
            outcome.chosen.describe(),
            dt / bt,
            describe(outcome.default.blocks)
        ),
        Some(why) => println!(
            "Keeping the defaults {}: the best candidate {} was not kept because {why}.",
            describe(outcome.default.blocks),
            outcome.best.describe()
        ),
    }
    if p.switch("dry-run") {
        println!("Not saved (--dry-run).");
        return Ok(());
    }
    let cfg = TuneConfig {
        blocks: outcome.chosen.blocks,
        kernel: outcome.chosen.kernel.clone(),
    };
    let comment = vec![format!(
        "tuned for {} at batch {batch}; SIMD width {}; {}",
        names.join(", "),
        gemm::simd_width(),
        if outcome.improved {
            format!("{:.2}x faster than the defaults", dt / bt)
        } else {
            "nothing beat the defaults".to_string()
        }
    )];
    tune_config::save(&path, &cfg, &comment)?;
    println!(
        "Saved {} to {} (train and bench use it; ignore with --no-tune-config).",
        describe(cfg.blocks),
        path.display()
    );
    Ok(())
}

/// Estimated peak memory of a tuning run, in bytes: the operands of every
/// shape (the tuner keeps them all), the largest packing buffers its search
/// can set (`mc` 384, `kc` 512, `nc` 8192) per thread, and the baseline.
pub fn memory_bytes(shapes: &[GemmShape], threads: usize) -> u64 {
    let operands = shapes
        .iter()
        .map(|s| {
            let (m, n, k) = (s.m as u64, s.n as u64, s.k as u64);
            m.saturating_mul(k)
                .saturating_add(k.saturating_mul(n))
                .saturating_add(m.saturating_mul(n))
                .saturating_add(n)
                .saturating_mul(4)
        })
        .fold(0u64, u64::saturating_add);
    let packing = ((384 + 64) * 512 + 8192 * 512) * 4;
    operands
        .saturating_add(
            memory::packing_bytes_per_thread()
                .max(packing)
                .saturating_mul(threads as u64 + 1),
        )
        .saturating_add(memory::BASELINE_BYTES)
}
