//! Layers without weights that reshape images: 2x2 max-pooling (stride 2,
//! remembering where each maximum was) and flatten (an image becomes one row).
//!
//! Beside each forward line, its backward line:
//!
//! ```text
//! max-pool  forward: a[o] = x[argmax[o]] [⊙ m]    backward: dx[argmax[o]] = da[o] [⊙ m], 0 elsewhere
//! flatten   forward: a = x [⊙ m]                  backward: dx = da [⊙ m]
//! ```
//!
//! (Flatten copies: a copy costs little next to the convolutions around it,
//! and keeps every layer's output in its own buffer.) Dropout, in training,
//! multiplies the `(rows, outputs)` output by the mask keyed by its row and
//! column, as for every layer.
//!
//! The lesson with the same steps in plain `f64` loops is [`crate::teach::pool`],
//! with the same names and argument order (outputs first).

use crate::error::Result;
use crate::gemm::{AOperand, ImageRows};
use crate::geometry::{ImageShape, Pool2dGeometry};
use crate::kernels::conv::apply_dropout;
use crate::kernels::pool::{maxpool2d_backward_image, maxpool2d_forward_image};
use crate::kernels::DropoutMask;
use crate::matrix::{Element, MatMut, MatRef};
use crate::trace::{self, Kind};

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

/// The rows of `x` as images (a row-major view or rows gathered by index).
fn images<X: AOperand>(x: &X) -> ImageRows<'_, X::Elem> {
    x.image_rows()
        .expect("an image layer reads rows of images: a row-major view or rows gathered by index")
}

/// Forward: each 2x2 tile's maximum (of `x_scale·x`), and in `argmax` its
/// index in the row's image (for the backward pass); then the dropout mask,
/// if given (training).
///
/// Shapes: `a, argmax: (rows, (h/2)·(w/2)·c)` (`argmax` flat, row-major),
/// `x: (rows, h·w·c)`.
pub fn maxpool2d_forward<X: AOperand>(
    mut a: MatMut,
    argmax: &mut [u32],
    x: X,
    x_scale: f32,
    layer: &MaxPool2d,
    dropout: Option<&DropoutMask>,
) {
    let (rows, outputs, input) = (x.rows(), layer.outputs(), layer.geometry.input());
    assert_eq!((a.rows(), a.cols()), (rows, outputs), "maxpool2d_forward: a");
    assert!(
        argmax.len() >= rows * outputs,
        "maxpool2d_forward: argmax too short"
    );
    let _t = trace::kernel(Kind::PoolForward).bytes(4 * rows * (layer.inputs() + 2 * outputs));
    let x = images(&x);
    let shape = (input.height(), input.width(), input.channels());
    for (r, arg) in argmax.chunks_exact_mut(outputs).take(rows).enumerate() {
        // forward: a[o] = x[argmax[o]]
        maxpool2d_forward_image(a.row_mut(r), arg, x.row(r), x_scale, shape);
    }
    //          a = a ⊙ m   (training)
    if let Some(mask) = dropout {
        apply_dropout(a, mask);
    }
}

/// Backward: `dx[argmax[o]] = da[o]` (times the dropout factor, if the
/// forward pass dropped), every other input 0.
///
/// Shapes: `dx: (rows, h·w·c)`, `da: (rows, (h/2)·(w/2)·c)`, `argmax` as from
/// [`maxpool2d_forward`].
pub fn maxpool2d_backward(
    mut dx: MatMut,
    da: MatRef,
    argmax: &[u32],
    layer: &MaxPool2d,
    dropout: Option<&DropoutMask>,
) {
    let (rows, outputs) = (da.rows(), layer.outputs());
    assert_eq!(
        (dx.rows(), dx.cols()),
        (rows, layer.inputs()),
        "maxpool2d_backward: dx"
    );
    assert_eq!(da.cols(), outputs, "maxpool2d_backward: da");
    let _t = trace::kernel(Kind::PoolBackward).bytes(4 * rows * (2 * outputs + layer.inputs()));
    for (r, arg) in argmax.chunks_exact(outputs).take(rows).enumerate() {
        let da_row = &da.data()[r * da.row_stride()..][..outputs];
        // forward: a[o] = x[argmax[o]] [⊙ m]  ->  dx[argmax[o]] = da[o] [⊙ m]
        maxpool2d_backward_image(dx.row_mut(r), da_row, arg, dropout.map(|m| (m, r)));
    }
}

/// Forward: `a = x_scale·x` row by row (no number moves), times the dropout
/// mask if given. Shapes: `a, x: (rows, h·w·c)`.
pub fn flatten_forward<X: AOperand>(mut a: MatMut, x: X, x_scale: f32, dropout: Option<&DropoutMask>) {
    assert_eq!((a.rows(), a.cols()), (x.rows(), x.cols()), "flatten_forward: a");
    let _t = trace::kernel(Kind::Flatten).bytes(8 * x.rows() * x.cols());
    let x = images(&x);
    for r in 0..x.rows() {
        // forward: a = x
        for (d, s) in a.row_mut(r).iter_mut().zip(x.row(r)) {
            *d = x_scale * s.to_f32();
        }
    }
    //          a = a ⊙ m   (training)
    if let Some(mask) = dropout {
        apply_dropout(a, mask);
    }
}

/// Backward: `dx = da` (times the dropout mask, if the forward pass dropped).
/// Shapes: `dx, da: (rows, h·w·c)`.
pub fn flatten_backward(mut dx: MatMut, da: MatRef, dropout: Option<&DropoutMask>) {
    assert_eq!(
        (dx.rows(), dx.cols()),
        (da.rows(), da.cols()),
        "flatten_backward: dx"
    );
    let _t = trace::kernel(Kind::Flatten).bytes(8 * da.rows() * da.cols());
    for r in 0..da.rows() {
        let da_row = &da.data()[r * da.row_stride()..][..da.cols()];
        // forward: a = x  ->  dx = da
        dx.row_mut(r).copy_from_slice(da_row);
    }
    //          a = a ⊙ m  ->  dx = dx ⊙ m
    if let Some(mask) = dropout {
        apply_dropout(dx, mask);
    }
}
