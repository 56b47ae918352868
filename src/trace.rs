//! Kernel timers for `simdnet train --profile`: the few hooks the engine
//! needs, at the bottom floor (no reporting or formatting here: that is
//! `profile::report`).
//!
//! Two ways to open a timer:
//! - the trainer wraps its own pieces of work (gathering a batch, the
//!   optimiser, validation) in a [`scope`] with their kind;
//! - the engine's kernels ([`crate::gemm::gemm`], the fused kernels) open a
//!   [`kernel`] scope themselves, which records only on a thread that is
//!   inside a training pass ([`training`]), under the layer the network's
//!   loop last named ([`layer`]). So the maths of a layer carries no timer
//!   lines, and evaluation or `bench` calls to the same kernels are not
//!   counted as training.
//!
//! When profiling
//! is off (the default) a scope is one relaxed atomic load and nothing else.
//! When on, each scope adds its wall time, a call, and the FLOPs and bytes it
//! declares to global counters (one slot per kind of work and layer). Scopes
//! run on every worker thread, so totals are *thread* time: the report
//! compares them with `wall time x threads` to show the time spent waiting.
//!
//! For a wall-time view, while profiling is on every scope also takes part in
//! a *coverage* count (under one lock): each instant of wall time during which
//! `k >= 1` scopes are open (on any threads) is split evenly among them, so
//! the per-kind wall shares add up to the wall time covered by at least one
//! timer, and the time with `k` scopes open is kept per `k` (see [`coverage`]).
//! A scope's thread time starts after it leaves that lock and ends before it
//! takes it again: on two threads a small kernel's timer could otherwise
//! wait for the other thread's timers and count the wait as its own (the
//! layer-0 activation backward of the workshop network, 64 x 16 a shard:
//! 3.33x its 1-thread time with the wait counted, 2.60x without; Zen 4,
//! AVX-512, 16 lanes, three alternated pairs of `train --epochs 4
//! --profile`).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// The kinds of work in a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A shard's examples read once from the data set, converted to `f32`
    /// and scaled (`u8` pixels · 1/255), for both of the first layer's GEMMs.
    InputConvert,
    /// The rows of the next steps' examples (scattered over the data set)
    /// hinted into this core's L2 ([`crate::simd::prefetch_l2`]): the
    /// thread waits while the memory system takes the requests, so this is
    /// what fetching the data set from RAM costs the step (bytes: the cache
    /// lines hinted).
    Prefetch,
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
    /// Adding the shards' gradients (in shard order) and the optimiser's update
    /// of weights and biases, fused in one pass.
    Optimizer,
    /// Shuffling the example order at the start of an epoch.
    Shuffle,
    /// Evaluating on the validation set after an epoch.
    Evaluation,
    /// A convolution's forward GEMM `z = im2col(x)·W` with its fused bias and
    /// activation (the GEMM [`Kind::ForwardGemm`] run inside [`convolution`]).
    ConvForward,
    /// A convolution's filter gradient `dW = im2col(x)ᵀ·dz`.
    ConvBackwardDw,
    /// A convolution's input gradient: the full convolution `im2col_full(dz)·W_flipped`,
    /// or the columns `dz·Wᵀ` before their fold (see [`Kind::Col2im`]).
    ConvBackwardDx,
    /// Folding a convolution's input-gradient columns back into images (col2im).
    Col2im,
    /// 2x2 max-pooling forward: each tile's maximum and where it was.
    PoolForward,
    /// 2x2 max-pooling backward: each gradient routed to its tile's maximum.
    PoolBackward,
    /// Flatten, forward and backward (a copy of each row, with the dropout mask).
    Flatten,
    /// The fork/join of a mini-batch's shards. A *container*: it is open on the
    /// calling thread for the whole parallel section and is attributed only the
    /// wall time during which no other timer is open on any thread (scheduling,
    /// waking workers, waiting for the last shard to start).
    ParallelShards,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 18] = [
        Kind::InputConvert,
        Kind::Prefetch,
        Kind::ForwardGemm,
        Kind::ConvForward,
        Kind::PoolForward,
        Kind::Flatten,
        Kind::SoftmaxCe,
        Kind::BackwardGemmDw,
        Kind::ConvBackwardDw,
        Kind::BackwardGemmDx,
        Kind::ConvBackwardDx,
        Kind::Col2im,
        Kind::PoolBackward,
        Kind::ActivationBackward,
        Kind::Optimizer,
        Kind::Shuffle,
        Kind::Evaluation,
        Kind::ParallelShards,
    ];

    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::InputConvert => "examples u8 -> f32, scaled",
            Kind::Prefetch => "prefetch next examples",
            Kind::ForwardGemm => "forward GEMM + bias + act",
            Kind::SoftmaxCe => "softmax + cross-entropy",
            Kind::BackwardGemmDw => "backward GEMM dW = xT.dz",
            Kind::BackwardGemmDx => "backward GEMM dx = dz.WT",
            Kind::ActivationBackward => "act backward + bias grad",
            Kind::Optimizer => "sum grads + optimizer",
            Kind::Shuffle => "shuffle",
            Kind::Evaluation => "validation",
            Kind::ParallelShards => "shards fork/join, no kernel",
            Kind::ConvForward => "conv fwd im2col.W+bias+act",
            Kind::ConvBackwardDw => "conv dW = im2col(x)T.dz",
            Kind::ConvBackwardDx => "conv dx GEMM (dz with W)",
            Kind::Col2im => "conv dx fold (col2im)",
            Kind::PoolForward => "max-pool forward (argmax)",
            Kind::PoolBackward => "max-pool backward (route)",
            Kind::Flatten => "flatten copy (fwd + bwd)",
        }
    }

    /// Whether this kind only occurs in convolutional networks: the report
    /// leaves out its row when it recorded nothing (a dense network's table
    /// is unchanged).
    pub fn image_only(self) -> bool {
        matches!(
            self,
            Kind::ConvForward
                | Kind::ConvBackwardDw
                | Kind::ConvBackwardDx
                | Kind::Col2im
                | Kind::PoolForward
                | Kind::PoolBackward
                | Kind::Flatten
        )
    }

    /// Whether this kind is a matrix product (its FLOPs count towards the compute limit).
    pub fn is_gemm(self) -> bool {
        matches!(
            self,
            Kind::ForwardGemm
                | Kind::BackwardGemmDw
                | Kind::BackwardGemmDx
                | Kind::ConvForward
                | Kind::ConvBackwardDw
                | Kind::ConvBackwardDx
        )
    }

    /// The kind a GEMM of this kind is filed under inside a convolution ([`convolution`]).
    fn in_convolution(self) -> Kind {
        match self {
            Kind::ForwardGemm => Kind::ConvForward,
            Kind::BackwardGemmDw => Kind::ConvBackwardDw,
            Kind::BackwardGemmDx => Kind::ConvBackwardDx,
            other => other,
        }
    }

    /// Whether this kind contains other timers (see [`Kind::ParallelShards`]):
    /// its thread time is not work, and it gets wall time only when nothing else runs.
    pub fn is_container(self) -> bool {
        self == Kind::ParallelShards
    }

    /// Whether this kind is reported per layer.
    pub fn per_layer(self) -> bool {
        matches!(
            self,
            Kind::ForwardGemm | Kind::BackwardGemmDw | Kind::BackwardGemmDx | Kind::ActivationBackward
        ) || self.image_only()
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
/// Floating-point operations skipped by products that skip zeros
/// ([`Scope::set_flops_skipping`]), since the last [`reset`].
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// The floating-point operations the products skipped (multiplications by
/// zero that a dense product would have done) since the last [`reset`].
pub fn skipped_flops() -> u64 {
    SKIPPED.load(Relaxed)
}
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

/// Levels of concurrency tracked separately by [`coverage`]; more share the last.
pub const MAX_LEVEL: usize = 8;

/// The wall-time coverage state: which scopes are open and since when.
struct Cover {
    /// When the open set last changed.
    last: Option<Instant>,
    /// The slots of the open scopes (a multiset).
    open: Vec<usize>,
    /// Wall nanoseconds attributed to each slot (split evenly among the open scopes).
    wall: [f64; SLOTS],
    /// Wall nanoseconds with exactly `k` work scopes open, `k = 1..=MAX_LEVEL` (index `k - 1`).
    level: [f64; MAX_LEVEL],
    /// Wall nanoseconds with only container scopes open.
    container_only: f64,
}

fn is_container_slot(slot: usize) -> bool {
    Kind::ALL[slot / MAX_LAYERS].is_container()
}

static COVER: Mutex<Cover> = Mutex::new(Cover {
    last: None,
    open: Vec::new(),
    wall: [0.0; SLOTS],
    level: [0.0; MAX_LEVEL],
    container_only: 0.0,
});

fn cover() -> MutexGuard<'static, Cover> {
    COVER.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cover {
    /// Attributes the time since the last change to the open scopes; returns now.
    ///
    /// Work scopes share each instant evenly; container scopes get the instant
    /// only when no work scope is open.
    fn advance(&mut self) -> Instant {
        let now = Instant::now();
        if let (Some(last), false) = (self.last, self.open.is_empty()) {
            let dt = now.duration_since(last).as_nanos() as f64;
            let k = self.open.iter().filter(|&&s| !is_container_slot(s)).count();
            if k > 0 {
                for &s in self.open.iter().filter(|&&s| !is_container_slot(s)) {
                    self.wall[s] += dt / k as f64;
                }
                self.level[k.min(MAX_LEVEL) - 1] += dt;
            } else {
                let c = self.open.iter().filter(|&&s| is_container_slot(s)).count();
                for &s in &self.open {
                    self.wall[s] += dt / c as f64;
                }
                self.container_only += dt;
            }
        }
        self.last = Some(now);
        now
    }
}

/// Zeroes every counter.
pub fn reset() {
    let mut c = cover();
    c.last = None;
    c.open.clear();
    c.wall = [0.0; SLOTS];
    c.level = [0.0; MAX_LEVEL];
    c.container_only = 0.0;
    drop(c);
    SKIPPED.store(0, Relaxed);
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
    /// Floating-point operations a product skipped (multiplications by zero).
    skipped: u64,
}

/// Starts timing `kind` of `layer` (use layer 0 for kinds that are not per layer).
#[inline(always)]
pub fn scope(kind: Kind, layer: usize) -> Scope {
    let slot = kind.index() * MAX_LAYERS + layer.min(MAX_LAYERS - 1);
    // The thread time starts once the coverage lock is released (and ends,
    // in `drop`, before it is taken again): waiting for that lock, which the
    // other threads' timers take too, is not the timed work's.
    let start = if enabled() {
        open(slot);
        Some(Instant::now())
    } else {
        None
    };
    Scope {
        start,
        slot,
        flops: 0,
        bytes: 0,
        skipped: 0,
    }
}

thread_local! {
    /// Whether this thread is inside a training pass (see [`training`]).
    static TRAINING: Cell<bool> = const { Cell::new(false) };
    /// The layer this thread's kernels work for (see [`layer`]).
    static LAYER: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread runs a convolution's products (see [`convolution`]).
    static CONV: Cell<bool> = const { Cell::new(false) };
}

/// While alive, files this thread's GEMM timers ([`Kind::ForwardGemm`],
/// [`Kind::BackwardGemmDw`], [`Kind::BackwardGemmDx`]) under the
/// convolution kinds ([`Kind::ConvForward`], ...): a convolution layer opens
/// it around its passes, so the GEMM needs no idea of what it multiplies.
#[must_use = "the convolution lasts until the guard is dropped"]
pub struct Convolution {
    was: bool,
}

impl Drop for Convolution {
    #[inline(always)]
    fn drop(&mut self) {
        CONV.with(|c| c.set(self.was));
    }
}

/// Marks this thread's products as a convolution's until the guard drops.
#[inline]
pub fn convolution() -> Convolution {
    Convolution {
        was: CONV.with(|c| c.replace(true)),
    }
}

/// While alive, marks the current thread's work as part of a training pass
/// (restores the previous state when dropped).
#[must_use = "the context lasts until the guard is dropped"]
pub struct Context {
    training: bool,
    layer: usize,
}

impl Drop for Context {
    #[inline(always)]
    fn drop(&mut self) {
        TRAINING.with(|t| t.set(self.training));
        LAYER.with(|l| l.set(self.layer));
    }
}

fn context(training: Option<bool>, layer: Option<usize>) -> Context {
    let old = Context {
        training: TRAINING.with(|t| t.get()),
        layer: LAYER.with(|l| l.get()),
    };
    if let Some(on) = training {
        TRAINING.with(|t| t.set(on));
    }
    if let Some(l) = layer {
        LAYER.with(|c| c.set(l));
    }
    old
}

/// Marks this thread as running a training pass until the guard drops: the
/// [`kernel`] scopes opened meanwhile are recorded.
#[inline]
pub fn training() -> Context {
    context(Some(true), None)
}

/// Names the layer whose work this thread runs until the guard drops.
#[inline]
pub fn layer(l: usize) -> Context {
    context(None, Some(l))
}

/// A timer for one call of an engine kernel: records only while profiling is
/// on and this thread is inside [`training`], under the current [`layer`].
#[inline(always)]
pub fn kernel(kind: Kind) -> Scope {
    if !enabled() || !TRAINING.with(|t| t.get()) {
        return Scope {
            start: None,
            slot: 0,
            flops: 0,
            bytes: 0,
            skipped: 0,
        };
    }
    let kind = if CONV.with(|c| c.get()) {
        kind.in_convolution()
    } else {
        kind
    };
    scope(kind, LAYER.with(|l| l.get()))
}

/// Registers an open scope for the coverage count.
#[cold]
#[inline(never)]
fn open(slot: usize) {
    let mut c = cover();
    c.advance();
    c.open.push(slot);
}

/// Unregisters a scope.
#[cold]
#[inline(never)]
fn close(slot: usize) {
    let mut c = cover();
    c.advance();
    if let Some(i) = c.open.iter().position(|&s| s == slot) {
        c.open.swap_remove(i);
    }
}

impl Scope {
    /// Declares the floating-point operations this work does (for GFLOP/s).
    #[inline(always)]
    pub fn flops(mut self, flops: usize) -> Scope {
        self.flops = flops as u64;
        self
    }
    /// Declares the floating-point operations of work whose count is known
    /// only once it is done (a product that skips zeros).
    #[inline(always)]
    pub fn set_flops(&mut self, flops: usize) {
        self.flops = flops as u64;
    }
    /// Declares the floating-point operations of a product that skips the
    /// zeros of an operand: `done` counted as [`set_flops`](Self::set_flops),
    /// the rest of `full` (the dense product's) as skipped ([`skipped_flops`]).
    #[inline(always)]
    pub fn set_flops_skipping(&mut self, done: usize, full: usize) {
        self.flops = done as u64;
        self.skipped = full.saturating_sub(done) as u64;
    }
    /// Declares the bytes this work reads and writes (for GB/s).
    #[inline(always)]
    pub fn bytes(mut self, bytes: usize) -> Scope {
        self.bytes = bytes as u64;
        self
    }
    /// Declares the bytes of work whose size is known only once it is done
    /// (the lines a prefetch touched).
    #[inline(always)]
    pub fn set_bytes(&mut self, bytes: usize) {
        self.bytes = bytes as u64;
    }
}

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let ns = start.elapsed().as_nanos() as u64;
            close(self.slot);
            COUNTERS.calls[self.slot].fetch_add(1, Relaxed);
            COUNTERS.nanos[self.slot].fetch_add(ns, Relaxed);
            COUNTERS.flops[self.slot].fetch_add(self.flops, Relaxed);
            COUNTERS.bytes[self.slot].fetch_add(self.bytes, Relaxed);
            SKIPPED.fetch_add(self.skipped, Relaxed);
        }
    }
}

/// What one slot accumulated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// What was timed.
    pub kind: Kind,
    /// The layer (0 for kinds that are not per layer).
    pub layer: usize,
    /// Times the scope was entered.
    pub calls: u64,
    /// Summed thread time.
    pub seconds: f64,
    /// Wall time attributed to this slot: each instant with `k` scopes open counts `1/k` to each.
    pub wall_seconds: f64,
    /// Floating-point operations counted.
    pub flops: u64,
    /// Bytes counted as moved (for the kernels timed by bandwidth).
    pub bytes: u64,
}

/// Every slot that was used, in report order.
pub fn snapshot() -> Vec<Record> {
    let wall = cover().wall;
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
                    wall_seconds: wall[i] * 1e-9,
                    flops: COUNTERS.flops[i].load(Relaxed),
                    bytes: COUNTERS.bytes[i].load(Relaxed),
                });
            }
        }
    }
    out
}

/// How much wall time the timers covered, and how many ran at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coverage {
    /// Wall seconds with exactly `k` work scopes open (on any threads), at index `k - 1`;
    /// the last entry counts `MAX_LEVEL` or more.
    pub by_level: [f64; MAX_LEVEL],
    /// Wall seconds with only container scopes open ([`Kind::is_container`]).
    pub container_only: f64,
}

impl Coverage {
    /// Wall seconds during which at least one scope was open.
    pub fn covered(&self) -> f64 {
        self.by_level.iter().sum::<f64>() + self.container_only
    }
    /// Thread seconds inside work scopes implied by the levels (`sum k x time at k`);
    /// equals the summed [`Record::seconds`] of the non-container kinds up to
    /// rounding (a consistency check).
    pub fn busy(&self) -> f64 {
        self.by_level
            .iter()
            .enumerate()
            .map(|(i, t)| (i + 1) as f64 * t)
            .sum()
    }
}

/// The wall-time coverage since the last [`reset`].
pub fn coverage() -> Coverage {
    let c = cover();
    Coverage {
        by_level: c.level.map(|ns| ns * 1e-9),
        container_only: c.container_only * 1e-9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A timer's thread time is its own work's, not its wait for the
    /// coverage lock, which the other threads' timers take in turn: a timer
    /// closed while another thread holds the lock for 50 ms records about
    /// nothing. (Timed inside the lock, it recorded the 50 ms.)
    #[test]
    fn waiting_for_the_coverage_lock_is_not_timed() {
        reset();
        enable(true);
        let timer = scope(Kind::Shuffle, 0);
        let held = cover();
        let closer = std::thread::spawn(move || drop(timer));
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        closer.join().unwrap();
        enable(false);
        let record = snapshot()
            .into_iter()
            .find(|r| r.kind == Kind::Shuffle)
            .expect("the shuffle timer recorded");
        assert_eq!(record.calls, 1);
        assert!(record.seconds < 0.025, "{record:?}");
        reset();
    }
}
