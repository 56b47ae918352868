//! A labelled data set: examples of equal width, each with a class label.

use super::NUM_CLASSES;
use crate::error::{Error, Result};
use crate::matrix::MatRef;

/// Labelled images, stored as raw `u8` pixels: `(len, rows * cols)` row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    image_rows: usize,
    image_cols: usize,
}

impl Dataset {
    /// Builds a data set from `labels.len() * image_rows * image_cols` pixels (image-major,
    /// then row-major) and labels; checks that the sizes agree and every label is < 10.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, image_rows: usize, image_cols: usize) -> Result<Dataset> {
        let expected = labels
            .len()
            .checked_mul(image_rows)
            .and_then(|p| p.checked_mul(image_cols));
        if expected != Some(pixels.len()) {
            return Err(Error::Invalid(format!(
                "{} pixels do not make {} images of {image_rows}x{image_cols}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some((i, bad)) = first_bad_label(&labels) {
            return Err(Error::Invalid(format!(
                "label {bad} at index {i} is out of range 0..{NUM_CLASSES}"
            )));
        }
        Ok(Dataset {
            pixels,
            labels,
            image_rows,
            image_cols,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixel rows per image (28 for MNIST).
    pub fn image_rows(&self) -> usize {
        self.image_rows
    }
    /// Pixel columns per image (28 for MNIST).
    pub fn image_cols(&self) -> usize {
        self.image_cols
    }
    /// Pixels per flattened image (784 for MNIST).
    pub fn features(&self) -> usize {
        self.image_rows * self.image_cols
    }
    /// All images as a `(len, features)` matrix of raw pixels.
    pub fn images(&self) -> MatRef<'_, u8> {
        MatRef::from_slice(&self.pixels, self.len(), self.features())
    }
    /// All pixels, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }
    /// Image `i`, flattened to `features()` pixels. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.features()..(i + 1) * self.features()]
    }
    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
    /// The first `n` images (or all, if fewer): handy for quick experiments.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            image_rows: self.image_rows,
            image_cols: self.image_cols,
        }
    }
    /// Splits off the last `fraction` (0 < fraction < 1) of the images as a
    /// validation set, as Keras' `validation_split` does (before any
    /// shuffle; the first `floor(len * (1 - fraction))` images train):
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
        let f = self.features();
        let part = |r: std::ops::Range<usize>| Dataset {
            pixels: self.pixels[r.start * f..r.end * f].to_vec(),
            labels: self.labels[r].to_vec(),
            image_rows: self.image_rows,
            image_cols: self.image_cols,
        };
        Ok((part(0..n), part(n..self.len())))
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
