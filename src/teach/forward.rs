//! Lesson 1: the forward pass.
//!
//! A dense layer turns its input `x` (the data for the first layer, the
//! previous layer's output `a` for the others) into its own output `a` in two
//! steps:
//!
//! ```text
//! z = x·W + b        the weighted sum ("pre-activation"), one number per neuron
//! a = f(z)           the activation, applied to every number of z on its own
//! ```
//!
//! Every layer has its own activation `f`. The output layer's is the identity:
//! its `a` are the "logits", and softmax, which turns them into probabilities,
//! is part of the loss ([`super::loss::softmax_cross_entropy`]), as in the engine.
//!
//! Shapes (one example per row of a mini-batch of `rows` examples):
//!
//! ```text
//! x:    (rows, inputs)    row-major: x[r * inputs + i]
//! W:    (inputs, outputs) row-major: w[i * outputs + j]   (column j = the weights into neuron j)
//! b:    (outputs)                    b[j]
//! z, a: (rows, outputs)   row-major: z[r * outputs + j]
//! ```
//!
//! This is the layout of the engine (`nn::dense`), in `f64` instead of `f32`.
//! The engine fuses the two lines and keeps only `a`; the lesson keeps `z` too,
//! to show it. The backward pass needs only `a` (see [`df_from_output`]).

use crate::activation::Activation;

use super::network::DenseF64;

/// The weighted sum of ONE neuron `j` for ONE example:
///
/// ```text
/// z_j = Σ_i x_i · W[i, j] + b_j
/// ```
///
/// Every input `i` is multiplied by the weight of the connection from input `i`
/// to neuron `j`, the products are added up, and the neuron's bias is added.
///
/// - `x_row`: (inputs) — one row of the batch
/// - `w`: (inputs, outputs), row-major: `w[i * outputs + j]`
pub fn neuron(x_row: &[f64], w: &[f64], outputs: usize, j: usize, b_j: f64) -> f64 {
    let inputs = x_row.len();
    assert_eq!(w.len(), inputs * outputs, "w must be (inputs, outputs)");
    let mut z = b_j;
    for i in 0..inputs {
        z += x_row[i] * w[i * outputs + j];
    }
    z
}

/// The weighted sums of a whole layer for a mini-batch: `z = x·W + b`.
///
/// It is [`neuron`] for every example `r` and every neuron `j`:
/// `z[r, j] = Σ_i x[r, i] · W[i, j] + b[j]`. (The bias is added to every row:
/// the same `b` is "broadcast" over the batch.)
///
/// - `z`: (rows, outputs), written
/// - `x`: (rows, inputs), `w`: (inputs, outputs), `b`: (outputs)
pub fn weighted_sum(z: &mut [f64], x: &[f64], w: &[f64], b: &[f64], rows: usize) {
    let outputs = b.len();
    assert!(
        rows > 0 && x.len().is_multiple_of(rows),
        "x must be (rows, inputs)"
    );
    let inputs = x.len() / rows;
    assert_eq!(w.len(), inputs * outputs, "w must be (inputs, outputs)");
    assert_eq!(z.len(), rows * outputs, "z must be (rows, outputs)");
    for r in 0..rows {
        let x_row = &x[r * inputs..(r + 1) * inputs]; // (inputs)
        for j in 0..outputs {
            z[r * outputs + j] = neuron(x_row, w, outputs, j, b[j]);
        }
    }
}

/// One activation `a = f(z)` of one number, in `f64`.
///
/// ```text
/// identity  f(z) = z
/// ReLU      f(z) = max(0, z)
/// sigmoid   f(z) = 1 / (1 + e^(-z))              squashes into (0, 1)
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

/// The slope `f'(z)` of an activation, computed from its OUTPUT `a = f(z)`
/// (used by the backward pass, which keeps `a`, not `z`):
///
/// ```text
/// identity  f'(z) = 1
/// ReLU      f'(z) = 1 if a > 0, else 0      (a > 0 exactly when z > 0; we pick 0 at the
///                                            kink z = 0, as Keras does)
/// sigmoid   f'(z) = f(z) · (1 - f(z)) = a · (1 - a)
/// tanh      f'(z) = 1 - f(z)²         = 1 - a²
/// ```
///
/// No `e^z` is computed again: the forward pass already did it.
pub fn df_from_output(act: Activation, a: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => a * (1.0 - a),
        Activation::Tanh => 1.0 - a * a,
    }
}

/// `a = f(z)` for every number of a layer.
///
/// - `a`: (rows, outputs), written; `z`: (rows, outputs)
pub fn activate(a: &mut [f64], z: &[f64], act: Activation) {
    assert_eq!(a.len(), z.len(), "a and z must have the same shape");
    for k in 0..z.len() {
        a[k] = activation(act, z[k]);
    }
}

/// The forward pass of one dense layer: `z = x·W + b`, then `a = f(z)`.
///
/// - `a`, `z`: (rows, outputs), written (the engine keeps only `a`; the lesson keeps `z` to show it)
/// - `x`: (rows, inputs); `layer`: `w` (inputs, outputs), `b` (outputs), `act`
pub fn dense_forward(a: &mut [f64], z: &mut [f64], x: &[f64], layer: &DenseF64, rows: usize) {
    weighted_sum(z, x, &layer.w, &layer.b, rows); // z = x·W + b
    activate(a, z, layer.act); //                    a = f(z)
}
