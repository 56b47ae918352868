//! Lesson 3: the backward pass — the chain rule, one forward line at a time.
//!
//! The backward pass walks the layers from the last to the first. For each
//! forward line there is one backward line that undoes it:
//!
//! ```text
//! forward                        backward (d-prefixed names: ∂L/∂(that name))
//! z = a_prev·W + b               dW      = a_prevᵀ·dz        (inputs, outputs)
//!                                db      = Σ_rows dz         (outputs)
//!                                da_prev = dz·Wᵀ             (rows, inputs)
//! a = f(z)                       dz      = da ⊙ f'(z)        (rows, outputs)
//! ```
//!
//! The backward pass of the output layer starts from `dz = (p - y) / rows`
//! ([`super::loss::output_error`]), so every gradient here is of the **mean**
//! loss over the batch: the `1/rows` is already inside `dz`.
//!
//! Gradients **accumulate**: `dW` and `db` are zeroed once, then every example
//! of the batch adds (`+=`) its share. A weight is used once per example, so
//! its gradient is the sum of one contribution per use (see
//! [`super::pitfalls::used_twice`]).

use crate::activation::Activation;

use super::forward::activation_slope;

/// Backward through `a = f(z)`: `dz = da ⊙ f'(z)` (element by element).
///
/// In the forward pass this was `a = f(z)`, each `a` depending only on its own
/// `z`; so by the chain rule `∂L/∂z = ∂L/∂a · ∂a/∂z = da · f'(z)`.
///
/// - `z`, `da`: (rows, outputs) — returns `dz`: (rows, outputs)
pub fn activation_backward(act: Activation, z: &[f64], da: &[f64]) -> Vec<f64> {
    assert_eq!(z.len(), da.len(), "z and da must have the same shape");
    z.iter()
        .zip(da)
        .map(|(&zi, &dai)| dai * activation_slope(act, zi))
        .collect()
}

/// `dW += a_prevᵀ·dz`: the gradient of every weight.
///
/// In the forward pass this was `z[r,j] = Σ_i a_prev[r,i] · W[i,j] + b[j]`, so
/// `∂z[r,j]/∂W[i,j] = a_prev[r,i]`, and `W[i,j]` is used once per example `r`:
///
/// ```text
/// dW[i,j] += Σ_r a_prev[r,i] · dz[r,j]
/// ```
///
/// (A weight from an input that is 0 — a black pixel — gets no gradient.)
///
/// - `a_prev`: (rows, inputs), `dz`: (rows, outputs), `dw`: (inputs, outputs), zeroed by the caller
pub fn weight_gradient(a_prev: &[f64], dz: &[f64], rows: usize, dw: &mut [f64]) {
    let inputs = a_prev.len() / rows;
    let outputs = dz.len() / rows;
    assert_eq!(dw.len(), inputs * outputs, "dw must be (inputs, outputs)");
    for r in 0..rows {
        for i in 0..inputs {
            for j in 0..outputs {
                dw[i * outputs + j] += a_prev[r * inputs + i] * dz[r * outputs + j];
            }
        }
    }
}

/// `db += Σ_rows dz`: the gradient of every bias.
///
/// In the forward pass this was `z[r,j] = ... + b[j]` for every row `r`, so
/// `∂z[r,j]/∂b[j] = 1`, and `b[j]` is used once per example:
///
/// ```text
/// db[j] += Σ_r dz[r,j]
/// ```
///
/// - `dz`: (rows, outputs), `db`: (outputs), zeroed by the caller
pub fn bias_gradient(dz: &[f64], rows: usize, db: &mut [f64]) {
    let outputs = db.len();
    assert_eq!(dz.len(), rows * outputs, "dz must be (rows, outputs)");
    for r in 0..rows {
        for j in 0..outputs {
            db[j] += dz[r * outputs + j];
        }
    }
}

/// `da_prev = dz·Wᵀ`: the gradient flowing back to the previous layer.
///
/// In the forward pass this was `z[r,j] = Σ_i a_prev[r,i] · W[i,j] + b[j]`, so
/// `∂z[r,j]/∂a_prev[r,i] = W[i,j]`; and `a_prev[r,i]` feeds EVERY neuron j of this
/// layer, so its gradient adds up one share per neuron:
///
/// ```text
/// da_prev[r,i] = Σ_j dz[r,j] · W[i,j]
/// ```
///
/// - `dz`: (rows, outputs), `w`: (inputs, outputs) — returns `da_prev`: (rows, inputs)
pub fn input_gradient(dz: &[f64], w: &[f64], rows: usize) -> Vec<f64> {
    let outputs = dz.len() / rows;
    let inputs = w.len() / outputs;
    let mut da_prev = vec![0.0; rows * inputs];
    for r in 0..rows {
        for i in 0..inputs {
            for j in 0..outputs {
                da_prev[r * inputs + i] += dz[r * outputs + j] * w[i * outputs + j];
            }
        }
    }
    da_prev
}

/// The whole backward pass of one dense layer given `dz`: fills `dw` and `db`
/// (accumulating into them) and returns `da_prev`.
///
/// - `a_prev`: (rows, inputs), `w`: (inputs, outputs), `dz`: (rows, outputs)
/// - `dw`: (inputs, outputs), `db`: (outputs) — returns `da_prev`: (rows, inputs)
pub fn dense_backward(
    a_prev: &[f64],
    w: &[f64],
    dz: &[f64],
    rows: usize,
    dw: &mut [f64],
    db: &mut [f64],
) -> Vec<f64> {
    weight_gradient(a_prev, dz, rows, dw);
    bias_gradient(dz, rows, db);
    input_gradient(dz, w, rows)
}
