//! The update of several tensors cut into pieces that tasks claim.
//!
//! In a step with the first layer split along its inputs ([`crate::nn::split`]),
//! each part's task updates its rows of the first layer's `W`; every other
//! tensor (the first layer's `b` and the other layers: "the rest") is
//! updated in the same parallel section. The rest used to go whole to the
//! first part done, which cut its large tensors into chunks for the pool
//! (`rayon`'s splitting, the other part's thread stealing halves once it
//! was free). A large network's rest is mostly one tensor whose update
//! waits on memory: 784-512-512-10's second `W` (262,144 parameters, 20
//! bytes each a step) took about 110 µs a step on one thread or two.
//!
//! Here the rest is cut into pieces of at most [`PIECE`] parameters (by
//! the first part done, [`LazyPieces`]), and
//! each part, once its own work is done, claims pieces one at a time
//! ([`Pieces::run_one`]) until none is left: the first part done starts,
//! the other joins when it is free, and the two finish within a piece of
//! each other. Each parameter's update reads only its own gradient and
//! state, so a piece has the bits of its tensor's whole update, whoever
//! runs it and in whatever order.
//!
//! Measured on an Intel Xeon (family 6 model 167 as its hypervisor reports
//! it, AVX-512, 16 lanes, 2 threads; `train --layers 512,512 --epochs 1
//! --json`, the builds before and after alternated, 8 pairs): 0.987x the
//! epoch (faster in 7 of 8). Claiming a piece between the blocks of a
//! part's own update (`Part::backward_update_blocks`), to run the rest
//! while that update waits less on memory, was slower: 1.059x the median
//! step (faster in 1 of 8); so was claiming them before the part's look
//! ahead at the next step's first layer: 1.043x the epoch.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::nn::optim::{Optimizer, TensorSlots};
use crate::trace::{scope, Kind};

/// The most pieces one step's rest is cut into (they live on the stack).
pub const MAX_PIECES: usize = 64;

/// The most tensors a rest may have: each is cut into whole pieces, and a
/// rest of `total` parameters into at most `MAX_PIECES / 2` pieces of full
/// length ([`piece_len`]), so at most [`MAX_PIECES`] in all. A network
/// with more trainable tensors (over 16 layers) does not have its first
/// layer split ([`crate::nn::split`]).
pub const MAX_TENSORS: usize = MAX_PIECES / 2;

/// Parameters per piece: 16 Ki (a fifth of a megabyte of parameters and
/// state), or more for a rest too large for [`MAX_PIECES`] such pieces.
pub const PIECE: usize = 1 << 14;

/// The length of the pieces of a rest of `total` parameters.
pub fn piece_len(total: usize) -> usize {
    PIECE.max(total.div_ceil(MAX_PIECES - MAX_TENSORS))
}

/// One piece: a slice of a tensor, its optimiser state, its weight decay,
/// and where its gradient is: `(layer, tensor of the layer, offset)`.
struct Piece<'a> {
    w: &'a mut [f32],
    slots: TensorSlots<'a>,
    decay: f32,
    grad: (usize, usize, usize),
}

/// The pieces of a rest, for tasks to claim a group at a time.
pub struct Pieces<'a> {
    pieces: [Mutex<Option<Piece<'a>>>; MAX_PIECES],
    /// Group `g` is pieces `starts[g]..starts[g + 1]`: consecutive pieces
    /// of at most [`piece_len`] parameters in all, so that a small
    /// network's whole rest is one claim, as it was one task before (each
    /// claim is an atomic operation on a line both cores write); the pieces
    /// are `0..starts[groups]`.
    starts: [usize; MAX_PIECES + 1],
    groups: usize,
    next: AtomicUsize,
}

impl<'a> Pieces<'a> {
    /// Cuts `tensors` into pieces of [`piece_len`]`(total)` parameters: each
    /// tensor its parameters, its optimiser state, its decay and which
    /// gradient it is `(layer, tensor of the layer)`, in order.
    ///
    /// # Panics
    /// With more than [`MAX_TENSORS`] tensors, or if `total` is less than
    /// their parameters.
    pub fn new(
        total: usize,
        tensors: impl IntoIterator<Item = (&'a mut [f32], TensorSlots<'a>, f32, (usize, usize))>,
    ) -> Pieces<'a> {
        let len = piece_len(total);
        let pieces = [const { Mutex::new(None) }; MAX_PIECES];
        let mut starts = [0; MAX_PIECES + 1];
        let (mut groups, mut in_group) = (0, len);
        let (mut count, mut seen, mut params) = (0, 0, 0);
        for (mut w, mut slots, decay, (l, k)) in tensors {
            seen += 1;
            params += w.len();
            assert!(seen <= MAX_TENSORS, "pieces: more than {MAX_TENSORS} tensors");
            assert!(
                params <= total,
                "pieces: more parameters than the {total} announced"
            );
            let mut offset = 0;
            while !w.is_empty() {
                let take = len.min(w.len());
                if in_group + take > len {
                    (starts[groups], groups, in_group) = (count, groups + 1, 0);
                }
                in_group += take;
                let (head, tail) = std::mem::take(&mut w).split_at_mut(take);
                let (head_slots, tail_slots) = slots.split_at(take);
                let piece = Piece {
                    w: head,
                    slots: head_slots,
                    decay,
                    grad: (l, k, offset),
                };
                *pieces[count].lock().unwrap_or_else(PoisonError::into_inner) = Some(piece);
                (w, slots, offset, count) = (tail, tail_slots, offset + take, count + 1);
            }
        }
        starts[groups] = count;
        Pieces {
            pieces,
            starts,
            groups,
            next: AtomicUsize::new(0),
        }
    }

    /// How many pieces there are.
    pub fn len(&self) -> usize {
        self.starts[self.groups]
    }

    /// Whether there is no piece.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many groups of pieces there are (what [`run_one`](Self::run_one) claims).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Claims the next group of pieces no task has claimed and updates
    /// them: each piece's gradient the sum, in order, of
    /// `grad(s, l, k)[offset..]` over `s < parts` (the shards'). Returns
    /// the parameters updated, or `None` when every group was claimed
    /// already.
    pub fn run_one<'g>(
        &self,
        optimizer: &Optimizer,
        parts: usize,
        grad: impl Fn(usize, usize, usize) -> &'g [f32] + Sync,
    ) -> Option<usize> {
        let g = self.next.fetch_add(1, Ordering::Relaxed);
        if g >= self.groups {
            return None;
        }
        let mut done = 0;
        for cell in &self.pieces[self.starts[g]..self.starts[g + 1]] {
            let piece = cell
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .expect("each piece is claimed once");
            let (w, (l, k, offset)) = (piece.w, piece.grad);
            let range = offset..offset + w.len();
            done += w.len();
            let _t = scope(Kind::Optimizer, 0).bytes((16 + 4 * parts) * w.len());
            piece
                .slots
                .update_summed_decayed(optimizer, w, piece.decay, parts, |s| {
                    &grad(s, l, k)[range.clone()]
                });
        }
        Some(done)
    }
}

/// The rest, cut into [`Pieces`] by the first task that claims one.
///
/// Cutting took 0.2 µs a step for the workshop network (Zen 5, AVX-512,
/// 16 lanes: the array of pieces is made whatever the rest's size), spent
/// on one thread between the step's two parallel sections while the
/// other waited. Here the part done first cuts, beside the slower part's
/// work.
pub struct LazyPieces<'a, I> {
    total: usize,
    rest: Mutex<Option<I>>,
    pieces: OnceLock<Pieces<'a>>,
    /// Cutting panicked: nobody will cut them, nothing is claimed.
    failed: AtomicBool,
}

impl<'a, I> LazyPieces<'a, I>
where
    I: Iterator<Item = (&'a mut [f32], TensorSlots<'a>, f32, (usize, usize))>,
{
    /// The rest `tensors` (see [`Pieces::new`]), not cut yet.
    pub fn new(total: usize, tensors: impl IntoIterator<IntoIter = I>) -> LazyPieces<'a, I> {
        LazyPieces {
            total,
            rest: Mutex::new(Some(tensors.into_iter())),
            pieces: OnceLock::new(),
            failed: AtomicBool::new(false),
        }
    }

    /// [`Pieces::run_one`], cutting the rest first if no task has. A task
    /// that finds another cutting waits for it awake (a fraction of a
    /// microsecond); if that cut panics, it claims nothing.
    pub fn run_one<'g>(
        &self,
        optimizer: &Optimizer,
        parts: usize,
        grad: impl Fn(usize, usize, usize) -> &'g [f32] + Sync,
    ) -> Option<usize> {
        // Once another task has taken the rest, only wait for its cut:
        // no lock a spin.
        let mut taken = false;
        let mut spins = 0u32;
        loop {
            if let Some(pieces) = self.pieces.get() {
                return pieces.run_one(optimizer, parts, grad);
            }
            if self.failed.load(Ordering::Acquire) {
                return None;
            }
            if !taken {
                let rest = self.rest.lock().unwrap_or_else(PoisonError::into_inner).take();
                match rest {
                    Some(rest) => {
                        // told to the others if `Pieces::new` panics
                        let failed = Failed(&self.failed);
                        let cut = Pieces::new(self.total, rest);
                        std::mem::forget(failed);
                        // the only one to set it: this task took the rest
                        let _ = self.pieces.set(cut);
                        continue;
                    }
                    None => taken = true,
                }
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 10) {
                // the cutter may be off its core (cores oversubscribed)
                std::thread::yield_now();
            }
        }
    }
}

/// Sets its flag if dropped (while a panic unwinds).
struct Failed<'f>(&'f AtomicBool);

impl Drop for Failed<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::OptimizerState;

    /// Three tensors' parameters, gradients (two parts each) and state.
    fn setup(sizes: &[usize]) -> (Vec<Vec<f32>>, Vec<[Vec<f32>; 2]>) {
        let params = sizes
            .iter()
            .enumerate()
            .map(|(t, &n)| (0..n).map(|i| ((i * 7 + t) % 13) as f32 * 0.1 - 0.6).collect())
            .collect();
        let grads = sizes
            .iter()
            .map(|&n| {
                let g = |p: usize| (0..n).map(|i| ((i * 5 + p) % 11) as f32 * 0.01 - 0.05).collect();
                [g(0), g(1)]
            })
            .collect();
        (params, grads)
    }

    #[test]
    fn pieces_claimed_by_two_threads_give_the_bits_of_whole_updates() {
        claimed_by_two_threads_as_whole_updates(false);
    }

    #[test]
    fn pieces_cut_by_the_first_claimant_give_the_bits_of_whole_updates() {
        claimed_by_two_threads_as_whole_updates(true);
    }

    /// Three steps of three optimisers on a rest of four tensors, cut into
    /// pieces (by the first claimant if `lazy`) and claimed by two threads
    /// at once, against each tensor's whole update.
    fn claimed_by_two_threads_as_whole_updates(lazy: bool) {
        // tensor 0 of the state stands for the first layer's W (not in the rest)
        let sizes = [3 * PIECE + 5, 7, 2 * PIECE, 1];
        let total: usize = sizes.iter().sum();
        let decays = [0.01, 0.0, 0.01, 0.0];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for optimizer in [
            Optimizer::rmsprop(0.01),
            Optimizer::adam(0.01),
            Optimizer::momentum(0.1, 0.9),
        ] {
            let (mut want, grads) = setup(&sizes);
            let mut got = want.clone();
            let mut whole = OptimizerState::new(&[[1].as_slice(), &sizes].concat());
            let mut cut = whole.clone();
            for step in 0..3 {
                whole.begin_step();
                for (t, w) in want.iter_mut().enumerate() {
                    let g = &grads[t];
                    whole.update_summed_decayed(&optimizer, t + 1, w, decays[t], 2, |p| &g[p]);
                }
                cut.begin_step();
                let (_, mut others) = cut.split_first();
                let tensors = got
                    .iter_mut()
                    .zip(others.tensors())
                    .enumerate()
                    .map(|(t, (w, slots))| (w.as_mut_slice(), slots, decays[t], (t, 0)));
                let grad = |p: usize, l: usize, _| grads[l][p].as_slice();
                let (a, b) = if lazy {
                    let pieces = LazyPieces::new(total, tensors);
                    let run = || std::iter::from_fn(|| pieces.run_one(&optimizer, 2, grad)).sum::<usize>();
                    pool.join(run, run)
                } else {
                    let pieces = Pieces::new(total, tensors);
                    assert_eq!(pieces.len(), 4 + 1 + 2 + 1, "pieces of {PIECE}");
                    // 3 whole, then 5 + 7, 2 whole, then the 1 alone (after a whole one)
                    assert_eq!(pieces.groups(), 3 + 1 + 2 + 1, "groups of up to {PIECE}");
                    let run = || std::iter::from_fn(|| pieces.run_one(&optimizer, 2, grad)).sum::<usize>();
                    pool.join(run, run)
                };
                assert_eq!(a + b, total, "every parameter updated once (lazy: {lazy})");
                assert_eq!(got, want, "{optimizer:?}, step {step}, lazy: {lazy}");
            }
        }
    }

    #[test]
    fn a_cut_that_panics_leaves_nothing_to_claim_and_nobody_waiting() {
        // more tensors than a rest may have: `Pieces::new` panics. Leaked,
        // so that a claimant that waits for ever cannot hang the test.
        let sizes = vec![1; MAX_TENSORS + 2];
        let (params, grads) = setup(&sizes);
        let (params, grads) = (Box::leak(Box::new(params)), &*Box::leak(Box::new(grads)));
        let state = Box::leak(Box::new(OptimizerState::new(&sizes)));
        state.begin_step();
        let (_, others) = state.split_first();
        let tensors = params
            .iter_mut()
            .skip(1)
            .zip(Box::leak(Box::new(others)).tensors())
            .enumerate()
            .map(|(t, (w, slots))| (w.as_mut_slice(), slots, 0.0, (t + 1, 0)));
        let pieces = &*Box::leak(Box::new(LazyPieces::new(sizes.len(), tensors)));
        let grad = |p: usize, l: usize, _| grads[l][p].as_slice();
        let cut = std::panic::catch_unwind(|| pieces.run_one(&Optimizer::sgd(0.1), 2, grad));
        assert!(cut.is_err(), "the cut panics");
        // a second claimant (as the other part would) returns at once
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(pieces.run_one(&Optimizer::sgd(0.1), 2, grad)));
        let second = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            second,
            Ok(None),
            "the second claimant waited for a cut that never comes"
        );
    }

    #[test]
    fn a_large_rest_is_cut_into_longer_pieces_that_fit() {
        assert_eq!(piece_len(10), PIECE);
        assert_eq!(piece_len(32 * PIECE), PIECE);
        let total = 1 << 22;
        let len = piece_len(total);
        assert!(
            len > PIECE && total.div_ceil(len) <= MAX_PIECES - MAX_TENSORS,
            "{len}"
        );
    }
}
