//! General matrix multiply: `C = alpha·A·B + beta·C`, BLIS-style.
//!
//! [`gemm`] is the one call the network uses; [`reference::gemm`] is the
//! readable oracle it is tested against.
//!
//! How the fast path is organised (read in this order):
//! - [`blocking`]: the cache block sizes `mc`, `kc`, `nc` ([`BlockSizes`]);
//! - [`operand`]: what A can be ([`AOperand`]): a strided view, or rows
//!   gathered by index from the data set ([`Gathered`]), packed in place;
//! - [`pack`]: copying blocks of A and B into micro-panels (transposes,
//!   strides, row indices, `u8 -> f32` and `alpha` are absorbed here);
//! - [`kernel`]: the micro-kernels (`scalar` and `simd`) and their register tiles;
//! - [`loops`]: the five BLIS loops around the micro-kernel (and the
//!   "direct" mode for `n <= NR` or a small `f32` A, which reads A in place
//!   or through a non-transposing copy instead of packing it);
//! - [`small`]: a small product (`n` up to two vectors, `k <= 64`, `m <=
//!   256`) in one short pass instead, the same bits;
//! - [`threads`]: splitting C into blocks, one rayon task each;
//! - [`depth_split`]: a product cut along its depth, blocks computed apart
//!   and summed with the same bits;
//! - [`summed`]: a sum of products (a weight gradient over the shards of
//!   a batch) added tile by tile, with the bits of the products added apart.
//!
//! Determinism: every element of C is summed in the same order (`p = 0..k`
//! within each `kc` block, blocks in order), whatever the thread count, the
//! task grid or the micro-kernel, so results are bit-identical between
//! `Sequential` and `Rayon` on any pool, and between calls. (Only the block
//! sizes' `kc` moves the cut points of the sum; and the scalar kernels'
//! sigmoid and tanh epilogues are the scalar functions, not the SIMD
//! approximations.)
//!
//! Tuning knobs (set by `simdnet tune`): [`set_block_sizes`] /
//! `SIMDNET_MC`, `SIMDNET_KC`, `SIMDNET_NC`; [`set_kernel`] /
//! `SIMDNET_KERNEL` with a name from [`available_kernels`]. The threading
//! thresholds ([`threads::MIN_FLOPS_PER_TASK`] and its neighbours) are
//! constants: changed by editing [`threads`].
//!
//! Threads: the calling thread should itself be a rayon worker (run the
//! training loop inside `pool.install(..)`); called from outside the pool,
//! every parallel GEMM also pays a cross-thread hand-off (one half on the
//! caller, or from [`threads::INJECT_MIN_FLOPS`] on the whole product on the
//! global pool while the caller waits).

pub mod blocking;
pub mod depth_split;
pub mod handoff;
pub mod im2col;
pub mod kernel;
pub mod loops;
pub mod operand;
pub mod pack;
pub mod reference;
pub mod row_groups;
pub mod small;
pub mod sparse;
pub mod sparse_rows;
pub mod summed;
pub mod threads;

pub use blocking::{block_sizes, depth_block, set_block_sizes, BlockSizes};
pub use depth_split::{depth_blocks, gemm_depth_block, sum_depth_blocks};
pub use im2col::{col2im_add, Im2col, ImageRows, Window};
pub use loops::reserve_pack_buffers;
pub use operand::{AOperand, Gathered};
pub use small::{set_small_products, small_products};
pub use sparse::{nonzeros, sparse_a_product, SPARSE_ENOUGH};
pub use summed::{one_block_each, sum_of_products};

use crate::activation::Activation;
use crate::kernels::DropoutMask;
use crate::matrix::{MatMut, MatRef};
use rayon::prelude::*;

/// What happens to each element of `C` after the product, while it is still hot.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Epilogue<'a> {
    /// `C` is left as `alpha·A·B + beta·C`.
    None,
    /// `c_ij = act(c_ij + bias_j)`: a dense layer's forward pass in one call.
    /// `bias.len() == n`.
    BiasActivation {
        /// One bias per column of C.
        bias: &'a [f32],
        /// Applied after the bias.
        act: Activation,
    },
    /// `c_ij = act(c_ij + bias_j) · mask.factor(i, j)`: a dense layer's
    /// forward pass with inverted dropout, in one call (training only).
    /// The mask is a hash of each element's position, so tiles and threads
    /// need nothing but their offset in C.
    BiasActivationDropout {
        /// One bias per column of C.
        bias: &'a [f32],
        /// Applied after the bias.
        act: Activation,
        /// Which elements are dropped, and the factor of the kept ones.
        mask: DropoutMask,
    },
}

/// The epilogue as the loops carry it: the bias of the columns at hand, the
/// activation, and the dropout mask shifted to the block at hand.
pub(crate) type Fused<'a> = Option<(&'a [f32], Activation, Option<DropoutMask>)>;

impl<'a> Epilogue<'a> {
    /// The bias slice, if any.
    fn bias(&self) -> Option<&'a [f32]> {
        match *self {
            Epilogue::None => None,
            Epilogue::BiasActivation { bias, .. } | Epilogue::BiasActivationDropout { bias, .. } => {
                Some(bias)
            }
        }
    }

    fn fused(self) -> Fused<'a> {
        match self {
            Epilogue::None => None,
            Epilogue::BiasActivation { bias, act } => Some((bias, act, None)),
            Epilogue::BiasActivationDropout { bias, act, mask } => Some((bias, act, Some(mask))),
        }
    }
}

/// Whether a GEMM may split its work across the current rayon pool.
///
/// Either way the result is bit-identical: threads split the output into
/// fixed tiles, and every element is summed in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// On the calling thread only.
    Sequential,
    /// Split into tasks on the current rayon pool when the product is large enough.
    Rayon,
}

/// Panics with a clear message if the shapes do not fit together.
pub(crate) fn check_shapes<A: AOperand>(a: &A, b: &MatRef<f32>, c: &MatMut, epilogue: &Epilogue) {
    assert_eq!(
        a.cols(),
        b.rows(),
        "gemm: A is {}x{} but B is {}x{}",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols()
    );
    assert_eq!(
        (c.rows(), c.cols()),
        (a.rows(), b.cols()),
        "gemm: C is {}x{}, expected {}x{}",
        c.rows(),
        c.cols(),
        a.rows(),
        b.cols()
    );
    if let Some(bias) = epilogue.bias() {
        assert_eq!(
            bias.len(),
            b.cols(),
            "gemm: bias has {} entries, expected {}",
            bias.len(),
            b.cols()
        );
    }
}

/// `f32` lanes of the SIMD vectors compiled in (16 with AVX-512F, else 8).
pub fn simd_width() -> usize {
    crate::simd::LANES
}

/// The name of the micro-kernel used for wide products (`n > simd_width()`),
/// or of the forced one (see [`set_kernel`]).
pub fn micro_kernel_name() -> &'static str {
    kernel::forced().unwrap_or(kernel::default_kernel()).name
}

/// `dst = srcᵀ`: a transposing copy by 8 x 8 blocks transposed in registers
/// (the same bits: only moved).
///
/// Shapes: `dst: (n, m)`, `src: (m, n)` with contiguous rows.
pub fn transpose_into(mut dst: MatMut, src: MatRef<f32>) {
    let (m, n) = (src.rows(), src.cols());
    assert_eq!((dst.rows(), dst.cols()), (n, m), "transpose_into: shapes");
    assert!(
        src.col_stride() == 1 || n <= 1,
        "transpose_into: src's rows must be contiguous"
    );
    if m == 0 || n == 0 {
        return;
    }
    let (rs, ld) = (src.row_stride(), dst.row_stride());
    let (from, to) = (src.data().as_ptr(), dst.data().as_mut_ptr());
    // SAFETY: row i of src holds n floats from from + i·rs, and dst's
    // element (p, i) is to + p·ld + i, inside its data, for i < m, p < n.
    unsafe { pack::transpose_scaled(|i| from.add(i * rs), m, n, to, ld, 1.0) };
}

/// Names of every micro-kernel compiled in (SIMD ones first).
pub fn available_kernels() -> Vec<&'static str> {
    kernel::all_kernels().map(|k| k.name).collect()
}

/// Forces the micro-kernel `name` for every later GEMM (process-wide), or
/// with `None` goes back to choosing by shape (a narrow kernel for
/// `n <= simd_width()`, the default one otherwise).
pub fn set_kernel(name: Option<&str>) -> Result<(), String> {
    kernel::force(name)
}

/// `C = alpha·A·B + beta·C`, then `epilogue`.
///
/// Shapes: `a: (m, k)`, `b: (k, n)`, `c: (m, n)`; any strides (so `Aᵀ` and
/// `Bᵀ` are passed as transposed views, never copied). `a` is any
/// [`AOperand`]: a [`MatRef`] (`u8` or `f32`), or rows gathered by index
/// from a larger matrix ([`Gathered`], e.g. a mini-batch straight from the
/// data set, or its transpose), packed straight from where they are. `beta == 0` never
/// reads `C`. `alpha` is applied while packing A (`alpha·a_ip` is rounded
/// before the multiply), `u8` elements of A are converted there too.
///
/// With [`Parallelism::Rayon`] and enough work (see [`threads`]) the output
/// is split into fixed blocks run on the current rayon pool; the result is
/// bit-identical to [`Parallelism::Sequential`]. After the first call of a
/// given size on a thread, no memory is allocated;
/// [`reserve_pack_buffers`] on a thread makes that true from its first call.
pub fn gemm<A: AOperand>(
    alpha: f32,
    a: A,
    b: MatRef<f32>,
    beta: f32,
    c: MatMut,
    epilogue: Epilogue,
    par: Parallelism,
) {
    let kind = trace_kind(&a, &epilogue);
    gemm_filed_as(kind, alpha, a, b, beta, c, epilogue, par)
}

/// [`gemm`], its time filed by `train --profile` under `kind`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_filed_as<A: AOperand>(
    kind: crate::trace::Kind,
    alpha: f32,
    a: A,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut,
    epilogue: Epilogue,
    par: Parallelism,
) {
    check_shapes(&a, &b, &c, &epilogue);
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    let _t = crate::trace::kernel(kind).flops(2 * m * n * k);
    let epilogue = epilogue.fused();
    if k == 0 {
        scale_c(beta, &mut c, epilogue);
        return;
    }
    // A small product (a training shard's, or an evaluation chunk's) in one
    // short pass: the same bits, without the loops' choices (see `small`);
    // not one the loops would split between threads.
    let one_task = par == Parallelism::Sequential || 2 * m * n * k < threads::min_flops_per_task();
    let simd_kernel = kernel::forced().is_none_or(|f| kernel::SIMD_KERNELS.iter().any(|s| s.name == f.name));
    if one_task && small::takes(&a, alpha, (n, beta), &epilogue, block_sizes().kc, simd_kernel) {
        small::gemm_small(&a, &b, &mut c, epilogue);
        return;
    }
    let mut kernel = kernel::choose_for(n, k);
    if a.gathers(alpha) {
        kernel = kernel::choose_for_gather(n, kernel);
    }
    let blocks = block_sizes();
    let (min_task, max_tasks) = match par {
        Parallelism::Rayon => (threads::min_flops_per_task(), threads::max_tasks()),
        Parallelism::Sequential => (usize::MAX, 1),
    };
    // A read in place by every task of half the columns (or fewer) is shared,
    // not repacked; a call that will not split (sequential) need not ask.
    let a_in_place = min_task != usize::MAX && loops::reads_a_in_place(&a, alpha, kernel, n.div_ceil(2));
    let limits = (min_task, max_tasks);
    let plan = threads::plan_sharing_a(m, n, k, (kernel.mr, kernel.nr), limits, a_in_place);
    let rs = c.row_stride();
    let c_ptr = SendPtr(c.data().as_mut_ptr());
    let tasks_n = n.div_ceil(plan.n_chunk);
    let run_task = |t: usize| {
        let (i0, j0) = ((t / tasks_n) * plan.m_chunk, (t % tasks_n) * plan.n_chunk);
        let (i1, j1) = ((i0 + plan.m_chunk).min(m), (j0 + plan.n_chunk).min(n));
        let a_block = a.rows_range(i0, i1);
        let b_block = b.cols_range(j0, j1);
        let epi = epilogue.map(|(bias, act, mask)| (&bias[j0..j1], act, mask.map(|m| m.offset(i0, j0))));
        let out = loops::COut {
            // SAFETY: (i0, j0) is an element of the m x n view C.
            ptr: unsafe { c_ptr.get().add(i0 * rs + j0) },
            rs,
        };
        // SAFETY: the block (i0..i1, j0..j1) lies inside C, whose slice covers
        // every element of the view; the grid's blocks are disjoint, so no
        // two tasks touch the same element, and `c` is borrowed mutably for
        // the whole call.
        unsafe { loops::gemm_on_thread(alpha, &a_block, &b_block, beta, out, epi, kernel, blocks) };
    };
    let tasks = plan.tasks(m, n);
    if tasks == 1 {
        run_task(0);
    } else if tasks == 2 && rayon::current_thread_index().is_none() {
        // Called from outside the pool (the main thread): a large product
        // is handed to the pool whole, this thread waiting; a smaller one
        // runs one half here, the other on a worker if one takes it in
        // time (see `join_here_or_there`).
        if threads::hands_whole_to_pool(2 * m * n * k) {
            rayon::join(|| run_task(0), || run_task(1));
        } else {
            threads::join_here_or_there(|| run_task(0), || run_task(1), rayon::spawn);
        }
    } else if tasks == 2 {
        // on a worker (a training step's GEMM): the half done first spins
        threads::join_spinning(|| run_task(0), || run_task(1));
    } else {
        (0..tasks).into_par_iter().for_each(run_task);
    }
}

/// How `train --profile` files a product: with the bias-activation epilogue it
/// is a layer's forward pass; otherwise a transposed A (`xᵀ·dz`) is a weight
/// gradient and anything else (`dz·Wᵀ`) an input gradient.
fn trace_kind<A: AOperand>(a: &A, epilogue: &Epilogue) -> crate::trace::Kind {
    use crate::trace::Kind;
    match epilogue {
        Epilogue::BiasActivation { .. } | Epilogue::BiasActivationDropout { .. } => Kind::ForwardGemm,
        Epilogue::None if a.is_transposed() => Kind::BackwardGemmDw,
        Epilogue::None => Kind::BackwardGemmDx,
    }
}

/// A raw pointer to C that rayon tasks may share (they write disjoint blocks).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used to hand disjoint blocks of one exclusively borrowed
// output to the tasks of one `gemm` call, which ends before the borrow does.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `k == 0`: `C = beta·C` (zero without reading C when `beta == 0`), then the epilogue.
fn scale_c(beta: f32, c: &mut MatMut, epilogue: Fused) {
    for i in 0..c.rows() {
        let row = c.row_mut(i);
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
    match epilogue {
        Some((bias, act, None)) => crate::kernels::bias_activation(c.rb_mut(), bias, act),
        Some((bias, act, Some(mask))) => {
            crate::kernels::bias_activation_dropout(c.rb_mut(), bias, act, &mask)
        }
        None => {}
    }
}
