//! The MNIST data set: 60,000 training and 10,000 test images of 28x28 pixels.

use std::path::Path;

use super::idx;
use super::NUM_CLASSES;
use crate::error::{Error, Result};
use crate::matrix::MatRef;

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The standard file names `(images, labels)` of this split.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            Split::Test => ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        }
    }
}

/// Labelled images, stored as raw `u8` pixels: `(len, rows * cols)` row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    image_rows: usize,
    image_cols: usize,
}

impl Dataset {
    /// Builds a data set; checks that the sizes agree and labels are < 10.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, image_rows: usize, image_cols: usize) -> Result<Dataset> {
        if pixels.len() != labels.len() * image_rows * image_cols {
            return Err(Error::Invalid(format!(
                "{} pixels do not make {} images of {image_rows}x{image_cols}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= NUM_CLASSES) {
            return Err(Error::Invalid(format!(
                "label {bad} is out of range 0..{NUM_CLASSES}"
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
    /// Image `i`, flattened.
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
}

/// Both halves of MNIST.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
}

impl Mnist {
    /// Loads the four standard files from `dir`.
    pub fn load(dir: &Path) -> Result<Mnist> {
        Ok(Mnist {
            train: load_split(dir, Split::Train)?,
            test: load_split(dir, Split::Test)?,
        })
    }
}

/// Loads one split from `dir`.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    let (img_name, lbl_name) = split.file_names();
    let (n, r, c, pixels) = idx::read_images(&dir.join(img_name))?;
    let labels = idx::read_labels(&dir.join(lbl_name))?;
    if labels.len() != n {
        return Err(Error::BadData {
            path: dir.join(lbl_name),
            problem: format!("{} labels but {n} images in {img_name}", labels.len()),
        });
    }
    Dataset::new(pixels, labels, r, c)
}
