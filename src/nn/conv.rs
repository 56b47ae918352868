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
//! The lesson with the same steps in plain `f64` loops is
//! [`crate::teach::conv`] (same weight layout: `W[ky,kx,ci,co]` row-major).

use rand::Rng;

use crate::activation::Activation;
use crate::error::Result;
use crate::geometry::{Conv2dGeometry, ImageShape, Padding};
use crate::matrix::Matrix;
use crate::nn::init::glorot_uniform_limit;

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
