//! Two blocks of a convolution and the max-pool right after it, run image
//! by image.
//!
//! ## A first convolution over one channel (LeNet-5's first block)
//!
//! Each image goes through both layers before the next one starts, so what
//! one writes the other reads from L1 instead of from L3: the convolution's
//! output for a 64-image shard of 28x28x6 images is 1.2 MB, more than an
//! L2; one image's is 18.8 KB. The same kernels as the layer-by-layer
//! passes in the same order give the same numbers, the same bits (tested
//! against them in tests/conv_engine.rs).
//!
//! ```text
//! forward,  image r:  a0[r] = f(conv(x[r], W) + b)       a1[r], argmax[r] = maxpool(a0[r])
//! backward, image r:  dz0[r][argmax[o]] = da1[r][o]·f'(a1[r][o]), 0 elsewhere
//!                     db += Σ_positions dz0[r]            dW += im2col(x[r])ᵀ·dz0[r]
//! ```
//!
//! The backward line is the pool's `da0[argmax[o]] = da1[o]` and the
//! activation's `dz0 = da0 ⊙ f'(a0)` in one: the pool copied each maximum,
//! so `a0[argmax[o]] = a1[o]`, and elsewhere `da0` is 0. So `da0` is never
//! formed and `a0` never read again (measured, LeNet-5 epoch on 2 threads,
//! Zen 5, AVX-512: 0.649 -> 0.605 s, medians of 7 runs alternated with the
//! layer-by-layer build).
//!
//! Only without dropout on either layer (the masks are keyed by whole
//! mini-batch rows; the layer-by-layer path handles them).
//!
//! ## Any other convolution followed by a max-pool: the backward pass
//!
//! Below the pool at most a quarter of the convolution's `dz` is non-zero,
//! so its backward pass goes straight from the pool's error to `dW`, `db`
//! and the input's error `dx`, each non-zero adding one window
//! ([`crate::kernels::conv_pooled`]): no `dz`, no unfolded columns, no
//! fold. Its layer-by-layer lines, and what they become, per image `r`:
//!
//! ```text
//! pool:  da0[argmax[o]] = da1[o] [⊙ m[o]]     conv: dz0 = da0 ⊙ f'(a0)
//!        dW = im2col(x)ᵀ·dz0,  db = Σ dz0,  dx = col2im(dz0·Wᵀ)
//! here:  for each o with g = da1[o] [⊙ m[o]]·f'(a0[argmax[o]]) != 0, at the window p = argmax[o]:
//!        dW[·,f] += g·window(x, p),  db[f] += g,  window(dx, p) += g·W[·,f]
//! ```
//!
//! For a convolution that does not drop out (the pool may), whose input is
//! another layer's output (`f32` images), and whose windows lie inside the
//! image ([`Pooled`]), on every build (see [`PooledScratch::new`]). The
//! sums are in another order than the GEMMs', so the bits differ from the
//! layer-by-layer pass by rounding (tested against it in tests/conv_engine.rs).

use crate::gemm::AOperand;
use crate::kernels::conv::{
    channel_sums_add, single_channel_forward, single_channel_sums, single_channel_weight_gradient,
    SingleChannel, SINGLE_MAX_WEIGHTS,
};
use crate::kernels::conv_pooled::{
    pad_filters, pooled_errors, pooled_input_gradient, pooled_weight_gradient, pooled_weight_sums, Errors,
    Pooled,
};
use crate::kernels::pool::{maxpool2d_activation_backward_image, maxpool2d_forward_image};
use crate::kernels::DropoutMask;
use crate::matrix::{MatMut, MatRef};
use crate::nn::conv::Conv2d;
use crate::nn::layer::Layer;
use crate::nn::pool::MaxPool2d;
use crate::simd::{SUM_VECTORS, V};
use crate::trace::{self, Kind};

/// The first two layers, when they are a one-channel convolution (that
/// [`SingleChannel`] runs) and a max-pool, and neither drops out.
pub(crate) fn conv_pool<'n>(
    layers: &'n [Layer],
    dropout: &[bool],
) -> Option<(&'n Conv2d, SingleChannel, &'n MaxPool2d)> {
    match (layers, dropout) {
        ([Layer::Conv2d(conv), Layer::MaxPool2d(pool), ..], [false, false, ..]) => {
            Some((conv, SingleChannel::new(&conv.geometry)?, pool))
        }
        _ => None,
    }
}

/// Forward of both layers, image by image: `a0 = f(conv(x_scale·x, W) + b)`,
/// then `a1` and `argmax` its 2x2 maxima and where they were.
///
/// Shapes: `a0: (rows, oh·ow·c_out)`, `a1, argmax: (rows, (oh/2)·(ow/2)·c_out)`,
/// `x: (rows, h·w)` as in [`crate::nn::conv::conv2d_forward`].
pub(crate) fn conv_pool_forward<X: AOperand>(
    mut a0: MatMut,
    mut a1: MatMut,
    argmax: &mut [u32],
    x: X,
    x_scale: f32,
    (conv, shape, pool): (&Conv2d, &SingleChannel, &MaxPool2d),
) {
    let rows = x.rows();
    let (outputs, pooled) = (conv.outputs(), pool.outputs());
    assert_eq!((a0.rows(), a0.cols()), (rows, outputs), "conv_pool_forward: a0");
    assert_eq!((a1.rows(), a1.cols()), (rows, pooled), "conv_pool_forward: a1");
    assert!(
        argmax.len() >= rows * pooled,
        "conv_pool_forward: argmax too short"
    );
    let images = x.image_rows().expect("a convolution reads rows of images");
    let input = pool.geometry.input();
    let pool_shape = (input.height(), input.width(), input.channels());
    let params = (conv.w.as_slice(), &conv.b[..], conv.act);
    let flops = 2 * outputs * conv.geometry.kernel_h() * conv.geometry.kernel_w();
    for (r, arg) in argmax.chunks_exact_mut(pooled).take(rows).enumerate() {
        if r + 1 < rows {
            // the next image, gathered from anywhere in the data set, is likely in no cache
            crate::simd::prefetch(images.row(r + 1));
        }
        {
            let (_in, _conv) = (trace::layer(0), trace::convolution());
            let _t = trace::kernel(Kind::ForwardGemm).flops(flops);
            // forward: a0 = f(conv(x, W) + b)
            single_channel_forward(a0.row_mut(r), images.row(r), x_scale, params, shape);
        }
        let _in = trace::layer(1);
        let _t = trace::kernel(Kind::PoolForward).bytes(4 * (outputs + 2 * pooled));
        // forward: a1[o] = a0[argmax[o]]
        maxpool2d_forward_image(a1.row_mut(r), arg, &*a0.row_mut(r), 1.0, pool_shape);
    }
}

/// Backward through both layers, image by image: from `da1 = ∂L/∂a1` and
/// the pool's output `a1`, the convolution's `dz0`, `dW` and `db`
/// (overwritten). No error for the input: the convolution is the first layer.
///
/// Shapes: `dz0: (rows, oh·ow·c_out)`, `da1, a1: (rows, (oh/2)·(ow/2)·c_out)`,
/// `argmax` as from [`conv_pool_forward`], `dw: (kh·kw, c_out)`, `db: (c_out)`,
/// `x` as in [`conv_pool_forward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_pool_backward<X: AOperand>(
    mut dz0: MatMut,
    mut dw: MatMut,
    db: &mut [f32],
    da1: MatRef,
    argmax: &[u32],
    a1: MatRef,
    x: X,
    x_scale: f32,
    (conv, shape, pool): (&Conv2d, &SingleChannel, &MaxPool2d),
) {
    let rows = x.rows();
    let (outputs, pooled) = (conv.outputs(), pool.outputs());
    assert_eq!(
        (da1.rows(), da1.cols()),
        (rows, pooled),
        "conv_pool_backward: da1"
    );
    assert!(
        da1.col_stride() == 1 && dw.row_stride() == dw.cols(),
        "conv_pool_backward: da1's rows and dw must be contiguous"
    );
    let images = x.image_rows().expect("a convolution reads rows of images");
    let mut sums = [V::ZERO; SINGLE_MAX_WEIGHTS * SUM_VECTORS];
    let sums = &mut sums[..conv.w.as_slice().len() * SUM_VECTORS];
    let flops = 2 * outputs * conv.geometry.kernel_h() * conv.geometry.kernel_w();
    db.fill(0.0);
    for (r, arg) in argmax.chunks_exact(pooled).take(rows).enumerate() {
        let dz0_row = dz0.row_mut(r);
        {
            let _in = trace::layer(1);
            let _t = trace::kernel(Kind::PoolBackward).bytes(4 * (3 * pooled + outputs));
            let da1_row = &da1.data()[r * da1.row_stride()..][..pooled];
            let a1_row = &a1.data()[r * a1.row_stride()..][..pooled];
            // forward: a1[o] = a0[argmax[o]], a0 = f(z0)  ->  dz0[argmax[o]] = da1[o]·f'(a1[o]), 0 elsewhere
            maxpool2d_activation_backward_image(dz0_row, da1_row, arg, a1_row, conv.act);
        }
        let (_in, _conv) = (trace::layer(0), trace::convolution());
        {
            let _t = trace::kernel(Kind::ActivationBackward).bytes(4 * outputs);
            //                                  db += Σ_positions dz0
            channel_sums_add(db, dz0_row);
        }
        let _t = trace::kernel(Kind::BackwardGemmDw).flops(flops);
        // forward: z0 = im2col(x)·W + b  ->  dW += im2col(x[r])ᵀ·dz0[r]
        single_channel_weight_gradient(sums, images.row(r), x_scale, dz0_row, shape);
    }
    single_channel_sums(&mut dw.data()[..sums.len() / SUM_VECTORS], sums);
}

/// The working space of [`pooled_conv_backward`] for one convolution,
/// allocated once: the entries of one image, the filter gradient's sums and
/// the filters as window rows.
#[derive(Clone, Debug)]
pub(crate) struct PooledScratch {
    shape: Pooled,
    errors: Errors,
    sums: Vec<V>,
    w_rows: Vec<V>,
}

impl PooledScratch {
    /// For `layers[l]`, if it is a convolution that a max-pool follows, is
    /// not the first layer, and [`Pooled`] takes it; on every build, so that
    /// every build that fuses multiply-add trains the same bits. (It ran
    /// only with AVX-512 and AVX2, for their fast compresses; an AVX build
    /// without AVX2, whose compress is a loop over the lanes, also trains
    /// Keras' CNN faster with it: 3,200 images 4.2-4.6 -> 2.9-3.5 s an
    /// epoch on a Zen 3, three alternated runs.)
    pub(crate) fn new(layers: &[Layer], l: usize) -> Option<PooledScratch> {
        let (Some(Layer::Conv2d(conv)), Some(Layer::MaxPool2d(_))) = (layers.get(l), layers.get(l + 1))
        else {
            return None;
        };
        let shape = Pooled::new(&conv.geometry).filter(|_| l > 0)?;
        Some(PooledScratch {
            shape,
            errors: Errors::new(&shape),
            sums: vec![V::ZERO; shape.rows_len()],
            w_rows: vec![V::ZERO; shape.rows_len()],
        })
    }
}

/// Backward through a convolution (layer `l`) and the max-pool after it,
/// image by image, from the pool's error `da1`: the convolution's `dW` and
/// `db` (overwritten) and the error of its input `dx` (see the module docs).
/// `dropout`: the pool's mask, if its output was dropped.
///
/// Shapes: `dx, x: (rows, h·w·c_in)`, `dw: (kh·kw·c_in, c_out)`, `db: (c_out)`,
/// `da1: (rows, (oh/2)·(ow/2)·c_out)`, `argmax` as from the pool's forward
/// pass, `a0: (rows, oh·ow·c_out)` (the convolution's output).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pooled_conv_backward(
    mut dx: MatMut,
    mut dw: MatMut,
    db: &mut [f32],
    da1: MatRef,
    argmax: &[u32],
    a0: MatRef,
    x: MatRef,
    (l, conv, dropout): (usize, &Conv2d, Option<&DropoutMask>),
    scratch: &mut PooledScratch,
) {
    let rows = x.rows();
    let PooledScratch {
        shape,
        errors,
        sums,
        w_rows,
    } = scratch;
    let (pooled, outputs, inputs) = (shape.pooled(), conv.outputs(), conv.inputs());
    assert!(
        da1.rows() == rows && da1.cols() == pooled && a0.rows() == rows && a0.cols() == outputs,
        "pooled_conv_backward: da1, a0"
    );
    assert!(
        dx.rows() == rows && dx.cols() == inputs && x.cols() == inputs,
        "pooled_conv_backward: dx, x"
    );
    let contiguous = |m: &MatRef| m.col_stride() == 1;
    assert!(
        contiguous(&da1) && contiguous(&a0) && contiguous(&x) && dw.row_stride() == dw.cols(),
        "pooled_conv_backward: rows and dw must be contiguous"
    );
    assert!(
        argmax.len() >= rows * pooled,
        "pooled_conv_backward: argmax too short"
    );
    db.fill(0.0);
    sums.fill(V::ZERO);
    pad_filters(w_rows, conv.w.as_slice(), shape);
    for (r, arg) in argmax.chunks_exact(pooled).take(rows).enumerate() {
        if r + 1 < rows {
            // the next image's convolution output, written in the forward pass, is likely in no cache
            crate::simd::prefetch(row_of(a0, r + 1, outputs));
        }
        let k = {
            let _in = trace::layer(l + 1);
            let _t = trace::kernel(Kind::PoolBackward).bytes(4 * 3 * pooled);
            let (da1_row, a0_row) = (row_of(da1, r, pooled), row_of(a0, r, outputs));
            // forward: a1[o] = a0[argmax[o]] [⊙ m], a0 = f(z0)  ->  g = da1[o] [⊙ m]·f'(a0[argmax[o]]),  db += g
            pooled_errors(
                errors,
                db,
                da1_row,
                arg,
                a0_row,
                conv.act,
                dropout.map(|m| (m, r)),
                shape,
            )
        };
        let (_in, _conv) = (trace::layer(l), trace::convolution());
        {
            let mut t = trace::kernel(Kind::BackwardGemmDw);
            // forward: z0 = conv(x, W) + b  ->  dW[·,f] += g·window(x, p)
            let madds = pooled_weight_gradient(sums, row_of(x, r, inputs), errors, k, shape);
            t.set_flops(2 * madds);
        }
        let mut t = trace::kernel(Kind::BackwardGemmDx);
        //                                ->  window(dx, p) += g·W[·,f]
        let madds = pooled_input_gradient(dx.row_mut(r), w_rows, errors, k, shape);
        t.set_flops(2 * madds);
    }
    let n = conv.w.as_slice().len();
    pooled_weight_sums(&mut dw.data()[..n], sums, shape);
}

/// The first `n` numbers of row `r` of `m` (unit column stride).
fn row_of<'a>(m: MatRef<'a>, r: usize, n: usize) -> &'a [f32] {
    &m.data()[r * m.row_stride()..][..n]
}
