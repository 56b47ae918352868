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

use std::fmt;

use crate::error::{Error, Result};

/// The shape of a batch of images: (batch, height, width, channels), row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
}

impl ImageShape {
    /// A checked shape: every size must be at least 1.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the shape when a size is 0.
    pub fn new(batch: usize, height: usize, width: usize, channels: usize) -> Result<ImageShape> {
        let shape = ImageShape {
            batch,
            height,
            width,
            channels,
        };
        if batch == 0 || height == 0 || width == 0 || channels == 0 {
            return Err(Error::Invalid(format!(
                "image shape {shape} (batch x height x width x channels) has a size 0: \
                 every size must be at least 1"
            )));
        }
        let count = [height, width, channels]
            .iter()
            .try_fold(batch, |n, &size| n.checked_mul(size));
        if count.is_none_or(|n| n > isize::MAX as usize / std::mem::size_of::<f64>()) {
            return Err(Error::Invalid(format!(
                "image shape {shape} (batch x height x width x channels) holds more numbers than \
                 memory can: use smaller images or a smaller batch"
            )));
        }
        Ok(shape)
    }

    /// The number of images.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The rows of each image.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The columns of each image.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The numbers per pixel (1 for grey MNIST, 3 for colour, the filters after a convolution).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The numbers in the whole batch: `batch · height · width · channels`.
    pub fn len(&self) -> usize {
        self.batch * self.height * self.width * self.channels
    }

    /// Never true: a checked shape has no size 0 (here because `len` asks for it).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numbers in one image: `height · width · channels` (the row length after flatten).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Where pixel `(y, x)`, channel `c` of image `n` is in the buffer:
    /// `((n·height + y)·width + x)·channels + c`.
    pub fn at(&self, n: usize, y: usize, x: usize, c: usize) -> usize {
        ((n * self.height + y) * self.width + x) * self.channels + c
    }
}

/// `2x28x28x1`: batch x height x width x channels.
impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{}x{}",
            self.batch, self.height, self.width, self.channels
        )
    }
}

/// How a convolution treats the border of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: only the positions where the whole filter is inside the image;
    /// the output is `in - k + 1` high and wide.
    Valid,
    /// Zeros around the image so that the output is as high and wide as the input:
    /// `(k - 1) / 2` rows on top, the rest (one more, for an even kernel) at the
    /// bottom; the same for the columns, the extra one on the right.
    Same,
}

/// `valid` or `same`, as Keras spells them.
impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        })
    }
}

/// Everything about the shapes of one convolution (stride 1): the input, the
/// filter, the padding on each side and the output. Made only by
/// [`Conv2dGeometry::new`], which refuses impossible shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    input: ImageShape,
    kernel_h: usize,
    kernel_w: usize,
    filters: usize,
    padding: Padding,
    pad_top: usize,
    pad_bottom: usize,
    pad_left: usize,
    pad_right: usize,
    output: ImageShape,
}

impl Conv2dGeometry {
    /// The geometry of a `kernel_h x kernel_w` convolution with `filters`
    /// output channels over images of shape `input`.
    ///
    /// ```text
    /// padding  total    top / left     bottom / right      out_height
    /// valid    0        0              0                   height - kh + 1
    /// same     kh - 1   (kh - 1) / 2   kh - 1 - top        height
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`], stating the shapes, when the kernel or `filters` has
    /// a size 0, or when the kernel is larger than the (padded) image.
    pub fn new(
        input: ImageShape,
        kernel_h: usize,
        kernel_w: usize,
        filters: usize,
        padding: Padding,
    ) -> Result<Conv2dGeometry> {
        if kernel_h == 0 || kernel_w == 0 || filters == 0 {
            return Err(Error::Invalid(format!(
                "conv2d: a {kernel_h}x{kernel_w} kernel with {filters} filters has a size 0 \
                 (input {input}): the kernel height, width and the filters must be at least 1"
            )));
        }
        let weights = [kernel_w, input.channels, filters]
            .iter()
            .try_fold(kernel_h, |n, &s| n.checked_mul(s));
        if weights.is_none_or(|n| n > isize::MAX as usize / std::mem::size_of::<f64>()) {
            return Err(Error::Invalid(format!(
                "conv2d: a {kernel_h}x{kernel_w} kernel with {filters} filters on input {input} has \
                 more weights than memory can hold: use a smaller kernel or fewer filters"
            )));
        }
        // (kernel and image both fit in memory, so kernel - 1 + size cannot overflow)
        let (pad_top, pad_bottom, pad_left, pad_right) = match padding {
            Padding::Valid => (0, 0, 0, 0),
            Padding::Same => (
                (kernel_h - 1) / 2,
                kernel_h - 1 - (kernel_h - 1) / 2,
                (kernel_w - 1) / 2,
                kernel_w - 1 - (kernel_w - 1) / 2,
            ),
        };
        let padded_h = pad_top + input.height + pad_bottom;
        let padded_w = pad_left + input.width + pad_right;
        if kernel_h > padded_h || kernel_w > padded_w {
            return Err(Error::Invalid(format!(
                "conv2d: a {kernel_h}x{kernel_w} kernel does not fit in the {}x{} images of input {input} \
                 with padding {padding} (the output would be {}x{}): use a kernel of at most {}x{}, \
                 or padding same",
                input.height,
                input.width,
                padded_h as i64 - kernel_h as i64 + 1,
                padded_w as i64 - kernel_w as i64 + 1,
                padded_h,
                padded_w,
            )));
        }
        let output = ImageShape {
            batch: input.batch,
            height: padded_h - kernel_h + 1,
            width: padded_w - kernel_w + 1,
            channels: filters,
        };
        Ok(Conv2dGeometry {
            input,
            kernel_h,
            kernel_w,
            filters,
            padding,
            pad_top,
            pad_bottom,
            pad_left,
            pad_right,
            output,
        })
    }

    /// The shape of `x`.
    pub fn input(&self) -> ImageShape {
        self.input
    }

    /// The shape of `z`: (batch, out_height, out_width, filters).
    pub fn output(&self) -> ImageShape {
        self.output
    }

    /// The filter's rows `kh`.
    pub fn kernel_h(&self) -> usize {
        self.kernel_h
    }

    /// The filter's columns `kw`.
    pub fn kernel_w(&self) -> usize {
        self.kernel_w
    }

    /// The output channels `c_out` (one filter each).
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// The padding mode.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// Rows of zeros above the image.
    pub fn pad_top(&self) -> usize {
        self.pad_top
    }

    /// Rows of zeros below the image (one more than `pad_top` for an even `same` kernel).
    pub fn pad_bottom(&self) -> usize {
        self.pad_bottom
    }

    /// Columns of zeros left of the image.
    pub fn pad_left(&self) -> usize {
        self.pad_left
    }

    /// Columns of zeros right of the image (one more than `pad_left` for an even `same` kernel).
    pub fn pad_right(&self) -> usize {
        self.pad_right
    }

    /// The number of weights: `kh · kw · c_in · c_out` (and `c_out` biases).
    pub fn weight_len(&self) -> usize {
        self.kernel_h * self.kernel_w * self.input.channels * self.filters
    }

    /// Where `W[ky, kx, ci, co]` is in the weight buffer: `((ky·kw + kx)·c_in + ci)·c_out + co`.
    pub fn w_at(&self, ky: usize, kx: usize, ci: usize, co: usize) -> usize {
        ((ky * self.kernel_w + kx) * self.input.channels + ci) * self.filters + co
    }
}

/// The input row (or column) that filter row `k` sees from output row `o`:
/// `o + k - pad`, or `None` when that falls in the padding (above or below the
/// image of `size` rows).
pub fn input_position(o: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
    let padded = o + k; // the row in the padded image
    if padded < pad || padded - pad >= size {
        None
    } else {
        Some(padded - pad)
    }
}

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
    let (input, output) = (g.input, g.output);
    assert_eq!(x.len(), input.len(), "x must be {input}");
    assert_eq!(z.len(), output.len(), "z must be {output}");
    assert_eq!(w.len(), g.weight_len(), "w must be (kh, kw, c_in, c_out)");
    assert_eq!(b.len(), g.filters, "b must be (c_out)");
    for n in 0..input.batch {
        for oy in 0..output.height {
            for ox in 0..output.width {
                for co in 0..g.filters {
                    let o = output.at(n, oy, ox, co);
                    z[o] = b[co];
                    for ky in 0..g.kernel_h {
                        let Some(iy) = input_position(oy, ky, g.pad_top, input.height) else {
                            continue; // a row of zeros: adds nothing
                        };
                        for kx in 0..g.kernel_w {
                            let Some(ix) = input_position(ox, kx, g.pad_left, input.width) else {
                                continue; // a column of zeros
                            };
                            for ci in 0..input.channels {
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
    let (input, output) = (g.input, g.output);
    assert_eq!(x.len(), input.len(), "x must be {input}");
    assert_eq!(dz.len(), output.len(), "dz must be {output}");
    assert_eq!(w.len(), g.weight_len(), "w must be (kh, kw, c_in, c_out)");
    assert_eq!(dw.len(), g.weight_len(), "dw must be (kh, kw, c_in, c_out)");
    assert_eq!(db.len(), g.filters, "db must be (c_out)");
    if let Some(dx) = dx.as_deref() {
        assert_eq!(dx.len(), input.len(), "dx must be {input}");
    }
    for n in 0..input.batch {
        for oy in 0..output.height {
            for ox in 0..output.width {
                for co in 0..g.filters {
                    let o = output.at(n, oy, ox, co);
                    // forward: z[o] = b[co]            ->  db[co] += dz[o]
                    db[co] += dz[o];
                    for ky in 0..g.kernel_h {
                        let Some(iy) = input_position(oy, ky, g.pad_top, input.height) else {
                            continue; // padding: no input, no gradient
                        };
                        for kx in 0..g.kernel_w {
                            let Some(ix) = input_position(ox, kx, g.pad_left, input.width) else {
                                continue;
                            };
                            for ci in 0..input.channels {
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
