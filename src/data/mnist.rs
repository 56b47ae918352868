//! The MNIST data set: 60,000 training and 10,000 test images of 28x28 pixels.

use std::path::{Path, PathBuf};

use super::dataset::{first_bad_label, Dataset};
use super::idx;
use super::NUM_CLASSES;
use crate::error::{Error, Result};

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
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

/// Both halves of MNIST.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
}

impl Mnist {
    /// Loads the four standard files from `dir` (see [`load_split`]). All four
    /// headers are read and checked first: the two splits' images must have
    /// the same size (the error names both files), and each label file as
    /// many labels as its image file has images; then the bodies are read,
    /// both splits in parallel.
    pub fn load(dir: &Path) -> Result<Mnist> {
        let train = SplitFiles::open(dir, Split::Train)?;
        let test = SplitFiles::open(dir, Split::Test)?;
        check_same_size(&train.images, &test.images)?;
        let (train, test) = rayon::join(|| train.read(), || test.read());
        Ok(Mnist {
            train: train?,
            test: test?,
        })
    }
}

/// Fails unless the images of the two files have the same size; the error names both.
fn check_same_size(train: &idx::ImageFile, test: &idx::ImageFile) -> Result<()> {
    if (train.rows(), train.cols()) == (test.rows(), test.cols()) {
        return Ok(());
    }
    Err(Error::BadData {
        path: test.path().to_path_buf(),
        problem: format!(
            "its images are {}x{} but the training images in '{}' are {}x{}: the training and test images must have the same size (use files from the same data set)",
            test.rows(),
            test.cols(),
            train.path().display(),
            train.rows(),
            train.cols()
        ),
    })
}

/// The two files of a split with their headers read and checked against each other.
struct SplitFiles {
    images: idx::ImageFile,
    labels: idx::LabelFile,
}

impl SplitFiles {
    /// Opens both files of `split` in `dir`, reads their headers, and checks
    /// that there is one label per image (before any body is read).
    fn open(dir: &Path, split: Split) -> Result<SplitFiles> {
        let (img_name, lbl_name) = split.file_names();
        let images = idx::open_images(&locate(dir, img_name)?)?;
        let labels = idx::open_labels(&locate(dir, lbl_name)?)?;
        if labels.count() != images.count() {
            return Err(Error::BadData {
                path: labels.path().to_path_buf(),
                problem: format!(
                    "it has {} labels but '{}' has {} images: the two files must have one label per image",
                    labels.count(),
                    images.path().display(),
                    images.count()
                ),
            });
        }
        Ok(SplitFiles { images, labels })
    }

    /// Reads both bodies and checks every label.
    fn read(self) -> Result<Dataset> {
        let lbl_path = self.labels.path().to_path_buf();
        let (_, r, c, pixels) = self.images.read()?;
        let labels = self.labels.read()?;
        if let Some((i, bad)) = first_bad_label(&labels) {
            return Err(Error::BadData {
                path: lbl_path,
                problem: format!("label {bad} at index {i} is out of range 0..{NUM_CLASSES}"),
            });
        }
        Dataset::new(pixels, labels, r, c)
    }
}

/// Loads one split from `dir`: the standard file names of [`Split::file_names`], gzipped or
/// raw; if a `.gz` file is absent, the same name without `.gz` is used instead. Checks the
/// files (see [`idx`]), that there are as many labels as images (from the headers, before
/// reading the bodies) and that every label is < 10.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    SplitFiles::open(dir, split)?.read()
}

/// Loads both splits from `dir` as [`Mnist::load`] does: `(train, test)`.
pub fn load_both(dir: &Path) -> Result<(Dataset, Dataset)> {
    Mnist::load(dir).map(|m| (m.train, m.test))
}

/// `dir/name`, or `dir/name` without its `.gz` if only that is present. Anything
/// present counts, even a symbolic link whose target is missing: that is an
/// error naming the link and its target, not a missing `.gz`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let present = |p: &Path| p.symlink_metadata().is_ok();
    let chosen = match name.strip_suffix(".gz").map(|raw| dir.join(raw)) {
        Some(raw) if !present(&path) && present(&raw) => raw,
        _ => path,
    };
    if !present(&chosen) {
        return Err(Error::Invalid(missing_data(dir, name)));
    }
    if chosen
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
        && !chosen.exists()
    {
        let target = std::fs::read_link(&chosen)
            .map(|t| format!("'{}'", t.display()))
            .unwrap_or_else(|_| "a target".into());
        return Err(Error::Invalid(format!(
            "cannot open '{}': it is a symbolic link to {target}, which does not exist (fix or remove the link, or point --data at a folder with the four MNIST files)",
            chosen.display()
        )));
    }
    Ok(chosen)
}

/// Where the MNIST files can be downloaded (the names as in [`Split::file_names`]).
pub const DOWNLOAD_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// The message for a missing MNIST file `name` in `dir`: which of the four
/// files are missing, where to get them, and how to point `--data` at them.
fn missing_data(dir: &Path, name: &str) -> String {
    let all = [Split::Train.file_names(), Split::Test.file_names()];
    let all = [all[0].0, all[0].1, all[1].0, all[1].1];
    let here = |n: &str| {
        let raw = n.strip_suffix(".gz").unwrap_or(n);
        dir.join(n).symlink_metadata().is_ok() || dir.join(raw).symlink_metadata().is_ok()
    };
    let missing: Vec<&str> = all.iter().copied().filter(|n| !here(n)).collect();
    let where_ = if !dir.is_dir() {
        format!("the folder '{}' does not exist", dir.display())
    } else if missing.len() == all.len() {
        format!("the folder '{}' has none of the four MNIST files", dir.display())
    } else {
        format!("'{}' lacks {}", dir.display(), missing.join(", "))
    };
    format!(
        "cannot open '{}': no such file ({where_}). simdnet trains on the four MNIST files {} (gzipped or not): \
         download them from {DOWNLOAD_URL} (or copy the data/ folder of the simdnet repository, checked by its SHA256SUMS) \
         into one folder and pass --data DIR",
        dir.join(name).display(),
        all.join(", ")
    )
}
