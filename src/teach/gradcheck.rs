//! Lesson 7: checking the backward pass — every gradient against a finite difference.
//!
//! The backward pass is the part of a network that is easiest to get wrong and
//! hardest to see wrong: a forgotten `f'`, an `=` instead of `+=`, a missing
//! `1/rows`, and the network still trains, only worse. The check is simple: nudge
//! one weight `θ` by `h` both ways, run the forward pass and the loss twice, and
//! compare the slope you measured with the one the backward pass computed:
//!
//! ```text
//! numeric  ≈ (L(θ + h) - L(θ - h)) / 2h          the central difference, in f64
//! error    = |analytic - numeric| / max(|analytic|, |numeric|)   (0 when both are 0)
//! ```
//!
//! The central difference is wrong by about `h²/6 · L'''` (the curvature it
//! ignores) plus `ε·|L| / h` (the rounding of the two losses, `ε ≈ 1.1e-16` in
//! f64). One difference at `h` and one at `h/2`, combined as Richardson does,
//! `(4·D(h/2) - D(h)) / 3`, cancel the `h²` term, so a larger `h` can be used
//! and the rounding shrinks with it: every gradient of the lesson's networks
//! then agrees to better than [`RIGHT`] (1e-6). A wrong backward line gives
//! errors of order 1 ([`WRONG`], 1e-2, is the usual alarm; see
//! [`super::pitfalls::wrong_backward`]).
//!
//! The price is the lesson of backpropagation: the check runs the forward pass
//! 4 times *per parameter*; the backward pass gets every gradient for about
//! the cost of one forward pass ([`cost`]).

use super::network::{Gradients, NetworkF64};

/// The step `h` of the finite differences (the second one is `h/2`).
pub const H: f64 = 1e-3;
/// Below this relative error a gradient is right (to the check's precision).
pub const RIGHT: f64 = 1e-6;
/// Above this relative error a gradient is wrong: a bug in the backward pass.
pub const WRONG: f64 = 1e-2;

/// `|a - n| / max(|a|, |n|)`, and 0 when both are 0.
pub fn relative_error(analytic: f64, numeric: f64) -> f64 {
    let scale = analytic.abs().max(numeric.abs());
    if scale == 0.0 {
        0.0
    } else {
        (analytic - numeric).abs() / scale
    }
}

/// Which buffer of which layer a parameter is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `W` of layer `l` (0-based), entry `idx` (`i * outputs + j`).
    Weight {
        /// The layer `l`.
        layer: usize,
        /// The entry.
        idx: usize,
    },
    /// `b` of layer `l`, entry `idx`.
    Bias {
        /// The layer `l`.
        layer: usize,
        /// The entry.
        idx: usize,
    },
}

/// The mean loss of the batch with one parameter moved by `delta`.
pub fn loss_moved(net: &mut NetworkF64, x: &[f64], labels: &[usize], p: Param, delta: f64) -> f64 {
    let value = match p {
        Param::Weight { layer, idx } => &mut net.layers[layer].w[idx],
        Param::Bias { layer, idx } => &mut net.layers[layer].b[idx],
    };
    let old = *value;
    *value = old + delta;
    let loss = net.loss(x, labels);
    match p {
        Param::Weight { layer, idx } => net.layers[layer].w[idx] = old,
        Param::Bias { layer, idx } => net.layers[layer].b[idx] = old,
    }
    loss
}

/// The central difference `(L(θ + h) - L(θ - h)) / 2h` of one parameter.
pub fn central_difference(net: &mut NetworkF64, x: &[f64], labels: &[usize], p: Param, h: f64) -> f64 {
    (loss_moved(net, x, labels, p, h) - loss_moved(net, x, labels, p, -h)) / (2.0 * h)
}

/// The numeric gradient of one parameter: central differences at `H` and `H/2`,
/// combined by Richardson extrapolation, `(4·D(h/2) - D(h)) / 3`.
pub fn numeric_gradient(net: &mut NetworkF64, x: &[f64], labels: &[usize], p: Param) -> f64 {
    let d1 = central_difference(net, x, labels, p, H);
    let d2 = central_difference(net, x, labels, p, H / 2.0);
    (4.0 * d2 - d1) / 3.0
}

/// The check of one tensor (`dW` or `db` of one layer).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// The layer, 0-based.
    pub layer: usize,
    /// `true` for `db`, `false` for `dW`.
    pub bias: bool,
    /// The gradient the backward pass computed, one per parameter.
    pub analytic: Vec<f64>,
    /// The numeric gradient ([`numeric_gradient`]), one per parameter.
    pub numeric: Vec<f64>,
    /// The relative error of each parameter ([`relative_error`]).
    pub error: Vec<f64>,
}

impl TensorCheck {
    /// The largest relative error, and where it is.
    pub fn worst(&self) -> (usize, f64) {
        self.error.iter().copied().enumerate().fold(
            (0, 0.0),
            |(bi, be), (i, e)| if e > be { (i, e) } else { (bi, be) },
        )
    }

    /// The verdict: right, suspicious or wrong.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.worst().1)
    }
}

/// What a largest relative error says about the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Below [`RIGHT`].
    Right,
    /// Between [`RIGHT`] and [`WRONG`]: a kink crossed (ReLU at 0), or a subtle bug.
    Suspicious,
    /// Above [`WRONG`]: a bug.
    Wrong,
}

impl Verdict {
    /// The verdict on a relative error.
    pub fn of(error: f64) -> Verdict {
        if error < RIGHT {
            Verdict::Right
        } else if error <= WRONG {
            Verdict::Suspicious
        } else {
            Verdict::Wrong
        }
    }
}

/// Checks every `dW` and `db` of `grads` (the gradients of the mean loss of the
/// batch `x`, `labels` for `net`) against [`numeric_gradient`]; one
/// [`TensorCheck`] per tensor, in the order W1, b1, W2, b2, ...
pub fn check(net: &NetworkF64, x: &[f64], labels: &[usize], grads: &Gradients) -> Vec<TensorCheck> {
    let mut probe = net.clone();
    let mut out = Vec::new();
    for layer in 0..net.layers.len() {
        for bias in [false, true] {
            let analytic = if bias { &grads.db[layer] } else { &grads.dw[layer] };
            let numeric: Vec<f64> = (0..analytic.len())
                .map(|idx| {
                    let p = if bias {
                        Param::Bias { layer, idx }
                    } else {
                        Param::Weight { layer, idx }
                    };
                    numeric_gradient(&mut probe, x, labels, p)
                })
                .collect();
            let error = analytic
                .iter()
                .zip(&numeric)
                .map(|(&a, &n)| relative_error(a, n))
                .collect();
            out.push(TensorCheck {
                layer,
                bias,
                analytic: analytic.clone(),
                numeric,
                error,
            });
        }
    }
    out
}

/// Multiply-adds of one training step of `net` on `rows` examples, and of the
/// gradients by finite differences instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// The forward pass: `Σ_layers rows·inputs·outputs` (the matrix products `x·W`).
    pub forward: u64,
    /// The backward pass: `dW = xᵀ·dz` in every layer, `dx = dz·Wᵀ` in every layer but
    /// the first (the products; the element-wise lines are fewer and left out).
    pub backward: u64,
    /// The parameters (weights and biases).
    pub parameters: u64,
    /// Finite differences: two forward passes per parameter (one central difference).
    pub finite_differences: u64,
}

/// The [`Cost`] of the gradients of `net` on `rows` examples.
pub fn cost(net: &NetworkF64, rows: usize) -> Cost {
    let rows = rows as u64;
    let products: Vec<u64> = net
        .layers
        .iter()
        .map(|l| rows * l.inputs as u64 * l.outputs as u64)
        .collect();
    let forward: u64 = products.iter().sum();
    let backward = forward + products[1..].iter().sum::<u64>();
    let parameters = net.parameter_count() as u64;
    Cost {
        forward,
        backward,
        parameters,
        finite_differences: 2 * parameters * forward,
    }
}
