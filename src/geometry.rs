//! The shapes of images and of the layers that read them: a batch of images
//! (batch, height, width, channels) kept row-major ("NHWC"), a convolution's
//! geometry (kernel, padding, output) and a 2x2 max-pooling's.
//!
//! Floor 1, because every floor above needs the same rules: the GEMM packs a
//! convolution's input straight from the image ([`crate::gemm`]'s `Im2col`),
//! the engine's layers ([`crate::nn`]) and the lessons ([`crate::teach`],
//! lessons 9 and 10, which explain them) all read these shapes. Only shapes
//! live here, no arithmetic on the numbers.

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

/// The shapes of a 2x2, stride-2 max-pooling over images of a given shape.
/// Made only by [`Pool2dGeometry::new`], which refuses images smaller than 2x2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    input: ImageShape,
    output: ImageShape,
}

impl Pool2dGeometry {
    /// The tile: 2x2.
    pub const SIZE: usize = 2;

    /// The geometry of a 2x2 max-pooling of `input`: the output is
    /// (batch, height / 2, width / 2, channels), rounded down.
    ///
    /// # Errors
    /// [`Error::Invalid`], stating the shape, when the images are less than 2
    /// high or wide (the output would have no pixel).
    pub fn new(input: ImageShape) -> Result<Pool2dGeometry> {
        let (out_h, out_w) = (input.height() / Self::SIZE, input.width() / Self::SIZE);
        if out_h == 0 || out_w == 0 {
            return Err(Error::Invalid(format!(
                "max-pool 2x2: the {}x{} images of input {input} are too small (the output would be \
                 {out_h}x{out_w}): pooling needs images of at least 2x2; remove this pooling layer \
                 or give it a larger input (less valid padding, or fewer poolings before it)",
                input.height(),
                input.width(),
            )));
        }
        let output = ImageShape::new(input.batch(), out_h, out_w, input.channels())?;
        Ok(Pool2dGeometry { input, output })
    }

    /// The shape of `x`.
    pub fn input(&self) -> ImageShape {
        self.input
    }

    /// The shape of `a`: (batch, height / 2, width / 2, channels), rounded down.
    pub fn output(&self) -> ImageShape {
        self.output
    }
}
