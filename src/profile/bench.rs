//! `simdnet bench`'s measurements of the engine: GEMM shapes and fused kernels,
//! each verified against a plain reference before it is timed.
//!
//! Verification is separate from timing and takes the kernel as a parameter
//! (a function pointer), so a test can hand it a deliberately wrong kernel
//! and see it rejected. A kernel that fails verification is not timed.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::data::NUM_CLASSES;
use crate::gemm::{self, Epilogue, Parallelism};
use crate::kernels;
use crate::matrix::{MatMut, MatRef};
use crate::nn::{Activation, Optimizer, OptimizerState};

/// A GEMM as the benchmark calls it: `C = alpha·A·B + beta·C`, then the epilogue.
pub type GemmFn = fn(f32, MatRef<f32>, MatRef<f32>, f32, MatMut, Epilogue);
/// `kernels::bias_activation`'s signature.
pub type BiasActivationFn = fn(MatMut, &[f32], Activation);
/// `kernels::softmax_cross_entropy`'s signature.
pub type SoftmaxCeFn = fn(MatMut, MatRef, &[u8], f32) -> f64;
/// `kernels::activation_backward`'s signature.
pub type ActivationBackwardFn = fn(MatMut, MatRef, MatRef, Activation, &mut [f32]);
/// `OptimizerState::update`'s signature.
pub type OptimizerFn = fn(&mut OptimizerState, &Optimizer, usize, &mut [f32], &[f32]);

/// Inputs of an MNIST network (28 x 28 pixels).
pub const MNIST_PIXELS: usize = 28 * 28;

/// The widths of an MNIST network with these hidden layers: 784, hidden.., 10.
pub fn mnist_widths(hidden: &[usize]) -> Vec<usize> {
    let mut widths = vec![MNIST_PIXELS];
    widths.extend_from_slice(hidden);
    widths.push(NUM_CLASSES);
    widths
}

/// The engine's GEMM, allowed to use the current rayon pool.
pub fn engine_gemm(alpha: f32, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut, e: Epilogue) {
    gemm::gemm(alpha, a, b, beta, c, e, Parallelism::Rayon);
}

/// One GEMM problem: `C (m x n) = A (m x k) · B (k x n)`, with A and/or B
/// read through transposed views (as the backward pass does), and optionally
/// the forward pass's fused bias + ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmShape {
    pub name: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored `(k, m)` and read as `Aᵀ`.
    pub trans_a: bool,
    /// B is stored `(n, k)` and read as `Bᵀ`.
    pub trans_b: bool,
    /// Fused bias + ReLU epilogue (the forward pass).
    pub bias_relu: bool,
}

impl GemmShape {
    /// A plain square product.
    pub fn square(n: usize) -> GemmShape {
        GemmShape {
            name: format!("square {n}"),
            m: n,
            n,
            k: n,
            trans_a: false,
            trans_b: false,
            bias_relu: false,
        }
    }

    /// The GEMMs of one training step of an MLP `widths[0] -> ... -> widths[last]`
    /// on a batch of `batch`: per layer the forward `X·W` (batch x out x in),
    /// `dW = Xᵀ·dZ` (in x out x batch) and, except for the first layer,
    /// `dX = dZ·Wᵀ` (batch x in x out).
    pub fn training(widths: &[usize], batch: usize) -> Vec<GemmShape> {
        let net = widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-");
        let mut out = Vec::new();
        for l in 0..widths.len().saturating_sub(1) {
            let (i, o) = (widths[l], widths[l + 1]);
            let s = |what: &str, m, n, k, ta, tb, e| GemmShape {
                name: format!("{net} L{l} {what}"),
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                bias_relu: e,
            };
            out.push(s("fwd X.W", batch, o, i, false, false, true));
            out.push(s("dW=XT.dZ", i, o, batch, true, false, false));
            if l > 0 {
                out.push(s("dX=dZ.WT", batch, i, o, false, true, false));
            }
        }
        out
    }

    /// `2·m·n·k`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// The least memory traffic: read A and B once, write C once (bytes).
    pub fn min_bytes(&self) -> f64 {
        4.0 * (self.m * self.k + self.k * self.n + self.m * self.n) as f64
    }

    /// Arithmetic intensity: FLOPs per byte of the least traffic.
    pub fn intensity(&self) -> f64 {
        self.flops() / self.min_bytes()
    }
}

/// Random operands for a shape, stored as the shape says.
pub struct GemmData {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub bias: Vec<f32>,
    pub c: Vec<f32>,
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

impl GemmData {
    pub fn new(s: &GemmShape, seed: u64) -> GemmData {
        GemmData {
            a: uniform(s.m * s.k, seed),
            b: uniform(s.k * s.n, seed + 1),
            bias: uniform(s.n, seed + 2),
            c: vec![f32::NAN; s.m * s.n],
        }
    }

    /// Runs `f` on these operands (`beta = 0`: C's NaNs must never be read).
    pub fn run(&mut self, f: GemmFn, s: &GemmShape) {
        let a = if s.trans_a {
            MatRef::from_slice(&self.a, s.k, s.m).t()
        } else {
            MatRef::from_slice(&self.a, s.m, s.k)
        };
        let b = if s.trans_b {
            MatRef::from_slice(&self.b, s.n, s.k).t()
        } else {
            MatRef::from_slice(&self.b, s.k, s.n)
        };
        let e = if s.bias_relu {
            Epilogue::BiasActivation {
                bias: &self.bias,
                act: Activation::Relu,
            }
        } else {
            Epilogue::None
        };
        f(1.0, a, b, 0.0, MatMut::from_slice(&mut self.c, s.m, s.n), e);
    }
}

/// Compares `got` with `want` element-wise: `|got - want| <= tol(want)`, both finite.
fn compare(what: &str, got: &[f32], want: &[f32], tol: impl Fn(f32) -> f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !(g.is_finite() && (g - w).abs() <= tol(w)) {
            return Err(format!("{what}: element {i} is {g}, the reference gives {w}"));
        }
    }
    Ok(())
}

/// Checks `f` against `gemm::reference::gemm` on random operands of shape `s`.
/// Tolerance: `8·k·ε` absolute for inputs in [-1, 1] (summation order may differ).
pub fn verify_gemm(f: GemmFn, s: &GemmShape) -> Result<(), String> {
    let mut got = GemmData::new(s, 7);
    let mut want = GemmData::new(s, 7);
    got.run(f, s);
    want.run(gemm::reference::gemm, s);
    let tol = 8.0 * s.k as f32 * f32::EPSILON + 1e-6;
    compare(&s.name, &got.c, &want.c, |_| tol)
}

/// Times `f` on `s`: one warm-up, then up to `runs` runs while under `budget`
/// seconds (at least one). A shape whose warm-up alone exceeds the budget is
/// timed by that one call. Returns the run times in seconds.
pub fn time_gemm(f: GemmFn, s: &GemmShape, runs: usize, budget: f64) -> Vec<f64> {
    let mut d = GemmData::new(s, 11);
    let t = Instant::now();
    d.run(f, s);
    let warm = t.elapsed().as_secs_f64();
    if warm >= budget {
        return vec![warm];
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.is_empty() || (times.len() < runs && start.elapsed().as_secs_f64() < budget) {
        let t = Instant::now();
        d.run(f, s);
        times.push(t.elapsed().as_secs_f64());
        black_box(&d.c);
    }
    times
}

/// The fused kernels `bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fused {
    BiasActivation,
    SoftmaxCe,
    ActivationBackward,
    Optimizer,
}

impl Fused {
    pub const ALL: [Fused; 4] = [
        Fused::BiasActivation,
        Fused::SoftmaxCe,
        Fused::ActivationBackward,
        Fused::Optimizer,
    ];
    /// Stable names (used in the JSON).
    pub fn name(self) -> &'static str {
        match self {
            Fused::BiasActivation => "bias_activation_relu",
            Fused::SoftmaxCe => "softmax_cross_entropy",
            Fused::ActivationBackward => "activation_backward_relu",
            Fused::Optimizer => "rmsprop_update",
        }
    }
    /// Bytes read and written per element (counted like STREAM, no write-allocate).
    pub fn bytes_per_element(self) -> usize {
        match self {
            // z read and written
            Fused::BiasActivation => 8,
            // logits read, dz written
            Fused::SoftmaxCe => 8,
            // da read and written, a read
            Fused::ActivationBackward => 12,
            // w, g, s read; w, s written
            Fused::Optimizer => 20,
        }
    }
    /// Whether the engine runs it on the whole pool (else on one thread).
    pub fn parallel(self) -> bool {
        self == Fused::Optimizer
    }
    /// Columns of the matrices it works on (the output layer has 10 classes).
    fn cols(self) -> usize {
        match self {
            Fused::SoftmaxCe => 10,
            _ => 512,
        }
    }
}

/// Operands for a fused kernel over about `elements` values.
struct FusedData {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    z: Vec<f32>,
    labels: Vec<u8>,
    state: OptimizerState,
    opt: Optimizer,
}

impl FusedData {
    fn new(kind: Fused, elements: usize, seed: u64) -> FusedData {
        let cols = kind.cols();
        let rows = elements.div_ceil(cols).max(1);
        let n = rows * cols;
        let opt = Optimizer::rmsprop(0.001);
        let mut labels_rng = rand::rngs::StdRng::seed_from_u64(seed + 3);
        FusedData {
            rows,
            cols,
            x: uniform(n, seed),
            y: uniform(n, seed + 1),
            z: uniform(cols.max(n * (kind == Fused::Optimizer) as usize), seed + 2),
            labels: (0..rows).map(|_| labels_rng.random_range(0..10u8)).collect(),
            state: OptimizerState::new(&[n]),
            opt,
        }
    }
    fn elements(&self) -> usize {
        self.rows * self.cols
    }
}

/// Runs a fused kernel once on `d` (the engine's own functions).
fn run_fused(kind: Fused, d: &mut FusedData) -> f64 {
    let (r, c) = (d.rows, d.cols);
    match kind {
        Fused::BiasActivation => {
            kernels::bias_activation(MatMut::from_slice(&mut d.x, r, c), &d.z[..c], Activation::Relu);
            0.0
        }
        Fused::SoftmaxCe => kernels::softmax_cross_entropy(
            MatMut::from_slice(&mut d.y, r, c),
            MatRef::from_slice(&d.x, r, c),
            &d.labels,
            1.0 / r as f32,
        ),
        Fused::ActivationBackward => {
            // dz into x, from da = y and the stored output a = y (read twice)
            kernels::activation_backward(
                MatMut::from_slice(&mut d.x, r, c),
                MatRef::from_slice(&d.y, r, c),
                MatRef::from_slice(&d.y, r, c),
                Activation::Relu,
                &mut d.z[..c],
            );
            0.0
        }
        Fused::Optimizer => {
            d.state.update(&d.opt, 0, &mut d.x, &d.z);
            0.0
        }
    }
}

fn close(w: f32) -> f32 {
    1e-5 * w.abs().max(1.0)
}

/// Checks a bias + activation kernel against plain loops (ReLU, sigmoid, tanh).
pub fn verify_bias_activation(f: BiasActivationFn) -> Result<(), String> {
    let (r, c) = (37, 45);
    let bias = uniform(c, 1);
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        let mut got = uniform(r * c, 2);
        let want: Vec<f32> = got
            .iter()
            .enumerate()
            .map(|(i, &z)| act.f(z + bias[i % c]))
            .collect();
        f(MatMut::from_slice(&mut got, r, c), &bias, act);
        compare(&format!("bias_activation {}", act.name()), &got, &want, close)?;
    }
    Ok(())
}

/// Checks a softmax-cross-entropy kernel against plain loops (in f64).
pub fn verify_softmax_ce(f: SoftmaxCeFn) -> Result<(), String> {
    let (r, c) = (33, 10);
    let logits: Vec<f32> = uniform(r * c, 3).iter().map(|v| 8.0 * v).collect();
    let labels: Vec<u8> = (0..r).map(|i| (i * 7 % c) as u8).collect();
    let scale = 1.0 / r as f64;
    let (mut want, mut want_loss) = (vec![0.0f32; r * c], 0.0f64);
    for i in 0..r {
        let row = &logits[i * c..(i + 1) * c];
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for j in 0..c {
            let p = (row[j] as f64 - max).exp() / sum;
            let y = (j == labels[i] as usize) as u8 as f64;
            want[i * c + j] = ((p - y) * scale) as f32;
            if y == 1.0 {
                want_loss -= p.ln();
            }
        }
    }
    let mut got = vec![f32::NAN; r * c];
    let loss = f(
        MatMut::from_slice(&mut got, r, c),
        MatRef::from_slice(&logits, r, c),
        &labels,
        scale as f32,
    );
    compare("softmax_cross_entropy dz", &got, &want, |_| 1e-6)?;
    if !loss.is_finite() || (loss - want_loss).abs() > 1e-4 * want_loss.abs().max(1.0) {
        return Err(format!(
            "softmax_cross_entropy: loss {loss}, the reference gives {want_loss}"
        ));
    }
    Ok(())
}

/// Checks an activation-backward kernel (dz and the bias gradient) against plain loops.
pub fn verify_activation_backward(f: ActivationBackwardFn) -> Result<(), String> {
    let (r, c) = (29, 41);
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        let a: Vec<f32> = uniform(r * c, 4).iter().map(|&z| act.f(z)).collect();
        let da = uniform(r * c, 5);
        let mut got = vec![f32::NAN; r * c];
        let want: Vec<f32> = da
            .iter()
            .zip(&a)
            .map(|(&d, &a)| d * act.df_from_output(a))
            .collect();
        let mut want_db = vec![0.0f32; c];
        for i in 0..r {
            for j in 0..c {
                want_db[j] += want[i * c + j];
            }
        }
        let mut db = vec![f32::NAN; c];
        f(
            MatMut::from_slice(&mut got, r, c),
            MatRef::from_slice(&da, r, c),
            MatRef::from_slice(&a, r, c),
            act,
            &mut db,
        );
        let name = act.name();
        compare(&format!("activation_backward {name} dz"), &got, &want, close)?;
        compare(&format!("activation_backward {name} db"), &db, &want_db, |w| {
            1e-5 * (r as f32) * w.abs().max(1.0)
        })?;
    }
    Ok(())
}

/// Checks an optimiser update (RMSprop, two steps, large enough to run in
/// parallel chunks) against the formula in plain loops.
pub fn verify_optimizer(f: OptimizerFn) -> Result<(), String> {
    let n = crate::nn::optim::PARALLEL_UPDATE_MIN_PARAMS + 12_345;
    let opt = Optimizer::rmsprop(0.01);
    let Optimizer::RmsProp { lr, rho, eps } = opt else {
        unreachable!("rmsprop")
    };
    let g = uniform(n, 6);
    let mut w = uniform(n, 7);
    let (mut want_w, mut s) = (w.clone(), vec![0.0f32; n]);
    let mut state = OptimizerState::new(&[n]);
    for _ in 0..2 {
        for i in 0..n {
            s[i] = rho * s[i] + (1.0 - rho) * g[i] * g[i];
            want_w[i] -= lr * g[i] / (s[i] + eps).sqrt();
        }
        state.begin_step();
        f(&mut state, &opt, 0, &mut w, &g);
    }
    compare("rmsprop_update", &w, &want_w, close)
}

/// Verifies the engine's own fused kernel `kind`.
pub fn verify_fused(kind: Fused) -> Result<(), String> {
    match kind {
        Fused::BiasActivation => verify_bias_activation(kernels::bias_activation),
        Fused::SoftmaxCe => verify_softmax_ce(kernels::softmax_cross_entropy),
        Fused::ActivationBackward => verify_activation_backward(kernels::activation_backward),
        Fused::Optimizer => verify_optimizer(OptimizerState::update),
    }
}

/// Times fused kernel `kind` over about `elements` values: one warm-up, then
/// `runs` runs. Returns `(elements, run times in seconds)`.
pub fn time_fused(kind: Fused, elements: usize, runs: usize) -> (usize, Vec<f64>) {
    let mut d = FusedData::new(kind, elements, 21);
    run_fused(kind, &mut d);
    let times = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            black_box(run_fused(kind, &mut d));
            t.elapsed().as_secs_f64()
        })
        .collect();
    (d.elements(), times)
}
