//! Lesson 10: after the convolutions — 2x2 max-pooling, and flatten into a dense layer.
//!
//! **Max-pooling** halves the height and the width of an image: it cuts each
//! channel into 2x2 tiles and keeps the largest number of each tile. It has no
//! weights; it keeps the strongest response of each filter in each small region.
//!
//! ```text
//! a[n,py,px,c] = max over dy, dx in {0, 1} of x[n, 2·py+dy, 2·px+dx, c]
//! ```
//!
//! Shapes: `x` (batch, height, width, channels) -> `a` (batch, height / 2,
//! width / 2, channels), rounded down: for an odd height the last row is dropped
//! (and for an odd width the last column), as Keras' `MaxPooling2D` with its
//! default `valid` padding does. A dropped pixel reaches no output and gets a
//! zero gradient.
//!
//! The backward pass: only the largest number of a tile moved the output, by
//! exactly as much as it moved itself (slope 1); the three others did not move
//! it at all (slope 0). So each gradient goes back to the tile's largest number
//! (its "argmax", remembered by the forward pass), and the others get 0:
//!
//! ```text
//! forward                                   backward
//! a[o] = x[argmax[o]]                       dx[argmax[o]] += da[o]
//! ```
//!
//! On a tie the first of the tile in row-major order wins (top-left, top-right,
//! bottom-left, bottom-right): the comparison is a strict `>`, so a later equal
//! number does not replace it. (The max is not differentiable at a tie; any one
//! choice is a valid subgradient, and this one is fixed, so results are
//! reproducible.)
//!
//! **Flatten** turns each image (height, width, channels) into one row of
//! `height · width · channels` numbers, the input of a dense layer. In a
//! row-major (batch, height, width, channels) buffer the numbers of image `n`
//! already sit one after the other, in exactly the order of that row:
//! `x[n,y,x,c]` is at `n·(H·W·C) + (y·W + x)·C + c` (for `H x W` images of
//! `C` channels), which is element `(y·W + x)·C + c` of row `n` of a
//! (batch, H·W·C) matrix. So flatten moves no number: it only changes the
//! shape that reads the buffer, and so does its backward pass (`dx = da`, read
//! as an image again). A fast engine need do no work for it; the lesson
//! copies, to show that the copy is the identity. (It is also the order of
//! Keras' `Flatten` on channels-last images, so a dense layer after it means
//! the same weights in both.)

pub use crate::geometry::{ImageShape, Pool2dGeometry};

/// The forward pass of 2x2 max-pooling: the largest number of each 2x2 tile,
/// and where it was.
///
/// ```text
/// a[n,py,px,c]      = max_{dy,dx ∈ {0,1}} x[n, 2·py+dy, 2·px+dx, c]    (first one on a tie)
/// argmax[n,py,px,c] = the index in x of that maximum
/// ```
///
/// - `a`: (batch, height / 2, width / 2, channels), written
/// - `argmax`: same shape as `a`, written: indices into `x`, for the backward pass
/// - `x`: (batch, height, width, channels)
pub fn maxpool2d_forward(a: &mut [f64], argmax: &mut [usize], x: &[f64], g: &Pool2dGeometry) {
    let (input, output) = (g.input(), g.output());
    assert_eq!(x.len(), input.len(), "x must be {input}");
    assert_eq!(a.len(), output.len(), "a must be {output}");
    assert_eq!(argmax.len(), output.len(), "argmax must be {output}");
    for n in 0..output.batch() {
        for py in 0..output.height() {
            for px in 0..output.width() {
                for c in 0..output.channels() {
                    let o = output.at(n, py, px, c);
                    let mut best = input.at(n, 2 * py, 2 * px, c); // the tile's top-left
                    for dy in 0..Pool2dGeometry::SIZE {
                        for dx in 0..Pool2dGeometry::SIZE {
                            let i = input.at(n, 2 * py + dy, 2 * px + dx, c);
                            if x[i] > x[best] {
                                best = i; // strictly larger: on a tie the first stays
                            }
                        }
                    }
                    a[o] = x[best];
                    argmax[o] = best;
                }
            }
        }
    }
}

/// The backward pass of max-pooling: each output's gradient goes to the input
/// that was the maximum of its tile; every other input gets nothing.
///
/// ```text
/// forward: a[o] = x[argmax[o]]   ->   dx[argmax[o]] += da[o]
/// ```
///
/// The 2x2 tiles do not overlap (stride 2), so each input gets at most one
/// gradient; `+=` keeps the rule of every backward pass.
///
/// - `dx`: (batch, height, width, channels), accumulated into (`+=`), zeroed by the caller
/// - `da`: (batch, height / 2, width / 2, channels); `argmax`: same shape, from [`maxpool2d_forward`]
pub fn maxpool2d_backward(dx: &mut [f64], da: &[f64], argmax: &[usize]) {
    assert_eq!(da.len(), argmax.len(), "da and argmax must have the same shape");
    for o in 0..da.len() {
        dx[argmax[o]] += da[o];
    }
}

/// Flatten: each image of `x` (batch, height, width, channels) becomes one row
/// of `a` (batch, height · width · channels), in the same order, so `a = x`
/// number for number (see the module doc: in row-major NHWC it is a free
/// reshape). Returns the shape of `a`, (rows, features).
///
/// - `a`: (batch, height · width · channels), written; `x`: `shape`
pub fn flatten_forward(a: &mut [f64], x: &[f64], shape: ImageShape) -> (usize, usize) {
    let (rows, features) = (shape.batch(), shape.image_len());
    assert_eq!(x.len(), shape.len(), "x must be {shape}");
    assert_eq!(
        a.len(),
        rows * features,
        "a must be (batch, height·width·channels)"
    );
    for n in 0..shape.batch() {
        for iy in 0..shape.height() {
            for ix in 0..shape.width() {
                for c in 0..shape.channels() {
                    let f = (iy * shape.width() + ix) * shape.channels() + c; // the feature
                    a[n * features + f] = x[shape.at(n, iy, ix, c)]; // the same index
                }
            }
        }
    }
    (rows, features)
}

/// The backward pass of flatten: the gradient of each row, read as an image again.
///
/// ```text
/// forward: a[n, (y·W + x)·C + c] = x[n,y,x,c]   ->   dx[n,y,x,c] += da[n, (y·W + x)·C + c]
/// ```
///
/// - `dx`: `shape`, accumulated into (`+=`), zeroed by the caller; `da`: (batch, height · width · channels)
pub fn flatten_backward(dx: &mut [f64], da: &[f64], shape: ImageShape) {
    let features = shape.image_len();
    assert_eq!(dx.len(), shape.len(), "dx must be {shape}");
    assert_eq!(da.len(), shape.len(), "da must be (batch, height·width·channels)");
    for n in 0..shape.batch() {
        for iy in 0..shape.height() {
            for ix in 0..shape.width() {
                for c in 0..shape.channels() {
                    let f = (iy * shape.width() + ix) * shape.channels() + c;
                    dx[shape.at(n, iy, ix, c)] += da[n * features + f];
                }
            }
        }
    }
}
