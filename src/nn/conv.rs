//! A 2-D convolution layer: `z = conv(x, W) + b`, `a = f(z)`, on images kept
//! as (rows, height, width, channels) row-major ("NHWC"), stride 1,
//! padding `valid` or `same` ([`crate::geometry::Padding`]).
//!
//! Shapes, for a mini-batch of `rows` examples (each a row of
//! `height·width·c_in` values, the image in NHWC order):
//! `x: (rows, h·w·c_in)`, `W: (kh·kw·c_in, c_out)`, `b: (c_out)`,
//! `z, a: (rows, oh·ow·c_out)`, which is the same memory as
//! `(rows·oh·ow, c_out)`: one row per output position, one column per filter.
//!
//! Every step is a GEMM on a packed view of an image, never an unfolded copy
//! ([`crate::gemm::Im2col`]); beside each forward line, its backward lines:
//!
//! ```text
//! forward:  z = im2col(x)·W + b     backward: dW = im2col(x)ᵀ·dz,  db = Σ_rows Σ_positions dz
//!                                             dx = im2col_full(dz)·W_flipped   (a "full" convolution)
//! forward:  a = f(z) [⊙ m]          backward: dz = da [⊙ m] ⊙ f'(a)
//! ```
//!
//! `z` and `a` are written as `(rows·oh·ow, c_out)` by the GEMM, with the
//! bias and activation in its epilogue. `dx` is computed one of two ways,
//! both deterministic (no atomics, a fixed order): as the full convolution
//! above (each input pixel's gradient one dot product of the `dz` around it
//! with the filters turned by 180°), or, for few input channels or at least
//! 32 filters, as the unfolded columns `dcols = dz·Wᵀ` folded back into
//! images (`col2im`, a few images at a time; see `folds_columns`). Dropout (training) multiplies the `(rows, outputs)` output
//! by the mask keyed by its row and column, as for a dense layer.
//!
//! In training, a convolution that a max-pool reads (other than a first
//! one-channel layer) skips all of this: the network runs the two layers'
//! backward passes at once, straight from the pool's error
//! (the source of `nn::fused`, and [`crate::kernels::conv_pooled`]).
//!
//! Three kinds of layer take other kernels for the same sums, with the
//! same bits: one input channel ([`SingleChannel`]), one vector of filters
//! over windows inside the image ([`Direct`]), and errors `dz` that are
//! mostly zeros, as below a max-pool: `dcols = dz·Wᵀ` and `dW` then skip
//! them ([`sparse_a_product`], [`sparse_weight_gradient`]).
//!
//! The lesson with the same steps in plain `f64` loops is
//! [`crate::teach::conv`] (same weight layout: `W[ky,kx,ci,co]` row-major),
//! with the same names and argument order (outputs first).

use rand::Rng;

use crate::activation::Activation;
use crate::error::Result;
use crate::gemm::{
    col2im_add, depth_block, gemm, nonzeros, sparse_a_product, transpose_into, AOperand, Epilogue, Im2col,
    ImageRows, Parallelism, Window, SPARSE_ENOUGH,
};
use crate::geometry::{Conv2dGeometry, ImageShape, Padding};
use crate::kernels::conv::{
    apply_dropout, channel_activation_backward, channel_dropout_backward, flip_filters,
    single_channel_forward, single_channel_sums, single_channel_weight_gradient, SingleChannel,
    SINGLE_MAX_WEIGHTS,
};
use crate::kernels::conv_direct::{direct_forward, direct_weight_gradient, Direct};
use crate::kernels::conv_sparse::{sparse_gradient_fits, sparse_weight_gradient, sparse_work_len};
use crate::kernels::{activation_backward, DropoutMask};
use crate::matrix::{as_f32, MatMut, MatRef, Matrix};
use crate::nn::init::glorot_uniform_limit;
use crate::simd::{SUM_VECTORS, V};
use crate::trace::{self, Kind};

/// One convolution layer's shapes, filters, biases and activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// The shapes for ONE example (batch 1): input image, kernel, padding, output image.
    pub geometry: Conv2dGeometry,
    /// The filters, `(kh·kw·c_in, c_out)` row-major: row `(ky·kw + kx)·c_in + ci`,
    /// column `co` holds `W[ky,kx,ci,co]` ([`Conv2dGeometry::w_at`] with batch 1).
    pub w: Matrix,
    /// Biases, `(c_out)`.
    pub b: Vec<f32>,
    /// The activation applied to `z`.
    pub act: Activation,
}

impl Conv2d {
    /// A `kernel_h x kernel_w` convolution with `filters` output channels over
    /// images of shape `input` (its batch is ignored: a layer sees one
    /// example at a time), with Glorot-uniform filters (Keras' default for
    /// `Conv2D`: `fan_in = kh·kw·c_in`, `fan_out = kh·kw·c_out`) drawn from
    /// `rng`, and zero biases.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] stating the shapes when the kernel does not
    /// fit or a size is 0 ([`Conv2dGeometry::new`]).
    pub fn new(
        input: ImageShape,
        kernel_h: usize,
        kernel_w: usize,
        filters: usize,
        padding: Padding,
        act: Activation,
        rng: &mut impl Rng,
    ) -> Result<Conv2d> {
        let one = ImageShape::new(1, input.height(), input.width(), input.channels())?;
        let geometry = Conv2dGeometry::new(one, kernel_h, kernel_w, filters, padding)?;
        let taps = kernel_h * kernel_w;
        let (rows, cols) = (taps * input.channels(), filters);
        let w = glorot_uniform_limit(rows, cols, taps * input.channels() + taps * filters, rng);
        Ok(Conv2d {
            geometry,
            w,
            b: vec![0.0; filters],
            act,
        })
    }

    /// Values per example this layer reads: `h·w·c_in`.
    pub fn inputs(&self) -> usize {
        self.geometry.input().image_len()
    }
    /// Values per example this layer writes: `oh·ow·c_out`.
    pub fn outputs(&self) -> usize {
        self.geometry.output().image_len()
    }
    /// The shape of one output image (batch 1).
    pub fn output_shape(&self) -> ImageShape {
        self.geometry.output()
    }
}

/// The same numbers as `(rows, cols)`: a contiguous `m` read with another shape.
pub(crate) fn reshape_mut<'m>(m: &'m mut MatMut<'_>, rows: usize, cols: usize) -> MatMut<'m> {
    assert!(
        m.row_stride() == m.cols() || m.rows() <= 1,
        "reshape: the rows of a {}x{} view are not contiguous",
        m.rows(),
        m.cols()
    );
    assert_eq!(m.rows() * m.cols(), rows * cols, "reshape: sizes");
    MatMut::from_slice(&mut m.data()[..rows * cols], rows, cols)
}

/// [`reshape_mut`] for a read-only view.
pub(crate) fn reshape<'a>(m: MatRef<'a>, rows: usize, cols: usize) -> MatRef<'a> {
    assert!(
        (m.row_stride() == m.cols() && m.col_stride() == 1) || m.rows() <= 1,
        "reshape: the rows of a {}x{} view are not contiguous",
        m.rows(),
        m.cols()
    );
    assert_eq!(m.rows() * m.cols(), rows * cols, "reshape: sizes");
    MatRef::from_slice(&m.data()[..rows * cols], rows, cols)
}

/// The single-channel kernels' shape, if `layer` reads one channel and fits them.
fn single_channel(layer: &Conv2d) -> Option<SingleChannel> {
    SingleChannel::new(&layer.geometry)
}

/// The direct kernels' shape ([`Direct`]), if they take `layer` reading
/// images of `X` (`f32` images, no scale).
fn direct<X: AOperand>(layer: &Conv2d, x_scale: f32) -> Option<Direct> {
    let f32_images = std::any::TypeId::of::<X::Elem>() == std::any::TypeId::of::<f32>();
    (f32_images && x_scale == 1.0)
        .then(|| Direct::new(&layer.geometry))
        .flatten()
}

/// Whether [`sparse_weight_gradient`] can compute `layer`'s weight gradient
/// reading images of `X` (`f32`, no scale, [`sparse_gradient_fits`]), with
/// room in `scratch` for its working space ([`sparse_work_len`]).
fn sparse_gradient<X: AOperand>(layer: &Conv2d, x_scale: f32, scratch: &Matrix, positions: usize) -> bool {
    let f32_images = std::any::TypeId::of::<X::Elem>() == std::any::TypeId::of::<f32>();
    let g = &layer.geometry;
    let room = scratch.as_slice().len() >= sparse_work_len(g, depth_block(positions));
    f32_images && x_scale == 1.0 && sparse_gradient_fits(g) && room
}

/// Rows of an error matrix whose zeros are counted to choose between the
/// products that skip them and the GEMM (a sample: the choice changes the
/// time, never a bit; counting all of Keras' 9.4 MB took 1 ms a shard).
const DENSITY_SAMPLE: usize = 1024;

/// Whether at most [`SPARSE_ENOUGH`] of the numbers in `m`'s first rows
/// ([`DENSITY_SAMPLE`]) are not zero: then the products that skip the zeros
/// beat the GEMM (see `gemm::sparse`). Only with AVX-512's 32 vector
/// registers: with AVX2's 16 a row's sums take several passes, and LeNet-5's
/// input-gradient columns took 0.137 s an epoch of 12,800 images against
/// the GEMM's 0.076 (Zen 5 running the AVX2 build, 1 thread).
fn sparse_enough(m: MatRef) -> bool {
    if crate::simd::VECTOR_REGISTERS < 32 {
        return false;
    }
    let sample = m.rows_range(0, m.rows().min(DENSITY_SAMPLE));
    nonzeros(sample) as f32 <= SPARSE_ENOUGH * (sample.rows() * sample.cols()) as f32
}

/// The images in the rows of `x` as `im2col` over `win`.
fn unfold<X: AOperand>(x: &X, win: Window) -> Im2col<'_, X::Elem> {
    let images = x
        .image_rows()
        .expect("a convolution reads rows of images: a row-major view or rows gathered by index");
    Im2col::from_rows(images, win).expect("each row of x holds one h·w·c_in image")
}

/// Forward: `z = x_scale·conv(x, W) + b`, `a = f(z)` (times the dropout mask,
/// if given): one GEMM `im2col(x)·W` writing `a` as `(rows·oh·ow, c_out)`,
/// the bias and activation in its epilogue.
///
/// Shapes: `a: (rows, oh·ow·c_out)`, `x: (rows, h·w·c_in)`: a row-major view
/// (`u8` pixels or `f32`) or rows gathered by index from the data set.
pub fn conv2d_forward<X: AOperand>(
    mut a: MatMut,
    x: X,
    x_scale: f32,
    layer: &Conv2d,
    dropout: Option<&DropoutMask>,
    par: Parallelism,
) {
    let (rows, g) = (x.rows(), &layer.geometry);
    assert_eq!(
        (a.rows(), a.cols()),
        (rows, layer.outputs()),
        "conv2d_forward: a must be (rows, oh·ow·c_out)"
    );
    let win = Window::forward(g);
    let _conv = trace::convolution();
    if let Some(shape) = single_channel(layer) {
        // one input channel (a grey first layer): the filter slid along each row, see SingleChannel
        let _t = trace::kernel(Kind::ForwardGemm).flops(2 * rows * layer.outputs() * win.taps());
        let images = x.image_rows().expect("a convolution reads rows of images");
        for r in 0..rows {
            let params = (layer.w.as_slice(), &layer.b[..], layer.act);
            single_channel_forward(a.row_mut(r), images.row(r), x_scale, params, &shape);
        }
        if let Some(mask) = dropout {
            apply_dropout(a, mask);
        }
        return;
    }
    if let Some(shape) = direct::<X>(layer, x_scale).filter(Direct::forward) {
        // one vector of filters over windows inside the image: rows of positions in registers, see Direct
        let _t = trace::kernel(Kind::ForwardGemm).flops(2 * rows * layer.outputs() * win.taps());
        let images = x.image_rows().expect("a convolution reads rows of images");
        for r in 0..rows {
            let image = as_f32(images.row(r)).expect("direct: f32 images");
            let params = (layer.w.as_slice(), &layer.b[..], layer.act);
            direct_forward(a.row_mut(r), image, params, &shape);
        }
        if let Some(mask) = dropout {
            apply_dropout(a, mask);
        }
        return;
    }
    // forward: z = im2col(x)·W + b, a = f(z)   (bias and f while z is in registers)
    let z = reshape_mut(&mut a, rows * win.positions(), g.filters());
    let epilogue = Epilogue::BiasActivation {
        bias: &layer.b,
        act: layer.act,
    };
    gemm(x_scale, unfold(&x, win), layer.w.view(), 0.0, z, epilogue, par);
    //          a = a ⊙ m   (training)
    if let Some(mask) = dropout {
        apply_dropout(a, mask);
    }
}

/// Whether the input gradient is computed by unfolded columns and their
/// fold, `dcols = dz·Wᵀ` then `dx = col2im(dcols)`, rather than as a full
/// convolution: for few input channels (`c_in < LANES`: the full
/// convolution's GEMM would have `n = c_in` columns, most of a vector
/// wasted, and its depth `kh·kw·c_out` is mostly padding) when the columns
/// are no more numbers than the full convolution's unfolded matrix.
/// (LeNet-5's second convolution: 6 input channels.)
///
/// Also for deep filters (`c_out >= 32`, Keras' second convolution): the
/// product `dz·Wᵀ` then has `kh·kw·c_in` columns and depth `c_out`, a shape
/// the wide micro-kernels run near their peak, and no multiply-add reads a
/// padding zero; the full convolution's product has only `c_in` columns (a
/// register tile of few columns waits on its broadcasts) and, for a `valid`
/// layer, a border of zeros in each window. The columns are made and folded
/// a few images at a time (`FOLD_BYTES`), so they never leave L2.
/// Measured (Keras conv2, 3x3x64 on 26x26x32, one 64-image shard, 1
/// thread, Zen 5): the full convolution 10.1-11.0 ms, the fold below 6-7 ms.
fn folds_columns(layer: &Conv2d) -> bool {
    let g = &layer.geometry;
    let (input, output) = (g.input(), g.output());
    let taps = g.kernel_h() * g.kernel_w();
    let columns = output.height() * output.width() * taps * input.channels();
    let full = input.height() * input.width() * taps * g.filters();
    (input.channels() < crate::simd::LANES && columns <= full) || g.filters() >= 32
}

/// The most bytes of unfolded columns `dcols` made before they are folded
/// into `dx` (at least one image's): about half of a 1 MiB L2.
const FOLD_BYTES: usize = 512 * 1024;

/// Images whose unfolded input-gradient columns are made at once (at least 1).
fn fold_images(layer: &Conv2d, rows: usize) -> usize {
    let g = &layer.geometry;
    let per_image = g.output().height() * g.output().width() * (g.weight_len() / g.filters());
    (FOLD_BYTES / (4 * per_image)).clamp(1, rows.max(1))
}

/// The shape of the scratch buffer [`conv2d_backward`] needs for the input
/// gradient over up to `capacity` rows: the filters turned by 180°,
/// `(kh·kw·c_out, c_in)`, or the unfolded columns of `dx` for a few images
/// at a time and below them `Wᵀ`, `(images·oh·ow + c_out, kh·kw·c_in)` (see
/// `folds_columns` in the source).
pub fn input_gradient_scratch(layer: &Conv2d, capacity: usize) -> (usize, usize) {
    let g = &layer.geometry;
    if folds_columns(layer) {
        let o = g.output();
        (
            fold_images(layer, capacity) * o.height() * o.width() + g.filters(),
            g.weight_len() / g.filters(),
        )
    } else {
        (g.kernel_h() * g.kernel_w() * g.filters(), g.input().channels())
    }
}

/// Backward: from `da = ∂L/∂a`, the gradients `dz`, `dW`, `db` and the
/// error `dx = ∂L/∂x` sent to the layer below (`None` for the first layer).
/// `scratch` is the input gradient's buffer, shaped by
/// [`input_gradient_scratch`] (the filters turned by 180°, rewritten from
/// `W` at every call, or the unfolded columns of `dx`); `dropout`: the mask
/// the forward pass applied.
///
/// Shapes: `dx: (rows, h·w·c_in)`, `dw: (kh·kw·c_in, c_out)`, `db: (c_out)`,
/// `dz, da, a: (rows, oh·ow·c_out)`, `x: (rows, h·w·c_in)` as in [`conv2d_forward`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<X: AOperand>(
    dx: Option<MatMut>,
    scratch: &mut Matrix,
    dw: MatMut,
    db: &mut [f32],
    mut dz: MatMut,
    da: MatRef,
    a: MatRef,
    x: X,
    x_scale: f32,
    layer: &Conv2d,
    dropout: Option<&DropoutMask>,
    par: Parallelism,
) {
    let (rows, g) = (x.rows(), &layer.geometry);
    let win = Window::forward(g);
    let (positions, filters) = (rows * win.positions(), g.filters());
    let _conv = trace::convolution();
    // forward: a = f(z) [⊙ m]  ->  dz = da [⊙ m] ⊙ f'(a),  db = Σ_rows Σ_positions dz, in one pass
    match dropout {
        None if filters < crate::simd::LANES => {
            channel_activation_backward(dz.rb_mut(), da, a, layer.act, db)
        }
        None => activation_backward(
            reshape_mut(&mut dz, positions, filters),
            reshape(da, positions, filters),
            reshape(a, positions, filters),
            layer.act,
            db,
        ),
        Some(mask) => channel_dropout_backward(dz.rb_mut(), da, a, layer.act, mask, db),
    }
    let dz_view = reshape(dz.as_ref(), positions, filters);
    // below a max-pool, dz is mostly zeros: products that skip them then beat the GEMM
    // (counted only if one of them could run: dW's, or dx's by unfolded columns)
    let sparse_dw =
        single_channel(layer).is_none() && sparse_gradient::<X>(layer, x_scale, scratch, positions);
    let sparse_dx = dx.is_some() && folds_columns(layer);
    let sparse = (sparse_dw || sparse_dx) && sparse_enough(dz_view);
    // forward: z = im2col(x)·W + b  ->  dW = im2col(x)ᵀ·dz
    if let Some(shape) = single_channel(layer) {
        let _t = trace::kernel(Kind::BackwardGemmDw).flops(2 * positions * filters * win.taps());
        let images = x.image_rows().expect("a convolution reads rows of images");
        let mut sums = [V::ZERO; SINGLE_MAX_WEIGHTS * SUM_VECTORS];
        let sums = &mut sums[..layer.w.as_slice().len() * SUM_VECTORS];
        for r in 0..rows {
            let dz_row = &dz_view.data()[r * layer.outputs()..][..layer.outputs()];
            single_channel_weight_gradient(sums, images.row(r), x_scale, dz_row, &shape);
        }
        let mut dw = dw;
        assert!(
            dw.row_stride() == dw.cols(),
            "conv2d_backward: dw must be contiguous"
        );
        single_channel_sums(&mut dw.data()[..sums.len() / SUM_VECTORS], sums);
    } else if sparse && sparse_dw {
        // dz below a max-pool is mostly zeros: each non-zero adds its window to a row of dWᵀ
        let mut t = trace::kernel(Kind::BackwardGemmDw);
        let images = x.image_rows().expect("a convolution reads rows of images");
        let image = |r: usize| as_f32(images.row(r)).expect("sparse: f32 images");
        // the working space in the scratch (dx needs it only later)
        let kc = depth_block(positions);
        let work = &mut scratch.as_mut_slice()[..sparse_work_len(g, kc)];
        let mut dw = dw;
        let n = layer.w.as_slice().len();
        let madds = sparse_weight_gradient(&mut dw.data()[..n], work, &image, dz_view, g, kc);
        t.set_flops(2 * madds);
    } else if let Some(shape) = direct::<X>(layer, x_scale).filter(Direct::weight_gradient) {
        let _t = trace::kernel(Kind::BackwardGemmDw).flops(2 * positions * filters * win.taps());
        let images = x.image_rows().expect("a convolution reads rows of images");
        let (outputs, dz) = (layer.outputs(), dz_view.data());
        let image = |r: usize| {
            let x = as_f32(images.row(r)).expect("direct: f32 images");
            (x, &dz[r * outputs..][..outputs])
        };
        let mut dw = dw;
        let n = layer.w.as_slice().len();
        // in the GEMM's depth blocks, so that the sums and their bits are the GEMM's
        direct_weight_gradient(&mut dw.data()[..n], &image, rows, depth_block(positions), &shape);
    } else {
        gemm(
            x_scale,
            unfold(&x, win).t(),
            dz_view,
            0.0,
            dw,
            Epilogue::None,
            par,
        );
    }
    //                               ->  dx = im2col_full(dz)·W_flipped
    if let Some(dx) = dx {
        input_gradient(dx, scratch, dz.as_ref(), layer, sparse, par);
    }
}

/// The input gradient alone, from `dz` as [`conv2d_backward`] leaves it:
/// `dx = im2col_full(dz)·W_flipped`, or `dcols = dz·Wᵀ` folded back into
/// images (see `folds_columns`), in `scratch` shaped by
/// [`input_gradient_scratch`]. For timing it apart (`bench --models`);
/// training runs it inside [`conv2d_backward`].
///
/// Shapes: `dx: (rows, h·w·c_in)`, `dz: (rows, oh·ow·c_out)`.
pub fn conv2d_input_gradient(dx: MatMut, scratch: &mut Matrix, dz: MatRef, layer: &Conv2d, par: Parallelism) {
    assert_eq!(
        dx.rows(),
        dz.rows(),
        "conv2d_input_gradient: dx and dz differ in rows"
    );
    let positions = dz.rows() * Window::forward(&layer.geometry).positions();
    // the choice conv2d_backward makes when it computes dx
    let sparse = folds_columns(layer) && sparse_enough(reshape(dz, positions, layer.geometry.filters()));
    let _conv = trace::convolution();
    input_gradient(dx, scratch, dz, layer, sparse, par);
}

/// `dx` from `dz` (see [`conv2d_input_gradient`]); `sparse`: the unfolded
/// columns are made by the product that skips `dz`'s zeros.
fn input_gradient(
    mut dx: MatMut,
    scratch: &mut Matrix,
    dz: MatRef,
    layer: &Conv2d,
    sparse: bool,
    par: Parallelism,
) {
    let (rows, g) = (dx.rows(), &layer.geometry);
    let win = Window::forward(g);
    let (positions, filters) = (rows * win.positions(), g.filters());
    let dz_view = reshape(dz, positions, filters);
    if folds_columns(layer) {
        //                                   (dcols = dz·Wᵀ, dx = col2im(dcols), a few images at a time)
        let (taps, per_image) = (win.taps(), win.positions());
        let images = fold_images(layer, rows);
        assert!(
            scratch.rows() >= images * per_image + filters && scratch.cols() == taps,
            "conv2d_backward: the scratch buffer must be (images·oh·ow + c_out, kh·kw·c_in)"
        );
        let per_row = per_image * taps;
        // Wᵀ, (c_out, kh·kw·c_in), in the scratch's last rows, below the columns
        let (columns, w_t) = scratch.as_mut_slice().split_at_mut(images * per_row);
        let mut w_t = MatMut::from_slice(&mut w_t[..filters * taps], filters, taps);
        transpose_into(w_t.rb_mut(), layer.w.view());
        for r0 in (0..rows).step_by(images) {
            let n = images.min(rows - r0);
            let dcols = MatMut::from_slice(&mut columns[..n * per_row], n * per_image, taps);
            let dz_rows = dz_view.rows_range(r0 * per_image, (r0 + n) * per_image);
            if sparse {
                // dz below a max-pool is mostly zeros: each row of dcols adds the rows of Wᵀ its non-zeros pick
                let mut t = trace::kernel(Kind::BackwardGemmDx);
                let threads = matches!(par, Parallelism::Rayon);
                let madds = sparse_a_product(dcols, dz_rows, w_t.as_ref(), depth_block(filters), threads);
                t.set_flops(2 * madds);
            } else {
                gemm(1.0, dz_rows, layer.w.view().t(), 0.0, dcols, Epilogue::None, par);
            }
            let _t = trace::kernel(Kind::Col2im).bytes(4 * n * (per_row + 2 * layer.inputs()));
            for r in 0..n {
                let image = dx.row_mut(r0 + r);
                image.fill(0.0);
                col2im_add(image, &columns[r * per_row..][..per_row], &win);
            }
        }
        return;
    }
    let (kernel, channels) = ((g.kernel_h(), g.kernel_w()), (g.input().channels(), filters));
    assert_eq!(
        scratch.shape(),
        (g.kernel_h() * g.kernel_w() * filters, g.input().channels()),
        "conv2d_backward: the scratch buffer must be W_flipped, (kh·kw·c_out, c_in)"
    );
    flip_filters(scratch.as_mut_slice(), layer.w.as_slice(), kernel, channels);
    let full = Window::input_gradient(g);
    let dz_images = ImageRows::from_view(&dz).expect("dz is row-major");
    let dz_full = Im2col::from_rows(dz_images, full).expect("dz rows are oh·ow·c_out");
    let dx = reshape_mut(&mut dx, rows * full.positions(), g.input().channels());
    gemm(1.0, dz_full, scratch.view(), 0.0, dx, Epilogue::None, par);
}
