//! The engine features the workshop's trials table needs: one activation per
//! hidden layer, the input scale (raw 0-255 pixels or 0..1), L2 weight decay,
//! and the model file (version 2, and version 1 files still load).

mod common;

use std::path::Path;

use common::act64;
use simdnet::data::Dataset;
use simdnet::gemm::Parallelism;
use simdnet::matrix::MatRef;
use simdnet::nn::{fit, model_file, Activation, Network, Optimizer, TrainConfig, Workspace, PIXEL_SCALE};

/// Per layer: W row-major (inputs, outputs), b, activation, inputs, outputs (in f64).
type Params = Vec<(Vec<f64>, Vec<f64>, Activation, usize, usize)>;

fn params(net: &Network) -> Params {
    net.layers()
        .iter()
        .map(|l| {
            let l = l.as_dense().unwrap();
            let w = l.w.as_slice().iter().map(|&v| v as f64).collect();
            let b = l.b.iter().map(|&v| v as f64).collect();
            (w, b, l.act, l.inputs(), l.outputs())
        })
        .collect()
}

/// Mean softmax cross-entropy in f64; `factor(l, r, j)` multiplies hidden
/// layer `l`'s output (a fixed dropout mask; 1 for none), and
/// `decay / 2 · Σ W²` is added for the weight matrices.
fn loss64(
    p: &Params,
    x: &[f64],
    rows: usize,
    labels: &[u8],
    decay: f64,
    factor: &dyn Fn(usize, usize, usize) -> f64,
) -> f64 {
    let mut total = 0.0;
    for r in 0..rows {
        let mut a: Vec<f64> = x[r * p[0].3..(r + 1) * p[0].3].to_vec();
        for (l, (w, b, act, inputs, outputs)) in p.iter().enumerate() {
            let hidden = l + 1 < p.len();
            a = (0..*outputs)
                .map(|j| {
                    let z = b[j] + (0..*inputs).map(|i| a[i] * w[i * outputs + j]).sum::<f64>();
                    let f = act64(*act, z);
                    if hidden {
                        f * factor(l, r, j)
                    } else {
                        f
                    }
                })
                .collect();
        }
        let max = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = a.iter().map(|z| (z - max).exp()).sum();
        total -= (a[labels[r] as usize] - max) - sum.ln();
    }
    let l2: f64 = p.iter().map(|(w, ..)| w.iter().map(|v| v * v).sum::<f64>()).sum();
    total / rows as f64 + decay / 2.0 * l2
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt() + b.iter().map(|x| x * x).sum::<f64>().sqrt();
    diff / norm.max(1e-12)
}

/// Central finite differences of `loss` over every parameter of `p`, tensor by tensor.
fn numeric_grads(p: &Params, loss: &dyn Fn(&Params) -> f64) -> Vec<Vec<f64>> {
    let h = 1e-6;
    let mut out = Vec::new();
    let mut q = p.clone();
    for l in 0..p.len() {
        for which in 0..2 {
            let len = if which == 0 { p[l].0.len() } else { p[l].1.len() };
            let mut g = vec![0.0; len];
            for (i, g) in g.iter_mut().enumerate() {
                let orig = if which == 0 { q[l].0[i] } else { q[l].1[i] };
                let at = |v: f64, q: &mut Params| {
                    if which == 0 {
                        q[l].0[i] = v
                    } else {
                        q[l].1[i] = v
                    }
                };
                at(orig + h, &mut q);
                let up = loss(&q);
                at(orig - h, &mut q);
                let down = loss(&q);
                at(orig, &mut q);
                *g = (up - down) / (2.0 * h);
            }
            out.push(g);
        }
    }
    out
}

fn inputs(rows: usize, n: usize, seed: u32) -> Vec<f32> {
    (0..rows * n)
        .map(|i| (((i as u32).wrapping_mul(2654435761u32) ^ seed) % 1000) as f32 / 1000.0)
        .collect()
}

/// The engine's gradients (one forward, loss and backward) against finite differences.
fn check_gradients(net: &Network, what: &str) {
    let (rows, n_in, n_out) = (5, net.inputs(), net.outputs());
    let x = inputs(rows, n_in, 3);
    let labels: Vec<u8> = (0..rows).map(|r| (r % n_out) as u8).collect();
    let xv = MatRef::from_slice(&x, rows, n_in);
    let mut ws = Workspace::new(net, rows);
    ws.forward(net, xv, 1.0, Parallelism::Sequential);
    ws.loss(&labels, 1.0 / rows as f32);
    ws.backward(net, xv, 1.0, Parallelism::Sequential);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let p = params(net);
    let numeric = numeric_grads(&p, &|q| loss64(q, &x64, rows, &labels, 0.0, &|_, _, _| 1.0));
    for (t, num) in numeric.iter().enumerate() {
        let analytic: Vec<f64> = ws.grad(t / 2, t % 2).iter().map(|&v| v as f64).collect();
        let e = rel_err(&analytic, num);
        assert!(e < 1e-4, "{what}: tensor {t} relative error {e}");
    }
}

/// A data set of `n` 6x6 images whose label depends on the pixels.
fn synthetic(n: usize) -> Dataset {
    let mut s = 99u32;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..n {
        let mut sum = 0u32;
        for _ in 0..36 {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            let p = (s >> 24) as u8;
            sum += p as u32;
            pixels.push(p);
        }
        labels.push((sum % 4) as u8);
    }
    Dataset::new(pixels, labels, 6, 6).unwrap()
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig::default()
        .with_epochs(epochs)
        .with_batch_size(32)
        .with_seed(5)
}

// ---------------------------------------------------------------- per-layer activations

#[test]
fn one_activation_per_hidden_layer() {
    let acts = [Activation::Relu, Activation::Tanh, Activation::Sigmoid];
    let net = Network::mlp_with(784, &[16, 12, 8], &acts, 10, 3).unwrap();
    assert_eq!(
        net.describe(),
        "784 -> 16 relu -> 12 tanh -> 8 sigmoid -> 10 softmax"
    );
    for (layer, act) in net.layers().iter().zip(acts) {
        assert_eq!(layer.as_dense().unwrap().act, act);
    }
    // The same seed draws the same weights as the one-activation shorthand.
    let same = Network::mlp(784, &[16, 12, 8], 10, Activation::Relu, 3).unwrap();
    let relu = Network::mlp_with(784, &[16, 12, 8], &[Activation::Relu; 3], 10, 3).unwrap();
    assert_eq!(same, relu);
    for (a, b) in net.layers().iter().zip(same.layers()) {
        assert_eq!(a.params(), b.params());
    }
    // A count that does not match the hidden layers is refused.
    let e = Network::mlp_with(784, &[16, 16], &[Activation::Relu], 10, 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "1 activations for 2 hidden layers: give one activation per hidden layer"
    );
}

#[test]
fn mixed_activations_save_load_and_gradients() {
    let acts = [Activation::Tanh, Activation::Relu, Activation::Sigmoid];
    let net = Network::mlp_with(6, &[5, 4, 3], &acts, 4, 8).unwrap();
    let back = model_file::from_bytes(&model_file::to_bytes(&net), Path::new("m")).unwrap();
    assert_eq!(back, net);
    assert_eq!(back.describe(), "6 -> 5 tanh -> 4 relu -> 3 sigmoid -> 4 softmax");
    check_gradients(&net, "tanh-relu-sigmoid");
}

#[test]
fn activation_lists_on_the_command_line() {
    use simdnet::cli::common::activations;
    assert_eq!(activations("relu", 3).unwrap(), vec![Activation::Relu; 3]);
    assert_eq!(
        activations("relu,tanh", 2).unwrap(),
        vec![Activation::Relu, Activation::Tanh]
    );
    assert_eq!(activations("tanh", 0).unwrap(), vec![]);
    assert_eq!(
        activations("relu,tanh,relu", 2).unwrap_err().0,
        "--activation lists 3 activations but --layers has 2 hidden layers: \
         give one name for all of them or exactly 2, separated by commas"
    );
    assert!(activations("relu,softplus", 2)
        .unwrap_err()
        .0
        .starts_with("invalid --activation: unknown activation 'softplus'"));
}

// ---------------------------------------------------------------- input scale

#[test]
fn input_scale_defaults_to_pixels_and_is_checked() {
    let net = Network::mlp(36, &[8], 4, Activation::Relu, 1).unwrap();
    assert_eq!(net.input_scale(), PIXEL_SCALE);
    assert_eq!(net.describe(), "36 -> 8 relu -> 4 softmax");
    let raw = net.clone().with_input_scale(1.0).unwrap();
    assert_eq!(raw.input_scale(), 1.0);
    assert_eq!(raw.describe(), "36 -> 8 relu -> 4 softmax (inputs scaled by 1)");
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = net.clone().with_input_scale(bad).unwrap_err().to_string();
        assert!(e.contains("positive finite"), "{bad}: {e}");
    }
}

#[test]
fn a_model_trained_on_raw_pixels_evaluates_the_same_after_save_and_load() {
    let data = synthetic(200);
    let mut net = Network::mlp(36, &[8], 4, Activation::Relu, 1)
        .unwrap()
        .with_input_scale(1.0)
        .unwrap();
    fit(&mut net, Optimizer::sgd(1e-4), &data, None, &cfg(2), &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    // evaluate() reads the data with the network's own scale ...
    let ev = net.evaluate(&data).unwrap();
    let raw = net.evaluate_view(data.images(), 1.0, data.labels()).unwrap();
    assert_eq!(ev, raw);
    let scaled = net
        .evaluate_view(data.images(), PIXEL_SCALE, data.labels())
        .unwrap();
    assert_ne!(ev, scaled);
    // ... and so does the same model loaded from its file.
    let back = model_file::from_bytes(&model_file::to_bytes(&net), Path::new("m")).unwrap();
    assert_eq!(back.input_scale(), 1.0);
    assert_eq!(back.evaluate(&data).unwrap(), ev);
}

#[test]
fn training_reads_inputs_with_the_network_scale() {
    // A network trained with scale 1/255 on pixels equals one trained with
    // scale 1 on the same pixels divided by 255 only if the scale is used:
    // here simply check that the scale changes what training does.
    let data = synthetic(100);
    let train = |scale: f32| {
        let mut net = Network::mlp(36, &[8], 4, Activation::Relu, 1)
            .unwrap()
            .with_input_scale(scale)
            .unwrap();
        fit(&mut net, Optimizer::sgd(1e-4), &data, None, &cfg(1), &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        net.layers()[0].params()[0].to_vec()
    };
    assert_ne!(train(1.0), train(PIXEL_SCALE));
    assert_eq!(train(PIXEL_SCALE), train(PIXEL_SCALE));
}

// ---------------------------------------------------------------- model file versions

/// A version 1 file, laid out by hand as simdnet wrote it before version 2:
/// 2 inputs -> 2 relu -> 2 softmax.
fn v1_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"SIMDNET\x01");
    b.extend_from_slice(&1u32.to_le_bytes()); // version
    b.extend_from_slice(&2u32.to_le_bytes()); // inputs
    b.extend_from_slice(&2u32.to_le_bytes()); // layers
    b.extend_from_slice(&2u32.to_le_bytes());
    b.push(1); // relu
    b.extend_from_slice(&2u32.to_le_bytes());
    b.push(255); // softmax
    for v in [0.5f32, -0.25, 1.0, 2.0, 0.1, 0.2, 1.5, -1.5, 0.75, -0.5, 0.0, 0.3] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let sum = model_file::fnv1a64(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

#[test]
fn version_1_files_load_with_pixel_scale() {
    let net = model_file::from_bytes(&v1_bytes(), Path::new("old.simdnet")).unwrap();
    assert_eq!(net.input_scale(), PIXEL_SCALE);
    assert_eq!(net.describe(), "2 -> 2 relu -> 2 softmax");
    let l0 = net.layers()[0].as_dense().unwrap();
    assert_eq!(l0.w.as_slice(), &[0.5, -0.25, 1.0, 2.0]);
    assert_eq!(l0.b, vec![0.1, 0.2]);
    let l1 = net.layers()[1].as_dense().unwrap();
    assert_eq!(l1.w.as_slice(), &[1.5, -1.5, 0.75, -0.5]);
    assert_eq!(l1.b, vec![0.0, 0.3]);
    // Saved again, it is a version 2 file that loads to the same network.
    let v2 = model_file::to_bytes(&net);
    assert_eq!(&v2[8..12], &2u32.to_le_bytes());
    assert_eq!(v2.len(), v1_bytes().len() + 16 + 4 * 2);
    assert_eq!(model_file::from_bytes(&v2, Path::new("new")).unwrap(), net);
}

#[test]
fn version_2_stores_the_input_scale_and_rejects_a_bad_one() {
    let net = Network::mlp(2, &[2], 2, Activation::Relu, 1)
        .unwrap()
        .with_input_scale(0.5)
        .unwrap();
    let bytes = model_file::to_bytes(&net);
    // The scale sits right after the layer table: 20 + 5 * 2 layers.
    assert_eq!(&bytes[30..34], &0.5f32.to_le_bytes());
    assert_eq!(
        model_file::from_bytes(&bytes, Path::new("m"))
            .unwrap()
            .input_scale(),
        0.5
    );
    let mut bad = bytes.clone();
    bad[30..34].copy_from_slice(&(-2.0f32).to_le_bytes());
    let n = bad.len() - 8;
    let sum = model_file::fnv1a64(&bad[..n]);
    bad[n..].copy_from_slice(&sum.to_le_bytes());
    let e = model_file::from_bytes(&bad, Path::new("m"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the input scale is -2, not a positive finite number"),
        "{e}"
    );
}

#[test]
fn every_truncation_of_a_v2_file_is_an_error_not_a_panic() {
    let net = Network::mlp_with(3, &[2, 2], &[Activation::Tanh, Activation::Relu], 2, 4).unwrap();
    let bytes = model_file::to_bytes(&net);
    for cut in 0..bytes.len() {
        assert!(
            model_file::from_bytes(&bytes[..cut], Path::new("m")).is_err(),
            "cut {cut}"
        );
    }
    for cut in 0..v1_bytes().len() {
        assert!(model_file::from_bytes(&v1_bytes()[..cut], Path::new("m")).is_err());
    }
}

// ---------------------------------------------------------------- weight decay

#[test]
fn weight_decay_adds_l2_times_w_to_the_weight_gradients_only() {
    use simdnet::nn::Trainer;
    let l2 = 0.05f32;
    let mut net = Network::mlp_with(6, &[5, 4], &[Activation::Tanh, Activation::Sigmoid], 3, 2)
        .unwrap()
        .with_weight_decay(l2)
        .unwrap();
    // Non-zero biases, so that decaying them by mistake would show.
    for layer in net.layers_mut() {
        for (i, b) in layer.params_mut(1).iter_mut().enumerate() {
            *b = 0.3 - 0.2 * i as f32;
        }
    }
    let rows = 5;
    let x = inputs(rows, 6, 7);
    let labels: Vec<u8> = (0..rows).map(|r| (r % 3) as u8).collect();
    // One plain SGD step with lr = 1 moves every parameter by minus its gradient.
    let mut after = net.clone();
    let mut trainer = Trainer::new(&after, Optimizer::sgd(1.0), rows).unwrap();
    trainer
        .step(&mut after, MatRef::from_slice(&x, rows, 6), 1.0, &labels)
        .unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let p = params(&net);
    let numeric = numeric_grads(&p, &|q| loss64(q, &x64, rows, &labels, l2 as f64, &|_, _, _| 1.0));
    for (t, num) in numeric.iter().enumerate() {
        let (l, k) = (t / 2, t % 2);
        let step: Vec<f64> = net.layers()[l].params()[k]
            .iter()
            .zip(after.layers()[l].params()[k])
            .map(|(&w0, &w1)| (w0 - w1) as f64)
            .collect();
        let e = rel_err(&step, num);
        assert!(e < 1e-4, "tensor {t} relative error {e}");
    }
}

#[test]
fn zero_weight_decay_is_bit_identical_and_nonzero_shrinks_weights() {
    let data = synthetic(150);
    let train = |l2: Option<f32>, opt: Optimizer| {
        let mut net = Network::mlp(36, &[8], 4, Activation::Relu, 1).unwrap();
        if let Some(l2) = l2 {
            net = net.with_weight_decay(l2).unwrap();
        }
        fit(&mut net, opt, &data, None, &cfg(2), &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        net
    };
    let norm = |n: &Network| -> f64 {
        n.layers()[0].params()[0]
            .iter()
            .map(|&w| (w as f64).powi(2))
            .sum()
    };
    for opt in [
        Optimizer::sgd(0.01),
        Optimizer::rmsprop(0.001),
        Optimizer::adam(0.001),
    ] {
        let plain = train(None, opt);
        assert_eq!(train(Some(0.0), opt), plain, "{opt}");
        let decayed = train(Some(0.5), opt);
        assert!(norm(&decayed) < norm(&plain), "{opt}");
        // biases are not decayed: with decay they still move away from zero
        assert!(decayed.layers()[0].params()[1].iter().any(|&b| b != 0.0));
    }
    let e = Network::mlp(36, &[8], 4, Activation::Relu, 1)
        .unwrap()
        .with_weight_decay(-1.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the weight decay must be a finite number >= 0, got -1"),
        "{e}"
    );
}

#[test]
fn weight_decay_is_saved_in_the_model_file() {
    let net = Network::mlp(4, &[3], 2, Activation::Relu, 1)
        .unwrap()
        .with_weight_decay(1e-4)
        .unwrap();
    let back = model_file::from_bytes(&model_file::to_bytes(&net), Path::new("m")).unwrap();
    assert_eq!(back.weight_decay(), 1e-4);
    assert_eq!(back, net);
}

// ---------------------------------------------------------------- dropout's gradient

/// The engine's gradients through a training forward pass with dropout
/// against finite differences of the same network with the same (fixed) mask.
fn check_dropout_gradients(act: Activation, rate: f32) {
    let net = Network::mlp_with(6, &[7, 5], &[act, act], 3, 4)
        .unwrap()
        .with_dropout(rate)
        .unwrap();
    let rows = 6;
    let x = inputs(rows, 6, 11);
    let labels: Vec<u8> = (0..rows).map(|r| (r % 3) as u8).collect();
    let xv = MatRef::from_slice(&x, rows, 6);
    let mut ws = Workspace::new(&net, rows);
    ws.forward_train(&net, xv, 1.0, 3, 64, Parallelism::Sequential);
    ws.loss(&labels, 1.0 / rows as f32);
    ws.backward(&net, xv, 1.0, Parallelism::Sequential);
    let masks: Vec<_> = (0..3).map(|l| ws.dropout_mask(l)).collect();
    assert!(masks[0].is_some() && masks[1].is_some() && masks[2].is_none());
    let dropped = (0..rows)
        .flat_map(|r| (0..7).map(move |j| (r, j)))
        .filter(|&(r, j)| !masks[0].unwrap().keeps(r, j))
        .count();
    assert!(
        dropped > 0 && dropped < rows * 7,
        "{dropped} dropped: the mask must matter"
    );
    let factor = |l: usize, r: usize, j: usize| masks[l].map_or(1.0, |m| m.factor(r, j) as f64);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let numeric = numeric_grads(&params(&net), &|q| loss64(q, &x64, rows, &labels, 0.0, &factor));
    for (t, num) in numeric.iter().enumerate() {
        let analytic: Vec<f64> = ws.grad(t / 2, t % 2).iter().map(|&v| v as f64).collect();
        let e = rel_err(&analytic, num);
        assert!(e < 1e-4, "{act} dropout {rate}: tensor {t} relative error {e}");
    }
}

#[test]
fn dropout_gradients_with_a_fixed_mask() {
    for act in [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Identity,
    ] {
        check_dropout_gradients(act, 0.3);
    }
    check_dropout_gradients(Activation::Tanh, 0.75);
}

#[test]
fn dropout_and_weight_decay_on_the_command_line() {
    use simdnet::cli::common::{dropout_rate, weight_decay};
    assert_eq!(dropout_rate("0.2").unwrap(), 0.2);
    assert_eq!(dropout_rate("0").unwrap(), 0.0);
    for bad in ["1", "-0.1", "NaN", "half", ""] {
        assert_eq!(
            dropout_rate(bad).unwrap_err().0,
            format!("invalid --dropout '{bad}': expected a fraction of units to drop, at least 0 and below 1, like 0.2")
        );
    }
    assert_eq!(weight_decay("1e-4").unwrap(), 1e-4);
    assert_eq!(weight_decay("0").unwrap(), 0.0);
    for bad in ["-1", "inf", "NaN", "x"] {
        assert_eq!(
            weight_decay(bad).unwrap_err().0,
            format!("invalid --weight-decay '{bad}': expected a finite number >= 0, like 0.0001")
        );
    }
}

#[test]
fn any_byte_of_a_v2_file_changed_gives_an_error_or_a_valid_network_never_a_panic() {
    let net = Network::mlp_with(3, &[2, 2], &[Activation::Tanh, Activation::Relu], 2, 4)
        .unwrap()
        .with_dropout(0.25)
        .unwrap()
        .with_weight_decay(0.01)
        .unwrap();
    let good = model_file::to_bytes(&net);
    let n = good.len() - 8;
    for at in 0..n {
        for v in [0u8, 1, 0x3f, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[at] = v;
            let sum = model_file::fnv1a64(&b[..n]);
            b[n..].copy_from_slice(&sum.to_le_bytes());
            if let Ok(back) = model_file::from_bytes(&b, Path::new("m")) {
                assert!(back.dropout().iter().all(|r| (0.0..1.0).contains(r)));
                assert!(back.input_scale() > 0.0 && back.weight_decay() >= 0.0);
            }
        }
    }
}
