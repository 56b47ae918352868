//! The readable reference GEMM: three loops, no blocking, no SIMD.
//!
//! This is the oracle every fast variant is tested against. It reads its
//! operands through strided views, so `A·B`, `Aᵀ·B` and `A·Bᵀ` are all the
//! same call with a transposed view.

use super::Epilogue;
use crate::matrix::{Element, MatMut, MatRef};

/// `C = alpha·A·B + beta·C`, then the epilogue on every element of `C`.
///
/// Shapes: `a: (m, k)`, `b: (k, n)`, `c: (m, n)`. When `beta == 0`, `C` is
/// never read (it may hold NaN). Each dot product is summed in `f32`, in
/// order `p = 0..k`.
pub fn gemm<T: Element>(
    alpha: f32,
    a: MatRef<T>,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut,
    epilogue: Epilogue,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    super::check_shapes(&a, &b, &c, &epilogue);
    for i in 0..m {
        for j in 0..n {
            let mut dot = 0.0f32;
            for p in 0..k {
                dot += a.at(i, p).to_f32() * b.at(p, j);
            }
            let mut v = alpha * dot;
            if beta != 0.0 {
                v += beta * c.at(i, j);
            }
            match epilogue {
                Epilogue::None => {}
                Epilogue::BiasActivation { bias, act } => v = act.f(v + bias[j]),
                Epilogue::BiasActivationDropout { bias, act, mask } => {
                    v = act.f(v + bias[j]) * mask.factor(i, j)
                }
            }
            c.set(i, j, v);
        }
    }
}
