//! Keeping the pool's other workers awake while a training epoch runs.
//!
//! A training step forks a few short parallel sections (two shards, or
//! the halves of each GEMM) with serial work between them (the optimiser,
//! the loss). Between sections an idle rayon worker spins for a few dozen
//! rounds, then sleeps on a futex; the next section must wake it. On a
//! virtual machine that wake-up goes through the hypervisor, and its cost
//! varies with the host's load. Measured on a 2-vCPU Zen 5 VM (AVX-512),
//! the workshop network (784-16-16-10, batch 128): most of the time an
//! epoch took 15 ms on 2 threads, but for minutes at a time 36-42 ms, with
//! 1.5 context switches per step instead of 0.01: the second worker
//! woke too late to take its shard, so the first ran both (1 thread took
//! 27 ms).
//!
//! [`with_workers_awake`] runs a closure while every other worker of the
//! current pool polls for jobs instead of sleeping: it takes any job
//! there is ([`rayon::yield_now`]: a shard, a GEMM task, a chunk of the
//! optimiser) and between jobs spins with a pause hint, offering the core
//! to the OS every few microseconds, and after 2 ms without a job polls
//! only every 200 µs. Nothing is computed differently, only picked up
//! sooner: results are the same bits.
//!
//! The other side of a fork, the thread that hands out a step's two
//! halves (two shards, two GEMM tasks) and finishes its own first, waits
//! awake as well: [`crate::gemm::threads::join_spinning`]. While `f` runs,
//! its thread owns a [`Handoff`] that the polling workers look at before
//! the pool's queues: `join_spinning` posts its second half there, one
//! cache line for the worker to read instead of rayon's queues
//! ([`crate::gemm::handoff`]).
//!
//! The price is CPU time: the workers of the pool the closure runs on use
//! their cores fully until it returns (they are the cores `--threads`
//! asked for).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::gemm::handoff::{self, Handoff};

/// Polls without finding a job between two offers of the core to the OS
/// (`std::thread::yield_now`): each poll is a pause plus a look at the
/// other workers' queues, well under a microsecond, so a process sharing
/// the core gets it within a few microseconds (with the cores
/// oversubscribed, e.g. tests running beside training, a worker that only
/// spun would hold its core for a whole time slice). 1,024 left the
/// workshop network's epochs level on a Zen 3 (AVX2, 8 lanes; see
/// docs/PERFORMANCE.md, "workers offering the core less often").
const POLLS_PER_OS_YIELD: u32 = 64;

/// Idle this long without a job, a worker polls only every [`NAP`]: the
/// thread running the closure is then doing long serial work (a
/// checkpoint, a report), and a training step's gaps are far shorter.
const IDLE_BEFORE_NAPS: std::time::Duration = std::time::Duration::from_millis(2);

/// The pause between polls of a worker idle for [`IDLE_BEFORE_NAPS`].
const NAP: std::time::Duration = std::time::Duration::from_micros(200);

/// Runs `f` on the current thread while every other worker of the current
/// rayon pool polls for work instead of sleeping; returns `f`'s result.
///
/// Called from a thread outside any pool (a library user's `main` calling
/// `Fit::run`), the current pool is rayon's global one, and this thread
/// computes as a worker would: all of that pool's workers but one poll, so
/// that as many threads are busy as the pool has (its halves then go to
/// the polling workers through this thread's handoff, as on a worker).
/// Without it every fork from such a thread went through rayon's queues
/// to sleeping workers: the workshop network's epoch took 0.024-0.032 s
/// from `main` against 0.009-0.011 inside a 2-thread pool (Zen 5, AVX-512,
/// 16 lanes, 2 cores); with it, the same within the noise. On a pool of
/// one thread it just runs `f`.
pub fn with_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    with_workers_awake_counted(f, Arc::default())
}

/// [`with_workers_awake`], counting in `polling` the workers polling at
/// any moment (for the tests: it must fall back to 0 once `f` is done).
fn with_workers_awake_counted<R>(f: impl FnOnce() -> R, polling: Arc<AtomicUsize>) -> R {
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let owner = rayon::current_thread_index();
    let done = Arc::new(AtomicBool::new(false));
    let handoff = Arc::new(Handoff::default());
    // Not a scope: `f`'s thread must not wait at the end for the others to
    // notice `done` (with the cores oversubscribed, one may be off its core
    // for a whole time slice); each stops at its next poll.
    let (flag, served) = (Arc::clone(&done), Arc::clone(&handoff));
    rayon::spawn_broadcast(move |ctx| {
        // The thread running `f` gets its copy when it next looks for work
        // (while waiting on a join inside `f`, or after it): it must not
        // poll, or nobody would run `f`. Outside any pool, `f`'s thread is
        // busy as a worker would be: the last worker stays idle, for the
        // jobs that thread hands to the pool (it sleeps until one comes).
        let polls = match owner {
            Some(owner) => ctx.index() != owner,
            None => ctx.index() + 1 < ctx.num_threads(),
        };
        if polls {
            polling.fetch_add(1, Ordering::AcqRel);
            poll_until(&flag, &served);
            polling.fetch_sub(1, Ordering::AcqRel);
        }
    });
    // Set `done` however `f` ends, also if it panics: the others would
    // otherwise poll for ever.
    let _stop = Stop(&done);
    handoff::owning(&handoff, f)
}

/// Sets its flag when dropped (also while a panic unwinds).
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs whatever jobs the pool has, and the halves posted in `handoff`,
/// until `done` is set.
fn poll_until(done: &AtomicBool, handoff: &Handoff) {
    let mut idle = 0u32;
    let mut idle_since = None;
    while !done.load(Ordering::Acquire) {
        if handoff.serve() {
            (idle, idle_since) = (0, None);
            continue;
        }
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => (idle, idle_since) = (0, None),
            _ => {
                idle += 1;
                if !idle.is_multiple_of(POLLS_PER_OS_YIELD) {
                    std::hint::spin_loop();
                } else if idle_since.get_or_insert_with(std::time::Instant::now).elapsed() < IDLE_BEFORE_NAPS
                {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(NAP);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_the_closure_once_and_returns_its_result_on_any_pool() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sum = pool.install(|| {
                with_workers_awake(|| {
                    // parallel work inside still runs, on every worker
                    (0..10_000u64).into_par_iter().map(|i| i * i).sum::<u64>()
                })
            });
            assert_eq!(
                sum,
                (0..10_000u64).map(|i| i * i).sum::<u64>(),
                "{threads} threads"
            );
        }
        // outside any pool
        assert_eq!(with_workers_awake(|| 7), 7);
    }

    #[test]
    fn the_other_workers_take_jobs_while_it_runs() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let seen = pool.install(|| {
            with_workers_awake(|| {
                let me = rayon::current_thread_index();
                // Two jobs that each wait for the other to have started: they
                // finish only if the second worker takes one of them.
                let started = [AtomicBool::new(false), AtomicBool::new(false)];
                let wait = |i: usize| {
                    started[i].store(true, Ordering::Release);
                    let t = std::time::Instant::now();
                    while !started[1 - i].load(Ordering::Acquire) {
                        assert!(t.elapsed().as_secs() < 10, "the other worker never took a job");
                        std::hint::spin_loop();
                    }
                    rayon::current_thread_index()
                };
                let (a, b) = rayon::join(|| wait(0), || wait(1));
                (me, a, b)
            })
        });
        assert_ne!(seen.1, seen.2, "both jobs ran on one thread: {seen:?}");
    }

    /// Posts a half to this thread's handoff and waits (at most 10 s) for
    /// another thread to run it: the pool index of the thread that did.
    fn served_by() -> Option<usize> {
        let started = AtomicBool::new(false);
        let mut server = None;
        let posted = handoff::join_posting(
            || {
                // ends only if another thread runs the posted half
                let t = std::time::Instant::now();
                while !started.load(Ordering::Acquire) {
                    assert!(t.elapsed().as_secs() < 10, "no worker served the handoff");
                    std::hint::spin_loop();
                }
            },
            || {
                started.store(true, Ordering::Release);
                server = rayon::current_thread_index();
            },
        );
        assert!(posted.is_ok(), "this thread had no handoff to post to");
        server
    }

    #[test]
    fn the_other_workers_serve_the_owners_handoff_while_it_runs() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (owner, server) =
            pool.install(|| with_workers_awake(|| (rayon::current_thread_index(), served_by())));
        assert!(
            server.is_some() && server != owner,
            "owner {owner:?}, server {server:?}"
        );
        // once the closure has returned, the thread owns no handoff
        assert!(handoff::join_posting(|| (), || ()).is_err());
    }

    /// From a thread of no pool (a library user's `main`), a worker of
    /// rayon's global pool serves this thread's handoff, and all of that
    /// pool's workers but one poll (this thread is the last busy one).
    #[test]
    fn outside_any_pool_the_global_workers_serve_this_threads_handoff() {
        let workers = rayon::current_num_threads();
        if workers < 2 {
            println!("note: rayon's global pool has one thread here: nothing to serve");
            return;
        }
        // a thread of its own: the test harness's might be a pool's in another test binary
        let (server, most) = std::thread::spawn(move || {
            assert_eq!(rayon::current_thread_index(), None);
            let polling = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&polling);
            let (mut server, mut most) = (None, 0);
            with_workers_awake_counted(
                || {
                    server = served_by();
                    // Every worker has taken its copy of the spawned broadcast
                    // once it runs this later one (a poller runs it while polling).
                    rayon::broadcast(|_| ());
                    most = counted.load(Ordering::Acquire);
                },
                polling,
            );
            (server, most)
        })
        .join()
        .unwrap();
        assert!(
            server.is_some(),
            "the posted half ran on {server:?}, not a worker"
        );
        assert_eq!(most, workers - 1, "workers polling of {workers}: all but one");
    }

    #[test]
    fn the_workers_stop_polling_when_the_closure_returns_or_panics() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for panics in [false, true] {
            let polling = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&polling);
            let (seen, caught) = pool.install(|| {
                let seen = AtomicUsize::new(0);
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    with_workers_awake_counted(
                        || {
                            // until both other workers poll (at most 10 s)
                            let t = std::time::Instant::now();
                            while counted.load(Ordering::Acquire) < 2 && t.elapsed().as_secs() < 10 {
                                std::hint::spin_loop();
                            }
                            seen.store(counted.load(Ordering::Acquire), Ordering::Release);
                            if panics {
                                panic!("boom");
                            }
                        },
                        Arc::clone(&counted),
                    )
                }));
                (seen.load(Ordering::Acquire), caught.is_err())
            });
            assert_eq!(
                (seen, caught),
                (2, panics),
                "both other workers polled; panicked: {panics}"
            );
            let t = std::time::Instant::now();
            while polling.load(Ordering::Acquire) > 0 {
                assert!(
                    t.elapsed().as_secs() < 10,
                    "workers still polling (panicked: {panics})"
                );
                std::thread::yield_now();
            }
        }
    }
}
