//! A seed fixes the result, bit for bit, whatever the thread count.

mod common;

use common::{bits, synthetic};
use simdnet::nn::{fit, Activation, Network, Optimizer, TrainConfig};

fn train_with(threads: usize, hidden: &[usize], opt: Optimizer, batch: usize) -> Network {
    let data = synthetic(700);
    let mut net = Network::mlp(64, hidden, 10, Activation::Relu, 42).unwrap();
    let cfg = TrainConfig::default()
        .with_epochs(2)
        .with_batch_size(batch)
        .with_seed(7);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        fit(&mut net, opt, &data, None, &cfg, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
    })
    .unwrap();
    net
}

#[test]
fn same_seed_same_weights_on_1_2_3_and_8_threads() {
    // Small network: sharded mini-batches (several shards per batch, odd last batch).
    for opt in [
        Optimizer::rmsprop(0.001),
        Optimizer::adam(0.001),
        Optimizer::momentum(0.01, 0.9),
    ] {
        let reference = bits(&train_with(1, &[16, 16], opt, 100));
        for threads in [1, 2, 3, 8] {
            assert_eq!(
                bits(&train_with(threads, &[16, 16], opt, 100)),
                reference,
                "{opt}, {threads} threads"
            );
        }
    }
}

#[test]
fn large_network_path_is_deterministic_too() {
    // Above SHARD_MAX_PARAMS the batch is one shard and the GEMMs are threaded.
    let reference = bits(&train_with(1, &[1200, 400], Optimizer::rmsprop(0.001), 64));
    let net = Network::mlp(64, &[1200, 400], 10, Activation::Relu, 42).unwrap();
    assert_eq!(
        simdnet::nn::Trainer::shard_rows_for(&net, 64),
        64,
        "one shard per batch"
    );
    for threads in [2, 3, 8] {
        let got = bits(&train_with(threads, &[1200, 400], Optimizer::rmsprop(0.001), 64));
        assert_eq!(got, reference, "{threads} threads");
    }
}

#[test]
fn different_seeds_differ() {
    let a = Network::mlp(64, &[16], 10, Activation::Relu, 1).unwrap();
    let b = Network::mlp(64, &[16], 10, Activation::Relu, 2).unwrap();
    assert_ne!(bits(&a), bits(&b));
}
