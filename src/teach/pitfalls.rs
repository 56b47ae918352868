//! Lesson 6: the subtle parts that students get wrong, each as a tiny runnable example.
//!
//! 1. [`used_twice`]: a value used twice must *accumulate* its gradient (`+=`, not `=`).
//! 2. [`gradient_of_sum`] vs [`gradient_of_mean`]: average over the batch, or the
//!    step size changes with the batch size.
//! 3. [`saturation`]: scale the inputs to 0..1, or the first layer's weighted sums
//!    are huge and sigmoid/tanh saturate (their slope — and so the gradient — is ~0).
//! 4. [`hidden_units_stay_identical`]: start the weights at random, not at one
//!    value, or every hidden neuron stays a copy of the others forever.
//! 5. [`step_without_zero_grad`]: zero the gradients before every step (PyTorch's
//!    `zero_grad`), or each step follows the sum of every gradient so far.
//!
//! And what a wrong backward line looks like under the gradient check
//! ([`wrong_backward`], `simdnet explain --check --bug NAME`): relative errors of
//! order 1 where the right backward pass gives 1e-9.

use crate::activation::Activation;

use std::str::FromStr;

use super::forward::{activation, df_from_output};
use super::network::{Forward, Gradients, NetworkF64, NetworkOptimizerF64};

/// The loss of a value used twice: one input `x` feeding two neurons.
///
/// ```text
/// z1 = w1 · x        z2 = w2 · x        L = z1² / 2 + z2² / 2
/// ```
pub fn used_twice_loss(x: f64, w1: f64, w2: f64) -> f64 {
    let z1 = w1 * x;
    let z2 = w2 * x;
    z1 * z1 / 2.0 + z2 * z2 / 2.0
}

/// `∂L/∂x` for [`used_twice_loss`], computed as a backward pass would.
///
/// `x` reaches `L` along two paths, so its gradient is the SUM of one term per path:
///
/// ```text
/// dz1 = z1,  dz2 = z2
/// dx  = dz1 · w1  +  dz2 · w2
/// ```
///
/// With `accumulate = false` the second path *overwrites* the first (`dx = ...`
/// instead of `dx += ...`), the classic bug: the gradient is silently wrong, and
/// nothing crashes. (In a layer, `dx = dz·Wᵀ` sums over the neurons an input
/// feeds, and `dW` sums over the examples of the batch, for the same reason.)
pub fn used_twice(x: f64, w1: f64, w2: f64, accumulate: bool) -> f64 {
    let (z1, z2) = (w1 * x, w2 * x);
    let (dz1, dz2) = (z1, z2); // d(z²/2)/dz = z
    let mut dx = 0.0;
    // path 1: x -> z1 -> L
    dx += dz1 * w1;
    // path 2: x -> z2 -> L
    if accumulate {
        dx += dz2 * w2; // right: add this path's share
    } else {
        dx = dz2 * w2; // wrong: forgets path 1
    }
    dx
}

/// The loss of a linear model `ŷ = w · x` on a batch, as the mean or the sum of
/// the squared errors `(w·x_r - y_r)² / 2`.
pub fn batch_loss(w: f64, xs: &[f64], ys: &[f64], mean: bool) -> f64 {
    let sum: f64 = xs.iter().zip(ys).map(|(x, y)| (w * x - y).powi(2) / 2.0).sum();
    if mean {
        sum / xs.len() as f64
    } else {
        sum
    }
}

/// `∂/∂w` of the SUM of the per-example losses: `Σ_r (w·x_r - y_r) · x_r`.
///
/// It grows with the batch: double the batch (even with copies of the same
/// examples) and the gradient doubles, so the learning rate would have to
/// change with the batch size.
pub fn gradient_of_sum(w: f64, xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys).map(|(x, y)| (w * x - y) * x).sum()
}

/// `∂/∂w` of the MEAN of the per-example losses: `(1/rows) · Σ_r (w·x_r - y_r) · x_r`.
///
/// The same size whatever the batch size: this is what Keras (and
/// [`super::loss::output_error`], with its `/ rows`) computes.
pub fn gradient_of_mean(w: f64, xs: &[f64], ys: &[f64]) -> f64 {
    gradient_of_sum(w, xs, ys) / xs.len() as f64
}

/// What one first-layer neuron sees for an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Saturation {
    /// The weighted sum `z = Σ_i x_i · w`.
    pub z: f64,
    /// `a = f(z)`.
    pub a: f64,
    /// The slope `f'(z)` (from `a`): every gradient flowing back through this neuron is multiplied by it.
    pub slope: f64,
}

/// A neuron with every weight equal to `weight`, looking at `pixels`, either raw
/// (0..255) or scaled (`x / 255`, 0..1).
///
/// With 100 white pixels and weights of 0.02: scaled, `z = 100 · 1 · 0.02 = 2`,
/// sigmoid(2) = 0.88 with slope 0.10; raw, `z = 100 · 255 · 0.02 = 510`,
/// sigmoid(510) = 1.0 (to the last bit of an f64) with slope a·(1 - a) = 0 (the
/// true slope, e^-510, is about 1e-222) — the neuron is saturated and learns
/// nothing. (ReLU does not saturate, but z is still 255 times too big, so are the
/// gradients of the weights, `dW = xᵀ·dz`, and one step throws the weights far away.)
pub fn saturation(act: Activation, pixels: &[u8], weight: f64, scaled: bool) -> Saturation {
    let mut z = 0.0;
    for &p in pixels {
        let x = if scaled { p as f64 / 255.0 } else { p as f64 };
        z += x * weight;
    }
    let a = activation(act, z);
    Saturation {
        z,
        a,
        slope: df_from_output(act, a),
    }
}

/// Whether all hidden neurons of the first layer are copies of each other:
/// every column of W1 (the weights into one neuron) and every b1 entry equal.
///
/// Start a network with every weight at the same value (0, or 0.5) and train
/// it: all hidden neurons compute the same `z`, get the same `dz`, so the same
/// update — they stay identical, and the layer works like ONE neuron. (With all
/// weights at 0 and ReLU, it is worse: z = 0, so f'(z) = 0 and W1 never moves.)
/// Random starting weights break this symmetry.
pub fn hidden_units_stay_identical(net: &NetworkF64) -> bool {
    let layer = &net.layers[0];
    let (inputs, outputs) = (layer.inputs, layer.outputs);
    (0..inputs).all(|i| (1..outputs).all(|j| layer.w[i * outputs + j] == layer.w[i * outputs])) // row i
        && layer.b.iter().all(|&bj| bj == layer.b[0])
}

/// A network with every weight at `value` and every bias at 0 (the wrong way to start).
pub fn constant_network(sizes: &[usize], hidden: Activation, value: f64) -> NetworkF64 {
    let mut net = NetworkF64::zeros(sizes, hidden);
    for layer in &mut net.layers {
        layer.w.iter_mut().for_each(|w| *w = value);
    }
    net
}

/// A deliberate mistake in one backward line, for the gradient check to catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// `dz = da` instead of `dz = da ⊙ f'(a)`: the slope of the activation forgotten.
    ForgottenSlope,
    /// `dW[i,j] = x[r,i]·dz[r,j]` instead of `+=`: every example overwrites the
    /// one before, and only the last example's share is left (pitfall 1 in a layer).
    Overwrite,
}

impl Bug {
    /// Every bug, in the order `--help` lists them.
    pub const ALL: [Bug; 2] = [Bug::ForgottenSlope, Bug::Overwrite];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ForgottenSlope => "forgotten-slope",
            Bug::Overwrite => "overwrite",
        }
    }

    /// The wrong line, beside the right one.
    pub fn line(self) -> &'static str {
        match self {
            Bug::ForgottenSlope => "dz = da   (right: dz = da ⊙ f'(a))",
            Bug::Overwrite => "dW[i,j] = x[r,i]·dz[r,j]   (right: dW[i,j] += x[r,i]·dz[r,j])",
        }
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown bug '{s}': expected forgotten-slope or overwrite"))
    }
}

/// The backward pass of `net` with one line wrong ([`Bug`]); `fwd` is the
/// (right) forward pass of the batch `x`, `labels`. Compare its gradients with
/// [`super::gradcheck::check`]: the wrong ones stand out.
pub fn wrong_backward(net: &NetworkF64, x: &[f64], labels: &[usize], fwd: &Forward, bug: Bug) -> Gradients {
    let rows = labels.len();
    match bug {
        Bug::ForgottenSlope => {
            // the backward pass of a network whose activations all have slope 1
            let mut slope_one = net.clone();
            for layer in &mut slope_one.layers {
                layer.act = Activation::Identity;
            }
            slope_one.backward(x, labels, fwd)
        }
        Bug::Overwrite => {
            let mut grads = net.backward(x, labels, fwd);
            for (l, layer) in net.layers.iter().enumerate() {
                let input: &[f64] = if l == 0 { x } else { &fwd.a[l - 1] };
                let (ins, outs) = (layer.inputs, layer.outputs);
                for r in 0..rows {
                    for i in 0..ins {
                        for j in 0..outs {
                            // wrong: `=` keeps only this example's share
                            grads.dw[l][i * outs + j] = input[r * ins + i] * grads.dz[l][r * outs + j];
                        }
                    }
                }
            }
            grads
        }
    }
}

/// One training step that FORGETS to zero the gradients: the new gradients are
/// added (`+=`) to `acc`, which still holds every gradient since the start, and
/// the optimizer follows `acc`. With `acc` zeroed first (`zero_grad = true`) it is
/// the right step. Returns the mean loss of the batch before the update.
///
/// Frameworks that accumulate (PyTorch's `loss.backward()` adds into `.grad`, so
/// that a gradient can be summed over several batches) need `zero_grad()` before
/// every step. Forget it and step t moves by the sum of t gradients: like momentum
/// that never decays, the steps grow, overshoot and the loss climbs again.
pub fn step_without_zero_grad(
    net: &mut NetworkF64,
    opt: &mut NetworkOptimizerF64,
    acc: &mut GradientBuffers,
    x: &[f64],
    labels: &[usize],
    zero_grad: bool,
) -> f64 {
    let fwd = net.forward(x, labels.len());
    let grads = net.backward(x, labels, &fwd);
    for l in 0..net.layers.len() {
        let pairs = [(&mut acc.dw[l], &grads.dw[l]), (&mut acc.db[l], &grads.db[l])];
        for (sum, g) in pairs {
            if zero_grad {
                sum.iter_mut().for_each(|v| *v = 0.0); // zero_grad()
            }
            for (s, gi) in sum.iter_mut().zip(g) {
                *s += gi; // what loss.backward() does: accumulate
            }
        }
    }
    for (l, layer) in net.layers.iter_mut().enumerate() {
        opt.w[l].step(&mut layer.w, &acc.dw[l]);
        opt.b[l].step(&mut layer.b, &acc.db[l]);
    }
    grads.loss.loss
}

/// The gradient buffers a framework keeps between steps (PyTorch's `.grad`):
/// one `dW` and one `db` per layer.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientBuffers {
    /// `dW` of every layer, each (inputs, outputs).
    pub dw: Vec<Vec<f64>>,
    /// `db` of every layer, each (outputs).
    pub db: Vec<Vec<f64>>,
}

impl GradientBuffers {
    /// Zeroed buffers for every layer of `net`.
    pub fn new(net: &NetworkF64) -> GradientBuffers {
        GradientBuffers {
            dw: net.layers.iter().map(|l| vec![0.0; l.w.len()]).collect(),
            db: net.layers.iter().map(|l| vec![0.0; l.b.len()]).collect(),
        }
    }
}
