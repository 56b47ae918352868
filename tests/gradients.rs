//! Gradient checks: the engine's analytic gradients against central finite
//! differences of the loss computed independently in f64.

mod common;

use common::act64;
use simdnet::gemm::Parallelism;
use simdnet::kernels::softmax_cross_entropy;
use simdnet::matrix::{MatMut, MatRef};
use simdnet::nn::{Activation, Network, Workspace};

/// Parameters in f64: per layer (W row-major (inputs, outputs), b, activation).
type Params = Vec<(Vec<f64>, Vec<f64>, Activation, usize, usize)>;

fn params(net: &Network) -> Params {
    net.layers()
        .iter()
        .map(|l| {
            let l = l.as_dense().expect("a dense layer");
            let w = l.w.as_slice().iter().map(|&v| v as f64).collect();
            let b = l.b.iter().map(|&v| v as f64).collect();
            (w, b, l.act, l.inputs(), l.outputs())
        })
        .collect()
}

/// Mean softmax cross-entropy of the f64 network on `x: (rows, inputs)`.
fn loss64(p: &Params, x: &[f64], rows: usize, labels: &[u8]) -> f64 {
    let mut total = 0.0;
    for r in 0..rows {
        let mut a: Vec<f64> = x[r * p[0].3..(r + 1) * p[0].3].to_vec();
        for (w, b, act, inputs, outputs) in p {
            a = (0..*outputs)
                .map(|j| {
                    act64(
                        *act,
                        b[j] + (0..*inputs).map(|i| a[i] * w[i * outputs + j]).sum::<f64>(),
                    )
                })
                .collect();
        }
        let max = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = a.iter().map(|z| (z - max).exp()).sum();
        total -= (a[labels[r] as usize] - max) - sum.ln();
    }
    total / rows as f64
}

fn inputs(rows: usize, n: usize, seed: u32) -> Vec<f32> {
    (0..rows * n)
        .map(|i| (((i as u32 * 2654435761u32) ^ seed) % 1000) as f32 / 1000.0)
        .collect()
}

/// Relative error `|a - b| / max(|a| + |b|, floor)` over a whole tensor (norms).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt() + b.iter().map(|x| x * x).sum::<f64>().sqrt();
    diff / norm.max(1e-12)
}

fn check_network(hidden: &[usize], act: Activation, seed: u64) {
    let (rows, n_in, n_out) = (5, 6, 4);
    let net = Network::mlp(n_in, hidden, n_out, act, seed).unwrap();
    let x = inputs(rows, n_in, seed as u32);
    let labels: Vec<u8> = (0..rows).map(|r| (r % n_out) as u8).collect();
    let xv = MatRef::from_slice(&x, rows, n_in);
    let mut ws = Workspace::new(&net, rows);
    ws.forward(&net, xv, 1.0, Parallelism::Sequential);
    let (loss_sum, _) = ws.loss(&labels, 1.0 / rows as f32);
    ws.backward(&net, xv, 1.0, Parallelism::Sequential);

    let mut p = params(&net);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let loss = loss64(&p, &x64, rows, &labels);
    assert!(
        (loss_sum / rows as f64 - loss).abs() < 1e-5,
        "loss {} vs {loss}",
        loss_sum / rows as f64
    );
    let h = 1e-6;
    for l in 0..p.len() {
        for which in 0..2 {
            let len = if which == 0 { p[l].0.len() } else { p[l].1.len() };
            let mut numeric = vec![0.0; len];
            for (i, g) in numeric.iter_mut().enumerate() {
                let slot = |p: &mut Params| if which == 0 { &mut p[l].0[i] } else { &mut p[l].1[i] } as *mut f64;
                let ptr = slot(&mut p);
                // SAFETY: `ptr` points into `p`, which outlives these uses and is not moved.
                let orig = unsafe { *ptr };
                unsafe { *ptr = orig + h };
                let up = loss64(&p, &x64, rows, &labels);
                unsafe { *ptr = orig - h };
                let down = loss64(&p, &x64, rows, &labels);
                unsafe { *ptr = orig };
                *g = (up - down) / (2.0 * h);
            }
            let analytic: Vec<f64> = if which == 0 {
                ws.grad(l, 0).iter().map(|&v| v as f64).collect()
            } else {
                ws.grad(l, 1).iter().map(|&v| v as f64).collect()
            };
            let e = rel_err(&analytic, &numeric);
            let name = if which == 0 { "dW" } else { "db" };
            assert!(e < 1e-4, "{act} {hidden:?}: layer {l} {name} relative error {e}");
        }
    }
}

#[test]
fn whole_network_for_every_activation() {
    for act in [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Identity,
    ] {
        check_network(&[7, 5], act, 3);
    }
}

#[test]
fn softmax_regression_and_deep_narrow() {
    check_network(&[], Activation::Relu, 4);
    check_network(&[3, 3, 3], Activation::Tanh, 5);
}

#[test]
fn softmax_cross_entropy_gradient() {
    let logits = [0.3f32, -1.2, 2.0, 0.7, 0.1, 0.1, -0.4, 5.0];
    let labels = [2u8, 3];
    let mut dz = [0.0f32; 8];
    let loss = softmax_cross_entropy(
        MatMut::from_slice(&mut dz, 2, 4),
        MatRef::from_slice(&logits, 2, 4),
        &labels,
        0.5,
    );
    let ce = |z: &[f64]| -> f64 {
        (0..2)
            .map(|r| {
                let row = &z[r * 4..r * 4 + 4];
                let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                lse - row[labels[r] as usize]
            })
            .sum::<f64>()
            / 2.0
    };
    let z64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    assert!((loss / 2.0 - ce(&z64)).abs() < 1e-6);
    for i in 0..8 {
        let (mut up, mut down) = (z64.clone(), z64.clone());
        up[i] += 1e-6;
        down[i] -= 1e-6;
        let numeric = (ce(&up) - ce(&down)) / 2e-6;
        assert!(
            (dz[i] as f64 - numeric).abs() < 1e-5,
            "dz[{i}] = {} vs {numeric}",
            dz[i]
        );
    }
}

#[test]
fn cross_entropy_is_exact_for_confident_mistakes_and_nan_for_broken_logits() {
    use simdnet::kernels::reference;
    type Kernel = fn(MatMut, MatRef, &[u8], f32) -> f64;
    let kernels: [(&str, Kernel); 2] = [
        ("fast", softmax_cross_entropy),
        ("reference", reference::softmax_cross_entropy),
    ];
    for (name, kernel) in kernels {
        let mut dz = [0.0f32; 3];
        // p_y = e^-200 / (1 + ...) underflows f32, but -ln p_y is still 200.
        let loss = kernel(
            MatMut::from_slice(&mut dz, 1, 3),
            MatRef::from_slice(&[200.0, 0.0, 0.0], 1, 3),
            &[1],
            1.0,
        );
        assert!((loss - 200.0).abs() < 1e-3, "{name}: {loss}");
        for bad in [f32::NAN, f32::INFINITY] {
            let loss = kernel(
                MatMut::from_slice(&mut dz, 1, 3),
                MatRef::from_slice(&[bad, 0.0, 1.0], 1, 3),
                &[0],
                1.0,
            );
            assert!(loss.is_nan(), "{name}: logits with {bad} gave loss {loss}");
        }
    }
}
