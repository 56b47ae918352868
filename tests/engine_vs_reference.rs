//! The fast engine (blocked SIMD GEMM with fused epilogues, vector kernels,
//! sharded batches) against the readable reference path (the triple-loop
//! GEMM and the scalar kernels), both in f32: same weights and batch, same
//! forward values, loss and gradients, relative error at most 1e-5 per tensor.

use simdnet::gemm::{reference, Epilogue};
use simdnet::kernels::reference as kref;
use simdnet::matrix::{MatRef, Matrix};
use simdnet::nn::{Activation, Dense, Network, Optimizer, Trainer, Workspace};

const TOL: f64 = 1e-5;

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    d / na.max(nb).max(1e-12)
}

struct RefPass {
    acts: Vec<Matrix>,
    dz: Vec<Matrix>,
    dw: Vec<Matrix>,
    db: Vec<Vec<f32>>,
    loss_sum: f64,
}

fn dense(net: &Network, l: usize) -> &Dense {
    net.layers()[l].as_dense().expect("a dense layer")
}

/// Forward and backward with nothing but the reference GEMM and scalar kernels.
fn reference_pass(net: &Network, x: MatRef<u8>, scale: f32, labels: &[u8]) -> RefPass {
    let rows = x.rows();
    let n = net.layers().len();
    let layers: Vec<&Dense> = (0..n).map(|l| dense(net, l)).collect();
    let mut acts: Vec<Matrix> = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        let mut a = Matrix::zeros(rows, layer.outputs());
        if l == 0 {
            reference::gemm(scale, x, layer.w.view(), 0.0, a.view_mut(), Epilogue::None);
        } else {
            reference::gemm(
                1.0,
                acts[l - 1].view(),
                layer.w.view(),
                0.0,
                a.view_mut(),
                Epilogue::None,
            );
        }
        kref::bias_activation(a.view_mut(), &layer.b, layer.act);
        acts.push(a);
    }
    let mut da: Vec<Matrix> = layers.iter().map(|l| Matrix::zeros(rows, l.outputs())).collect();
    let mut dz = da.clone();
    let loss_sum = kref::softmax_cross_entropy(
        da[n - 1].view_mut(),
        acts[n - 1].view(),
        labels,
        1.0 / rows as f32,
    );
    let mut dw: Vec<Matrix> = layers
        .iter()
        .map(|l| Matrix::zeros(l.inputs(), l.outputs()))
        .collect();
    let mut db: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.outputs()]).collect();
    for l in (0..n).rev() {
        kref::activation_backward(
            dz[l].view_mut(),
            da[l].view(),
            acts[l].view(),
            layers[l].act,
            &mut db[l],
        );
        if l == 0 {
            reference::gemm(scale, x.t(), dz[0].view(), 0.0, dw[0].view_mut(), Epilogue::None);
        } else {
            reference::gemm(
                1.0,
                acts[l - 1].view().t(),
                dz[l].view(),
                0.0,
                dw[l].view_mut(),
                Epilogue::None,
            );
            reference::gemm(
                1.0,
                dz[l].view(),
                layers[l].w.view().t(),
                0.0,
                da[l - 1].view_mut(),
                Epilogue::None,
            );
        }
    }
    RefPass {
        acts,
        dz,
        dw,
        db,
        loss_sum,
    }
}

fn batch(rows: usize, inputs: usize) -> (Vec<u8>, Vec<u8>) {
    (
        (0..rows * inputs)
            .map(|i| ((i * 97 + i / 13) % 256) as u8)
            .collect(),
        (0..rows).map(|r| (r * 3 % 10) as u8).collect(),
    )
}

#[test]
fn one_pass_matches_the_reference_path() {
    // Shapes that exercise the narrow (n <= lanes) and the blocked GEMM paths.
    for (hidden, rows) in [(vec![16, 16], 128), (vec![300, 40], 77), (vec![17], 5)] {
        for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            let net = Network::mlp(784, &hidden, 10, act, 11).unwrap();
            let (x, y) = batch(rows, 784);
            let xv = MatRef::from_slice(&x, rows, 784);
            let r = reference_pass(&net, xv, 1.0 / 255.0, &y);
            let mut ws = Workspace::new(&net, rows);
            ws.forward(&net, xv, 1.0 / 255.0, simdnet::gemm::Parallelism::Rayon);
            let (loss_sum, _) = ws.loss(&y, 1.0 / rows as f32);
            ws.backward(&net, xv, 1.0 / 255.0, simdnet::gemm::Parallelism::Rayon);
            let what = format!("{hidden:?} {act} rows {rows}");
            assert!((loss_sum - r.loss_sum).abs() / r.loss_sum < TOL, "{what}: loss");
            for l in 0..net.layers().len() {
                let pairs = [
                    ("a", &ws.output(l).to_matrix(), &r.acts[l]),
                    ("dz", &ws.dz(l).to_matrix(), &r.dz[l]),
                    (
                        "dW",
                        &Matrix::from_slice(r.dw[l].rows(), r.dw[l].cols(), ws.grad(l, 0)),
                        &r.dw[l],
                    ),
                    (
                        "db",
                        &Matrix::from_slice(1, r.db[l].len(), ws.grad(l, 1)),
                        &Matrix::from_slice(1, r.db[l].len(), &r.db[l]),
                    ),
                ];
                for (name, fast, slow) in pairs {
                    let e = rel_err(fast.as_slice(), slow.as_slice());
                    assert!(e <= TOL, "{what}: {name}{l} relative error {e:.2e}");
                }
            }
        }
    }
}

#[test]
fn sharded_step_gradients_match_the_whole_batch() {
    // The Trainer adds per-shard gradients; the reference does the batch at once.
    let net0 = Network::mlp(784, &[16, 16], 10, Activation::Relu, 2).unwrap();
    let (x, y) = batch(128, 784);
    let xv = MatRef::from_slice(&x, 128, 784);
    let r = reference_pass(&net0, xv, 1.0 / 255.0, &y);
    // Plain SGD with lr 1: the weight change is exactly -gradient.
    let mut net = net0.clone();
    let mut trainer = Trainer::new(&net, Optimizer::sgd(1.0), 128).unwrap();
    trainer.step(&mut net, xv, 1.0 / 255.0, &y).unwrap();
    for l in 0..net.layers().len() {
        let (before, after) = (dense(&net0, l), dense(&net, l));
        let step = |a: &[f32], b: &[f32]| -> Vec<f32> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
        let e = rel_err(&step(before.w.as_slice(), after.w.as_slice()), r.dw[l].as_slice());
        assert!(
            e <= 1e-4,
            "layer {l} dW: {e:.2e} (subtraction of nearby weights costs a few digits)"
        );
        let e = rel_err(&step(&before.b, &after.b), &r.db[l]);
        assert!(e <= 1e-4, "layer {l} db: {e:.2e}");
    }
}
