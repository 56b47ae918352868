//! A sum of products, `C = A_0·B_0 + A_1·B_1 + ..`, added tile by tile.
//!
//! The weight gradient of a layer whose batch is cut into shards is
//! `dW = Σ_s x_sᵀ·dz_s`, one product per shard, added in shard order. As
//! separate [`gemm`](super::gemm) calls, each product is written to its own
//! `m x n` buffer and the buffers are added afterwards: every element of C
//! crosses the memory hierarchy once per shard, and the sum reads them all
//! again. Here each register tile of C runs the micro-kernel once per
//! product, the first writing the tile and each later one adding to it
//! while it is still in L1:
//!
//! ```text
//! for each tile of C (MR x NR):   c = P_0;  c = P_1 + c;  c = P_2 + c; ..
//! ```
//!
//! A product whose depth is one block of [`depth_block`] is summed by
//! `gemm` from zero in one pass, with the multiply-adds in the same order
//! as here; the kernel adds its accumulator to C as `acc + 1·c`, and
//! addition commutes. So C has the bits of the separate products added in
//! order, `(P_0 + P_1) + P_2 ..`. A product deeper than one block would be
//! summed in blocks, and added to the others in another order: it is
//! refused (a panic; [`one_block_each`] says whether a set of depths fits).
//!
//! A is read where it is (any strides; the kernels that broadcast A read
//! it at the same cost at any row stride), except a last tile of fewer
//! than `MR` rows on a kernel without a short form, and every tile on a
//! kernel with its lanes along m: those are packed. B is packed once per
//! block of columns, a group of products' panels side by side, into the
//! buffers `gemm` packs into on this thread: a group's depths add up to at
//! most `kc`, so its B~ fits the size every buffer grows to the first time
//! (a worker that has run one `gemm` allocates nothing here).
//!
//! Measured on Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes, one
//! thread, warm, medians of 9 x 50 calls): the first layer's gradient for
//! two 64-row shards and 392 inputs, against two `gemm` calls and the sum
//! of their outputs: 16 outputs 10.5 -> 9.9 µs, 64 outputs 33.5 -> 33.2,
//! 256 outputs 160 -> 138, 512 outputs 336 -> 283 (one `gemm` over the
//! 128 rows at once, which has other bits: 9.0, 31.7, 135, 280).

use super::blocking::{block_sizes, depth_block};
use super::kernel::{choose_for, MicroKernel, TileOut};
use super::loops::{buffer_bounds, with_pack_buffers};
use super::operand::AOperand;
use super::pack::pack_b;
use crate::matrix::{MatMut, MatRef};

/// Most products run together on each tile (fewer when their depths add
/// up to more than `kc`). Their views are taken once per group rather than
/// once per tile (a `term` closure builds them), and a group after the
/// first adds to C as any later product does: the same order for every
/// element, the same bits.
const GROUP: usize = 8;

/// Whether products of depths `depths` are each summed by `gemm` in one
/// depth block, as [`sum_of_products`] requires.
pub fn one_block_each(depths: impl IntoIterator<Item = usize>) -> bool {
    depths.into_iter().all(|k| depth_block(k) >= k)
}

/// `C = A_0·B_0 + A_1·B_1 + .. + A_{t-1}·B_{t-1}` (`t = terms`,
/// `term(s) = (A_s, B_s)`), added in that order, on the calling thread:
/// the bits of `gemm` of each product alone (`beta = 0`, no epilogue),
/// then the outputs added in order (see the module docs). No term
/// (`terms == 0`) gives zeros.
///
/// Shapes: `A_s: (m, k_s)` with any strides, `B_s: (k_s, n)`, `c: (m, n)`.
///
/// # Panics
/// If a shape does not fit, or a depth `k_s` is more than one depth block
/// ([`one_block_each`]).
pub fn sum_of_products<'a>(
    terms: usize,
    term: impl Fn(usize) -> (MatRef<'a, f32>, MatRef<'a, f32>),
    mut c: MatMut,
) {
    let (m, n) = (c.rows(), c.cols());
    let (mut depth, mut k_most) = (0, 0);
    for s in 0..terms {
        let (a, b) = term(s);
        assert!(
            a.rows() == m && b.cols() == n && a.cols() == b.rows(),
            "sum_of_products: term {s} is {}x{} times {}x{}, C is {m}x{n}",
            a.rows(),
            a.cols(),
            b.rows(),
            b.cols()
        );
        assert!(
            one_block_each([a.cols()]),
            "sum_of_products: term {s} has depth {}, more than one block ({})",
            a.cols(),
            depth_block(a.cols())
        );
        depth += a.cols();
        k_most = k_most.max(a.cols());
    }
    if m == 0 || n == 0 {
        return;
    }
    if terms == 0 || depth == 0 {
        for i in 0..m {
            c.row_mut(i).fill(0.0);
        }
        return;
    }
    let kind = super::trace_kind(&term(0).0, &super::Epilogue::None);
    let _t = crate::trace::kernel(kind).flops(2 * m * n * depth);
    let kernel = choose_for(n, term(0).0.cols());
    let blocks = block_sizes();
    let (mr, nr) = (kernel.mr, kernel.nr);
    let nc_max = (blocks.nc.div_ceil(nr).max(1) * nr).min(n.div_ceil(nr) * nr);
    let mc_max = (blocks.mc.div_ceil(mr).max(1) * mr).min(m.div_ceil(mr) * mr);
    let rs = c.row_stride();
    let c_ptr = c.data().as_mut_ptr();
    let (a_bound, b_bound) = buffer_bounds(blocks, mr, nr);
    let kc = blocks.kc.max(1);
    with_pack_buffers(|a_buf, b_buf| {
        let a_tile = a_buf.get(mr * k_most, a_bound);
        let mut g0 = 0;
        while g0 < terms {
            // A group: up to GROUP products whose depths add up to at most
            // kc (each is one depth block, so at least one fits), so that
            // their B~ fits the buffer `gemm` grew to its bound.
            let (mut count, mut group_depth) = (0, 0);
            while count < GROUP && g0 + count < terms {
                let k = term(g0 + count).0.cols();
                if count > 0 && group_depth + k > kc {
                    break;
                }
                (count, group_depth) = (count + 1, group_depth + k);
            }
            // this group's views, taken once (padded with its last one)
            let views: [_; GROUP] = std::array::from_fn(|i| term(g0 + i.min(count - 1)));
            let views = &views[..count];
            let b_packed = b_buf.get(nc_max * group_depth, b_bound);
            for jc in (0..n).step_by(nc_max) {
                let nc = nc_max.min(n - jc);
                let panels = nc.div_ceil(nr);
                // B~: product i's panels start at panels·nr·(k_0 + .. + k_{i-1})
                let mut at = 0;
                for (_, b) in views.iter().filter(|(_, b)| b.rows() > 0) {
                    pack_b(b, (0, b.rows()), (jc, nc), nr, &mut b_packed[at..]);
                    at += panels * nr * b.rows();
                }
                for ic in (0..m).step_by(mc_max) {
                    let mc = mc_max.min(m - ic);
                    for jr in (0..nc).step_by(nr) {
                        for ir in (0..mc).step_by(mr) {
                            let mut at = 0;
                            for (i, (a, _)) in views.iter().enumerate() {
                                let k = a.cols();
                                let b_panel = &b_packed[at + (jr / nr) * nr * k..][..nr * k];
                                at += panels * nr * k;
                                let out = TileOut {
                                    // SAFETY: (ic + ir, jc + jr) is an element of
                                    // the m x n view C.
                                    c: unsafe { c_ptr.add((ic + ir) * rs + jc + jr) },
                                    rs_c: rs,
                                    rows: mr.min(mc - ir),
                                    cols: nr.min(nc - jr),
                                    beta: if g0 + i == 0 { 0.0 } else { 1.0 },
                                    epilogue: None,
                                    dropout: None,
                                    next: None,
                                };
                                // SAFETY: `out` is a tile of C, which this call
                                // borrows mutably, clipped to m x n; `b_panel`
                                // holds nr·k packed floats; rows ic + ir.. of A
                                // exist (see `tile`).
                                unsafe { tile(kernel, a, ic + ir, b_panel, a_tile, &out) };
                            }
                        }
                    }
                }
            }
            g0 += count;
        }
    });
}

/// One product's micro-kernel call on the tile `out`, whose first row is
/// row `i0` of `a` (depth `a.cols()`), with the packed B~ panel `b_panel`.
///
/// # Safety
/// `out` must be a valid exclusive tile of C, its rows `i0..i0 + out.rows`
/// rows of `a`; `b_panel` must hold `nr·a.cols()` floats and `a_tile`
/// `mr·a.cols()`.
unsafe fn tile(
    kernel: &MicroKernel,
    a: &MatRef<f32>,
    i0: usize,
    b_panel: &[f32],
    a_tile: &mut [f32],
    out: &TileOut,
) {
    let (mr, k) = (kernel.mr, a.cols());
    let (ra, pa) = (a.row_stride(), a.col_stride());
    // SAFETY: element (i0, 0) of A, inside its data (i0 < rows).
    let a_here = unsafe { a.data().as_ptr().add(i0 * ra) };
    let short = kernel.run_short.filter(|_| out.rows < mr);
    // SAFETY (all three): the kernels read rows < out.rows of A in place
    // (`run_short`), or MR rows when the tile is full (`run_strided`), at
    // `a_here + i·ra + p·pa`, p < k: elements of A; or a packed panel of
    // mr·k floats; and nr·k floats of `b_panel`; they write `out`, valid
    // by the caller's guarantee.
    unsafe {
        if k == 0 {
            // an empty product: zeros written, or added (reads nothing)
            (kernel.run)(0, a_tile.as_ptr(), b_panel.as_ptr(), out)
        } else if kernel.broadcasts_a() && out.rows == mr {
            (kernel.run_strided)(k, a_here, ra, pa, b_panel.as_ptr(), out)
        } else if let (Some(run), true) = (short, kernel.broadcasts_a()) {
            run(out.rows, k, a_here, ra, pa, b_panel.as_ptr(), kernel.nr, out)
        } else {
            a.pack(1.0, (i0, out.rows), (0, k), mr, &mut a_tile[..mr * k]);
            (kernel.run)(k, a_tile.as_ptr(), b_panel.as_ptr(), out)
        }
    }
}
