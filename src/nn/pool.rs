//! Layers without weights that reshape images: 2x2 max-pooling (stride 2,
//! remembering where each maximum was) and flatten (an image becomes one row).
//!
//! The lesson with the same steps in plain `f64` loops is [`crate::teach::pool`].

use crate::error::Result;
use crate::geometry::{ImageShape, Pool2dGeometry};

/// A 2x2, stride-2 max-pooling layer.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool2d {
    /// The shapes for ONE example (batch 1).
    pub geometry: Pool2dGeometry,
}

impl MaxPool2d {
    /// A 2x2 max-pooling of images of shape `input` (its batch is ignored).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] stating the shape when the images are
    /// smaller than 2x2 ([`Pool2dGeometry::new`]).
    pub fn new(input: ImageShape) -> Result<MaxPool2d> {
        let one = ImageShape::new(1, input.height(), input.width(), input.channels())?;
        Ok(MaxPool2d {
            geometry: Pool2dGeometry::new(one)?,
        })
    }

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
    /// Flatten images of shape `input` (its batch is ignored).
    pub fn new(input: ImageShape) -> Flatten {
        // a checked shape with batch 1 is a checked shape
        let one = ImageShape::new(1, input.height(), input.width(), input.channels())
            .expect("batch 1 of a valid shape is valid");
        Flatten { shape: one }
    }

    /// Values per example, in and out: `h·w·c`.
    pub fn inputs(&self) -> usize {
        self.shape.image_len()
    }
    /// Values per example, in and out: `h·w·c`.
    pub fn outputs(&self) -> usize {
        self.shape.image_len()
    }
}
