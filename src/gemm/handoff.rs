//! A fork of two halves through one cache line, for a pool whose other
//! workers are polling (`nn::awake`): the half handed over is posted in a
//! [`Handoff`], not pushed on rayon's queues.
//!
//! A training step of the workshop network forks twice (its two shards,
//! then the two parts of its first layer), each half a few microseconds.
//! Through `rayon::join` a fork moves several cache lines between the two
//! cores, one after the other: the queue the half is pushed on, the
//! thief's claim on it, the job on the caller's stack, the flags and the
//! lock of [`join_spinning`](super::threads::join_spinning), rayon's latch.
//! Through a `Handoff` the worker finds the half in the line it polls,
//! claims it there and says there that it is done; the owner posts with
//! plain stores (only it leaves `IDLE`) and looks before it tries to
//! claim the half back.
//!
//! Measured on a Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes, 2
//! vCPUs, 2026-12-05), each section of a 2-thread workshop step timed
//! (medians over 1,500 steps), the time a section took beyond its longer
//! half, before and after: in the host's fast state (a line there and back
//! in about 50 ns) 0.33-0.58 µs against 0.21-0.41; in its slow state
//! (about 360 ns) 1.8-2.0 µs against 1.0-1.5. The epoch, `train --json`,
//! the builds alternated (epochs 2-5 with validation): 0.966 in the slow
//! state (faster in 55 of 56 rounds), level in the fast one (0.990, 13 of
//! 24; 0.984-1.003 in other runs); 1 thread, 784-512-512-10 and LeNet-5
//! level.
//!
//! The protocol is `join_spinning`'s: whoever claims the posted half
//! first (a polling worker, or the owner once its own half is done) runs
//! it; the other never touches it; the owner returns only once it has
//! run. Nothing is allocated (a worker's panic aside); the results are the
//! same bits whoever runs which half.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::threads::{run_claimed, spin_until};

/// Nothing posted: the owner may post.
const IDLE: u8 = 0;
/// The owner is writing a post.
const POSTING: u8 = 1;
/// Posted, not claimed yet.
const OPEN: u8 = 2;
/// A worker claimed the post and runs it.
const TAKEN: u8 = 3;
/// The worker is done with it.
const DONE: u8 = 4;
/// The owner claimed it back (ran it, or dropped it while a panic unwinds).
const CALLER: u8 = 5;

/// One posted half: its closure's address (an `Option<T>` on the owner's
/// stack) and the function that takes and runs it.
#[derive(Clone, Copy)]
struct Post {
    job: *mut (),
    run: unsafe fn(*mut ()),
}

/// A one-slot mailbox between the thread that owns it (which posts halves)
/// and polling workers (which [`serve`](Self::serve) them). On its own
/// cache lines, so that polling it moves nothing else.
#[repr(align(128))]
pub struct Handoff {
    state: AtomicU8,
    /// Whether a thread owns it ([`owning`]): one at a time, as only the
    /// owner leaves `IDLE` and it does so without a compare-exchange.
    owned: AtomicBool,
    /// Written by the owner between `POSTING` and `OPEN`, read by the
    /// worker that moved `OPEN` to `TAKEN`.
    post: UnsafeCell<Post>,
    /// A worker's panic, written before `DONE`, taken by the owner after it.
    panic: UnsafeCell<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `post` and `panic` are only touched by the one thread the state
// lets in (the owner while POSTING or after DONE/CALLER, the claiming
// worker while TAKEN), and the state's Release/Acquire orders the accesses;
// the closure a post points at is `Send`.
unsafe impl Sync for Handoff {}
// SAFETY: as above; an idle handoff holds no closure.
unsafe impl Send for Handoff {}

impl Default for Handoff {
    fn default() -> Handoff {
        Handoff {
            state: AtomicU8::new(IDLE),
            owned: AtomicBool::new(false),
            post: UnsafeCell::new(Post {
                job: std::ptr::null_mut(),
                run: run_nothing,
            }),
            panic: UnsafeCell::new(None),
        }
    }
}

/// Placeholder for an empty slot; never called.
unsafe fn run_nothing(_: *mut ()) {}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl Handoff {
    /// Runs the posted half if this call claims it (a worker's poll);
    /// returns whether it ran one. A panic in it is kept for the owner,
    /// which raises it.
    pub fn serve(&self) -> bool {
        if self.state.load(Ordering::Relaxed) != OPEN
            || self
                .state
                .compare_exchange(OPEN, TAKEN, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        // SAFETY: TAKEN is ours: the owner wrote the post before OPEN
        // (Release, paired with the Acquire above) and waits for DONE
        // before it touches the post or frees the closure it points at.
        let post = unsafe { *self.post.get() };
        // SAFETY: as above; `run` is `run_claimed::<T>` for the closure's `T`.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (post.run)(post.job) }));
        if let Err(panic) = run {
            // SAFETY: TAKEN is ours (see above); the owner reads it after DONE.
            unsafe { *self.panic.get() = Some(panic) };
        }
        self.state.store(DONE, Ordering::Release);
        true
    }

    /// Runs `first` here and posts `second` for a polling worker; if none
    /// claims it before `first` is done, runs it here too. `Err` with both
    /// unrun if the slot is in use (a fork inside a fork).
    fn join<F: FnOnce(), S: FnOnce() + Send>(&self, first: F, second: S) -> Result<(), (F, S)> {
        // Only the owner moves the state out of IDLE (workers wait for
        // OPEN), so a load and plain stores do: nothing here waits for the
        // line to come back from a worker that polled it, the stores drain
        // while `first` runs.
        if self.state.load(Ordering::Acquire) != IDLE {
            return Err((first, second));
        }
        self.state.store(POSTING, Ordering::Relaxed);
        let mut second = Some(second);
        let there: *mut Option<S> = &mut second;
        // SAFETY: POSTING is ours: no worker reads the post until OPEN.
        unsafe {
            *self.post.get() = Post {
                job: there.cast(),
                run: run_claimed::<S>,
            }
        };
        self.state.store(OPEN, Ordering::Release);
        let settle = Settle { handoff: self, there };
        first();
        drop(settle);
        // SAFETY: the state is IDLE again and this thread owns the slot's
        // panic (a worker wrote it before DONE; Settle saw DONE with Acquire).
        if let Some(panic) = unsafe { (*self.panic.get()).take() } {
            std::panic::resume_unwind(panic);
        }
        Ok(())
    }
}

/// On drop, in the owner: runs the posted half if no worker claimed it
/// (drops it unrun while a panic unwinds), else waits until the worker is
/// done; then frees the slot.
struct Settle<'a, S: FnOnce()> {
    handoff: &'a Handoff,
    there: *mut Option<S>,
}

impl<S: FnOnce()> Drop for Settle<'_, S> {
    fn drop(&mut self) {
        let state = &self.handoff.state;
        // the slot is freed however this ends (a panic in the half run here too)
        let _free = FreeSlot(state);
        // Claimed already? A load first: a failed compare-exchange would take
        // the line from the worker, which then waits to get it back for DONE.
        if state.load(Ordering::Acquire) == OPEN
            && state
                .compare_exchange(OPEN, CALLER, Ordering::Acquire, Ordering::Acquire)
                .is_ok()
        {
            // SAFETY: claimed by the owner: no worker touches it; the
            // `Option<S>` lives in `join`'s frame, which outlives `self`.
            if let Some(there) = unsafe { &mut *self.there }.take() {
                if !std::thread::panicking() {
                    there();
                }
            }
            return;
        }
        // a worker has it: spin until it is done (it is running)
        spin_until(|| state.load(Ordering::Acquire) == DONE);
        if std::thread::panicking() {
            // `join` will not raise the worker's panic over this one: drop it,
            // or the next fork would raise it
            // SAFETY: DONE (seen with Acquire): the worker is done with the slot.
            drop(unsafe { (*self.handoff.panic.get()).take() });
        }
    }
}

/// Sets the slot back to `IDLE` when dropped.
struct FreeSlot<'a>(&'a AtomicU8);

impl Drop for FreeSlot<'_> {
    fn drop(&mut self) {
        self.0.store(IDLE, Ordering::Release);
    }
}

thread_local! {
    /// The handoff this thread posts to ([`owning`]), if any.
    static OWNED: Cell<*const Handoff> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `handoff` as this thread's: [`join_posting`] on this
/// thread posts there while `f` runs (the previous one, if any, is this
/// thread's again after, also if `f` panics). The caller keeps workers
/// [`serve`](Handoff::serve)-ing it meanwhile, or every post is run by
/// this thread.
///
/// Panics if another thread owns `handoff` (or this one already does).
pub fn owning<R>(handoff: &Handoff, f: impl FnOnce() -> R) -> R {
    assert!(
        !handoff.owned.swap(true, Ordering::AcqRel),
        "a handoff has one owner at a time"
    );
    struct Restore<'a>(*const Handoff, &'a AtomicBool);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            OWNED.with(|o| o.set(self.0));
            self.1.store(false, Ordering::Release);
        }
    }
    let _restore = Restore(OWNED.with(|o| o.replace(handoff)), &handoff.owned);
    f()
}

/// Runs `first` here and `second` on a worker that serves this thread's
/// handoff ([`owning`]) if one claims it first, else here after `first`;
/// returns once both have run. `Err` with both unrun if this thread owns
/// no handoff or its slot is in use.
pub fn join_posting<F: FnOnce(), S: FnOnce() + Send>(first: F, second: S) -> Result<(), (F, S)> {
    let owned = OWNED.with(Cell::get);
    if owned.is_null() {
        return Err((first, second));
    }
    // SAFETY: `owning` set it from a reference that outlives its `f`, and
    // restores the previous value before returning: while it is set here,
    // the handoff is alive.
    unsafe { &*owned }.join(first, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// Spins until `flag` is set, for at most 10 s; whether it was set.
    fn wait_for(flag: &AtomicBool) -> bool {
        let t = Instant::now();
        while !flag.load(Ordering::Acquire) {
            if t.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    /// Runs `f` on this thread, owning a handoff that another thread
    /// serves until `f` returns (or panics).
    fn served<R>(f: impl FnOnce(&Handoff) -> R) -> R {
        let handoff = Handoff::default();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    handoff.serve();
                    std::hint::spin_loop();
                }
            });
            struct Stop<'a>(&'a AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _stop = Stop(&stop);
            owning(&handoff, || f(&handoff))
        })
    }

    #[test]
    fn a_serving_thread_runs_the_posted_half_once() {
        let me = std::thread::current().id();
        let (first, second) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let started = AtomicBool::new(false);
        let mut ran_on = None;
        served(|_| {
            for _ in 0..100 {
                // the first half waits until the second has started: it can
                // only end if another thread runs the second
                let joined = join_posting(
                    || {
                        assert!(wait_for(&started), "no thread took the posted half");
                        first.fetch_add(1, Ordering::Relaxed);
                    },
                    || {
                        started.store(true, Ordering::Release);
                        ran_on = Some(std::thread::current().id());
                        second.fetch_add(1, Ordering::Relaxed);
                    },
                );
                assert!(joined.is_ok(), "posting failed");
                started.store(false, Ordering::Release);
                assert_ne!(ran_on.take(), Some(me), "the posted half ran on the owner");
            }
        });
        assert_eq!((first.into_inner(), second.into_inner()), (100, 100));
    }

    #[test]
    fn without_a_server_the_owner_runs_both_halves_in_order() {
        let handoff = Handoff::default();
        let order = std::sync::Mutex::new(Vec::new());
        owning(&handoff, || {
            let joined = join_posting(|| order.lock().unwrap().push(1), || order.lock().unwrap().push(2));
            assert!(joined.is_ok());
        });
        assert_eq!(*order.lock().unwrap(), [1, 2]);
        assert_eq!(handoff.state.load(Ordering::Relaxed), IDLE);
    }

    #[test]
    fn nothing_runs_outside_owning_or_in_a_fork_inside_a_fork() {
        let ran = AtomicUsize::new(0);
        let run = || {
            ran.fetch_add(1, Ordering::Relaxed);
        };
        assert!(join_posting(run, run).is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 0, "outside `owning`");
        let handoff = Handoff::default();
        owning(&handoff, || {
            let outer = join_posting(
                || assert!(join_posting(run, run).is_err(), "the slot was in use"),
                run,
            );
            assert!(outer.is_ok());
        });
        assert_eq!(ran.load(Ordering::Relaxed), 1, "only the outer second half");
        // the owner's handoff is no longer this thread's
        assert!(join_posting(run, run).is_err());
    }

    #[test]
    fn a_handoff_has_one_owner_at_a_time() {
        let handoff = Handoff::default();
        let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            owning(&handoff, || owning(&handoff, || ()))
        }));
        let message = twice.expect_err("owned twice");
        assert_eq!(
            message.downcast_ref::<&str>(),
            Some(&"a handoff has one owner at a time")
        );
        // free again once the owner is done, also after that panic
        assert_eq!(owning(&handoff, || 7), 7);
        std::thread::scope(|s| s.spawn(|| owning(&handoff, || ())).join().unwrap());
    }

    #[test]
    fn a_panic_on_the_server_is_raised_on_the_owner_once() {
        let started = AtomicBool::new(false);
        served(|handoff| {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = join_posting(
                    || assert!(wait_for(&started), "no thread took the posted half"),
                    || {
                        started.store(true, Ordering::Release);
                        panic!("boom on the server");
                    },
                );
            }));
            let message = caught.expect_err("the server's panic was not raised");
            assert_eq!(message.downcast_ref::<&str>(), Some(&"boom on the server"));
            assert_eq!(handoff.state.load(Ordering::Relaxed), IDLE);
            // the next fork runs and raises nothing
            let mut both = (false, false);
            assert!(join_posting(|| both.0 = true, || both.1 = true).is_ok());
            assert_eq!(both, (true, true));
        });
    }

    #[test]
    fn a_panic_on_the_owner_waits_for_the_server_and_leaves_the_slot_free() {
        let (started, unwinding) = (AtomicBool::new(false), AtomicBool::new(false));
        let finished = AtomicBool::new(false);
        /// Sets its flag when dropped: as the owner's half unwinds.
        struct SetOnDrop<'a>(&'a AtomicBool);
        impl Drop for SetOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        served(|handoff| {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = join_posting(
                    || {
                        assert!(wait_for(&started), "no thread took the posted half");
                        let _unwinding = SetOnDrop(&unwinding);
                        panic!("boom on the owner");
                    },
                    || {
                        started.store(true, Ordering::Release);
                        // still running well after the owner's half has unwound
                        assert!(wait_for(&unwinding), "the owner's half never unwound");
                        std::thread::sleep(Duration::from_millis(50));
                        // the owner has not returned: what this half borrows is alive
                        finished.store(true, Ordering::Release);
                        panic!("boom on the server too");
                    },
                );
            }));
            let message = caught.expect_err("the owner's panic was not raised");
            assert_eq!(message.downcast_ref::<&str>(), Some(&"boom on the owner"));
            assert!(
                finished.load(Ordering::Acquire),
                "returned before the server was done"
            );
            assert_eq!(handoff.state.load(Ordering::Relaxed), IDLE);
            // the server's panic was dropped, not left for the next fork
            assert!(join_posting(|| (), || ()).is_ok());
        });
    }
}
