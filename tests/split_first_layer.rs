//! The first dense layer split along its inputs across threads (one task
//! per depth block of its GEMM, `nn::split`) gives the weights, bit for bit,
//! of the unsplit step (one thread), for every activation, dropout, weight
//! decay and optimiser, full and short batches (two shards, one), a large
//! network (one shard, threaded GEMMs), two and three parts, `u8` pixels
//! read by index and `f32` batches copied first, inputs mostly zero (which
//! the parts multiply by their non-zeros alone) and not, weights or errors
//! that are not finite; and a session whose steps
//! run the next step's first phase ahead gives those bits too, even when
//! the network is changed between two of its calls.

mod common;

use common::bits;
use simdnet::data::Dataset;
use simdnet::gemm::depth_block;
use simdnet::gemm::sparse_rows::{GROUPED_MIN_N, NARROW_INFERENCE_FROM_LISTS, SPARSE_ROWS_MAX_N};
use simdnet::matrix::MatRef;
use simdnet::nn::{Activation, Layer, Network, Optimizer, Outcome, Progress, Session, TrainConfig, Trainer};
use std::ops::ControlFlow;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// `n` random images of `inputs` pixels (as one row each), labels 0..9;
/// with `zeros`, nine pixels in ten are 0 (MNIST: eight in ten); the 10% non-zero are below
/// `SPARSE_ROWS_ENOUGH` (25%) on every build and CPU.
fn data_with(n: usize, inputs: usize, zeros: bool) -> Dataset {
    let mut s = 0x2545_f491u32;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    let pixels: Vec<u8> = (0..n * inputs)
        .map(|_| {
            let v = next();
            if zeros && v % 10 != 0 {
                0
            } else {
                (v >> 24) as u8
            }
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|_| (next() % 10) as u8).collect();
    Dataset::new(pixels, labels, 1, inputs).unwrap()
}

/// Batches of 128 (two shards), 100 (64 + 36) and 10 (one shard).
fn batches(n: usize) -> Vec<Vec<usize>> {
    [128, 100, 10, 128, 100]
        .iter()
        .enumerate()
        .map(|(b, &len)| (0..len).map(|i| (i * 7919 + b * 131 + i * i) % n).collect())
        .collect()
}

/// The weights after the batches on `threads` threads, through
/// `step_indices` (`u8` read by index) or `step` (an `f32` copy, scaled
/// by the network's input scale as it is read), the first layer's parts,
/// and how many of them held the last step's inputs as their non-zeros.
fn train_counted(
    threads: usize,
    net0: &Network,
    opt: Optimizer,
    d: &Dataset,
    indexed: bool,
) -> (Vec<u32>, usize, usize) {
    pool(threads).install(|| {
        let mut net = net0.clone();
        let mut trainer = Trainer::new(&net, opt, 128).unwrap();
        let as_f32: Vec<f32> = d.pixels().iter().map(|&p| p as f32).collect();
        for batch in batches(d.len()) {
            if indexed {
                trainer.step_indices(&mut net, d, &batch).unwrap();
            } else {
                let x: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| as_f32[i * d.features()..(i + 1) * d.features()].to_vec())
                    .collect();
                let labels: Vec<u8> = batch.iter().map(|&i| d.labels()[i]).collect();
                let scale = net.input_scale();
                trainer
                    .step(
                        &mut net,
                        MatRef::from_slice(&x, batch.len(), d.features()),
                        scale,
                        &labels,
                    )
                    .unwrap();
            }
        }
        (
            bits(&net),
            trainer.first_layer_parts(),
            trainer.first_layer_sparse_parts(),
        )
    })
}

/// For each network: trained on 2 and 3 threads (the first layer split
/// into parts), on inputs mostly zero and not, read by index and copied,
/// it has the bits of one thread's unsplit step. Returns how many of those
/// runs were split, and how many multiplied the non-zeros alone.
fn split_matches_unsplit(cases: Vec<(usize, Network, Optimizer)>) -> (usize, usize) {
    let (mut split_cases, mut sparse_cases) = (0, 0);
    for (inputs, net, opt) in cases {
        let parts = inputs.div_ceil(depth_block(inputs));
        for zeros in [false, true] {
            let d = data_with(300, inputs, zeros);
            for indexed in [true, false] {
                let (reference, planned, none) = train_counted(1, &net, opt, &d, indexed);
                assert_eq!(planned, if parts >= 2 { parts } else { 0 }, "{inputs} inputs");
                assert_eq!(none, 0, "one thread does not split");
                if planned >= 2 {
                    split_cases += 1;
                }
                for threads in [2, 3] {
                    let (got, _, sparse) = train_counted(threads, &net, opt, &d, indexed);
                    let bad = got.iter().zip(&reference).position(|(g, r)| g != r);
                    assert!(
                        bad.is_none(),
                        "{} ({opt}), {threads} threads, indexed {indexed}, mostly zeros {zeros}: parameter {bad:?} differs",
                        net.describe()
                    );
                    // Mostly zeros and at most SPARSE_ROWS_MAX_N outputs: the parts multiplied the non-zeros.
                    let narrow = net.layers()[0].outputs() <= SPARSE_ROWS_MAX_N;
                    assert_eq!(
                        sparse,
                        if zeros && narrow { planned } else { 0 },
                        "{}, zeros {zeros}",
                        net.describe()
                    );
                    sparse_cases += usize::from(sparse > 0);
                }
            }
        }
    }
    (split_cases, sparse_cases)
}

#[test]
fn split_first_layer_gives_the_bits_of_the_unsplit_step() {
    // one thread's step unsplit, the reference (tests/one_thread_sparse.rs
    // splits it)
    simdnet::nn::split::set_one_thread_sparse(false);
    let cases: Vec<(usize, Network, Optimizer)> = vec![
        (
            784,
            Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap(),
            Optimizer::rmsprop(0.001),
        ),
        (
            784,
            Network::mlp(784, &[32], 10, Activation::Tanh, 2)
                .unwrap()
                .with_dropout(0.3)
                .unwrap()
                .with_weight_decay(1e-3)
                .unwrap(),
            Optimizer::adam(0.01),
        ),
        (
            // Sharded, wide enough for the grouped weight gradient (GROUPED_MIN_N).
            784,
            Network::mlp(784, &[GROUPED_MIN_N], 10, Activation::Relu, 5).unwrap(),
            Optimizer::rmsprop(0.001),
        ),
        (
            1100,
            Network::mlp(1100, &[24, 12], 10, Activation::Sigmoid, 3)
                .unwrap()
                .with_dropout(0.2)
                .unwrap(),
            Optimizer::momentum(0.05, 0.9),
        ),
    ];
    let (split_cases, sparse_cases) = split_matches_unsplit(cases);
    assert!(
        sparse_cases >= 8,
        "only {sparse_cases} cases multiplied the non-zeros alone"
    );
    // A large network with a wide first layer is not split (ONE_SHARD_MAX_OUTPUTS).
    let wide = Network::mlp(784, &[1024, 512], 10, Activation::Relu, 1).unwrap();
    let trainer = Trainer::new(&wide, Optimizer::sgd(0.01), 128).unwrap();
    assert_eq!(trainer.first_layer_parts(), 0, "784-1024-512-10");
    // The other tensors are updated in pieces (nn::pieces): at most
    // MAX_TENSORS of them, 16 layers in all, so 17 are not split.
    let limit = simdnet::nn::pieces::MAX_TENSORS;
    for (hidden, parts) in [(limit / 2 - 1, 2), (limit / 2, 0)] {
        let deep = Network::mlp(784, &vec![16; hidden], 10, Activation::Relu, 1).unwrap();
        let trainer = Trainer::new(&deep, Optimizer::sgd(0.01), 128).unwrap();
        assert_eq!(trainer.first_layer_parts(), parts, "{} layers", hidden + 1);
    }
    // With the default block sizes (kc >= 256) 784 and 1100 inputs are
    // summed in 2-4 blocks, so the split ran.
    assert!(split_cases >= 12, "only {split_cases} cases were split");
}

/// A network over `SHARD_MAX_PARAMS`: one shard, its first layer split and
/// the other layers' GEMMs threaded. Apart from the test above because it
/// takes most of this file's time under qemu, where CI's ARM stage skips it
/// (`.ci/arm`): the split is the same code on every target.
#[test]
fn split_first_layer_of_a_large_network_gives_the_bits_of_the_unsplit_step() {
    simdnet::nn::split::set_one_thread_sparse(false);
    let net = Network::mlp(784, &[512, 512], 10, Activation::Relu, 4)
        .unwrap()
        .with_dropout(0.1)
        .unwrap();
    assert!(
        net.num_params() > simdnet::nn::train::SHARD_MAX_PARAMS,
        "784-512-512-10 is one shard"
    );
    let (split_cases, sparse_cases) = split_matches_unsplit(vec![(784, net, Optimizer::rmsprop(0.001))]);
    assert_eq!((split_cases, sparse_cases), (4, 4));
}

/// Weights or errors that are not finite: `0·inf` is NaN in the GEMM, so
/// the parts must not skip the zeros then (the bits, NaNs included, of one
/// thread).
#[test]
fn infinite_weights_or_errors_give_the_bits_of_the_unsplit_step() {
    simdnet::nn::split::set_one_thread_sparse(false);
    // pixel 0 is zero in every image: skipped, an inf there would leave
    // no trace, where the GEMM's `0·inf` makes an output NaN in every row
    let d = data_with(300, 784, true);
    let mut pixels = d.pixels().to_vec();
    for row in pixels.chunks_mut(784) {
        row[0] = 0;
    }
    let d = Dataset::new(pixels, d.labels().to_vec(), 1, 784).unwrap();
    for layer in [0, 1] {
        let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap();
        if let Layer::Dense(dense) = &mut net.layers_mut()[layer] {
            dense.w.as_mut_slice()[0] = f32::INFINITY;
        }
        let opt = Optimizer::sgd(0.01);
        let (reference, _, _) = train_counted(1, &net, opt, &d, true);
        assert!(
            reference.iter().any(|&b| !f32::from_bits(b).is_finite()),
            "layer {layer}: nothing infinite to compare"
        );
        let (got, parts, sparse) = train_counted(2, &net, opt, &d, true);
        let bad = got.iter().zip(&reference).position(|(g, r)| g != r);
        assert!(bad.is_none(), "inf in layer {layer}: parameter {bad:?} differs");
        // an inf in W: the part whose rows hold it multiplies in full (and
        // both do once the errors are not finite: on aarch64 ReLU passes a
        // NaN on, on x86-64 it gives 0); an inf in the second layer: both
        // parts, for the weight gradient
        let most = if layer == 0 { 1 } else { 0 };
        assert!(
            parts == 2 && sparse <= most,
            "layer {layer}: {sparse} of {parts} parts multiplied the non-zeros"
        );
    }
}

/// The weights after a session of two epochs of `net` on `d`, on `threads`
/// threads, stopped by its progress callback after step 3 and continued
/// after the first layer's weights were changed from outside: on two
/// threads each step runs the next step's first phase ahead
/// (`Trainer::step_ahead`), and what ran ahead of the interrupted step must
/// not be used once the network has changed.
fn interrupted_and_changed(threads: usize, net0: &Network, d: &Dataset) -> Vec<u32> {
    pool(threads).install(|| {
        let mut net = net0.clone();
        let cfg = TrainConfig::default()
            .with_epochs(2)
            .with_batch_size(64)
            .with_seed(5);
        let opt = Optimizer::rmsprop(0.001);
        let mut session = Session::new(&net, opt, d, &cfg).unwrap();
        let mut steps = 0;
        let mut stop_after_3 = |p: Progress| match p {
            Progress::Step { .. } => {
                steps += 1;
                if steps == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        };
        let outcome = session
            .next_epoch(&mut net, d, None, &cfg, &mut stop_after_3)
            .unwrap();
        assert!(matches!(outcome, Outcome::Interrupted), "{outcome:?}");
        let Layer::Dense(first) = &mut net.layers_mut()[0] else {
            unreachable!()
        };
        first.w.as_mut_slice().iter_mut().for_each(|w| *w *= -1.5);
        while let Outcome::Epoch = session
            .next_epoch(&mut net, d, None, &cfg, &mut |_| ControlFlow::Continue(()))
            .unwrap()
        {}
        assert_eq!(session.epochs_done, 2);
        bits(&net)
    })
}

#[test]
fn a_network_changed_between_calls_is_not_run_ahead_of() {
    simdnet::nn::split::set_one_thread_sparse(false);
    // inputs dense, and mostly zero (the parts multiply their non-zeros)
    for zeros in [false, true] {
        let d = data_with(640, 784, zeros);
        let net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 7).unwrap();
        let reference = interrupted_and_changed(1, &net, &d);
        for threads in [2, 3] {
            let got = interrupted_and_changed(threads, &net, &d);
            let bad = got.iter().zip(&reference).position(|(g, r)| g != r);
            assert!(
                bad.is_none(),
                "{threads} threads, mostly zeros {zeros}: parameter {bad:?} differs"
            );
        }
    }
}

/// Inference (evaluation, prediction) multiplies a first layer's
/// non-zeros alone when the images are mostly zero: the logits have the
/// bits of the GEMM's forward pass (a training workspace's), with finite
/// weights and with an infinity in `W` (then the GEMM runs). Wide layers
/// multiply by groups of columns on AVX-512; narrow ones (the workshop
/// network's 16, a partial last vector in 100) row by row from the lists,
/// in builds that read the pixels 64 at a time (else the GEMM runs).
#[test]
fn inference_from_the_non_zeros_gives_the_bits_of_the_gemm() {
    use simdnet::nn::Workspace;
    let rows = 300;
    let mut ran = 0;
    for (width, zeros, infinite) in [
        (GROUPED_MIN_N, true, false),
        (512, true, false),
        (512, false, false),
        (512, true, true),
        (16, true, false),
        (16, false, false),
        (16, true, true),
        (100, true, false),
    ] {
        let d = data_with(rows, 784, zeros);
        let mut net = Network::mlp(784, &[width], 10, Activation::Relu, 9).unwrap();
        if infinite {
            let Layer::Dense(first) = &mut net.layers_mut()[0] else {
                unreachable!("an mlp's first layer is dense")
            };
            first.w.as_mut_slice()[5] = f32::INFINITY;
        }
        let (x, scale, seq) = (
            d.images(),
            net.input_scale(),
            simdnet::gemm::Parallelism::Sequential,
        );
        let (mut gemm, mut lists) = (Workspace::new(&net, rows), Workspace::for_inference(&net, rows));
        let of = |m: MatRef| m.data().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let want = of(gemm.forward(&net, x, scale, seq));
        let got = of(lists.forward(&net, x, scale, seq));
        assert!(!gemm.first_layer_from_nonzeros());
        let listed = width >= GROUPED_MIN_N || NARROW_INFERENCE_FROM_LISTS;
        assert_eq!(
            lists.first_layer_from_nonzeros(),
            zeros && !infinite && listed,
            "784-{width}-10, zeros {zeros}, infinite {infinite}"
        );
        ran += usize::from(lists.first_layer_from_nonzeros());
        assert_eq!(got, want, "784-{width}-10, zeros {zeros}, infinite {infinite}");
    }
    assert_eq!(ran, if NARROW_INFERENCE_FROM_LISTS { 4 } else { 2 });
}
