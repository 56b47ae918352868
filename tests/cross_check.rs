//! The engine (f32, fast kernels, sharded batches) and the teaching module
//! (f64, plain loops) agree: same weights and batch give the same forward
//! values, loss, gradients and updated weights, for every activation and
//! optimiser. Relative error per tensor at most 1e-4.

use simdnet::gemm::Parallelism;
use simdnet::matrix::MatRef;
use simdnet::nn::{Activation, Network, Optimizer, Trainer, Workspace};
use simdnet::teach;

const TOL: f64 = 1e-4;

/// `‖a - b‖ / max(‖a‖, ‖b‖, 1e-6)` over a whole tensor.
fn rel_err(engine: &[f32], teach: &[f64]) -> f64 {
    assert_eq!(engine.len(), teach.len(), "tensor sizes differ");
    let diff: f64 = engine
        .iter()
        .zip(teach)
        .map(|(&e, &t)| (e as f64 - t).powi(2))
        .sum::<f64>()
        .sqrt();
    let na: f64 = engine.iter().map(|&e| (e as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = teach.iter().map(|t| t * t).sum::<f64>().sqrt();
    diff / na.max(nb).max(1e-6)
}

fn to_teach(net: &Network, _act: Activation) -> teach::NetworkF64 {
    teach::NetworkF64 {
        layers: net
            .layers()
            .iter()
            .map(|l| teach::DenseF64 {
                inputs: l.inputs(),
                outputs: l.outputs(),
                w: l.w.as_slice().iter().map(|&v| v as f64).collect(),
                b: l.b.iter().map(|&v| v as f64).collect(),
                act: l.act,
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

const ACTS: [Activation; 3] = [Activation::Relu, Activation::Sigmoid, Activation::Tanh];

#[test]
fn forward_loss_and_gradients_agree() {
    let (rows, inputs) = (45, 50);
    let (x, y) = batch(rows, inputs);
    let x64: Vec<f64> = x.iter().map(|&p| p as f64 / 255.0).collect();
    let labels: Vec<usize> = y.iter().map(|&l| l as usize).collect();
    for act in ACTS {
        let net = Network::mlp(inputs, &[24, 16], 10, act, 3).unwrap();
        let tnet = to_teach(&net, act);
        let mut ws = Workspace::new(&net, rows);
        let xv = MatRef::from_slice(&x, rows, inputs);
        ws.forward(&net, xv, 1.0 / 255.0, Parallelism::Sequential);
        let (loss_sum, _) = ws.loss_and_correct(&y, 1.0 / rows as f32);
        ws.backward(&net, xv, 1.0 / 255.0, Parallelism::Sequential);

        let fwd = tnet.forward(&x64, rows);
        let grads = tnet.backward(&x64, &labels, &fwd);
        let n = net.layers().len();
        for l in 0..n - 1 {
            let e = rel_err(ws.acts[l].as_slice(), &fwd.a[l]);
            assert!(e < TOL, "{act}: activations of layer {l}: {e}");
        }
        // The engine keeps the logits; the teaching module, z of the last layer.
        let e = rel_err(ws.acts[n - 1].as_slice(), &fwd.z[n - 1]);
        assert!(e < TOL, "{act}: logits {e}");
        let teach_loss = tnet.loss(&x64, &labels);
        assert!(
            ((loss_sum / rows as f64) - teach_loss).abs() / teach_loss < TOL,
            "{act}: loss"
        );
        for l in 0..n {
            let e = rel_err(ws.dw[l].as_slice(), &grads.dw[l]);
            assert!(e < TOL, "{act}: dW{l} {e}");
            let e = rel_err(&ws.db[l], &grads.db[l]);
            assert!(e < TOL, "{act}: db{l} {e}");
            let e = rel_err(ws.deltas[l].as_slice(), &grads.dz[l]);
            assert!(e < TOL, "{act}: dz{l} {e}");
        }
    }
}

#[test]
fn training_steps_agree_for_every_optimizer() {
    // The engine's Trainer splits this batch into shards and sums their
    // gradients; the teaching module does the whole batch at once.
    let (rows, inputs) = (100, 30);
    let (x, y) = batch(rows, inputs);
    let x64: Vec<f64> = x.iter().map(|&p| p as f64 / 255.0).collect();
    let labels: Vec<usize> = y.iter().map(|&l| l as usize).collect();
    let kinds = [
        (Optimizer::sgd(0.05), teach::OptimizerKind::Sgd, 0.05),
        (
            Optimizer::momentum(0.05, 0.9),
            teach::OptimizerKind::Momentum,
            0.05,
        ),
        (Optimizer::rmsprop(0.001), teach::OptimizerKind::RmsProp, 0.001),
        (Optimizer::adam(0.001), teach::OptimizerKind::Adam, 0.001),
    ];
    for act in ACTS {
        for (opt, kind, lr) in kinds {
            let mut net = Network::mlp(inputs, &[20, 12], 10, act, 5).unwrap();
            let mut tnet = to_teach(&net, act);
            let mut topt = teach::NetworkOptimizerF64::new(kind, lr, &tnet);
            let mut trainer = Trainer::new(&net, opt, rows).unwrap();
            for step in 0..3 {
                let (loss_sum, _) =
                    trainer.step(&mut net, MatRef::from_slice(&x, rows, inputs), 1.0 / 255.0, &y);
                let trace = teach::train_step(&mut tnet, &mut topt, &x64, &labels);
                assert!(
                    ((loss_sum / rows as f64) - trace.loss).abs() / trace.loss < TOL,
                    "{act} {opt}: loss"
                );
                for (l, (el, tl)) in net.layers().iter().zip(&tnet.layers).enumerate() {
                    let e = rel_err(el.w.as_slice(), &tl.w);
                    assert!(e < TOL, "{act} {opt}: W{l} after step {step}: {e}");
                    let e = rel_err(&el.b, &tl.b);
                    assert!(e < TOL, "{act} {opt}: b{l} after step {step}: {e}");
                }
            }
        }
    }
}
