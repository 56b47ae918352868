//! 2x2, stride-2 max-pooling over images stored as rows (one example's
//! `(height, width, channels)` image per row, NHWC): the forward pass keeps
//! each tile's largest number and where it was (its index in the row, as
//! `u32`), the backward pass routes each gradient to that place.
//!
//! Ties go to the first of the tile in row-major order (top-left,
//! top-right, bottom-left, bottom-right: a later number must be strictly
//! larger), exactly as [`crate::teach::pool`]. For an odd height or width
//! the last row or column is read by no tile and gets a zero gradient.

use crate::matrix::Element;

/// One image: `a[(py·(w/2) + px)·c + ci] = max` of the 2x2 tile at
/// `(2py, 2px)` of `x` (scaled by `x_scale`), `argmax[..]` its index in `x`.
///
/// Shapes: `x: h·w·c`, `a, argmax: (h/2)·(w/2)·c`.
pub fn maxpool2d_forward_image<T: Element>(
    a: &mut [f32],
    argmax: &mut [u32],
    x: &[T],
    x_scale: f32,
    (h, w, c): (usize, usize, usize),
) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), h * w * c, "maxpool2d_forward_image: x");
    assert_eq!(a.len(), oh * ow * c, "maxpool2d_forward_image: a");
    assert_eq!(argmax.len(), a.len(), "maxpool2d_forward_image: argmax");
    assert!(
        x.len() <= u32::MAX as usize,
        "maxpool2d_forward_image: an image of more than 2^32 numbers"
    );
    for py in 0..oh {
        for px in 0..ow {
            let o = (py * ow + px) * c;
            let tl = ((2 * py) * w + 2 * px) * c;
            let corners = [tl, tl + c, tl + w * c, tl + w * c + c];
            let (a, argmax) = (&mut a[o..o + c], &mut argmax[o..o + c]);
            for ci in 0..c {
                let mut best = corners[0] + ci;
                let mut value = x[best].to_f32();
                for &corner in &corners[1..] {
                    let v = x[corner + ci].to_f32();
                    if v > value {
                        (best, value) = (corner + ci, v);
                    }
                }
                a[ci] = x_scale * value;
                argmax[ci] = best as u32;
            }
        }
    }
}

/// One image's backward pass: `dx[argmax[o]] = da[o] · factor(o)` (the
/// tiles do not overlap; `factor`: the dropout factor of output `o`, or 1),
/// every other element of `dx` 0.
///
/// Shapes: `dx: h·w·c`; `da, argmax: (h/2)·(w/2)·c`.
pub fn maxpool2d_backward_image(dx: &mut [f32], da: &[f32], argmax: &[u32], factor: impl Fn(usize) -> f32) {
    assert_eq!(da.len(), argmax.len(), "maxpool2d_backward_image: argmax");
    dx.fill(0.0);
    for (o, (&g, &i)) in da.iter().zip(argmax).enumerate() {
        dx[i as usize] = g * factor(o);
    }
}
