//! Splitting one GEMM into tasks for the rayon pool.
//!
//! The output C is cut into a grid of `m_chunk x n_chunk` blocks; each
//! block is an independent GEMM (its own packing, all of `k`) run as one
//! rayon task. No float is ever summed across tasks, so the result is
//! bit-identical whatever the grid: on any pool, from any caller, and to
//! [`Parallelism::Sequential`](super::Parallelism). The grid itself depends
//! on the shape, the micro-kernel and the pool ([`min_flops_per_task`]: one
//! task on a one-thread pool; [`max_tasks`]: two on a two-thread pool).
//!
//! Splitting costs repacking: splitting rows repacks B in every row block,
//! splitting columns repacks A. The planner halves whichever side has more
//! micro-tiles (for `m > n` that is m, which duplicates the smaller B), or,
//! for an A the loops read where it is (nothing of A is packed, see
//! [`plan_sharing_a`]), the columns first; and
//! stops when a task would drop below the pool's smallest task
//! ([`min_flops_per_task`]: [`MIN_FLOPS_PER_TASK`] scaled to the lanes,
//! 512 Ki flops with 8 or more; past two tasks,
//! [`MIN_FLOPS_PER_EXTRA_TASK`]) or the grid reaches the most tasks
//! allowed ([`max_tasks`], at most [`MAX_TASKS`]).
//!
//! Called from a thread outside the pool with two tasks, the caller runs
//! one and a worker the other if it takes it in time, else the caller runs
//! both (`join_here_or_there`); from [`INJECT_MIN_FLOPS`] on, the caller
//! hands both to the global pool and waits ([`hands_whole_to_pool`]).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// A task must do at least this many flops (`2·m·n·k` of its block) to be
/// worth a rayon task: waking a sleeping worker and joining costs a few
/// microseconds, about 0.3-0.5 MFLOP at this machine's per-core speed.
/// Measured on the workshop network's u8 GEMMs (`128x16x784` and
/// `784x16x128`, 3.2 MFLOP each, called from inside a 2-thread pool, idle
/// machine): one call goes from 35 µs sequential to 20 µs as two 1.6-MFLOP
/// tasks; splitting `128³` (4.2 MFLOP) on a one-thread pool costs 2-5%,
/// so the split pays from about 1 MFLOP per task on two free cores.
///
/// The same holds for a GEMM called from outside the pool (the main
/// thread): below [`INJECT_MIN_FLOPS`] its two tasks go through
/// `join_here_or_there`, where a worker that comes late costs little (the
/// caller runs both halves). It used to
/// wait for the worker, and such calls split only from 4 MFLOP per task;
/// with the same threshold as inside, measured on Zen 5 (2 threads from the
/// main thread, simdnet alone, the two builds alternated, medians of 10
/// rounds, GFLOP/s): AVX-512 (16 lanes) `128³` 239 -> 413, `X·W`
/// 128x16x784 227 -> 396, `Xᵀ·dZ` 784x16x128 244 -> 405; AVX2 (8 lanes)
/// `X·W` 128x16x784 126 -> 221, `H·W` 128x10x512 82 -> 127.
///
/// What a pool of two or more threads uses is [`min_flops_per_task`]: this
/// scaled to the build's lanes, half of it with 8 lanes or more.
pub const MIN_FLOPS_PER_TASK: usize = 1 << 20;

/// Going beyond two tasks needs this many flops per task: every extra
/// task repacks a block of A or B. Measured by running the split plan on a
/// one-thread pool against the unsplit call (best of 20): four tasks cost
/// 10% on `128³` (1 MFLOP each) but about 1-2% from ~16 MFLOP per task on.
pub const MIN_FLOPS_PER_EXTRA_TASK: usize = 16 << 20;

/// At most this many tasks (a power of two): enough to balance two to four
/// cores, few enough that repacking stays a few percent.
pub const MAX_TASKS: usize = 4;

/// A product of at least this many flops (`2·m·n·k`) split in two and
/// called from outside the pool is handed to the global pool whole, two
/// workers running its halves while the caller waits (`rayon::join` from
/// outside a pool); a smaller one runs one half on the caller
/// (`join_here_or_there`). 128 Mi flops: half of `512³`.
///
/// Measured on Zen 3 (AMD EPYC family 25 model 1, AVX2, 8 lanes, 2 cores,
/// 2026-12-03 22:25-22:50 UTC; `SIMDNET_BENCH_FULL=1 cargo bench --bench
/// gemm`, a switch in one build, the two ways alternated, five runs of the
/// square shapes and four of the network's, ratio to the best peer in the
/// 2-thread main-thread column, one half on the caller -> handed whole):
/// `512³` 0.59-0.86 -> 0.95-1.10, `1024³` 0.83-1.02 -> 1.01-1.17, `2048³`
/// level (1.01-1.26 and 1.03-1.25). The network's 103 MFLOP products
/// showed no clear winner, so they keep a half on the caller (`X·W`
/// 128x512x784 0.99-1.20 against 0.99-1.11, `Xᵀ·dZ` 784x512x128 1.03-1.23
/// against 0.98-1.08, `dZ·Wᵀ` 128x784x512 0.90-1.09 against 1.03-1.15), as
/// do `128³`, `256³` and the smaller ones (the Zen 5 figures at
/// [`MIN_FLOPS_PER_TASK`]). Why the caller's half costs a large product
/// so much was not found; the caller and the two workers are three threads
/// on two cores. On a Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16
/// lanes, 2026-12-05; `SIMDNET_BENCH_FULL=1 cargo bench --bench gemm`, this
/// build and one with a half on the caller alternated, three runs each,
/// GFLOP/s in the 2-thread main-thread column, handed whole against a half
/// on the caller): `512³` 380-422 against 321-436, `1024³` 444-481
/// against 255-409, `2048³` 434-470 against 410-453. Not measured on Zen 4.
///
/// Handed whole, the call waits for a worker, as any rayon call from
/// outside the pool does: with every worker of the global pool blocked it
/// would wait until one is free, where a half on the caller never waits
/// for one.
pub const INJECT_MIN_FLOPS: usize = 1 << 27;

/// Whether a two-task product of `flops` called from outside the pool is
/// handed to the pool whole ([`INJECT_MIN_FLOPS`]).
pub fn hands_whole_to_pool(flops: usize) -> bool {
    flops >= INJECT_MIN_FLOPS
}

/// The most tasks worth making on the current pool: its thread count rounded
/// up to a power of two, at least 2 and at most [`MAX_TASKS`]. On two
/// threads, four tasks repack A and B twice each and, when the rows split
/// unevenly (128 rows as 72 + 56 for a 12-row kernel), one thread gets the
/// two larger blocks. Measured on Zen 5 (2 cores, AVX-512, 16 lanes), 784-512-512-10 epoch
/// (training and validation): 0.85-0.87 s with four tasks, 0.80-0.81 with two.
pub fn max_tasks() -> usize {
    rayon::current_num_threads()
        .next_power_of_two()
        .clamp(2, MAX_TASKS)
}

/// The task grid: C is split into blocks of `m_chunk x n_chunk` (the last
/// ones smaller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rows of C per task.
    pub m_chunk: usize,
    /// Columns of C per task.
    pub n_chunk: usize,
}

impl Plan {
    /// How many blocks the grid has for an `m x n` output.
    pub fn tasks(&self, m: usize, n: usize) -> usize {
        m.div_ceil(self.m_chunk.max(1)) * n.div_ceil(self.n_chunk.max(1))
    }
}

/// The grid for an `m x n x k` product with an `mr x nr` micro-kernel,
/// called from inside the pool ([`MIN_FLOPS_PER_TASK`]).
/// `parallel == false` gives a single task.
pub fn plan(m: usize, n: usize, k: usize, mr: usize, nr: usize, parallel: bool) -> Plan {
    let min_task = if parallel { MIN_FLOPS_PER_TASK } else { usize::MAX };
    plan_with(m, n, k, (mr, nr), min_task, MAX_TASKS)
}

/// The smallest task worth splitting off for a GEMM on the current pool
/// (from a worker of it or from outside): [`MIN_FLOPS_PER_TASK`], and never
/// (`usize::MAX`) when the pool has a single thread (the tasks would run
/// one after the other, each repacking its operands). The grid may thus
/// differ with the pool, never the result: no float is summed across tasks.
///
/// With 8 lanes (AVX2) and more the threshold is half of that (512 Ki
/// flops); with fewer lanes a core does fewer flops in the same time, so a
/// task of fewer flops costs as long and the threshold falls in step with
/// the lanes. Measured on Zen 5 (2 cores): the AVX2 build (8 lanes), in
/// the pool, ran `128x10x512` (1.3 MFLOP, the 512-wide network's output
/// layer) unsplit at 79 GFLOP/s while the `gemm` crate split it at 130;
/// the AVX-512 build (16 lanes), with 1 Mi flops, unsplit at 87-117
/// against the crate's 97-108, and split (512 Ki) at 134-166
/// (`cargo bench --bench gemm`, the two builds alternated, three runs
/// each; the epoch bench level).
pub fn min_flops_per_task() -> usize {
    if rayon::current_num_threads() < 2 {
        return usize::MAX;
    }
    MIN_FLOPS_PER_TASK / 16 * crate::simd::LANES.min(8)
}

/// [`plan`] with the smallest task worth a split (`usize::MAX`: a single
/// task; see [`min_flops_per_task`]) and the most tasks (a power of two up
/// to [`MAX_TASKS`]; see [`max_tasks`]) given explicitly.
pub fn plan_with(
    m: usize,
    n: usize,
    k: usize,
    (mr, nr): (usize, usize),
    min_task: usize,
    max_tasks: usize,
) -> Plan {
    plan_sharing_a(m, n, k, (mr, nr), (min_task, max_tasks), false)
}

/// [`plan_with`] (its `min_task` and `max_tasks` as a pair) for an A that
/// each task reads where it is, with no copy, if `a_in_place`: then a task
/// of fewer columns packs nothing more, while a task of fewer rows packs B
/// again, so the columns are halved first, as long as a half keeps two or
/// more micro-panels. Measured on Zen 3 (AMD EPYC family 25 model 1, AVX2,
/// 8 lanes, `cargo bench --bench gemm`, the two ways alternated, median of
/// 6 runs of the ratio to the best peer, two such sets, host in a slow
/// state): 128³ 2t main 1.22-1.26 -> 1.33-1.36, 2t pool 0.92-0.97 ->
/// 0.97-1.01; 256³ 0.98-0.99 -> 1.03-1.05 and 0.94-0.95 -> 0.96-1.02. The
/// network's 128-row products had more columns than rows of micro-tiles
/// and were split by columns already.
pub fn plan_sharing_a(
    m: usize,
    n: usize,
    k: usize,
    (mr, nr): (usize, usize),
    (min_task, max_tasks): (usize, usize),
    a_in_place: bool,
) -> Plan {
    let whole = Plan {
        m_chunk: m.max(1),
        n_chunk: n.max(1),
    };
    if min_task == usize::MAX {
        return whole;
    }
    let flops = 2 * m * n * k;
    let (tiles_m, tiles_n) = (m.div_ceil(mr), n.div_ceil(nr));
    let (mut parts_m, mut parts_n) = (1usize, 1usize);
    loop {
        let (tasks, per_task) = (parts_m * parts_n * 2, flops / (parts_m * parts_n * 2));
        let worth_it = per_task >= min_task && (tasks <= 2 || per_task >= MIN_FLOPS_PER_EXTRA_TASK);
        if tasks > max_tasks.min(MAX_TASKS) || !worth_it {
            break;
        }
        let (per_m, per_n) = (tiles_m / parts_m, tiles_n / parts_n);
        if a_in_place && per_n >= 2 {
            parts_n *= 2;
        } else if per_m >= per_n && per_m >= 2 {
            parts_m *= 2;
        } else if per_n >= 2 {
            parts_n *= 2;
        } else {
            break;
        }
    }
    Plan {
        m_chunk: tiles_m.div_ceil(parts_m).max(1) * mr,
        n_chunk: tiles_n.div_ceil(parts_n).max(1) * nr,
    }
}

/// Runs `here` on the calling thread, a thread outside any rayon pool,
/// and `there` on a worker of the pool that `spawn` hands jobs to, if a
/// worker starts it before `here` is done; otherwise the caller runs
/// `there` too. Returns when both have run.
///
/// For a GEMM of two tasks called from outside the pool (the main
/// thread): the caller computes one half at once, instead of injecting
/// the whole call into the pool and blocking (which wakes a worker, which
/// must then wake a second one for the other half). With a scope
/// (`rayon::in_place_scope`), the caller had to wait at the end for a
/// worker to run the other half, however long that worker took to wake:
/// on a virtual machine, from time to time longer than the whole product
/// (Zen 5, 2 vCPUs, AVX2 build, `cargo bench --bench gemm`: 1024³ from the
/// main thread at 124 GFLOP/s, the speed of one thread, in some runs).
/// Here whichever of the caller and a worker claims `there` first runs it;
/// the other never touches it. Measured on Zen 5 (2 vCPUs), 2 threads from
/// the main thread (`SIMDNET_BENCH_OURS_ONLY=1 cargo bench --bench gemm`,
/// the scope and this alternated, medians of 10 rounds, GFLOP/s): AVX2
/// build (8 lanes) 128³ 111 -> 212, 128x512x512 214 -> 231, `dZ·Wᵀ`
/// 128x784x512 212 -> 223; AVX-512 (16 lanes) 256³ 344 -> 421, 128x512x512
/// 381 -> 457, 128x512x784 378 -> 421; the other shapes level.
///
/// A panic in `there` on the worker is raised again on the caller.
pub(crate) fn join_here_or_there<H, T>(here: H, there: T, spawn: impl FnOnce(Box<dyn FnOnce() + Send>))
where
    H: FnOnce(),
    T: FnOnce() + Send,
{
    let shared = Arc::new(Claim {
        state: AtomicU8::new(OPEN),
        panicked: AtomicBool::new(false),
        caller: std::thread::current(),
    });
    // `there` stays on this stack frame; the worker gets its address and
    // calls it only after claiming it, while this frame waits (`Settle`).
    let mut there = Some(there);
    let there: *mut Option<T> = &mut there;
    let job = SendPtr(there.cast::<()>());
    let worker = Arc::clone(&shared);
    spawn(Box::new(move || {
        let job = job;
        if worker.claim(TAKEN) {
            // SAFETY: the claim succeeded, so the caller neither runs nor
            // drops `there` and keeps its frame until the state is DONE
            // (`Settle::drop`); `job` points at that frame's `Option<T>`.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                run_claimed::<T>(job.0)
            }));
            worker.panicked.store(run.is_err(), Ordering::Relaxed);
            // the caller may return (and free `there`) as soon as it sees DONE
            let caller = worker.caller.clone();
            worker.state.store(DONE, Ordering::Release);
            caller.unpark();
        }
    }));
    // Whatever happens in `here` (even a panic), settle `there` before this
    // frame goes: run or drop it if unclaimed, else wait for the worker.
    let settle = Settle {
        shared: &shared,
        there,
    };
    here();
    drop(settle);
    if shared.panicked.load(Ordering::Relaxed) {
        panic!("a GEMM task panicked on a worker thread");
    }
}

/// `there` was not claimed yet.
const OPEN: u8 = 0;
/// A worker claimed `there` and runs it.
const TAKEN: u8 = 1;
/// The worker is done with `there`.
const DONE: u8 = 2;
/// The caller claimed `there` (ran it, or dropped it after a panic).
const CALLER: u8 = 3;

/// Runs `first` and `second` on a rayon pool's worker, `second` on
/// another worker if one starts it before `first` is done (else on this
/// one after it), like `rayon::join`; but while the other worker runs
/// `second`, this one spins until it is done instead of waiting as rayon
/// does, which after a few dozen rounds without a job sleeps until woken.
/// Nothing is allocated (rayon's own `join` carries both halves).
///
/// The halves of a GEMM or the two shards of a training step take 10-200
/// µs, and the two halves rarely end at the same moment: the one done
/// first waited inside `rayon::join` and, often enough, went to sleep, to
/// be woken through the hypervisor when the other ended. Measured on an
/// Intel Xeon (family 6 model 167 under KVM, AVX-512, 16 lanes, 2
/// threads), `H·W` 128x512x512 called from a pool worker, medians of 7 x
/// 9 x 50 calls: 259-271 GFLOP/s with `rayon::join`, 296-298 this way.
/// On a Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes, 2 threads,
/// 2026-12-05), a build with `rayon::join` here against this one: the
/// workshop network's epoch 1.013x (slower in 9 of 10 alternated
/// rounds, level in the tenth), 784-512-512-10's 0.998x (4 rounds).
///
/// Whoever claims `second` first (the worker that took it, or this thread
/// once `first` is done) runs it; the other never does. Called from
/// outside a pool, it is `rayon::join`. On a thread that owns a
/// [`Handoff`](super::handoff::Handoff) (a training epoch's, see
/// `nn::awake`), `second` is posted there instead of pushed on rayon's
/// queues, with the same protocol.
pub fn join_spinning(first: impl FnOnce() + Send, second: impl FnOnce() + Send) {
    let Err((first, second)) = super::handoff::join_posting(first, second) else {
        return;
    };
    let state = AtomicU8::new(OPEN);
    let second_cell = std::sync::Mutex::new(Some(second));
    let run_second = || {
        // only the claimant reaches here, once: the lock is never contended
        let job = second_cell.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = job {
            job();
        }
    };
    rayon::join(
        || {
            first();
            if claim(&state, CALLER) {
                run_second();
                return;
            }
            // a worker runs `second`: spin until it is done (it is running)
            spin_until(|| state.load(Ordering::Acquire) == DONE);
        },
        || {
            if claim(&state, TAKEN) {
                // DONE even if it panics (the caller spins until DONE);
                // rayon then raises the panic on the caller
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run_second));
                state.store(DONE, Ordering::Release);
                if let Err(panic) = run {
                    std::panic::resume_unwind(panic);
                }
            }
        },
    );
}

/// [`join_spinning`], and `then` on this thread as soon as `first` is
/// done, while another worker may still run `second`; returns once all
/// three have run. `then` need not be `Send`: it runs on this thread
/// whatever happens. Where `second` is posted to this thread's
/// [`Handoff`](super::handoff::Handoff), `then` fills this thread's wait
/// for it; elsewhere (rayon's `join`, whose halves must both be `Send`) it
/// runs after both halves.
pub fn join_spinning_then(first: impl FnOnce() + Send, second: impl FnOnce() + Send, then: impl FnOnce()) {
    let (mut first, mut then) = (Some(first), Some(then));
    let here = || {
        if let Some(first) = first.take() {
            first();
        }
        if let Some(then) = then.take() {
            then();
        }
    };
    // on `Err`, `here` comes back unrun: `first` and `then` are still there
    if let Err((_, second)) = super::handoff::join_posting(here, second) {
        if let Some(first) = first.take() {
            join_spinning(first, second);
        }
        if let Some(then) = then.take() {
            then();
        }
    }
}

/// Spins of [`join_spinning`]'s waiting thread (and of a
/// [`Handoff`](super::handoff::Handoff)'s owner, [`spin_until`]) between two offers of its
/// core to the OS: about 50 µs of pauses on a 3 GHz core (a pause is
/// 40-140 cycles), longer than most halves' difference, short against a
/// time slice.
const SPINS_PER_YIELD: u32 = 1 << 10;

/// Spins until `done()` (checked after each pause), offering the core to
/// the OS every [`SPINS_PER_YIELD`] pauses so that a process sharing it
/// gets its turn: how the thread that forked waits for a worker's half.
pub(crate) fn spin_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_YIELD) {
            std::thread::yield_now();
        }
    }
}

/// What the caller and the worker share in [`join_here_or_there`].
struct Claim {
    state: AtomicU8,
    panicked: AtomicBool,
    caller: std::thread::Thread,
}

impl Claim {
    /// Claims `there` for `who` (`TAKEN` or `CALLER`); `false` if the other side has it.
    fn claim(&self, who: u8) -> bool {
        claim(&self.state, who)
    }
}

/// Moves `state` from `OPEN` to `who`; `false` if another claimed it first.
fn claim(state: &AtomicU8, who: u8) -> bool {
    state
        .compare_exchange(OPEN, who, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// On drop, in the caller: runs `there` if nobody claimed it (or drops it
/// unrun while a panic unwinds), else waits until the worker is done.
struct Settle<'a, T: FnOnce()> {
    shared: &'a Claim,
    /// The caller's `Option<T>` (a raw pointer: the worker may use it meanwhile).
    there: *mut Option<T>,
}

impl<T: FnOnce()> Drop for Settle<'_, T> {
    fn drop(&mut self) {
        if self.shared.claim(CALLER) {
            // SAFETY: claimed by the caller: the worker never touches it, and
            // the `Option<T>` lives in the caller's frame, which outlives `self`.
            if let Some(there) = unsafe { &mut *self.there }.take() {
                if !std::thread::panicking() {
                    there();
                }
            }
            return;
        }
        // A worker has it: spin a little (it is usually nearly done), then park.
        let mut spins = 0u32;
        while self.shared.state.load(Ordering::Acquire) != DONE {
            if spins < 1 << 14 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::park_timeout(std::time::Duration::from_micros(100));
            }
        }
    }
}

/// Takes the closure out of the `Option<T>` at `job` and runs it.
///
/// # Safety
/// `job` points at a live `Option<T>` that nobody else touches meanwhile.
pub(crate) unsafe fn run_claimed<T: FnOnce()>(job: *mut ()) {
    // SAFETY: forwarded from the caller.
    if let Some(there) = unsafe { &mut *job.cast::<Option<T>>() }.take() {
        there();
    }
}

/// A raw pointer a job may carry to another thread ([`join_here_or_there`]
/// guarantees its target outlives every use).
struct SendPtr(*mut ());
// SAFETY: the pointee is only used by whoever claims it, one thread at a time.
unsafe impl Send for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Rounds of the two tests that count where a half ran: fewer under
    /// Miri (see the README), which runs them thousands of times slower.
    const MIRI_OR_2000: usize = if cfg!(miri) { 40 } else { 2000 };

    /// Spins until `flag` is set (the other half has started), for at most `limit`.
    fn wait_until_set(flag: &AtomicBool, limit: Duration) {
        let t = std::time::Instant::now();
        while !flag.load(Ordering::Acquire) && t.elapsed() < limit {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn only_large_products_are_handed_whole_to_the_pool() {
        // 512³ (2^28 flops) is; the network's 128x512x784 (103 MFLOP) and 256³ are not
        assert!(hands_whole_to_pool(2 * 512 * 512 * 512));
        assert!(hands_whole_to_pool(INJECT_MIN_FLOPS));
        assert!(!hands_whole_to_pool(INJECT_MIN_FLOPS - 1));
        assert!(!hands_whole_to_pool(2 * 128 * 512 * 784));
        assert!(!hands_whole_to_pool(2 * 256 * 256 * 256));
    }

    #[test]
    fn both_halves_run_once_on_borrowed_data_whoever_takes_the_second() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (mut on_worker, mut on_caller) = (0, 0);
        for i in 0..MIRI_OR_2000 {
            let mut out = [0usize; 2];
            let (first, second) = out.split_at_mut(1);
            let caller = std::thread::current().id();
            let ran_on = std::sync::Mutex::new(None);
            join_here_or_there(
                || first[0] = i + 1,
                || {
                    second[0] = 2 * i + 1;
                    *ran_on.lock().unwrap() = Some(std::thread::current().id());
                },
                |job| pool.spawn(job),
            );
            assert_eq!(out, [i + 1, 2 * i + 1], "round {i}");
            if ran_on.into_inner().unwrap() == Some(caller) {
                on_caller += 1;
            } else {
                on_worker += 1;
            }
        }
        assert_eq!(on_worker + on_caller, MIRI_OR_2000);
    }

    #[test]
    fn the_caller_runs_both_when_no_worker_is_free() {
        // The pool's only worker is blocked until after the call returns:
        // waiting for it (as a scope does) would never end.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (release, blocked) = mpsc::channel::<()>();
        pool.spawn(move || blocked.recv().unwrap());
        let (done, finished) = mpsc::channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let (r1, r2) = (Arc::clone(&runs), Arc::clone(&runs));
        std::thread::spawn(move || {
            let caller = std::thread::current().id();
            let mut there_on = None;
            join_here_or_there(
                || {
                    r1.fetch_add(1, Ordering::Relaxed);
                },
                || {
                    r2.fetch_add(1, Ordering::Relaxed);
                    there_on = Some(std::thread::current().id());
                },
                |job| pool.spawn(job),
            );
            done.send(there_on == Some(caller)).unwrap();
        });
        let on_caller = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("join_here_or_there waited for a worker that could not start");
        assert!(on_caller, "the second half ran elsewhere than on the caller");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        release.send(()).unwrap();
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_caller_and_nothing_runs_twice() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for round in 0..10 {
            let started = AtomicBool::new(false);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                join_here_or_there(
                    || {
                        // give a worker time to take the other half
                        wait_until_set(&started, Duration::from_millis(50));
                    },
                    || {
                        started.store(true, Ordering::Release);
                        panic!("second half fails");
                    },
                    |job| pool.spawn(job),
                )
            }));
            assert!(result.is_err(), "round {round}: the panic was lost");
            let runs = AtomicUsize::new(0);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                join_here_or_there(
                    || panic!("first half fails"),
                    || {
                        runs.fetch_add(1, Ordering::Relaxed);
                    },
                    |job| pool.spawn(job),
                )
            }));
            assert!(result.is_err(), "round {round}: the panic was lost");
            assert!(runs.load(Ordering::Relaxed) <= 1, "round {round}");
        }
    }

    #[test]
    fn join_spinning_runs_each_half_once_whoever_takes_the_second() {
        // on two workers, on one (the caller runs both), and from outside a pool
        for threads in [2, 1] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (mut on_other, mut on_caller) = (0, 0);
            for i in 0..MIRI_OR_2000 {
                let mut out = [0usize; 2];
                let (first, second) = out.split_at_mut(1);
                let ran_on = std::sync::Mutex::new(None);
                let started = AtomicBool::new(false);
                let caller = pool.install(|| {
                    join_spinning(
                        || {
                            first[0] += i + 1;
                            // every other round, give the other worker time to take the second half
                            if threads == 2 && i % 2 == 0 {
                                wait_until_set(&started, Duration::from_millis(1));
                            }
                        },
                        || {
                            started.store(true, Ordering::Release);
                            second[0] += 2 * i + 1;
                            *ran_on.lock().unwrap() = Some(std::thread::current().id());
                        },
                    );
                    std::thread::current().id()
                });
                assert_eq!(out, [i + 1, 2 * i + 1], "{threads} thread(s), round {i}");
                if ran_on.into_inner().unwrap() == Some(caller) {
                    on_caller += 1;
                } else {
                    on_other += 1;
                }
            }
            if threads == 1 {
                assert_eq!(
                    (on_other, on_caller),
                    (0, MIRI_OR_2000),
                    "one worker runs both halves"
                );
            } else {
                assert!(on_other > 0, "the other worker never took the second half");
            }
        }
        let mut out = [0, 0];
        let (first, second) = out.split_at_mut(1);
        join_spinning(|| first[0] += 1, || second[0] += 1);
        assert_eq!(out, [1, 1], "from outside a pool");
    }

    #[test]
    fn join_spinning_waits_for_a_slow_second_half_and_raises_its_panic() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for round in 0..20 {
            // the second half, taken by the other worker, outlasts the first
            let started = AtomicBool::new(false);
            let done = AtomicBool::new(false);
            pool.install(|| {
                join_spinning(
                    || {
                        wait_until_set(&started, Duration::from_millis(50));
                    },
                    || {
                        started.store(true, Ordering::Release);
                        std::thread::sleep(Duration::from_millis(2));
                        done.store(true, Ordering::Release);
                    },
                )
            });
            assert!(
                done.load(Ordering::Acquire),
                "round {round}: returned before the second half ended"
            );
            // a panic in either half reaches the caller; nothing hangs, even
            // when the other worker took the half that fails
            for failing in [0, 1] {
                let runs = AtomicUsize::new(0);
                let started = AtomicBool::new(false);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.install(|| {
                        join_spinning(
                            || {
                                runs.fetch_add(1, Ordering::Relaxed);
                                wait_until_set(&started, Duration::from_millis(50));
                                assert!(failing != 0, "first half fails");
                            },
                            || {
                                started.store(true, Ordering::Release);
                                runs.fetch_add(1, Ordering::Relaxed);
                                assert!(failing != 1, "second half fails");
                            },
                        )
                    })
                }));
                assert!(
                    result.is_err(),
                    "round {round}: the panic of half {failing} was lost"
                );
                assert!(
                    runs.load(Ordering::Relaxed) <= 2,
                    "round {round}: a half ran twice"
                );
            }
        }
    }

    #[test]
    fn small_problems_stay_whole() {
        assert_eq!(plan(8, 8, 8, 12, 32, true).tasks(8, 8), 1);
        assert_eq!(plan(128, 10, 16, 16, 16, true).tasks(128, 10), 1);
    }

    #[test]
    fn large_problems_split_the_longer_side_first() {
        let p = plan(784, 16, 128, 16, 16, true);
        assert!(p.tasks(784, 16) >= 2);
        assert_eq!(p.n_chunk, 16);
        assert_eq!(plan(128, 128, 128, 16, 16, true).tasks(128, 128), 2);
        let p = plan(1024, 1024, 1024, 12, 32, true);
        assert_eq!(p.tasks(1024, 1024), MAX_TASKS);
        assert_eq!(p.m_chunk % 12, 0);
        assert_eq!(p.n_chunk % 32, 0);
    }

    #[test]
    fn the_pool_sets_the_smallest_task() {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one.install(min_flops_per_task), usize::MAX);
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let want = if crate::simd::LANES >= 8 {
            512 << 10
        } else {
            (1 << 20) / 16 * crate::simd::LANES
        };
        assert_eq!(two.install(min_flops_per_task), want);
        // from outside any pool, the global pool's: the same threshold
        if rayon::current_num_threads() >= 2 {
            assert_eq!(min_flops_per_task(), want);
        }
        // the 512-wide network's output layer, 128x10x512 (1.3 MFLOP), in
        // two tasks on a two-thread pool, with AVX2 and with AVX-512
        if crate::simd::LANES >= 8 {
            let limits = (two.install(min_flops_per_task), 2);
            assert_eq!(
                plan_sharing_a(128, 10, 512, (16, 16), limits, true).tasks(128, 10),
                2
            );
        }
        assert_eq!(
            plan_with(1024, 1024, 1024, (16, 16), usize::MAX, MAX_TASKS).tasks(1024, 1024),
            1
        );
        // 128x16x784 (3.2 MFLOP): two tasks; 64x16x784, one.
        assert_eq!(
            plan_with(128, 16, 784, (16, 16), MIN_FLOPS_PER_TASK, MAX_TASKS).tasks(128, 16),
            2
        );
        assert_eq!(
            plan_with(64, 16, 784, (16, 16), MIN_FLOPS_PER_TASK, MAX_TASKS).tasks(64, 16),
            1
        );
        // two threads: two tasks; three or four: up to four
        assert_eq!(two.install(max_tasks), 2);
        let four = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        assert_eq!(four.install(max_tasks), 4);
        assert_eq!(
            plan_with(128, 512, 784, (12, 32), MIN_FLOPS_PER_TASK, 2).tasks(128, 512),
            2
        );
        assert_eq!(
            plan_with(128, 512, 784, (12, 32), MIN_FLOPS_PER_TASK, 4).tasks(128, 512),
            4
        );
    }

    /// An A read in place: the columns are split first (B is not packed
    /// twice), down to two micro-panels a task; otherwise the side with
    /// more micro-tiles.
    #[test]
    fn an_a_read_in_place_splits_the_columns_first() {
        let limits = (MIN_FLOPS_PER_TASK, 2);
        let packed = plan_sharing_a(256, 256, 256, (6, 16), limits, false);
        assert_eq!(
            (packed.m_chunk, packed.n_chunk),
            (132, 256),
            "rows: 43 tiles against 16"
        );
        let shared = plan_sharing_a(256, 256, 256, (6, 16), limits, true);
        assert_eq!((shared.m_chunk, shared.n_chunk), (258, 128));
        // four tasks (512x512x256, 33 MFLOP each): the columns twice, or the rows
        let four = |shared| plan_sharing_a(512, 512, 256, (6, 16), (MIN_FLOPS_PER_TASK, 4), shared);
        assert_eq!((four(true).m_chunk, four(true).n_chunk), (516, 128));
        assert_eq!((four(false).m_chunk, four(false).n_chunk), (132, 512));
        // one panel of columns: the rows, in place or not
        let narrow = plan_sharing_a(512, 16, 512, (6, 16), limits, true);
        assert_eq!((narrow.m_chunk, narrow.n_chunk), (258, 16));
        // and never below the smallest task
        let small = plan_sharing_a(64, 64, 64, (6, 16), (usize::MAX, 2), true);
        assert_eq!(small.tasks(64, 64), 1);
    }
}
