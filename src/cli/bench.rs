//! `simdnet bench`: this machine's limits, and the engine measured against them.
//!
//! In one run: peak fp32 FLOP/s (an FMA loop), STREAM-like memory bandwidth
//! (read, copy, triad), each on one thread and on all threads; then the GEMM
//! on square shapes and on the shapes of training the given networks, with a
//! roofline verdict; then the fused kernels in GB/s; then each SIMD
//! micro-kernel alone on one tile in L1 (one thread, against its peak: what
//! the kernel's own loop gives, apart from packing and the caches); then the
//! convolution layers of the preset CNNs (`--models`), each pass on one
//! training shard per thread (as training runs them), with the same
//! verdict. Every kernel is checked
//! against a plain reference first and is not reported if it fails. `--json`
//! prints the same numbers in a stable schema (see `docs/PERFORMANCE.md`).
//!
//! This file parses the flags and renders; the measuring is
//! [`crate::profile::suite`], the verdicts [`crate::profile::verdict`].

use std::fmt::Write as _;

use super::args::{parse_list, Flag, Parsed, UsageError};
use super::common::{self, THREADS};
use super::CliError;
use crate::error::Error;
use crate::nn::memory;
use crate::profile::bench::{mnist_widths, GemmShape};
use crate::profile::conv_bench::{self, ConvCase};
use crate::profile::facts::{
    caches_json, describe, describe_caches, describe_in_place, describe_micro_kernel, BuildFacts,
};
use crate::profile::json::Json;
use crate::profile::machine::{self, Bandwidth, Rate};
use crate::profile::suite::{self, Results, Settings};
use crate::profile::verdict::{FusedStats, GemmStats, Limits};

/// One line for the command list.
pub const ABOUT: &str = "measure this machine's peak FLOP/s and bandwidth, and the engine against them";

/// The flags of `simdnet bench`.
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
        "models",
        "M,M,..",
        Some("lenet,keras-cnn"),
        "CNN models whose convolution layers to time on a 64-image shard per thread (lenet, keras-cnn; empty: none)",
    ),
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
        "print the results as JSON (schema simdnet-bench/4, see docs/PERFORMANCE.md)",
    ),
    Flag::switch("no-tune-config", "ignore the block sizes saved by `simdnet tune`"),
    Flag::switch(
        "markdown",
        "print the README's performance tables (Markdown, with the machine and this command)",
    ),
];

/// The JSON schema name; bump the number on any incompatible change.
pub const SCHEMA: &str = "simdnet-bench/4";

/// Parses `--models`: preset CNN names separated by commas (empty: none).
pub fn parse_models(s: &str) -> Result<Vec<String>, UsageError> {
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !conv_bench::MODELS.contains(&name) {
            return Err(UsageError(format!(
                "--models: unknown model '{name}' (expected {}, separated by commas, or '' for none)",
                conv_bench::MODELS.join(", ")
            )));
        }
        if !out.iter().any(|m| m == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
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

/// What to measure, from the flags (`--quick` lowers the defaults; explicit flags still win).
fn settings(p: &Parsed) -> Result<Settings, UsageError> {
    let threads = common::threads(p)?;
    let quick = p.switch("quick");
    let given = |name: &str| p.raw(name) != FLAGS.iter().find(|f| f.name == name).and_then(|f| f.default);
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
    let networks = parse_networks(p.raw("layers").unwrap_or(""))?;
    let models = parse_models(p.raw("models").unwrap_or(""))?;
    let quick_default = |name: &str| quick && !given(name);
    Ok(Settings {
        threads,
        networks: if quick_default("layers") {
            vec![vec![16, 16]]
        } else {
            networks
        },
        batch: if quick_default("batch") { 32 } else { batch },
        sizes: if quick_default("sizes") {
            vec![64, 128]
        } else {
            sizes
        },
        runs: if quick_default("runs") { 3 } else { runs },
        quick,
        // --quick: LeNet-5 only (its convolutions take milliseconds).
        models: if quick_default("models") {
            vec!["lenet".to_string()]
        } else {
            models
        },
    })
}

/// Estimated peak memory of a bench run, in bytes: the largest GEMM shape's
/// operands twice (the engine's and the reference's, while verifying), the
/// three bandwidth arrays, the largest fused kernel's operands (five arrays
/// for the optimiser), and the GEMM's packing buffers per thread.
pub fn memory_bytes(set: &Settings) -> u64 {
    let gemm = |s: &GemmShape| {
        let (m, n, k) = (s.m as u64, s.n as u64, s.k as u64);
        let floats = m
            .saturating_mul(k)
            .saturating_add(k.saturating_mul(n))
            .saturating_add(m.saturating_mul(n))
            .saturating_add(n);
        floats.saturating_mul(4 * 2)
    };
    let mut shapes: Vec<GemmShape> = set.sizes.iter().map(|&n| GemmShape::square(n)).collect();
    for hidden in &set.networks {
        shapes.extend(GemmShape::training(&mnist_widths(hidden), set.batch));
    }
    let largest = shapes.iter().map(gemm).max().unwrap_or(0);
    let (array, elements): (u64, u64) = if set.quick {
        (16 << 20, 1 << 18)
    } else {
        (128 << 20, 1 << 24)
    };
    let fused = elements * 20 + (elements / 10 + 1);
    let threads = set.threads as u64 + 1;
    let conv = set
        .models
        .iter()
        .flat_map(|m| ConvCase::of_model(m).unwrap_or_default())
        .map(|c| {
            c.buffer_bytes(conv_bench::BENCH_ROWS)
                .saturating_mul(set.threads as u64)
        })
        .max()
        .unwrap_or(0);
    let largest = largest.max(conv);
    largest
        .saturating_add(3 * array)
        .max(fused)
        .saturating_add(memory::packing_bytes_per_thread().saturating_mul(threads))
        .saturating_add(memory::BASELINE_BYTES)
}

/// Runs `simdnet bench`.
pub fn run(p: &Parsed) -> Result<(), CliError> {
    let settings = settings(p)?;
    let json = p.switch("json");
    let markdown = p.switch("markdown");
    if json && markdown {
        return Err(
            UsageError("--json and --markdown cannot be combined: pick one output format".into()).into(),
        );
    }
    if let Some(w) = crate::simd::native_warning() {
        eprintln!("{w}");
    }
    let tune_msg = crate::profile::tune_config::apply_if_present(p.switch("no-tune-config"))?;
    memory::check(
        memory_bytes(&settings),
        &format!(
            "bench with --batch {} and --layers '{}'",
            settings.batch,
            p.raw("layers").unwrap_or("")
        ),
    )?;
    if let (Some(m), false) = (&tune_msg, json) {
        println!("{m}");
    }
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    let results = suite::run(&settings, &say)?;
    if json {
        print!("{}", to_json(&settings, &results, tune_msg.as_deref()).render());
    } else if markdown {
        print!("{}", to_markdown(&settings, &results, &command_line(p)));
    } else {
        print!("{}", to_text(&settings, &results));
        for w in &results.warnings {
            println!("Warning: {w}");
        }
    }
    let failed = results.failures();
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

/// The command that reproduces this run: `simdnet bench` and the flags given.
fn command_line(p: &Parsed) -> String {
    let mut cmd = String::from("simdnet bench");
    for f in FLAGS {
        if f.name == "markdown" {
            continue;
        }
        match p.raw(f.name) {
            Some(v) if Some(v) != f.default => {
                let _ = write!(cmd, " --{} {}", f.name, v);
            }
            Some(_) => {}
            None if p.switch(f.name) => {
                let _ = write!(cmd, " --{}", f.name);
            }
            None => {}
        }
    }
    cmd.push_str(" --markdown");
    cmd
}

/// The performance tables of the README, as Markdown: a `<!-- measured: ...;
/// command: ... -->` marker line naming the machine and `command`, the machine
/// line (and any warning that the run was disturbed), then the machine's
/// limits, the GEMMs and the fused kernels.
fn to_markdown(set: &Settings, r: &Results, command: &str) -> String {
    let (l, n) = (&r.limits, set.threads);
    let facts = BuildFacts::current();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!-- measured: {}, {}, {} lanes; command: {command} -->",
        machine::cpu_model(),
        facts.simd.isa,
        facts.simd.lanes
    );
    let load: Vec<String> = l.load.iter().flatten().map(|x| format!("{x:.2}")).collect();
    let _ = writeln!(
        s,
        "Measured on {}. GEMM micro-kernel {}, block sizes {}. Medians of {} runs{}. Regenerate with `{command}`.",
        machine::machine_line(n),
        facts.micro_kernel,
        describe(facts.blocks),
        set.runs,
        if load.is_empty() {
            String::new()
        } else {
            format!("; 1-minute load average {}", load.join(" -> "))
        }
    );
    for w in &r.warnings {
        let _ = writeln!(s, "\nWarning from this run: {w}.");
    }
    let threads = |t: usize| {
        if t == 1 {
            "1 thread".to_string()
        } else {
            format!("{t} threads")
        }
    };
    let _ = writeln!(
        s,
        "\n| machine limit | {} | {} |\n|---|---|---|",
        threads(1),
        threads(n)
    );
    let _ = writeln!(
        s,
        "| peak fp32 (FMA loop), GFLOP/s, best / median | {:.1} / {:.1} | {:.1} / {:.1} |",
        l.peak1.best, l.peak1.median, l.peak_n.best, l.peak_n.median
    );
    for (name, one, all) in [
        ("read", &l.bw1.read, &l.bw_n.read),
        ("copy", &l.bw1.copy, &l.bw_n.copy),
        ("triad", &l.bw1.triad, &l.bw_n.triad),
    ] {
        let _ = writeln!(
            s,
            "| memory {name}, GB/s | {:.1} | {:.1} |",
            one.median, all.median
        );
    }
    let _ = writeln!(
        s,
        "\n| GEMM on {} (m x n x k) | GFLOP/s | % of peak | bound, % of roof |\n|---|---|---|---|",
        threads(n)
    );
    for g in &r.gemms {
        let sh = &g.shape;
        let _ = match (&g.verified, &g.stats) {
            (Ok(()), Some(st)) => writeln!(
                s,
                "| {} ({} x {} x {}) | {:.1} | {:.0}% | {}, {:.0}% |",
                sh.name,
                sh.m,
                sh.n,
                sh.k,
                st.gflops,
                st.percent_of_peak,
                st.bound(),
                st.percent_of_roof
            ),
            _ => writeln!(
                s,
                "| {} ({} x {} x {}) | failed verification | - | - |",
                sh.name, sh.m, sh.n, sh.k
            ),
        };
    }
    if !r.convs.is_empty() {
        let _ = writeln!(
            s,
            "\n| convolution on {}, a {}-image shard per thread | pass | GFLOP/s | % of peak | bound, % of roof |\n|---|---|---|---|---|",
            threads(n),
            conv_bench::BENCH_ROWS
        );
        for c in &r.convs {
            let _ = match &c.stats {
                Some(st) => writeln!(
                    s,
                    "| {} | {} | {:.1} | {:.0}% | {}, {:.0}% |",
                    c.case.name(),
                    c.pass.name(),
                    st.gflops,
                    st.percent_of_peak,
                    st.bound(),
                    st.percent_of_roof
                ),
                None => writeln!(
                    s,
                    "| {} | {} | failed verification | - | - |",
                    c.case.name(),
                    c.pass.name()
                ),
            };
        }
    }
    let _ = writeln!(
        s,
        "\n| fused kernel | threads | GB/s | % of triad |\n|---|---|---|---|"
    );
    for f in &r.fused {
        let _ = match &f.stats {
            Some(st) => writeln!(
                s,
                "| {} | {} | {:.1} | {:.0}% |",
                f.kind.name(),
                f.threads,
                st.gbs,
                st.percent_of_bandwidth
            ),
            None => writeln!(
                s,
                "| {} | {} | failed verification | - |",
                f.kind.name(),
                f.threads
            ),
        };
    }
    s
}

fn build_line(facts: &BuildFacts, threads: usize) -> String {
    let cpu = crate::simd::cpu_features();
    let cpu: Vec<&str> = cpu.iter().map(String::as_str).collect();
    format!(
        "CPU: {}: {}, features {}\nBuild: SIMD {}\nCaches: {}\nHuge pages: {}\nGEMM: {}, micro-kernel {}, block sizes {}, {}; {threads} threads",
        machine::cpu_model(),
        crate::simd::isa_of(&cpu),
        if cpu.is_empty() { "none".to_string() } else { cpu.join(" ") },
        facts.simd.describe(),
        describe_caches(&facts.caches),
        crate::huge_pages::describe(),
        "BLIS-style",
        describe_micro_kernel(facts.micro_kernel),
        describe(facts.blocks),
        describe_in_place(facts.wide_in_place)
    )
}

fn to_text(set: &Settings, r: &Results) -> String {
    let (l, n) = (&r.limits, set.threads);
    let mut s = String::new();
    let _ = writeln!(s, "{}", build_line(&BuildFacts::current(), n));
    let load: Vec<String> = l.load.iter().flatten().map(|x| format!("{x:.2}")).collect();
    if !load.is_empty() {
        let _ = writeln!(s, "Load average (1 min) before -> after: {}", load.join(" -> "));
    }
    if let Some(ns) = machine::core_round_trip_ns() {
        let _ = writeln!(
            s,
            "Core-to-core round trip: {ns:.0} ns (a cache line between two threads; every fork/join of a training step pays a few)"
        );
    }
    let _ = writeln!(
        s,
        "\nPeak fp32 (FMA loop, {} x {}-lane accumulators per thread; best / median of 2 x {} runs, before and after the engine):",
        machine::ACCUMULATORS,
        machine::LANES,
        set.runs
    );
    for (label, p) in [
        ("1 thread".to_string(), &l.peak1),
        (format!("{n} thread(s)"), &l.peak_n),
    ] {
        let _ = writeln!(s, "  {label:<11} {:>7.1} / {:>7.1} GFLOP/s", p.best, p.median);
    }
    let _ = writeln!(
        s,
        "\nMemory bandwidth (STREAM-like, 3 arrays of {} MiB; GB/s, best / median of 2 x {} runs):",
        l.array_bytes >> 20,
        l.bandwidth_runs
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
        set.runs
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>5} {:>5} {:>5} {:>10} {:>10} {:>8} {:>7} {:>7} {:>8} {:>7}",
        "shape", "m", "n", "k", "median ms", "best ms", "GFLOP/s", "% peak", "flop/B", "bound", "% roof"
    );
    for g in &r.gemms {
        let sh = &g.shape;
        let _ = match (&g.verified, &g.stats) {
            (Ok(()), Some(st)) => writeln!(
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
                st.bound(),
                st.percent_of_roof
            ),
            _ => writeln!(
                s,
                "  {:<26} {:>5} {:>5} {:>5}  FAILED VERIFICATION, not timed: {}",
                sh.name,
                sh.m,
                sh.n,
                sh.k,
                g.verified.as_ref().err().map_or("no timing", |e| e.as_str())
            ),
        };
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
    for f in &r.fused {
        let _ = match &f.stats {
            Some(st) => writeln!(
                s,
                "  {:<26} {:>10} {:>9} {:>10.3} {:>8.2} {:>7.1}%",
                f.kind.name(),
                f.elements,
                f.threads,
                st.median_s * 1e3,
                st.gbs,
                st.percent_of_bandwidth
            ),
            None => writeln!(
                s,
                "  {:<26} FAILED VERIFICATION, not timed: {}",
                f.kind.name(),
                f.verified.as_ref().err().map_or("no timing", |e| e.as_str())
            ),
        };
    }
    s.push_str(&micro_kernel_text(r));
    s.push_str(&conv_text(set, r));
    s
}

/// The micro-kernels' table of the text report: each alone on one tile in
/// L1, against the 1-thread peak.
fn micro_kernel_text(r: &Results) -> String {
    let mut s = String::new();
    let peak = r.limits.peak1.best;
    let _ = writeln!(
        s,
        "\nMicro-kernels alone, on 1 thread, each on one tile whose packed panels sit in L1 (the most its loop gives on this core; the GEMM rows above add packing, edge tiles and C's traffic; median of up to {} runs, % of the 1-thread peak):",
        r.micro_kernels.iter().map(|k| k.samples.len()).max().unwrap_or(0)
    );
    let _ = writeln!(
        s,
        "  {:<14} {:>7} {:>6} {:>8} {:>8} {:>7}  used for (products of depth 512)",
        "kernel", "tile", "depth", "GFLOP/s", "best", "% peak"
    );
    for k in &r.micro_kernels {
        let tile = format!("{}x{}", k.mr, k.nr);
        let _ = match &k.verified {
            Ok(()) => {
                let rate = Rate::from_samples(&k.samples);
                writeln!(
                    s,
                    "  {:<14} {:>7} {:>6} {:>8.1} {:>8.1} {:>6.1}%  {}",
                    k.name,
                    tile,
                    k.kc,
                    rate.median,
                    rate.best,
                    100.0 * rate.median / peak,
                    k.role
                )
            }
            Err(e) => writeln!(
                s,
                "  {:<14} {:>7}  FAILED VERIFICATION, not timed: {e}",
                k.name, tile
            ),
        };
    }
    s
}

/// The convolution table of the text report (nothing without `--models`).
fn conv_text(set: &Settings, r: &Results) -> String {
    let mut s = String::new();
    if r.convs.is_empty() {
        return s;
    }
    let n = set.threads;
    let _ = writeln!(
        s,
        "\nConvolutions on {n} thread(s), one {}-image training shard per thread at once, as training runs them; times per shard (median of up to {} runs; useful FLOPs 2.rows.oh.ow.c_out.kh.kw.c_in per pass; dx timed alone from the dW pass's dz; roof as for the GEMMs):",
        conv_bench::BENCH_ROWS,
        set.runs
    );
    let _ = writeln!(
        s,
        "  {:<34} {:>4} {:>7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>8} {:>7}",
        "layer", "pass", "MFLOP", "median ms", "best ms", "GFLOP/s", "% peak", "flop/B", "bound", "% roof"
    );
    for c in &r.convs {
        let _ = match &c.stats {
            Some(st) => writeln!(
                s,
                "  {:<34} {:>4} {:>7.1} {:>10.3} {:>10.3} {:>8.2} {:>6.1}% {:>7.1} {:>8} {:>6.1}%",
                c.case.name(),
                c.pass.name(),
                c.flops() * 1e-6,
                st.median_s * 1e3,
                st.best_s * 1e3,
                st.gflops,
                st.percent_of_peak,
                st.intensity,
                st.bound(),
                st.percent_of_roof
            ),
            None => writeln!(
                s,
                "  {:<34} {:>4}  FAILED VERIFICATION, not timed: {}",
                c.case.name(),
                c.pass.name(),
                c.verified.as_ref().err().map_or("no timing", |e| e.as_str())
            ),
        };
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

fn machine_json(set: &Settings, l: &Limits, tune: Option<&str>) -> Json {
    let facts = BuildFacts::current();
    let b = facts.blocks;
    Json::obj([
        ("threads", Json::Int(set.threads as i64)),
        ("simd", facts.simd.to_json()),
        ("caches", caches_json(&facts.caches)),
        ("micro_kernel", Json::str(facts.micro_kernel)),
        (
            "fma_512_ratio",
            Json::opt(crate::simd::fma_width::ratio_512_to_256()),
        ),
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
        ("quick", Json::Bool(set.quick)),
        ("runs", Json::Int(set.runs as i64)),
    ])
}

/// The results in the schema [`SCHEMA`] (see `docs/PERFORMANCE.md`).
fn to_json(set: &Settings, r: &Results, tune: Option<&str>) -> Json {
    let l = &r.limits;
    let error = |v: &Result<(), String>| v.as_ref().err().map_or(Json::Null, Json::str);
    let gemm = r.gemms.iter().map(|g| {
        let sh = &g.shape;
        let f = |x: fn(&GemmStats) -> f64| Json::opt(g.stats.as_ref().map(x));
        Json::obj([
            ("name", Json::str(&sh.name)),
            ("m", Json::Int(sh.m as i64)),
            ("n", Json::Int(sh.n as i64)),
            ("k", Json::Int(sh.k as i64)),
            ("verified", Json::Bool(g.verified.is_ok())),
            ("error", error(&g.verified)),
            ("median_s", f(|s| s.median_s)),
            ("best_s", f(|s| s.best_s)),
            ("gflops", f(|s| s.gflops)),
            ("percent_of_peak", f(|s| s.percent_of_peak)),
            ("intensity_flops_per_byte", Json::Num(sh.intensity())),
            ("roof_gflops", f(|s| s.roof)),
            (
                "bound",
                g.stats.as_ref().map_or(Json::Null, |s| Json::str(s.bound())),
            ),
            ("percent_of_roof", f(|s| s.percent_of_roof)),
        ])
    });
    let kernels = r.fused.iter().map(|k| {
        let f = |x: fn(&FusedStats) -> f64| Json::opt(k.stats.as_ref().map(x));
        Json::obj([
            ("name", Json::str(k.kind.name())),
            ("verified", Json::Bool(k.verified.is_ok())),
            ("error", error(&k.verified)),
            ("elements", Json::Int(k.elements as i64)),
            ("bytes_per_element", Json::Int(k.kind.bytes_per_element() as i64)),
            ("threads", Json::Int(k.threads as i64)),
            ("median_s", f(|s| s.median_s)),
            ("gbs", f(|s| s.gbs)),
            ("percent_of_bandwidth", f(|s| s.percent_of_bandwidth)),
        ])
    });
    let conv = r.convs.iter().map(|c| {
        let f = |x: fn(&GemmStats) -> f64| Json::opt(c.stats.as_ref().map(x));
        let g = &c.case.conv.geometry;
        let shape = |i: crate::geometry::ImageShape| {
            Json::Arr(vec![
                Json::Int(i.height() as i64),
                Json::Int(i.width() as i64),
                Json::Int(i.channels() as i64),
            ])
        };
        Json::obj([
            ("name", Json::str(c.case.name())),
            ("model", Json::str(&c.case.model)),
            ("layer", Json::Int(c.case.layer as i64)),
            ("pass", Json::str(c.pass.name())),
            ("input_hwc", shape(g.input())),
            ("output_hwc", shape(g.output())),
            (
                "kernel_hw",
                Json::Arr(vec![
                    Json::Int(g.kernel_h() as i64),
                    Json::Int(g.kernel_w() as i64),
                ]),
            ),
            ("padding", Json::str(g.padding().to_string())),
            ("images", Json::Int(c.rows as i64)),
            ("flops", Json::Num(c.flops())),
            ("verified", Json::Bool(c.verified.is_ok())),
            ("error", error(&c.verified)),
            ("median_s", f(|s| s.median_s)),
            ("best_s", f(|s| s.best_s)),
            ("gflops", f(|s| s.gflops)),
            ("percent_of_peak", f(|s| s.percent_of_peak)),
            ("intensity_flops_per_byte", Json::Num(c.flops() / c.min_bytes())),
            ("roof_gflops", f(|s| s.roof)),
            (
                "bound",
                c.stats.as_ref().map_or(Json::Null, |s| Json::str(s.bound())),
            ),
            ("percent_of_roof", f(|s| s.percent_of_roof)),
        ])
    });
    let micro_kernels = r.micro_kernels.iter().map(|k| {
        let rate = (k.verified.is_ok()).then(|| Rate::from_samples(&k.samples));
        Json::obj([
            ("name", Json::str(k.name)),
            ("mr", Json::Int(k.mr as i64)),
            ("nr", Json::Int(k.nr as i64)),
            ("kc", Json::Int(k.kc as i64)),
            ("used_for", Json::str(&k.role)),
            ("verified", Json::Bool(k.verified.is_ok())),
            ("error", error(&k.verified)),
            ("gflops", rate.as_ref().map_or(Json::Null, rate_json)),
            (
                "percent_of_peak",
                Json::opt(rate.map(|r| 100.0 * r.median / l.peak1.best)),
            ),
        ])
    });
    Json::obj([
        ("schema", Json::str(SCHEMA)),
        ("machine", machine_json(set, l, tune)),
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
        ("gemm", Json::Arr(gemm.collect())),
        ("kernels", Json::Arr(kernels.collect())),
        ("conv", Json::Arr(conv.collect())),
        ("micro_kernels", Json::Arr(micro_kernels.collect())),
        ("warnings", Json::Arr(r.warnings.iter().map(Json::str).collect())),
    ])
}
