//! The element-wise work around a convolution's GEMMs, and the dropout of
//! the layers whose output is not made by a GEMM epilogue.
//!
//! - [`apply_dropout`]: `a = a ⊙ m` on a layer's `(rows, outputs)` output
//!   (max-pool, flatten, and a convolution, whose GEMM writes the
//!   `(rows·positions, filters)` view where the mask's keys would not be
//!   the `(row, column)` of the layer's output);
//! - [`channel_dropout_backward`]: a convolution's `dz = da ⊙ m ⊙ f'(a)` with
//!   the bias gradient summed per channel (`db[co] = Σ_rows Σ_positions dz`);
//! - [`flip_filters`]: the filters of the input gradient's "full" convolution,
//!   `W_flipped[(ky, kx, co), ci] = W[(kh-1-ky, kw-1-kx, ci), co]`.

use crate::activation::Activation;
use crate::kernels::DropoutMask;
use crate::matrix::{MatMut, MatRef};
use crate::simd::{LANES, V};

/// In place: `a_ij <- a_ij · m_ij` (`mask.factor(i, j)`: `1/(1-rate)` or 0).
/// Shape: `a: (rows, outputs)`, the mask keyed by its row and column.
pub fn apply_dropout(mut a: MatMut, mask: &DropoutMask) {
    for i in 0..a.rows() {
        let row = a.row_mut(i);
        let mut chunks = row.chunks_exact_mut(LANES);
        let mut j = 0;
        for chunk in &mut chunks {
            let v = V::from(<[f32; LANES]>::try_from(&*chunk).expect("LANES floats")) * mask.factors(i, j);
            chunk.copy_from_slice(&v.to_array());
            j += LANES;
        }
        for (l, x) in chunks.into_remainder().iter_mut().enumerate() {
            *x *= mask.factor(i, j + l);
        }
    }
}

/// A convolution's backward step before its GEMMs, with dropout on its
/// output: `dz_ij = da_ij · m_ij · f'(a_ij · u)` on the `(rows, outputs)`
/// view (`u = mask.unscale_for(act)`, see
/// [`super::activation_dropout_backward`]), and
/// `db[co] = Σ_i Σ_positions dz` (overwritten) with `co = j mod channels`,
/// summed in the order of the `(rows·positions, channels)` view's rows, as
/// [`super::activation_backward`] on that view would.
///
/// Shapes: `dz, da, a: (rows, positions·channels)`, `db: (channels)`.
pub fn channel_dropout_backward(
    mut dz: MatMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: &DropoutMask,
    db: &mut [f32],
) {
    let channels = db.len();
    assert!(
        channels > 0 && dz.cols().is_multiple_of(channels),
        "channel_dropout_backward: {} outputs are not a whole number of {channels} channels",
        dz.cols()
    );
    assert_eq!(
        (da.rows(), da.cols()),
        (dz.rows(), dz.cols()),
        "channel_dropout_backward: da"
    );
    assert_eq!(
        (a.rows(), a.cols()),
        (dz.rows(), dz.cols()),
        "channel_dropout_backward: a"
    );
    let unscale = mask.unscale_for(act);
    db.fill(0.0);
    for i in 0..dz.rows() {
        let row = dz.row_mut(i);
        for (j, d) in row.iter_mut().enumerate() {
            *d = da.at(i, j) * mask.factor(i, j) * act.df_from_output(a.at(i, j) * unscale);
            db[j % channels] += *d;
        }
    }
}

/// `w_flipped[((ky·kw + kx)·c_out + co)·c_in + ci] = w[((kh-1-ky)·kw + (kw-1-kx))·c_in + ci)·c_out + co]`:
/// the filters turned by 180° with the channel axes swapped, a
/// `(kh·kw·c_out, c_in)` matrix (the input gradient's B operand).
pub fn flip_filters(
    w_flipped: &mut [f32],
    w: &[f32],
    (kh, kw): (usize, usize),
    (c_in, c_out): (usize, usize),
) {
    let len = kh * kw * c_in * c_out;
    assert!(w.len() == len && w_flipped.len() == len, "flip_filters: sizes");
    for ky in 0..kh {
        for kx in 0..kw {
            let src = &w[((kh - 1 - ky) * kw + (kw - 1 - kx)) * c_in * c_out..][..c_in * c_out];
            let dst = &mut w_flipped[(ky * kw + kx) * c_out * c_in..][..c_out * c_in];
            for ci in 0..c_in {
                for co in 0..c_out {
                    dst[co * c_in + ci] = src[ci * c_out + co];
                }
            }
        }
    }
}
