//! The first dense layer split along its inputs, one slice per task.
//!
//! In a small network (the workshop's 784-16-16-10: 12,544 of its 13,002
//! parameters are the first layer's `W`) each data-parallel shard reads all
//! of `W` and writes a whole `dW`; both cross between the cores every step
//! (the shards' `dW` to be added, the updated `W` to be read), and one
//! thread updates `W` while the other waits. Here the first layer's inputs
//! are cut where [`gemm`](crate::gemm::gemm) cuts its depth anyway (784
//! inputs: two blocks of 392, see [`crate::gemm::depth_split`]), and each
//! slice, a *part*, is one task:
//!
//! ```text
//! part p  (one task each):  z_p  = x[:, p]·W[p, :]              all rows of the batch   (rows, outputs)
//! shard s (one task each):  a0   = f(z_0 + z_1 + .. + b)         its rows: sum_depth_blocks
//!                           the other layers forward, the loss, backward down to dz0, db0
//! part p  (one task each):  dW[p, :] = Σ_s x_s[:, p]ᵀ·dz0_s      each shard's product, added in shard order
//!                           W[p, :] updated by the optimiser     (its state's slice with it)
//!                           then pieces of every other tensor (b, the other layers), claimed
//!                           by the parts until none is left   (crate::nn::pieces)
//! ```
//!
//! Every number is summed exactly as in the unsplit step (the same depth
//! blocks, the same shards added in the same order): the same bits, on any
//! thread count. What changes is where the data lives: a part's slice of
//! the examples, of `W` and of the optimiser state stay with one task (one
//! core: rayon hands the tasks out the same way every step), only the
//! small `z_p` and `dz0` cross, and the bulk of the update runs in parallel.
//! The rest of the update (every tensor but `W`, a few hundred numbers in
//! the workshop network) runs in the same parallel section, in pieces that
//! the parts claim once their own work is done: the first part done starts
//! it, the other joins it when free ([`crate::nn::pieces`]).

use crate::gemm::row_groups::{
    row_groups_product_hinting, row_groups_weight_gradient, RowGroups, ROW_GROUPS, ROW_GROUPS_MAX_N,
};
use crate::gemm::sparse_rows::{
    all_finite, grouped_product, grouped_weight_gradient, grouped_weight_gradient_groups,
    sparse_rows_product, sparse_rows_product_hinting, sparse_rows_weight_gradient, ColumnGroups, SparseRows,
    COLUMN_GROUP, GROUPED_MIN_N, GROUPED_PRODUCT, NARROW_INFERENCE_FROM_LISTS, SPARSE_ROWS_ENOUGH,
    SPARSE_ROWS_MAX_N,
};
use crate::gemm::{
    depth_block, depth_blocks, gemm_depth_block, one_block_each, sum_depth_blocks, sum_of_products, AOperand,
    Epilogue, ImageRows, Parallelism,
};
use crate::matrix::{Element, MatMut, MatRef, Matrix};
use crate::nn::dense::Dense;
use crate::nn::layer::Layer;
use crate::nn::optim::{Optimizer, TensorSlots};
use crate::nn::pieces::MAX_TENSORS;
use crate::nn::train::SHARD_MAX_PARAMS;
use crate::nn::Network;
use crate::trace::{self, scope, Kind};

/// Whether one thread splits the first layer when its inputs are mostly
/// zero ([`set_one_thread_sparse`]).
static ONE_THREAD_SPARSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Lets one thread split the first layer when the batch is mostly zero, so
/// that it multiplies the non-zeros alone (the default), or not: for the
/// tests, which compare the split step with the unsplit one, and for
/// timing. Process-wide; the bits are the same either way.
pub fn set_one_thread_sparse(on: bool) {
    ONE_THREAD_SPARSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether one thread splits the first layer for mostly-zero inputs ([`set_one_thread_sparse`]).
pub(crate) fn one_thread_sparse() -> bool {
    ONE_THREAD_SPARSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a part holds its slice of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Converted in full, in `Part::x`.
    Dense,
    /// As its non-zeros, in `Part::sparse`.
    Sparse,
    /// By groups of rows, in `Part::row_groups`.
    Groups,
}

/// After a batch too dense for the sparse products, the steps that read
/// their slice in full before trying again (which costs a pass over the
/// slice when it fails).
const DENSE_RETRY: u32 = 64;

/// The parts of a first layer split along its inputs, and their buffers.
pub(crate) struct Split {
    /// Inputs per part (the GEMM's depth block for the first layer).
    depth: usize,
    /// The first layer's outputs.
    outputs: usize,
    pub(crate) parts: Vec<Part>,
}

/// One slice `k0..k1` of the first layer's inputs and what its task keeps.
pub(crate) struct Part {
    k0: usize,
    k1: usize,
    /// `x[:, k0..k1]` of the batch, converted and scaled: `(rows, k1 - k0)`
    /// (when `held` is [`Held::Dense`]). This buffer, `z` and `dw` are
    /// [`Matrix`]es for their 64-byte alignment: a row of 16 floats is then
    /// one cache line, not two (unaligned, one part's sparse products took
    /// 23.3-24.1 µs against 19.6-19.8, Zen 4, AVX-512, 16 lanes).
    x: Matrix,
    /// The same rows as lists of their non-zeros (when `held` is [`Held::Sparse`]).
    sparse: SparseRows,
    /// The same entries by groups of columns, for a wide layer's weight
    /// gradient (at least [`GROUPED_MIN_N`] outputs) and, with
    /// [`GROUPED_PRODUCT`], its forward product.
    groups: ColumnGroups,
    /// Whether `groups` holds this step's `sparse`.
    grouped: bool,
    /// The same rows by groups of eight (when `held` is [`Held::Groups`]:
    /// a narrow layer, where the build reads them fast, [`ROW_GROUPS`]).
    row_groups: RowGroups,
    /// Which of the two holds this step's slice of the batch.
    held: Held,
    /// Steps left before a batch found too dense is read as sparse again.
    dense_for: u32,
    /// `z_p = x[:, k0..k1]·W[k0..k1, :]`: `(rows, outputs)`.
    z: Matrix,
    /// Per shard, its `dW[k0..k1, :]`: `(k1 - k0, outputs)` (for a wide
    /// layer held as non-zeros, only the block of rows being applied, at
    /// the front: [`Part::backward_update_blocks`]).
    dw: Vec<Matrix>,
}

/// The row stride of a part's `z` (`n` outputs a row): `n`, or one cache
/// line more when a row is a whole number of KiB (a wide layer, 256, 512,
/// 1024 outputs).
///
/// [`grouped_product`] loads, updates and stores the rows of `z` one after
/// another, in the order a group of inputs lists them: rows a few apart.
/// Rows 2 KiB apart (512 outputs) put every other row at the same offset
/// within a 4 KiB page as the row stored just before, and the core takes a
/// load from the same offset as a recent store for one that may depend on
/// it ("4K aliasing") and waits. One line more apart, they no longer
/// meet. Measured on an Intel Xeon (family 6 model 167 as its hypervisor
/// reports it, AVX-512, 16 lanes; 784-512-512-10, 1 thread, `train
/// --profile`, three runs each way alternated): the first layer's forward
/// products 0.265-0.270 -> 0.170-0.173 thread-s an epoch (51 -> 79
/// GFLOP/s), the epoch 1.317-1.331 -> 1.219-1.227 s. The same sums: the
/// same bits.
fn z_row_stride(n: usize) -> usize {
    if n.is_multiple_of(256) {
        n + 16
    } else {
        n
    }
}

/// A part's `z` for `rows` rows of `n` outputs, in `buf` (rows
/// [`z_row_stride`] apart).
fn z_mut(buf: &mut Matrix, rows: usize, n: usize) -> MatMut<'_> {
    let rs = z_row_stride(n);
    MatMut::with_row_stride(
        &mut buf.as_mut_slice()[..rows.saturating_sub(1) * rs + n],
        rows,
        n,
        rs,
    )
}

/// Rows `r0..r1` of a part's `z` of `n` outputs ([`z_mut`]'s layout).
fn z_rows(buf: &Matrix, (r0, r1): (usize, usize), n: usize) -> MatRef<'_> {
    let rs = z_row_stride(n);
    let end = if r1 > r0 { (r1 - 1) * rs + n } else { r0 * rs };
    MatRef::with_strides(&buf.as_slice()[r0 * rs..end], r1 - r0, n, rs, 1)
}

impl Split {
    /// The split of `net`'s first layer for batches of up to `batch` rows in
    /// shards of `shard_rows`, if it has one: a dense first layer whose
    /// product is summed in two or more depth blocks (see
    /// [`depth_blocks`]), in a network of at most
    /// [`MAX_TENSORS`]` + 1` trainable tensors (16 layers: the step updates
    /// all but the first layer's `W` in pieces, [`crate::nn::pieces`]).
    pub(crate) fn plan(net: &Network, batch: usize, shard_rows: usize) -> Option<Split> {
        let Some(Layer::Dense(first)) = net.layers().first() else {
            return None;
        };
        let (k, n) = (first.inputs(), first.outputs());
        let depth = depth_blocks(n, k)?;
        let nshards = batch.div_ceil(shard_rows);
        if net.num_params() > SHARD_MAX_PARAMS && n > ONE_SHARD_MAX_OUTPUTS {
            return None;
        }
        let tensors: usize = net.layers().iter().map(Layer::num_tensors).sum();
        if tensors > MAX_TENSORS + 1 {
            return None;
        }
        let parts = (0..k.div_ceil(depth))
            .map(|p| {
                let (k0, k1) = (p * depth, ((p + 1) * depth).min(k));
                Part {
                    k0,
                    k1,
                    x: Matrix::zeros(batch, k1 - k0),
                    sparse: if n <= SPARSE_ROWS_MAX_N {
                        SparseRows::with_capacity(batch, k1 - k0)
                    } else {
                        SparseRows::default()
                    },
                    groups: if (GROUPED_MIN_N..=SPARSE_ROWS_MAX_N).contains(&n) {
                        ColumnGroups::with_capacity(batch, k1 - k0)
                    } else {
                        ColumnGroups::default()
                    },
                    grouped: false,
                    row_groups: if by_row_groups(n) {
                        RowGroups::with_capacity(batch, k1 - k0)
                    } else {
                        RowGroups::default()
                    },
                    held: Held::Dense,
                    dense_for: 0,
                    z: Matrix::zeros(batch, z_row_stride(n)),
                    dw: vec![Matrix::zeros(k1 - k0, n); nshards],
                }
            })
            .collect();
        Some(Split {
            depth,
            outputs: n,
            parts,
        })
    }

    /// Parameters per part: `depth · outputs` rows of `W` (the last part may have fewer).
    pub(crate) fn part_len(&self) -> usize {
        self.depth * self.outputs
    }

    /// Whether the parts may multiply the non-zeros of `first`'s inputs alone
    /// (at most [`SPARSE_ROWS_MAX_N`] outputs).
    pub(crate) fn narrow_enough(&self) -> bool {
        self.outputs <= SPARSE_ROWS_MAX_N
    }

    /// Whether the GEMM still cuts the first layer's depth where the parts
    /// do (block sizes can change after the split was planned: then the
    /// step runs unsplit).
    pub(crate) fn fits(&self, first: &Dense) -> bool {
        depth_blocks(first.outputs(), first.inputs()) == Some(self.depth)
    }

    /// The rows `r0..r1` of the first layer's output, `a0 = f(Σ_p z_p + b)`
    /// (times the dropout mask), written to `a: (r1 - r0, outputs)`; with
    /// [`Parallelism::Rayon`], in two halves of rows at once (a large
    /// network's one shard).
    pub(crate) fn first_output(
        &self,
        mut a: MatMut,
        (r0, r1): (usize, usize),
        first: &Dense,
        mask: Option<crate::kernels::DropoutMask>,
        par: Parallelism,
    ) {
        let (n, rows) = (self.outputs, r1 - r0);
        if par == Parallelism::Rayon && rows >= 2 && rows * n >= PARALLEL_SUM_MIN {
            let (h, rs) = (rows / 2, a.row_stride());
            let data = &mut a.data()[..(rows - 1) * rs + n];
            let (top, bottom) = data.split_at_mut(h * rs);
            let top = MatMut::with_row_stride(top, h, n, rs);
            let bottom = MatMut::with_row_stride(bottom, rows - h, n, rs);
            let seq = Parallelism::Sequential;
            rayon::join(
                || self.first_output(top, (r0, r0 + h), first, mask, seq),
                || self.first_output(bottom, (r0 + h, r1), first, mask.map(|m| m.offset(h, 0)), seq),
            );
            return;
        }
        let _t = trace::kernel(Kind::ForwardGemm);
        let (bias, act) = (&first.b[..], first.act);
        let epilogue = match mask {
            None => Epilogue::BiasActivation { bias, act },
            Some(mask) => Epilogue::BiasActivationDropout { bias, act, mask },
        };
        let z = |p: usize| z_rows(&self.parts[p].z, (r0, r1), n);
        sum_depth_blocks(a, self.parts.len(), z, epilogue);
    }
}

/// A large network (one shard, threaded GEMMs) splits its first layer only
/// up to this many outputs. Measured on Zen 5 (AVX-512, 16 lanes, 2
/// threads, epoch without validation, split against unsplit): 784-512-512-10
/// 0.502 -> 0.490 s and 784-1024-10 0.516 -> 0.508 s, but 784-1024-1024-10
/// 1.51 -> 1.57 s (best of 5) and 784-2048-10 1.34 -> 1.49 s: the parts'
/// `(rows, outputs)` sums and their wide `W` slices outgrow what the split
/// saves. (Sharded networks, up to [`SHARD_MAX_PARAMS`] parameters, always
/// split: 784-64-64-10 43.3 -> 39.7 ms, 784-256-256-10 217 -> 203 ms,
/// 784-512-10 281 -> 265 ms.)
pub const ONE_SHARD_MAX_OUTPUTS: usize = 512;

/// Elements of the first layer's output from which [`Split::first_output`]
/// splits its sum in two tasks (a large network's one shard: 128 x 512).
const PARALLEL_SUM_MIN: usize = 1 << 14;

impl Part {
    /// Whether this step's slice of the batch is held as its non-zeros.
    pub(crate) fn holds_sparse(&self) -> bool {
        self.held != Held::Dense
    }

    /// Forward, part 1: reads `x[:, k0..k1]` (all `rows` of the batch, an
    /// operand not read in place and not transposed) once, converted and
    /// scaled (`x_scale · x`, rounded once, as the GEMM's packing would),
    /// then `z_p = x[:, k0..k1]·W[k0..k1, :]`.
    /// `inputs_read((k0, k1), (p, pieces))` runs once the slice is read,
    /// for each `p` in `0..pieces` in order (the caller prefetches piece
    /// `p` of the next step's rows there): all at once, or spread through
    /// the product ([`sparse_rows_product_hinting`]).
    pub(crate) fn forward<X: AOperand>(
        &mut self,
        x: X,
        x_scale: f32,
        first: &Dense,
        inputs_read: impl Fn((usize, usize), (usize, usize)),
    ) {
        let w = first.w.view().rows_range(self.k0, self.k1);
        self.forward_with(x, x_scale, w, inputs_read);
    }

    /// [`forward`](Self::forward) with this part's rows of `W` given:
    /// `w: (k1 - k0, outputs)`.
    ///
    /// A slice mostly of zeros (MNIST's pixels: 81%) is held as its
    /// non-zeros and multiplied by them alone ([`crate::gemm::sparse_rows`]),
    /// when that has the GEMM's bits: `W` finite. Otherwise it is converted
    /// in full and multiplied by the GEMM.
    pub(crate) fn forward_with<X: AOperand>(
        &mut self,
        x: X,
        x_scale: f32,
        w: MatRef<f32>,
        inputs_read: impl Fn((usize, usize), (usize, usize)),
    ) {
        let (rows, kp, n) = (x.rows(), self.k1 - self.k0, w.cols());
        assert_eq!(w.rows(), kp, "split first layer: the part's rows of W");
        if self.forward_sparse(x, x_scale, w, &inputs_read) {
            return;
        }
        let buf = &mut self.x.as_mut_slice()[..rows * kp];
        {
            let _t =
                trace::kernel(Kind::InputConvert).bytes(rows * kp * (std::mem::size_of::<X::Elem>() + 4));
            let (ptr, ra, pa) = x.direct(x_scale, (0, rows), (self.k0, kp), buf);
            // An operand that is not read in place is copied into `buf` as it
            // is oriented: rows of `kp` (the trainer splits no other).
            assert!(
                std::ptr::eq(ptr, buf.as_ptr()) && (ra, pa) == (kp, 1),
                "split first layer: the batch was not copied row by row"
            );
        }
        self.held = Held::Dense;
        inputs_read((self.k0, self.k1), (0, 1));
        let x = MatRef::from_slice(&self.x.as_slice()[..rows * kp], rows, kp);
        let z = z_mut(&mut self.z, rows, n);
        gemm_depth_block(x, w, z, Parallelism::Sequential);
    }

    /// The forward product from the slice's non-zeros, if it may be (see
    /// [`forward_with`](Self::forward_with)): returns whether it ran.
    fn forward_sparse<X: AOperand>(
        &mut self,
        x: X,
        x_scale: f32,
        w: MatRef<f32>,
        inputs_read: &impl Fn((usize, usize), (usize, usize)),
    ) -> bool {
        let (rows, kp, n) = (x.rows(), self.k1 - self.k0, w.cols());
        if self.dense_for > 0 {
            self.dense_for -= 1;
            return false;
        }
        let Some(images) = x.image_rows() else {
            return false;
        };
        let w_rows = &w.data()[..kp * w.row_stride()];
        if n > SPARSE_ROWS_MAX_N || w.row_stride() != n || !all_finite(w_rows) {
            return false;
        }
        // by groups from pixels only: their read has no vector version for
        // other element types, where the lists' read has
        let pixels = std::any::TypeId::of::<X::Elem>() == std::any::TypeId::of::<u8>();
        if by_row_groups(n) && pixels && self.row_groups.cols() == kp {
            return self.forward_row_groups(images, x_scale, w, inputs_read);
        }
        {
            let _t = trace::kernel(Kind::InputConvert).bytes(rows * kp * std::mem::size_of::<X::Elem>());
            self.sparse.read(rows, |r| images.row(r), self.k0, x_scale);
            self.grouped = false;
        }
        if self.sparse.density() > SPARSE_ROWS_ENOUGH {
            self.dense_for = DENSE_RETRY;
            return false;
        }
        self.held = Held::Sparse;
        let (cols, grouped) = ((self.k0, self.k1), grouped_forward(n));
        if grouped {
            inputs_read(cols, (0, 1));
        }
        let z = z_mut(&mut self.z, rows, n);
        let mut t = trace::kernel(Kind::ForwardGemm);
        let done = if grouped {
            // grouped here once, for the weight gradient too
            self.groups.group(&self.sparse);
            self.grouped = true;
            grouped_product(z, &self.groups, w)
        } else {
            // the next step's rows hinted a piece per group of rows
            let hint = &mut |p, pieces| inputs_read(cols, (p, pieces));
            sparse_rows_product_hinting(z, &self.sparse, w, (rows.div_ceil(HINT_PIECE_ROWS), hint))
        };
        t.set_flops_skipping(2 * done, 2 * rows * kp * n);
        true
    }

    /// [`forward_sparse`](Self::forward_sparse) by groups of rows: the
    /// slice read into `row_groups`, then its product if it is sparse
    /// enough; returns whether it ran.
    fn forward_row_groups<T: Element>(
        &mut self,
        images: ImageRows<'_, T>,
        x_scale: f32,
        w: MatRef<f32>,
        inputs_read: &impl Fn((usize, usize), (usize, usize)),
    ) -> bool {
        let (rows, kp, n) = (images.rows(), self.k1 - self.k0, w.cols());
        {
            let _t = trace::kernel(Kind::InputConvert).bytes(rows * kp * std::mem::size_of::<T>());
            self.row_groups.read(rows, |r| images.row(r), self.k0, x_scale);
        }
        if self.row_groups.density() > SPARSE_ROWS_ENOUGH {
            self.dense_for = DENSE_RETRY;
            return false;
        }
        self.held = Held::Groups;
        let cols = (self.k0, self.k1);
        let z = z_mut(&mut self.z, rows, n);
        let mut t = trace::kernel(Kind::ForwardGemm);
        // the next step's rows hinted a piece at a time as the groups progress
        let hint = &mut |p, pieces| inputs_read(cols, (p, pieces));
        let done = row_groups_product_hinting(z, &self.row_groups, w, (rows.div_ceil(HINT_PIECE_ROWS), hint));
        t.set_flops_skipping(2 * done, 2 * rows * kp * n);
        true
    }

    /// Backward and update, part 3: for each of `nshards` shards of
    /// `shard_rows` rows (out of `rows`), its `dW[k0..k1, :] = x_s[:, k0..k1]ᵀ·dz0_s`
    /// (`dz0(s)`: `(rows_s, outputs)`), then `w` (= `W[k0..k1, :]`, flat)
    /// updated from their sum in shard order, with `slots`, its optimiser
    /// state, and L2 `decay`.
    ///
    /// A slice held in full has its shards' products added tile by tile
    /// ([`sum_of_products`]: each tile of `dW` stays in L1 from one shard to
    /// the next, and the optimiser reads one sum instead of a buffer per
    /// shard), with the same bits. Measured on Zen 5 (AVX-512, 16 lanes, 2
    /// threads, `train --json`, epochs 2-3 with validation, the two builds
    /// alternated, paired ratios over 10 rounds): 784-256-256-10 0.932
    /// (faster in 9 of 10), 784-128-128-10 0.966 (8 of 10), 784-512-10
    /// 0.976 (6 of 10). Held as non-zeros, each shard's product is its own;
    /// for a wide layer, computed and applied a block of rows at a time
    /// ([`backward_update_blocks`](Self::backward_update_blocks)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_update<'d>(
        &mut self,
        (rows, shard_rows, nshards): (usize, usize, usize),
        dz0: impl Fn(usize) -> MatRef<'d, f32>,
        w: &mut [f32],
        slots: TensorSlots,
        optimizer: &Optimizer,
        decay: f32,
    ) {
        let kp = self.k1 - self.k0;
        let shard = |s: usize| (s * shard_rows, ((s + 1) * shard_rows).min(rows));
        let depths = (0..nshards).map(|s| shard(s).1 - shard(s).0);
        if self.held == Held::Dense && nshards >= 2 && one_block_each(depths) {
            // forward: z = x·W + b  ->  dW = Σ_s x_sᵀ·dz_s, the shards' products
            // added tile by tile, with the bits of their sum in shard order
            let (x, dw) = (self.x.as_slice(), self.dw[0].as_mut_slice());
            let n = dz0(0).cols();
            let term = |s: usize| {
                let (r0, r1) = shard(s);
                (MatRef::from_slice(&x[r0 * kp..r1 * kp], r1 - r0, kp).t(), dz0(s))
            };
            sum_of_products(nshards, term, MatMut::from_slice(&mut dw[..kp * n], kp, n));
            let len = w.len();
            let _t = scope(Kind::Optimizer, 0).bytes(20 * len);
            slots.update_summed_decayed(optimizer, w, decay, 1, |_| &dw[..len]);
            return;
        }
        if self.blocks_fit(nshards, &shard, &dz0) {
            return self.backward_update_blocks((nshards, &shard, &dz0), w, slots, optimizer, decay);
        }
        for s in 0..nshards {
            let (r0, r1) = shard(s);
            let dz = dz0(s);
            let n = dz.cols();
            // forward: z = x·W + b   ->  dW = xᵀ·dz   (this part's rows of dW)
            if self.held == Held::Groups {
                if sparse_has_gemm_bits((r0, r1), &dz) {
                    let mut t = trace::kernel(Kind::BackwardGemmDw);
                    let dw = MatMut::from_slice(&mut self.dw[s].as_mut_slice()[..kp * n], kp, n);
                    let done = row_groups_weight_gradient(dw, &self.row_groups, (r0, r1), dz);
                    t.set_flops_skipping(2 * done, 2 * (r1 - r0) * kp * n);
                    continue;
                }
                // else the GEMM, on the slice written out in full
                self.row_groups.scatter(&mut self.x.as_mut_slice()[..rows * kp]);
                self.held = Held::Dense;
            }
            if self.held == Held::Sparse {
                if sparse_has_gemm_bits((r0, r1), &dz) {
                    let mut t = trace::kernel(Kind::BackwardGemmDw);
                    if n >= GROUPED_MIN_N {
                        self.group_once();
                    }
                    let dw = MatMut::from_slice(&mut self.dw[s].as_mut_slice()[..kp * n], kp, n);
                    let done = if n >= GROUPED_MIN_N {
                        grouped_weight_gradient(dw, &mut self.groups, (r0, r1), dz)
                    } else {
                        sparse_rows_weight_gradient(dw, &self.sparse, (r0, r1), dz)
                    };
                    t.set_flops_skipping(2 * done, 2 * (r1 - r0) * kp * n);
                    continue;
                }
                // else the GEMM, on the slice written out in full
                self.sparse.scatter(&mut self.x.as_mut_slice()[..rows * kp]);
                self.held = Held::Dense;
            }
            let x = MatRef::from_slice(&self.x.as_slice()[r0 * kp..r1 * kp], r1 - r0, kp);
            crate::gemm::gemm(
                1.0,
                x.t(),
                dz,
                0.0,
                MatMut::from_slice(&mut self.dw[s].as_mut_slice()[..kp * n], kp, n),
                Epilogue::None,
                Parallelism::Sequential,
            );
        }
        let len = w.len();
        let _t = scope(Kind::Optimizer, 0).bytes((16 + 4 * nshards) * len);
        let dw = &self.dw;
        slots.update_summed_decayed(optimizer, w, decay, nshards, |s| &dw[s].as_slice()[..len]);
    }

    /// Whether [`backward_update_blocks`](Self::backward_update_blocks)
    /// takes this step: the slice is held as non-zeros, for a wide layer
    /// ([`GROUPED_MIN_N`] outputs or more, its gradient by groups of
    /// columns), and every shard's product has the GEMM's bits that way
    /// (a finite `dz` and one block of depth).
    fn blocks_fit<'d>(
        &self,
        nshards: usize,
        shard: &impl Fn(usize) -> (usize, usize),
        dz0: &impl Fn(usize) -> MatRef<'d, f32>,
    ) -> bool {
        self.held == Held::Sparse
            && (0..nshards).all(|s| {
                let dz = dz0(s);
                dz.cols() >= GROUPED_MIN_N && sparse_has_gemm_bits(shard(s), &dz)
            })
    }

    /// Groups this step's non-zeros by columns ([`ColumnGroups`]), once a
    /// step for all the shards.
    fn group_once(&mut self) {
        if !self.grouped {
            self.groups.group(&self.sparse);
            self.grouped = true;
        }
    }

    /// [`backward_update`](Self::backward_update) of a wide layer's slice
    /// held as non-zeros, a block of rows at a time: each shard's rows of
    /// `dW` for the block ([`grouped_weight_gradient_groups`]), then the
    /// block's update, while those rows are in cache. Every block reuses the
    /// front of each shard's buffer, so the gradient never goes out to
    /// memory and back (392x512 floats, 800 KB a part for 784-512-512-10).
    /// Each element of `dW` is the same sum, each parameter the same update:
    /// the same bits as the whole slice at once. Measured (Zen 4, both
    /// builds): docs/PERFORMANCE.md, "The gradient applied a block of rows
    /// at a time".
    fn backward_update_blocks<'d>(
        &mut self,
        (nshards, shard, dz0): (
            usize,
            &impl Fn(usize) -> (usize, usize),
            &impl Fn(usize) -> MatRef<'d, f32>,
        ),
        w: &mut [f32],
        mut slots: TensorSlots,
        optimizer: &Optimizer,
        decay: f32,
    ) {
        let (kp, n) = (self.k1 - self.k0, dz0(0).cols());
        self.group_once();
        let groups = kp.div_ceil(COLUMN_GROUP);
        let per_block = (UPDATE_BLOCK_BYTES / (4 * n * COLUMN_GROUP)).max(1);
        for g0 in (0..groups).step_by(per_block) {
            let g1 = (g0 + per_block).min(groups);
            let (i0, i1) = (g0 * COLUMN_GROUP, (g1 * COLUMN_GROUP).min(kp));
            let len = (i1 - i0) * n;
            for s in 0..nshards {
                let (r0, r1) = shard(s);
                let mut t = trace::kernel(Kind::BackwardGemmDw);
                // forward: z = x·W + b   ->  dW = xᵀ·dz   (this block of the part's rows of dW)
                let dw = MatMut::from_slice(&mut self.dw[s].as_mut_slice()[..len], i1 - i0, n);
                let done = grouped_weight_gradient_groups(dw, &mut self.groups, (g0, g1), (r0, r1), dz0(s));
                t.set_flops_skipping(2 * done, 2 * (r1 - r0) * len);
            }
            let _t = scope(Kind::Optimizer, 0).bytes((16 + 4 * nshards) * len);
            let (block, rest) = slots.split_at(len);
            let dw = &self.dw;
            let w = &mut w[i0 * n..i1 * n];
            block.update_summed_decayed(optimizer, w, decay, nshards, |s| &dw[s].as_slice()[..len]);
            slots = rest;
        }
    }
}

/// Whether a shard's weight gradient from the lists (rows `r0..r1`, its
/// `dz`) has the GEMM's bits: `dz` finite (the GEMM would add `0·inf`, NaN,
/// for the zeros the lists skip) and the rows summed in one block of depth.
fn sparse_has_gemm_bits((r0, r1): (usize, usize), dz: &MatRef) -> bool {
    let (n, rs) = (dz.cols(), dz.row_stride());
    let finite = (0..dz.rows()).all(|r| all_finite(&dz.data()[r * rs..r * rs + n]));
    depth_block(r1 - r0) >= r1 - r0 && finite
}

/// Rows of the batch per piece of the next step's rows a part hints while
/// its narrow forward product runs (one piece per group of four rows the
/// product takes: see [`sparse_rows_product_hinting`]). Eight was level on
/// a Zen 5 (AVX-512, 16 lanes; the workshop epoch 1.002x on 2 threads and
/// 1.012x on 1, 8 rounds each, the host noisy).
const HINT_PIECE_ROWS: usize = 4;

/// About the bytes of `dW` a part computes and applies at a time in
/// [`Part::backward_update_blocks`]: well within L2.
const UPDATE_BLOCK_BYTES: usize = 64 * 1024;

/// A dense first layer's forward product in inference passes
/// (evaluation, prediction) from its inputs' non-zeros: the parts of the
/// split above, one after the other on the calling thread, each read as
/// lists ([`SparseRows`]) and multiplied by its rows of `W` (by groups of
/// columns from [`GROUPED_MIN_N`] outputs with [`GROUPED_PRODUCT`]), then
/// summed in depth order with the bias and activation
/// ([`sum_depth_blocks`]): the bits of the GEMM, as in training.
///
/// From [`GROUPED_MIN_N`] outputs in every build; narrower layers too
/// since 2026-12-05 where the pixels are read 64 at a time
/// ([`NARROW_INFERENCE_FROM_LISTS`]: AVX-512 with VBMI2).
#[derive(Clone, Debug)]
pub(crate) struct SparseFirst {
    depth: usize,
    /// Per part: its inputs `k0..k1`, its rows as lists, the lists by
    /// groups of columns (with [`GROUPED_PRODUCT`]), and its partial
    /// product `(rows, outputs)`.
    parts: Vec<((usize, usize), SparseRows, ColumnGroups, Matrix)>,
}

impl SparseFirst {
    /// Whether a dense first layer of `n` outputs is multiplied from its
    /// inputs' non-zeros in inference (where its GEMM cuts the depth too):
    /// up to [`SPARSE_ROWS_MAX_N`] outputs, and under [`GROUPED_MIN_N`]
    /// only where [`NARROW_INFERENCE_FROM_LISTS`].
    pub(crate) fn takes(n: usize) -> bool {
        (1..=SPARSE_ROWS_MAX_N).contains(&n) && (n >= GROUPED_MIN_N || NARROW_INFERENCE_FROM_LISTS)
    }

    /// Buffers for up to `rows` rows of `net`'s first layer, if it is dense,
    /// one it [`takes`](Self::takes) and summed in two or more depth blocks.
    pub(crate) fn plan(net: &Network, rows: usize) -> Option<SparseFirst> {
        let Some(Layer::Dense(first)) = net.layers().first() else {
            return None;
        };
        let (k, n) = (first.inputs(), first.outputs());
        if !SparseFirst::takes(n) {
            return None;
        }
        let depth = depth_blocks(n, k)?;
        let parts = (0..k.div_ceil(depth))
            .map(|p| {
                let (k0, k1) = (p * depth, ((p + 1) * depth).min(k));
                (
                    (k0, k1),
                    SparseRows::with_capacity(rows, k1 - k0),
                    if grouped_forward(n) {
                        ColumnGroups::with_capacity(rows, k1 - k0)
                    } else {
                        ColumnGroups::default()
                    },
                    Matrix::zeros(rows, z_row_stride(n)),
                )
            })
            .collect();
        Some(SparseFirst { depth, parts })
    }

    /// `a = f(x·W + b)` for `first`, from `x`'s non-zeros: when `x` is a
    /// batch of images (not read in place), mostly zero, `W` finite and the
    /// GEMM still cuts the depth where the parts do. Returns whether it ran
    /// (else the caller runs the GEMM).
    pub(crate) fn forward<X: AOperand>(&mut self, a: MatMut, first: &Dense, x: X, x_scale: f32) -> bool {
        let (k, n, rows) = (first.inputs(), first.outputs(), x.rows());
        if depth_blocks(n, k) != Some(self.depth) || x.in_place(x_scale) || x.is_transposed() {
            return false;
        }
        let Some(images) = x.image_rows() else {
            return false;
        };
        if !crate::gemm::sparse_rows::mostly_zero(&images, 8) || !all_finite(first.w.as_slice()) {
            return false;
        }
        for ((k0, k1), lists, groups, z) in &mut self.parts {
            lists.read(rows, |r| images.row(r), *k0, x_scale);
            if lists.density() > SPARSE_ROWS_ENOUGH {
                return false;
            }
            let w = first.w.view().rows_range(*k0, *k1);
            let z = z_mut(z, rows, n);
            if grouped_forward(n) {
                groups.group(lists);
                grouped_product(z, groups, w);
            } else {
                sparse_rows_product(z, lists, w);
            }
        }
        let parts = &self.parts;
        let z = |p: usize| z_rows(&parts[p].3, (0, rows), n);
        let epilogue = Epilogue::BiasActivation {
            bias: &first.b,
            act: first.act,
        };
        sum_depth_blocks(a, parts.len(), z, epilogue);
        true
    }
}

/// Whether training's parts hold a first layer of `n` outputs by groups of
/// rows ([`RowGroups`]) rather than as lists: where the build reads them
/// fast ([`ROW_GROUPS`]) and `n` is at most [`ROW_GROUPS_MAX_N`].
fn by_row_groups(n: usize) -> bool {
    ROW_GROUPS && n <= ROW_GROUPS_MAX_N
}

/// Whether a forward product of `n` outputs from the lists goes by groups
/// of columns ([`grouped_product`]), in training and in [`SparseFirst`],
/// rather than row by row ([`sparse_rows_product`]).
fn grouped_forward(n: usize) -> bool {
    GROUPED_PRODUCT && n >= GROUPED_MIN_N
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_wide_z_are_not_a_whole_kib_apart() {
        // 4K aliasing (z_row_stride): a wide layer's rows one line further apart
        for n in [256, 512, 768, 1024, 2048] {
            let bytes = 4 * z_row_stride(n);
            assert!(
                !bytes.is_multiple_of(1024) && bytes.is_multiple_of(64),
                "{n} outputs: rows {bytes} bytes apart"
            );
        }
        // a narrow one keeps its rows packed (the workshop network's 16)
        for n in [10, 16, 100, 128, 300] {
            assert_eq!(z_row_stride(n), n);
        }
    }
}
