//! One inference [`Workspace`] per thread of the pool, for the passes that
//! run a network over a data set in fixed chunks of rows (evaluation,
//! prediction, the confusion matrix).
//!
//! Rayon's `map_init` runs its init once per piece it splits the work
//! into, up to once per chunk; each made a new workspace, whose pages the
//! kernel then faulted in and zeroed. Evaluating 784-512-512-10 on the
//! 10,000 test images took 7,400 page faults (about 30 MB of new buffers)
//! for 40 chunks of 256 rows. Here each thread makes its workspace once
//! per pass and reuses it for every chunk it runs. A workspace holds no
//! state from one chunk to the next that a forward pass reads, so the
//! results are the same whichever thread runs which chunk.
//!
//! A loop that evaluates the same network every epoch keeps them from one
//! pass to the next ([`EvalBuffers`], [`Network::evaluate_reusing`]): made
//! anew, their pages were faulted in and zeroed again each time, about a
//! fifth of the workshop network's validation pass under `perf` (Zen 5,
//! AVX-512, 16 f32 lanes, 2 threads).

use std::sync::Mutex;

use crate::nn::network::{Network, Workspace};

/// One slot per thread of a pool, each holding that thread's workspace once made.
type Slots = Vec<Mutex<Option<Workspace>>>;

/// Empty slots for the threads of the current pool.
fn empty_slots() -> Slots {
    (0..rayon::current_num_threads())
        .map(|_| Mutex::new(None))
        .collect()
}

/// Inference workspaces kept from one evaluation to the next by
/// [`Network::evaluate_reusing`], one per thread of the pool: for a loop
/// that evaluates the same network (the same layers, weights changing) over
/// and over, as training's validation does after every epoch. They are
/// made again when the network's layers ([`Network::describe`]), the rows
/// per chunk or the pool's thread count differ from the last call's. They
/// hold no state a forward pass reads, so the results are those of
/// [`Network::evaluate`]; only the time differs.
#[derive(Debug, Default)]
pub struct EvalBuffers {
    /// The layers ([`Network::describe`]) and rows per chunk `slots` were made for.
    made_for: Option<(String, usize)>,
    slots: Slots,
}

impl EvalBuffers {
    /// No workspace yet: they are made by the first evaluation.
    pub fn new() -> EvalBuffers {
        EvalBuffers::default()
    }

    /// The slots for `net` in chunks of `rows`, emptied first if they were
    /// made for other layers, another chunk size or another pool.
    fn slots_for(&mut self, net: &Network, rows: usize) -> &Slots {
        let made_for = Some((net.describe(), rows));
        if self.made_for != made_for || self.slots.len() != rayon::current_num_threads() {
            self.made_for = made_for;
            self.slots = empty_slots();
        }
        &self.slots
    }
}

/// The slots a [`PerThread`] hands out: its own, or those of an [`EvalBuffers`].
enum SlotsOf<'n> {
    Own(Slots),
    Kept(&'n Slots),
}

/// A workspace for each thread of the current pool, made on first use.
pub(crate) struct PerThread<'n> {
    net: &'n Network,
    rows: usize,
    slots: SlotsOf<'n>,
}

impl<'n> PerThread<'n> {
    /// Room for one workspace of `rows` rows of `net` per thread of the
    /// current pool (nothing is allocated yet).
    pub(crate) fn new(net: &'n Network, rows: usize) -> PerThread<'n> {
        PerThread {
            net,
            rows,
            slots: SlotsOf::Own(empty_slots()),
        }
    }

    /// As [`new`](Self::new), the workspaces taken from `kept` (made there
    /// on first use, and left there for the next pass).
    pub(crate) fn kept(net: &'n Network, rows: usize, kept: &'n mut EvalBuffers) -> PerThread<'n> {
        PerThread {
            net,
            rows,
            slots: SlotsOf::Kept(kept.slots_for(net, rows)),
        }
    }

    /// Runs `f` with this thread's workspace. A thread outside the pool, or
    /// one whose workspace is in use (a task nested in another on the same
    /// thread), gets a workspace of its own for this call.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Workspace) -> R) -> R {
        let slots = match &self.slots {
            SlotsOf::Own(slots) => slots,
            SlotsOf::Kept(slots) => *slots,
        };
        let slot = rayon::current_thread_index()
            .and_then(|i| slots.get(i))
            .and_then(|slot| slot.try_lock().ok());
        match slot {
            Some(mut ws) => f(ws.get_or_insert_with(|| Workspace::for_inference(self.net, self.rows))),
            None => f(&mut Workspace::for_inference(self.net, self.rows)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use rayon::prelude::*;

    /// Each pool thread makes one workspace, however many chunks it runs;
    /// a call from outside the pool gets its own.
    #[test]
    fn each_thread_makes_one_workspace() {
        let net = Network::mlp(4, &[3], 2, Activation::Relu, 1).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let per = pool.install(|| PerThread::new(&net, 8));
        let made = std::sync::atomic::AtomicUsize::new(0);
        pool.install(|| {
            (0..64).into_par_iter().for_each(|_| {
                per.with(|ws| {
                    // a fresh workspace has run no forward pass yet
                    if ws.rows() == 0 {
                        made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    ws.forward(
                        &net,
                        crate::matrix::Matrix::zeros(8, 4).view(),
                        1.0,
                        crate::gemm::Parallelism::Sequential,
                    );
                })
            })
        });
        let made = made.into_inner();
        assert!(
            (1..=2).contains(&made),
            "{made} workspaces made for 64 chunks on 2 threads"
        );
        // outside the pool: a workspace for the call, the pool's untouched
        let fresh = per.with(|ws| ws.rows());
        assert_eq!(fresh, 0);
    }

    /// Workspaces made by one pass of 64 chunks of `rows` rows of `net` on
    /// `pool`, taking them from `kept`.
    fn made_in(pool: &rayon::ThreadPool, net: &Network, rows: usize, kept: &mut EvalBuffers) -> usize {
        let made = std::sync::atomic::AtomicUsize::new(0);
        pool.install(|| {
            let per = PerThread::kept(net, rows, kept);
            (0..64).into_par_iter().for_each(|_| {
                per.with(|ws| {
                    if ws.rows() == 0 {
                        made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let x = crate::matrix::Matrix::zeros(rows, net.inputs());
                    ws.forward(net, x.view(), 1.0, crate::gemm::Parallelism::Sequential);
                })
            })
        });
        made.into_inner()
    }

    /// Kept workspaces are made by the first pass and reused by the next
    /// ones, whatever the weights; made again for other layers, another
    /// chunk size or another pool.
    #[test]
    fn kept_workspaces_are_made_once_until_the_layers_or_rows_change() {
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut net = Network::mlp(4, &[3], 2, Activation::Relu, 1).unwrap();
        let mut kept = EvalBuffers::new();
        // a pass may run all its chunks on one of the two threads, so the
        // second thread's workspace may be made by a later pass: at most
        // two in all, whatever the passes
        let mut made = made_in(&two, &net, 8, &mut kept);
        assert!((1..=2).contains(&made), "{made} made by the first pass");
        for _ in 0..3 {
            net.layers_mut()[0].params_mut(0)[0] += 1.0;
            made += made_in(&two, &net, 8, &mut kept);
        }
        assert!(
            made <= 2,
            "{made} made by four passes of the same layers, new weights"
        );
        assert!(made_in(&two, &net, 5, &mut kept) >= 1, "5 rows a chunk, not 8");
        let wider = Network::mlp(4, &[5], 2, Activation::Relu, 1).unwrap();
        assert!(made_in(&two, &wider, 5, &mut kept) >= 1, "other layers");
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(made_in(&one, &wider, 5, &mut kept), 1, "a pool of one thread");
    }

    /// Evaluating with kept workspaces gives the bits of a plain
    /// evaluation, pass after pass, as weights, layers and sizes change.
    #[test]
    fn evaluating_with_kept_workspaces_gives_the_bits_of_a_fresh_evaluation() {
        use crate::data::Dataset;
        // mostly zero pixels (about 15% not), so that a narrow first layer
        // may be multiplied from its non-zeros as well
        let data = |n: usize| {
            let x: Vec<u8> = (0..n * 784)
                .map(|i| {
                    if (i * 7919) % 97 < 15 {
                        (i % 251) as u8 + 1
                    } else {
                        0
                    }
                })
                .collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
            Dataset::from_pixels(x, labels, 784).unwrap()
        };
        let mut kept = EvalBuffers::new();
        let mut net = Network::mlp(784, &[16, 16], 3, Activation::Relu, 3).unwrap();
        for (pass, n) in [300, 300, 40, 300].into_iter().enumerate() {
            let d = data(n);
            let (fresh, reused) = (
                net.evaluate(&d).unwrap(),
                net.evaluate_reusing(&d, &mut kept).unwrap(),
            );
            assert_eq!(
                (fresh.loss.to_bits(), fresh.accuracy.to_bits()),
                (reused.loss.to_bits(), reused.accuracy.to_bits()),
                "pass {pass}, {n} examples"
            );
            net.layers_mut()[1].params_mut(0)[pass] -= 0.5;
        }
        let other = Network::mlp(784, &[7], 3, Activation::Tanh, 4).unwrap();
        let d = data(300);
        assert_eq!(
            other.evaluate(&d).unwrap().loss.to_bits(),
            other.evaluate_reusing(&d, &mut kept).unwrap().loss.to_bits()
        );
    }
}
