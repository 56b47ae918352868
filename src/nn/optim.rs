//! Optimisers: how a gradient `g` becomes an update of a parameter `w`.
//!
//! Formulas follow Keras 3 (its defaults in brackets):
//! - SGD: `w -= lr·g` [lr 0.01]; with momentum μ: `v = μ·v - lr·g; w += v`.
//! - RMSprop: `s = ρ·s + (1-ρ)·g²; w -= lr·g / sqrt(s + ε)` [lr 0.001, ρ 0.9, ε 1e-7].
//! - Adam (Kingma & Ba, Algorithm 1): `m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;`
//!   `m̂ = m/(1-β1^t); v̂ = v/(1-β2^t); w -= lr·m̂ / (sqrt(v̂) + ε)` [lr 0.001, β1 0.9, β2 0.999, ε 1e-7].
//!   Keras 3 uses the paper's rearranged form, whose `ε` sits outside the bias
//!   correction (`ε̂ = ε·sqrt(1-β2^t)`); the two differ only for gradients of
//!   about `ε` or smaller. simdnet uses the textbook form, as [`crate::teach`] does.
//!
//! The state (`v`, `s`, `m`) has one slot per parameter and lives in
//! [`OptimizerState`], created once for a network's parameter sizes.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

/// An optimiser and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Optimizer {
    /// `w -= lr·g`; with momentum μ: `v = μ·v - lr·g; w += v` (see the module docs).
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Velocity decay (0: none).
        momentum: f32,
    },
    /// `s = ρ·s + (1-ρ)·g²; w -= lr·g / sqrt(s + ε)`.
    RmsProp {
        /// Learning rate.
        lr: f32,
        /// Decay of the mean square.
        rho: f32,
        /// Keeps the division finite.
        eps: f32,
    },
    /// Adam: bias-corrected first and second moments.
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Keeps the division finite.
        eps: f32,
    },
}

impl Optimizer {
    /// Plain SGD (no momentum).
    pub fn sgd(lr: f32) -> Optimizer {
        Optimizer::Sgd { lr, momentum: 0.0 }
    }
    /// SGD with momentum `momentum` (Keras: `SGD(momentum=...)`).
    pub fn momentum(lr: f32, momentum: f32) -> Optimizer {
        Optimizer::Sgd { lr, momentum }
    }
    /// RMSprop with the Keras defaults for ρ and ε.
    pub fn rmsprop(lr: f32) -> Optimizer {
        Optimizer::RmsProp {
            lr,
            rho: 0.9,
            eps: 1e-7,
        }
    }
    /// Adam with the Keras defaults for β1, β2 and ε.
    pub fn adam(lr: f32) -> Optimizer {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }

    /// Builds an optimiser from its CLI name (`sgd`, `momentum`, `rmsprop`, `adam`)
    /// and a learning rate (`None`: the Keras default for that optimiser).
    pub fn from_name(name: &str, lr: Option<f32>) -> Result<Optimizer, String> {
        let kind: OptimizerKind = name.parse()?;
        let lr = lr.unwrap_or(kind.default_lr() as f32);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("the learning rate must be a positive number, got {lr}"));
        }
        Ok(match kind {
            OptimizerKind::Sgd => Optimizer::sgd(lr),
            OptimizerKind::Momentum => Optimizer::momentum(lr, 0.9),
            OptimizerKind::RmsProp => Optimizer::rmsprop(lr),
            OptimizerKind::Adam => Optimizer::adam(lr),
        })
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::RmsProp { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        }
    }
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Optimizer::Sgd { lr, momentum: 0.0 } => write!(f, "SGD(lr={lr})"),
            Optimizer::Sgd { lr, momentum } => write!(f, "SGD(lr={lr}, momentum={momentum})"),
            Optimizer::RmsProp { lr, rho, eps } => write!(f, "RMSprop(lr={lr}, rho={rho}, eps={eps:e})"),
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                write!(f, "Adam(lr={lr}, beta1={beta1}, beta2={beta2}, eps={eps:e})")
            }
        }
    }
}

/// The optimiser names the CLI accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with momentum.
    Momentum,
    /// RMSprop (Keras' default in the workshop).
    RmsProp,
    /// Adam.
    Adam,
}

impl OptimizerKind {
    /// The lowercase command-line name.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::RmsProp => "rmsprop",
            OptimizerKind::Adam => "adam",
        }
    }

    /// The Keras default learning rate (in f64 for the teaching module; the engine rounds it to f32).
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Momentum => 0.01,
            OptimizerKind::RmsProp | OptimizerKind::Adam => 0.001,
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "momentum" => Ok(OptimizerKind::Momentum),
            "rmsprop" => Ok(OptimizerKind::RmsProp),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(format!(
                "unknown optimizer '{s}': expected one of sgd, momentum, rmsprop, adam"
            )),
        }
    }
}

/// Below this many parameters an update runs on one thread (threading costs more than it saves).
pub const PARALLEL_UPDATE_MIN_PARAMS: usize = 1 << 16;
/// Parameters per parallel task: a fixed size, so the split never depends on the thread count.
const UPDATE_CHUNK: usize = 1 << 14;

/// Per-parameter state of an optimiser, one buffer per parameter tensor.
#[derive(Clone, Debug)]
pub struct OptimizerState {
    /// SGD momentum velocity, RMSprop's mean square, or Adam's first moment.
    slot1: Vec<Vec<f32>>,
    /// Adam's second moment (unused by the others).
    slot2: Vec<Vec<f32>>,
    /// Steps taken so far (Adam's bias correction uses it).
    pub steps: u64,
}

impl OptimizerState {
    /// Zeroed state for tensors of the given sizes. (Every optimiser gets
    /// both slots: one code path for all, for a little memory.)
    pub fn new(sizes: &[usize]) -> OptimizerState {
        let zeros = || sizes.iter().map(|&n| vec![0.0; n]).collect::<Vec<_>>();
        OptimizerState {
            slot1: zeros(),
            slot2: zeros(),
            steps: 0,
        }
    }

    /// Call once per training step, before the tensors' [`update`](Self::update) calls.
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }

    /// Applies one update to tensor `index`: `w` from its gradient `g`.
    pub fn update(&mut self, opt: &Optimizer, index: usize, w: &mut [f32], g: &[f32]) {
        self.update_summed(opt, index, w, 1, |_| g);
    }

    /// Applies one update to tensor `index` whose gradient is the sum, in
    /// order, of `parts` slices `part(0) + part(1) + ...` (the shards'
    /// gradients). Summing chunk by chunk right before the update reads each
    /// gradient once and never writes the total back to memory.
    pub fn update_summed<'g>(
        &mut self,
        opt: &Optimizer,
        index: usize,
        w: &mut [f32],
        parts: usize,
        part: impl Fn(usize) -> &'g [f32] + Sync,
    ) {
        self.update_summed_decayed(opt, index, w, 0.0, parts, part);
    }

    /// [`update_summed`](Self::update_summed) with L2 weight decay: the
    /// gradient used is `Σ parts + decay·w`, added chunk by chunk while `w`
    /// is in L1 (no extra pass over memory). `decay == 0` skips the term, so
    /// the result is bit-identical to `update_summed`.
    pub fn update_summed_decayed<'g>(
        &mut self,
        opt: &Optimizer,
        index: usize,
        w: &mut [f32],
        decay: f32,
        parts: usize,
        part: impl Fn(usize) -> &'g [f32] + Sync,
    ) {
        self.tensor(index)
            .update_whole_summed_decayed(opt, w, decay, parts, part);
    }

    /// Tensor 0's state, and the other tensors' ([`OtherSlots`]): to
    /// update tensor 0 on some threads while another updates the rest
    /// (the trainer's split first layer, see `nn::split`).
    pub fn split_first(&mut self) -> (TensorSlots<'_>, OtherSlots<'_>) {
        let t = self.steps.max(1) as i32;
        let (s1, slot1) = self.slot1.split_first_mut().expect("optimizer: no tensor");
        let (s2, slot2) = self.slot2.split_first_mut().expect("optimizer: no tensor");
        (TensorSlots { t, s1, s2 }, OtherSlots { t, slot1, slot2 })
    }
}

/// The state of every tensor but tensor 0 ([`OptimizerState::split_first`]).
pub struct OtherSlots<'s> {
    t: i32,
    slot1: &'s mut [Vec<f32>],
    slot2: &'s mut [Vec<f32>],
}

impl OtherSlots<'_> {
    /// Every tensor's state at once, tensor 1 first, each as
    /// [`OptimizerState::tensor`] gives it (to cut them all into pieces,
    /// see [`crate::nn::pieces`]).
    pub fn tensors(&mut self) -> impl Iterator<Item = TensorSlots<'_>> {
        let t = self.t;
        self.slot1
            .iter_mut()
            .zip(self.slot2.iter_mut())
            .map(move |(s1, s2)| TensorSlots { t, s1, s2 })
    }
}

/// Panics with a clear message unless the parameters, their optimiser state
/// and every gradient part have the same length (and there is a part).
fn check_lengths<'g>(params: usize, state: usize, parts: usize, part: &impl Fn(usize) -> &'g [f32]) {
    assert!(parts >= 1, "optimizer: no gradient");
    assert_eq!(params, state, "optimizer: parameter and state lengths differ");
    for p in 0..parts {
        assert_eq!(
            params,
            part(p).len(),
            "optimizer: parameter and gradient lengths differ"
        );
    }
}

/// One tensor's optimiser state ([`OptimizerState::tensor`]), to update
/// the tensor in disjoint slices, from several threads: each slice's
/// update is element by element, so it has the bits of the whole
/// tensor's.
pub struct TensorSlots<'s> {
    t: i32,
    s1: &'s mut [f32],
    s2: &'s mut [f32],
}

impl OptimizerState {
    /// Tensor `index`'s state, for [`TensorSlots::update_summed_decayed`]
    /// on slices of it (after [`begin_step`](Self::begin_step)).
    pub fn tensor(&mut self, index: usize) -> TensorSlots<'_> {
        TensorSlots {
            t: self.steps.max(1) as i32,
            s1: &mut self.slot1[index],
            s2: &mut self.slot2[index],
        }
    }
}

impl<'s> TensorSlots<'s> {
    /// The state in consecutive slices of `len` elements (the last may be
    /// shorter), as a parallel iterator to zip with the parameters' slices.
    pub fn par_chunks(self, len: usize) -> impl IndexedParallelIterator<Item = TensorSlots<'s>> {
        let t = self.t;
        self.s1
            .par_chunks_mut(len)
            .zip(self.s2.par_chunks_mut(len))
            .map(move |(s1, s2)| TensorSlots { t, s1, s2 })
    }

    /// The state of the first `len` parameters this state covers, and of the rest.
    pub fn split_at(self, len: usize) -> (TensorSlots<'s>, TensorSlots<'s>) {
        let t = self.t;
        let (s1, s1_rest) = self.s1.split_at_mut(len);
        let (s2, s2_rest) = self.s2.split_at_mut(len);
        (
            TensorSlots { t, s1, s2 },
            TensorSlots {
                t,
                s1: s1_rest,
                s2: s2_rest,
            },
        )
    }

    /// [`OptimizerState::update_summed_decayed`] of the whole tensor this
    /// state is: a large one in chunks, on the pool's threads.
    pub fn update_whole_summed_decayed<'g>(
        self,
        opt: &Optimizer,
        w: &mut [f32],
        decay: f32,
        parts: usize,
        part: impl Fn(usize) -> &'g [f32] + Sync,
    ) {
        if w.len() < PARALLEL_UPDATE_MIN_PARAMS {
            return self.update_summed_decayed(opt, w, decay, parts, part);
        }
        check_lengths(w.len(), self.s1.len(), parts, &part);
        w.par_chunks_mut(UPDATE_CHUNK)
            .zip(self.par_chunks(UPDATE_CHUNK))
            .enumerate()
            .for_each(|(c, (w, slots))| {
                let range = c * UPDATE_CHUNK..c * UPDATE_CHUNK + w.len();
                slots.update_summed_decayed(opt, w, decay, parts, |p| &part(p)[range.clone()])
            });
    }

    /// [`OptimizerState::update_summed_decayed`] on the parameters this
    /// state covers: `w` and every `part(p)` are that slice of the tensor.
    pub fn update_summed_decayed<'g>(
        self,
        opt: &Optimizer,
        w: &mut [f32],
        decay: f32,
        parts: usize,
        part: impl Fn(usize) -> &'g [f32] + Sync,
    ) {
        check_lengths(w.len(), self.s1.len(), parts, &part);
        update_range(opt, self.t, w, self.s1, self.s2, decay, parts, &part);
    }
}

/// Gradient elements summed per pass: a stack buffer that stays in L1.
const SUM_CHUNK: usize = 256;

/// Updates `w` (a tensor, or a slice of one) with its optimiser state
/// `s1`, `s2` and the summed gradient parts `part(p)`, each as long as `w`
/// (plus `decay·w` when `decay != 0`).
#[allow(clippy::too_many_arguments)]
fn update_range<'g>(
    opt: &Optimizer,
    t: i32,
    w: &mut [f32],
    s1: &mut [f32],
    s2: &mut [f32],
    decay: f32,
    parts: usize,
    part: &(impl Fn(usize) -> &'g [f32] + Sync),
) {
    let mut g = [0.0f32; SUM_CHUNK];
    let step = StepConstants::new(opt, t);
    for (c, ((w, s1), s2)) in w
        .chunks_mut(SUM_CHUNK)
        .zip(s1.chunks_mut(SUM_CHUNK))
        .zip(s2.chunks_mut(SUM_CHUNK))
        .enumerate()
    {
        let range = c * SUM_CHUNK..c * SUM_CHUNK + w.len();
        if parts == 1 && decay == 0.0 {
            // one gradient as it is: nothing to sum or add, no copy
            update_chunk(opt, step, w, &part(0)[range], s1, s2);
            continue;
        }
        let g = &mut g[..w.len()];
        let first = &part(0)[range.clone()];
        if parts >= 2 {
            // the first two added as they are read (the shards of a 2-thread step)
            let second = &part(1)[range.clone()];
            for ((g, &a), &b) in g.iter_mut().zip(first).zip(second) {
                *g = a + b;
            }
        } else {
            g.copy_from_slice(first);
        }
        for p in 2..parts {
            g.iter_mut()
                .zip(&part(p)[range.clone()])
                .for_each(|(a, &b)| *a += b);
        }
        if decay != 0.0 {
            // L2 weight decay: the gradient of (decay/2)·Σw² is decay·w.
            g.iter_mut().zip(w.iter()).for_each(|(g, &w)| *g += decay * w);
        }
        update_chunk(opt, step, w, g, s1, s2);
    }
}

/// What a step's update computes once for all its chunks: Adam's bias
/// corrections, `c1 = 1 / (1 - beta1^t)` and `c2 = 1 / sqrt(1 - beta2^t)`
/// (1 for the other optimisers), and which of Adam's lanes may fade
/// ([`Fading`]). Computed per chunk of [`SUM_CHUNK`], the two `powi`
/// calls took 9.5% of Adam's update time under `perf` (Zen 5).
#[derive(Clone, Copy)]
struct StepConstants {
    c1: f32,
    c2: f32,
    /// Adam's fading first moments (see [`faded_exactly`]), unless the
    /// hyper-parameters leave no room for them.
    fading: Option<Fading>,
}

/// What Adam's update needs to take its fading lanes apart: a lane whose
/// gradient is ±0, whose first moment `m` is nonzero and below 2^-100,
/// and whose weight is at least `least_w`.
#[derive(Clone, Copy)]
struct Fading {
    /// `1 - β1`, as the update computes it in `f32`.
    k1: f64,
    /// Below it, the weight's own update might show in its bits.
    least_w: f32,
}

/// The bits of 2^-100: the first moments below it may fade.
const FADING_BITS: u32 = 0x0D80_0000;

impl StepConstants {
    fn new(opt: &Optimizer, t: i32) -> StepConstants {
        match *opt {
            Optimizer::Adam { beta1, beta2, .. } => {
                let c1 = 1.0 / (1.0 - beta1.powi(t));
                StepConstants {
                    c1,
                    c2: 1.0 / (1.0 - beta2.powi(t)).sqrt(),
                    fading: Fading::new(opt, c1),
                }
            }
            _ => StepConstants {
                c1: 1.0,
                c2: 1.0,
                fading: None,
            },
        }
    }
}

impl Fading {
    /// For Adam's step with bias correction `c1`; `None` for the other
    /// optimisers, and where β1 is outside [0, 1), ε is not positive, or
    /// the least weight would be out of range.
    fn new(opt: &Optimizer, c1: f32) -> Option<Fading> {
        let Optimizer::Adam { lr, beta1, eps, .. } = *opt else {
            return None;
        };
        // A fading lane's new `m` is no larger than the old, below 2^-100, and
        // the denominator is at least ε: its weight moves by at most
        // |lr|·c1·2^-100/ε (times 1 + 2^-22 for the roundings). A weight
        // 2^27 times that moves by under a quarter of its last place, so
        // its bits stay (2^-60 keeps it normal).
        let bound = f64::from(lr).abs() * f64::from(c1) * f64::from(f32::from_bits(FADING_BITS))
            / f64::from(eps)
            * f64::from(1u32 << 27);
        ((0.0..1.0).contains(&beta1) && eps > 0.0 && bound < 1e30).then(|| Fading {
            k1: f64::from(1.0 - beta1),
            least_w: bound.max(f64::from(2f32.powi(-60))) as f32,
        })
    }
}

/// The bits of a positive `f32` below 2^-125: under them every value is
/// its bits times 2^-149 (the subnormals, and the normals of the lowest
/// exponent, are 2^-149 apart).
const TINY_STATE_BITS: u32 = 0x0100_0000;

/// `ρ·s` as `f32` multiplication gives it (rounded to nearest, ties to
/// even), for `0 ≤ s < 2^-125` (`s.to_bits() < TINY_STATE_BITS`) and
/// `0 ≤ ρ < 1`, with no floating-point operation on a subnormal number.
///
/// Why: a gradient that is ±0 step after step lets RMSprop's state decay
/// through the subnormal range, and an Intel core multiplies a subnormal
/// through a microcode assist. On an Intel Xeon (Sapphire Rapids class,
/// AVX-512) 0.3% of the workshop network's updates met one, and they cost
/// 4% of its step; 784-512-512-10 meets them from its second epoch
/// (`docs/PERFORMANCE.md`, "An Intel Xeon, a seventh session").
///
/// How: `s = m·2^-149` with `m = s.to_bits() < 2^24`, so `ρ·s` is
/// `(ρ·m)·2^-149`, and the `f32` nearest it is the integer nearest `ρ·m`
/// (ties to even) times 2^-149, whose bits are that integer (it is below
/// 2^24 as `ρ < 1`). `ρ·m` is exact in `f64` (24 bits times 24 bits);
/// adding 2^52 rounds it to that integer, ties to even, and leaves the
/// integer in the sum's low bits. All of it vectorises with the loop.
#[inline(always)]
fn decayed_exactly(rho: f64, s: f32) -> f32 {
    f32::from_bits((rho * f64::from(s.to_bits()) + ROUND_TO_INTEGER).to_bits() as u32)
}

/// 2^52: added to an `f64` below 2^52, it rounds it to an integer (to
/// nearest, ties to even) and leaves that integer in the sum's low bits.
const ROUND_TO_INTEGER: f64 = 4_503_599_627_370_496.0;

/// 2^149 and 2^-149: an `f32` in units of its smallest subnormal, and back.
const UNITS: f64 = f64::from_bits((1023 + 149) << 52);
const FROM_UNITS: f64 = f64::from_bits((1023 - 149) << 52);

/// `x` (a count of 2^-149, `0 ≤ x < 2^53`) rounded as `f32` rounds: to
/// the nearest multiple of its spacing there (1 below 2^24, 2^(e-23) in
/// [2^e, 2^(e+1))), ties to even. Adding `max(2^(e+29), 2^52)` leaves
/// exactly that spacing as the sum's last place.
#[inline(always)]
fn round_to_f32_grid(x: f64) -> f64 {
    let power = f64::from_bits(x.to_bits() & 0x7ff0_0000_0000_0000); // 2^e (0 for 0)
    let magic = (power * f64::from(1u32 << 29)).max(ROUND_TO_INTEGER);
    (x + magic) - magic
}

/// Adam's `m + (g - m)·k` for a gradient `g` of ±0, as `f32` arithmetic
/// gives it, for `0 < |m| < 2^-100` and `0 < k ≤ 1` (`k` is `1 - β1`),
/// with no floating-point operation on a subnormal number.
///
/// Why: a gradient that stays ±0 lets `m` fade by `β1` a step, through
/// the range where `(g - m)·k` and the weight's step `lr·m·c1` are
/// subnormal; an Intel core takes a microcode assist for each. On an Intel
/// Xeon (Sapphire Rapids class) they cost LeNet-5 15% of its step
/// (`docs/PERFORMANCE.md`, "An Intel Xeon, a seventh session").
///
/// How: `g - m` is `-m` exactly; in units of 2^-149 (exact in `f64`,
/// taken from the bits below 2^-125), `(g - m)·k` rounds to
/// `-round(|m|·k)` (the product in `f64` and then to `f32`'s grid: a
/// double rounding that cannot differ from one, as 53 ≥ 2·24 + 2), and
/// the sum `|m| - round(|m|·k)` is exact in `f64`, then rounded to the
/// grid in turn. A sum of 0 is `+0`, as IEEE's `m + (-m)` is.
#[inline(always)]
fn faded_exactly(k: f64, m: f32) -> f32 {
    let magnitude = m.to_bits() & 0x7fff_ffff;
    let tiny = magnitude < TINY_STATE_BITS;
    // a normal magnitude converts to f64 directly; a tiny one is its bits (never converted)
    let normal = f32::from_bits(if tiny { 1.0f32.to_bits() } else { magnitude });
    let units = if tiny {
        f64::from(magnitude)
    } else {
        f64::from(normal) * UNITS
    };
    let step = round_to_f32_grid(units * k);
    let sum = round_to_f32_grid(units - step);
    // below 2^24 units the bits are the count; above, a normal f32 converts from f64 exactly
    let small = sum < f64::from(TINY_STATE_BITS);
    let small_bits = (sum + ROUND_TO_INTEGER).to_bits() as u32;
    let large = (if small { 1.0 } else { sum * FROM_UNITS }) as f32;
    let bits = if small { small_bits } else { large.to_bits() };
    f32::from_bits(if bits == 0 {
        0
    } else {
        bits | (m.to_bits() & 0x8000_0000)
    })
}

/// The update of one contiguous chunk; plain loops the compiler vectorises.
fn update_chunk(
    opt: &Optimizer,
    step: StepConstants,
    w: &mut [f32],
    g: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
) {
    match *opt {
        Optimizer::Sgd { lr, momentum: 0.0 } => {
            for (w, &g) in w.iter_mut().zip(g) {
                *w -= lr * g;
            }
        }
        Optimizer::Sgd { lr, momentum } => {
            for ((w, &g), v) in w.iter_mut().zip(g).zip(s1.iter_mut()) {
                *v = momentum * *v - lr * g;
                *w += *v;
            }
        }
        Optimizer::RmsProp { lr, rho, eps } => {
            // A lane whose gradient is ±0 and whose state is below 2^-125 ("decaying")
            // gives the loop 0 for its state and takes ρ·s from `decayed_exactly`:
            // the same bits, and no subnormal number meets a floating-point unit.
            let exact = (0.0..1.0).contains(&rho);
            let rho64 = f64::from(rho);
            for ((w, &g), s) in w.iter_mut().zip(g).zip(s1.iter_mut()) {
                let decaying = exact && g.to_bits() << 1 == 0 && s.to_bits() < TINY_STATE_BITS;
                let s_in = if decaying { 0.0 } else { *s };
                let s_new = rho * s_in + (1.0 - rho) * g * g;
                // with g = ±0 the quotient is ±0 whatever the state: w is unchanged either way
                *w -= lr * g / (s_new + eps).sqrt();
                *s = if decaying {
                    decayed_exactly(rho64, *s)
                } else {
                    s_new
                };
            }
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => {
            // m̂ = m·c1 and sqrt(v̂) = sqrt(v)·c2, with the bias corrections hoisted out of the loop.
            let StepConstants { c1, c2, fading } = step;
            let Some(Fading { k1, least_w }) = fading else {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(s1.iter_mut()).zip(s2.iter_mut()) {
                    *m += (g - *m) * (1.0 - beta1);
                    *v += (g * g - *v) * (1.0 - beta2);
                    *w -= lr * (*m * c1) / (v.sqrt() * c2 + eps);
                }
                return;
            };
            // `&`, not `&&`: no branch, so the loop stays vectorised
            let fading_lane = |w: f32, g: f32, m: f32| {
                (g.to_bits() << 1 == 0)
                    & ((m.to_bits() & 0x7fff_ffff).wrapping_sub(1) < FADING_BITS - 1)
                    & (w.abs() >= least_w)
            };
            // A fading lane gives the loop 0 for its `m`, keeps its `m`, and
            // gets it from `faded_exactly` after: the same bits, no subnormal
            // in the floating-point unit. Its `w` stays (g = ±0 and
            // |w| ≥ least_w: the true step is under a quarter of w's last place).
            let mut marks = [0u8; SUM_CHUNK];
            for (((w, g), m), v) in w
                .chunks_mut(SUM_CHUNK)
                .zip(g.chunks(SUM_CHUNK))
                .zip(s1.chunks_mut(SUM_CHUNK))
                .zip(s2.chunks_mut(SUM_CHUNK))
            {
                let mut any = 0u8;
                for ((((w, &g), m), v), mark) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v).zip(&mut marks)
                {
                    let fading = fading_lane(*w, g, *m);
                    *mark = u8::from(fading);
                    any |= *mark;
                    let m_in = if fading { 0.0 } else { *m };
                    let m_new = m_in + (g - m_in) * (1.0 - beta1);
                    *v += (g * g - *v) * (1.0 - beta2);
                    *w -= lr * (m_new * c1) / (v.sqrt() * c2 + eps);
                    *m = if fading { *m } else { m_new };
                }
                if any != 0 {
                    for (m, &mark) in m.iter_mut().zip(&marks) {
                        if mark != 0 {
                            *m = faded_exactly(k1, *m);
                        }
                    }
                }
            }
        }
    }
}

/// What checkpoints need: the state's buffers out, and back in.
impl OptimizerState {
    /// The per-tensor buffers: `(slot1, slot2)` (see the field docs).
    pub fn slots(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.slot1, &self.slot2)
    }

    /// A state from saved buffers and step count; an error unless both
    /// slots have one buffer per tensor of the given sizes.
    pub fn from_parts(
        sizes: &[usize],
        slot1: Vec<Vec<f32>>,
        slot2: Vec<Vec<f32>>,
        steps: u64,
    ) -> Result<OptimizerState, String> {
        let fits = |slot: &[Vec<f32>]| {
            slot.len() == sizes.len() && slot.iter().zip(sizes).all(|(s, &n)| s.len() == n)
        };
        if !fits(&slot1) || !fits(&slot2) {
            return Err(format!(
                "the optimiser state has tensors of {:?} values but the network's parameters are {sizes:?}",
                slot1.iter().map(Vec::len).collect::<Vec<_>>()
            ));
        }
        Ok(OptimizerState { slot1, slot2, steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One gradient with no decay is read where it is; the same gradient
    /// cut into two or three parts goes through the buffer that sums them
    /// (the first two added as they are read, a third after). The parts are
    /// multiples of 1/64, so their sums are exact: all give the same bits,
    /// for every optimiser, over several steps and a length that ends in a
    /// partial chunk.
    #[test]
    fn one_gradient_read_in_place_gives_the_summed_bits() {
        let n = 3 * SUM_CHUNK + 37;
        let grad = |step: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 + step * 11) % 101) as f32 / 64.0 - 0.75)
                .collect()
        };
        let (quarter, eighth) = (vec![0.25f32; n], vec![0.125f32; n]);
        for opt in [
            Optimizer::sgd(0.01),
            Optimizer::momentum(0.01, 0.9),
            Optimizer::rmsprop(0.001),
            Optimizer::adam(0.001),
        ] {
            let w0: Vec<f32> = (0..n).map(|i| (i % 17) as f32 * 0.05 + 0.01).collect();
            let mut w = [w0.clone(), w0.clone(), w0];
            let mut states: Vec<OptimizerState> = (0..3).map(|_| OptimizerState::new(&[n])).collect();
            for step in 0..4 {
                let g = grad(step);
                let rest: Vec<f32> = g.iter().map(|x| x - 0.25).collect();
                let cuts: [Vec<&[f32]>; 3] = [vec![&g], vec![&rest, &quarter], vec![&rest, &eighth, &eighth]];
                for ((w, state), parts) in w.iter_mut().zip(&mut states).zip(&cuts) {
                    state.begin_step();
                    state.update_summed(&opt, 0, w, parts.len(), |p| parts[p]);
                }
                let bits = |w: &[f32]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&w[0]), bits(&w[1]), "{opt}, step {step}: two parts");
                assert_eq!(bits(&w[0]), bits(&w[2]), "{opt}, step {step}: three parts");
            }
        }
    }

    /// RMSprop's update against its formula computed plainly, bit for bit
    /// in the weights and the states: every 97th state below 2^-125 and
    /// the edges around it (and a few negative ones, which no run makes but
    /// a checkpoint could hold), with gradients of `+0`, `-0`, tiny and
    /// ordinary, for values of ρ in [0, 1) and outside it (where no lane is
    /// taken apart: 1.5 would carry `ρ·m` past 2^24).
    #[test]
    fn rmsprop_decaying_states_give_the_bits_of_the_plain_formula() {
        let edges = [
            0u32, 1, 2, 3, 0x7F_FFFF, 0x80_0000, 0x80_0001, 0xFF_FFFF, 0x100_0000, 0x100_0001,
        ];
        let negative = [0x8000_0001u32, 0x8080_0000];
        let bits: Vec<u32> = (0..TINY_STATE_BITS)
            .step_by(97)
            .chain(edges)
            .chain(negative)
            .collect();
        let n = bits.len();
        let gradients = [0.0f32, -0.0, 3e-20, -2.5e-3, 0.5, 1e-40, 0.0, 0.0];
        let weights = [0.25f32, -0.0, 0.0, -1.5e-3, 1e-39, 7.0];
        let g: Vec<f32> = (0..n).map(|i| gradients[i % gradients.len()]).collect();
        let w0: Vec<f32> = (0..n).map(|i| weights[i % weights.len()]).collect();
        let s0: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let decaying = (0..n)
            .filter(|&i| g[i].to_bits() << 1 == 0 && s0[i].to_bits() < TINY_STATE_BITS)
            .count();
        assert!(decaying > 80_000, "only {decaying} decaying lanes");
        let (lr, eps) = (1e-3f32, 1e-7f32);
        for rho in [
            0.9f32,
            0.99,
            0.999,
            0.5,
            0.1,
            0.0,
            1.0 - f32::EPSILON / 2.0,
            1.0,
            1.5,
            -0.5,
        ] {
            let opt = Optimizer::RmsProp { lr, rho, eps };
            let (mut w, mut s) = (w0.clone(), s0.clone());
            update_chunk(&opt, StepConstants::new(&opt, 1), &mut w, &g, &mut s, &mut []);
            let mut subnormal_results = 0;
            for i in 0..n {
                let s_plain = rho * s0[i] + (1.0 - rho) * g[i] * g[i];
                let w_plain = w0[i] - lr * g[i] / (s_plain + eps).sqrt();
                assert_eq!(
                    (w[i].to_bits(), s[i].to_bits()),
                    (w_plain.to_bits(), s_plain.to_bits()),
                    "ρ {rho}, state bits {:#x}, gradient {:e}, weight {:e}",
                    bits[i],
                    g[i],
                    w0[i]
                );
                subnormal_results += usize::from(s[i].is_subnormal());
            }
            if (0.1..1.0).contains(&rho) {
                assert!(
                    subnormal_results > 10_000,
                    "ρ {rho}: {subnormal_results} subnormal states"
                );
            }
        }
    }

    /// A small xorshift generator: the tests below need many values, not a seed's API.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// [`faded_exactly`] against the hardware's `m + (g - m)·(1 - β1)`
    /// with `g` = ±0, bit for bit: every 257th pattern of the first 2^16
    /// (the subnormals' low end) and random ones up to 2^-100, either
    /// sign, for eight values of β1 (0 and the largest below 1 among them).
    #[test]
    fn faded_moments_are_the_hardware_bits() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for beta1 in [
            0.9f32,
            0.0,
            0.5,
            0.99,
            0.999,
            0.3,
            1.0 - f32::EPSILON / 2.0,
            0.123_456_7,
        ] {
            let k1 = 1.0 - beta1;
            for i in 0..200_000u32 {
                let r = next();
                let magnitude = if i < 1 << 16 {
                    i * 257 % FADING_BITS
                } else {
                    r as u32 % FADING_BITS
                };
                let m = f32::from_bits(magnitude | (r >> 32) as u32 & 0x8000_0000);
                for g in [0.0f32, -0.0] {
                    let hardware = m + (g - m) * k1;
                    assert_eq!(
                        faded_exactly(f64::from(k1), m).to_bits(),
                        hardware.to_bits(),
                        "β1 {beta1}, m {m:e} (bits {:#x}), g {g}",
                        m.to_bits()
                    );
                }
            }
        }
    }

    /// Adam's update against its formula computed plainly, bit for bit in
    /// the weights and both moments, on lanes built to meet every case:
    /// gradients mostly ±0 (also tiny, subnormal and ordinary), first
    /// moments below 2^-100 (the fading ones), just above it (they fall
    /// below it in this very update), ordinary and ±0, second moments from
    /// 0 to ordinary, and weights from 0 and 2^-60 to 1e30. Hyper-parameters
    /// and step counts that make the least fading weight large or small,
    /// and ones that leave no room for fading lanes (β1 = 1, ε = 0).
    #[test]
    fn adam_fading_moments_give_the_bits_of_the_plain_formula() {
        let n = 3 * SUM_CHUNK * 40 + 17;
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let pick = |r: u64, from: &[f32]| from[(r % from.len() as u64) as usize];
        let (mut g, mut m0, mut v0, mut w0) =
            (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        for i in 0..n {
            let (a, b, c, d) = (next(), next(), next(), next());
            g[i] = if a % 10 < 7 {
                pick(a >> 8, &[0.0, -0.0])
            } else {
                pick(a >> 8, &[3e-20, -1e-40, 0.25, -2e-3])
            };
            let magnitude = match b % 4 {
                0 | 1 => (b >> 8) as u32 % FADING_BITS,
                2 => FADING_BITS + (b >> 8) as u32 % 0x10_0000,
                _ => pick(b >> 8, &[1e-3, 0.0, 2e-5]).to_bits(),
            };
            m0[i] = f32::from_bits(magnitude | (b >> 40) as u32 & 0x8000_0000);
            v0[i] = pick(c, &[0.0, 1e-10, 1e-3, 1e-40, 2f32.powi(-120), 0.5]);
            w0[i] = pick(
                d,
                &[
                    0.3,
                    -0.02,
                    0.0,
                    -0.0,
                    1e-20,
                    -2f32.powi(-60),
                    1e-38,
                    1e30,
                    -4.5e-12,
                ],
            );
        }
        let cases = [
            (1e-3f32, 0.9f32, 0.999f32, 1e-7f32, [1, 7, 3000]),
            (0.5, 0.9, 0.999, 1e-7, [1, 2, 50]),
            (-1e-3, 0.99, 0.9, 1e-3, [1, 10, 100]),
            (1e-3, 0.0, 0.999, 1e-30, [1, 3, 9]),
            (1e-9, 1.0 - f32::EPSILON / 2.0, 0.999, 1e-7, [1, 2, 3]),
            (1e-3, 1.0, 0.999, 1e-7, [1, 2, 3]),
            (1e-3, 0.9, 0.999, 0.0, [1, 2, 3]),
        ];
        for (lr, beta1, beta2, eps, steps) in cases {
            let opt = Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            };
            for t in steps {
                let step = StepConstants::new(&opt, t);
                let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
                update_chunk(&opt, step, &mut w, &g, &mut m, &mut v);
                let StepConstants { c1, c2, fading } = step;
                let mut faded = 0;
                for i in 0..n {
                    let m_plain = m0[i] + (g[i] - m0[i]) * (1.0 - beta1);
                    let v_plain = v0[i] + (g[i] * g[i] - v0[i]) * (1.0 - beta2);
                    let w_plain = w0[i] - lr * (m_plain * c1) / (v_plain.sqrt() * c2 + eps);
                    assert_eq!(
                        (w[i].to_bits(), m[i].to_bits(), v[i].to_bits()),
                        (w_plain.to_bits(), m_plain.to_bits(), v_plain.to_bits()),
                        "lr {lr}, β1 {beta1}, ε {eps}, step {t}: w {:e}, g {:e}, m {:e}, v {:e}",
                        w0[i],
                        g[i],
                        m0[i],
                        v0[i]
                    );
                    faded += usize::from(
                        fading.is_some_and(|f| w0[i].abs() >= f.least_w)
                            && g[i] == 0.0
                            && m0[i] != 0.0
                            && m0[i].abs() < f32::from_bits(FADING_BITS),
                    );
                }
                match (beta1, eps) {
                    (1.0, _) | (_, 0.0) => assert!(fading.is_none(), "β1 {beta1}, ε {eps}: no fading lanes"),
                    (_, 1e-30) => assert!(faded < n / 10, "ε {eps}: least w {:?}", fading.map(|f| f.least_w)),
                    _ => assert!(
                        faded > n / 8,
                        "lr {lr}, β1 {beta1}, step {t}: only {faded} fading lanes"
                    ),
                }
            }
        }
    }

    /// Tensor 0 through [`OptimizerState::split_first`]'s first half in
    /// two slices, and tensors 1 and 2 through its [`OtherSlots`] (the
    /// last large enough to be updated in chunks on the pool): the bits of
    /// each tensor updated through the whole state (and every tensor
    /// updated), for every optimiser over several steps.
    #[test]
    fn split_state_updates_each_tensor_as_the_whole_state_does() {
        let sizes = [40, 7, PARALLEL_UPDATE_MIN_PARAMS + 5];
        let grad = |t: usize, step: usize| -> Vec<f32> {
            (0..sizes[t])
                .map(|i| ((i * 31 + step * 7 + t) % 97) as f32 / 50.0 - 0.9)
                .collect()
        };
        for opt in [
            Optimizer::sgd(0.01),
            Optimizer::momentum(0.01, 0.9),
            Optimizer::rmsprop(0.001),
            Optimizer::adam(0.001),
        ] {
            let w0: Vec<Vec<f32>> = sizes
                .iter()
                .map(|&n| (0..n).map(|i| (i % 13) as f32 * 0.1 - 0.5).collect())
                .collect();
            let (mut whole, mut split) = (w0.clone(), w0.clone());
            let (mut whole_state, mut split_state) =
                (OptimizerState::new(&sizes), OptimizerState::new(&sizes));
            for step in 0..3 {
                let g: Vec<Vec<f32>> = (0..sizes.len()).map(|t| grad(t, step)).collect();
                whole_state.begin_step();
                for (t, w) in whole.iter_mut().enumerate() {
                    whole_state.update_summed_decayed(&opt, t, w, 0.01, 1, |_| &g[t]);
                }
                split_state.begin_step();
                let (first, mut others) = split_state.split_first();
                let (a, b) = first.split_at(25);
                let (w_a, w_b) = split[0].split_at_mut(25);
                a.update_summed_decayed(&opt, w_a, 0.01, 1, |_| &g[0][..25]);
                b.update_summed_decayed(&opt, w_b, 0.01, 1, |_| &g[0][25..]);
                for ((t, w), slots) in split.iter_mut().enumerate().skip(1).zip(others.tensors()) {
                    slots.update_whole_summed_decayed(&opt, w, 0.01, 1, |_| &g[t]);
                }
                let bits = |w: &[f32]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                for t in 0..sizes.len() {
                    assert_eq!(bits(&whole[t]), bits(&split[t]), "{opt}, step {step}, tensor {t}");
                }
                for t in 0..sizes.len() {
                    assert_ne!(
                        bits(&split[t]),
                        bits(&w0[t]),
                        "{opt}, step {step}: tensor {t} not updated"
                    );
                }
            }
        }
    }
}
