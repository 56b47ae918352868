//! The `train --profile` table: where the training time went.
//!
//! Two views of the same timers (see [`crate::trace`]):
//! - **thread time** (`thread-s`): each timer's duration summed over every
//!   thread that ran it. Shards of a mini-batch run in parallel, so kernel
//!   sums can exceed the wall time. Rates (GFLOP/s, GB/s) are per thread:
//!   work divided by thread time.
//! - **wall time** (`wall-s`, `% wall`): each instant of wall time during
//!   which `k` timers were open is split `1/k` to each of them, so the column
//!   adds up to the wall time covered by at least one timer; the rest of the
//!   wall time ran in no timer at all (progress output, rayon scheduling).
//!
//! The fork/join row is a container timer around each parallel section of
//! shards: it only gets the wall time during which no kernel timer was open
//! on any thread (waking the workers, stealing, joining).
//!
//! The compute limit: the GEMMs' floating-point work (training, and the
//! validation pass) at the FMA peak of the run's threads, measured right
//! after training. The summary says how far the run is from it and splits
//! the rest of the wall time into five plain parts: GEMMs slower than peak,
//! element-wise work between them, fetching the next examples from
//! memory, validation beyond its GEMMs, and fork/join or untimed time.
//!
//! Times are printed to the microsecond, so that a kernel that ran at all
//! never shows as zero.
//!
//! Waiting: during training, `threads x wall` thread-seconds were available;
//! those not spent inside a timer were spent waiting (idle at the end of a
//! parallel section, or while the main thread did sequential work such as the
//! optimiser) or in untimed code. The line is printed only when it means
//! something: with two threads or more (on one thread nobody waits, and the
//! untimed time is already on the "Accounted" line) and when the training
//! timers recorded some work (else every thread-second would show as
//! "waiting" when in fact nothing was measured; a line says so instead).

use std::fmt::Write as _;

use crate::nn::step_times::{StepTimes, SLOW_FACTOR};
use crate::nn::EpochStats;
use crate::profile::facts::{
    describe, describe_caches, describe_in_place, describe_micro_kernel, BuildFacts,
};
use crate::trace::{self, Kind, Record};

/// The profile of a finished `fit`: timers since the last [`trace::reset`],
/// then the build facts the rates were measured with.
///
/// Measures the machine's FMA peak on `threads` threads (about 0.2 s) for
/// the compute-limit summary, the wide and narrow micro-kernels alone on a
/// tile in L1 (about 0.1 s), and with two threads or more the round trip
/// of a cache line between two cores (at most 0.3 s), which the forks and
/// joins of every step pay.
pub fn training_table(history: &[EpochStats], threads: usize) -> String {
    let peak = crate::profile::machine::pool(threads)
        .ok()
        .map(|pool| crate::profile::machine::median(&crate::profile::machine::peak_samples(&pool, 0.05, 3)));
    let run = Run {
        epochs: history.len(),
        train_wall: history.iter().map(|h| h.train_seconds).sum(),
        val_wall: history.iter().map(|h| h.validation_seconds).sum(),
        threads,
        peak,
        skipped_flops: trace::skipped_flops(),
        steps: StepTimes::combine(&history.iter().filter_map(|h| h.steps).collect::<Vec<_>>()),
        round_trip_ns: if threads >= 2 {
            crate::profile::machine::core_round_trip_ns()
        } else {
            None
        },
        kernels: peak.map(|p| KernelCeiling::measure(p / threads.max(1) as f64)),
    };
    let facts = BuildFacts::current();
    format!(
        "{}\nBuild: SIMD {}\nCaches: {}\nHuge pages: {}\nGEMM: micro-kernel {}, block sizes {}, {}\n",
        render(&trace::snapshot(), &trace::coverage(), &run),
        facts.simd.describe(),
        describe_caches(&facts.caches),
        crate::huge_pages::describe(),
        describe_micro_kernel(facts.micro_kernel),
        describe(facts.blocks),
        describe_in_place(facts.wide_in_place)
    )
}

/// The run the timers watched: its epochs, wall seconds and threads.
#[derive(Clone, Copy)]
struct Run {
    epochs: usize,
    train_wall: f64,
    val_wall: f64,
    threads: usize,
    /// The FMA peak of the run's threads, GFLOP/s (`None`: not measured).
    peak: Option<f64>,
    /// Floating-point operations the products skipped ([`trace::skipped_flops`]).
    skipped_flops: u64,
    /// The training steps' times over the run's epochs (`None`: none timed).
    steps: Option<StepTimes>,
    /// A cache line's round trip between two threads, ns, measured after
    /// the run (`None`: one thread, or one core).
    round_trip_ns: Option<f64>,
    /// The wide and narrow micro-kernels alone on a tile in L1, measured
    /// after the run (`None`: not measured).
    kernels: Option<KernelCeiling>,
}

/// The GEMM's two main micro-kernels, each alone on one tile in L1 on one
/// thread ([`crate::profile::kernel_bench`]): (name, GFLOP/s over one
/// thread's share of the peak). No product runs faster than its kernel's loop.
#[derive(Clone, Copy, Debug)]
struct KernelCeiling {
    /// The kernel of wide products ([`crate::gemm::kernel::default_kernel`]).
    wide: (&'static str, f64),
    /// The kernel of products of at most `LANES` columns.
    narrow: (&'static str, f64),
}

impl KernelCeiling {
    /// Times both kernels (about 0.1 s) against `peak_per_thread` GFLOP/s.
    fn measure(peak_per_thread: f64) -> KernelCeiling {
        use crate::gemm::kernel;
        use crate::profile::kernel_bench::{depth_in_l1, time_kernel};
        let l1d = crate::gemm::blocking::l1d_bytes();
        let share = |k: &'static kernel::MicroKernel| {
            let rate =
                crate::profile::machine::median(&time_kernel(k, depth_in_l1(k.mr, k.nr, l1d), 3, 0.01));
            (k.name, rate / peak_per_thread)
        };
        KernelCeiling {
            wide: share(kernel::default_kernel()),
            narrow: share(kernel::narrow_kernel()),
        }
    }

    /// One line naming both (one if they are the same kernel).
    fn describe(&self) -> String {
        let (w, n) = (self.wide, self.narrow);
        let kernels = if w.0 == n.0 {
            format!("{} {:.0}%", w.0, 100.0 * w.1)
        } else {
            format!(
                "{} (wide products) {:.0}%, {} (n <= {}) {:.0}%",
                w.0,
                100.0 * w.1,
                n.0,
                crate::simd::LANES,
                100.0 * n.1
            )
        };
        format!(
            "Micro-kernels alone, each on one tile in L1 (1 thread, measured just now): {kernels} of a thread's peak. No product runs faster than its kernel's loop; `simdnet bench` times every kernel.\n"
        )
    }
}

fn rate(r: &Record) -> String {
    if r.seconds <= 0.0 {
        String::new()
    } else if r.flops > 0 {
        format!("{:.2} GFLOP/s", r.flops as f64 / r.seconds * 1e-9)
    } else if r.bytes > 0 {
        format!("{:.2} GB/s", r.bytes as f64 / r.seconds * 1e-9)
    } else {
        String::new()
    }
}

/// The table for given records (separate from the global timers so it can be tested).
fn render(records: &[Record], cov: &trace::Coverage, run: &Run) -> String {
    let &Run {
        epochs,
        train_wall,
        val_wall,
        threads,
        peak,
        ..
    } = run;
    let wall = train_wall + val_wall;
    let pct = |x: f64| if wall > 0.0 { 100.0 * x / wall } else { 0.0 };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nProfile: {epochs} epoch(s) on {threads} thread(s), {wall:.3}s wall ({train_wall:.3}s training + {val_wall:.3}s validation)"
    );
    let _ = writeln!(
        s,
        "thread-s: summed over the threads that ran the timer; wall-s: wall time, split evenly among the timers open at each instant."
    );
    let _ = writeln!(
        s,
        "{:<27} {:>5} {:>8} {:>10} {:>10} {:>7}  rate (per thread)",
        "kind", "layer", "calls", "thread-s", "wall-s", "% wall"
    );
    let (mut sum_thread, mut sum_wall, mut train_busy) = (0.0, 0.0, 0.0);
    for kind in Kind::ALL {
        let rows: Vec<&Record> = records.iter().filter(|r| r.kind == kind).collect();
        if rows.is_empty() && !kind.image_only() {
            let _ = writeln!(
                s,
                "{:<27} {:>5} {:>8} {:>10.6} {:>10.6} {:>6.1}%",
                kind.label(),
                "-",
                0,
                0.0,
                0.0,
                0.0
            );
        }
        for r in rows {
            if kind.is_container() {
                // Its thread time is the whole parallel section (the kernels in it are listed above).
                let _ = writeln!(
                    s,
                    "{:<27} {:>5} {:>8} {:>10} {:>10.6} {:>6.1}%  ({:.3}s wall in parallel sections)",
                    kind.label(),
                    "-",
                    r.calls,
                    "-",
                    r.wall_seconds,
                    pct(r.wall_seconds),
                    r.seconds
                );
                sum_wall += r.wall_seconds;
                continue;
            }
            let layer = if kind.per_layer() {
                r.layer.to_string()
            } else {
                "-".into()
            };
            let _ = writeln!(
                s,
                "{:<27} {:>5} {:>8} {:>10.6} {:>10.6} {:>6.1}%  {}",
                kind.label(),
                layer,
                r.calls,
                r.seconds,
                r.wall_seconds,
                pct(r.wall_seconds),
                rate(r)
            );
            sum_thread += r.seconds;
            sum_wall += r.wall_seconds;
            if kind != Kind::Evaluation {
                train_busy += r.seconds;
            }
        }
    }
    let _ = writeln!(
        s,
        "{:<27} {:>5} {:>8} {:>10.6} {:>10.6} {:>6.1}%",
        "total in timers",
        "",
        "",
        sum_thread,
        sum_wall,
        pct(sum_wall)
    );
    let covered = cov.covered();
    let _ = writeln!(
        s,
        "Accounted: {:.1}% of the wall time ({covered:.3}s of {wall:.3}s) ran inside at least one timer; {:.3}s in none.",
        pct(covered),
        (wall - covered).max(0.0)
    );
    let mut levels: Vec<String> = cov
        .by_level
        .iter()
        .enumerate()
        .filter(|(_, &t)| t > 0.0)
        .map(|(i, t)| {
            let plus = if i + 1 == trace::MAX_LEVEL { "+" } else { "" };
            format!("{}{plus} open: {:.1}%", i + 1, pct(*t))
        })
        .collect();
    if cov.container_only > 0.0 {
        levels.push(format!("fork/join only: {:.1}%", pct(cov.container_only)));
    }
    if !levels.is_empty() {
        let _ = writeln!(
            s,
            "Timers open at once, share of wall time: {}.",
            levels.join(", ")
        );
    }
    if let Some(steps) = &run.steps {
        s.push_str(&steps_summary(steps));
    }
    if let Some(peak) = peak {
        s.push_str(&limit_summary(records, cov, run, peak));
        s.push_str(&skipped_summary(records, run, peak));
    }
    // Waiting: only with several threads and some training time measured (see the module docs).
    let capacity = threads as f64 * train_wall;
    if threads < 2 || capacity <= 0.0 {
        return s;
    }
    if train_busy <= 0.0 {
        let _ = writeln!(
            s,
            "Threads (training): no training timer recorded any work, so waiting cannot be told from untimed work."
        );
    } else {
        let waiting = (capacity - train_busy).max(0.0);
        let _ = writeln!(
            s,
            "Threads (training): {threads} x {train_wall:.3}s = {capacity:.3} thread-s available, {train_busy:.3} busy in timers, {waiting:.3} ({:.1}%) waiting or untimed.",
            100.0 * waiting / capacity
        );
        let _ = writeln!(
            s,
            "  (waiting: idle at the end of each parallel section of shards, or while one thread sums gradients,\n   updates weights; a timer around work that is itself parallel, e.g. the\n   GEMMs of a one-shard large network or validation, counts once, so its thread-s is a lower bound)"
        );
    }
    if let Some(ns) = run.round_trip_ns {
        let _ = writeln!(
            s,
            "Core-to-core round trip, measured just now: {ns:.0} ns (a cache line to another thread and back; each fork and join of a step pays about one, so where it takes several hundred ns, as when a virtual machine's two vCPUs sit far apart on its host, the steps on two threads slow down)."
        );
    }
    s
}

/// A time in seconds as microseconds below a millisecond, else as milliseconds.
fn short_time(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

/// The training steps one by one (see [`crate::nn::step_times`]): their
/// spread, and the time the slow ones took beyond the median.
fn steps_summary(t: &StepTimes) -> String {
    let beyond = t.beyond_median();
    let mut s = format!(
        "Steps (training): {} timed, median {} (a tenth under {}, a tenth over {}, slowest {}). Had every step taken the median they would have taken {} ({:.1}%) less; {} of them took over {} times the median, {} beyond it. Every step does about the same work, so one far over the median waited: for a core the host or another process had taken, or for memory.",
        t.steps,
        short_time(t.median),
        short_time(t.p10),
        short_time(t.p90),
        short_time(t.slowest),
        short_time(beyond),
        100.0 * t.share(beyond),
        t.slow_steps,
        SLOW_FACTOR,
        short_time(t.slow_excess)
    );
    if let Some(first) = t.first {
        let _ = write!(
            s,
            " The run's first step, which also made the workspaces, took {} (not counted above).",
            short_time(first)
        );
    }
    s.push('\n');
    s
}

/// When products skipped multiplications by zero (the first layer's
/// inputs, see [`crate::gemm::sparse_rows`]): how much, and the limit had they
/// been done, as `cargo bench --bench epoch` counts it (every product of the
/// network in full).
fn skipped_summary(records: &[Record], run: &Run, peak: f64) -> String {
    let (wall, skipped) = (run.train_wall + run.val_wall, run.skipped_flops);
    if skipped == 0 || peak <= 0.0 || wall <= 0.0 {
        return String::new();
    }
    let done: u64 = records
        .iter()
        .filter(|r| r.kind.is_gemm() || r.kind == Kind::Evaluation)
        .map(|r| r.flops)
        .sum();
    let full = (done + skipped) as f64 * 1e-9;
    format!(
        "Zeros skipped: the first layer's products multiplied only its non-zero inputs (in a wide layer, with the zeros grouped with them) and left out {:.2} GFLOP of multiplications by zero, not counted above. Counted, the GEMM work is {full:.2} GFLOP, {:.3}s at the peak: the run took {:.1}x that.\n",
        skipped as f64 * 1e-9,
        full / peak,
        wall / (full / peak).max(1e-12)
    )
}

/// The compute limit (all GEMM work at the measured peak) and, in plain
/// words, where the wall time beyond it went. The five parts add up to the
/// wall time minus the limit.
fn limit_summary(records: &[Record], cov: &trace::Coverage, run: &Run, peak: f64) -> String {
    let wall = run.train_wall + run.val_wall;
    if peak <= 0.0 || wall <= 0.0 {
        return String::new();
    }
    let sum = |f: &dyn Fn(&Record) -> bool, v: &dyn Fn(&Record) -> f64| -> f64 {
        records.iter().filter(|r| f(r)).map(v).sum()
    };
    let is_gemm = |r: &Record| r.kind.is_gemm();
    let is_other = |r: &Record| {
        matches!(
            r.kind,
            Kind::SoftmaxCe
                | Kind::InputConvert
                | Kind::ActivationBackward
                | Kind::Optimizer
                | Kind::Shuffle
                | Kind::PoolForward
                | Kind::PoolBackward
                | Kind::Flatten
                | Kind::Col2im
        )
    };
    // A convolutional network's element-wise kinds are named only when it has some.
    let images = if records.iter().any(|r| r.kind.image_only() && !r.kind.is_gemm()) {
        ", max-pool, flatten, col2im"
    } else {
        ""
    };
    let is_val = |r: &Record| r.kind == Kind::Evaluation;
    let is_fetch = |r: &Record| r.kind == Kind::Prefetch;
    let gflop = |f: &dyn Fn(&Record) -> bool| sum(f, &|r| r.flops as f64) * 1e-9;
    let (train_gflop, val_gflop) = (gflop(&is_gemm), gflop(&is_val));
    let gemm_wall = sum(&is_gemm, &|r| r.wall_seconds);
    let other_wall = sum(&is_other, &|r| r.wall_seconds);
    let val_wall = sum(&is_val, &|r| r.wall_seconds);
    let fetch_wall = sum(&is_fetch, &|r| r.wall_seconds);
    let container = sum(&|r| r.kind.is_container(), &|r| r.wall_seconds);
    let untimed = (wall - cov.covered()).max(0.0);
    let (train_limit, val_limit) = (train_gflop / peak, val_gflop / peak);
    let limit = train_limit + val_limit;
    let pct = |x: f64| 100.0 * x / wall;
    // Over wall time, so that sharded GEMMs running side by side and one
    // GEMM split across the threads are measured alike, against the whole peak.
    let gemm_rate = if gemm_wall > 0.0 {
        train_gflop / gemm_wall
    } else {
        0.0
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Compute limit: {:.2} GFLOP of GEMMs ({train_gflop:.2} training + {val_gflop:.2} validation) at this machine's peak of {peak:.0} GFLOP/s on {} thread(s) (FMA loop, measured just now) take {limit:.3}s; the run took {wall:.3}s, {:.1}x the limit.",
        train_gflop + val_gflop,
        run.threads,
        wall / limit.max(1e-12)
    );
    let _ = writeln!(s, "Where the other {:.3}s went:", (wall - limit).max(0.0));
    let _ = writeln!(
        s,
        "  {:>7.3}s ({:>4.1}%) training GEMMs below peak: over the wall time they took they ran at {gemm_rate:.1} GFLOP/s, {:.0}% of the {peak:.0} of {} thread(s) (small shapes, packing, u8 conversion; with threads, also one idling while the other works)",
        (gemm_wall - train_limit).max(0.0),
        pct((gemm_wall - train_limit).max(0.0)),
        100.0 * gemm_rate / peak,
        run.threads
    );
    let _ = writeln!(
        s,
        "  {:>7.3}s ({:>4.1}%) element-wise work between the GEMMs (examples to f32, softmax, activation backward, gradient sum + optimizer, shuffle{images})",
        other_wall,
        pct(other_wall)
    );
    let _ = writeln!(
        s,
        "  {:>7.3}s ({:>4.1}%) fetching the next steps' examples from RAM (prefetched rows, scattered over the data set)",
        fetch_wall,
        pct(fetch_wall)
    );
    let _ = writeln!(
        s,
        "  {:>7.3}s ({:>4.1}%) validation beyond its own GEMM limit",
        (val_wall - val_limit).max(0.0),
        pct((val_wall - val_limit).max(0.0))
    );
    let _ = writeln!(
        s,
        "  {:>7.3}s ({:>4.1}%) fork/join with no kernel running on any thread, and untimed code",
        container + untimed,
        pct(container + untimed)
    );
    if run.threads >= 2 {
        let together: f64 = cov.by_level[1..].iter().sum();
        let _ = writeln!(
            s,
            "Threads: two or more kernels ran at once during {:.1}% of the wall time; the rest of the time at most one thread computed (serial work, waiting for the slowest shard, or cores taken by other processes).",
            pct(together)
        );
    }
    if let Some(k) = &run.kernels {
        s.push_str(&k.describe());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coverage of a run in which no timer was open.
    fn no_coverage() -> trace::Coverage {
        trace::Coverage {
            by_level: [0.0; trace::MAX_LEVEL],
            container_only: 0.0,
        }
    }

    fn run(threads: usize) -> Run {
        Run {
            epochs: 1,
            train_wall: 1.0,
            val_wall: 0.0,
            threads,
            peak: None,
            skipped_flops: 0,
            steps: None,
            round_trip_ns: None,
            kernels: None,
        }
    }

    /// Products that skipped zeros: the work left out, and the limit had
    /// it been done (the GEMM work of the network in full, as the epoch
    /// bench counts it).
    #[test]
    fn skipped_work_is_named_with_the_limit_counting_it() {
        let rec = |kind, flops| Record {
            kind,
            layer: 0,
            calls: 1,
            seconds: 0.5,
            wall_seconds: 0.5,
            flops,
            bytes: 0,
        };
        let records = [
            rec(Kind::ForwardGemm, 1_000_000_000),
            rec(Kind::Evaluation, 500_000_000),
            rec(Kind::Optimizer, 0),
        ];
        let run = Run {
            epochs: 1,
            train_wall: 0.9,
            val_wall: 0.1,
            threads: 2,
            peak: Some(10.0),
            skipped_flops: 3_500_000_000,
            steps: None,
            round_trip_ns: None,
            kernels: None,
        };
        let out = skipped_summary(&records, &run, 10.0);
        // 1.5 GFLOP done + 3.5 skipped = 5 GFLOP, 0.5 s at 10 GFLOP/s; the run took 1 s.
        assert_eq!(
            out,
            "Zeros skipped: the first layer's products multiplied only its non-zero inputs (in a wide layer, with the zeros grouped with them) and left out 3.50 GFLOP of multiplications by zero, not counted above. Counted, the GEMM work is 5.00 GFLOP, 0.500s at the peak: the run took 2.0x that.\n"
        );
        assert_eq!(
            skipped_summary(
                &records,
                &Run {
                    skipped_flops: 0,
                    ..run
                },
                10.0
            ),
            ""
        );
    }

    #[test]
    fn the_limit_summary_splits_the_rest_of_the_wall_time_into_parts_that_add_up() {
        let rec = |kind, flops, wall: f64| Record {
            kind,
            layer: 0,
            calls: 1,
            seconds: wall,
            wall_seconds: wall,
            flops,
            bytes: 0,
        };
        let records = [
            rec(Kind::ForwardGemm, 2_000_000_000, 1.0),
            rec(Kind::Optimizer, 0, 0.2),
            rec(Kind::Evaluation, 1_000_000_000, 0.3),
            rec(Kind::Prefetch, 0, 0.1),
            rec(Kind::ParallelShards, 0, 0.1),
        ];
        let mut cov = trace::Coverage {
            by_level: [0.0; trace::MAX_LEVEL],
            container_only: 0.1,
        };
        cov.by_level[0] = 1.6;
        let run = Run {
            epochs: 1,
            train_wall: 1.5,
            val_wall: 0.3,
            threads: 2,
            peak: Some(10.0),
            skipped_flops: 0,
            steps: None,
            round_trip_ns: None,
            kernels: None,
        };
        let out = render(&records, &cov, &run);
        assert!(!out.contains("Zeros skipped"), "{out}");
        // 3 GFLOP at 10 GFLOP/s: 0.3 s of the 1.8 s.
        assert!(out.contains("Compute limit: 3.00 GFLOP of GEMMs (2.00 training + 1.00 validation) at this machine's peak of 10 GFLOP/s on 2 thread(s)"), "{out}");
        assert!(
            out.contains("take 0.300s; the run took 1.800s, 6.0x the limit."),
            "{out}"
        );
        assert!(out.contains("Where the other 1.500s went:"), "{out}");
        // GEMMs 1.0 s of wall time for 0.2 s of work: 2 GFLOP/s, 20% of the peak of 10.
        assert!(out.contains("  0.800s (44.4%) training GEMMs below peak: over the wall time they took they ran at 2.0 GFLOP/s, 20% of the 10 of 2 thread(s)"), "{out}");
        assert!(out.contains("  0.200s (11.1%) element-wise work"), "{out}");
        assert!(
            out.contains("  0.100s ( 5.6%) fetching the next steps' examples from RAM"),
            "{out}"
        );
        assert!(
            out.contains("  0.200s (11.1%) validation beyond its own GEMM limit"),
            "{out}"
        );
        // 0.1 s fork/join + 0.1 s in no timer (1.8 - 1.7 covered).
        assert!(out.contains("  0.200s (11.1%) fork/join"), "{out}");
        // The five parts add up to what the limit leaves: 0.8 + 0.2 + 0.1 + 0.2 + 0.2.
        let parts: f64 = out
            .lines()
            .skip_while(|l| !l.starts_with("Where the other"))
            .skip(1)
            .take(5)
            .map(|l| l.trim().split('s').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((parts - 1.5).abs() < 1e-9, "{parts} in\n{out}");
        assert!(
            out.contains("Threads: two or more kernels ran at once during 0.0% of the wall time"),
            "{out}"
        );
        let mut overlapped = cov;
        overlapped.by_level[1] = 0.9;
        let out = render(&records, &overlapped, &run);
        assert!(
            out.contains("Threads: two or more kernels ran at once during 50.0% of the wall time"),
            "{out}"
        );
        let one = render(&records, &cov, &Run { threads: 1, ..run });
        assert!(!one.contains("Threads: two or more"), "{one}");
        // Without a measured peak there is no summary.
        let quiet = render(&records, &cov, &Run { peak: None, ..run });
        assert!(!quiet.contains("Compute limit"), "{quiet}");
        // The micro-kernels' own ceiling, when measured: after the five parts.
        assert!(!out.contains("Micro-kernels alone"), "{out}");
        let kernels = KernelCeiling {
            wide: ("simd-12x32", 0.853),
            narrow: ("simd-16x16", 0.8249),
        };
        let with = render(
            &records,
            &cov,
            &Run {
                kernels: Some(kernels),
                ..run
            },
        );
        let line = format!("Micro-kernels alone, each on one tile in L1 (1 thread, measured just now): simd-12x32 (wide products) 85%, simd-16x16 (n <= {}) 82% of a thread's peak. No product runs faster than its kernel's loop; `simdnet bench` times every kernel.\n", crate::simd::LANES);
        assert!(with.contains(&line), "{with}");
        let same = KernelCeiling {
            narrow: ("simd-12x32", 0.853),
            ..kernels
        };
        assert!(same
            .describe()
            .contains("measured just now): simd-12x32 85% of a thread's peak."));
    }

    #[test]
    fn the_steps_line_names_their_spread_and_what_the_slow_ones_cost() {
        // Ten steps of 50 µs but two: 60 µs, and 400 µs (slow: over 100).
        let mut times = [50.0, 50.0, 400.0, 50.0, 50.0, 60.0, 50.0, 50.0, 50.0, 50.0].map(|us| us * 1e-6);
        let t = StepTimes::summarize(&mut times, Some(8.5e-3)).unwrap();
        // 860 µs in all, 500 at the median: 360 µs beyond it (41.9%); the
        // slow step 350 beyond it.
        assert_eq!(
            steps_summary(&t),
            "Steps (training): 10 timed, median 50.0 µs (a tenth under 50.0 µs, a tenth over 60.0 µs, slowest 400.0 µs). Had every step taken the median they would have taken 360.0 µs (41.9%) less; 1 of them took over 2 times the median, 350.0 µs beyond it. Every step does about the same work, so one far over the median waited: for a core the host or another process had taken, or for memory. The run's first step, which also made the workspaces, took 8.50 ms (not counted above).\n"
        );
        let out = render(
            &[],
            &no_coverage(),
            &Run {
                steps: Some(t),
                ..run(2)
            },
        );
        assert!(out.contains("\nSteps (training): 10 timed"), "{out}");
        assert!(!render(&[], &no_coverage(), &run(2)).contains("Steps"));
    }

    #[test]
    fn the_round_trip_is_named_when_measured_on_two_threads() {
        let cov = no_coverage();
        let measured = Run {
            round_trip_ns: Some(415.4),
            ..run(2)
        };
        let two = render(&[], &cov, &measured);
        assert!(
            two.contains("Core-to-core round trip, measured just now: 415 ns (a cache line to another thread and back;"),
            "{two}"
        );
        let unmeasured = render(&[], &cov, &run(2));
        assert!(!unmeasured.contains("round trip"), "{unmeasured}");
        let one = render(
            &[],
            &cov,
            &Run {
                threads: 1,
                ..measured
            },
        );
        assert!(!one.contains("round trip"), "{one}");
    }

    #[test]
    fn the_waiting_line_only_when_it_means_something() {
        let rec = Record {
            kind: Kind::ForwardGemm,
            layer: 0,
            calls: 3,
            seconds: 0.5,
            wall_seconds: 0.5,
            flops: 1000,
            bytes: 0,
        };
        let mut cov = trace::Coverage {
            by_level: [0.0; trace::MAX_LEVEL],
            container_only: 0.0,
        };
        cov.by_level[0] = 0.5;
        let two = render(&[rec], &cov, &run(2));
        assert!(two.contains("Threads (training): 2 x 1.000s = 2.000 thread-s available, 0.500 busy in timers, 1.500 (75.0%) waiting"), "{two}");
        assert!(two.contains("Accounted: 50.0%"), "{two}");
        let one = render(&[rec], &cov, &run(1));
        assert!(
            !one.contains("Threads (training)") && !one.contains("waiting"),
            "{one}"
        );
        let none = render(&[], &no_coverage(), &run(2));
        assert!(
            none.contains("no training timer recorded any work") && !none.contains("waiting or untimed"),
            "{none}"
        );
    }
}
