//! One product cut along its depth: each block of `k` computed by its own
//! call (on any thread), then added and finished here, with the bits of
//! the one [`gemm`](super::gemm) over the whole depth.
//!
//! [`gemm`](super::gemm) sums a product of depth `k` in blocks of
//! [`depth_block`]`(k)` (loop 4 of [`super::loops`]):
//! block 0 is written to C, each later block's accumulator `acc` is added
//! as `acc + 1·c`, and the last one then gets the epilogue. So if block `p`
//! is computed alone (`gemm` over `A[.., p·d..]`, `B[p·d.., ..]`, beta 0,
//! no epilogue: one block, the same multiply-adds in the same order), it
//! holds exactly that `acc`, and
//!
//! ```text
//! c = P_0;  c = P_1 + c;  ..;  c = act(P_last + c + bias) · dropout
//! ```
//!
//! is the one call's result, bit for bit. The training loop uses it to let
//! each thread own a slice of the first layer's inputs (rows of `W`).

use super::blocking::depth_block;
use super::kernel::{choose_for, SCALAR_KERNELS};
use super::{Epilogue, Parallelism};
use crate::matrix::{MatMut, MatRef};
use crate::simd::{self, LANES, V};
use crate::trace::Kind;

/// The depth of the blocks a product with `n` columns and depth `k` is
/// summed in, if there are at least two and [`sum_depth_blocks`] finishes
/// them with the bits [`gemm`](super::gemm) would: that is, when the
/// kernel `gemm` picks is a SIMD kernel (the scalar kernels' sigmoid and
/// tanh epilogues are the scalar functions). `None` otherwise.
pub fn depth_blocks(n: usize, k: usize) -> Option<usize> {
    let d = depth_block(k);
    let kernel = choose_for(n, k);
    let scalar = SCALAR_KERNELS.iter().any(|s| std::ptr::eq(s, kernel));
    (d < k && !scalar).then_some(d)
}

/// `C = epilogue(P_last + .. + (P_1 + P_0))`, added in that order (see the
/// module docs): `blocks` partial products `block(p)`, each shaped like
/// `c` with contiguous rows, block `p` being the product over depth block
/// `p` alone. The epilogue's dropout mask addresses `c`'s elements from
/// `(0, 0)`, as in a `gemm` call on `c`.
pub fn sum_depth_blocks<'b>(
    mut c: MatMut,
    blocks: usize,
    block: impl Fn(usize) -> MatRef<'b, f32>,
    epilogue: Epilogue,
) {
    let (rows, cols) = (c.rows(), c.cols());
    assert!(blocks >= 1, "sum_depth_blocks: no block");
    for p in 0..blocks {
        let b = block(p);
        assert!(
            b.rows() == rows && b.cols() == cols && (b.col_stride() == 1 || cols <= 1),
            "sum_depth_blocks: block {p} is {}x{}, C is {rows}x{cols}",
            b.rows(),
            b.cols()
        );
    }
    if let Some(bias) = epilogue_bias(&epilogue) {
        assert_eq!(bias.len(), cols, "sum_depth_blocks: one bias per column");
    }
    let at = |p: usize, i: usize, j: usize| -> *const f32 {
        let b = block(p);
        b.data()[i * b.row_stride() + j..].as_ptr()
    };
    for i in 0..rows {
        let out = c.row_mut(i).as_mut_ptr();
        for j in (0..cols).step_by(LANES) {
            let n = LANES.min(cols - j);
            // SAFETY: row i, columns j..j + n < cols of every block and of
            // C (shapes checked above), and of the bias (one per column).
            unsafe {
                let mut x = simd::load_partial(at(0, i, j), n);
                for p in 1..blocks {
                    // the kernel's `acc + beta·c`, beta = 1
                    x = simd::load_partial(at(p, i, j), n) + V::splat(1.0) * x;
                }
                x = match epilogue {
                    Epilogue::None => x,
                    Epilogue::BiasActivation { bias, act } => {
                        simd::activate(act, x + simd::load_partial(bias[j..].as_ptr(), n))
                    }
                    Epilogue::BiasActivationDropout { bias, act, mask } => {
                        simd::activate(act, x + simd::load_partial(bias[j..].as_ptr(), n))
                            * mask.factors(i, j)
                    }
                };
                simd::store_partial(out.add(j), x, n);
            }
        }
    }
}

/// One depth block of a dense layer's forward product, `C = A·B` (beta 0,
/// no epilogue: the block's own sum, for [`sum_depth_blocks`]), filed by
/// `train --profile` as the layer's forward GEMM.
pub fn gemm_depth_block(a: MatRef<f32>, b: MatRef<f32>, c: MatMut, par: Parallelism) {
    super::gemm_filed_as(Kind::ForwardGemm, 1.0, a, b, 0.0, c, Epilogue::None, par);
}

fn epilogue_bias<'a>(epilogue: &Epilogue<'a>) -> Option<&'a [f32]> {
    match *epilogue {
        Epilogue::None => None,
        Epilogue::BiasActivation { bias, .. } | Epilogue::BiasActivationDropout { bias, .. } => Some(bias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::gemm::gemm;
    use crate::kernels::DropoutMask;
    use crate::matrix::{first_bit_difference, Matrix};
    use rand::{Rng, SeedableRng};

    /// Every block computed alone, then summed and finished here, has the
    /// bits of one `gemm` over the whole depth: every activation, with and
    /// without dropout, narrow and wide outputs, two to four blocks.
    #[test]
    fn blocks_summed_here_have_the_bits_of_one_gemm() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut checked = 0;
        // Under Miri (see the README) few rows: the full shapes would take hours there.
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(2, 10, 1300), (5, 3, 1500)]
        } else {
            &[(64, 16, 784), (37, 10, 1300), (128, 33, 2100), (5, 3, 1500)]
        };
        for &(m, n, k) in shapes {
            let Some(d) = depth_blocks(n, k) else { continue };
            let a = Matrix::from_fn(m, k, |_, _| rng.random_range(-1.0f32..1.0));
            let w = Matrix::from_fn(k, n, |_, _| rng.random_range(-0.2f32..0.2));
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let nblocks = k.div_ceil(d);
            let parts: Vec<Matrix> = (0..nblocks)
                .map(|p| {
                    let (k0, k1) = (p * d, ((p + 1) * d).min(k));
                    let mut out = Matrix::zeros(m, n);
                    gemm(
                        1.0,
                        a.view().cols_range(k0, k1),
                        w.view().rows_range(k0, k1),
                        0.0,
                        out.view_mut(),
                        Epilogue::None,
                        Parallelism::Sequential,
                    );
                    out
                })
                .collect();
            let mask = DropoutMask::new(0.3, 5, 9, 0).offset(7, 0);
            for act in [
                Activation::Relu,
                Activation::Tanh,
                Activation::Sigmoid,
                Activation::Identity,
            ] {
                for epilogue in [
                    Epilogue::None,
                    Epilogue::BiasActivation { bias: &bias, act },
                    Epilogue::BiasActivationDropout {
                        bias: &bias,
                        act,
                        mask,
                    },
                ] {
                    let mut want = Matrix::zeros(m, n);
                    gemm(
                        1.0,
                        a.view(),
                        w.view(),
                        0.0,
                        want.view_mut(),
                        epilogue,
                        Parallelism::Sequential,
                    );
                    let mut got = Matrix::from_fn(m, n, |_, _| f32::NAN);
                    sum_depth_blocks(got.view_mut(), nblocks, |p| parts[p].view(), epilogue);
                    let bad = first_bit_difference(got.as_slice(), want.as_slice());
                    assert!(
                        bad.is_none(),
                        "{m}x{n}x{k} in {nblocks} blocks, {epilogue:?}: element {bad:?} differs"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 24, "only {checked} cases had two or more depth blocks");
    }
}
