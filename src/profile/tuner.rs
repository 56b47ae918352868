//! The search behind `simdnet tune`: block sizes (and the micro-kernel, where
//! more than one is compiled) for a set of GEMM shapes.
//!
//! How it measures: each shape's operands are made once; one *sample* is the
//! mean time of enough back-to-back calls to last about `sample_seconds`; a
//! configuration's time on a shape is the median of `runs` samples, and its
//! score the sum over the shapes. The search is coordinate descent from the
//! defaults: first the kernel, then `kc`, `mc`, `nc` over a coarse grid, each
//! time keeping the best score so far.
//!
//! How it decides: the winner is re-measured against the defaults, the two
//! alternating, and kept only if it is no slower than the defaults on *every*
//! shape (within [`NOISE`]) and faster in total by at least [`MIN_GAIN`];
//! otherwise the defaults are kept. It must also pass the GEMM verification
//! on every shape.

use std::time::Instant;

use super::bench::{engine_gemm, verify_gemm, GemmData, GemmShape};
use super::facts::describe;
use super::machine::{calls_per_sample, median};
use crate::gemm::{self, BlockSizes};

/// A shape counts as "no slower" if its median is within this fraction of the default's.
pub const NOISE: f64 = 0.01;
/// The total must improve by at least this fraction for a change to be kept.
pub const MIN_GAIN: f64 = 0.02;

/// One point of the search space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The block sizes.
    pub blocks: BlockSizes,
    /// `None`: the engine's default choice of micro-kernel.
    pub kernel: Option<String>,
}

impl Setting {
    /// Makes this setting the engine's.
    pub fn apply(&self) -> Result<(), String> {
        gemm::set_kernel(self.kernel.as_deref())?;
        gemm::set_block_sizes(self.blocks);
        Ok(())
    }
    /// The block sizes and the kernel, as the tools print them.
    pub fn describe(&self) -> String {
        match &self.kernel {
            Some(k) => format!("{} kernel {k}", describe(self.blocks)),
            None => format!("{} (default kernel)", describe(self.blocks)),
        }
    }
}

/// How hard to search.
#[derive(Clone, Debug)]
pub struct Effort {
    /// Samples per measurement (the median is used).
    pub runs: usize,
    /// Seconds each sample runs for, at least.
    pub sample_seconds: f64,
    /// The `mc` values to try.
    pub mc: Vec<usize>,
    /// The `kc` values to try.
    pub kc: Vec<usize>,
    /// The `nc` values to try.
    pub nc: Vec<usize>,
    /// Alternating default/winner measurements in the final comparison.
    pub confirm_runs: usize,
}

impl Effort {
    /// The default search (about a minute at most on the workshop shapes).
    pub fn normal(runs: usize) -> Effort {
        Effort {
            runs,
            sample_seconds: 2e-3,
            mc: vec![48, 96, 144, 192, 288, 384],
            kc: vec![64, 128, 192, 256, 384, 512],
            nc: vec![512, 1024, 2048, 4096, 8192],
            confirm_runs: 3 * runs,
        }
    }
    /// A coarse, fast search for tests.
    pub fn quick(runs: usize) -> Effort {
        Effort {
            runs,
            sample_seconds: 3e-4,
            mc: vec![96, 192],
            kc: vec![128, 256],
            nc: vec![1024, 4096],
            confirm_runs: 2 * runs,
        }
    }
}

/// A shape with its operands and how many calls make one sample.
struct Bench {
    shape: GemmShape,
    data: GemmData,
    reps: usize,
}

impl Bench {
    fn sample(&mut self) -> f64 {
        let t = Instant::now();
        for _ in 0..self.reps {
            self.data.run(engine_gemm, &self.shape);
        }
        std::hint::black_box(&self.data.c);
        t.elapsed().as_secs_f64() / self.reps as f64
    }
}

/// The result of a search.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The defaults (derived from the caches), measured.
    pub default: Setting,
    /// The setting to keep (the default when nothing was better).
    pub chosen: Setting,
    /// Whether `chosen` differs from `default`.
    pub improved: bool,
    /// Per shape: name, default median seconds, best candidate's median seconds.
    pub shapes: Vec<(String, f64, f64)>,
    /// The best candidate found (kept or not) and why it was not kept.
    pub best: Setting,
    /// Why `best` was not kept, if it was not.
    pub rejected_because: Option<String>,
    /// Settings measured during the search.
    pub evaluations: usize,
    /// Seconds the search took.
    pub seconds: f64,
}

impl Outcome {
    /// Summed over the shapes: the defaults' median seconds, the best candidate's.
    pub fn totals(&self) -> (f64, f64) {
        self.shapes
            .iter()
            .fold((0.0, 0.0), |(d, b), s| (d + s.1, b + s.2))
    }
}

/// Searches block sizes and kernels for `shapes`, calling `log` with progress.
/// Leaves the engine set to the chosen setting.
pub fn search(shapes: &[GemmShape], effort: &Effort, log: &mut dyn FnMut(&str)) -> Result<Outcome, String> {
    let start = Instant::now();
    let default = Setting {
        blocks: gemm::block_sizes(),
        kernel: None,
    };
    default.apply()?;
    let mut benches: Vec<Bench> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut b = Bench {
                shape: s.clone(),
                data: GemmData::new(s, 100 + i as u64),
                reps: 1,
            };
            b.sample(); // warm up
            b.reps = calls_per_sample(effort.sample_seconds, |calls| {
                b.reps = calls;
                b.sample()
            });
            b
        })
        .collect();
    let mut evaluations = 0;
    let mut score = |setting: &Setting, benches: &mut [Bench]| -> Result<(f64, Vec<f64>), String> {
        setting.apply()?;
        evaluations += 1;
        let per: Vec<f64> = benches
            .iter_mut()
            .map(|b| median(&(0..effort.runs).map(|_| b.sample()).collect::<Vec<_>>()))
            .collect();
        Ok((per.iter().sum(), per))
    };
    let (mut best_total, _) = score(&default, &mut benches)?;
    let mut best = default.clone();
    log(&format!(
        "defaults {}: {:.3} ms",
        default.describe(),
        best_total * 1e3
    ));
    let mut consider = |cand: Setting,
                        best: &mut Setting,
                        best_total: &mut f64,
                        benches: &mut [Bench],
                        log: &mut dyn FnMut(&str)| {
        let (t, _) = score(&cand, benches)?;
        let mark = if t < *best_total { " (best so far)" } else { "" };
        log(&format!("  {}: {:.3} ms{mark}", cand.describe(), t * 1e3));
        if t < *best_total {
            *best_total = t;
            *best = cand;
        }
        Ok::<(), String>(())
    };
    let kernels = gemm::available_kernels();
    if kernels.len() > 1 {
        log("micro-kernels:");
        for k in kernels {
            let cand = Setting {
                kernel: Some(k.to_string()),
                ..best.clone()
            };
            consider(cand, &mut best, &mut best_total, &mut benches, log)?;
        }
    }
    for (name, grid) in [("kc", &effort.kc), ("mc", &effort.mc), ("nc", &effort.nc)] {
        log(&format!("{name}:"));
        for &v in grid {
            let mut cand = best.clone();
            match name {
                "kc" => cand.blocks.kc = v,
                "mc" => cand.blocks.mc = v,
                _ => cand.blocks.nc = v,
            }
            if cand != best {
                consider(cand, &mut best, &mut best_total, &mut benches, log)?;
            }
        }
    }
    // Confirm: the best against the defaults, alternating, on every shape.
    let (mut d_times, mut b_times) = (vec![Vec::new(); benches.len()], vec![Vec::new(); benches.len()]);
    if best != default {
        log(&format!("confirming {} against the defaults...", best.describe()));
        for r in 0..effort.confirm_runs {
            for (i, b) in benches.iter_mut().enumerate() {
                let order = if r % 2 == 0 {
                    [&default, &best]
                } else {
                    [&best, &default]
                };
                for s in order {
                    s.apply()?;
                    let t = b.sample();
                    if s == &default {
                        &mut d_times[i]
                    } else {
                        &mut b_times[i]
                    }
                    .push(t);
                }
            }
        }
    } else {
        default.apply()?;
        for (i, b) in benches.iter_mut().enumerate() {
            for _ in 0..effort.runs {
                let t = b.sample();
                d_times[i].push(t);
                b_times[i].push(t);
            }
        }
    }
    let shapes_out: Vec<(String, f64, f64)> = benches
        .iter()
        .enumerate()
        .map(|(i, b)| (b.shape.name.clone(), median(&d_times[i]), median(&b_times[i])))
        .collect();
    let (dt, bt): (f64, f64) = shapes_out.iter().fold((0.0, 0.0), |(a, b), s| (a + s.1, b + s.2));
    let rejected_because = if best == default {
        Some("no setting was faster than the defaults".to_string())
    } else if let Some(s) = shapes_out.iter().find(|s| s.2 > s.1 * (1.0 + NOISE)) {
        Some(format!(
            "it is slower on {} ({:.4} ms vs {:.4} ms)",
            s.0,
            s.2 * 1e3,
            s.1 * 1e3
        ))
    } else if bt > dt * (1.0 - MIN_GAIN) {
        Some(format!(
            "it gains only {:.1}% in total (at least {:.0}% needed)",
            100.0 * (1.0 - bt / dt),
            100.0 * MIN_GAIN
        ))
    } else {
        best.apply()?;
        shapes
            .iter()
            .try_for_each(|s| verify_gemm(engine_gemm, s))
            .err()
            .map(|e| format!("it fails verification: {e}"))
    };
    let improved = rejected_because.is_none();
    let chosen = if improved { best.clone() } else { default.clone() };
    chosen.apply()?;
    Ok(Outcome {
        default,
        chosen,
        improved,
        shapes: shapes_out,
        best,
        rejected_because,
        evaluations,
        seconds: start.elapsed().as_secs_f64(),
    })
}
