//! `C = A·B` for an A whose rows are mostly zeros: each row of C adds up
//! the rows of B that its row of A selects, skipping the zeros.
//!
//! A convolution's input gradient starts as `dcols = dz·Wᵀ` (see
//! `nn::conv`), where `dz` is the error of a layer followed by a 2x2
//! max-pool: the pool sent each error to one of four positions, so three
//! quarters of `dz` (more after a ReLU) are zeros. The GEMM multiplies
//! every one of them, and its depth (the filters: 16 in LeNet-5, 64 in
//! Keras' mnist_cnn) is too short for its register tiles to pay off.
//! Here, per row of A: one vector compare per `LANES` entries finds the
//! non-zeros, and each adds its row of B (in L1) into sums held in
//! registers, `CHUNK` vectors of C's row at a time.
//!
//! The sums are the GEMM's: the terms in order of `k` from zero, in blocks
//! of `kc` each added to the sum of the blocks before it; a zero term
//! `0·b` added to a sum leaves it as it is (the sum is never `-0`), so for
//! a finite B the bits are the same.
//!
//! (In training, a convolution whose output a max-pool reads skips `dz`
//! altogether in AVX-512 and AVX2 builds, see `kernels::conv_pooled`; this
//! product serves the layer's own backward pass, as for a convolution that
//! drops out.)

use crate::matrix::{MatMut, MatRef};
use crate::simd::{self, LANES, V};
use rayon::prelude::*;

/// Vectors of a row of C summed in registers at once, with room for B's
/// (24 with AVX-512: Keras' 3x3x32 input gradient, 288 columns, 18 vectors,
/// in one pass over the row's non-zeros; 8 with AVX2's 16 registers, 4
/// with SSE2's 8). (Also `sparse_rows`' one-row product's.)
pub(crate) const CHUNK: usize = if crate::simd::VECTOR_REGISTERS > 12 {
    crate::simd::VECTOR_REGISTERS - 8
} else {
    4
};

/// `row_chunk::<NV>(args)` for the `NV` of a runtime count of vectors (one of the listed).
macro_rules! seq_vectors {
    ($count:expr, $args:expr, $($nv:literal)*) => {{
        let (c_row, a_row, b, cols, kc) = $args;
        match $count {
            $($nv => row_chunk::<$nv>(c_row, a_row, b, cols, kc),)*
            _ => unreachable!("at most CHUNK vectors"),
        }
    }};
}
/// Rows of C per rayon task when threaded.
const ROWS_PER_TASK: usize = 64;

/// The largest share of non-zeros in A for which [`sparse_a_product`] is
/// faster than the GEMM. Measured (Zen 5, AVX-512, 1 thread), against the
/// GEMM on the same rows: LeNet-5's `dz·Wᵀ` (16% non-zeros after its pool
/// and ReLU) 0.20 -> 0.145 ms a shard, Keras' (8%) 6.8 -> 2.2 ms; a `dz`
/// with no zeros (no pool, identity) 1.3-1.5x slower. About 1/2 breaks
/// even; a max-pool leaves at most 1/4.
pub const SPARSE_ENOUGH: f32 = 1.0 / 3.0;

/// The number of non-zero entries of `a` (NaN counts as non-zero).
pub fn nonzeros(a: MatRef) -> usize {
    assert!(
        a.col_stride() == 1 || a.cols() <= 1,
        "nonzeros: rows must be contiguous"
    );
    let (k, data) = (a.cols(), a.data());
    (0..a.rows())
        .map(|i| {
            let row = &data[i * a.row_stride()..][..k];
            row.chunks(LANES)
                .map(|c| {
                    // SAFETY: the chunk's `c.len() <= LANES` floats are readable
                    let v = unsafe { simd::load_partial(c.as_ptr(), c.len()) };
                    (!v.simd_eq(V::ZERO).to_bitmask() & ((1u32 << c.len()) - 1)).count_ones() as usize
                })
                .sum::<usize>()
        })
        .sum()
}

/// `c = a·b` (overwritten), `b`'s rows contiguous, the depth summed in
/// blocks of `kc` (as [`super::gemm`] with these block sizes); rows split
/// across the rayon pool when `threads` (each row is summed alone: the
/// same bits on any number of threads). Returns the multiply-adds done
/// (the non-zeros of `a` times `n`).
///
/// Shapes: `c: (m, n)`, `a: (m, k)`, `b: (k, n)`; `a`'s and `c`'s rows contiguous.
pub fn sparse_a_product(mut c: MatMut, a: MatRef, b: MatRef, kc: usize, threads: bool) -> usize {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert!(
        (c.rows(), c.cols()) == (m, n) && b.rows() == k,
        "sparse_a_product: shapes"
    );
    assert!(
        a.col_stride() == 1 && b.col_stride() == 1,
        "sparse_a_product: rows must be contiguous"
    );
    assert!(kc > 0, "sparse_a_product: kc = 0");
    if m == 0 || n == 0 {
        return 0;
    }
    let (lda, ldc) = (a.row_stride(), c.row_stride());
    let (a, b_data, ldb) = (a.data(), b.data(), b.row_stride());
    // one row of C; returns the non-zeros of its row of A
    let row = |i: usize, c_row: &mut [f32]| -> usize {
        let a_row = &a[i * lda..][..k];
        if let Some(ahead) = a.get((i + 8) * lda..(i + 8) * lda + k) {
            simd::prefetch(ahead);
        }
        let mut nonzeros = 0;
        for j0 in (0..n).step_by(CHUNK * LANES) {
            let cols = (CHUNK * LANES).min(n - j0);
            let args = (&mut *c_row, a_row, (b_data, ldb), (j0, cols), kc);
            nonzeros = seq_vectors!(cols.div_ceil(LANES), args, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24);
        }
        nonzeros
    };
    let c_data = c.data();
    let nonzeros: usize = if threads && m > ROWS_PER_TASK {
        let chunk = ROWS_PER_TASK * ldc;
        c_data
            .par_chunks_mut(chunk)
            .enumerate()
            .map(|(t, rows)| {
                let first = t * ROWS_PER_TASK;
                let rows = rows.chunks_mut(ldc).enumerate().take(m - first);
                rows.map(|(r, c_row)| row(first + r, &mut c_row[..n]))
                    .sum::<usize>()
            })
            .sum()
    } else {
        (0..m).map(|i| row(i, &mut c_data[i * ldc..][..n])).sum()
    };
    nonzeros * n
}

/// Columns `j0..j0 + cols` (`cols <= NV·LANES`) of one row of C; returns
/// the non-zeros of the row of A.
#[inline(always)]
fn row_chunk<const NV: usize>(
    c_row: &mut [f32],
    a_row: &[f32],
    (b, ldb): (&[f32], usize),
    (j0, cols): (usize, usize),
    kc: usize,
) -> usize {
    let k = a_row.len();
    // every read of B below is inside rows 0..k, columns j0..j0 + cols (checked once)
    assert!(
        k == 0 || (k - 1) * ldb + j0 + cols <= b.len(),
        "sparse_a_product: B too short"
    );
    // vectors 0..NV - 1 are whole; the last one has `last` columns (1..=LANES)
    let last = cols - (NV - 1) * LANES;
    assert!(
        (1..=LANES).contains(&last),
        "sparse_a_product: {cols} columns in {NV} vectors"
    );
    let (mut total, mut nonzeros) = ([V::ZERO; NV], 0);
    for p0 in (0..k).step_by(kc) {
        let depth = kc.min(k - p0);
        let mut acc = [V::ZERO; NV];
        for q0 in (p0..p0 + depth).step_by(LANES) {
            let len = LANES.min(p0 + depth - q0);
            // SAFETY: q0 + len <= k = a_row.len()
            let values = unsafe { simd::load_partial(a_row.as_ptr().add(q0), len) };
            // the non-zero entries (NaN counts as non-zero, as in the GEMM's sums)
            let mut nonzero = !values.simd_eq(V::ZERO).to_bitmask() & ((1u32 << len) - 1);
            nonzeros += nonzero.count_ones() as usize;
            while nonzero != 0 {
                let p = q0 + nonzero.trailing_zeros() as usize;
                nonzero &= nonzero - 1;
                // SAFETY: p < q0 + len <= k
                let ai = V::splat(unsafe { *a_row.as_ptr().add(p) });
                // SAFETY: row p < k of B, columns j0..j0 + cols (asserted)
                let b_row = unsafe { b.as_ptr().add(p * ldb + j0) };
                for (v, acc) in acc.iter_mut().enumerate().take(NV - 1) {
                    // SAFETY: as above, a whole vector inside the chunk
                    *acc = simd::mul_add(ai, unsafe { simd::load(b_row.add(v * LANES)) }, *acc);
                }
                // SAFETY: as above, the first `last` floats of the last vector
                let bv = unsafe { simd::load_partial(b_row.add((NV - 1) * LANES), last) };
                acc[NV - 1] = simd::mul_add(ai, bv, acc[NV - 1]);
            }
        }
        for (t, &a) in total.iter_mut().zip(&acc) {
            *t = if p0 == 0 { a } else { a + *t };
        }
    }
    let out = &mut c_row[j0..j0 + cols];
    for (v, &t) in total.iter().enumerate().take(NV - 1) {
        // SAFETY: vector v < NV - 1 is whole inside `out`
        unsafe { simd::store(out.as_mut_ptr().add(v * LANES), t) };
    }
    // SAFETY: the last vector's `last` columns end `out`
    unsafe { simd::store_partial(out.as_mut_ptr().add((NV - 1) * LANES), total[NV - 1], last) };
    nonzeros
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{depth_block, gemm, Epilogue, Parallelism};
    use crate::matrix::test_number as value;
    use crate::matrix::Matrix;

    /// The GEMM's bits on rows of every density, widths that end mid-vector
    /// and mid-chunk, depths over one and several `kc` blocks, 1 and 2 threads.
    #[test]
    fn sparse_product_has_the_gemm_bits() {
        // Under Miri only the shapes of fewer than 66 rows: rows of every
        // density, a width ending mid-vector and one past a chunk, several
        // depth blocks.
        let shapes = [
            (1, 1, 1),
            (7, 16, 150),
            (130, 64, 288),
            (9, 40, 17),
            (5, 3, 129),
            (66, 17, 255),
        ];
        let shapes = shapes.into_iter().filter(|&(m, ..)| !cfg!(miri) || m < 66);
        for (m, k, n) in shapes {
            for kc in [depth_block(k), 7, 1000] {
                let a = Matrix::from_fn(m, k, |i, p| {
                    // densities from empty rows to full ones
                    let keep = (i + p) % (1 + i % 5) == 0;
                    if keep {
                        value(i * k + p, 1)
                    } else {
                        0.0
                    }
                });
                let b = Matrix::from_fn(k, n, |p, j| value(p * n + j, 2));
                // the sums in the GEMM's order, written out: blocks of kc from zero, each added to the last
                let want = Matrix::from_fn(m, n, |i, j| {
                    let mut total = 0.0f32;
                    for p0 in (0..k).step_by(kc) {
                        let mut block = 0.0f32;
                        for p in p0..(p0 + kc).min(k) {
                            block = crate::simd::mul_add_f32(
                                a.as_slice()[i * k + p],
                                b.as_slice()[p * n + j],
                                block,
                            );
                        }
                        total = if p0 == 0 { block } else { block + total };
                    }
                    total
                });
                if kc == depth_block(k) {
                    // and the GEMM itself, whose blocks these are
                    let mut c = Matrix::zeros(m, n);
                    gemm(
                        1.0,
                        a.view(),
                        b.view(),
                        0.0,
                        c.view_mut(),
                        Epilogue::None,
                        Parallelism::Sequential,
                    );
                    let same = c
                        .as_slice()
                        .iter()
                        .zip(want.as_slice())
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}x{k}x{n}: the written-out sums are not the GEMM's");
                }
                for threads in [false, true] {
                    let mut got = Matrix::from_fn(m, n, |_, _| f32::NAN);
                    let done = sparse_a_product(got.view_mut(), a.view(), b.view(), kc, threads);
                    let count = a.as_slice().iter().filter(|&&x| x != 0.0).count();
                    assert_eq!(done, count * n, "{m}x{k}x{n}: multiply-adds");
                    assert_eq!(nonzeros(a.view()), count, "{m}x{k}: non-zeros");
                    for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{m}x{k}x{n} kc {kc} threads {threads}: c[{}][{}] {g} vs {w}",
                            i / n,
                            i % n
                        );
                    }
                }
            }
        }
    }
}
