//! The three products of a narrow dense layer, without the GEMM's machinery.
//!
//! Above its first layer, the workshop network (784-16-16-10) multiplies
//! a training shard's 64 rows by 16 x 16 and 16 x 10 weights, six
//! products a step, each a few hundred multiply-adds a row. Through
//! `crate::gemm::gemm` each call checks its operands, picks its path, copies
//! `B` when its rows are not whole vectors (`W` of the 10 logits, `Wᵀ`
//! always), and applies the activation in a second pass. Here a layer whose
//! inputs and outputs fit in one or two vectors ([`fits`]) runs each
//! product in one pass over the rows, eight rows at a time (four with two
//! vectors a row) so that eight sums, not one, wait on each multiply-add:
//!
//! ```text
//! forward   a  = f(x·W + b)   a row's sums in registers, then + b, then f
//! backward  dx = dz·Wᵀ        Wᵀ's rows (W's columns) gathered once a call
//!           dW = xᵀ·dz        16 (or 8) rows of dW in registers over all the rows
//! ```
//!
//! The same bits as the GEMM: each element is the same multiply-adds
//! ([`simd::mul_add`]) in the same order from zero, a depth of one block
//! (`x·W` and `dz·Wᵀ` sum over at most [`MAX_WIDTH`] terms, `xᵀ·dz` over
//! the rows: the caller keeps them within one block, [`one_depth_block`]),
//! then `+ b` and `f` as the GEMM's epilogue applies them. The tests compare
//! the two on many shapes.
//!
//! Measured on a Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes),
//! the workshop network's epoch with these against the GEMM (`train
//! --json`, the two builds alternated): 0.984 on 2 threads (faster in 13
//! of 14 rounds) and on 1; an AVX2 build, level (see docs/PERFORMANCE.md,
//! "A Zen 5, a fourth session").

use crate::activation::Activation;
use crate::matrix::{MatMut, MatRef};
use crate::simd::{self, LANES, V};
use crate::trace::{self, Kind};

/// The widest input or output taken here: two vectors.
pub const MAX_WIDTH: usize = 2 * LANES;

/// Whether a dense layer of `inputs -> outputs` is narrow enough for the
/// products here.
pub fn fits(inputs: usize, outputs: usize) -> bool {
    (1..=MAX_WIDTH).contains(&inputs) && (1..=MAX_WIDTH).contains(&outputs)
}

/// Whether a weight gradient over `rows` rows is one block of the GEMM's
/// depth (so that [`weight_gradient`] has its bits).
pub fn one_depth_block(rows: usize) -> bool {
    rows <= crate::gemm::block_sizes().kc
}

/// Vectors in a row of `n <= MAX_WIDTH` floats.
fn vectors(n: usize) -> usize {
    n.div_ceil(LANES)
}

/// Loads the `n` floats of `row` (`n <= NV·LANES`) as `NV` vectors, zero past `n`.
#[inline(always)]
fn load_row<const NV: usize>(row: &[f32], n: usize) -> [V; NV] {
    let row = &row[..n];
    std::array::from_fn(|v| {
        let j = v * LANES;
        // SAFETY: floats j..min(j + LANES, n) of `row` (length n) are read.
        unsafe {
            match n.saturating_sub(j) {
                0 => V::ZERO,
                left if left >= LANES => simd::load(row.as_ptr().add(j)),
                left => simd::load_partial(row.as_ptr().add(j), left),
            }
        }
    })
}

/// Stores the first `n` floats of `x` (`n <= NV·LANES`) to `row`.
#[inline(always)]
fn store_row<const NV: usize>(row: &mut [f32], n: usize, x: [V; NV]) {
    let row = &mut row[..n];
    for (v, x) in x.into_iter().enumerate() {
        let j = v * LANES;
        // SAFETY: floats j..min(j + LANES, n) of `row` (length n) are written.
        unsafe {
            match n.saturating_sub(j) {
                0 => {}
                left if left >= LANES => simd::store(row.as_mut_ptr().add(j), x),
                left => simd::store_partial_plain(row.as_mut_ptr().add(j), x, left),
            }
        }
    }
}

/// Forward: `a = act(x·W + b)`. Shapes: `a: (rows, n)`, `x: (rows, k)`
/// and `W: (k, n)` with contiguous rows, `b: (n)`, [`fits`]`(k, n)`.
pub fn forward(mut a: MatMut, x: MatRef, w: MatRef, b: &[f32], act: Activation) {
    let (rows, k, n) = (a.rows(), w.rows(), w.cols());
    assert!(
        fits(k, n)
            && (x.rows(), x.cols()) == (rows, k)
            && x.col_stride() == 1
            && w.col_stride() == 1
            && a.cols() == n
            && b.len() == n,
        "narrow::forward: shapes"
    );
    let _t = trace::kernel(Kind::ForwardGemm).flops(2 * rows * k * n);
    // the activation chosen once, outside the loops
    use Activation::*;
    match (vectors(n), act) {
        (1, Identity) => forward_rows::<1, 8>(&mut a, x, w, b, |z| simd::activate(Identity, z)),
        (1, Relu) => forward_rows::<1, 8>(&mut a, x, w, b, |z| simd::activate(Relu, z)),
        (1, Sigmoid) => forward_rows::<1, 8>(&mut a, x, w, b, |z| simd::activate(Sigmoid, z)),
        (1, Tanh) => forward_rows::<1, 8>(&mut a, x, w, b, |z| simd::activate(Tanh, z)),
        (_, Identity) => forward_rows::<2, 4>(&mut a, x, w, b, |z| simd::activate(Identity, z)),
        (_, Relu) => forward_rows::<2, 4>(&mut a, x, w, b, |z| simd::activate(Relu, z)),
        (_, Sigmoid) => forward_rows::<2, 4>(&mut a, x, w, b, |z| simd::activate(Sigmoid, z)),
        (_, Tanh) => forward_rows::<2, 4>(&mut a, x, w, b, |z| simd::activate(Tanh, z)),
    }
}

fn forward_rows<const NV: usize, const G: usize>(
    a: &mut MatMut,
    x: MatRef,
    w: MatRef,
    b: &[f32],
    act: impl Fn(V) -> V + Copy,
) {
    let (rows, k, n) = (a.rows(), w.rows(), w.cols());
    let bias = load_row::<NV>(b, n);
    // W's rows as vectors, zero past n, loaded once a call
    let mut wv = [[V::ZERO; NV]; MAX_WIDTH];
    for (p, wv) in wv.iter_mut().enumerate().take(k) {
        *wv = load_row::<NV>(&w.data()[p * w.row_stride()..], n);
    }
    let mut r0 = 0;
    while r0 < rows {
        if r0 + G <= rows {
            forward_group::<NV, G>(a, r0, x, &wv[..k], bias, act);
            r0 += G;
        } else {
            forward_group::<NV, 1>(a, r0, x, &wv[..k], bias, act);
            r0 += 1;
        }
    }
}

/// Rows `r0..r0 + G` of [`forward`]: `acc = Σ_p x_rp · W[p]`, `p` ascending
/// from zero, then `act(acc + b)` stored.
#[inline(always)]
fn forward_group<const NV: usize, const G: usize>(
    a: &mut MatMut,
    r0: usize,
    x: MatRef,
    wv: &[[V; NV]],
    bias: [V; NV],
    act: impl Fn(V) -> V,
) {
    let k = wv.len();
    let xs: [*const f32; G] = std::array::from_fn(|g| x.data()[(r0 + g) * x.row_stride()..][..k].as_ptr());
    let mut acc = [[V::ZERO; NV]; G];
    for (p, wp) in wv.iter().enumerate() {
        for g in 0..G {
            // SAFETY: p < k, and each row of x has k floats (sliced above)
            let xv = V::splat(unsafe { *xs[g].add(p) });
            for v in 0..NV {
                acc[g][v] = simd::mul_add(xv, wp[v], acc[g][v]);
            }
        }
    }
    let n = a.cols();
    for (g, acc) in acc.iter().enumerate() {
        let mut out = *acc;
        for (out, &b) in out.iter_mut().zip(&bias) {
            *out = act(*out + b);
        }
        store_row::<NV>(a.row_mut(r0 + g), n, out);
    }
}

/// Backward, the error sent down: `dx = dz·Wᵀ`. Shapes: `dx: (rows, k)`,
/// `dz: (rows, n)` and `W: (k, n)` with contiguous rows, [`fits`]`(k, n)`.
pub fn input_gradient(mut dx: MatMut, dz: MatRef, w: MatRef) {
    let (rows, k, n) = (dz.rows(), w.rows(), w.cols());
    assert!(
        fits(k, n)
            && dz.cols() == n
            && dz.col_stride() == 1
            && w.col_stride() == 1
            && (dx.rows(), dx.cols()) == (rows, k),
        "narrow::input_gradient: shapes"
    );
    let _t = trace::kernel(Kind::BackwardGemmDx).flops(2 * rows * k * n);
    match vectors(k) {
        1 => input_gradient_rows::<1, 8>(&mut dx, dz, w),
        _ => input_gradient_rows::<2, 4>(&mut dx, dz, w),
    }
}

fn input_gradient_rows<const NV: usize, const G: usize>(dx: &mut MatMut, dz: MatRef, w: MatRef) {
    let (rows, k, n) = (dz.rows(), w.rows(), w.cols());
    // Wᵀ: row j is W's column j (k floats, zero past k), written in order
    // (written row by row of W, the compiler made it a scatter: slower)
    let mut columns = [[0.0f32; MAX_WIDTH]; MAX_WIDTH];
    let (data, rs) = (w.data(), w.row_stride());
    for (j, column) in columns.iter_mut().enumerate().take(n) {
        for (i, c) in column.iter_mut().enumerate().take(k) {
            *c = data[i * rs + j];
        }
    }
    let mut wt = [[V::ZERO; NV]; MAX_WIDTH];
    for (wt, column) in wt.iter_mut().zip(&columns).take(n) {
        *wt = load_row::<NV>(column, NV * LANES);
    }
    let mut r0 = 0;
    while r0 < rows {
        if r0 + G <= rows {
            input_gradient_group::<NV, G>(dx, r0, dz, &wt[..n]);
            r0 += G;
        } else {
            input_gradient_group::<NV, 1>(dx, r0, dz, &wt[..n]);
            r0 += 1;
        }
    }
}

/// Rows `r0..r0 + G` of [`input_gradient`]: `dx_r = Σ_j dz_rj · Wᵀ[j]`, `j`
/// ascending from zero.
#[inline(always)]
fn input_gradient_group<const NV: usize, const G: usize>(
    dx: &mut MatMut,
    r0: usize,
    dz: MatRef,
    wt: &[[V; NV]],
) {
    let n = wt.len();
    let ds: [*const f32; G] = std::array::from_fn(|g| dz.data()[(r0 + g) * dz.row_stride()..][..n].as_ptr());
    let mut acc = [[V::ZERO; NV]; G];
    for (j, wj) in wt.iter().enumerate() {
        for g in 0..G {
            // SAFETY: j < n, and each row of dz has n floats (sliced above)
            let d = V::splat(unsafe { *ds[g].add(j) });
            for v in 0..NV {
                acc[g][v] = simd::mul_add(d, wj[v], acc[g][v]);
            }
        }
    }
    let k = dx.cols();
    for (g, &acc) in acc.iter().enumerate() {
        store_row::<NV>(dx.row_mut(r0 + g), k, acc);
    }
}

/// Backward, the weights' gradient: `dW = xᵀ·dz` over all the rows.
/// Shapes: `dW: (k, n)`, `x: (rows, k)` and `dz: (rows, n)` with
/// contiguous rows, [`fits`]`(k, n)`; the rows in one block of depth
/// ([`one_depth_block`]) for the GEMM's bits.
pub fn weight_gradient(mut dw: MatMut, x: MatRef, dz: MatRef) {
    let (rows, n, k) = (dz.rows(), dz.cols(), dw.rows());
    assert!(
        fits(k, n)
            && dw.cols() == n
            && (x.rows(), x.cols()) == (rows, k)
            && x.col_stride() == 1
            && dz.col_stride() == 1,
        "narrow::weight_gradient: shapes"
    );
    let _t = trace::kernel(Kind::BackwardGemmDw).flops(2 * rows * k * n);
    match vectors(n) {
        1 => weight_gradient_rows::<1>(&mut dw, x, dz),
        _ => weight_gradient_rows::<2>(&mut dw, x, dz),
    }
}

fn weight_gradient_rows<const NV: usize>(dw: &mut MatMut, x: MatRef, dz: MatRef) {
    let k = dw.rows();
    let mut i0 = 0;
    while i0 < k {
        if NV == 1 && i0 + 16 <= k {
            // sixteen rows of dW in sixteen registers
            weight_gradient_block::<NV, 16>(dw, i0, x, dz);
            i0 += 16;
        } else if i0 + 8 <= k {
            weight_gradient_block::<NV, 8>(dw, i0, x, dz);
            i0 += 8;
        } else {
            weight_gradient_block::<NV, 1>(dw, i0, x, dz);
            i0 += 1;
        }
    }
}

/// Rows `i0..i0 + B` of [`weight_gradient`]: `dW_i = Σ_r x_ri · dz_r`, `r`
/// ascending from zero, in registers over all the rows.
#[inline(always)]
fn weight_gradient_block<const NV: usize, const B: usize>(dw: &mut MatMut, i0: usize, x: MatRef, dz: MatRef) {
    let (rows, n) = (dz.rows(), dz.cols());
    let mut acc = [[V::ZERO; NV]; B];
    for r in 0..rows {
        let d = load_row::<NV>(&dz.data()[r * dz.row_stride()..], n);
        let xr = x.data()[r * x.row_stride() + i0..][..B].as_ptr();
        for (b, acc) in acc.iter_mut().enumerate() {
            // SAFETY: b < B, and B floats of the row from i0 (sliced above)
            let xv = V::splat(unsafe { *xr.add(b) });
            for v in 0..NV {
                acc[v] = simd::mul_add(xv, d[v], acc[v]);
            }
        }
    }
    for (b, &acc) in acc.iter().enumerate() {
        store_row::<NV>(dw.row_mut(i0 + b), n, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{gemm, Epilogue, Parallelism};
    use crate::matrix::{first_bit_difference, test_number, Matrix};

    /// Widths around one and two vectors, and rows around the groups.
    fn widths() -> Vec<usize> {
        let mut w = vec![1, 3, LANES - 1, LANES, LANES + 1, 2 * LANES - 1, 2 * LANES];
        w.retain(|&x| x >= 1);
        w.dedup();
        w
    }
    const ROWS: [usize; 9] = [1, 2, 3, 7, 8, 9, 17, 64, 70];

    fn random(rows: usize, cols: usize, salt: usize) -> Matrix {
        Matrix::from_fn(rows, cols, |i, j| test_number(i * cols + j, salt))
    }

    fn assert_same_bits(got: &Matrix, want: &Matrix, what: &str) {
        let bad = first_bit_difference(got.as_slice(), want.as_slice());
        assert!(
            bad.is_none(),
            "{what}: element {bad:?} differs: {:?} against the GEMM's {:?}",
            bad.map(|i| got.as_slice()[i]),
            bad.map(|i| want.as_slice()[i])
        );
    }

    #[test]
    fn the_forward_product_has_the_bits_of_the_gemm_with_its_epilogue() {
        for k in widths() {
            for n in widths() {
                for rows in ROWS {
                    for act in Activation::ALL {
                        let (x, w) = (random(rows, k, 1), random(k, n, 2));
                        let b: Vec<f32> = (0..n).map(|j| test_number(j, 3)).collect();
                        let (mut got, mut want) = (Matrix::zeros(rows, n), Matrix::zeros(rows, n));
                        forward(got.view_mut(), x.view(), w.view(), &b, act);
                        let epilogue = Epilogue::BiasActivation { bias: &b, act };
                        gemm(
                            1.0,
                            x.view(),
                            w.view(),
                            0.0,
                            want.view_mut(),
                            epilogue,
                            Parallelism::Sequential,
                        );
                        assert_same_bits(&got, &want, &format!("a = {act:?}(x·W + b), {rows}x{k} -> {n}"));
                    }
                }
            }
        }
    }

    #[test]
    fn the_input_gradient_has_the_bits_of_dz_times_w_transposed() {
        for k in widths() {
            for n in widths() {
                for rows in ROWS {
                    let (dz, w) = (random(rows, n, 4), random(k, n, 5));
                    let (mut got, mut want) = (Matrix::zeros(rows, k), Matrix::zeros(rows, k));
                    input_gradient(got.view_mut(), dz.view(), w.view());
                    let none = Epilogue::None;
                    gemm(
                        1.0,
                        dz.view(),
                        w.view().t(),
                        0.0,
                        want.view_mut(),
                        none,
                        Parallelism::Sequential,
                    );
                    assert_same_bits(&got, &want, &format!("dx = dz·Wᵀ, {rows}x{n} -> {k}"));
                }
            }
        }
    }

    #[test]
    fn the_weight_gradient_has_the_bits_of_x_transposed_times_dz() {
        for k in widths() {
            for n in widths() {
                for rows in ROWS.into_iter().chain([128, 200]) {
                    let (x, dz) = (random(rows, k, 6), random(rows, n, 7));
                    let (mut got, mut want) = (Matrix::zeros(k, n), Matrix::zeros(k, n));
                    assert!(one_depth_block(rows));
                    weight_gradient(got.view_mut(), x.view(), dz.view());
                    let none = Epilogue::None;
                    gemm(
                        1.0,
                        x.view().t(),
                        dz.view(),
                        0.0,
                        want.view_mut(),
                        none,
                        Parallelism::Sequential,
                    );
                    assert_same_bits(&got, &want, &format!("dW = xᵀ·dz, {rows} rows, {k} -> {n}"));
                }
            }
        }
    }

    #[test]
    fn only_one_or_two_vectors_fit() {
        assert!(fits(1, 1) && fits(MAX_WIDTH, MAX_WIDTH) && fits(16, 10));
        assert!(!fits(0, 4) && !fits(4, 0) && !fits(MAX_WIDTH + 1, 4) && !fits(4, MAX_WIDTH + 1));
    }
}
