//! Layers without weights that reshape images: 2x2 max-pooling (stride 2,
//! remembering where each maximum was) and flatten (an image becomes one row).
//!
//! The lesson with the same steps in plain `f64` loops is [`crate::teach::pool`].

use crate::geometry::{ImageShape, Pool2dGeometry};

/// A 2x2, stride-2 max-pooling layer.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool2d {
    /// The shapes for ONE example (batch 1).
    pub geometry: Pool2dGeometry,
}

impl MaxPool2d {
    /// Values per example this layer reads: `h·w·c`.
    pub fn inputs(&self) -> usize {
        self.geometry.input().image_len()
    }
    /// Values per example this layer writes: `(h/2)·(w/2)·c`.
    pub fn outputs(&self) -> usize {
        self.geometry.output().image_len()
    }
}

/// Flatten: each image `(h, w, c)` becomes one row of `h·w·c` values, in the
/// same (NHWC, Keras channels-last) order, so no value moves.
#[derive(Clone, Debug, PartialEq)]
pub struct Flatten {
    /// The shape of one input image (batch 1).
    pub shape: ImageShape,
}

impl Flatten {
    /// Values per example, in and out: `h·w·c`.
    pub fn inputs(&self) -> usize {
        self.shape.image_len()
    }
    /// Values per example, in and out: `h·w·c`.
    pub fn outputs(&self) -> usize {
        self.shape.image_len()
    }
}
