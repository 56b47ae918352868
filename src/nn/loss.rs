//! The loss: softmax followed by categorical cross-entropy.
//!
//! For one example with logits `z` (the output layer's `z`, shape `(classes)`)
//! and label `y`:
//!
//! ```text
//! p_j  = e^{z_j} / Σ_k e^{z_k}                  (softmax; computed with z - max(z) for stability)
//! L    = -ln p_y                                (cross-entropy against the one-hot label)
//! ∂L/∂z_j = p_j - [j == y]                      (softmax and cross-entropy together: "p - y")
//! ```
//!
//! The batch loss is the mean over the rows, so the gradient of each row is
//! divided by the batch size. The engine does all of this in one pass per
//! row: [`crate::kernels::softmax_cross_entropy`]. [`crate::teach`] derives
//! `p - y` the long way, through the softmax Jacobian.

pub use crate::kernels::{softmax_cross_entropy, softmax_rows};
