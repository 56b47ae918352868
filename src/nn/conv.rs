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

use crate::activation::Activation;
use crate::geometry::{Conv2dGeometry, ImageShape};
use crate::matrix::Matrix;

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
