//! Lesson 4: updating the weights — SGD, momentum, RMSprop and Adam.
//!
//! The gradient `g = ∂L/∂w` points uphill; every optimizer moves `w` a small
//! step downhill. They differ in how they choose the step. Each optimizer
//! below is a struct holding its hyperparameters and its **state** (what it
//! remembers between steps, one number per weight), and a `step` that updates
//! one buffer of weights in place and returns the update it added to each.
//!
//! Defaults (learning rates, decays, `eps`) are Keras 3's (momentum: Keras'
//! `SGD(momentum=0.9)`; its learning rate is SGD's 0.01). The FORMULAS are not
//! all Keras', and neither are those of the workshop, which ran Keras 2 scripts:
//!
//! - SGD and momentum: the same in Keras 2, Keras 3 and here.
//! - RMSprop: `eps` inside the square root, `g / sqrt(v + eps)`, as Keras 3 does.
//!   Keras 2's RMSprop put it outside, `g / (sqrt(v) + eps)`; the two differ only
//!   where `g²` is as small as `eps` (about 1e-7), so Keras 2 moves such tiny
//!   gradients further than the numbers here.
//! - Adam: the textbook one (Kingma & Ba, algorithm 1): `m̂` and `v̂` corrected,
//!   then `m̂ / (sqrt(v̂) + eps)`. Keras 3 (and Keras 2) fold the corrections into
//!   the learning rate, `lr·sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)`,
//!   which is the same step with `eps` scaled by `sqrt(1 - b2^t)` (0.03 on the
//!   first step): again a difference only for gradients near `eps`.
//!
//! So `simdnet explain` reproduces a Keras step to the printed digits except for
//! gradients of about 1e-3 or smaller under RMSprop or Adam.
//!
//! Shapes: `w`, `g` and every state buffer have the same length (one entry per weight).

/// Plain stochastic gradient descent: `w -= lr · g`. No state.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate (Keras default 0.01).
    pub lr: f64,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Sgd {
        Sgd { lr }
    }

    /// ```text
    /// update = -lr · g        a step against the gradient, proportional to its size
    /// w      = w + update
    /// ```
    pub fn step(&mut self, w: &mut [f64], g: &[f64]) -> Vec<f64> {
        assert_eq!(w.len(), g.len());
        let mut updates = vec![0.0; w.len()];
        for i in 0..w.len() {
            updates[i] = -self.lr * g[i];
            w[i] += updates[i];
        }
        updates
    }
}

/// SGD with momentum, in the Keras form: a velocity that remembers past steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum {
    /// Learning rate (Keras default 0.01).
    pub lr: f64,
    /// How much of the previous velocity is kept (commonly 0.9).
    pub momentum: f64,
    /// State: the velocity `v`, one per weight, starting at 0.
    pub velocity: Vec<f64>,
}

impl Momentum {
    /// SGD with momentum for a buffer of `len` weights (velocity starts at 0).
    pub fn new(lr: f64, momentum: f64, len: usize) -> Momentum {
        Momentum {
            lr,
            momentum,
            velocity: vec![0.0; len],
        }
    }

    /// ```text
    /// v = momentum · v - lr · g     keep most of the last step, add a new gradient step
    /// w = w + v                     (a ball rolling downhill: steady slopes speed it up,
    ///                                gradients that flip sign cancel out)
    /// ```
    /// On the very first step `v = -lr · g`, exactly SGD's step.
    pub fn step(&mut self, w: &mut [f64], g: &[f64]) -> Vec<f64> {
        assert_eq!(w.len(), g.len());
        assert_eq!(w.len(), self.velocity.len());
        let mut updates = vec![0.0; w.len()];
        for i in 0..w.len() {
            self.velocity[i] = self.momentum * self.velocity[i] - self.lr * g[i];
            updates[i] = self.velocity[i];
            w[i] += updates[i];
        }
        updates
    }
}

/// RMSprop: divides each weight's step by a running root-mean-square of its gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate (Keras default 0.001).
    pub lr: f64,
    /// Decay of the running mean of squared gradients (Keras default 0.9).
    pub rho: f64,
    /// Small constant that keeps the division finite (Keras default 1e-7).
    pub eps: f64,
    /// State: `v`, the running mean of `g²`, one per weight, starting at 0
    /// (`explain` calls it `v`, as Keras does; it is not momentum's velocity).
    pub mean_square: Vec<f64>,
}

impl RmsProp {
    /// RMSprop (Keras' ρ and ε) for a buffer of `len` weights (mean square starts at 0).
    pub fn new(lr: f64, len: usize) -> RmsProp {
        RmsProp {
            lr,
            rho: 0.9,
            eps: 1e-7,
            mean_square: vec![0.0; len],
        }
    }

    /// ```text
    /// v = rho · v + (1 - rho) · g²        running mean of the squared gradient
    /// w = w - lr · g / sqrt(v + eps)      step divided by the typical size of g
    /// ```
    /// Weights with large gradients take smaller steps, weights with small
    /// gradients larger ones: the step no longer scales with the size of `g`.
    /// It is NOT about `lr`: on the first step `v = (1 - rho)·g²`, so every weight
    /// moves by `lr·|g| / sqrt((1 - rho)·g² + eps) ≈ lr / sqrt(1 - rho)`, 3.16·lr
    /// with rho = 0.9; later steps shrink towards `lr` as `v` becomes the mean of
    /// many `g²`. And `eps` inside the root damps gradients whose `(1 - rho)·g²`
    /// is not much larger than `eps`: |g| below about 0.003 moves less than 3.16·lr.
    /// (Keras 3 puts `eps` inside the square root, as here; Keras 2 put it outside.)
    pub fn step(&mut self, w: &mut [f64], g: &[f64]) -> Vec<f64> {
        assert_eq!(w.len(), g.len());
        assert_eq!(w.len(), self.mean_square.len());
        let mut updates = vec![0.0; w.len()];
        for i in 0..w.len() {
            self.mean_square[i] = self.rho * self.mean_square[i] + (1.0 - self.rho) * g[i] * g[i];
            updates[i] = -self.lr * g[i] / (self.mean_square[i] + self.eps).sqrt();
            w[i] += updates[i];
        }
        updates
    }
}

/// Adam: momentum (a running mean of `g`) plus RMSprop (a running mean of `g²`),
/// both corrected for starting at zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate (Keras default 0.001).
    pub lr: f64,
    /// Decay of the running mean of `g` (Keras default 0.9).
    pub beta1: f64,
    /// Decay of the running mean of `g²` (Keras default 0.999).
    pub beta2: f64,
    /// Small constant that keeps the division finite (Keras default 1e-7).
    pub eps: f64,
    /// State: `m`, the running mean of `g`, one per weight, starting at 0.
    pub m: Vec<f64>,
    /// State: `v`, the running mean of `g²`, one per weight, starting at 0.
    pub v: Vec<f64>,
    /// State: the number of steps taken so far.
    pub t: u32,
    /// Not state, kept to show it: the bias-corrected `m̂ = m / (1 - b1^t)` of the last step.
    pub m_hat: Vec<f64>,
    /// Not state, kept to show it: the bias-corrected `v̂ = v / (1 - b2^t)` of the last step.
    pub v_hat: Vec<f64>,
}

impl Adam {
    /// Adam (Keras' β1, β2 and ε) for a buffer of `len` weights (moments start at 0).
    pub fn new(lr: f64, len: usize) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            m_hat: vec![0.0; len],
            v_hat: vec![0.0; len],
        }
    }

    /// ```text
    /// t  = t + 1
    /// m  = b1 · m + (1 - b1) · g          running mean of g   (direction, like momentum)
    /// v  = b2 · v + (1 - b2) · g²         running mean of g²  (size, like RMSprop)
    /// m̂  = m / (1 - b1^t)                 bias correction: m and v start at 0, so early
    /// v̂  = v / (1 - b2^t)                   on they are too small; this undoes exactly that
    /// w  = w - lr · m̂ / (sqrt(v̂) + eps)
    /// ```
    /// On the first step `m̂ = g` and `v̂ = g²`, so every weight moves by about
    /// `lr` against the sign of its gradient (Adam, unlike RMSprop, corrects its
    /// start, so this "about lr" is true from the first step).
    pub fn step(&mut self, w: &mut [f64], g: &[f64]) -> Vec<f64> {
        assert_eq!(w.len(), g.len());
        assert_eq!(w.len(), self.m.len());
        self.t += 1;
        let correction1 = 1.0 - self.beta1.powi(self.t as i32); // 1 - b1^t
        let correction2 = 1.0 - self.beta2.powi(self.t as i32); // 1 - b2^t
        let mut updates = vec![0.0; w.len()];
        for i in 0..w.len() {
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g[i];
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g[i] * g[i];
            self.m_hat[i] = self.m[i] / correction1;
            self.v_hat[i] = self.v[i] / correction2;
            updates[i] = -self.lr * self.m_hat[i] / (self.v_hat[i].sqrt() + self.eps);
            w[i] += updates[i];
        }
        updates
    }
}

/// The optimizer's name as chosen on the command line: the engine's
/// [`crate::nn::optim::OptimizerKind`], shared so that both parse the same words.
pub use crate::nn::optim::OptimizerKind;

/// A fresh optimizer of this kind, with state for `len` weights and Keras' other defaults
/// (momentum 0.9; RMSprop rho 0.9, eps 1e-7; Adam beta1 0.9, beta2 0.999, eps 1e-7).
pub fn build(kind: OptimizerKind, lr: f64, len: usize) -> OptimizerF64 {
    match kind {
        OptimizerKind::Sgd => OptimizerF64::Sgd(Sgd::new(lr)),
        OptimizerKind::Momentum => OptimizerF64::Momentum(Momentum::new(lr, 0.9, len)),
        OptimizerKind::RmsProp => OptimizerF64::RmsProp(RmsProp::new(lr, len)),
        OptimizerKind::Adam => OptimizerF64::Adam(Adam::new(lr, len)),
    }
}

/// Any one of the four optimizers, with its state for one buffer of weights.
///
/// (`F64`: the lesson's plain-`f64` optimizer, not the engine's `nn::optim::Optimizer`,
/// which holds only hyper-parameters and keeps its state in `nn::optim::OptimizerState`.)
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerF64 {
    /// Plain SGD.
    Sgd(Sgd),
    /// SGD with momentum.
    Momentum(Momentum),
    /// RMSprop.
    RmsProp(RmsProp),
    /// Adam.
    Adam(Adam),
}

impl OptimizerF64 {
    /// Updates `w` in place from its gradient `g`; returns the update added to each weight.
    pub fn step(&mut self, w: &mut [f64], g: &[f64]) -> Vec<f64> {
        match self {
            OptimizerF64::Sgd(o) => o.step(w, g),
            OptimizerF64::Momentum(o) => o.step(w, g),
            OptimizerF64::RmsProp(o) => o.step(w, g),
            OptimizerF64::Adam(o) => o.step(w, g),
        }
    }

    /// Which optimizer this is.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerF64::Sgd(_) => OptimizerKind::Sgd,
            OptimizerF64::Momentum(_) => OptimizerKind::Momentum,
            OptimizerF64::RmsProp(_) => OptimizerKind::RmsProp,
            OptimizerF64::Adam(_) => OptimizerKind::Adam,
        }
    }
}
