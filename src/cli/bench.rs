//! `simdnet bench`: this machine's limits, and the engine measured against them.
//!
//! In one run: peak fp32 FLOP/s (an FMA loop), STREAM-like memory bandwidth
//! (read, copy, triad), each on one thread and on all threads; then the GEMM
//! on square shapes and on the shapes of training the given networks, with a
//! roofline verdict; then the fused kernels in GB/s. Every kernel is checked
//! against a plain reference first and is not reported if it fails. `--json`
//! prints the same numbers in a stable schema (see `docs/PERFORMANCE.md`).

use std::fmt::Write as _;

use super::args::{parse_list, Flag, Parsed, UsageError};
use super::common::THREADS;
use super::CliError;
use crate::data::NUM_CLASSES;
use crate::error::Error;
use crate::profile::bench::{self as pb, Fused, GemmShape};
use crate::profile::engine_knobs as knobs;
use crate::profile::json::Json;
use crate::profile::machine::{self, median, Bandwidth, Rate, StreamArrays};

pub const ABOUT: &str = "measure this machine's peak FLOP/s and bandwidth, and the engine against them";

pub const FLAGS: &[Flag] = &[
    THREADS,
    Flag::value(
        "layers",
        "W,W;..",
        Some("16,16;512,512"),
        "hidden widths of the networks whose training GEMMs to time (';' between networks)",
    ),
    Flag::value("batch", "N", Some("128"), "mini-batch size of those networks"),
    Flag::value(
        "sizes",
        "N,N,..",
        Some("256,512,1024"),
        "square GEMM sizes (empty: none)",
    ),
    Flag::value(
        "runs",
        "N",
        Some("5"),
        "timed repetitions of each measurement (the median is reported)",
    ),
    Flag::switch(
        "quick",
        "a fast, rough run (small sizes and arrays) for tests and CI",
    ),
    Flag::switch(
        "json",
        "print the results as JSON (schema simdnet-bench/1, see docs/PERFORMANCE.md)",
    ),
    Flag::switch("no-tune-config", "ignore the block sizes saved by `simdnet tune`"),
];

/// Inputs of an MNIST network (28 x 28 pixels).
pub const MNIST_PIXELS: usize = 28 * 28;

/// The JSON schema name; bump the number on any incompatible change.
pub const SCHEMA: &str = "simdnet-bench/1";

/// What to measure, checked.
struct Plan {
    threads: usize,
    networks: Vec<Vec<usize>>,
    batch: usize,
    sizes: Vec<usize>,
    runs: usize,
    quick: bool,
    json: bool,
}

/// Parses `--layers` as networks separated by `;`, each a list of hidden widths.
pub fn parse_networks(s: &str) -> Result<Vec<Vec<usize>>, UsageError> {
    s.split(';')
        .map(|net| {
            let hidden = parse_list::<usize>(net)
                .map_err(|e| UsageError(format!("invalid --layers: {e} (expected e.g. 16,16;512,512)")))?;
            if hidden.iter().any(|&w| w == 0 || w > 1 << 16) {
                return Err(UsageError(format!(
                    "--layers: widths must be between 1 and 65536, got '{}'",
                    net.trim()
                )));
            }
            Ok(hidden)
        })
        .collect()
}

fn plan(p: &Parsed) -> Result<Plan, UsageError> {
    let threads = match p.opt::<usize>("threads")? {
        Some(0) => return Err(UsageError("--threads must be at least 1".into())),
        Some(n) if n > 1024 => return Err(UsageError(format!("--threads {n} is too many (at most 1024)"))),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let quick = p.switch("quick");
    let batch: usize = p.get("batch")?;
    if batch == 0 || batch > 1 << 16 {
        return Err(UsageError("--batch must be between 1 and 65536".into()));
    }
    let sizes = parse_list::<usize>(p.raw("sizes").unwrap_or(""))
        .map_err(|e| UsageError(format!("invalid --sizes: {e} (expected e.g. 256,512)")))?;
    if let Some(s) = sizes.iter().find(|&&s| s == 0 || s > 8192) {
        return Err(UsageError(format!("--sizes: {s} is out of range (1..=8192)")));
    }
    let runs: usize = p.get("runs")?;
    if runs == 0 || runs > 1000 {
        return Err(UsageError("--runs must be between 1 and 1000".into()));
    }
    let given = |name: &str| p.raw(name) != FLAGS.iter().find(|f| f.name == name).and_then(|f| f.default);
    let mut networks = parse_networks(p.raw("layers").unwrap_or(""))?;
    let mut sizes = sizes;
    let mut batch = batch;
    if quick {
        // Smaller defaults; explicit flags still win.
        if !given("layers") {
            networks = vec![vec![16, 16]];
        }
        if !given("sizes") {
            sizes = vec![64, 128];
        }
        if !given("batch") {
            batch = 32;
        }
    }
    Ok(Plan {
        threads,
        networks,
        batch,
        sizes,
        runs: if quick && !given("runs") { 3 } else { runs },
        quick,
        json: p.switch("json"),
    })
}

/// The machine's limits as measured.
struct Limits {
    peak1: Rate,
    peak_n: Rate,
    bw1: Bandwidth,
    bw_n: Bandwidth,
    array_bytes: usize,
    /// The 1-minute load average before and after the run.
    load: [Option<f64>; 2],
}

/// Signs that the measurements were disturbed (e.g. by other work on the machine).
fn warnings(l: &Limits, gemms: &[GemmRow], threads: usize) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(g) = gemms
        .iter()
        .find(|g| gemm_stats(g, l).is_some_and(|s| s.percent_of_peak > 100.0))
    {
        w.push(format!(
            "the GEMM {} ran faster than the measured peak: the peak measurement was disturbed by other load; rerun on a quiet machine",
            g.shape.name
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if l.peak_n.best < 0.75 * l.peak1.best * threads.min(cores) as f64 {
        w.push(format!(
            "the all-threads peak ({:.1} GFLOP/s) scales poorly from one thread ({:.1}): other work is probably sharing the cores",
            l.peak_n.best, l.peak1.best
        ));
    }
    let busy: Vec<f64> = l.load.iter().flatten().copied().collect();
    if busy.iter().any(|&x| x > 0.5 * cores as f64) {
        w.push(format!(
            "the load average was {} on {cores} cores during the run: numbers are likely low",
            busy.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" -> ")
        ));
    }
    w
}

struct GemmRow {
    shape: GemmShape,
    verified: Result<(), String>,
    /// Run times (empty when not verified).
    times: Vec<f64>,
}

struct FusedRow {
    kind: Fused,
    verified: Result<(), String>,
    elements: usize,
    times: Vec<f64>,
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let plan = plan(p)?;
    let tune_msg = crate::profile::tune_config::apply_if_present(p.switch("no-tune-config"))?;
    if let (Some(m), false) = (&tune_msg, plan.json) {
        println!("{m}");
    }
    let pool1 = machine::pool(1)?;
    let pool_n = machine::pool(plan.threads)?;
    let say = |s: &str| {
        if !plan.json {
            eprintln!("{s}");
        }
    };

    // 1. The machine: measured now and again after the engine (other work on
    // the machine only ever lowers a measurement, so the best of both is kept).
    let load_before = machine::load_average();
    let (peak_secs, array_bytes) = if plan.quick {
        (0.02, 16 << 20)
    } else {
        (0.25, 128 << 20)
    };
    let bw_runs = if plan.quick { plan.runs } else { 2 * plan.runs };
    let measure = |pass: usize| {
        say(&format!(
            "measuring peak FLOP/s and memory bandwidth (pass {pass} of 2)..."
        ));
        let peak1 = machine::peak_samples(&pool1, peak_secs, plan.runs);
        let peak_n = machine::peak_samples(&pool_n, peak_secs, plan.runs);
        let mut arrays = StreamArrays::new(array_bytes);
        let bw1 = machine::bandwidth_samples(&pool1, &mut arrays, bw_runs);
        let bw_n = machine::bandwidth_samples(&pool_n, &mut arrays, bw_runs);
        (peak1, peak_n, bw1, bw_n, arrays.bytes_each())
    };
    let first = measure(1);

    // 2. The GEMM.
    let mut shapes: Vec<GemmShape> = plan.sizes.iter().map(|&n| GemmShape::square(n)).collect();
    for hidden in &plan.networks {
        let mut widths = vec![MNIST_PIXELS];
        widths.extend_from_slice(hidden);
        widths.push(NUM_CLASSES);
        shapes.extend(GemmShape::training(&widths, plan.batch));
    }
    let budget = if plan.quick { 0.2 } else { 1.5 };
    let gemms: Vec<GemmRow> = pool_n.install(|| {
        shapes
            .into_iter()
            .map(|shape| {
                say(&format!("GEMM {}...", shape.name));
                let verified = pb::verify_gemm(pb::engine_gemm, &shape);
                let times = match verified {
                    Ok(()) => pb::time_gemm(pb::engine_gemm, &shape, plan.runs, budget),
                    Err(_) => Vec::new(),
                };
                GemmRow {
                    shape,
                    verified,
                    times,
                }
            })
            .collect()
    });

    // 3. The fused kernels.
    say("fused kernels...");
    let elements = if plan.quick { 1 << 18 } else { 1 << 24 };
    let fused: Vec<FusedRow> = pool_n.install(|| {
        Fused::ALL
            .iter()
            .map(|&kind| {
                let verified = pb::verify_fused(kind);
                let (elements, times) = match verified {
                    Ok(()) => pb::time_fused(kind, elements, plan.runs),
                    Err(_) => (0, Vec::new()),
                };
                FusedRow {
                    kind,
                    verified,
                    elements,
                    times,
                }
            })
            .collect()
    });

    let (mut peak1, mut peak_n, mut bw1, mut bw_n, array_bytes) = first;
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
        load: [load_before, machine::load_average()],
    };
    let warnings = warnings(&limits, &gemms, plan.threads);
    if plan.json {
        print!(
            "{}",
            to_json(&plan, &limits, &gemms, &fused, tune_msg.as_deref(), &warnings).render()
        );
    } else {
        print!("{}", to_text(&plan, &limits, &gemms, &fused));
        for w in &warnings {
            println!("Warning: {w}");
        }
    }
    let failed: Vec<String> = gemms
        .iter()
        .filter_map(|g| g.verified.as_ref().err().cloned())
        .chain(fused.iter().filter_map(|f| f.verified.as_ref().err().cloned()))
        .collect();
    if !failed.is_empty() {
        return Err(Error::Invalid(format!(
            "{} kernel(s) failed verification and were not timed: {}",
            failed.len(),
            failed.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// Derived numbers of one GEMM row.
struct GemmStats {
    median_s: f64,
    best_s: f64,
    gflops: f64,
    percent_of_peak: f64,
    intensity: f64,
    roof: f64,
    compute_bound: bool,
    percent_of_roof: f64,
}

/// Roofline against the all-threads peak and triad bandwidth (the GEMM runs on the whole pool).
fn gemm_stats(g: &GemmRow, l: &Limits) -> Option<GemmStats> {
    if g.times.is_empty() {
        return None;
    }
    let median_s = median(&g.times);
    let best_s = g.times.iter().copied().fold(f64::INFINITY, f64::min);
    let gflops = g.shape.flops() / median_s * 1e-9;
    let intensity = g.shape.intensity();
    let (peak, bw) = (l.peak_n.best, l.bw_n.triad.best);
    let roof = peak.min(intensity * bw);
    Some(GemmStats {
        median_s,
        best_s,
        gflops,
        percent_of_peak: 100.0 * gflops / peak,
        intensity,
        roof,
        compute_bound: intensity * bw >= peak,
        percent_of_roof: 100.0 * gflops / roof,
    })
}

/// GB/s of a fused kernel and the bandwidth it is compared with.
fn fused_stats(f: &FusedRow, l: &Limits) -> Option<(f64, f64, f64)> {
    if f.times.is_empty() {
        return None;
    }
    let m = median(&f.times);
    let gbs = (f.elements * f.kind.bytes_per_element()) as f64 / m * 1e-9;
    let roof = if f.kind.parallel() {
        l.bw_n.triad.best
    } else {
        l.bw1.triad.best
    };
    Some((m, gbs, 100.0 * gbs / roof))
}

fn build_line(threads: usize) -> String {
    let feats: Vec<String> = knobs::target_features()
        .iter()
        .map(|(n, on)| format!("{n} {}", if *on { "yes" } else { "no" }))
        .collect();
    format!(
        "Build: SIMD width {} f32 lanes ({}); GEMM: {}, micro-kernel {}, block sizes {}; {threads} threads",
        knobs::simd_width(),
        feats.join(", "),
        "BLIS-style",
        knobs::micro_kernel_name(),
        knobs::describe(knobs::block_sizes())
    )
}

fn to_text(plan: &Plan, l: &Limits, gemms: &[GemmRow], fused: &[FusedRow]) -> String {
    let mut s = String::new();
    let n = plan.threads;
    let _ = writeln!(s, "{}", build_line(n));
    let load: Vec<String> = l.load.iter().flatten().map(|x| format!("{x:.2}")).collect();
    if !load.is_empty() {
        let _ = writeln!(s, "Load average (1 min) before -> after: {}", load.join(" -> "));
    }
    let _ = writeln!(
        s,
        "\nPeak fp32 (FMA loop, {} x {}-lane accumulators per thread; best / median of 2 x {} runs, before and after the engine):",
        machine::ACCUMULATORS,
        machine::LANES,
        plan.runs
    );
    let _ = writeln!(
        s,
        "  {:<11} {:>7.1} / {:>7.1} GFLOP/s",
        "1 thread", l.peak1.best, l.peak1.median
    );
    let _ = writeln!(
        s,
        "  {:<11} {:>7.1} / {:>7.1} GFLOP/s",
        format!("{n} thread(s)"),
        l.peak_n.best,
        l.peak_n.median
    );
    let _ = writeln!(
        s,
        "\nMemory bandwidth (STREAM-like, 3 arrays of {} MiB; GB/s, best / median of 2 x {} runs):",
        l.array_bytes >> 20,
        if plan.quick { plan.runs } else { 2 * plan.runs }
    );
    let _ = writeln!(s, "  {:<11} {:>15} {:>15} {:>15}", "", "read", "copy", "triad");
    for (label, b) in [
        ("1 thread".to_string(), &l.bw1),
        (format!("{n} thread(s)"), &l.bw_n),
    ] {
        let r = |r: &Rate| format!("{:.1} / {:.1}", r.best, r.median);
        let _ = writeln!(
            s,
            "  {label:<11} {:>15} {:>15} {:>15}",
            r(&b.read),
            r(&b.copy),
            r(&b.triad)
        );
    }
    let _ = writeln!(
        s,
        "\nGEMM on {n} thread(s) (median of up to {} runs; roof = min(peak, intensity x triad bandwidth) of {n} thread(s)):",
        plan.runs
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>5} {:>5} {:>5} {:>10} {:>10} {:>8} {:>7} {:>7} {:>8} {:>7}",
        "shape", "m", "n", "k", "median ms", "best ms", "GFLOP/s", "% peak", "flop/B", "bound", "% roof"
    );
    for g in gemms {
        let sh = &g.shape;
        match (&g.verified, gemm_stats(g, l)) {
            (Ok(()), Some(st)) => {
                let _ = writeln!(
                    s,
                    "  {:<26} {:>5} {:>5} {:>5} {:>10.3} {:>10.3} {:>8.2} {:>6.1}% {:>7.1} {:>8} {:>6.1}%",
                    sh.name,
                    sh.m,
                    sh.n,
                    sh.k,
                    st.median_s * 1e3,
                    st.best_s * 1e3,
                    st.gflops,
                    st.percent_of_peak,
                    st.intensity,
                    if st.compute_bound { "compute" } else { "memory" },
                    st.percent_of_roof
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "  {:<26} {:>5} {:>5} {:>5}  FAILED VERIFICATION, not timed: {}",
                    sh.name,
                    sh.m,
                    sh.n,
                    sh.k,
                    g.verified.as_ref().err().map_or("no timing", |e| e.as_str())
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nFused kernels (GB/s counted like STREAM; compared with the triad bandwidth of the threads they use):"
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>10} {:>9} {:>10} {:>8} {:>8}",
        "kernel", "elements", "threads", "median ms", "GB/s", "% bw"
    );
    for f in fused {
        match fused_stats(f, l) {
            Some((m, gbs, pct)) => {
                let _ = writeln!(
                    s,
                    "  {:<26} {:>10} {:>9} {:>10.3} {:>8.2} {:>7.1}%",
                    f.kind.name(),
                    f.elements,
                    if f.kind.parallel() { n } else { 1 },
                    m * 1e3,
                    gbs,
                    pct
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {:<26} FAILED VERIFICATION, not timed: {}",
                    f.kind.name(),
                    f.verified.as_ref().err().map_or("no timing", |e| e.as_str())
                );
            }
        }
    }
    s
}

fn rate_json(r: &Rate) -> Json {
    Json::obj([("best", Json::Num(r.best)), ("median", Json::Num(r.median))])
}

fn bw_json(b: &Bandwidth) -> Json {
    Json::obj([
        ("read", rate_json(&b.read)),
        ("copy", rate_json(&b.copy)),
        ("triad", rate_json(&b.triad)),
    ])
}

fn to_json(
    plan: &Plan,
    l: &Limits,
    gemms: &[GemmRow],
    fused: &[FusedRow],
    tune: Option<&str>,
    warnings: &[String],
) -> Json {
    let b = knobs::block_sizes();
    let machine = Json::obj([
        ("threads", Json::Int(plan.threads as i64)),
        ("simd_width", Json::Int(knobs::simd_width() as i64)),
        (
            "target_features",
            Json::obj(
                knobs::target_features()
                    .into_iter()
                    .map(|(n, on)| (n, Json::Bool(on))),
            ),
        ),
        // Kept for schema stability: always true since the BLIS-style GEMM landed.
        ("fast_gemm", Json::Bool(true)),
        ("micro_kernel", Json::str(knobs::micro_kernel_name())),
        (
            "block_sizes",
            Json::obj([
                ("mc", Json::Int(b.mc as i64)),
                ("kc", Json::Int(b.kc as i64)),
                ("nc", Json::Int(b.nc as i64)),
            ]),
        ),
        ("tune_config", tune.map_or(Json::Null, Json::str)),
        (
            "load_average",
            Json::Arr(l.load.iter().map(|x| Json::opt(*x)).collect()),
        ),
        ("quick", Json::Bool(plan.quick)),
        ("runs", Json::Int(plan.runs as i64)),
    ]);
    let gemm = gemms
        .iter()
        .map(|g| {
            let sh = &g.shape;
            let st = gemm_stats(g, l);
            let f = |x: fn(&GemmStats) -> f64| Json::opt(st.as_ref().map(x));
            Json::obj([
                ("name", Json::str(&sh.name)),
                ("m", Json::Int(sh.m as i64)),
                ("n", Json::Int(sh.n as i64)),
                ("k", Json::Int(sh.k as i64)),
                ("verified", Json::Bool(g.verified.is_ok())),
                ("error", g.verified.as_ref().err().map_or(Json::Null, Json::str)),
                ("median_s", f(|s| s.median_s)),
                ("best_s", f(|s| s.best_s)),
                ("gflops", f(|s| s.gflops)),
                ("percent_of_peak", f(|s| s.percent_of_peak)),
                ("intensity_flops_per_byte", Json::Num(sh.intensity())),
                ("roof_gflops", f(|s| s.roof)),
                (
                    "bound",
                    st.as_ref().map_or(Json::Null, |s| {
                        Json::str(if s.compute_bound { "compute" } else { "memory" })
                    }),
                ),
                ("percent_of_roof", f(|s| s.percent_of_roof)),
            ])
        })
        .collect();
    let kernels = fused
        .iter()
        .map(|k| {
            let st = fused_stats(k, l);
            Json::obj([
                ("name", Json::str(k.kind.name())),
                ("verified", Json::Bool(k.verified.is_ok())),
                ("error", k.verified.as_ref().err().map_or(Json::Null, Json::str)),
                ("elements", Json::Int(k.elements as i64)),
                ("bytes_per_element", Json::Int(k.kind.bytes_per_element() as i64)),
                (
                    "threads",
                    Json::Int(if k.kind.parallel() { plan.threads } else { 1 } as i64),
                ),
                ("median_s", Json::opt(st.map(|s| s.0))),
                ("gbs", Json::opt(st.map(|s| s.1))),
                ("percent_of_bandwidth", Json::opt(st.map(|s| s.2))),
            ])
        })
        .collect();
    Json::obj([
        ("schema", Json::str(SCHEMA)),
        ("machine", machine),
        (
            "peak_gflops",
            Json::obj([
                ("one_thread", rate_json(&l.peak1)),
                ("all_threads", rate_json(&l.peak_n)),
            ]),
        ),
        (
            "bandwidth_gbs",
            Json::obj([
                ("array_bytes", Json::Int(l.array_bytes as i64)),
                ("one_thread", bw_json(&l.bw1)),
                ("all_threads", bw_json(&l.bw_n)),
            ]),
        ),
        ("gemm", Json::Arr(gemm)),
        ("kernels", Json::Arr(kernels)),
        ("warnings", Json::Arr(warnings.iter().map(Json::str).collect())),
    ])
}
