//! Small products in one short pass, without the five loops.
//!
//! A training shard of the workshop network (784-16-16-10, 64 rows)
//! multiplies six small matrices a step: `a1 = relu(a0·W1 + b1)` is
//! 64x16x16, the logits 64x10x16, the errors `dz·Wᵀ` 64x16x10 and 64x16x16,
//! the weight gradients `aᵀ·dz` 16x10x64 and 16x16x64. Through the five
//! loops (`super::loops`) each call chooses a kernel, block sizes, what to
//! pack and what to read in place, then runs a micro-kernel of several
//! kilobytes of machine code and a store routine made for every tile
//! shape. Timed inside training (`rdtsc` around the call, Zen 3, AVX2, 8
//! lanes, 2 threads), the first such product of each shard's pass took
//! 8,600-14,000 cycles where the same call repeated at once took about
//! 2,700: the code had left the core's caches while the thread ran the
//! first layer's sparse products. Whichever product came first paid it.
//! Here such a product is one function of a few hundred instructions, B
//! read in place or copied to the stack. Switched on and off every 7 steps
//! in one process (medians over 6 epochs), a pass's two forward products
//! took 4,000-4,200 cycles this way against 6,000-6,300 through the loops,
//! and the whole step 3.3% less (docs/PERFORMANCE.md, "Small products in
//! one short pass").
//!
//! Since 2026-12-05 (a Zen 5, AVX-512): B is read in place whenever its
//! rows are contiguous, a row's last vector loaded partially when `n` is
//! not whole vectors (the 10 logits' `W`, a weight gradient's `dz`), where
//! it was copied first; the activation is applied to `acc + bias` in the
//! registers as each tile is stored, where a second pass read C back (a
//! masked store then a load of the same row, which on AMD waits for the
//! store: 521 ns for 64x10x16 with ReLU, 190-201 now); and with 32 vector
//! registers a tile of one vector of columns holds 16 rows, so that a
//! 16-row weight gradient reads `dz` once. A 64x16 product's three kinds
//! took, forward, `dz·Wᵀ` and `aᵀ·dz`, 221-230, 270-281 and 190 ns before,
//! 180, 250 and 170 after (hot, medians of 10,000 calls); the workshop
//! epoch 0.983 on 2 threads and 0.965 on 1 (docs/PERFORMANCE.md, "A Zen 5,
//! a fourth session").
//!
//! The same bits as the five loops: every element of C is
//! `fma(a_ip, b_pj, acc)` for `p = 0..k` ascending from zero, then `+ bias`,
//! then the activation, exactly the operations of the SIMD micro-kernels
//! and their stores (the depth is one block, `k <= kc`). Tests compare the
//! two paths bit for bit ([`set_small_products`] turns this one off).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{AOperand, Fused};
use crate::activation::Activation;
use crate::matrix::{MatMut, MatRef};
use crate::simd::{self, activate, LANES, V};

/// The widest product taken here: two vectors of columns (16 with AVX2,
/// 32 with AVX-512).
pub const MAX_N: usize = 2 * LANES;

/// The deepest product taken here (B, at most `MAX_K x MAX_N`, is copied to
/// the stack).
pub const MAX_K: usize = 64;

/// The most rows taken here (a shard, or a chunk of an evaluation).
pub const MAX_M: usize = 256;

/// Whether [`gemm_small`] takes the products that fit it (on by default).
static ON: AtomicBool = AtomicBool::new(true);

/// Turns the small-product path on or off for every later call (the tests
/// and benches compare it with the five loops; results are the same bits
/// either way).
pub fn set_small_products(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Whether the small-product path is on ([`set_small_products`]).
pub fn small_products() -> bool {
    ON.load(Ordering::Relaxed)
}

thread_local! {
    /// Products this thread has run here ([`products_on_this_thread`]).
    static RUN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many products the calling thread has run on this path (for the
/// tests, which must know that the path they compare was taken).
pub fn products_on_this_thread() -> u64 {
    RUN.with(|r| r.get())
}

/// Whether an `m x n x k` product has a shape this path takes (the other
/// conditions are in `takes`).
pub fn fits(m: usize, n: usize, k: usize) -> bool {
    m <= MAX_M && (1..=MAX_N).contains(&n) && (1..=MAX_K).contains(&k)
}

/// Whether `C = alpha·A·B + beta·C` with `epilogue` runs here: the path is
/// on, the shape fits (`m <= MAX_M`, `n <= MAX_N`, `k <= MAX_K` and within
/// one depth block `kc`), C is not read (`beta == 0`), A is `f32` read in
/// place (`alpha == 1`), and there is no dropout mask. `simd_kernel`: the
/// five loops would run a SIMD micro-kernel (a forced scalar kernel has its
/// own sigmoid and tanh, so it keeps its loops).
pub(crate) fn takes<A: AOperand>(
    a: &A,
    alpha: f32,
    (n, beta): (usize, f32),
    epilogue: &Fused,
    kc: usize,
    simd_kernel: bool,
) -> bool {
    let (m, k) = (a.rows(), a.cols());
    small_products()
        && simd_kernel
        && fits(m, n, k)
        && k <= kc
        && beta == 0.0
        && a.in_place(alpha)
        && !a.gathers(alpha)
        && epilogue.is_none_or(|(_, _, mask)| mask.is_none())
}

/// `C = A·B`, then `act(C + bias)` if `epilogue` has them, for a product
/// [`takes`] accepted (`alpha == 1`, `beta == 0`, no dropout).
///
/// Shapes: `a: (m, k)`, `b: (k, n)`, `c: (m, n)`, `bias: (n)`.
pub(crate) fn gemm_small<A: AOperand>(a: &A, b: &MatRef<f32>, c: &mut MatMut, epilogue: Fused) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert!(fits(m, n, k), "gemm_small: {m}x{n}x{k} is not a small product");
    RUN.with(|r| r.set(r.get() + 1));
    // A where it is: element (i, p) at a_ptr + i·ra + p·pa (no copy for an
    // f32 A with alpha 1, which `takes` checked).
    let (a_ptr, ra, pa) = a.direct(1.0, (0, m), (0, k), &mut []);
    // B in place when its rows are contiguous (a row's last vector read
    // partially when n is not whole vectors); else (Wᵀ) B~: k rows of
    // `width` floats on the stack, zero past column n, so that every load
    // is a whole vector (the lanes past n are computed, never stored).
    let nv = n.div_ceil(LANES);
    let width = nv * LANES;
    let mut b_tilde = [MaybeUninit::<f32>::uninit(); MAX_K * MAX_N];
    let (data, rs_b, cs_b) = (b.data(), b.row_stride(), b.col_stride());
    let (b_ptr, b_step, full) = if cs_b == 1 || n == 1 {
        (data.as_ptr(), rs_b, n == width)
    } else {
        for (p, row) in b_tilde.chunks_exact_mut(width).take(k).enumerate() {
            let (row, pad) = row.split_at_mut(n);
            for (j, x) in row.iter_mut().enumerate() {
                x.write(data[p * rs_b + j * cs_b]);
            }
            for x in pad {
                x.write(0.0);
            }
        }
        (b_tilde.as_ptr().cast::<f32>(), width, true)
    };
    let mut bias = [0.0f32; MAX_N];
    if let Some((b, _, _)) = epilogue {
        bias[..n].copy_from_slice(&b[..n]);
    }
    let rs = c.row_stride();
    let out = Out {
        c: c.data().as_mut_ptr(),
        rs,
        n,
        bias: epilogue.map(|_| bias.as_ptr()),
    };
    let a = APanel {
        ptr: a_ptr,
        ra,
        pa,
        k,
    };
    let b = (b_ptr, b_step);
    // the activation chosen once, applied as each tile is stored
    let act = epilogue.map_or(Activation::Identity, |(_, act, _)| act);
    // SAFETY: A: the m x k view `direct` describes; B: k rows of n floats,
    // `b_step` apart, read only to n unless `full` (B itself, or B~, its
    // first k·width floats each written above); the bias: width floats on
    // this stack; C: m rows of n floats, rs apart, the exclusively borrowed `c`.
    unsafe {
        match (nv, full) {
            (1, true) => rows_with::<ONE_VECTOR_ROWS, 1, true>(&a, m, b, &out, act),
            (1, false) => rows_with::<ONE_VECTOR_ROWS, 1, false>(&a, m, b, &out, act),
            (_, true) => rows_with::<4, 2, true>(&a, m, b, &out, act),
            (_, false) => rows_with::<4, 2, false>(&a, m, b, &out, act),
        }
    }
}

/// Rows of C a tile of one vector of columns holds: sixteen where there
/// are 32 vector registers (a weight gradient's 16 rows in one pass over
/// the depth), else eight.
const ONE_VECTOR_ROWS: usize = if simd::VECTOR_REGISTERS >= 32 { 16 } else { 8 };

/// A read in place: element `(i, p)` at `ptr + i·ra + p·pa`, depth `k`.
struct APanel {
    ptr: *const f32,
    ra: usize,
    pa: usize,
    k: usize,
}

/// Where the tiles go: row `i` of C at `c + i·rs`, `n` valid columns, and
/// the bias padded to whole vectors, if any.
struct Out {
    c: *mut f32,
    rs: usize,
    n: usize,
    bias: Option<*const f32>,
}

/// [`rows`] with the activation `act` made a constant of the loop.
///
/// # Safety
/// As [`tile`] for every row `i < m`.
unsafe fn rows_with<const MR: usize, const NV: usize, const FULL: bool>(
    a: &APanel,
    m: usize,
    b: (*const f32, usize),
    out: &Out,
    act: Activation,
) {
    use Activation::*;
    // SAFETY: forwarded from the caller.
    unsafe {
        match act {
            Identity => rows::<MR, NV, FULL>(a, m, b, out, |x| activate(Identity, x)),
            Relu => rows::<MR, NV, FULL>(a, m, b, out, |x| activate(Relu, x)),
            Sigmoid => rows::<MR, NV, FULL>(a, m, b, out, |x| activate(Sigmoid, x)),
            Tanh => rows::<MR, NV, FULL>(a, m, b, out, |x| activate(Tanh, x)),
        }
    }
}

/// Every row of C: tiles of `MR` rows, then the last `m % MR` one by one.
///
/// # Safety
/// As [`tile`] for every row `i < m`.
unsafe fn rows<const MR: usize, const NV: usize, const FULL: bool>(
    a: &APanel,
    m: usize,
    b: (*const f32, usize),
    out: &Out,
    act: impl Fn(V) -> V + Copy,
) {
    let full = m / MR * MR;
    for i in (0..full).step_by(MR) {
        // SAFETY: rows i..i + MR < m; forwarded from the caller.
        unsafe { tile::<MR, NV, FULL>(a, i, b, out, act) };
    }
    for i in full..m {
        // SAFETY: row i < m; forwarded from the caller.
        unsafe { tile::<1, NV, FULL>(a, i, b, out, act) };
    }
}

/// Rows `i0..i0 + MR` of C: `acc = Σ_p a_ip · B[p]` in `MR x NV` vector
/// registers, `p` ascending, then `act(acc + bias)` stored (its first `n`
/// columns; without an epilogue, `acc`).
///
/// # Safety
/// Rows `i0..i0 + MR` of A (depth `a.k`) readable, `out.n` floats
/// readable at `b + p·ldb` for each `p < a.k` (`NV · LANES` if `FULL`),
/// the bias (if any) for `NV · LANES`, and rows `i0..i0 + MR` of C
/// writable for `out.n <= NV · LANES` floats.
#[inline(always)]
unsafe fn tile<const MR: usize, const NV: usize, const FULL: bool>(
    a: &APanel,
    i0: usize,
    (b, ldb): (*const f32, usize),
    out: &Out,
    act: impl Fn(V) -> V,
) {
    let last = out.n - (NV - 1) * LANES;
    let mut acc = [[V::ZERO; NV]; MR];
    for p in 0..a.k {
        // SAFETY: row p of B (NV vectors, the last one `last` floats
        // unless FULL) and A's elements (i0 + i, p).
        unsafe {
            let bv: [V; NV] = std::array::from_fn(|v| {
                let at = b.add(p * ldb + v * LANES);
                if FULL || v + 1 < NV {
                    simd::load(at)
                } else {
                    simd::load_partial(at, last)
                }
            });
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let ai = V::splat(*a.ptr.add((i0 + i) * a.ra + p * a.pa));
                for (acc, &bv) in acc_row.iter_mut().zip(&bv) {
                    *acc = simd::mul_add(ai, bv, *acc);
                }
            }
        }
    }
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, &x) in acc_row.iter().enumerate() {
            let col = v * LANES;
            // SAFETY: the bias holds NV · LANES floats; C's row i0 + i holds
            // columns col..col + LANES when they are below n, else col..n.
            unsafe {
                let x = match out.bias {
                    Some(bias) => act(x + simd::load(bias.add(col))),
                    None => x,
                };
                let c = out.c.add((i0 + i) * out.rs + col);
                if col + LANES <= out.n {
                    simd::store(c, x);
                } else {
                    simd::store_partial_plain(c, x, out.n - col);
                }
            }
        }
    }
}
