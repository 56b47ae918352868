//! Tests of the teaching module: hand-computed numbers for the tiny 3-4-2
//! network, and central finite differences for every gradient.
//!
//! The hand computation used throughout (ReLU hidden layer, the lesson's weights
//! and batch, see `NetworkF64::tiny` and `tiny_batch`):
//!
//! ```text
//! x[0] = (0.5, 1.0, 0.0), label 1          x[1] = (1.0, 0.0, 0.5), label 0
//!
//! z1[0,0] = 0.5·0.1 + 1.0·(-0.4) + 0.0·0.2 + 0.1    = -0.25   -> a = 0
//! z1[0,1] = 0.5·(-0.2) + 1.0·0.5 + 0.0·0.1 + 0.0    =  0.40
//! z1[0,2] = 0.5·0.3 + 1.0·0.1 + 0.0·(-0.3) - 0.1    =  0.15
//! z1[0,3] = 0.5·0.0 + 1.0·0.2 + 0.0·0.4 + 0.0       =  0.20
//! z1[1]   = (1.0·0.1 + 0.5·0.2 + 0.1, -0.2 + 0.05, 0.3 - 0.15 - 0.1, 0.5·0.4)
//!         = (0.30, -0.15, 0.05, 0.20)                     -> a = (0.30, 0, 0.05, 0.20)
//!
//! z2[0,0] = 0·0.3 + 0.4·(-0.2) + 0.15·0.5 + 0.2·0.1 + 0.0        = 0.015
//! z2[0,1] = 0·(-0.1) + 0.4·0.4 + 0.15·(-0.3) + 0.2·0.2 + 0.1     = 0.255
//! z2[1,0] = 0.3·0.3 + 0 + 0.05·0.5 + 0.2·0.1 + 0.0               = 0.135
//! z2[1,1] = 0.3·(-0.1) + 0 + 0.05·(-0.3) + 0.2·0.2 + 0.1         = 0.095
//!
//! two classes: p_1 = e^z1 / (e^z0 + e^z1) = 1 / (1 + e^(z0 - z1))
//! p[0] = (0.440286, 0.559714)    loss_0 = -ln 0.559714 = 0.580330
//! p[1] = (0.509999, 0.490001)    loss_1 = -ln 0.509999 = 0.673347
//! L = (0.580330 + 0.673347) / 2 = 0.626839
//!
//! da2 = (p - y) / 2, and the output layer is the identity, so dz2 = da2:
//!                      dz2[0] = ( 0.220143, -0.220143)    dz2[1] = (-0.245001, 0.245001)
//! dW2[i,j] = a1[0,i]·dz2[0,j] + a1[1,i]·dz2[1,j]:
//!   dW2[0,0] = 0·0.220143 + 0.3·(-0.245001)     = -0.073500
//!   dW2[1,0] = 0.4·0.220143 + 0                  =  0.088057
//!   dW2[2,0] = 0.15·0.220143 + 0.05·(-0.245001)  =  0.020771
//!   dW2[3,0] = 0.2·0.220143 + 0.2·(-0.245001)    = -0.004971      (column 1 = minus column 0)
//! db2 = (0.220143 - 0.245001, ...) = (-0.024857, 0.024857)
//! da1[0,i] = Σ_j dz2[0,j]·W2[i,j] = 0.220143 · (W2[i,0] - W2[i,1]):
//!   da1[0] = 0.220143 · (0.4, -0.6, 0.8, -0.1) = (0.088057, -0.132086, 0.176115, -0.022014)
//! dz1 = da1 ⊙ relu'(a1): the dead unit (a1[0,0] = 0) gets 0
//!   dz1[0] = (0, -0.132086, 0.176115, -0.022014)
//!   dz1[1] = -0.245001 · (0.4, -0.6, 0.8, -0.1) ⊙ (1, 0, 1, 1) = (-0.098000, 0, -0.196001, 0.024500)
//! dW1[0,0] = 0.5·0 + 1.0·(-0.098000) = -0.098000
//! db1 = dz1[0] + dz1[1] = (-0.098000, -0.132086, -0.019886, 0.002486)
//! ```

use simdnet::activation::Activation;
use simdnet::teach::backward::{
    activation_backward, bias_gradient, dense_backward, input_gradient, weight_gradient,
};
use simdnet::teach::forward::{activate, activation, dense_forward, df_from_output, neuron, weighted_sum};
use simdnet::teach::loss::{
    accuracy, argmax_rows, cross_entropy, one_hot, output_error, output_error_long_way, softmax,
    softmax_cross_entropy, softmax_jacobian,
};
use simdnet::teach::network::{tiny_batch, train_step, DenseF64, NetworkF64, NetworkOptimizerF64};
use simdnet::teach::optimizers::{Adam, Momentum, OptimizerF64, OptimizerKind, RmsProp, Sgd};
use simdnet::teach::pitfalls::{
    batch_loss, constant_network, gradient_of_mean, gradient_of_sum, hidden_units_stay_identical, saturation,
    used_twice, used_twice_loss,
};

const ALL_ACTS: [Activation; 4] = Activation::ALL;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w, tol), "{what}[{k}]: got {g}, want {w}");
    }
}

/// `p = softmax(z)` of a (rows, classes) buffer, as a new vector.
fn softmax_of(z: &[f64], rows: usize) -> Vec<f64> {
    let mut p = vec![0.0; z.len()];
    softmax(&mut p, z, rows);
    p
}

/// `da = (p - y) / rows`, as a new vector.
fn output_error_of(p: &[f64], y: &[f64], rows: usize) -> Vec<f64> {
    let mut da = vec![0.0; p.len()];
    output_error(&mut da, p, y, rows);
    da
}

/// Central finite difference of `f` at `x`: (f(x + h) - f(x - h)) / 2h.
fn central_difference(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let h = 1e-6;
    (f(x + h) - f(x - h)) / (2.0 * h)
}

// ---------------------------------------------------------------- forward

#[test]
fn neuron_is_the_weighted_sum_plus_bias() {
    let net = NetworkF64::tiny(Activation::Relu);
    let w1 = &net.layers[0].w;
    // z1[0,1] = 0.5·(-0.2) + 1.0·0.5 + 0.0·0.1 + 0.0 = 0.4
    assert!(close(neuron(&[0.5, 1.0, 0.0], w1, 4, 1, 0.0), 0.4, 1e-12));
    // z1[0,0] = 0.5·0.1 + 1.0·(-0.4) + 0.0·0.2 + 0.1 = -0.25
    assert!(close(neuron(&[0.5, 1.0, 0.0], w1, 4, 0, 0.1), -0.25, 1e-12));
}

#[test]
fn dense_layer_matches_the_hand_computation() {
    let net = NetworkF64::tiny(Activation::Relu);
    let (x, _) = tiny_batch();
    let mut z1 = vec![f64::NAN; 8];
    weighted_sum(&mut z1, &x, &net.layers[0].w, &net.layers[0].b, 2);
    assert_all_close(&z1, &[-0.25, 0.4, 0.15, 0.2, 0.3, -0.15, 0.05, 0.2], 1e-12, "z1");
    let mut a1 = vec![f64::NAN; 8];
    activate(&mut a1, &z1, Activation::Relu);
    assert_all_close(&a1, &[0.0, 0.4, 0.15, 0.2, 0.3, 0.0, 0.05, 0.2], 1e-12, "a1");
    // dense_forward does both, and the output layer's identity leaves the logits as they are
    let (mut a2, mut z2) = (vec![f64::NAN; 4], vec![f64::NAN; 4]);
    dense_forward(&mut a2, &mut z2, &a1, &net.layers[1], 2);
    assert_eq!(net.layers[1].act, Activation::Identity);
    assert_all_close(&z2, &[0.015, 0.255, 0.135, 0.095], 1e-12, "z2");
    assert_eq!(a2, z2);
    let (mut a1b, mut z1b) = (vec![f64::NAN; 8], vec![f64::NAN; 8]);
    dense_forward(&mut a1b, &mut z1b, &x, &net.layers[0], 2);
    assert_eq!((a1b, z1b), (a1, z1));
}

#[test]
fn activations_by_hand() {
    assert_eq!(activation(Activation::Identity, -1.5), -1.5);
    assert_eq!(activation(Activation::Relu, -1.5), 0.0);
    assert_eq!(activation(Activation::Relu, 2.0), 2.0);
    assert_eq!(activation(Activation::Sigmoid, 0.0), 0.5);
    // sigmoid(ln 3) = 1 / (1 + 1/3) = 0.75
    assert!(close(activation(Activation::Sigmoid, 3f64.ln()), 0.75, 1e-12));
    assert_eq!(activation(Activation::Tanh, 0.0), 0.0);
    // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6
    assert!(close(activation(Activation::Tanh, 2f64.ln()), 0.6, 1e-12));
    // slopes from the output a: sigmoid'(0) = 0.5·(1 - 0.5), tanh'(ln 2) = 1 - 0.6², relu' = 0 at the kink
    assert!(close(df_from_output(Activation::Sigmoid, 0.5), 0.25, 1e-12));
    assert!(close(df_from_output(Activation::Tanh, 0.6), 0.64, 1e-12));
    assert_eq!(df_from_output(Activation::Relu, 0.0), 0.0);
    assert_eq!(df_from_output(Activation::Relu, 0.3), 1.0);
    assert_eq!(df_from_output(Activation::Identity, -7.0), 1.0);
}

#[test]
fn every_activation_slope_matches_a_central_difference() {
    for act in ALL_ACTS {
        for &z in &[-2.5, -0.3, 0.1, 0.4, 1.7, 4.0] {
            let numeric = central_difference(|t| activation(act, t), z);
            let analytic = df_from_output(act, activation(act, z));
            assert!(
                close(numeric, analytic, 1e-8),
                "{act} at {z}: {numeric} vs {analytic}"
            );
        }
    }
}

#[test]
fn activate_applies_the_function_to_every_number() {
    let z = [-1.0, 0.0, 2.0];
    for act in ALL_ACTS {
        let mut a = [f64::NAN; 3];
        activate(&mut a, &z, act);
        for k in 0..3 {
            assert_eq!(a[k], activation(act, z[k]));
        }
    }
}

#[test]
fn softmax_by_hand_and_stable_for_large_logits() {
    // two classes: p_1 = 1 / (1 + e^(z0 - z1)) = 1 / (1 + e^-0.24)
    let p = softmax_of(&[0.015, 0.255], 1);
    assert!(close(p[1], 1.0 / (1.0 + (-0.24f64).exp()), 1e-12));
    assert!(close(p[1], 0.559714, 1e-6));
    // equal logits share equally; each row sums to 1
    let p = softmax_of(&[1.0, 1.0, 1.0, 1.0, 0.0, 3f64.ln()], 2);
    assert_all_close(&p[..3], &[1.0 / 3.0; 3], 1e-12, "uniform row");
    // row 2: e^(1, 0, ln 3) = (e, 1, 3)
    let e = std::f64::consts::E;
    assert_all_close(
        &p[3..],
        &[e / (e + 4.0), 1.0 / (e + 4.0), 3.0 / (e + 4.0)],
        1e-12,
        "row 2",
    );
    // e^1000 overflows, but softmax subtracts the max first
    let p = softmax_of(&[1000.0, 1000.0 + 2f64.ln()], 1);
    assert_all_close(&p, &[1.0 / 3.0, 2.0 / 3.0], 1e-12, "large logits");
}

// ---------------------------------------------------------------- loss

#[test]
fn one_hot_rows() {
    assert_eq!(one_hot(&[1, 0], 3), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn cross_entropy_of_the_tiny_batch_by_hand() {
    // -ln p of the true class, averaged: (-ln 0.559714 - ln 0.509999) / 2 = 0.626839
    let p = softmax_of(&[0.015, 0.255, 0.135, 0.095], 2);
    let y = one_hot(&[1, 0], 2);
    let want = (-(p[1].ln()) - p[2].ln()) / 2.0;
    assert!(close(cross_entropy(&p, &y, 2), want, 1e-15));
    assert!(close(cross_entropy(&p, &y, 2), 0.626839, 1e-6));
    // a sure, right answer costs nothing; a 50/50 guess costs ln 2
    assert_eq!(cross_entropy(&[0.0, 1.0], &[0.0, 1.0], 1), 0.0);
    assert!(close(
        cross_entropy(&[0.5, 0.5], &[1.0, 0.0], 1),
        2f64.ln(),
        1e-15
    ));
}

#[test]
fn softmax_jacobian_by_hand() {
    // p = (0.25, 0.75): J = [[p0(1-p0), -p0 p1], [-p1 p0, p1(1-p1)]]
    let mut j = vec![f64::NAN; 4];
    softmax_jacobian(&mut j, &[0.25, 0.75]);
    assert_all_close(&j, &[0.1875, -0.1875, -0.1875, 0.1875], 1e-15, "J");
    // J matches a central difference of softmax
    let z = [0.3, -1.2, 0.8];
    let mut j = vec![f64::NAN; 9];
    softmax_jacobian(&mut j, &softmax_of(&z, 1));
    for k in 0..3 {
        for c in 0..3 {
            let numeric = central_difference(
                |t| {
                    let mut zz = z;
                    zz[c] = t;
                    softmax_of(&zz, 1)[k]
                },
                z[c],
            );
            assert!(close(j[k * 3 + c], numeric, 1e-9), "J[{k},{c}]");
        }
    }
}

#[test]
fn output_error_long_way_equals_short_way_p_minus_y() {
    // 3 examples, 4 classes
    let z = [0.1, -0.7, 1.3, 0.2, 2.0, 2.0, -1.0, 0.5, -3.0, 0.0, 0.4, 1.1];
    let labels = [2, 0, 3];
    let y = one_hot(&labels, 4);
    let mut long = vec![f64::NAN; 12];
    output_error_long_way(&mut long, &z, &y, 3);
    let short = output_error_of(&softmax_of(&z, 3), &y, 3);
    assert_all_close(&long, &short, 1e-14, "long vs short");
    // and on the tiny batch: da2 = (p - y) / 2 = (0.220143, -0.220143, -0.245001, 0.245001)
    let p = softmax_of(&[0.015, 0.255, 0.135, 0.095], 2);
    let da = output_error_of(&p, &one_hot(&[1, 0], 2), 2);
    assert_all_close(&da, &[0.220143, -0.220143, -0.245001, 0.245001], 1e-6, "da2");
}

#[test]
fn output_error_matches_a_central_difference_of_the_loss() {
    let z = [0.1, -0.7, 1.3, 2.0, 2.0, -1.0];
    let y = one_hot(&[1, 2], 3);
    let dz = output_error_of(&softmax_of(&z, 2), &y, 2);
    for k in 0..z.len() {
        let numeric = central_difference(
            |t| {
                let mut zz = z;
                zz[k] = t;
                cross_entropy(&softmax_of(&zz, 2), &y, 2)
            },
            z[k],
        );
        assert!(close(dz[k], numeric, 1e-9), "dz[{k}]: {} vs {numeric}", dz[k]);
    }
}

#[test]
fn predictions_and_accuracy() {
    let p = [0.2, 0.7, 0.1, 0.6, 0.3, 0.1];
    assert_eq!(argmax_rows(&p, 2), vec![1, 0]);
    // ties go to the first, as crate::matrix::argmax does
    assert_eq!(argmax_rows(&[0.5, 0.5, 0.0, 0.0, 0.3, 0.3], 2), vec![0, 1]);
    assert_eq!(accuracy(&p, &[1, 0]), 1.0);
    assert_eq!(accuracy(&p, &[1, 2]), 0.5);
    // the tiny network gets example 0 right (p1 = 0.56) and example 1 right (p0 = 0.51)
    let (x, labels) = tiny_batch();
    let fwd = NetworkF64::tiny(Activation::Relu).forward(&x, 2);
    assert_eq!(accuracy(&softmax_of(&fwd.a[1], 2), &labels), 1.0);
}

// ---------------------------------------------------------------- backward

#[test]
fn activation_backward_multiplies_by_the_slope_from_the_output() {
    // relu: the slope is 1 where a > 0, else 0
    let mut dz = [f64::NAN; 2];
    activation_backward(&mut dz, &[0.088057, -0.132086], &[0.0, 0.4], Activation::Relu);
    assert_eq!(dz, [0.0, -0.132086]);
    // sigmoid with a = 0.5 (z = 0): slope 0.5·0.5 = 0.25;  tanh with a = 0.6: slope 1 - 0.36
    activation_backward(&mut dz, &[2.0, 2.0], &[0.5, 0.5], Activation::Sigmoid);
    assert!(close(dz[0], 0.5, 1e-15));
    activation_backward(&mut dz, &[2.0, -1.0], &[0.6, -0.6], Activation::Tanh);
    assert_all_close(&dz, &[1.28, -0.64], 1e-15, "tanh");
    // identity: dz = da (the output layer)
    activation_backward(
        &mut dz,
        &[0.220143, -0.245001],
        &[0.015, 0.135],
        Activation::Identity,
    );
    assert_eq!(dz, [0.220143, -0.245001]);
}

#[test]
fn weight_and_bias_gradients_of_the_output_layer_by_hand() {
    let a1 = [0.0, 0.4, 0.15, 0.2, 0.3, 0.0, 0.05, 0.2];
    let p = softmax_of(&[0.015, 0.255, 0.135, 0.095], 2);
    let dz2 = output_error_of(&p, &one_hot(&[1, 0], 2), 2);
    let mut dw2 = vec![0.0; 8];
    weight_gradient(&mut dw2, &a1, &dz2, 2);
    // dW2[i,0] = a1[0,i]·dz2[0,0] + a1[1,i]·dz2[1,0]; column 1 is minus column 0
    let col0 = [-0.073500, 0.088057, 0.020771, -0.004971];
    let want: Vec<f64> = col0.iter().flat_map(|&c| [c, -c]).collect();
    assert_all_close(&dw2, &want, 1e-6, "dW2");
    let mut db2 = vec![0.0; 2];
    bias_gradient(&mut db2, &dz2, 2);
    assert_all_close(&db2, &[-0.024857, 0.024857], 1e-6, "db2");
}

#[test]
fn input_gradient_by_hand() {
    let net = NetworkF64::tiny(Activation::Relu);
    // da1[0,i] = dz2[0,0]·W2[i,0] + dz2[0,1]·W2[i,1] = 0.220143·(W2[i,0] - W2[i,1])
    let d = 0.220143;
    let mut da1 = vec![0.0; 4];
    input_gradient(&mut da1, &[d, -d], &net.layers[1].w, 1);
    assert_all_close(&da1, &[d * 0.4, d * -0.6, d * 0.8, d * -0.1], 1e-12, "da1");
}

#[test]
fn dense_backward_accumulates_into_its_buffers() {
    let x = [1.0, 2.0]; // (1, 2)
    let layer = DenseF64 {
        inputs: 2,
        outputs: 1,
        w: vec![0.5, -1.0], // (2, 1)
        b: vec![0.0],
        act: Activation::Identity,
    };
    let (da, a) = ([3.0], [-1.5]); // (1, 1); identity: dz = da
    let (mut dx, mut dw, mut db, mut dz) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 1], vec![f64::NAN; 1]);
    dense_backward(Some(&mut dx), &mut dw, &mut db, &mut dz, &da, &a, &x, &layer, 1);
    assert_eq!(
        (dx.clone(), dw.clone(), db.clone(), dz.clone()),
        (vec![1.5, -3.0], vec![3.0, 6.0], vec![3.0], vec![3.0])
    );
    // a second call ADDS (that is how a weight used by two examples gets both shares)
    dense_backward(Some(&mut dx), &mut dw, &mut db, &mut dz, &da, &a, &x, &layer, 1);
    assert_eq!((dx, dw, db), (vec![3.0, -6.0], vec![6.0, 12.0], vec![6.0]));
    // the first layer: no dx
    let (mut dw, mut db) = (vec![0.0; 2], vec![0.0; 1]);
    dense_backward(None, &mut dw, &mut db, &mut dz, &da, &a, &x, &layer, 1);
    assert_eq!((dw, db), (vec![3.0, 6.0], vec![3.0]));
}

/// One dense layer, for every activation: `dense_backward` agrees with a central
/// difference of `L = Σ c ⊙ a` (so `da = c`) for every input, weight and bias.
#[test]
fn dense_backward_gradient_check_for_every_activation() {
    let (rows, inputs, outputs) = (2, 3, 4);
    // values chosen so that no z is within 1e-3 of ReLU's kink
    let x = [0.9, -0.4, 0.3, -0.2, 0.7, 1.1]; // (rows, inputs)
    let w = vec![0.5, -0.3, 0.8, 0.1, -0.6, 0.4, 0.2, -0.9, 0.3, 0.7, -0.5, 0.6]; // (inputs, outputs)
    let b = vec![0.1, -0.2, 0.05, 0.3]; // (outputs)
    let c = [0.7, -1.3, 0.4, 2.0, -0.5, 0.9, 1.1, -0.8]; // (rows, outputs): L = Σ c ⊙ a
    for act in ALL_ACTS {
        let layer = DenseF64 {
            inputs,
            outputs,
            w: w.clone(),
            b: b.clone(),
            act,
        };
        let loss = |x: &[f64], layer: &DenseF64| -> f64 {
            let (mut a, mut z) = (vec![0.0; rows * outputs], vec![0.0; rows * outputs]);
            dense_forward(&mut a, &mut z, x, layer, rows);
            a.iter().zip(&c).map(|(a, c)| a * c).sum()
        };
        let (mut a, mut z) = (vec![0.0; rows * outputs], vec![0.0; rows * outputs]);
        dense_forward(&mut a, &mut z, &x, &layer, rows);
        assert!(z.iter().all(|z| z.abs() > 1e-3), "{act}: a z at the kink");
        let mut dx = vec![0.0; rows * inputs];
        let mut dw = vec![0.0; inputs * outputs];
        let mut db = vec![0.0; outputs];
        let mut dz = vec![0.0; rows * outputs];
        dense_backward(Some(&mut dx), &mut dw, &mut db, &mut dz, &c, &a, &x, &layer, rows);
        for k in 0..x.len() {
            let numeric = central_difference(
                |t| {
                    let mut xx = x;
                    xx[k] = t;
                    loss(&xx, &layer)
                },
                x[k],
            );
            assert!(
                close(dx[k], numeric, 1e-8),
                "{act}: dx[{k}] {} vs {numeric}",
                dx[k]
            );
        }
        for k in 0..w.len() {
            let numeric = central_difference(
                |t| {
                    let mut l2 = layer.clone();
                    l2.w[k] = t;
                    loss(&x, &l2)
                },
                w[k],
            );
            assert!(
                close(dw[k], numeric, 1e-8),
                "{act}: dW[{k}] {} vs {numeric}",
                dw[k]
            );
        }
        for k in 0..b.len() {
            let numeric = central_difference(
                |t| {
                    let mut l2 = layer.clone();
                    l2.b[k] = t;
                    loss(&x, &l2)
                },
                b[k],
            );
            assert!(
                close(db[k], numeric, 1e-8),
                "{act}: db[{k}] {} vs {numeric}",
                db[k]
            );
        }
    }
}

#[test]
fn softmax_cross_entropy_keeps_every_number_and_starts_the_backward_pass() {
    // the tiny batch's logits, by hand (see the top of this file)
    let logits = [0.015, 0.255, 0.135, 0.095];
    let mut da = vec![f64::NAN; 4];
    let l = softmax_cross_entropy(&mut da, &logits, &[1, 0], 2);
    assert_eq!(l.m, vec![0.255, 0.135]);
    // e^(z - m): row 0 (e^-0.24, 1), row 1 (1, e^-0.04)
    assert_all_close(&l.e, &[(-0.24f64).exp(), 1.0, 1.0, (-0.04f64).exp()], 1e-15, "e");
    assert_all_close(
        &l.sum,
        &[1.0 + (-0.24f64).exp(), 1.0 + (-0.04f64).exp()],
        1e-15,
        "sum",
    );
    assert_all_close(&l.p, &[0.440286, 0.559714, 0.509999, 0.490001], 1e-6, "p");
    assert_all_close(&l.losses, &[0.580330, 0.673347], 1e-6, "losses");
    assert!(close(l.loss, 0.626839, 1e-6));
    assert_all_close(&da, &[0.220143, -0.220143, -0.245001, 0.245001], 1e-6, "da");
}

#[test]
fn tiny_network_gradients_by_hand() {
    let net = NetworkF64::tiny(Activation::Relu);
    let (x, labels) = tiny_batch();
    let fwd = net.forward(&x, 2);
    let g = net.backward(&x, &labels, &fwd);
    assert_all_close(
        &g.dz[0][..4],
        &[0.0, -0.132086, 0.176115, -0.022014],
        1e-6,
        "dz1[0]",
    );
    assert_all_close(
        &g.dz[0][4..],
        &[-0.098000, 0.0, -0.196001, 0.024500],
        1e-6,
        "dz1[1]",
    );
    assert!(close(g.dw[0][0], -0.098000, 1e-6), "dW1[0,0]");
    assert_all_close(
        &g.db[0],
        &[-0.098000, -0.132086, -0.019886, 0.002486],
        1e-6,
        "db1",
    );
    assert!(close(g.dw[1][0], -0.073500, 1e-6), "dW2[0,0]");
}

/// Every weight and bias of the tiny network, for every hidden activation:
/// the backward pass agrees with a central difference of the mean loss.
#[test]
fn whole_tiny_network_gradient_check_every_weight_and_bias() {
    let (x, labels) = tiny_batch();
    for act in ALL_ACTS {
        let net = NetworkF64::tiny(act);
        let g = net.backward(&x, &labels, &net.forward(&x, 2));
        for l in 0..net.layers.len() {
            for (is_bias, grads) in [(false, &g.dw[l]), (true, &g.db[l])] {
                for k in 0..grads.len() {
                    let numeric = central_difference(
                        |t| {
                            let mut n2 = net.clone();
                            let buf = if is_bias {
                                &mut n2.layers[l].b
                            } else {
                                &mut n2.layers[l].w
                            };
                            buf[k] = t;
                            n2.loss(&x, &labels)
                        },
                        if is_bias {
                            net.layers[l].b[k]
                        } else {
                            net.layers[l].w[k]
                        },
                    );
                    let what = if is_bias { "b" } else { "W" };
                    assert!(
                        close(grads[k], numeric, 1e-8),
                        "{act}: d{what}{}[{k}] = {} but the central difference is {numeric}",
                        l + 1,
                        grads[k]
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------- optimizers

#[test]
fn sgd_step_by_hand() {
    let mut w = vec![0.3, -0.1];
    let up = Sgd::new(0.01).step(&mut w, &[-0.0735, 0.0735]);
    // w = 0.3 - 0.01·(-0.0735) = 0.300735
    assert_all_close(&up, &[0.000735, -0.000735], 1e-15, "update");
    assert_all_close(&w, &[0.300735, -0.100735], 1e-15, "w");
}

#[test]
fn momentum_two_steps_by_hand() {
    let mut opt = Momentum::new(0.1, 0.9, 1);
    let mut w = vec![1.0];
    // step 1: v = 0.9·0 - 0.1·2 = -0.2, w = 0.8
    opt.step(&mut w, &[2.0]);
    assert!(close(w[0], 0.8, 1e-15) && close(opt.velocity[0], -0.2, 1e-15));
    // step 2: v = 0.9·(-0.2) - 0.1·1 = -0.28, w = 0.52
    let up = opt.step(&mut w, &[1.0]);
    assert!(close(up[0], -0.28, 1e-15) && close(w[0], 0.52, 1e-15));
}

#[test]
fn rmsprop_two_steps_by_hand() {
    let mut opt = RmsProp::new(0.001, 1);
    assert_eq!((opt.rho, opt.eps), (0.9, 1e-7));
    let mut w = vec![0.5];
    // step 1: v = 0.1·2² = 0.4; w -= 0.001·2/sqrt(0.4 + 1e-7)
    opt.step(&mut w, &[2.0]);
    assert!(close(opt.mean_square[0], 0.4, 1e-15));
    assert!(close(w[0], 0.5 - 0.002 / (0.4f64 + 1e-7).sqrt(), 1e-15));
    // step 2: v = 0.9·0.4 + 0.1·1² = 0.46
    let before = w[0];
    opt.step(&mut w, &[1.0]);
    assert!(close(opt.mean_square[0], 0.46, 1e-15));
    assert!(close(w[0], before - 0.001 / (0.46f64 + 1e-7).sqrt(), 1e-15));
}

#[test]
fn adam_two_steps_by_hand() {
    let mut opt = Adam::new(0.001, 1);
    assert_eq!((opt.beta1, opt.beta2, opt.eps), (0.9, 0.999, 1e-7));
    let mut w = vec![0.5];
    // step 1: m = 0.1·2 = 0.2, v = 0.001·4 = 0.004; m̂ = 0.2/0.1 = 2, v̂ = 0.004/0.001 = 4
    //         w -= 0.001·2/(2 + 1e-7)  (about lr, whatever the size of g)
    opt.step(&mut w, &[2.0]);
    assert!(close(opt.m[0], 0.2, 1e-15) && close(opt.v[0], 0.004, 1e-15) && opt.t == 1);
    assert!(close(w[0], 0.5 - 0.001 * 2.0 / (2.0 + 1e-7), 1e-15));
    // step 2 with g = -1: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996
    //         m̂ = 0.08/0.19, v̂ = 0.004996/0.001999
    let before = w[0];
    opt.step(&mut w, &[-1.0]);
    assert!(close(opt.m[0], 0.08, 1e-15) && close(opt.v[0], 0.004996, 1e-15));
    let (m_hat, v_hat) = (0.08 / 0.19, 0.004996 / (1.0 - 0.999f64 * 0.999));
    assert!(close(w[0], before - 0.001 * m_hat / (v_hat.sqrt() + 1e-7), 1e-15));
}

#[test]
fn optimizer_kinds_parse_and_have_keras_default_learning_rates() {
    for (name, lr) in [
        ("sgd", 0.01),
        ("momentum", 0.01),
        ("rmsprop", 0.001),
        ("adam", 0.001),
    ] {
        let kind: OptimizerKind = name.parse().unwrap();
        assert_eq!((kind.name(), kind.default_lr()), (name, lr));
        assert_eq!(simdnet::teach::optimizers::build(kind, lr, 3).kind(), kind);
    }
    assert!("adagrad"
        .parse::<OptimizerKind>()
        .unwrap_err()
        .contains("sgd, momentum"));
}

// ---------------------------------------------------------------- network

#[test]
fn tiny_network_shape_and_forward_pass() {
    let net = NetworkF64::tiny(Activation::Relu);
    assert_eq!(net.sizes(), vec![3, 4, 2]);
    assert_eq!(net.parameter_count(), 3 * 4 + 4 + 4 * 2 + 2);
    let (x, labels) = tiny_batch();
    let fwd = net.forward(&x, 2);
    // the output layer's a are the logits; softmax is in the loss
    assert_all_close(&fwd.a[1], &[0.015, 0.255, 0.135, 0.095], 1e-12, "logits");
    let p = softmax_of(&fwd.a[1], 2);
    assert_all_close(&p, &[0.440286, 0.559714, 0.509999, 0.490001], 1e-6, "p");
    assert!(close(net.loss(&x, &labels), 0.626839, 1e-6));
}

#[test]
fn train_step_records_every_intermediate_and_lowers_the_loss() {
    let (x, labels) = tiny_batch();
    for kind in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::RmsProp,
        OptimizerKind::Adam,
    ] {
        for act in ALL_ACTS {
            let mut net = NetworkF64::tiny(act);
            let before = net.clone();
            let mut opt = NetworkOptimizerF64::new(kind, kind.default_lr(), &net);
            let t = train_step(&mut net, &mut opt, &x, &labels);
            assert!(
                t.loss_after < t.loss,
                "{kind}/{act}: {} -> {}",
                t.loss,
                t.loss_after
            );
            assert_eq!(t.loss, before.loss(&x, &labels));
            assert_eq!(t.loss_after, net.loss(&x, &labels));
            assert_eq!(t.loss_change, t.loss_after - t.loss);
            // the output layer is the identity: its dz is the loss's da, its a the logits
            assert_eq!(t.output_error, t.layers[1].da);
            assert_eq!(t.output_error, t.layers[1].dz);
            assert_eq!(t.layers[1].a, t.layers[1].z);
            assert_eq!(t.probabilities, softmax_of(&t.layers[1].z, 2));
            for (l, lt) in t.layers.iter().enumerate() {
                assert_eq!(lt.w, before.layers[l].w);
                assert_eq!(lt.w_after, net.layers[l].w);
                assert_eq!(lt.w_opt_after, opt.w[l]);
                // the slopes the trace shows are f'(z), whatever f, computed independently here
                for (k, &z) in lt.z.iter().enumerate() {
                    let numeric = central_difference(|t| activation(lt.act, t), z);
                    assert!(close(lt.slope[k], numeric, 1e-7), "{act}: slope of layer {l}");
                }
            }
        }
    }
}

/// The first step of every optimizer on the tiny ReLU network, against the
/// optimizer's formula applied by hand to the gradient worked out by hand at
/// the top of this file (not to the gradient or the update the code recorded).
#[test]
fn train_step_first_updates_by_hand_for_every_optimizer() {
    let (x, labels) = tiny_batch();
    // p[0,0] = 1/(1 + e^(z2[0,1] - z2[0,0])), p[1,0] = 1/(1 + e^(z2[1,1] - z2[1,0]))
    let p00 = 1.0 / (1.0 + (0.255f64 - 0.015).exp());
    let p10 = 1.0 / (1.0 + (0.095f64 - 0.135).exp());
    let dz2_10 = (p10 - 1.0) / 2.0; // dz2[1,0]; dz2[1,1] = -dz2[1,0]
                                    // (weight, its start value, its gradient, (layer, is bias, index))
    let cases = [
        // dW2[0,0] = a1[0,0]·dz2[0,0] + a1[1,0]·dz2[1,0] = 0 + 0.3·dz2[1,0]
        ("W2[0,0]", 0.3, 0.3 * dz2_10, (1, false, 0)),
        // dW1[0,0] = x[1,0]·dz1[1,0], dz1[1,0] = dz2[1,0]·W2[0,0] + dz2[1,1]·W2[0,1] = 0.4·dz2[1,0]
        ("W1[0,0]", 0.1, 0.4 * dz2_10, (0, false, 0)),
        // db2[0] = dz2[0,0] + dz2[1,0] = p[0,0]/2 + (p[1,0] - 1)/2
        ("b2[0]", 0.0, p00 / 2.0 + dz2_10, (1, true, 0)),
    ];
    assert!(close(cases[0].2, -0.073500, 1e-6) && close(cases[1].2, -0.098000, 1e-6));
    for kind in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::RmsProp,
        OptimizerKind::Adam,
    ] {
        let lr = kind.default_lr();
        let mut net = NetworkF64::tiny(Activation::Relu);
        let mut opt = NetworkOptimizerF64::new(kind, lr, &net);
        let t = train_step(&mut net, &mut opt, &x, &labels);
        for (name, w, g, (l, bias, k)) in cases {
            let lt = &t.layers[l];
            let (after, before_opt, after_opt) = if bias {
                (lt.b_after[k], &lt.b_opt_before, &lt.b_opt_after)
            } else {
                (lt.w_after[k], &lt.w_opt_before, &lt.w_opt_after)
            };
            let want = match kind {
                // w - lr·g
                OptimizerKind::Sgd => w - 0.01 * g,
                // v = 0.9·0 - lr·g,  w + v
                OptimizerKind::Momentum => w + (0.9 * 0.0 - 0.01 * g),
                // v = 0.9·0 + 0.1·g²,  w - lr·g / sqrt(v + 1e-7)
                OptimizerKind::RmsProp => w - 0.001 * g / (0.1 * g * g + 1e-7).sqrt(),
                // m̂ = (0.1·g) / (1 - 0.9) = g,  v̂ = (0.001·g²) / (1 - 0.999) = g²
                OptimizerKind::Adam => w - 0.001 * g / (g.abs() + 1e-7),
                other => panic!("no hand-computed update for {other}: add one here"),
            };
            assert!(
                close(after, want, 1e-12),
                "{kind} {name}: {after}, by hand {want}"
            );
            match (before_opt, after_opt) {
                (OptimizerF64::Sgd(_), OptimizerF64::Sgd(s)) => assert_eq!(s.lr, 0.01),
                (OptimizerF64::Momentum(b), OptimizerF64::Momentum(a)) => {
                    assert_eq!((b.velocity[k], b.momentum), (0.0, 0.9));
                    assert!(close(a.velocity[k], -0.01 * g, 1e-15), "{name}: velocity");
                }
                (OptimizerF64::RmsProp(b), OptimizerF64::RmsProp(a)) => {
                    assert_eq!((b.mean_square[k], b.rho, b.eps), (0.0, 0.9, 1e-7));
                    assert!(close(a.mean_square[k], 0.1 * g * g, 1e-15), "{name}: mean square");
                }
                (OptimizerF64::Adam(b), OptimizerF64::Adam(a)) => {
                    assert_eq!((b.m[k], b.v[k], b.t), (0.0, 0.0, 0));
                    assert_eq!((a.beta1, a.beta2, a.eps, a.t), (0.9, 0.999, 1e-7, 1));
                    assert!(close(a.m[k], 0.1 * g, 1e-15) && close(a.v[k], 0.001 * g * g, 1e-15));
                    assert!(close(a.m_hat[k], g, 1e-14) && close(a.v_hat[k], g * g, 1e-14));
                }
                _ => panic!("{kind}: the trace holds another optimizer"),
            }
        }
        // before the step: the hand-computed loss and predictions
        assert!(close(t.loss, 0.626839, 1e-6));
        assert_eq!((t.predicted.clone(), t.correct, t.accuracy), (vec![1, 0], 2, 1.0));
    }
}

#[test]
fn glorot_uniform_is_seeded_and_within_its_limit() {
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    let a = NetworkF64::glorot_uniform(
        &[784, 16, 16, 10],
        Activation::Relu,
        &mut StdRng::seed_from_u64(1),
    );
    let b = NetworkF64::glorot_uniform(
        &[784, 16, 16, 10],
        Activation::Relu,
        &mut StdRng::seed_from_u64(1),
    );
    let c = NetworkF64::glorot_uniform(
        &[784, 16, 16, 10],
        Activation::Relu,
        &mut StdRng::seed_from_u64(2),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    for layer in &a.layers {
        let limit = (6.0 / (layer.inputs + layer.outputs) as f64).sqrt();
        assert!(layer.w.iter().all(|w| w.abs() < limit));
        assert!(
            layer.w.iter().any(|w| w.abs() > limit * 0.9),
            "uses the whole range"
        );
        assert!(layer.b.iter().all(|&b| b == 0.0));
    }
}

// ---------------------------------------------------------------- pitfalls

#[test]
fn a_value_used_twice_must_accumulate_its_gradient() {
    let (x, w1, w2) = (1.5, 0.4, -0.7);
    let numeric = central_difference(|t| used_twice_loss(t, w1, w2), x);
    // dx = w1·x·w1 + w2·x·w2 = 1.5·(0.16 + 0.49) = 0.975
    assert!(close(used_twice(x, w1, w2, true), 0.975, 1e-12));
    assert!(close(used_twice(x, w1, w2, true), numeric, 1e-8));
    // overwriting keeps only the last path: 1.5·0.49 = 0.735, wrong
    assert!(close(used_twice(x, w1, w2, false), 0.735, 1e-12));
    assert!(!close(used_twice(x, w1, w2, false), numeric, 1e-3));
}

#[test]
fn the_gradient_of_the_mean_does_not_grow_with_the_batch() {
    let (w, xs, ys) = (0.5, [1.0, 2.0], [1.0, 0.0]);
    // per example: (0.5 - 1)·1 = -0.5 and (1 - 0)·2 = 2; sum 1.5, mean 0.75
    assert!(close(gradient_of_sum(w, &xs, &ys), 1.5, 1e-15));
    assert!(close(gradient_of_mean(w, &xs, &ys), 0.75, 1e-15));
    // the same examples twice: the sum doubles, the mean does not
    let (xs2, ys2) = ([1.0, 2.0, 1.0, 2.0], [1.0, 0.0, 1.0, 0.0]);
    assert!(close(gradient_of_sum(w, &xs2, &ys2), 3.0, 1e-15));
    assert!(close(gradient_of_mean(w, &xs2, &ys2), 0.75, 1e-15));
    // and each is the derivative of its own loss
    let numeric = central_difference(|t| batch_loss(t, &xs2, &ys2, true), w);
    assert!(close(numeric, 0.75, 1e-8));
    let numeric = central_difference(|t| batch_loss(t, &xs2, &ys2, false), w);
    assert!(close(numeric, 3.0, 1e-8));
}

#[test]
fn raw_pixels_saturate_the_sigmoid_scaled_ones_do_not() {
    let pixels = vec![255u8; 100]; // a stroke of 100 white pixels
    let raw = saturation(Activation::Sigmoid, &pixels, 0.02, false);
    let scaled = saturation(Activation::Sigmoid, &pixels, 0.02, true);
    // raw: z = 100·255·0.02 = 510: sigmoid is 1.0 and its slope vanishes
    assert!(close(raw.z, 510.0, 1e-9));
    assert_eq!(raw.a, 1.0);
    assert!(raw.slope < 1e-200);
    // scaled: z = 100·1·0.02 = 2: slope sigmoid(2)·(1 - sigmoid(2)) = 0.105
    assert!(close(scaled.z, 2.0, 1e-12));
    assert!(close(scaled.slope, 0.104994, 1e-6));
    let tanh_raw = saturation(Activation::Tanh, &pixels, 0.02, false);
    assert_eq!(tanh_raw.slope, 0.0);
}

#[test]
fn equal_starting_weights_keep_hidden_units_identical() {
    let (x, labels) = tiny_batch();
    for (act, value) in [
        (Activation::Sigmoid, 0.5),
        (Activation::Relu, 0.5),
        (Activation::Relu, 0.0),
    ] {
        let mut net = constant_network(&[3, 4, 2], act, value);
        let start_w1 = net.layers[0].w.clone();
        let mut opt = NetworkOptimizerF64::new(OptimizerKind::Sgd, 0.5, &net);
        for _ in 0..5 {
            train_step(&mut net, &mut opt, &x, &labels);
            assert!(hidden_units_stay_identical(&net), "{act} from {value}");
        }
        if value == 0.0 {
            // all zero with ReLU: z1 = 0, relu'(0) = 0, so W1 never moves at all
            assert_eq!(net.layers[0].w, start_w1);
        }
    }
    // different starting weights: the hidden units differ, and stay different
    let mut net = NetworkF64::tiny(Activation::Relu);
    assert!(!hidden_units_stay_identical(&net));
    let mut opt = NetworkOptimizerF64::new(OptimizerKind::Sgd, 0.5, &net);
    train_step(&mut net, &mut opt, &x, &labels);
    assert!(!hidden_units_stay_identical(&net));
}

#[test]
fn zeros_network_has_the_right_shapes() {
    let net = NetworkF64::zeros(&[3, 5, 2], Activation::Tanh);
    assert_eq!(net.sizes(), vec![3, 5, 2]);
    assert_eq!((net.layers[0].w.len(), net.layers[0].b.len()), (15, 5));
    assert_eq!((net.layers[1].w.len(), net.layers[1].b.len()), (10, 2));
    assert!(net
        .layers
        .iter()
        .all(|l| l.w.iter().chain(&l.b).all(|&v| v == 0.0)));
    // all weights zero: every class equally likely, loss ln 2
    let (x, labels) = tiny_batch();
    assert!(close(net.loss(&x, &labels), 2f64.ln(), 1e-15));
}

#[test]
fn the_optimizer_enum_steps_exactly_like_the_struct_it_holds() {
    let g = [0.3, -0.2, 0.0];
    for kind in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::RmsProp,
        OptimizerKind::Adam,
    ] {
        let mut via_enum = simdnet::teach::optimizers::build(kind, 0.01, 3);
        let (mut w1, mut w2) = (vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0]);
        for _ in 0..3 {
            let before = w1.clone();
            let up = via_enum.step(&mut w1, &g);
            for k in 0..3 {
                assert_eq!(before[k] + up[k], w1[k], "the returned update is what was added");
            }
        }
        // the same three steps with the struct itself
        match kind {
            OptimizerKind::Sgd => {
                let mut o = Sgd::new(0.01);
                for _ in 0..3 {
                    o.step(&mut w2, &g);
                }
            }
            OptimizerKind::Momentum => {
                let mut o = Momentum::new(0.01, 0.9, 3);
                for _ in 0..3 {
                    o.step(&mut w2, &g);
                }
            }
            OptimizerKind::RmsProp => {
                let mut o = RmsProp::new(0.01, 3);
                for _ in 0..3 {
                    o.step(&mut w2, &g);
                }
            }
            OptimizerKind::Adam => {
                let mut o = Adam::new(0.01, 3);
                for _ in 0..3 {
                    o.step(&mut w2, &g);
                }
            }
            other => panic!("no teaching optimiser for {other}: add one here"),
        }
        assert_eq!(w1, w2, "{kind}");
        // a zero gradient never moves a weight, whatever the optimizer (at the first steps)
        assert_eq!(w1[2], 3.0, "{kind}");
    }
}
