//! Lesson 3: the backward pass — the chain rule, one forward line at a time.
//!
//! The backward pass walks the layers from the last to the first. Each
//! backward line *differentiates* one forward line: it takes the gradient of
//! the loss with respect to that line's output and gives the gradients with
//! respect to its inputs. A dense layer has two forward lines; the first,
//! `z = x·W + b`, has three inputs (`x`, `W`, `b`), so three backward lines:
//!
//! ```text
//! forward                  backward (d-prefixed names: ∂L/∂(that name))
//! a = f(z)                 dz = da ⊙ f'(z)   computed from the stored a   (rows, outputs)
//! z = x·W + b              dW = xᵀ·dz                                     (inputs, outputs)
//!                          db = Σ_rows dz                                 (outputs)
//!                          dx = dz·Wᵀ                                     (rows, inputs)
//! ```
//!
//! The backward pass starts from `da` of the output layer, which the loss
//! gives: `da = (p - y) / rows` ([`super::loss::softmax_cross_entropy`]). The
//! output layer's activation is the identity, so there `dz = da ⊙ 1 = da`.
//! Every gradient here is of the **mean** loss over the batch: the `1/rows` is
//! already inside that first `da`. The `dx` of a layer is the `da` of the layer
//! before it; the first layer's `dx` would be the gradient of the data, which
//! nothing needs, so it is not computed.
//!
//! Gradients **accumulate**: `dW`, `db` and `dx` are zeroed once per step, then
//! every use of a value adds (`+=`) its share. A weight is used once per
//! example, so its gradient is the sum of one contribution per example; an
//! input feeds every neuron, so its gradient is the sum of one share per
//! neuron (see [`super::pitfalls::used_twice`]).

use crate::activation::Activation;

use super::forward::df_from_output;
use super::network::DenseF64;

/// Backward through `a = f(z)`: `dz = da ⊙ f'(z)` (element by element), with
/// `f'` computed from the stored output `a` ([`df_from_output`]).
///
/// In the forward pass this was `a = f(z)`, each `a` depending only on its own
/// `z`; so by the chain rule `∂L/∂z = ∂L/∂a · ∂a/∂z = da · f'(z)`.
///
/// - `dz`: (rows, outputs), written; `da`, `a`: (rows, outputs)
pub fn activation_backward(dz: &mut [f64], da: &[f64], a: &[f64], act: Activation) {
    assert_eq!(a.len(), da.len(), "a and da must have the same shape");
    assert_eq!(dz.len(), da.len(), "dz and da must have the same shape");
    for k in 0..dz.len() {
        dz[k] = da[k] * df_from_output(act, a[k]);
    }
}

/// `dW += xᵀ·dz`: the gradient of every weight.
///
/// In the forward pass this was `z[r,j] = Σ_i x[r,i] · W[i,j] + b[j]`, so
/// `∂z[r,j]/∂W[i,j] = x[r,i]`, and `W[i,j]` is used once per example `r`:
///
/// ```text
/// dW[i,j] += Σ_r x[r,i] · dz[r,j]
/// ```
///
/// (A weight from an input that is 0 — a black pixel — gets no gradient.)
///
/// - `dw`: (inputs, outputs), zeroed by the caller; `x`: (rows, inputs), `dz`: (rows, outputs)
pub fn weight_gradient(dw: &mut [f64], x: &[f64], dz: &[f64], rows: usize) {
    let inputs = x.len() / rows;
    let outputs = dz.len() / rows;
    assert_eq!(dw.len(), inputs * outputs, "dw must be (inputs, outputs)");
    for r in 0..rows {
        for i in 0..inputs {
            for j in 0..outputs {
                dw[i * outputs + j] += x[r * inputs + i] * dz[r * outputs + j];
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
/// - `db`: (outputs), zeroed by the caller; `dz`: (rows, outputs)
pub fn bias_gradient(db: &mut [f64], dz: &[f64], rows: usize) {
    let outputs = db.len();
    assert_eq!(dz.len(), rows * outputs, "dz must be (rows, outputs)");
    for r in 0..rows {
        for j in 0..outputs {
            db[j] += dz[r * outputs + j];
        }
    }
}

/// `dx += dz·Wᵀ`: the gradient flowing back to the layer's input (the previous
/// layer's `da`).
///
/// In the forward pass this was `z[r,j] = Σ_i x[r,i] · W[i,j] + b[j]`, so
/// `∂z[r,j]/∂x[r,i] = W[i,j]`; and `x[r,i]` feeds EVERY neuron j of this
/// layer, so its gradient adds up one share per neuron:
///
/// ```text
/// dx[r,i] += Σ_j dz[r,j] · W[i,j]
/// ```
///
/// - `dx`: (rows, inputs), zeroed by the caller; `dz`: (rows, outputs), `w`: (inputs, outputs)
pub fn input_gradient(dx: &mut [f64], dz: &[f64], w: &[f64], rows: usize) {
    let outputs = dz.len() / rows;
    let inputs = w.len() / outputs;
    assert_eq!(dx.len(), rows * inputs, "dx must be (rows, inputs)");
    for r in 0..rows {
        for i in 0..inputs {
            for j in 0..outputs {
                dx[r * inputs + i] += dz[r * outputs + j] * w[i * outputs + j];
            }
        }
    }
}

/// The backward pass of one dense layer, from `da` (the gradient of its output).
///
/// - `dx`: (rows, inputs) or `None` for the first layer; `dw`: (inputs, outputs);
///   `db`: (outputs) — all accumulated into (`+=`), zeroed by the caller
/// - `dz`: (rows, outputs), written
/// - `da`, `a`: (rows, outputs) — the gradient of the output, and the output the forward pass kept
/// - `x`: (rows, inputs) — the layer's input; `layer`: `w` (inputs, outputs), `b`, `act`
#[allow(clippy::too_many_arguments)] // the engine's argument list, in the engine's order
pub fn dense_backward(
    dx: Option<&mut [f64]>,
    dw: &mut [f64],
    db: &mut [f64],
    dz: &mut [f64],
    da: &[f64],
    a: &[f64],
    x: &[f64],
    layer: &DenseF64,
    rows: usize,
) {
    // forward: a = f(z)      ->  dz = da ⊙ f'(a)
    activation_backward(dz, da, a, layer.act);
    // forward: z = x·W + b   ->  dW = xᵀ·dz,  db = Σ_rows dz,  dx = dz·Wᵀ
    weight_gradient(dw, x, dz, rows);
    bias_gradient(db, dz, rows);
    if let Some(dx) = dx {
        input_gradient(dx, dz, &layer.w, rows);
    }
}
