//! A labelled data set: examples of equal width, each with a class label.

use super::NUM_CLASSES;
use crate::error::{Error, Result};
use crate::matrix::MatRef;

/// A labelled data set: `len()` examples of `features()` numbers each, and
/// one class label (`0..=255`) per example.
///
/// The features are either **pixels** (`u8`, e.g. MNIST's images; the
/// network scales them by its [`input_scale`], `1/255` by default, as the
/// GEMM packs them, so no scaled copy is ever made) or **values** (`f32`,
/// e.g. a table of measurements; used as they are). The scale is part of the
/// type: [`Dataset::input`] hands the features to the engine as an
/// [`Input`], and nothing asks the caller for a scale.
///
/// [`input_scale`]: crate::nn::Network::input_scale
///
/// ```
/// use simdnet::data::{Dataset, Input};
/// // Three examples of two values each, in two classes.
/// let table = Dataset::from_values(vec![0.1, 0.2, 0.9, 0.8, 0.2, 0.1], vec![0, 1, 0], 2)?;
/// assert_eq!((table.len(), table.features(), table.classes()), (3, 2, 2));
/// assert!(matches!(table.input(), Input::Values(_)));
///
/// // Two 2x3 images of u8 pixels, labelled with digits.
/// let images = Dataset::new(vec![0, 255, 0, 0, 255, 0, 9, 9, 9, 0, 0, 0], vec![1, 7], 2, 3)?;
/// assert_eq!(images.image(1), &[9, 9, 9, 0, 0, 0]);
/// # Ok::<(), simdnet::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dataset {
    features: Features,
    labels: Vec<u8>,
    image_rows: usize,
    image_cols: usize,
}

/// The stored features: one row of `features()` numbers per example.
#[derive(Clone, Debug)]
enum Features {
    Pixels(Vec<u8>),
    Values(Vec<f32>),
}

/// The examples of a data set (or any batch) as the engine reads them: the
/// element type says how they are scaled, so no caller passes a scale.
///
/// A `MatRef<u8>` or a `&Dataset` converts into an `Input` with `into()`,
/// and so does a `MatRef<f32>`: [`Network::predict`](crate::nn::Network::predict)
/// takes any of them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// Raw pixels `0..=255`, one example per row; the network scales them by
    /// its [`input_scale`](crate::nn::Network::input_scale) (`1/255` unless
    /// set otherwise, and saved with the model).
    Pixels(MatRef<'a, u8>),
    /// Values used as they are (scale 1), one example per row.
    Values(MatRef<'a, f32>),
}

impl<'a> Input<'a> {
    /// Number of examples (rows).
    pub fn rows(&self) -> usize {
        match self {
            Input::Pixels(x) => x.rows(),
            Input::Values(x) => x.rows(),
        }
    }
    /// Features per example (columns).
    pub fn cols(&self) -> usize {
        match self {
            Input::Pixels(x) => x.cols(),
            Input::Values(x) => x.cols(),
        }
    }
}

impl<'a> From<MatRef<'a, u8>> for Input<'a> {
    fn from(x: MatRef<'a, u8>) -> Input<'a> {
        Input::Pixels(x)
    }
}

impl<'a> From<MatRef<'a, f32>> for Input<'a> {
    fn from(x: MatRef<'a, f32>) -> Input<'a> {
        Input::Values(x)
    }
}

impl<'a> From<&'a Dataset> for Input<'a> {
    fn from(data: &'a Dataset) -> Input<'a> {
        data.input()
    }
}

impl<'a> From<&'a crate::matrix::Matrix> for Input<'a> {
    fn from(x: &'a crate::matrix::Matrix) -> Input<'a> {
        Input::Values(x.view())
    }
}

impl Dataset {
    /// Builds a data set of images from `labels.len() * image_rows * image_cols` pixels (image-major,
    /// then row-major) and labels; checks that the sizes agree and every label is < 10
    /// (a digit: for other classes use [`Dataset::from_pixels`]).
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, image_rows: usize, image_cols: usize) -> Result<Dataset> {
        let data = Dataset::shaped(Features::Pixels(pixels), labels, image_rows, image_cols)?;
        if let Some((i, bad)) = first_bad_label(&data.labels) {
            return Err(Error::Invalid(format!(
                "label {bad} at index {i} is out of range 0..{NUM_CLASSES}"
            )));
        }
        Ok(data)
    }

    /// A data set of `labels.len()` examples of `width` pixels each (`u8`,
    /// scaled by the network's input scale), with any labels `0..=255`.
    pub fn from_pixels(pixels: Vec<u8>, labels: Vec<u8>, width: usize) -> Result<Dataset> {
        Dataset::shaped(Features::Pixels(pixels), labels, 1, width)
    }

    /// A data set of `labels.len()` examples of `width` values each (`f32`,
    /// row-major: example `i` is `values[i * width..(i + 1) * width]`, used
    /// as they are), with any labels `0..=255` (a network for it needs at
    /// least [`classes`](Self::classes) outputs). Fails if the sizes do not
    /// agree or a value is not finite (NaN or infinity), naming it.
    pub fn from_values(values: Vec<f32>, labels: Vec<u8>, width: usize) -> Result<Dataset> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let w = width.max(1);
            return Err(Error::Invalid(format!(
                "value {} (example {}, feature {}) is {}: every feature must be a finite number (drop or fill in that example)",
                i,
                i / w,
                i % w,
                values[i]
            )));
        }
        Dataset::shaped(Features::Values(values), labels, 1, width)
    }

    /// Checks that `features` holds `labels.len() * rows * cols` numbers.
    fn shaped(features: Features, labels: Vec<u8>, image_rows: usize, image_cols: usize) -> Result<Dataset> {
        let (have, what) = match &features {
            Features::Pixels(p) => (p.len(), "pixels"),
            Features::Values(v) => (v.len(), "values"),
        };
        let expected = labels
            .len()
            .checked_mul(image_rows)
            .and_then(|p| p.checked_mul(image_cols));
        if expected != Some(have) {
            return Err(Error::Invalid(if image_rows == 1 {
                format!(
                    "{have} {what} do not make {} examples of {image_cols} features (give one label per example and {image_cols} {what} per label)",
                    labels.len()
                )
            } else {
                format!(
                    "{have} {what} do not make {} images of {image_rows}x{image_cols}",
                    labels.len()
                )
            }));
        }
        Ok(Dataset {
            features,
            labels,
            image_rows,
            image_cols,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixel rows per image (28 for MNIST; 1 for a table).
    pub fn image_rows(&self) -> usize {
        self.image_rows
    }
    /// Pixel columns per image (28 for MNIST; the width of a table).
    pub fn image_cols(&self) -> usize {
        self.image_cols
    }
    /// Numbers per example (784 for MNIST).
    pub fn features(&self) -> usize {
        self.image_rows * self.image_cols
    }
    /// The number of classes the labels need: the largest label plus one (0 if empty).
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&l| l as usize + 1)
    }
    /// All examples as the engine reads them: `(len, features)`, pixels or values.
    pub fn input(&self) -> Input<'_> {
        match &self.features {
            Features::Pixels(p) => Input::Pixels(MatRef::from_slice(p, self.len(), self.features())),
            Features::Values(v) => Input::Values(MatRef::from_slice(v, self.len(), self.features())),
        }
    }
    /// Whether the features are `u8` pixels (else `f32` values).
    pub fn is_pixels(&self) -> bool {
        matches!(self.features, Features::Pixels(_))
    }
    /// All images as a `(len, features)` matrix of raw pixels.
    ///
    /// # Panics
    /// If the data set holds `f32` values (see [`input`](Self::input), which never panics).
    pub fn images(&self) -> MatRef<'_, u8> {
        MatRef::from_slice(self.pixels(), self.len(), self.features())
    }
    /// All pixels, row-major.
    ///
    /// # Panics
    /// If the data set holds `f32` values (see [`input`](Self::input)).
    pub fn pixels(&self) -> &[u8] {
        match &self.features {
            Features::Pixels(p) => p,
            Features::Values(_) => {
                panic!("Dataset::pixels: this data set holds f32 values, not pixels; use Dataset::input")
            }
        }
    }
    /// Image `i`, flattened to `features()` pixels.
    ///
    /// # Panics
    /// If `i >= len()` or the data set holds `f32` values.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels()[i * self.features()..(i + 1) * self.features()]
    }
    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
    /// Examples `range` as a new data set.
    fn part(&self, r: std::ops::Range<usize>) -> Dataset {
        let f = self.features();
        let features = match &self.features {
            Features::Pixels(p) => Features::Pixels(copy_on_huge_pages(&p[r.start * f..r.end * f])),
            Features::Values(v) => Features::Values(copy_on_huge_pages(&v[r.start * f..r.end * f])),
        };
        Dataset {
            features,
            labels: self.labels[r].to_vec(),
            image_rows: self.image_rows,
            image_cols: self.image_cols,
        }
    }
    /// The first `n` examples (or all, if fewer): handy for quick experiments.
    pub fn take(&self, n: usize) -> Dataset {
        self.part(0..n.min(self.len()))
    }
    /// Splits off the last `fraction` (0 < fraction < 1) of the examples as a
    /// validation set, as Keras' `validation_split` does (before any
    /// shuffle; the first `floor(len * (1 - fraction))` examples train):
    /// returns `(training, validation)`, both non-empty, or an error.
    pub fn split_tail(&self, fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Invalid(format!(
                "a validation fraction must be between 0 and 1 (exclusive), got {fraction}"
            )));
        }
        let n = (self.len() as f64 * (1.0 - fraction)) as usize;
        if n == 0 || n == self.len() {
            return Err(Error::Invalid(format!(
                "a validation fraction of {fraction} of {} images leaves {} for training and {} for validation; both need at least one (use more images or another fraction)",
                self.len(),
                n,
                self.len() - n
            )));
        }
        Ok((self.part(0..n), self.part(n..self.len())))
    }
}

/// The index and value of the first label that is not a digit 0-9.
pub(crate) fn first_bad_label(labels: &[u8]) -> Option<(usize, u8)> {
    labels
        .iter()
        .copied()
        .enumerate()
        .find(|&(_, l)| l as usize >= NUM_CLASSES)
}

/// A copy of `src` in a buffer that asked for huge pages before it was
/// filled (see [`crate::huge_pages`]): a part of a data set is read in
/// shuffled order like the whole.
fn copy_on_huge_pages<T: Copy>(src: &[T]) -> Vec<T> {
    let mut copy = Vec::with_capacity(src.len());
    crate::huge_pages::advise(&copy);
    copy.extend_from_slice(src);
    copy
}
