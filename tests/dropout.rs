//! Inverted dropout: the mask's rate and scale, the fused kernels against
//! their reference twins, off at evaluation, and determinism on any thread
//! count. (Its gradient check is in tests/engine_features.rs.)

mod common;

use common::{bits, engine_product, reference_product, synthetic};
use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::activation::Activation;
use simdnet::gemm::{Epilogue, Parallelism};
use simdnet::kernels::{self, reference, DropoutMask};
use simdnet::matrix::{MatMut, MatRef};
use simdnet::nn::{fit, Network, Optimizer, TrainConfig, Workspace};

const ACTS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Sigmoid and tanh: the SIMD approximations against the scalar functions.
fn close(fast: f32, reference: f32) -> bool {
    fast == reference || (fast - reference).abs() <= 1e-6 * reference.abs() + 1e-6
}

fn exact(act: Activation) -> bool {
    matches!(act, Activation::Identity | Activation::Relu)
}

fn random(n: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn the_mask_drops_rate_of_the_units() {
    let (rows, cols) = (1000, 1000);
    for rate in [0.1f32, 0.2, 0.5, 0.9] {
        for (seed, step, layer) in [(1u64, 0u64, 0usize), (7, 12345, 2)] {
            let m = DropoutMask::new(rate, seed, step, layer).offset(128, 0);
            let dropped = (0..rows)
                .flat_map(|i| (0..cols).map(move |j| (i, j)))
                .filter(|&(i, j)| !m.keeps(i, j))
                .count();
            let n = (rows * cols) as f64;
            let p = rate as f64;
            let sd = (p * (1.0 - p) / n).sqrt();
            let got = dropped as f64 / n;
            assert!((got - p).abs() < 5.0 * sd, "rate {rate}: dropped {got} (sd {sd})");
            // every row and every column sees about the same rate (no stripes)
            for i in [0, 1, 999] {
                let row = (0..cols).filter(|&j| !m.keeps(i, j)).count() as f64 / cols as f64;
                assert!(
                    (row - p).abs() < 6.0 * (p * (1.0 - p) / cols as f64).sqrt(),
                    "row {i}: {row}"
                );
            }
            for j in [0, 1, 999] {
                let col = (0..rows).filter(|&i| !m.keeps(i, j)).count() as f64 / rows as f64;
                assert!(
                    (col - p).abs() < 6.0 * (p * (1.0 - p) / rows as f64).sqrt(),
                    "col {j}: {col}"
                );
            }
        }
    }
    // Another step, layer or seed draws an independent mask: they agree on
    // about r² + (1-r)² of the units.
    let a = DropoutMask::new(0.5, 1, 0, 0);
    for b in [
        DropoutMask::new(0.5, 1, 1, 0),
        DropoutMask::new(0.5, 1, 0, 1),
        DropoutMask::new(0.5, 2, 0, 0),
        a.offset(1, 0),
    ] {
        let same = (0..300)
            .flat_map(|i| (0..300).map(move |j| (i, j)))
            .filter(|&(i, j)| a.keeps(i, j) == b.keeps(i, j))
            .count() as f64
            / 90000.0;
        assert!((same - 0.5).abs() < 0.01, "{same}");
    }
    assert_eq!(DropoutMask::new(0.2, 1, 0, 0).scale(), 1.0 / 0.8f32);
}

#[test]
fn kept_units_are_scaled_by_exactly_one_over_keep() {
    // One hidden layer, so that its input is the same with and without dropout.
    let rows = 150;
    for act in [Activation::Relu, Activation::Identity] {
        for (width, rate) in [(16, 0.2f32), (40, 0.5), (512, 0.2)] {
            let net = Network::mlp(30, &[width], 10, act, 3)
                .unwrap()
                .with_dropout(rate)
                .unwrap();
            let x: Vec<u8> = (0..rows * 30).map(|i| (i * 53 % 256) as u8).collect();
            let xv = MatRef::from_slice(&x, rows, 30);
            let mut plain = Workspace::for_inference(&net, rows);
            plain.forward(&net, xv, 1.0 / 255.0, Parallelism::Rayon);
            let mut train = Workspace::new(&net, rows);
            train.forward_train(&net, xv, 1.0 / 255.0, 9, 0, Parallelism::Rayon);
            let mask = train.dropout_mask(0).unwrap();
            let scale = 1.0 / (1.0 - rate);
            let (a0, a1) = (plain.output(0), train.output(0));
            let mut kept = 0;
            for i in 0..rows {
                for j in 0..width {
                    if mask.keeps(i, j) {
                        assert_eq!(a1.at(i, j), a0.at(i, j) * scale, "{act} {width}: ({i}, {j})");
                        kept += 1;
                    } else {
                        assert_eq!(a1.at(i, j), 0.0, "{act} {width}: ({i}, {j}) dropped");
                    }
                }
            }
            let frac = 1.0 - kept as f64 / (rows * width) as f64;
            assert!((frac - rate as f64).abs() < 0.05, "{frac}");
        }
    }
}

#[test]
fn fused_forward_matches_its_reference_on_many_shapes() {
    let mut rng = StdRng::seed_from_u64(5);
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 16, 20),
        (16, 17, 33),
        (64, 10, 784),
        (65, 40, 100),
        (128, 100, 64),
        (7, 300, 5),
        (130, 512, 300),
        (5, 9, 0),
    ];
    for &(m, n, k) in &shapes {
        let a = random(m * k, &mut rng);
        let pixels: Vec<u8> = (0..m * k).map(|i| (i * 31 % 256) as u8).collect();
        let b = random(k * n, &mut rng);
        let bias = random(n, &mut rng);
        for act in ACTS {
            for (rate, row0) in [(0.2f32, 0usize), (0.5, 64)] {
                let mask = DropoutMask::new(rate, 3, 17, 1).offset(row0, 0);
                let epi = Epilogue::BiasActivationDropout {
                    bias: &bias,
                    act,
                    mask,
                };
                let want = reference_product(1.0, &a, &b, (m, k, n), epi);
                let want_u8 = reference_product(1.0 / 255.0, &pixels, &b, (m, k, n), epi);
                for par in [Parallelism::Sequential, Parallelism::Rayon] {
                    let got = engine_product(1.0, &a, &b, (m, k, n), epi, par);
                    let got_u8 = engine_product(1.0 / 255.0, &pixels, &b, (m, k, n), epi, par);
                    for (got, want) in [(&got, &want), (&got_u8, &want_u8)] {
                        for (idx, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                            let (i, j) = (idx / n, idx % n);
                            // the mask is exact: a dropped element is 0 in both
                            assert!(
                                !(g == 0.0 && w != 0.0),
                                "{m}x{n}x{k} {act}: ({i}, {j}) {g} vs {w}"
                            );
                            let tol = (w.abs() + 1.0) * 1e-4 * (k as f32).sqrt().max(1.0);
                            assert!(
                                (g - w).abs() <= tol,
                                "{m}x{n}x{k} {act} {par:?}: ({i}, {j}) {g} vs {w}"
                            );
                            if !mask.keeps(i, j) {
                                assert_eq!(g, 0.0);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fused_kernels_match_their_reference_twins() {
    let mut rng = StdRng::seed_from_u64(8);
    let shapes = [
        (0, 0),
        (1, 1),
        (2, 7),
        (3, 8),
        (4, 15),
        (5, 16),
        (3, 17),
        (7, 33),
        (128, 10),
        (64, 512),
    ];
    for &(rows, cols) in &shapes {
        let z = random(rows * cols, &mut rng);
        let bias = random(cols, &mut rng);
        let da = random(rows * cols, &mut rng);
        for act in ACTS {
            for mask in [
                DropoutMask::new(0.3, 1, 2, 0),
                DropoutMask::new(0.6, 9, 0, 1).offset(64, 0),
            ] {
                // forward: a = f(z + b) · m
                let (mut fast, mut slow) = (z.clone(), z.clone());
                kernels::bias_activation_dropout(
                    MatMut::from_slice(&mut fast, rows, cols),
                    &bias,
                    act,
                    &mask,
                );
                reference::bias_activation_dropout(
                    MatMut::from_slice(&mut slow, rows, cols),
                    &bias,
                    act,
                    &mask,
                );
                for (f, s) in fast.iter().zip(&slow) {
                    assert!(
                        if exact(act) { f == s } else { close(*f, *s) },
                        "{act} {rows}x{cols}: {f} vs {s}"
                    );
                }
                // backward: dz = da · m · f'(a·u), db = Σ dz, exactly
                let a = slow;
                let (mut dz1, mut dz2) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
                let (mut db1, mut db2) = (vec![1.0; cols], vec![2.0; cols]);
                kernels::activation_dropout_backward(
                    MatMut::from_slice(&mut dz1, rows, cols),
                    MatRef::from_slice(&da, rows, cols),
                    MatRef::from_slice(&a, rows, cols),
                    act,
                    &mask,
                    &mut db1,
                );
                reference::activation_dropout_backward(
                    MatMut::from_slice(&mut dz2, rows, cols),
                    MatRef::from_slice(&da, rows, cols),
                    MatRef::from_slice(&a, rows, cols),
                    act,
                    &mask,
                    &mut db2,
                );
                assert_eq!(dz1, dz2, "{act} {rows}x{cols}");
                assert_eq!(db1, db2, "{act} {rows}x{cols}");
                for i in 0..rows {
                    for j in 0..cols {
                        if !mask.keeps(i, j) {
                            assert_eq!(dz1[i * cols + j], 0.0);
                        }
                    }
                }
            }
        }
    }
}

fn train(net: &Network, threads: usize, batch: usize, epochs: usize) -> Network {
    let data = synthetic(500);
    let mut net = net.clone();
    let cfg = TrainConfig::default()
        .with_epochs(epochs)
        .with_batch_size(batch)
        .with_seed(7);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        fit(
            &mut net,
            Optimizer::rmsprop(0.001),
            &data,
            None,
            &cfg,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
    })
    .unwrap();
    net
}

#[test]
fn dropout_training_is_bit_identical_on_1_2_and_3_threads() {
    // Sharded small networks, and one-shard large ones whose GEMMs are threaded.
    for (hidden, batch) in [
        (&[16usize, 16][..], 100),
        (&[32][..], 128),
        (&[1200, 400][..], 64),
    ] {
        let net = Network::mlp(64, hidden, 10, Activation::Relu, 42)
            .unwrap()
            .with_dropout(0.3)
            .unwrap();
        let epochs = if hidden[0] > 1000 { 1 } else { 2 };
        let one = bits(&train(&net, 1, batch, epochs));
        for threads in [2, 3] {
            assert_eq!(
                bits(&train(&net, threads, batch, epochs)),
                one,
                "{hidden:?}, {threads} threads"
            );
        }
        // ... and dropout does change training, while rate 0 changes nothing.
        let plain = Network::mlp(64, hidden, 10, Activation::Relu, 42).unwrap();
        let trained_plain = bits(&train(&plain, 2, batch, epochs));
        assert_ne!(one, trained_plain, "{hidden:?}");
        assert_eq!(
            bits(&train(
                &plain.clone().with_dropout(0.0).unwrap(),
                2,
                batch,
                epochs
            )),
            trained_plain
        );
    }
}

#[test]
fn the_mask_depends_on_the_row_in_the_batch_not_on_the_shard() {
    let net = Network::mlp(64, &[40, 20], 10, Activation::Tanh, 1)
        .unwrap()
        .with_dropout(0.4)
        .unwrap();
    let data = synthetic(128);
    let x = MatRef::from_slice(data.images().data(), 128, 64);
    let mut whole = Workspace::new(&net, 128);
    whole.forward_train(&net, x, 1.0 / 255.0, 5, 0, Parallelism::Sequential);
    for split in [1, 64, 100] {
        let mut top = Workspace::new(&net, 128);
        let mut bottom = Workspace::new(&net, 128);
        top.forward_train(
            &net,
            x.rows_range(0, split),
            1.0 / 255.0,
            5,
            0,
            Parallelism::Rayon,
        );
        bottom.forward_train(
            &net,
            x.rows_range(split, 128),
            1.0 / 255.0,
            5,
            split,
            Parallelism::Rayon,
        );
        for l in 0..3 {
            for i in 0..128 {
                let row = |ws: &Workspace, r: usize| {
                    (0..ws.output(l).cols())
                        .map(|j| ws.output(l).at(r, j))
                        .collect::<Vec<_>>()
                };
                let part = if i < split {
                    row(&top, i)
                } else {
                    row(&bottom, i - split)
                };
                assert_eq!(part, row(&whole, i), "split {split}, layer {l}, row {i}");
            }
        }
    }
}

#[test]
fn dropout_is_off_at_evaluation_and_prediction() {
    let data = synthetic(300);
    let trained = train(
        &Network::mlp(64, &[32, 16], 10, Activation::Sigmoid, 3)
            .unwrap()
            .with_dropout(0.5)
            .unwrap(),
        2,
        50,
        1,
    );
    let without = trained.clone().with_dropout(0.0).unwrap();
    assert_eq!(trained.dropout(), &[0.5, 0.5, 0.0]);
    assert_eq!(trained.evaluate(&data).unwrap(), without.evaluate(&data).unwrap());
    let x = MatRef::from_slice(data.images().data(), 300, 64);
    assert_eq!(trained.predict(x).unwrap(), without.predict(x).unwrap());
    // A workspace's plain forward pass after a training one drops nothing.
    let mut ws = Workspace::new(&trained, 300);
    ws.forward_train(&trained, x, 1.0 / 255.0, 1, 0, Parallelism::Sequential);
    let dropped: Vec<f32> = ws.logits().data()[..3000].to_vec();
    ws.forward(&trained, x, 1.0 / 255.0, Parallelism::Sequential);
    assert!(ws.dropout_mask(0).is_none());
    let mut clean = Workspace::for_inference(&without, 300);
    clean.forward(&without, x, 1.0 / 255.0, Parallelism::Sequential);
    assert_eq!(ws.logits().data()[..3000], clean.logits().data()[..3000]);
    assert_ne!(dropped, clean.logits().data()[..3000].to_vec());
}

#[test]
fn dropout_rates_are_checked_described_and_saved() {
    let net = Network::mlp(64, &[32, 16], 10, Activation::Relu, 3).unwrap();
    for bad in [1.0f32, -0.1, f32::NAN, 2.0] {
        let e = net.clone().with_dropout(bad).unwrap_err().to_string();
        assert!(
            e.contains("the dropout rate must be at least 0 and below 1, got"),
            "{bad}: {e}"
        );
    }
    let e = net.clone().with_dropout_rates(&[0.1]).unwrap_err().to_string();
    assert_eq!(
        e,
        "1 dropout rates for 2 hidden layers: give one per hidden layer"
    );
    let d = net.with_dropout_rates(&[0.2, 0.5]).unwrap().with_dropout_seed(99);
    assert_eq!(
        d.describe(),
        "64 -> 32 relu (dropout 0.2) -> 16 relu (dropout 0.5) -> 10 softmax"
    );
    let back =
        simdnet::nn::model_file::from_bytes(&simdnet::nn::model_file::to_bytes(&d), "m".as_ref()).unwrap();
    assert_eq!(back.dropout(), &[0.2, 0.5, 0.0]);
    assert_eq!(back.dropout_seed(), 99);
    assert_eq!(back, d);
}

#[test]
fn a_training_step_masks_each_example_by_its_row_in_the_batch() {
    use simdnet::nn::Trainer;
    // 128 rows = two shards of 64; the step must equal one pass over the
    // whole batch with one mask (up to the order the shards' gradients are added).
    let net = Network::mlp(64, &[24], 10, Activation::Relu, 2)
        .unwrap()
        .with_dropout(0.5)
        .unwrap();
    let data = synthetic(128);
    let x = MatRef::from_slice(data.images().data(), 128, 64);
    let lr = 0.5;
    let mut stepped = net.clone();
    let mut trainer = Trainer::new(&stepped, Optimizer::sgd(lr), 128).unwrap();
    trainer
        .step_indices(&mut stepped, &data, &(0..128).collect::<Vec<_>>())
        .unwrap();
    let mut ws = Workspace::new(&net, 128);
    ws.forward_train(&net, x, 1.0 / 255.0, 0, 0, Parallelism::Sequential);
    ws.loss(data.labels(), 1.0 / 128.0);
    ws.backward(&net, x, 1.0 / 255.0, Parallelism::Sequential);
    for l in 0..2 {
        for k in 0..2 {
            let before = net.layers()[l].params()[k];
            let after = stepped.layers()[l].params()[k];
            for (i, ((&w0, &w1), &g)) in before.iter().zip(after).zip(ws.grad(l, k)).enumerate() {
                let want = w0 - lr * g;
                assert!(
                    (w1 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "layer {l} tensor {k} [{i}]: {w1} vs {want}"
                );
            }
        }
    }
}

#[test]
fn a_trainer_resumed_from_its_optimizer_state_draws_the_same_masks() {
    use simdnet::nn::Trainer;
    let data = synthetic(256);
    let net0 = Network::mlp(64, &[32, 16], 10, Activation::Relu, 4)
        .unwrap()
        .with_dropout(0.3)
        .unwrap();
    let batches: Vec<Vec<usize>> = (0..6)
        .map(|b| (0..100).map(|i| (b * 37 + i * 7) % 256).collect())
        .collect();
    // uninterrupted: six steps
    let mut straight = net0.clone();
    let mut t = Trainer::new(&straight, Optimizer::adam(0.001), 100).unwrap();
    for b in &batches {
        t.step_indices(&mut straight, &data, b).unwrap();
    }
    // three steps, then a fresh trainer given the saved optimiser state
    let mut resumed = net0.clone();
    let mut t1 = Trainer::new(&resumed, Optimizer::adam(0.001), 100).unwrap();
    for b in &batches[..3] {
        t1.step_indices(&mut resumed, &data, b).unwrap();
    }
    let saved = t1.state.clone();
    let mut t2 = Trainer::new(&resumed, Optimizer::adam(0.001), 100).unwrap();
    t2.state = saved;
    for b in &batches[3..] {
        t2.step_indices(&mut resumed, &data, b).unwrap();
    }
    assert_eq!(bits(&resumed), bits(&straight));
}
