//! The sequence `simdnet bench` runs, and its results.
//!
//! 1. The machine ([`super::machine`]): peak FLOP/s and bandwidth, on one
//!    thread and on the pool.
//! 2. The GEMM ([`super::bench`]) on square shapes and on the shapes of
//!    training the given MNIST networks, each verified, then timed.
//! 3. The fused kernels, each verified, then timed; then each SIMD
//!    micro-kernel alone on a tile in L1 ([`super::kernel_bench`], one
//!    thread); then the convolution layers of the given CNN models
//!    ([`super::conv_bench`]), each verified, then its passes timed on one
//!    training shard.
//! 4. The machine again. Other work on the machine only ever lowers a
//!    measurement, so the samples of both passes are merged and the best kept.
//!
//! Then the verdicts ([`super::verdict`]). Nothing here prints: progress goes
//! to the `say` callback, and the caller renders the [`Results`].

use super::bench::{self as pb, mnist_widths, Fused, GemmShape};
use super::conv_bench::{self as cb, ConvCase, ConvPass};
use super::kernel_bench::{self as kb, KernelResult};
use super::machine::{self, Rate, StreamArrays};
use super::verdict::{self, FusedStats, GemmStats, Limits};

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub threads: usize,
    /// Hidden widths of the MNIST networks whose training GEMMs to time.
    pub networks: Vec<Vec<usize>>,
    pub batch: usize,
    /// Square GEMM sizes.
    pub sizes: Vec<usize>,
    /// Timed repetitions of each measurement.
    pub runs: usize,
    /// Smaller arrays and shorter runs: rough numbers, fast.
    pub quick: bool,
    /// The CNN models whose convolution layers to time ([`cb::MODELS`]).
    pub models: Vec<String>,
}

impl Settings {
    /// Seconds of each peak FLOP/s run.
    fn peak_seconds(&self) -> f64 {
        if self.quick {
            0.02
        } else {
            0.25
        }
    }
    /// Bytes of each bandwidth array: far larger than any last-level cache (unless quick).
    fn array_bytes(&self) -> usize {
        if self.quick {
            16 << 20
        } else {
            128 << 20
        }
    }
    /// Bandwidth runs per pass (they are short, so twice as many unless quick).
    fn bandwidth_runs(&self) -> usize {
        if self.quick {
            self.runs
        } else {
            2 * self.runs
        }
    }
    /// Seconds each GEMM shape may take to time (at least one run).
    fn gemm_budget(&self) -> f64 {
        if self.quick {
            0.2
        } else {
            1.5
        }
    }
    /// Seconds of each timed run of a micro-kernel in L1.
    fn kernel_seconds(&self) -> f64 {
        if self.quick {
            0.005
        } else {
            0.04
        }
    }
    /// Values each fused kernel runs over.
    fn fused_elements(&self) -> usize {
        if self.quick {
            1 << 18
        } else {
            1 << 24
        }
    }
    /// The GEMM shapes to time: the squares, then each network's training GEMMs.
    fn shapes(&self) -> Vec<GemmShape> {
        let mut shapes: Vec<GemmShape> = self.sizes.iter().map(|&n| GemmShape::square(n)).collect();
        for hidden in &self.networks {
            shapes.extend(GemmShape::training(&mnist_widths(hidden), self.batch));
        }
        shapes
    }
}

/// One GEMM shape: verified, then timed (only if verified).
#[derive(Clone, Debug)]
pub struct GemmResult {
    pub shape: GemmShape,
    pub verified: Result<(), String>,
    /// Run times in seconds (empty when not verified).
    pub times: Vec<f64>,
    /// The roofline verdict (`None` when not timed).
    pub stats: Option<GemmStats>,
}

/// One pass of one convolution layer, timed on [`cb::BENCH_ROWS`] images
/// (only if the layer passed verification).
#[derive(Clone, Debug)]
pub struct ConvResult {
    /// The layer.
    pub case: ConvCase,
    /// The pass.
    pub pass: ConvPass,
    /// Images per timed pass.
    pub rows: usize,
    /// The layer's verification (shared by its passes).
    pub verified: Result<(), String>,
    /// Run times in seconds (empty when not verified).
    pub times: Vec<f64>,
    /// The roofline verdict (`None` when not timed).
    pub stats: Option<GemmStats>,
}

impl ConvResult {
    /// Useful FLOPs of the pass ([`ConvCase::flops`]).
    pub fn flops(&self) -> f64 {
        self.case.flops(self.rows)
    }
    /// Its least traffic in bytes ([`ConvCase::min_bytes`]).
    pub fn min_bytes(&self) -> f64 {
        self.case.min_bytes(self.rows)
    }
}

/// One fused kernel: verified, then timed (only if verified).
#[derive(Clone, Debug)]
pub struct FusedResult {
    pub kind: Fused,
    pub verified: Result<(), String>,
    /// Values it ran over (0 when not timed).
    pub elements: usize,
    /// Threads it ran on: the pool if [`Fused::parallel`], else one.
    pub threads: usize,
    pub times: Vec<f64>,
    pub stats: Option<FusedStats>,
}

/// Everything `bench` measured and concluded.
#[derive(Clone, Debug)]
pub struct Results {
    pub limits: Limits,
    pub gemms: Vec<GemmResult>,
    pub fused: Vec<FusedResult>,
    /// The convolution layers' passes, model by model, layer by layer.
    pub convs: Vec<ConvResult>,
    /// Each SIMD micro-kernel alone on a tile in L1, on one thread.
    pub micro_kernels: Vec<KernelResult>,
    /// Signs that the measurements were disturbed ([`verdict::warnings`]).
    pub warnings: Vec<String>,
}

impl Results {
    /// The verification errors of every kernel that failed (and was not timed).
    pub fn failures(&self) -> Vec<String> {
        let gemm = self.gemms.iter().filter_map(|g| g.verified.as_ref().err());
        let fused = self.fused.iter().filter_map(|f| f.verified.as_ref().err());
        // A layer's passes share its verification: name it once.
        let conv = self
            .convs
            .iter()
            .filter(|c| c.pass == ConvPass::Forward)
            .filter_map(|c| c.verified.as_ref().err());
        let micro = self
            .micro_kernels
            .iter()
            .filter_map(|k| k.verified.as_ref().err());
        gemm.chain(fused).chain(micro).chain(conv).cloned().collect()
    }
}

/// Runs the whole sequence; `say` gets a line before each step.
pub fn run(s: &Settings, say: &(dyn Fn(&str) + Sync)) -> crate::Result<Results> {
    let pool1 = machine::pool(1)?;
    let pool_n = machine::pool(s.threads)?;
    let load_before = machine::load_average();
    let measure = |pass: usize| {
        say(&format!(
            "measuring peak FLOP/s and memory bandwidth (pass {pass} of 2)..."
        ));
        let peak1 = machine::peak_samples(&pool1, s.peak_seconds(), s.runs);
        let peak_n = machine::peak_samples(&pool_n, s.peak_seconds(), s.runs);
        let mut arrays = StreamArrays::new(s.array_bytes());
        let bw1 = machine::bandwidth_samples(&pool1, &mut arrays, s.bandwidth_runs());
        let bw_n = machine::bandwidth_samples(&pool_n, &mut arrays, s.bandwidth_runs());
        (peak1, peak_n, bw1, bw_n, arrays.bytes_each())
    };
    let (mut peak1, mut peak_n, mut bw1, mut bw_n, array_bytes) = measure(1);

    let mut gemms: Vec<GemmResult> = pool_n.install(|| {
        s.shapes()
            .into_iter()
            .map(|shape| {
                say(&format!("GEMM {}...", shape.name));
                let verified = pb::verify_gemm(pb::engine_gemm, &shape);
                let times = match verified {
                    Ok(()) => pb::time_gemm(pb::engine_gemm, &shape, s.runs, s.gemm_budget()),
                    Err(_) => Vec::new(),
                };
                GemmResult {
                    shape,
                    verified,
                    times,
                    stats: None,
                }
            })
            .collect()
    });

    say("fused kernels...");
    let mut fused: Vec<FusedResult> = pool_n.install(|| {
        Fused::ALL
            .iter()
            .map(|&kind| {
                let verified = pb::verify_fused(kind);
                let (elements, times) = match verified {
                    Ok(()) => pb::time_fused(kind, s.fused_elements(), s.runs),
                    Err(_) => (0, Vec::new()),
                };
                FusedResult {
                    kind,
                    verified,
                    elements,
                    threads: if kind.parallel() { s.threads } else { 1 },
                    times,
                    stats: None,
                }
            })
            .collect()
    });

    let micro_kernels = pool1.install(|| kb::run_all(s.runs, s.kernel_seconds(), say));

    let mut convs = Vec::new();
    for model in &s.models {
        for case in ConvCase::of_model(model).map_err(crate::Error::Invalid)? {
            say(&format!("convolution {}...", case.name()));
            let verified = pool_n.install(|| cb::verify_conv(&case, cb::engine_forward, cb::engine_backward));
            let timed = match verified {
                Ok(()) => pool_n.install(|| cb::time_conv(&case, cb::BENCH_ROWS, s.runs, s.gemm_budget())),
                Err(_) => case.passes().into_iter().map(|p| (p, Vec::new())).collect(),
            };
            for (pass, times) in timed {
                convs.push(ConvResult {
                    case: case.clone(),
                    pass,
                    rows: cb::BENCH_ROWS,
                    verified: verified.clone(),
                    times,
                    stats: None,
                });
            }
        }
    }

    let second = measure(2);
    peak1.extend(second.0);
    peak_n.extend(second.1);
    bw1.merge(second.2);
    bw_n.merge(second.3);
    let limits = Limits {
        peak1: Rate::from_samples(&peak1),
        peak_n: Rate::from_samples(&peak_n),
        bw1: bw1.rates(),
        bw_n: bw_n.rates(),
        array_bytes,
        bandwidth_runs: s.bandwidth_runs(),
        load: [load_before, machine::load_average()],
    };
    for g in &mut gemms {
        g.stats = GemmStats::new(&g.shape, &g.times, &limits);
    }
    for f in &mut fused {
        f.stats = FusedStats::new(f.kind, f.elements, &f.times, &limits);
    }
    for c in &mut convs {
        c.stats = GemmStats::from_work(c.flops(), c.min_bytes(), &c.times, &limits);
    }
    let timed: Vec<(&str, GemmStats)> = gemms
        .iter()
        .filter_map(|g| Some((g.shape.name.as_str(), g.stats?)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warnings = verdict::warnings(&limits, &timed, s.threads, cores);
    Ok(Results {
        limits,
        gemms,
        fused,
        convs,
        micro_kernels,
        warnings,
    })
}
