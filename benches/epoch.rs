//! Whole training epochs, 1 thread against 2, and their distance to the
//! compute limit: `cargo bench --bench epoch [-- --seeds N --limit N --quick]`
//! (`--runs N` is the same as `--seeds N`).
//!
//! For 784-16-16-10 (the workshop network) and 784-512-512-10 (ReLU,
//! RMSprop lr 0.001, batch 128), for seeds 1..=N (3 by default), trains two
//! epochs on 1 and on 2 threads (interleaved) and times the second, warm one
//! *including* its validation pass over the 10,000 test images, as `train`
//! prints it. Reports the median over seeds, the 2-thread speed-up (and the
//! range of each seed's own speed-up: a wide one says the host disturbed
//! the run), the share of each epoch's steps' time that went beyond its
//! median step on 1 and 2 threads (median over seeds: every step does about
//! the same work, so a large share says steps waited for a core or for
//! memory; see `simdnet::nn::step_times`), the speed-up of the median step
//! (steadier than the epochs' when the host disturbs a few steps), the GEMM work of an epoch (training and validation: 3.42 GFLOP
//! for the workshop network, 206 for 512-512) and the ratio of the 2-thread
//! epoch to the compute limit: that work at the 2-thread FMA peak measured
//! in the same process (as `simdnet bench` measures it).
//!
//! Then times the workshop network trained from the bench's own thread,
//! in no pool (as a library's `Fit::run` from `main`: rayon's global
//! pool), against the 2-thread pool (when the global pool has 2 threads),
//! and the small network with the profiler on, to show what `train
//! --profile` costs (off, it is one relaxed atomic load per timer).
//!
//! With `--limit N` (or `--quick`: 6,400 images) the epoch trains on the
//! first N images only and its time is extrapolated linearly ("est.").

use std::path::Path;

use simdnet::data::{mnist, Dataset};
use simdnet::nn::{fit, Activation, Network, Optimizer, StepTimes, TrainConfig};
use simdnet::profile::machine::{core_round_trip_ns, median, peak_samples};
use simdnet::trace;

include!("common/facts.rs");

/// Below this many times the 1-thread FMA peak, the 2-thread one says the
/// two threads do not each have a core's FMA units: two vCPUs on one
/// physical core (SMT siblings), or a core shared with another guest. Seen
/// on the 2-vCPU Zen 4 (AVX-512, 16 lanes) on 2026-12-03: 1.94x when
/// quiet (225 against 116 GFLOP/s), and for minutes at a time about 1.0x
/// (111 GFLOP/s on 2 threads; one thread's FMA loop fell from 107-110 to
/// 71-80 while the other ran one too).
const SHARED_CORES_BELOW: f64 = 1.8;

/// The note printed when the 2-thread peak is `ratio` times the 1-thread one
/// (under [`SHARED_CORES_BELOW`]).
fn shared_cores_note(ratio: f64) -> String {
    format!(
        "note: 2 threads compute only {ratio:.2}x what 1 does right now: the cores are shared (SMT siblings or another guest), so the 2-thread epochs and speed-ups below are not comparable with a quiet run; run again later"
    )
}

/// Seconds of the second epoch of `hidden` on `data` (training + validation
/// on `test`, if given), on the current pool; the training part is scaled
/// by `scale` (an epoch on part of the data, extrapolated).
fn epoch_seconds(hidden: &[usize], data: &Dataset, test: Option<&Dataset>, seed: u64, scale: f64) -> f64 {
    timed_epoch(hidden, data, test, seed, scale).0
}

/// [`epoch_seconds`], with that epoch's step times (see
/// `simdnet::nn::step_times`).
fn timed_epoch(
    hidden: &[usize],
    data: &Dataset,
    test: Option<&Dataset>,
    seed: u64,
    scale: f64,
) -> (f64, StepTimes) {
    let mut net = Network::mlp(784, hidden, 10, Activation::Relu, seed).expect("network");
    let cfg = TrainConfig::default()
        .with_epochs(2)
        .with_batch_size(128)
        .with_seed(seed)
        .with_shuffle(true);
    let history = fit(&mut net, Optimizer::rmsprop(0.001), data, test, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .expect("training");
    let last = history.last().expect("two epochs");
    let steps = last.steps.expect("the second epoch's steps are timed");
    (last.train_seconds * scale + last.validation_seconds, steps)
}

/// GFLOP of an epoch's GEMMs: forward, dW and dx (none for the first layer)
/// over `train` examples, forward over `val`.
fn epoch_gflop(widths: &[usize], train: usize, val: usize) -> f64 {
    let macs: Vec<f64> = widths.windows(2).map(|w| (w[0] * w[1]) as f64).collect();
    let all: f64 = macs.iter().sum();
    (2.0 * train as f64 * (3.0 * all - macs[0]) + 2.0 * val as f64 * all) * 1e-9
}

fn main() {
    let quick = flag("--quick");
    let seeds: u64 = arg("--seeds")
        .or_else(|| arg("--runs"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let runs = seeds as usize;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let (train, test) = mnist::load_both(&dir).expect("MNIST in data/");
    let limit: Option<usize> = arg("--limit").and_then(|l| l.parse().ok());
    println!("{}", machine_facts());
    let pools = pools_of_1_and_2();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Warm-up: page in the data, start the threads.
    epoch_seconds(&[16, 16], &train.take(6_400.min(train.len())), None, 1, 1.0);
    let n = limit
        .unwrap_or(if quick { 6_400 } else { train.len() })
        .min(train.len());
    let data = train.take(n);
    let scale = train.len() as f64 / data.len() as f64;
    let est = if data.len() < train.len() { " est." } else { "" };
    let peak = median(&peak_samples(&pools[1], 0.2, 5));
    let peak_one = median(&peak_samples(&pools[0], 0.2, 5));
    println!(
        "2-thread FMA peak: {peak:.0} GFLOP/s ({:.2}x the 1-thread {peak_one:.0}); core-to-core round trip {}; epochs include validation on {} images; median of {seeds} seed(s)",
        peak / peak_one,
        core_round_trip_ns().map_or("n/a".into(), |ns| format!("{ns:.0} ns")),
        test.len()
    );
    if peak < SHARED_CORES_BELOW * peak_one {
        println!("{}", shared_cores_note(peak / peak_one));
    }
    println!(
        "{:<16} {:>10} {:>10} {:>9} {:>8} {:>9} {:>10} {:>13} {:>14} {:>9}",
        "network",
        "1t s/ep",
        "2t s/ep",
        "speed-up",
        "GFLOP",
        "limit s",
        "2t/limit",
        "seeds' s-up",
        "> median 1t/2t",
        "step s-up"
    );
    for hidden in [&[16usize, 16][..], &[512, 512][..]] {
        let (mut one, mut two, mut steps) = (Vec::new(), Vec::new(), [Vec::new(), Vec::new()]);
        for seed in 1..=seeds {
            for (pool, (times, steps)) in pools.iter().zip([&mut one, &mut two].into_iter().zip(&mut steps)) {
                let (t, s) = pool.install(|| timed_epoch(hidden, &data, Some(&test), seed, scale));
                times.push(t);
                steps.push(s);
            }
        }
        // The share of the steps' time beyond the median step, per thread
        // count (median over seeds), and each seed's speed-up of its median
        // step (median over seeds).
        let beyond =
            |s: &[StepTimes]| median(&s.iter().map(|t| t.share(t.beyond_median())).collect::<Vec<_>>());
        let step_speedup = median(
            &steps[0]
                .iter()
                .zip(&steps[1])
                .map(|(a, b)| a.median / b.median)
                .collect::<Vec<_>>(),
        );
        let (t1, t2) = (median(&one), median(&two));
        let mut widths = vec![784];
        widths.extend_from_slice(hidden);
        widths.push(10);
        let gflop = epoch_gflop(&widths, train.len(), test.len());
        let limit_s = gflop / peak;
        // each seed's own speed-up (its two epochs ran one after the other):
        // their spread tells a run the host disturbed from a quiet one
        let (lo, hi) = one
            .iter()
            .zip(&two)
            .map(|(a, b)| a / b)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        println!(
            "{:<16} {:>10.4} {:>10.4} {:>8.2}x {:>8.2} {:>9.4} {:>9.2}x {:>13} {:>14} {:>8.2}x{est}",
            format!(
                "784-{}-10",
                hidden.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-")
            ),
            t1,
            t2,
            t1 / t2,
            gflop,
            limit_s,
            t2 / limit_s,
            format!("{lo:.2}-{hi:.2}x"),
            format!(
                "{:.1}% / {:.1}%",
                100.0 * beyond(&steps[0]),
                100.0 * beyond(&steps[1])
            ),
            step_speedup
        );
    }
    // The same epoch trained from this thread, which is in no pool (as a
    // library user's `Fit::run` from `main`), on rayon's global pool,
    // against the 2-thread pool above, alternated: `nn::awake` makes this
    // thread compute as a worker would (without it, 2.4-3x slower).
    if rayon::current_num_threads() == 2 {
        let (mut outside, mut inside) = (Vec::new(), Vec::new());
        for seed in 1..=seeds.max(5) {
            outside.push(epoch_seconds(&[16, 16], &data, Some(&test), seed, scale));
            inside.push(pools[1].install(|| epoch_seconds(&[16, 16], &data, Some(&test), seed, scale)));
        }
        let (outside, inside) = (median(&outside), median(&inside));
        println!(
            "784-16-16-10 from a thread of no pool (rayon's global pool, 2 threads): {outside:.4} s/ep against {inside:.4} in a 2-thread pool ({:.2}x){est}",
            outside / inside
        );
    }
    // Profiler overhead on the small network, all threads: off vs on,
    // alternating, nine epochs each (with three, one slow epoch of the host
    // moved the figure from +3% to +39% between runs).
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(9) {
        trace::enable(false);
        off.push(epoch_seconds(&[16, 16], &data, None, 1, 1.0));
        trace::reset();
        trace::enable(true);
        on.push(epoch_seconds(&[16, 16], &data, None, 1, 1.0));
        trace::enable(false);
    }
    let (off, on) = (median(&off), median(&on));
    println!(
        "profiler overhead, 784-16-16-10 on {cores} threads: off {off:.3}s, on {on:.3}s ({:+.1}%)",
        100.0 * (on / off - 1.0)
    );
}
