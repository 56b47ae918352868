//! The loss: softmax followed by categorical cross-entropy.
//!
//! The output layer's activation is the identity, so its output `a` are the
//! logits `z`; softmax belongs to the loss. For one example with logits `z`
//! (shape `(classes)`) and label `y`:
//!
//! ```text
//! p_j  = e^{z_j} / Σ_k e^{z_k}                  (softmax; computed with z - max(z) for stability)
//! L    = -ln p_y                                (cross-entropy against the one-hot label)
//! ∂L/∂z_j = p_j - [j == y]                      (softmax and cross-entropy together: "p - y")
//! ```
//!
//! The batch loss is the mean over the rows, so the gradient of each row is
//! divided by the batch size. That gradient is the `da` of the output layer,
//! where the backward pass starts. [`crate::teach::loss`] derives `p - y`
//! the long way, through the softmax Jacobian.

use crate::kernels;
use crate::matrix::{argmax, MatMut, MatRef};

/// The loss of a batch, between the forward and the backward pass: writes
/// `da = (p - onehot(y))·grad_scale` (pass `grad_scale = 1/rows` for the
/// gradient of the mean loss) and returns the *sum* of the examples' losses
/// and how many were classified correctly (before the update, as Keras counts).
///
/// Shapes: `da, logits: (rows, classes)`, `labels: (rows)`. The arithmetic is
/// the fused kernel [`kernels::softmax_cross_entropy`].
pub fn softmax_cross_entropy(da: MatMut, logits: MatRef, labels: &[u8], grad_scale: f32) -> (f64, usize) {
    let correct = count_correct(logits, labels);
    let loss = kernels::softmax_cross_entropy(da, logits, labels, grad_scale);
    (loss, correct)
}

/// How many rows of `logits` have their largest value at the label.
///
/// Shapes: `logits: (rows, classes)`, `labels: (rows)`.
pub fn count_correct(logits: MatRef, labels: &[u8]) -> usize {
    assert_eq!(logits.col_stride(), 1, "count_correct: rows must be contiguous");
    (0..logits.rows())
        .filter(|&i| {
            let row = &logits.data()[i * logits.row_stride()..][..logits.cols()];
            argmax(row) == labels[i] as usize
        })
        .count()
}
