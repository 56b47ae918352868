//! Lesson 9: the convolution layer — one small filter slid over the image.
//!
//! A dense layer connects every input to every output with its own weight. A
//! convolution connects each output pixel only to the small window of input
//! pixels around it, and uses the SAME weights (the filter) at every position:
//!
//! ```text
//! z[n,oy,ox,co] = b[co] + Σ_ky Σ_kx Σ_ci  x[n, oy+ky-pad_top, ox+kx-pad_left, ci] · W[ky,kx,ci,co]
//! ```
//!
//! (A pixel outside the image, in the padding, is 0 and adds nothing. Strictly
//! this is a cross-correlation — the filter is not flipped — as in every deep
//! learning library; a learned filter does not care.)
//!
//! Shapes, all row-major, images as (batch, height, width, channels) like the
//! engine keeps them ("NHWC"):
//!
//! ```text
//! x:    (batch, height, width, c_in)          x[((n·height + y)·width + x)·c_in + ci]   ImageShape::at
//! W:    (kh, kw, c_in, c_out)                 W[((ky·kw + kx)·c_in + ci)·c_out + co]    Conv2dGeometry::w_at
//! b:    (c_out)                               b[co]
//! z:    (batch, out_height, out_width, c_out)
//! ```
//!
//! Stride 1, and two paddings ([`Padding`]): `valid` keeps only the positions
//! where the whole filter lies inside the image (`out = in - k + 1`); `same`
//! pads the image with zeros so that `out = in`: `k - 1` rows of zeros in all,
//! `(k - 1) / 2` on top and the rest at the bottom — for an odd kernel as many
//! on each side, for an even one the extra row at the BOTTOM (and the extra
//! column on the RIGHT), as Keras and TensorFlow do.
//!
//! The backward pass takes every multiply-add of the forward pass,
//! `z[o] += x[i] · W[k]` (`o`, `i`, `k`: the places of one output, one input
//! pixel's channel and one weight in their buffers), and sends the gradient
//! back along it, exactly as in a dense layer (lesson 3) — there is nothing
//! more to it:
//!
//! ```text
//! forward                               backward (each line beside the one it differentiates)
//! z[o]  = b[co] + ...                   db[co] += dz[o]
//! z[o] += x[i] · W[k]                   dW[k]  += x[i] · dz[o]     summed over batch AND positions
//!                                       dx[i]  += W[k] · dz[o]     skipped in the padding: a zero is no input
//! ```
//!
//! `dW` sums over the batch and over every position the filter visited: the
//! same weight was used `batch · out_height · out_width` times. Written as a
//! gather instead of a scatter, `dx` is a "full" convolution of `dz` with the
//! flipped filter. A fast engine computes all three as matrix products
//! (GEMMs) after packing the image windows ("im2col"); this lesson is what it
//! is checked against.
//!
//! The activation `a = f(z)` after a convolution is the dense lesson's, one
//! number at a time: [`super::forward::activate`] and
//! [`super::backward::activation_backward`] work on a buffer of any shape.

pub use crate::geometry::{input_position, Conv2dGeometry, ImageShape, Padding};

/// The forward pass of a convolution: `z = conv(x, W) + b`.
///
/// ```text
/// z[n,oy,ox,co] = b[co] + Σ_ky Σ_kx Σ_ci x[n, oy+ky-pad_top, ox+kx-pad_left, ci] · W[ky,kx,ci,co]
/// ```
///
/// - `z`: (batch, out_height, out_width, c_out), written
/// - `x`: (batch, height, width, c_in); `w`: (kh, kw, c_in, c_out); `b`: (c_out)
///
/// ```
/// use simdnet::teach::conv::{conv2d_forward, Conv2dGeometry, ImageShape, Padding};
/// // one 3x3 image of one channel, one 2x2 filter, bias 0.5: a 2x2 output
/// let g = Conv2dGeometry::new(ImageShape::new(1, 3, 3, 1)?, 2, 2, 1, Padding::Valid)?;
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let w = [1.0, 2.0, -1.0, 0.0];
/// let mut z = [0.0; 4];
/// conv2d_forward(&mut z, &x, &w, &[0.5], &g);
/// assert_eq!(z, [1.5, 3.5, 7.5, 9.5]); // z[0,0] = 1·1 + 2·2 + 4·(-1) + 5·0 + 0.5
/// # Ok::<(), simdnet::Error>(())
/// ```
pub fn conv2d_forward(z: &mut [f64], x: &[f64], w: &[f64], b: &[f64], g: &Conv2dGeometry) {
    let (input, output) = (g.input(), g.output());
    assert_eq!(x.len(), input.len(), "x must be {input}");
    assert_eq!(z.len(), output.len(), "z must be {output}");
    assert_eq!(w.len(), g.weight_len(), "w must be (kh, kw, c_in, c_out)");
    assert_eq!(b.len(), g.filters(), "b must be (c_out)");
    for n in 0..input.batch() {
        for oy in 0..output.height() {
            for ox in 0..output.width() {
                for co in 0..g.filters() {
                    let o = output.at(n, oy, ox, co);
                    z[o] = b[co];
                    for ky in 0..g.kernel_h() {
                        let Some(iy) = input_position(oy, ky, g.pad_top(), input.height()) else {
                            continue; // a row of zeros: adds nothing
                        };
                        for kx in 0..g.kernel_w() {
                            let Some(ix) = input_position(ox, kx, g.pad_left(), input.width()) else {
                                continue; // a column of zeros
                            };
                            for ci in 0..input.channels() {
                                let i = input.at(n, iy, ix, ci);
                                let k = g.w_at(ky, kx, ci, co);
                                z[o] += x[i] * w[k];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The backward pass of a convolution, from `dz` (the gradient of its output):
/// the same loops as [`conv2d_forward`], and beside each forward line, its
/// backward lines.
///
/// ```text
/// db[co]          += Σ_n Σ_oy Σ_ox dz[n,oy,ox,co]
/// dW[ky,kx,ci,co] += Σ_n Σ_oy Σ_ox x[n,iy,ix,ci] · dz[n,oy,ox,co]     (iy = oy+ky-pad_top, ...)
/// dx[n,iy,ix,ci]  += Σ_oy Σ_ox Σ_co W[ky,kx,ci,co] · dz[n,oy,ox,co]   (for the ky = iy-oy+pad_top, ...
///                                                                    that lie in the filter)
/// ```
///
/// A weight is used at every position of every image, so its gradient sums
/// over the batch and the positions; an input pixel is seen by up to
/// `kh · kw` positions of every filter, so its gradient sums their shares. The
/// padding is zeros, not inputs: the gradient that reaches it is dropped.
///
/// - `dx`: (batch, height, width, c_in), or `None` for the first layer (the
///   gradient of the data, which nothing needs); `dw`: (kh, kw, c_in, c_out);
///   `db`: (c_out) — all accumulated into (`+=`), zeroed by the caller
/// - `dz`: (batch, out_height, out_width, c_out)
/// - `x`: (batch, height, width, c_in), the layer's input; `w`: (kh, kw, c_in, c_out)
pub fn conv2d_backward(
    mut dx: Option<&mut [f64]>,
    dw: &mut [f64],
    db: &mut [f64],
    dz: &[f64],
    x: &[f64],
    w: &[f64],
    g: &Conv2dGeometry,
) {
    let (input, output) = (g.input(), g.output());
    assert_eq!(x.len(), input.len(), "x must be {input}");
    assert_eq!(dz.len(), output.len(), "dz must be {output}");
    assert_eq!(w.len(), g.weight_len(), "w must be (kh, kw, c_in, c_out)");
    assert_eq!(dw.len(), g.weight_len(), "dw must be (kh, kw, c_in, c_out)");
    assert_eq!(db.len(), g.filters(), "db must be (c_out)");
    if let Some(dx) = dx.as_deref() {
        assert_eq!(dx.len(), input.len(), "dx must be {input}");
    }
    for n in 0..input.batch() {
        for oy in 0..output.height() {
            for ox in 0..output.width() {
                for co in 0..g.filters() {
                    let o = output.at(n, oy, ox, co);
                    // forward: z[o] = b[co]            ->  db[co] += dz[o]
                    db[co] += dz[o];
                    for ky in 0..g.kernel_h() {
                        let Some(iy) = input_position(oy, ky, g.pad_top(), input.height()) else {
                            continue; // padding: no input, no gradient
                        };
                        for kx in 0..g.kernel_w() {
                            let Some(ix) = input_position(ox, kx, g.pad_left(), input.width()) else {
                                continue;
                            };
                            for ci in 0..input.channels() {
                                let i = input.at(n, iy, ix, ci);
                                let k = g.w_at(ky, kx, ci, co);
                                // forward: z[o] += x[i] · W[k]  ->  dW[k] += x[i] · dz[o]
                                dw[k] += x[i] * dz[o];
                                //                                   dx[i] += W[k] · dz[o]
                                if let Some(dx) = dx.as_deref_mut() {
                                    dx[i] += w[k] * dz[o];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
