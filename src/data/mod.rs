//! The data: IDX files (gzipped or raw) and the MNIST data set.
//!
//! Images stay `u8` in memory, each stored flattened (28x28 row-major = 784
//! bytes). The engine never makes a scaled copy: the `1/255` scale
//! (`PIXEL_SCALE` in `nn`) is applied as the GEMM packs the pixels.
//! [`scale_pixels`] (and `teach::loss::one_hot`) are the workshop's explicit steps, for
//! showing them (`simdnet inspect`).
//!
//! Your own pictures: [`image`] reads a PNG ([`png`]) or PGM ([`pgm`]) with
//! bounded memory, and [`digitize`] makes it a 28x28 digit the way MNIST's were made.

pub mod cache;
pub mod dataset;
pub mod digitize;
pub mod idx;
pub mod image;
pub mod mnist;
pub mod pgm;
pub mod png;

pub use dataset::{Dataset, Input};
pub use mnist::{Mnist, Split};

/// The number of classes in MNIST (digits 0-9).
pub const NUM_CLASSES: usize = 10;

/// Scales raw pixels 0..=255 to 0.0..=1.0 (`x / 255`).
pub fn scale_pixels(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 255.0).collect()
}
