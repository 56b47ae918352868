//! Lesson 1: the forward pass.
//!
//! A dense layer turns the activations of the previous layer `a_prev` into
//! its own activations `a` in two steps:
//!
//! ```text
//! z = a_prev·W + b        the weighted sum ("pre-activation"), one number per neuron
//! a = f(z)                the activation, applied to every number of z on its own
//! ```
//!
//! The last layer of a classifier uses softmax instead of `f`, turning its
//! weighted sums ("logits") into probabilities that add up to 1.
//!
//! Shapes (one example per row of a mini-batch of `rows` examples):
//!
//! ```text
//! a_prev: (rows, inputs)    row-major: a_prev[r * inputs + i]
//! W:      (inputs, outputs) row-major: w[i * outputs + j]   (column j = the weights into neuron j)
//! b:      (outputs)                    b[j]
//! z, a:   (rows, outputs)   row-major: z[r * outputs + j]
//! ```
//!
//! This is the layout of the engine (`nn::dense`), in `f64` instead of `f32`.

use crate::activation::Activation;

/// The weighted sum of ONE neuron `j` for ONE example:
///
/// ```text
/// z_j = Σ_i a_prev_i · W[i, j] + b_j
/// ```
///
/// Every input `i` is multiplied by the weight of the connection from input `i`
/// to neuron `j`, the products are added up, and the neuron's bias is added.
///
/// - `a_prev`: (inputs) — one row of the batch
/// - `w`: (inputs, outputs), row-major: `w[i * outputs + j]`
pub fn neuron(a_prev: &[f64], w: &[f64], outputs: usize, j: usize, b_j: f64) -> f64 {
    let inputs = a_prev.len();
    assert_eq!(w.len(), inputs * outputs, "w must be (inputs, outputs)");
    let mut z = b_j;
    for i in 0..inputs {
        z += a_prev[i] * w[i * outputs + j];
    }
    z
}

/// The weighted sums of a whole layer for a mini-batch: `z = a_prev·W + b`.
///
/// It is [`neuron`] for every example `r` and every neuron `j`:
/// `z[r, j] = Σ_i a_prev[r, i] · W[i, j] + b[j]`. (The bias is added to every row:
/// the same `b` is "broadcast" over the batch.)
///
/// - `a_prev`: (rows, inputs), `w`: (inputs, outputs), `b`: (outputs)
/// - returns `z`: (rows, outputs)
pub fn dense(a_prev: &[f64], rows: usize, w: &[f64], b: &[f64]) -> Vec<f64> {
    let outputs = b.len();
    assert!(
        rows > 0 && a_prev.len().is_multiple_of(rows),
        "a_prev must be (rows, inputs)"
    );
    let inputs = a_prev.len() / rows;
    assert_eq!(w.len(), inputs * outputs, "w must be (inputs, outputs)");
    // z: (rows, outputs), row-major: z[r * outputs + j]
    let mut z = vec![0.0; rows * outputs];
    for r in 0..rows {
        let row = &a_prev[r * inputs..(r + 1) * inputs]; // (inputs)
        for j in 0..outputs {
            z[r * outputs + j] = neuron(row, w, outputs, j, b[j]);
        }
    }
    z
}

/// One activation `a = f(z)` of one number, in `f64`.
///
/// ```text
/// identity  f(z) = z
/// ReLU      f(z) = max(0, z)
/// sigmoid   f(z) = 1 / (1 + e^(-z))       squashes into (0, 1)
/// tanh      f(z) = (e^z - e^-z) / (e^z + e^-z)   squashes into (-1, 1)
/// ```
///
/// The engine's [`Activation`] names the *choice*; the arithmetic is done here.
pub fn activation(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => {
            if z > 0.0 {
                z
            } else {
                0.0
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
    }
}

/// The slope `f'(z)` of an activation, in `f64` (used by the backward pass).
///
/// ```text
/// identity  f'(z) = 1
/// ReLU      f'(z) = 1 if z > 0, else 0      (we pick 0 at the kink z = 0, as Keras does)
/// sigmoid   f'(z) = f(z) · (1 - f(z))
/// tanh      f'(z) = 1 - f(z)²
/// ```
pub fn activation_slope(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => {
            let s = activation(Activation::Sigmoid, z);
            s * (1.0 - s)
        }
        Activation::Tanh => {
            let t = z.tanh();
            1.0 - t * t
        }
    }
}

/// `a = f(z)` for every number of a layer: `z` and the result have the same shape.
pub fn activate(act: Activation, z: &[f64]) -> Vec<f64> {
    z.iter().map(|&zi| activation(act, zi)).collect()
}

/// Softmax of every row: the logits `z` of one example become probabilities.
///
/// ```text
/// p_k = e^(z_k) / Σ_c e^(z_c)
/// ```
///
/// Every `p_k` is in (0, 1) and each row adds up to 1. Subtracting the row's
/// largest logit `m` first changes nothing mathematically
/// (`e^(z_k - m) / Σ e^(z_c - m)`: the `e^-m` cancels) but keeps `e^z` from
/// overflowing to infinity when a logit is large (e^710 does not fit in an f64).
///
/// - `z`: (rows, classes) — returns `p`: (rows, classes)
pub fn softmax(z: &[f64], rows: usize) -> Vec<f64> {
    assert!(
        rows > 0 && z.len().is_multiple_of(rows),
        "z must be (rows, classes)"
    );
    let classes = z.len() / rows;
    let mut p = vec![0.0; z.len()];
    for r in 0..rows {
        let zr = &z[r * classes..(r + 1) * classes];
        let m = zr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for k in 0..classes {
            let e = (zr[k] - m).exp();
            p[r * classes + k] = e;
            sum += e;
        }
        for k in 0..classes {
            p[r * classes + k] /= sum;
        }
    }
    p
}
