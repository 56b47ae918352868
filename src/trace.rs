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
//! declares to its thread's counters (one slot per kind of work and layer),
//! summed over the threads when read. Scopes
//! run on every worker thread, so totals are *thread* time: the report
//! compares them with `wall time x threads` to show the time spent waiting.
//!
//! For a wall-time view, while profiling is on every scope also logs when it
//! opens and closes, in its thread's own log (a lock only that thread
//! takes, but for the moments the logs are read). The logs are merged in
//! time order when the report reads them, or when one holds 65,536
//! events: each instant of wall time during which `k >= 1` scopes
//! are open (on any threads) is split evenly among them, so the per-kind
//! wall shares add up to the wall time covered by at least one timer, and
//! the time with `k` scopes open is kept per `k` (see [`coverage`]). One
//! lock shared by every timer used to do this as they ran: on two threads
//! the timers then waited for each other, and a profiled epoch of the
//! workshop network took 1.40-1.47x its time unprofiled (1.10x now, and on
//! one thread either way; Intel Xeon, AVX-512, 16 lanes; docs/PERFORMANCE.md,
//! "Cost of profiling").

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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

static ENABLED: AtomicBool = AtomicBool::new(false);

/// What one thread's timers recorded since the last [`reset`]: per slot,
/// the calls, thread nanoseconds, FLOPs and bytes; the FLOPs skipped; and
/// the opening and closing of each scope, in time order, until the next
/// merge ([`settle`]).
struct Log {
    calls: [u64; SLOTS],
    nanos: [u64; SLOTS],
    flops: [u64; SLOTS],
    bytes: [u64; SLOTS],
    skipped: u64,
    events: Vec<Event>,
}

/// A scope of `slot` opened (`open`) or closed at `at` nanoseconds after [`BASE`].
#[derive(Clone, Copy, Debug)]
struct Event {
    at: u64,
    slot: u16,
    open: bool,
}

// every slot fits an event's `u16`
const _: () = assert!(SLOTS <= u16::MAX as usize);

/// Events a thread's log holds before it merges every log ([`settle`]):
/// 4 MiB of them, about 3,200 steps of the workshop network on one thread
/// (an epoch of MNIST in batches of 32), since the trainer also merges
/// between epochs ([`settle_between_epochs`]).
const LOG_EVENTS: usize = 1 << 18;

impl Log {
    fn new() -> Log {
        Log {
            calls: [0; SLOTS],
            nanos: [0; SLOTS],
            flops: [0; SLOTS],
            bytes: [0; SLOTS],
            skipped: 0,
            events: Vec::new(),
        }
    }

    /// Zeroes the counters and drops the events (keeping their room).
    fn clear(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        *self = Log { events, ..Log::new() };
    }
}

/// Every thread's log, in the order the threads first timed something (the
/// order [`settle`] takes their locks in).
static LOGS: Mutex<Vec<Arc<Mutex<Log>>>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's log, registered in [`LOGS`] on its first timer.
    static LOG: Arc<Mutex<Log>> = {
        let log = Arc::new(Mutex::new(Log::new()));
        lock(&LOGS).push(Arc::clone(&log));
        log
    };
}

/// The instant timestamps count from.
static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since [`BASE`].
fn now() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Locks `m`, also after a panic in another holder (the counters stay usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The floating-point operations the products skipped (multiplications by
/// zero that a dense product would have done) since the last [`reset`].
pub fn skipped_flops() -> u64 {
    lock(&LOGS).iter().map(|log| lock(log).skipped).sum()
}

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

/// The wall-time coverage of the events merged so far: which scopes are
/// open and since when, and the wall time given to each slot and level.
struct Cover {
    /// The last event merged.
    last: Option<u64>,
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

impl Cover {
    /// Attributes the time from the last event to `now` to the open scopes.
    ///
    /// Work scopes share each instant evenly; container scopes get the instant
    /// only when no work scope is open.
    fn advance(&mut self, now: u64) {
        if let (Some(last), false) = (self.last, self.open.is_empty()) {
            let dt = now.saturating_sub(last) as f64;
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
    }

    /// Takes `event` (the next in time order) into account.
    fn take(&mut self, event: Event) {
        self.advance(event.at);
        let slot = usize::from(event.slot);
        if event.open {
            self.open.push(slot);
        } else if let Some(i) = self.open.iter().position(|&s| s == slot) {
            self.open.swap_remove(i);
        }
    }
}

/// Merges every thread's events into the coverage, in time order.
fn settle() {
    merge(&lock(&LOGS), &mut lock(&COVER));
}

/// Merges the events now, if profiling is on: the trainer calls it between
/// an epoch's steps and its validation pass, outside both their times, so
/// that the merge a full log forces (milliseconds: 1.8-3.0 ms for the
/// workshop network's 65,536 events a thread, Zen 5, AVX-512, 16 lanes)
/// seldom lands inside a step, where the other threads wait for it.
pub fn settle_between_epochs() {
    if enabled() {
        settle();
    }
}

/// Moves the events of `logs` into `cover`, in time order. Every log is
/// locked while they are taken: an event's time is read under its log's
/// lock, so none still to come is earlier than the ones taken.
fn merge(logs: &[Arc<Mutex<Log>>], cover: &mut Cover) {
    let mut held: Vec<MutexGuard<Log>> = logs.iter().map(|log| lock(log)).collect();
    let mut events: Vec<Event> = held.iter_mut().flat_map(|log| log.events.drain(..)).collect();
    drop(held);
    // stable: events of one instant keep each thread's order
    events.sort_by_key(|e| e.at);
    for event in events {
        cover.take(event);
    }
}

/// Zeroes every counter.
pub fn reset() {
    for log in lock(&LOGS).iter() {
        lock(log).clear();
    }
    let mut c = lock(&COVER);
    c.last = None;
    c.open.clear();
    c.wall = [0.0; SLOTS];
    c.level = [0.0; MAX_LEVEL];
    c.container_only = 0.0;
}

/// A running timer; records when dropped (only if profiling was on when it started).
#[must_use = "a scope measures until it is dropped"]
pub struct Scope {
    /// When it opened (nanoseconds after [`BASE`]), if profiling was on.
    start: Option<u64>,
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
    let start = enabled().then(|| open(slot));
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

/// Logs the opening of a scope of `slot`; returns its time.
#[inline(never)]
fn open(slot: usize) -> u64 {
    LOG.with(|log| {
        let mut log = lock(log);
        let at = now();
        log.events.push(Event {
            at,
            slot: slot as u16,
            open: true,
        });
        at
    })
}

/// Logs the closing of `scope` and adds it to its slot's counters.
#[inline(never)]
fn close(scope: &Scope, start: u64) {
    let full = LOG.with(|log| {
        let mut log = lock(log);
        let at = now();
        let slot = scope.slot;
        log.calls[slot] += 1;
        log.nanos[slot] += at.saturating_sub(start);
        log.flops[slot] += scope.flops;
        log.bytes[slot] += scope.bytes;
        log.skipped += scope.skipped;
        log.events.push(Event {
            at,
            slot: slot as u16,
            open: false,
        });
        log.events.len() >= LOG_EVENTS
    });
    if full {
        settle();
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
            close(self, start);
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
    settle();
    let wall = lock(&COVER).wall;
    // every thread's counters, summed
    let mut sum = Log::new();
    for log in lock(&LOGS).iter() {
        let log = lock(log);
        for i in 0..SLOTS {
            sum.calls[i] += log.calls[i];
            sum.nanos[i] += log.nanos[i];
            sum.flops[i] += log.flops[i];
            sum.bytes[i] += log.bytes[i];
        }
    }
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for layer in 0..MAX_LAYERS {
            let i = kind.index() * MAX_LAYERS + layer;
            if sum.calls[i] > 0 {
                out.push(Record {
                    kind,
                    layer,
                    calls: sum.calls[i],
                    seconds: sum.nanos[i] as f64 * 1e-9,
                    wall_seconds: wall[i] * 1e-9,
                    flops: sum.flops[i],
                    bytes: sum.bytes[i],
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
    settle();
    let c = lock(&COVER);
    Coverage {
        by_level: c.level.map(|ns| ns * 1e-9),
        container_only: c.container_only * 1e-9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The last layer's slot of `kind`: the timers here use it, as no
    /// network of the other tests (which may time things meanwhile, the
    /// trace being process-wide) reaches that layer.
    fn slot(kind: Kind) -> usize {
        kind.index() * MAX_LAYERS + MAX_LAYERS - 1
    }

    fn event(at: u64, kind: Kind, open: bool) -> Event {
        Event {
            at,
            slot: slot(kind) as u16,
            open,
        }
    }

    /// A container opened at 0 and closed at 100 around two work scopes,
    /// X (10..60) and Y (20..50), Y on another thread: each instant goes to
    /// the work scopes open then, split evenly, or to the container when
    /// none is; merged in one go or in two, the same numbers.
    #[test]
    fn each_instant_is_split_among_the_scopes_open_then() {
        let (c, x, y) = (Kind::ParallelShards, Kind::Shuffle, Kind::Optimizer);
        let one = [
            event(0, c, true),
            event(10, x, true),
            event(60, x, false),
            event(100, c, false),
        ];
        let other = [event(20, y, true), event(50, y, false)];
        for cut in [0, 2] {
            let logs = [Arc::new(Mutex::new(Log::new())), Arc::new(Mutex::new(Log::new()))];
            let mut cover = Cover {
                last: None,
                open: Vec::new(),
                wall: [0.0; SLOTS],
                level: [0.0; MAX_LEVEL],
                container_only: 0.0,
            };
            // the first `cut` of each thread's events merged first
            for (from, to) in [(0, cut), (cut, one.len())] {
                lock(&logs[0]).events.extend_from_slice(&one[from..to]);
                lock(&logs[1])
                    .events
                    .extend_from_slice(&other[from.min(2)..to.min(2)]);
                merge(&logs, &mut cover);
            }
            assert_eq!((cover.level[0], cover.level[1]), (20.0, 30.0), "cut {cut}");
            assert_eq!(cover.container_only, 50.0);
            let wall = |k: Kind| cover.wall[slot(k)];
            assert_eq!((wall(x), wall(y), wall(c)), (35.0, 15.0, 50.0));
            assert!(cover.open.is_empty());
        }
    }

    /// Timers on two threads land in their own logs and are all counted;
    /// a log merged while a scope is open loses nothing; a log that fills
    /// up is merged then and there.
    #[test]
    fn every_threads_timers_are_counted_and_merged() {
        enable(true);
        let counted = |kind: Kind| -> u64 { lock(&LOGS).iter().map(|log| lock(log).calls[slot(kind)]).sum() };
        let before = (counted(Kind::Shuffle), counted(Kind::Optimizer));
        let (go, wait) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            for _ in 0..3 {
                drop(scope(Kind::Optimizer, MAX_LAYERS - 1));
            }
            wait.recv().unwrap();
            drop(scope(Kind::Optimizer, MAX_LAYERS - 1));
        });
        let open = scope(Kind::Shuffle, MAX_LAYERS - 1);
        settle();
        LOG.with(|log| assert!(lock(log).events.is_empty(), "merged"));
        go.send(()).unwrap();
        other.join().unwrap();
        drop(open);
        assert_eq!(counted(Kind::Shuffle) - before.0, 1);
        assert_eq!(counted(Kind::Optimizer) - before.1, 4);
        let filled = LOG_EVENTS / 2 + 1;
        for _ in 0..filled {
            drop(scope(Kind::Shuffle, MAX_LAYERS - 1));
        }
        LOG.with(|log| assert!(lock(log).events.len() < LOG_EVENTS, "merged when full"));
        drop(scope(Kind::Shuffle, MAX_LAYERS - 1));
        // between epochs the trainer merges every log, and only while profiling
        settle_between_epochs();
        LOG.with(|log| assert!(lock(log).events.is_empty(), "merged between epochs"));
        enable(false);
        assert_eq!(counted(Kind::Shuffle) - before.0, 2 + filled as u64);
        let events = |n| {
            LOG.with(|log| {
                lock(log).events.push(Event {
                    at: now(),
                    slot: 0,
                    open: n,
                })
            })
        };
        events(true);
        events(false);
        settle_between_epochs();
        LOG.with(|log| assert_eq!(lock(log).events.len(), 2, "merged with profiling off"));
        LOG.with(|log| lock(log).events.clear());
    }
}
