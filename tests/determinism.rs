//! A seed fixes the result, bit for bit, whatever the thread count.

mod common;

use common::{bits, synthetic};
use simdnet::data::Dataset;
use simdnet::nn::{fit, Activation, Network, Optimizer, TrainConfig};

fn train_with(threads: usize, hidden: &[usize], opt: Optimizer, batch: usize) -> Network {
    train_on(Some(threads), &synthetic(700), hidden, opt, batch)
}

/// Trains on `data` in a pool of `threads`, or with `None` from a thread
/// of no pool (rayon's global pool, as a library user's `main` does).
fn train_on(
    threads: Option<usize>,
    data: &Dataset,
    hidden: &[usize],
    opt: Optimizer,
    batch: usize,
) -> Network {
    let mut net = Network::mlp(data.features(), hidden, 10, Activation::Relu, 42).unwrap();
    let cfg = TrainConfig::default()
        .with_epochs(2)
        .with_batch_size(batch)
        .with_seed(7);
    let run = |net: &mut Network| {
        fit(net, opt, data, None, &cfg, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
    };
    match threads {
        Some(threads) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run(&mut net))
        }
        None => std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(rayon::current_thread_index(), None);
                run(&mut net)
            })
            .join()
            .unwrap()
        }),
    }
    .unwrap();
    net
}

/// From a thread of no pool, `fit` runs on rayon's global pool with that
/// thread computing as a worker (`nn::awake`): the same bits as in a pool,
/// on MNIST's pixels (the first layer split, its non-zeros multiplied) and
/// on a large network (one shard, threaded GEMMs).
#[test]
fn same_weights_from_a_thread_of_no_pool() {
    let mnist = simdnet::data::Mnist::load(common::DATA.as_ref()).unwrap();
    let pixels = mnist.train.take(1_000);
    let opt = Optimizer::rmsprop(0.001);
    let reference = bits(&train_on(Some(1), &pixels, &[16, 16], opt, 128));
    assert_eq!(bits(&train_on(Some(2), &pixels, &[16, 16], opt, 128)), reference);
    assert_eq!(bits(&train_on(None, &pixels, &[16, 16], opt, 128)), reference);
    let data = synthetic(700);
    let reference = bits(&train_on(Some(1), &data, &[1200, 400], opt, 64));
    assert_eq!(bits(&train_on(None, &data, &[1200, 400], opt, 64)), reference);
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
