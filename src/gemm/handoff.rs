//! Handing one half of a fork to a worker that polls for it.
//!
//! While a training epoch runs, the pool's other workers poll for jobs
//! instead of sleeping (`nn::awake`). Through `rayon::join`, a job still
//! reaches them by rayon's queues: the caller pushes it on its deque, and
//! an idle worker, between pauses, looks through every worker's deque and
//! the pool's injector, each look an epoch-tracked steal
//! (`crossbeam_epoch` and the two `steal`s were 5% of the samples of a
//! 2-thread workshop run under `perf`, Zen 5, AVX-512, 16 lanes). A
//! [`Mailbox`] is one pointer
//! instead: the thread that forks ([`join`]) stores the address of its
//! second half in it, and a polling worker ([`Mailbox::serve_one`]) swaps
//! it out and runs it. One line moves between the two cores each way.
//!
//! Whoever swaps the pointer out first runs the half: a worker that finds
//! it, or the caller once its own half is done (it finds the pointer still
//! there). Neither waits for the other to show up, so a worker that is
//! off its core, or not polling, costs nothing but the caller's running
//! both halves, as with `rayon::join` when nobody steals.
//!
//! A caller uses a mailbox only inside [`serving`], on the thread that
//! runs its closure (the one the pool's other workers poll for); anywhere
//! else [`current`] is `None`, and the fork goes through rayon as before.
//!
//! Nothing is computed differently, only picked up sooner: the same bits.

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

/// One slot for a job's address, on a cache line of its own (the
/// pollers read it over and over; nothing else there should move).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Mailbox {
    slot: AtomicPtr<Job<'static>>,
}

/// A half handed out: what runs it, whether a worker is done with it, and
/// the panic it raised there. It lives on the forking thread's stack,
/// which stays until the job is back or done ([`join`]).
struct Job<'a> {
    run: &'a (dyn Fn() + Sync),
    done: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Mailbox {
    /// Runs the job in the mailbox, if there is one and this thread takes
    /// it first; returns whether it ran one.
    pub fn serve_one(&self) -> bool {
        let job = self.slot.load(Ordering::Acquire);
        if job.is_null()
            || self
                .slot
                .compare_exchange(job, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        // SAFETY: the swap made this thread the job's only taker: the
        // forking thread keeps the job on its stack until `done` is set
        // (`join`'s `Back`), which is the last thing done with it here.
        let (run, panic) = unsafe { ((*job).run, &(*job).panic) };
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            *panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(payload);
        }
        // SAFETY: as above; after this store the job may be gone at once,
        // and it is not touched again.
        unsafe { (*job).done.store(true, Ordering::Release) };
        true
    }

    /// Puts `job` in the slot; `false` if another job is there.
    fn post(&self, job: &Job) -> bool {
        let job = std::ptr::from_ref(job).cast_mut().cast::<Job<'static>>();
        self.slot
            .compare_exchange(std::ptr::null_mut(), job, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes `job` back out of the slot; `false` if a worker took it.
    fn take_back(&self, job: &Job) -> bool {
        let job = std::ptr::from_ref(job).cast_mut().cast::<Job<'static>>();
        self.slot
            .compare_exchange(job, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

thread_local! {
    /// The mailbox the pool's other workers poll for this thread, while
    /// it runs [`serving`]'s closure; null elsewhere.
    static SERVED: Cell<*const Mailbox> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `mailbox` as this thread's ([`current`]): the caller
/// makes sure other threads poll it meanwhile. Restored however `f` ends.
pub fn serving<R>(mailbox: &Mailbox, f: impl FnOnce() -> R) -> R {
    struct Restore(*const Mailbox);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERVED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERVED.with(|s| s.replace(mailbox)));
    f()
}

/// The mailbox of the [`serving`] closure this thread runs, if any.
pub fn current() -> Option<&'static Mailbox> {
    let mailbox = SERVED.with(Cell::get);
    // SAFETY: set only by `serving`, whose borrow of the mailbox outlives
    // its closure, and reset when it ends; a `&'static` handed out here
    // is used by `join` within the same closure.
    (!mailbox.is_null()).then(|| unsafe { &*mailbox })
}

/// Runs `first` here and `second` on whichever thread takes it from
/// `mailbox` first (a polling worker, or this one once `first` is done),
/// and returns when both have run. A panic in either is raised here,
/// once the other thread is done with `second`.
pub fn join(mailbox: &Mailbox, first: impl FnOnce(), second: impl FnOnce() + Send) {
    // whoever takes the job calls `run` once; the lock is never contended
    let second = Mutex::new(Some(second));
    let run = || {
        let half = second.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(half) = half {
            half();
        }
    };
    let job = Job {
        run: &run,
        done: AtomicBool::new(false),
        panic: Mutex::new(None),
    };
    if !mailbox.post(&job) {
        // another fork's half is waiting there (a nested fork): both here
        first();
        return run();
    }
    // However `first` ends (even a panic), get the job back or wait until
    // the worker is done with it, before this frame goes.
    struct Back<'a> {
        mailbox: &'a Mailbox,
        job: &'a Job<'a>,
    }
    impl Back<'_> {
        /// Whether the job came back unrun (else a worker ran it).
        fn settle(&self) -> bool {
            if self.mailbox.take_back(self.job) {
                return true;
            }
            let mut spins = 0u32;
            while !self.job.done.load(Ordering::Acquire) {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(super::threads::SPINS_PER_YIELD) {
                    // let a process sharing this core in
                    std::thread::yield_now();
                }
            }
            false
        }
    }
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            self.settle();
        }
    }
    let back = Back { mailbox, job: &job };
    first();
    let unrun = back.settle();
    std::mem::forget(back);
    if unrun {
        return run();
    }
    let panic = job.panic.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Runs `f` on this thread with a mailbox that another thread polls
    /// until `f` is done; returns `f`'s result and how many jobs it ran.
    fn with_poller<R>(f: impl FnOnce(&Mailbox) -> R) -> (R, usize) {
        let mailbox = Arc::new(Mailbox::default());
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (mailbox, stop) = (Arc::clone(&mailbox), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut ran = 0;
                while !stop.load(Ordering::Acquire) {
                    if mailbox.serve_one() {
                        ran += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
                ran
            })
        };
        let result = serving(&mailbox, || f(&mailbox));
        stop.store(true, Ordering::Release);
        (result, poller.join().unwrap())
    }

    /// Waits until `flag` is set, at most `limit`.
    fn wait_for(flag: &AtomicBool, limit: Duration) {
        let t = Instant::now();
        while !flag.load(Ordering::Acquire) && t.elapsed() < limit {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn each_half_runs_once_and_the_poller_takes_the_second_when_it_can() {
        let (taken, ran) = with_poller(|mailbox| {
            let mut taken = 0;
            for i in 0..2000usize {
                let (mut a, mut b) = (0, 0);
                let started = AtomicBool::new(false);
                let here = std::thread::current().id();
                let mut on = None;
                join(
                    mailbox,
                    || {
                        a += i + 1;
                        // every other round, give the poller time to take the second
                        if i % 2 == 0 {
                            wait_for(&started, Duration::from_millis(1));
                        }
                    },
                    || {
                        started.store(true, Ordering::Release);
                        b += 2 * i + 1;
                        on = Some(std::thread::current().id());
                    },
                );
                assert_eq!((a, b), (i + 1, 2 * i + 1), "round {i}: each half once");
                taken += usize::from(on != Some(here));
            }
            taken
        });
        assert_eq!(taken, ran, "the poller ran exactly the halves it took");
        assert!(
            taken >= 500,
            "the poller took the second half {taken} times of 2000"
        );
    }

    #[test]
    fn join_returns_only_once_the_poller_is_done_and_raises_its_panic() {
        let ((), _) = with_poller(|mailbox| {
            // a slow second half on the poller: join waits for it
            let done = AtomicUsize::new(0);
            let started = AtomicBool::new(false);
            join(
                mailbox,
                || wait_for(&started, Duration::from_secs(10)),
                || {
                    started.store(true, Ordering::Release);
                    std::thread::sleep(Duration::from_millis(20));
                    done.store(1, Ordering::Release);
                },
            );
            assert_eq!(
                done.load(Ordering::Acquire),
                1,
                "join returned before the second half ended"
            );
            // a panic on the poller is raised here
            let started = AtomicBool::new(false);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                join(
                    mailbox,
                    || wait_for(&started, Duration::from_secs(10)),
                    || {
                        started.store(true, Ordering::Release);
                        panic!("second half");
                    },
                )
            }));
            let message = caught.expect_err("the poller's panic is raised on the caller");
            assert_eq!(message.downcast_ref::<&str>(), Some(&"second half"));
            // a panic in the first half waits for the poller's second half
            let (started, done) = (AtomicBool::new(false), AtomicBool::new(false));
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                join(
                    mailbox,
                    || {
                        wait_for(&started, Duration::from_secs(10));
                        panic!("first half");
                    },
                    || {
                        started.store(true, Ordering::Release);
                        std::thread::sleep(Duration::from_millis(20));
                        done.store(true, Ordering::Release);
                    },
                )
            }));
            assert!(caught.is_err());
            assert!(done.load(Ordering::Acquire), "unwound before the poller was done");
        });
    }

    #[test]
    fn nested_forks_finish_with_one_slot() {
        let (sum, _) = with_poller(|mailbox| {
            let total = AtomicUsize::new(0);
            let add = |n: usize| {
                total.fetch_add(n, Ordering::Relaxed);
            };
            for _ in 0..200 {
                // each half forks again: the slot is busy or taken meanwhile
                join(
                    mailbox,
                    || join(mailbox, || add(1), || add(2)),
                    || join(mailbox, || add(4), || add(8)),
                );
            }
            total.load(Ordering::Relaxed)
        });
        assert_eq!(sum, 200 * 15);
    }

    #[test]
    fn current_is_the_served_mailbox_only_inside_serving() {
        assert!(current().is_none());
        let (outer, inner) = (Mailbox::default(), Mailbox::default());
        serving(&outer, || {
            assert!(std::ptr::eq(current().unwrap(), &outer));
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serving(&inner, || {
                    assert!(std::ptr::eq(current().unwrap(), &inner));
                    panic!("inside");
                })
            }));
            assert!(caught.is_err());
            assert!(std::ptr::eq(current().unwrap(), &outer), "restored after a panic");
            // another thread has none
            assert!(std::thread::scope(|s| s
                .spawn(|| current().is_none())
                .join()
                .unwrap()));
        });
        assert!(current().is_none());
    }
}
