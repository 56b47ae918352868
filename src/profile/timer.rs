//! Kernel timers for `simdnet train --profile`.
//!
//! The training code wraps each piece of work in a [`scope`]. When profiling
//! is off (the default) a scope is one relaxed atomic load and nothing else.
//! When on, each scope adds its wall time, a call, and the FLOPs and bytes it
//! declares to global counters (one slot per kind of work and layer). Scopes
//! run on every worker thread, so totals are *thread* time: the report
//! compares them with `wall time x threads` to show the time spent waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The kinds of work in a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `a = f(x·W + b)`: the forward GEMM with its fused bias and activation.
    ForwardGemm,
    /// Softmax and cross-entropy, giving the loss and `dz = p - y`.
    SoftmaxCe,
    /// `dW = xᵀ·dz`.
    BackwardGemmDw,
    /// `dx = dz·Wᵀ`.
    BackwardGemmDx,
    /// `dz = da ⊙ f'(a)` fused with the bias gradient (and the output layer's bias gradient).
    ActivationBackward,
    /// Adding the shards' gradients in shard order.
    GradientSum,
    /// The optimiser's update of weights and biases.
    Optimizer,
    /// Gathering a shuffled mini-batch into a contiguous buffer.
    Batching,
    /// Shuffling the example order at the start of an epoch.
    Shuffle,
    /// Evaluating on the validation set after an epoch.
    Evaluation,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 10] = [
        Kind::ForwardGemm,
        Kind::SoftmaxCe,
        Kind::BackwardGemmDw,
        Kind::BackwardGemmDx,
        Kind::ActivationBackward,
        Kind::GradientSum,
        Kind::Optimizer,
        Kind::Batching,
        Kind::Shuffle,
        Kind::Evaluation,
    ];

    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ForwardGemm => "forward GEMM + bias + act",
            Kind::SoftmaxCe => "softmax + cross-entropy",
            Kind::BackwardGemmDw => "backward GEMM dW = xT.dz",
            Kind::BackwardGemmDx => "backward GEMM dx = dz.WT",
            Kind::ActivationBackward => "act backward + bias grad",
            Kind::GradientSum => "sum shard gradients",
            Kind::Optimizer => "optimizer update",
            Kind::Batching => "gather mini-batch",
            Kind::Shuffle => "shuffle",
            Kind::Evaluation => "validation",
        }
    }

    /// Whether this kind is reported per layer.
    pub fn per_layer(self) -> bool {
        matches!(
            self,
            Kind::ForwardGemm | Kind::BackwardGemmDw | Kind::BackwardGemmDx | Kind::ActivationBackward
        )
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|&k| k == self).expect("listed")
    }
}

/// Layers tracked separately; deeper layers share the last slot.
pub const MAX_LAYERS: usize = 16;
const SLOTS: usize = Kind::ALL.len() * MAX_LAYERS;

struct Counters {
    calls: [AtomicU64; SLOTS],
    nanos: [AtomicU64; SLOTS],
    flops: [AtomicU64; SLOTS],
    bytes: [AtomicU64; SLOTS],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNTERS: Counters = Counters {
    calls: [ZERO; SLOTS],
    nanos: [ZERO; SLOTS],
    flops: [ZERO; SLOTS],
    bytes: [ZERO; SLOTS],
};

/// Turns profiling on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether profiling is on.
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Zeroes every counter.
pub fn reset() {
    for i in 0..SLOTS {
        COUNTERS.calls[i].store(0, Relaxed);
        COUNTERS.nanos[i].store(0, Relaxed);
        COUNTERS.flops[i].store(0, Relaxed);
        COUNTERS.bytes[i].store(0, Relaxed);
    }
}

/// A running timer; records when dropped (only if profiling was on when it started).
#[must_use = "a scope measures until it is dropped"]
pub struct Scope {
    start: Option<Instant>,
    slot: usize,
    flops: u64,
    bytes: u64,
}

/// Starts timing `kind` of `layer` (use layer 0 for kinds that are not per layer).
#[inline(always)]
pub fn scope(kind: Kind, layer: usize) -> Scope {
    scope_when(true, kind, layer)
}

/// Like [`scope`], but only times when `on` is also true (e.g. training, not evaluation).
#[inline(always)]
pub fn scope_when(on: bool, kind: Kind, layer: usize) -> Scope {
    let start = if on && enabled() {
        Some(Instant::now())
    } else {
        None
    };
    Scope {
        start,
        slot: kind.index() * MAX_LAYERS + layer.min(MAX_LAYERS - 1),
        flops: 0,
        bytes: 0,
    }
}

impl Scope {
    /// Declares the floating-point operations this work does (for GFLOP/s).
    #[inline(always)]
    pub fn flops(mut self, flops: usize) -> Scope {
        self.flops = flops as u64;
        self
    }
    /// Declares the bytes this work reads and writes (for GB/s).
    #[inline(always)]
    pub fn bytes(mut self, bytes: usize) -> Scope {
        self.bytes = bytes as u64;
        self
    }
}

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let ns = start.elapsed().as_nanos() as u64;
            COUNTERS.calls[self.slot].fetch_add(1, Relaxed);
            COUNTERS.nanos[self.slot].fetch_add(ns, Relaxed);
            COUNTERS.flops[self.slot].fetch_add(self.flops, Relaxed);
            COUNTERS.bytes[self.slot].fetch_add(self.bytes, Relaxed);
        }
    }
}

/// What one slot accumulated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub kind: Kind,
    /// The layer (0 for kinds that are not per layer).
    pub layer: usize,
    pub calls: u64,
    /// Summed thread time.
    pub seconds: f64,
    pub flops: u64,
    pub bytes: u64,
}

/// Every slot that was used, in report order.
pub fn snapshot() -> Vec<Record> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for layer in 0..MAX_LAYERS {
            let i = kind.index() * MAX_LAYERS + layer;
            let calls = COUNTERS.calls[i].load(Relaxed);
            if calls > 0 {
                out.push(Record {
                    kind,
                    layer,
                    calls,
                    seconds: COUNTERS.nanos[i].load(Relaxed) as f64 * 1e-9,
                    flops: COUNTERS.flops[i].load(Relaxed),
                    bytes: COUNTERS.bytes[i].load(Relaxed),
                });
            }
        }
    }
    out
}
