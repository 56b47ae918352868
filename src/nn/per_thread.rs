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

use std::sync::Mutex;

use crate::nn::network::{Network, Workspace};

/// A workspace for each thread of the current pool, made on first use.
pub(crate) struct PerThread<'n> {
    net: &'n Network,
    rows: usize,
    slots: Vec<Mutex<Option<Workspace>>>,
}

impl<'n> PerThread<'n> {
    /// Room for one workspace of `rows` rows of `net` per thread of the
    /// current pool (nothing is allocated yet).
    pub(crate) fn new(net: &'n Network, rows: usize) -> PerThread<'n> {
        PerThread {
            net,
            rows,
            slots: (0..rayon::current_num_threads())
                .map(|_| Mutex::new(None))
                .collect(),
        }
    }

    /// Runs `f` with this thread's workspace. A thread outside the pool, or
    /// one whose workspace is in use (a task nested in another on the same
    /// thread), gets a workspace of its own for this call.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Workspace) -> R) -> R {
        let slot = rayon::current_thread_index()
            .and_then(|i| self.slots.get(i))
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
}
