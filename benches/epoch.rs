//! One training epoch: `cargo bench --bench epoch [-- --runs N --limit N --quick]`.
//!
//! Times `fit` for one epoch (shuffle + 469 steps of batch 128 over the
//! 60,000 training images, no validation) of 784-16-16-10 and
//! 784-512-512-10 (ReLU, RMSprop lr 0.001), on 1 and 2 threads; the median
//! of `runs` epochs is reported. Also times the small network with the
//! profiler on, to show what `train --profile` costs (off, it is one relaxed
//! atomic load per timer).
//!
//! With the reference GEMM a large-network epoch takes minutes, so unless
//! `--limit` is given the large network trains on the first 6,400 images and
//! the epoch time is extrapolated linearly (marked "est.").

use std::path::Path;
use std::time::Instant;

use simdnet::data::{mnist, Dataset, Split};
use simdnet::nn::{fit, Activation, Network, Optimizer, TrainConfig};
use simdnet::profile::machine::median;
use simdnet::trace;

include!("common/facts.rs");

/// Seconds of one epoch of `hidden` on `data`, on the current pool.
fn epoch_seconds(hidden: &[usize], data: &Dataset) -> f64 {
    let mut net = Network::mlp(784, hidden, 10, Activation::Relu, 1).expect("network");
    let cfg = TrainConfig::default()
        .with_epochs(1)
        .with_batch_size(128)
        .with_seed(1);
    let t = Instant::now();
    fit(&mut net, Optimizer::rmsprop(0.001), data, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .expect("training");
    t.elapsed().as_secs_f64()
}

fn main() {
    let quick = flag("--quick");
    let runs: usize = arg("--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let train = mnist::load_split(&dir, Split::Train).expect("MNIST training set in data/");
    let limit: Option<usize> = arg("--limit").and_then(|l| l.parse().ok());
    println!("{}", machine_facts());
    println!(
        "{:<16} {:>8} {:>8} {:>12} {:>12}   (median of {runs} epochs; RMSprop, batch 128)",
        "network", "threads", "images", "median s", "epoch s"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Warm-up: page in the data, start the threads.
    epoch_seconds(&[16, 16], &train.take(6_400.min(train.len())));
    let small_limit = limit.unwrap_or(if quick { 6_400 } else { train.len() });
    let large_limit = limit.unwrap_or(if quick { 6_400 } else { train.len() });
    for (hidden, n) in [(&[16usize, 16][..], small_limit), (&[512, 512][..], large_limit)] {
        let data = train.take(n.min(train.len()));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let times: Vec<f64> = (0..runs)
                .map(|_| pool.install(|| epoch_seconds(hidden, &data)))
                .collect();
            let m = median(&times);
            let full = m * train.len() as f64 / data.len() as f64;
            let est = if data.len() < train.len() { " est." } else { "" };
            println!(
                "{:<16} {:>8} {:>8} {:>12.3} {:>12.3}{est}",
                format!(
                    "784-{}-10",
                    hidden.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-")
                ),
                threads,
                data.len(),
                m,
                full
            );
        }
    }
    // Profiler overhead on the small network, all threads: off vs on, alternating.
    let data = train.take(small_limit.min(train.len()));
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        trace::enable(false);
        off.push(epoch_seconds(&[16, 16], &data));
        trace::reset();
        trace::enable(true);
        on.push(epoch_seconds(&[16, 16], &data));
        trace::enable(false);
    }
    let (off, on) = (median(&off), median(&on));
    println!(
        "profiler overhead, 784-16-16-10 on {cores} threads: off {off:.3}s, on {on:.3}s ({:+.1}%)",
        100.0 * (on / off - 1.0)
    );
}
