//! The engine (f32, fast kernels, sharded batches) and the teaching module
//! (f64, plain loops) agree, for every activation and every optimiser:
//!
//! - one pass: every layer's output `a`, the loss, and every layer's `da`,
//!   `dz`, `dW` and `db`, each tensor within a relative error of 1e-4;
//! - three training steps: the loss before each step, and each step's
//!   *update* of every weight and bias tensor, `ΔW = W_after - W_before`,
//!   measured against the size of the update itself (not of `W`, beside which
//!   any update is small): `‖ΔW_engine - ΔW_teach‖ <= 1e-4·‖ΔW_teach‖ +
//!   2^-23·‖W_after‖`. The second term is what storing `W` in f32 costs: each
//!   weight the engine keeps is rounded to half an ulp, `2^-24·|w|`, and the
//!   f64 lesson drifts from it by as much over the steps.

use simdnet::gemm::Parallelism;
use simdnet::matrix::MatRef;
use simdnet::nn::{Activation, Dense, Network, Optimizer, Trainer, Workspace};
use simdnet::teach::network::{train_step, DenseF64, NetworkF64, NetworkOptimizerF64};
use simdnet::teach::OptimizerKind;

const TOL: f64 = 1e-4;

/// The Euclidean norm of a tensor.
fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `‖a - b‖ / max(‖a‖, ‖b‖, 1e-12)` over a whole tensor.
fn rel_err(engine: &[f64], teach: &[f64]) -> f64 {
    assert_eq!(engine.len(), teach.len(), "tensor sizes differ");
    let diff: Vec<f64> = engine.iter().zip(teach).map(|(e, t)| e - t).collect();
    norm(&diff) / norm(engine).max(norm(teach)).max(1e-12)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn dense(net: &Network, l: usize) -> &Dense {
    net.layers()[l].as_dense().expect("a dense layer")
}

/// The same weights, biases and activations in the teaching module's types.
fn to_teach(net: &Network) -> NetworkF64 {
    NetworkF64 {
        layers: (0..net.layers().len())
            .map(|l| {
                let d = dense(net, l);
                DenseF64 {
                    inputs: d.inputs(),
                    outputs: d.outputs(),
                    w: f64s(d.w.as_slice()),
                    b: f64s(&d.b),
                    act: d.act,
                }
            })
            .collect(),
    }
}

/// A batch of `rows` raw "pixels" (u8) and labels, big enough to use several shards.
fn batch(rows: usize, inputs: usize) -> (Vec<u8>, Vec<u8>) {
    let x = (0..rows * inputs)
        .map(|i| ((i * 193 + i / 7 * 31) % 256) as u8)
        .collect();
    let y = (0..rows).map(|r| (r * 7 % 10) as u8).collect();
    (x, y)
}

#[test]
fn forward_loss_and_gradients_agree_for_every_activation() {
    let (rows, inputs) = (45, 50);
    let (x, y) = batch(rows, inputs);
    let x64: Vec<f64> = x.iter().map(|&p| p as f64 / 255.0).collect();
    let labels: Vec<usize> = y.iter().map(|&l| l as usize).collect();
    for act in Activation::ALL {
        let net = Network::mlp(inputs, &[24, 16], 10, act, 3).unwrap();
        let tnet = to_teach(&net);
        let mut ws = Workspace::new(&net, rows);
        let xv = MatRef::from_slice(&x, rows, inputs);
        ws.forward(&net, xv, 1.0 / 255.0, Parallelism::Sequential);
        let (loss_sum, _) = ws.loss(&y, 1.0 / rows as f32);
        ws.backward(&net, xv, 1.0 / 255.0, Parallelism::Sequential);

        let fwd = tnet.forward(&x64, rows);
        let grads = tnet.backward(&x64, &labels, &fwd);
        let loss = loss_sum / rows as f64;
        assert!(
            (loss - grads.loss.loss).abs() / grads.loss.loss < TOL,
            "{act}: loss {loss} vs {}",
            grads.loss.loss
        );
        for l in 0..net.layers().len() {
            let tensors = [
                ("a", f64s(ws.output(l).to_matrix().as_slice()), &fwd.a[l]),
                ("da", f64s(ws.da(l).to_matrix().as_slice()), &grads.da[l]),
                ("dz", f64s(ws.dz(l).to_matrix().as_slice()), &grads.dz[l]),
                ("dW", f64s(ws.grad(l, 0)), &grads.dw[l]),
                ("db", f64s(ws.grad(l, 1)), &grads.db[l]),
            ];
            for (name, engine, teach) in tensors {
                let e = rel_err(&engine, teach);
                assert!(e < TOL, "{act}: {name}{l} relative error {e:.2e}");
            }
        }
    }
}

#[test]
fn training_steps_agree_for_every_activation_and_optimizer() {
    // The engine's Trainer splits this batch into shards and sums their
    // gradients; the teaching module does the whole batch at once.
    let (rows, inputs) = (100, 30);
    let (x, y) = batch(rows, inputs);
    let x64: Vec<f64> = x.iter().map(|&p| p as f64 / 255.0).collect();
    let labels: Vec<usize> = y.iter().map(|&l| l as usize).collect();
    let optimizers = [
        // learning rates large enough that an update stands well above the
        // f32 rounding of the weights it changes
        (Optimizer::sgd(0.5), OptimizerKind::Sgd, 0.5),
        (Optimizer::momentum(0.5, 0.9), OptimizerKind::Momentum, 0.5),
        (Optimizer::rmsprop(0.01), OptimizerKind::RmsProp, 0.01),
        (Optimizer::adam(0.01), OptimizerKind::Adam, 0.01),
    ];
    for act in Activation::ALL {
        for (opt, kind, lr) in optimizers {
            let mut net = Network::mlp(inputs, &[20, 12], 10, act, 5).unwrap();
            let mut tnet = to_teach(&net);
            let mut topt = NetworkOptimizerF64::new(kind, lr, &tnet);
            let mut trainer = Trainer::new(&net, opt, rows).unwrap();
            assert!(
                Trainer::shard_rows_for(&net, rows) < rows,
                "the batch must be split into shards"
            );
            for step in 0..3 {
                let before = net.clone();
                let (loss_sum, _) = trainer
                    .step(&mut net, MatRef::from_slice(&x, rows, inputs), 1.0 / 255.0, &y)
                    .unwrap();
                let trace = train_step(&mut tnet, &mut topt, &x64, &labels);
                let loss = loss_sum / rows as f64;
                assert!(
                    (loss - trace.loss).abs() / trace.loss < TOL,
                    "{act} {opt} step {step}: loss {loss} vs {}",
                    trace.loss
                );
                for (l, tl) in trace.layers.iter().enumerate() {
                    let (was, now) = (dense(&before, l), dense(&net, l));
                    // the update, in f64 from the f32 weights (the subtraction is exact)
                    let delta = |a: &[f32], b: &[f32]| -> Vec<f64> {
                        a.iter().zip(b).map(|(&a, &b)| b as f64 - a as f64).collect()
                    };
                    let tensors = [
                        (
                            "W",
                            delta(was.w.as_slice(), now.w.as_slice()),
                            &tl.w_update,
                            now.w.as_slice(),
                        ),
                        ("b", delta(&was.b, &now.b), &tl.b_update, &now.b[..]),
                    ];
                    for (name, engine, teach, after) in tensors {
                        let err = norm(&engine.iter().zip(teach).map(|(e, t)| e - t).collect::<Vec<_>>());
                        let bound = TOL * norm(teach) + (2.0f64).powi(-23) * norm(&f64s(after));
                        assert!(
                            err <= bound,
                            "{act} {opt} step {step}: Δ{name}{l} off by {err:.3e} (relative {:.2e}), bound {bound:.3e}",
                            err / norm(teach)
                        );
                    }
                }
            }
        }
    }
}
