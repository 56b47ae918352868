//! Element-wise kernels that sit around the GEMMs in a training step.
//!
//! - forward: `a = f(z + b)` ([`bias_activation`]);
//! - loss: softmax and cross-entropy fused, giving the loss and the output
//!   error `(p - y) / batch` ([`softmax_cross_entropy`]); softmax alone for
//!   predictions ([`softmax_rows`]);
//! - backward: `dz = da ⊙ f'(a)` fused with the bias gradient `db = Σ_rows dz`
//!   ([`activation_backward`]; for the output layer's identity, `dz = da`);
//! - inverted dropout (training only; the mask is [`DropoutMask`], a hash,
//!   never stored): forward `a = f(z + b) ⊙ m` ([`bias_activation_dropout`];
//!   the network's forward pass does it in the GEMM's epilogue instead),
//!   backward `dz = da ⊙ m ⊙ f'` ([`activation_dropout_backward`]), where
//!   `m` is `1/(1-rate)` for kept units and 0 for dropped ones.
//!
//! These are the fast versions, with `wide` vectors ([`simd::V`], `LANES`
//! floats at a time; a row's tail is handled as a zero- or `-inf`-padded
//! vector, so the same arithmetic runs on every element), no allocation:
//! one pass over each row, except `softmax_cross_entropy`, which makes
//! three passes over the whole (L1-resident) block.
//! [`reference`](mod@reference) keeps the plain scalar versions.
//!
//! Accuracy against [`reference`](mod@reference):
//! - exact (bit-identical): identity and ReLU in [`bias_activation`] and
//!   [`bias_activation_dropout`], [`activation_backward`] and
//!   [`activation_dropout_backward`] (every activation: `f'` from the
//!   output is plain arithmetic, the mask is integer hashing, and `db` is
//!   summed over rows in the same order);
//! - within a few ulp: sigmoid and tanh (polynomial `exp`), and the softmax
//!   kernels (polynomial `exp`; in `softmax_rows` the row sum is also taken
//!   lane-wise).
//!
//! These call [`reference`](mod@reference) instead: views whose column
//! stride is not 1 (`activation_backward` and its dropout twin), a
//! `softmax_cross_entropy` whose rows are not contiguous, and rows narrower
//! than one vector in `bias_activation` (identity and ReLU only), where the
//! scalar loop is faster and exact anyway. The backward kernels keep rows
//! of one or two vectors (narrow ones too) in vectors, with `db`'s sums in
//! registers.

pub mod conv;
pub mod conv_direct;
pub mod conv_pooled;
pub mod conv_sparse;
pub mod dropout;
pub mod pool;
pub mod reference;

pub use dropout::DropoutMask;

use crate::activation::Activation;
use crate::matrix::{ColsMut, MatMut, MatRef, RowsMut};
use crate::simd::{self, LANES, V};
use crate::trace::{self, Kind};

/// Row `i` of a view with unit column stride, as a slice.
fn row_of<'a>(m: &MatRef<'a>, i: usize) -> &'a [f32] {
    debug_assert_eq!(m.col_stride(), 1);
    &m.data()[i * m.row_stride()..][..m.cols()]
}

/// Reads `LANES` floats at `s[j..]`, or the `s.len() - j < LANES` that are
/// left with `fill` in the other lanes (a masked load on AVX-512).
#[inline(always)]
fn read(s: &[f32], j: usize, fill: f32) -> V {
    let n = s.len() - j;
    // SAFETY: `j < s.len()`, and at most `min(n, LANES)` floats from `j` are read.
    unsafe {
        if n >= LANES {
            simd::load(s.as_ptr().add(j))
        } else {
            simd::load_partial_or(s.as_ptr().add(j), n, fill)
        }
    }
}

/// Writes `v` to `s[j..]`, as many lanes as fit (`min(LANES, s.len() - j)`).
#[inline(always)]
fn write(s: &mut [f32], j: usize, v: V) {
    let n = s.len() - j;
    // SAFETY: `j < s.len()`, and at most `min(n, LANES)` floats from `j` are written.
    unsafe {
        if n >= LANES {
            simd::store(s.as_mut_ptr().add(j), v)
        } else {
            simd::store_partial(s.as_mut_ptr().add(j), v, n)
        }
    }
}

/// In place: `z_ij <- act(z_ij + bias_j)`. Shapes: `z: (batch, n)`, `bias: (n)`.
pub fn bias_activation(mut z: MatMut, bias: &[f32], act: Activation) {
    assert_eq!(bias.len(), z.cols(), "bias_activation: bias length");
    if z.cols() < LANES && matches!(act, Activation::Identity | Activation::Relu) {
        // Rows narrower than one vector (the 10 logits): every row would be
        // one masked store followed by a masked load of the next row in the
        // same cache line, which stalls store forwarding (measured 128x10
        // ReLU: 1.1 µs vectorised, 0.25 µs in the compiler-vectorised scalar
        // loop). Identity and ReLU are exact either way.
        return reference::bias_activation(z, bias, act);
    }
    for i in 0..z.rows() {
        let row = z.row_mut(i);
        for j in (0..row.len()).step_by(LANES) {
            let x = read(row, j, 0.0) + read(bias, j, 0.0);
            write(row, j, simd::activate(act, x));
        }
    }
}

/// In place: `z_ij <- act(z_ij + bias_j) · m_ij`, `m` the dropout factors
/// (`mask.factor(i, j)`: `1/(1-rate)` or 0). Shapes: `z: (batch, n)`, `bias: (n)`.
pub fn bias_activation_dropout(mut z: MatMut, bias: &[f32], act: Activation, mask: &DropoutMask) {
    assert_eq!(bias.len(), z.cols(), "bias_activation_dropout: bias length");
    if z.cols() < LANES && matches!(act, Activation::Identity | Activation::Relu) {
        return reference::bias_activation_dropout(z, bias, act, mask);
    }
    for i in 0..z.rows() {
        let row = z.row_mut(i);
        for j in (0..row.len()).step_by(LANES) {
            let x = read(row, j, 0.0) + read(bias, j, 0.0);
            write(row, j, simd::activate(act, x) * mask.factors(i, j));
        }
    }
}

/// Dropout's backward: `dz_ij = da_ij · m_ij · f'(a_ij · u)` and `db_j = Σ_i dz_ij`
/// (overwritten), in one pass. `m` is the mask the forward pass applied
/// (regenerated from its hash), `a` the stored output (already multiplied by
/// `m`), and `u = mask.unscale_for(act)` turns it back into `f(z)` for the
/// derivative (`1 - rate` for sigmoid and tanh; ReLU and identity need
/// only the sign, exactly).
///
/// Shapes: `dz, da, a: (batch, n)`, `db: (n)`.
pub fn activation_dropout_backward(
    dz: MatMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: &DropoutMask,
    db: &mut [f32],
) {
    reference::check_activation_backward(&dz, &da, &a, db);
    let _t = trace::kernel(Kind::ActivationBackward).bytes(12 * dz.rows() * dz.cols());
    if a.col_stride() != 1 || da.col_stride() != 1 {
        return reference::activation_dropout_backward(dz, da, a, act, mask, db);
    }
    dropout_backward_rows(dz, da, a, act, mask, db);
}

/// [`activation_dropout_backward`] of row-major `da` and `a`, into any rows.
fn dropout_backward_rows(
    mut dz: impl RowsMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: &DropoutMask,
    db: &mut [f32],
) {
    let unscale = V::splat(mask.unscale_for(act));
    let d = |i: usize, j: usize| {
        let slope = simd::derivative_from_output(act, read(row_of(&a, i), j, 0.0) * unscale);
        read(row_of(&da, i), j, 0.0) * mask.factors(i, j) * slope
    };
    match dz.cols().div_ceil(LANES) {
        1 => return sum_rows_in_registers::<1>(dz, db, d),
        2 => return sum_rows_in_registers::<2>(dz, db, d),
        _ => {}
    }
    db.fill(0.0);
    for i in 0..dz.rows() {
        let (row, da_row, a_row) = (dz.row_mut(i), row_of(&da, i), row_of(&a, i));
        for j in (0..row.len()).step_by(LANES) {
            let slope = simd::derivative_from_output(act, read(a_row, j, 0.0) * unscale);
            let d = read(da_row, j, 0.0) * mask.factors(i, j) * slope;
            write(row, j, d);
            let sum = read(db, j, 0.0) + d;
            write(db, j, sum);
        }
    }
}

/// `dz_ij = da_ij · f'(a_ij)` (the error before the activation, from the error
/// after it) and `db_j = Σ_i dz_ij` (overwritten), in one pass.
///
/// Shapes: `dz, da, a: (batch, n)` (`a` the stored forward output), `db: (n)`.
pub fn activation_backward(dz: MatMut, da: MatRef, a: MatRef, act: Activation, db: &mut [f32]) {
    reference::check_activation_backward(&dz, &da, &a, db);
    let _t = trace::kernel(Kind::ActivationBackward).bytes(12 * dz.rows() * dz.cols());
    if a.col_stride() != 1 || da.col_stride() != 1 {
        return reference::activation_backward(dz, da, a, act, db);
    }
    backward_rows(dz, da, a, act, db);
}

/// [`activation_backward`] of row-major `da` and `a`, into any rows.
fn backward_rows(dz: impl RowsMut, da: MatRef, a: MatRef, act: Activation, db: &mut [f32]) {
    // The activation chosen once per call, not at every vector (a jump per
    // vector in the loops below before: 64 rows of a 16-wide ReLU layer
    // 288-560 ns, now 182-388; the 10 logits 477-612, now 387-518; Zen 3,
    // AVX2, 8 lanes, best of 7 rounds, six runs of each build alternated).
    use Activation::*;
    match act {
        Identity => backward_with(dz, da, a, db, |a| simd::derivative_from_output(Identity, a)),
        Relu => backward_with(dz, da, a, db, |a| simd::derivative_from_output(Relu, a)),
        Sigmoid => backward_with(dz, da, a, db, |a| simd::derivative_from_output(Sigmoid, a)),
        Tanh => backward_with(dz, da, a, db, |a| simd::derivative_from_output(Tanh, a)),
    }
}

/// [`activation_backward`], or with a mask [`activation_dropout_backward`],
/// in two tasks of columns: `..h` on the calling thread, `h..` on another
/// of the pool if one takes it, `h` half the columns rounded up to whole
/// vectors. Each `db_j` is the same sum over the rows in order: the same
/// bits as one task. For a large network's one shard on two threads,
/// where the `dx` product before it computed its two halves of columns
/// (of `da`, and of `a` in the forward pass) on two cores: each half is then
/// read where it was written, not across the cores. Rows narrower than
/// four vectors, views not row-major, and a pool of one thread run as one
/// task.
///
/// Shapes: `dz, da, a: (batch, n)`, `db: (n)`.
pub fn activation_backward_in_halves(
    dz: MatMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: Option<&DropoutMask>,
    db: &mut [f32],
) {
    reference::check_activation_backward(&dz, &da, &a, db);
    let n = dz.cols();
    let row_major = a.col_stride() == 1 && da.col_stride() == 1;
    if n < 4 * LANES || !row_major || rayon::current_num_threads() < 2 {
        return match mask {
            None => activation_backward(dz, da, a, act, db),
            Some(mask) => activation_dropout_backward(dz, da, a, act, mask, db),
        };
    }
    let h = (n / 2).next_multiple_of(LANES);
    let (dz_l, dz_r) = dz.split_at_col(h);
    let (db_l, db_r) = db.split_at_mut(h);
    // one timer around both halves, as around a threaded GEMM
    let _t = trace::kernel(Kind::ActivationBackward).bytes(12 * dz_l.rows() * n);
    let half = |dz: ColsMut, (c0, c1): (usize, usize), db: &mut [f32]| {
        let (da, a) = (da.cols_range(c0, c1), a.cols_range(c0, c1));
        match mask {
            None => backward_rows(dz, da, a, act, db),
            Some(mask) => dropout_backward_rows(dz, da, a, act, &mask.offset(0, c0), db),
        }
    };
    rayon::join(|| half(dz_l, (0, h), db_l), || half(dz_r, (h, n), db_r));
}

/// [`activation_backward`] with the derivative `df(a)` of its activation,
/// for row-major `da` and `a`.
#[inline(always)]
fn backward_with(mut dz: impl RowsMut, da: MatRef, a: MatRef, db: &mut [f32], df: impl Fn(V) -> V) {
    let d = |i: usize, j: usize| read(row_of(&da, i), j, 0.0) * df(read(row_of(&a, i), j, 0.0));
    match dz.cols().div_ceil(LANES) {
        1 => return sum_rows_in_registers::<1>(dz, db, d),
        2 => return sum_rows_in_registers::<2>(dz, db, d),
        _ => {}
    }
    db.fill(0.0);
    for i in 0..dz.rows() {
        let (row, da_row, a_row) = (dz.row_mut(i), row_of(&da, i), row_of(&a, i));
        for j in (0..row.len()).step_by(LANES) {
            let d = read(da_row, j, 0.0) * df(read(a_row, j, 0.0));
            write(row, j, d);
            let sum = read(db, j, 0.0) + d;
            write(db, j, sum);
        }
    }
}

/// `dz_ij = d(i, j)` and `db_j = Σ_i dz_ij` for rows of `NV` vectors, the
/// last one maybe partial (the 10 logits, a 16-wide hidden layer; 8 lanes
/// or 16), `d(i, j)` giving lanes `j..` of row `i`: `db`'s sums stay in
/// registers, added in row order from 0 (the reference's bits). Summed in
/// memory row by row, a partial vector of `db` was stored masked and loaded
/// again at the next row, which stalls store forwarding.
fn sum_rows_in_registers<const NV: usize>(
    mut dz: impl RowsMut,
    db: &mut [f32],
    d: impl Fn(usize, usize) -> V,
) {
    let mut sum = [V::ZERO; NV];
    for i in 0..dz.rows() {
        let row = dz.row_mut(i);
        for (v, sum) in sum.iter_mut().enumerate() {
            let d = d(i, v * LANES);
            write(row, v * LANES, d);
            *sum += d;
        }
    }
    for (v, &sum) in sum.iter().enumerate() {
        write(db, v * LANES, sum);
    }
}

/// Softmax with cross-entropy, in three passes over the (L1-resident) block.
///
/// For row `i` with logits `z_i`: `p_i = softmax(z_i)` (computed stably, by
/// subtracting the row's maximum), loss term `-ln p_i[y_i]`, and the output
/// error written to `dz`: `dz_i = (p_i - onehot(y_i)) · grad_scale`.
/// Pass `grad_scale = 1 / batch` so that `dz` is the gradient of the mean loss.
///
/// Shapes: `logits: (batch, classes)`, `labels: (batch)`, `dz: (batch, classes)`.
/// Returns the *sum* of the row losses (in f64).
pub fn softmax_cross_entropy(mut dz: MatMut, logits: MatRef, labels: &[u8], grad_scale: f32) -> f64 {
    assert_eq!(labels.len(), logits.rows(), "softmax_cross_entropy: labels");
    assert_eq!(
        (dz.rows(), dz.cols()),
        (logits.rows(), logits.cols()),
        "softmax_cross_entropy: shapes"
    );
    let (rows, classes) = (logits.rows(), logits.cols());
    let _t = trace::kernel(Kind::SoftmaxCe).bytes(8 * rows * classes);
    if logits.col_stride() != 1 || logits.row_stride() != classes || dz.row_stride() != classes {
        return reference::softmax_cross_entropy(dz, logits, labels, grad_scale);
    }
    let z = &logits.data()[..rows * classes];
    let out = &mut dz.data()[..rows * classes];
    // The same passes with the row length a constant for the usual 10
    // classes: the loops over a row unrolled, several rows in flight. The
    // same operations in the same order, so the same bits. Measured on Zen 3
    // (AMD EPYC family 25 model 1, AVX2, 8 lanes), 64 x 10 in cache, medians
    // of 20,000: 3.0 -> 2.2-2.5 µs; the workshop network's training steps
    // were level (paired medians 1.000 on 2 threads, 0.997 on 1).
    if classes == 10 {
        cross_entropy_passes(z, out, labels, 10, grad_scale)
    } else {
        cross_entropy_passes(z, out, labels, classes, grad_scale)
    }
}

/// [`softmax_cross_entropy`]'s work on contiguous rows of `classes`.
#[inline(always)]
fn cross_entropy_passes(z: &[f32], out: &mut [f32], labels: &[u8], classes: usize, grad_scale: f32) -> f64 {
    // The loss of a row is -ln p_y = ln Σ e^(z - max) - (z_y - max): finite for any
    // finite logits, and NaN (so training stops as diverged) when they are not.
    let mut loss = 0.0f64;
    // Pass 1, per row: the row's maximum, z - max written to `out`, and the
    // -(z_y - max) term of the loss. (Rows are short, typically 10 classes:
    // scalar per row, vector over the whole block.)
    for ((zr, or), &y) in z
        .chunks_exact(classes)
        .zip(out.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (o, &v) in or.iter_mut().zip(zr) {
            *o = v - max;
        }
        loss -= or[y as usize] as f64;
    }
    // Pass 2, the whole block at once: e = exp(z - max), full vectors.
    for j in (0..out.len()).step_by(LANES) {
        let e = simd::exp(read(out, j, 0.0));
        write(out, j, e);
    }
    // Pass 3, per row: the ln Σ term of the loss and dz = (p - onehot(y)) · grad_scale.
    for (or, &y) in out.chunks_exact_mut(classes).zip(labels) {
        let sum: f32 = or.iter().sum();
        loss += sum.ln() as f64;
        let k = grad_scale / sum;
        or.iter_mut().for_each(|e| *e *= k);
        or[y as usize] -= grad_scale;
    }
    loss
}

/// In place: each row of `z` becomes `softmax(row)`. Shape: `z: (batch, classes)`.
pub fn softmax_rows(mut z: MatMut) {
    for i in 0..z.rows() {
        let row = z.row_mut(i);
        let mut sum = 0.0;
        // Read and overwrite the same row: copy-free because each chunk is
        // read before it is written.
        let mut vmax = V::splat(f32::NEG_INFINITY);
        for j in (0..row.len()).step_by(LANES) {
            vmax = vmax.max(read(row, j, f32::NEG_INFINITY));
        }
        let max = V::splat(vmax.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max));
        let mut vsum = V::ZERO;
        for j in (0..row.len()).step_by(LANES) {
            let e = simd::exp(read(row, j, f32::NEG_INFINITY) - max);
            write(row, j, e);
            vsum += e;
        }
        sum += vsum.reduce_add();
        let inv = V::splat(1.0 / sum);
        for j in (0..row.len()).step_by(LANES) {
            let p = read(row, j, 0.0) * inv;
            write(row, j, p);
        }
    }
}
