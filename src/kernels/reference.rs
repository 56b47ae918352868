//! The plain, scalar versions of the fused kernels: the oracles the fast
//! versions in [`super`] are tested against. Same signatures and semantics.

use super::DropoutMask;
use crate::activation::Activation;
use crate::matrix::{MatMut, MatRef};

/// In place: `z_ij <- act(z_ij + bias_j)`. Shapes: `z: (batch, n)`, `bias: (n)`.
pub fn bias_activation(mut z: MatMut, bias: &[f32], act: Activation) {
    assert_eq!(bias.len(), z.cols(), "bias_activation: bias length");
    for i in 0..z.rows() {
        for (v, &b) in z.row_mut(i).iter_mut().zip(bias) {
            *v = act.f(*v + b);
        }
    }
}

/// `dz_ij = da_ij · f'(a_ij)` and `db_j = Σ_i dz_ij` (overwritten), in one pass.
///
/// Shapes: `dz, da, a: (batch, n)` (`a` the stored forward output), `db: (n)`.
pub fn activation_backward(mut dz: MatMut, da: MatRef, a: MatRef, act: Activation, db: &mut [f32]) {
    check_activation_backward(&dz, &da, &a, db);
    db.fill(0.0);
    for i in 0..dz.rows() {
        let row = dz.row_mut(i);
        for j in 0..row.len() {
            row[j] = da.at(i, j) * act.df_from_output(a.at(i, j));
            db[j] += row[j];
        }
    }
}

/// In place: `z_ij <- act(z_ij + bias_j) · mask.factor(i, j)`. Shapes: `z: (batch, n)`, `bias: (n)`.
pub fn bias_activation_dropout(mut z: MatMut, bias: &[f32], act: Activation, mask: &DropoutMask) {
    assert_eq!(bias.len(), z.cols(), "bias_activation_dropout: bias length");
    for i in 0..z.rows() {
        for (j, (v, &b)) in z.row_mut(i).iter_mut().zip(bias).enumerate() {
            *v = act.f(*v + b) * mask.factor(i, j);
        }
    }
}

/// `dz_ij = da_ij · mask.factor(i, j) · f'(a_ij · mask.unscale_for(act))`
/// and `db_j = Σ_i dz_ij` (overwritten). Shapes: `dz, da, a: (batch, n)`, `db: (n)`.
pub fn activation_dropout_backward(
    mut dz: MatMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: &DropoutMask,
    db: &mut [f32],
) {
    check_activation_backward(&dz, &da, &a, db);
    let unscale = mask.unscale_for(act);
    db.fill(0.0);
    for i in 0..dz.rows() {
        let row = dz.row_mut(i);
        for j in 0..row.len() {
            row[j] = da.at(i, j) * mask.factor(i, j) * act.df_from_output(a.at(i, j) * unscale);
            db[j] += row[j];
        }
    }
}

/// Panics unless `dz`, `da` and `a` have one shape and `db` one entry per column.
pub(super) fn check_activation_backward(dz: &MatMut, da: &MatRef, a: &MatRef, db: &[f32]) {
    let shape = (dz.rows(), dz.cols());
    assert!(
        (da.rows(), da.cols()) == shape && (a.rows(), a.cols()) == shape,
        "activation_backward: dz is {shape:?}, da {:?}, a {:?}",
        (da.rows(), da.cols()),
        (a.rows(), a.cols())
    );
    assert_eq!(db.len(), dz.cols(), "activation_backward: bias-gradient length");
}

/// Softmax with cross-entropy, one pass per row.
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
    let mut loss = 0.0f64;
    for (i, &y) in labels.iter().enumerate() {
        let n = logits.cols();
        let max = (0..n).map(|j| logits.at(i, j)).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for j in 0..n {
            let e = (logits.at(i, j) - max).exp();
            dz.set(i, j, e);
            sum += e;
        }
        let inv = 1.0 / sum;
        // -ln p_y = ln Σ e^(z - max) - (z_y - max): no log of an underflowed 0.
        loss += (sum as f64).ln() - (logits.at(i, y as usize) - max) as f64;
        let row = dz.row_mut(i);
        for (j, v) in row.iter_mut().enumerate() {
            let p = *v * inv;
            if j == y as usize {
                *v = (p - 1.0) * grad_scale;
            } else {
                *v = p * grad_scale;
            }
        }
    }
    loss
}

/// In place: each row of `z` becomes `softmax(row)`. Shape: `z: (batch, classes)`.
pub fn softmax_rows(mut z: MatMut) {
    for i in 0..z.rows() {
        let row = z.row_mut(i);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}
