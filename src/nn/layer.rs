//! A network is a sequence of layers; each kind of layer is a forward /
//! backward pair of functions (for a dense layer, [`dense_forward`] and
//! [`dense_backward`]) with one calling convention:
//!
//! ```text
//! forward(a, x, ...)                          a: (rows, outputs) from x: (rows, inputs)
//! backward(dx, d<params>, .., da, a, x, ...)  outputs first; da = ∂L/∂a in, dx = ∂L/∂x out
//! ```
//!
//! [`Layer`] names the kinds; the network's loop ([`crate::nn::network`])
//! calls them through [`Layer::forward`] and [`Layer::backward`], and the
//! optimiser sees every layer's parameters as a list of tensors
//! ([`Layer::params_mut`]). A new kind of layer (dropout, a 2-D convolution,
//! max pooling, flatten) is a new variant with its own pair of functions and
//! its own buffers in [`LayerBuffers`]; the GEMM and the fused kernels stay
//! as they are (a convolution is a GEMM once its input is packed).

use crate::gemm::{AOperand, Parallelism};
use crate::geometry::ImageShape;
use crate::kernels::DropoutMask;
use crate::matrix::{MatMut, Matrix};
use crate::nn::conv::{conv2d_backward, conv2d_forward, input_gradient_scratch, Conv2d};
use crate::nn::dense::{dense_backward, dense_forward, Dense};
use crate::nn::pool::{
    flatten_backward, flatten_forward, maxpool2d_backward, maxpool2d_forward, Flatten, MaxPool2d,
};

/// One layer of a [`crate::nn::Network`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Layer {
    /// `a = f(x·W + b)`.
    Dense(Dense),
    /// `a = f(conv(x, W) + b)` on (h, w, c) images.
    Conv2d(Conv2d),
    /// 2x2, stride-2 max-pooling.
    MaxPool2d(MaxPool2d),
    /// An image as one row (no value moves).
    Flatten(Flatten),
}

impl From<Dense> for Layer {
    fn from(d: Dense) -> Layer {
        Layer::Dense(d)
    }
}

impl Layer {
    /// Values per example this layer reads.
    pub fn inputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs(),
            Layer::Conv2d(c) => c.inputs(),
            Layer::MaxPool2d(p) => p.inputs(),
            Layer::Flatten(f) => f.inputs(),
        }
    }

    /// Values per example this layer writes.
    pub fn outputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs(),
            Layer::Conv2d(c) => c.outputs(),
            Layer::MaxPool2d(p) => p.outputs(),
            Layer::Flatten(f) => f.outputs(),
        }
    }

    /// The shape of one output image, for the layers that write images
    /// (convolution, pooling); `None` for rows of values (dense, flatten).
    pub fn output_image(&self) -> Option<ImageShape> {
        match self {
            Layer::Conv2d(c) => Some(c.geometry.output()),
            Layer::MaxPool2d(p) => Some(p.geometry.output()),
            Layer::Dense(_) | Layer::Flatten(_) => None,
        }
    }

    /// The shape of one input image, for the layers that read images
    /// (convolution, pooling, flatten); `None` for dense layers.
    pub fn input_image(&self) -> Option<ImageShape> {
        match self {
            Layer::Conv2d(c) => Some(c.geometry.input()),
            Layer::MaxPool2d(p) => Some(p.geometry.input()),
            Layer::Flatten(f) => Some(f.shape),
            Layer::Dense(_) => None,
        }
    }

    /// The kind's name, as Keras' `model.summary()` prints it: `dense`,
    /// `conv2d`, `max_pooling2d`, `flatten`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
            Layer::Conv2d(_) => "conv2d",
            Layer::MaxPool2d(_) => "max_pooling2d",
            Layer::Flatten(_) => "flatten",
        }
    }

    /// Multiply-adds of one example's forward pass through this layer's GEMM
    /// (dense: `inputs·outputs`; conv: `oh·ow · kh·kw·c_in · c_out`; pool, flatten: 0).
    /// Training does about three times this (forward, `dW`, `dx`).
    pub fn forward_macs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs() * d.outputs(),
            Layer::Conv2d(c) => {
                let g = &c.geometry;
                g.output().height() * g.output().width() * g.weight_len()
            }
            Layer::MaxPool2d(_) | Layer::Flatten(_) => 0,
        }
    }

    /// The dense layer's parameters, if this is one.
    pub fn as_dense(&self) -> Option<&Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            _ => None,
        }
    }

    /// The number of trainable values (dense, conv: weights and biases; pool, flatten: none).
    pub fn num_params(&self) -> usize {
        // (counted without `params()`'s Vec: the optimiser asks once per step, which must not allocate)
        match self {
            Layer::Dense(d) => d.w.as_slice().len() + d.b.len(),
            Layer::Conv2d(c) => c.w.as_slice().len() + c.b.len(),
            Layer::MaxPool2d(_) | Layer::Flatten(_) => 0,
        }
    }

    /// The trainable tensors, in a fixed order (dense, conv: `W`, then `b`; pool, flatten: none).
    pub fn params(&self) -> Vec<&[f32]> {
        match self {
            Layer::Dense(d) => vec![d.w.as_slice(), &d.b],
            Layer::Conv2d(c) => vec![c.w.as_slice(), &c.b],
            Layer::MaxPool2d(_) | Layer::Flatten(_) => Vec::new(),
        }
    }

    /// The number of trainable tensors ([`Layer::params`]'s length).
    pub fn num_tensors(&self) -> usize {
        match self {
            Layer::Dense(_) | Layer::Conv2d(_) => 2,
            Layer::MaxPool2d(_) | Layer::Flatten(_) => 0,
        }
    }

    /// Whether weight decay applies to trainable tensor `k` (dense, conv: `W`, not `b`).
    pub fn decays(&self, k: usize) -> bool {
        match self {
            Layer::Dense(_) | Layer::Conv2d(_) => k == 0,
            Layer::MaxPool2d(_) | Layer::Flatten(_) => false,
        }
    }

    /// Trainable tensor `k` (in [`Layer::params`] order), to update in place.
    ///
    /// # Panics
    /// If the layer has no tensor `k` (pool and flatten have none).
    pub fn params_mut(&mut self, k: usize) -> &mut [f32] {
        let kind = self.kind_name();
        self.tensors_mut()
            .nth(k)
            .unwrap_or_else(|| panic!("a {kind} layer has no trainable tensor {k}"))
    }

    /// Every trainable tensor at once, in [`Layer::params`] order, to update
    /// in place (pool and flatten: none).
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        let (w, b) = match self {
            Layer::Dense(d) => (Some(d.w.as_mut_slice()), Some(d.b.as_mut_slice())),
            Layer::Conv2d(c) => (Some(c.w.as_mut_slice()), Some(c.b.as_mut_slice())),
            Layer::MaxPool2d(_) | Layer::Flatten(_) => (None, None),
        };
        w.into_iter().chain(b)
    }

    /// Forward: `a` from `x` (scaled by `x_scale`), with inverted dropout
    /// if a mask is given (training).
    /// `x` is any GEMM operand (a view, or rows gathered from the data set).
    /// Max-pooling writes where each maximum was into `argmax` (its
    /// [`LayerBuffers`]'s; empty for the other kinds).
    pub fn forward<X: AOperand>(
        &self,
        a: MatMut,
        argmax: &mut [u32],
        x: X,
        x_scale: f32,
        dropout: Option<&DropoutMask>,
        par: Parallelism,
    ) {
        match self {
            Layer::Dense(d) => dense_forward(a, x, x_scale, d, dropout, par),
            Layer::Conv2d(c) => conv2d_forward(a, x, x_scale, c, dropout, par),
            Layer::MaxPool2d(p) => maxpool2d_forward(a, argmax, x, x_scale, p, dropout),
            Layer::Flatten(_) => flatten_forward(a, x, x_scale, dropout),
        }
    }

    /// Backward: from `buf.da` (and the stored `buf.a`) this layer's
    /// gradients in `buf`, and `dx`, the error of its input (`None`: not needed).
    /// `dropout` is the mask the forward pass applied, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<X: AOperand>(
        &self,
        dx: Option<MatMut>,
        buf: &mut LayerBuffers,
        rows: usize,
        x: X,
        x_scale: f32,
        dropout: Option<&DropoutMask>,
        par: Parallelism,
    ) {
        let LayerBuffers {
            a,
            da,
            dz,
            grads,
            argmax,
            w_flipped,
        } = buf;
        match self {
            Layer::Dense(d) => {
                let (dw, db) = grads.split_at_mut(1);
                dense_backward(
                    dx,
                    dw[0].view_mut(),
                    db[0].as_mut_slice(),
                    dz.view_mut().rows_range(0, rows),
                    da.view().rows_range(0, rows),
                    a.view().rows_range(0, rows),
                    x,
                    x_scale,
                    d,
                    dropout,
                    par,
                );
            }
            Layer::Conv2d(c) => {
                let (dw, db) = grads.split_at_mut(1);
                conv2d_backward(
                    dx,
                    w_flipped,
                    dw[0].view_mut(),
                    db[0].as_mut_slice(),
                    dz.view_mut().rows_range(0, rows),
                    da.view().rows_range(0, rows),
                    a.view().rows_range(0, rows),
                    x,
                    x_scale,
                    c,
                    dropout,
                    par,
                );
            }
            // no weights: only the error of the input, if the layer below needs it
            Layer::MaxPool2d(p) => {
                if let Some(dx) = dx {
                    maxpool2d_backward(dx, da.view().rows_range(0, rows), argmax, p, dropout);
                }
            }
            Layer::Flatten(_) => {
                if let Some(dx) = dx {
                    flatten_backward(dx, da.view().rows_range(0, rows), dropout);
                }
            }
        }
    }
}

/// The buffers of one layer for a forward and backward pass over up to
/// `capacity` rows, allocated once.
#[derive(Clone, Debug)]
pub struct LayerBuffers {
    /// `a`, the layer's output: `(capacity, outputs)`.
    pub(crate) a: Matrix,
    /// `da = ∂L/∂a`, written by the layer above (or the loss): `(capacity, outputs)`.
    pub(crate) da: Matrix,
    /// `dz = ∂L/∂z` (dense layers): `(capacity, outputs)`.
    pub(crate) dz: Matrix,
    /// The gradient of each trainable tensor, in [`Layer::params`] order and
    /// shape (dense: `dW (inputs, outputs)`, `db` as a `(1, outputs)` matrix).
    pub(crate) grads: Vec<Matrix>,
    /// Max-pooling: where each output's maximum was, `(capacity, outputs)`
    /// flat (empty for the other kinds).
    pub(crate) argmax: Vec<u32>,
    /// Convolution, training: the input gradient's scratch buffer, shaped
    /// by [`crate::nn::conv::input_gradient_scratch`] (empty otherwise).
    pub(crate) w_flipped: Matrix,
}

impl LayerBuffers {
    /// Zeroed buffers for `layer` and up to `capacity` rows; without
    /// `backward`, only the output, max-pooling's argmax, and for a dense
    /// layer the loss's `da` (for evaluation; [`crate::nn::Workspace`] gives
    /// whatever layer comes last its `da`).
    pub fn new(layer: &Layer, capacity: usize, backward: bool) -> LayerBuffers {
        let outputs = layer.outputs();
        let rows_if = |on: bool| if on { capacity } else { 0 };
        // dz: only the layers with an activation (dense, conv) need it
        let has_dz = backward && matches!(layer, Layer::Dense(_) | Layer::Conv2d(_));
        let grads = match layer {
            Layer::Dense(d) if backward => {
                vec![Matrix::zeros(d.inputs(), outputs), Matrix::zeros(1, outputs)]
            }
            Layer::Conv2d(c) if backward => {
                vec![Matrix::zeros(c.w.rows(), c.w.cols()), Matrix::zeros(1, c.b.len())]
            }
            _ => Vec::new(),
        };
        let argmax = match layer {
            Layer::MaxPool2d(_) => vec![0; capacity * outputs],
            _ => Vec::new(),
        };
        let w_flipped = match layer {
            Layer::Conv2d(c) if backward => {
                let (rows, cols) = input_gradient_scratch(c, capacity);
                Matrix::zeros(rows, cols)
            }
            _ => Matrix::zeros(0, 0),
        };
        LayerBuffers {
            a: Matrix::zeros(capacity, outputs),
            // (inference needs da only where the loss writes it, the last layer: see Workspace)
            da: Matrix::zeros(rows_if(backward || matches!(layer, Layer::Dense(_))), outputs),
            dz: Matrix::zeros(rows_if(has_dz), outputs),
            grads,
            argmax,
            w_flipped,
        }
    }
}
