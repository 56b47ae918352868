//! A picture read from a file: the decoded samples of a PNG or PGM, and the
//! one function that reads either, chosen by the file's magic bytes.
//!
//! Memory is bounded before anything is decoded: the file is read up to
//! [`MAX_FILE_BYTES`], and the readers check the dimensions their header
//! states against [`MAX_SIDE`] and [`MAX_PIXELS`] before they allocate or
//! inflate a single row.

use std::path::Path;

use super::{pgm, png};
use crate::error::{Error, Result};
use crate::safe_read::{self, NotRegular};

/// The largest width or height accepted (pixels).
pub const MAX_SIDE: usize = 16_384;
/// The largest number of pixels accepted (40 megapixels: at most 160 MB of RGBA samples).
pub const MAX_PIXELS: usize = 40_000_000;
/// The largest image file read (256 MiB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// What each pixel of an [`Image`] holds, in the order its samples are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    /// One sample: grey level.
    Grey,
    /// Two samples: grey level, alpha (opacity).
    GreyAlpha,
    /// Three samples: red, green, blue.
    Rgb,
    /// Four samples: red, green, blue, alpha.
    Rgba,
}

impl Channels {
    /// Samples per pixel.
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::GreyAlpha => 2,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }

    /// A short name for messages ("RGB", "greyscale+alpha", ...).
    pub fn name(self) -> &'static str {
        match self {
            Channels::Grey => "greyscale",
            Channels::GreyAlpha => "greyscale+alpha",
            Channels::Rgb => "RGB",
            Channels::Rgba => "RGBA",
        }
    }
}

/// A decoded picture: 8-bit samples, row-major, `channels.count()` per pixel.
///
/// Lower bit depths and palettes are already expanded: a palette image
/// becomes RGB (RGBA when it has transparency), a 1-, 2- or 4-bit grey level
/// is scaled to 0..=255.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row (at least 1).
    pub width: usize,
    /// Rows (at least 1).
    pub height: usize,
    /// What each pixel holds.
    pub channels: Channels,
    /// `width * height * channels.count()` samples.
    pub samples: Vec<u8>,
}

/// Checks a header's dimensions against the caps; returns the pixel count.
///
/// The readers call it before allocating anything that depends on the
/// dimensions, so a header that lies cannot make them use more memory.
pub fn check_dimensions(width: u64, height: u64) -> std::result::Result<usize, String> {
    if width == 0 || height == 0 {
        return Err(format!(
            "its header says {width}x{height} pixels: an image needs at least one pixel"
        ));
    }
    if width > MAX_SIDE as u64 || height > MAX_SIDE as u64 || width * height > MAX_PIXELS as u64 {
        return Err(format!(
            "its header says {width}x{height} pixels, more than simdnet reads \
             (at most {MAX_SIDE} pixels a side and {MAX_PIXELS} in all); scale it down first"
        ));
    }
    Ok((width * height) as usize)
}

/// The file formats [`load`] recognises, by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PNG: `89 50 4E 47 0D 0A 1A 0A`.
    Png,
    /// Netpbm greymap, `P2` (text) or `P5` (binary).
    Pgm,
}

/// Which format `bytes` start like, if any.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&png::SIGNATURE) {
        Some(Format::Png)
    } else if bytes.starts_with(b"P2") || bytes.starts_with(b"P5") {
        Some(Format::Pgm)
    } else {
        None
    }
}

/// Decodes a PNG or PGM held in memory; the error is the problem, in words.
pub fn decode(bytes: &[u8]) -> std::result::Result<Image, String> {
    match sniff(bytes) {
        Some(Format::Png) => png::decode(bytes),
        Some(Format::Pgm) => pgm::decode(bytes),
        None if bytes.is_empty() => Err("the file is empty".into()),
        None => Err(
            "it is neither a PNG nor a PGM (P2/P5) image: its first bytes are not a PNG signature or 'P2'/'P5'; \
             save the picture as PNG"
                .into(),
        ),
    }
}

/// Reads and decodes the PNG or PGM at `path` (the format is chosen by its
/// magic bytes, not its name). Every failure names the file and the problem.
pub fn load(path: &Path) -> Result<Image> {
    let io_err = |action: &'static str, e| Error::Io {
        path: path.to_path_buf(),
        action,
        source: e,
    };
    let (file, len) = safe_read::open_regular(
        path,
        |e| io_err("open the image", e),
        |kind| {
            let fix = match kind {
                NotRegular::Folder => "give the image file's path",
                NotRegular::Special => "save the picture to a file first",
            };
            bad(path, &format!("it is {kind}; {fix}"))
        },
    )?;
    if len > MAX_FILE_BYTES {
        return Err(bad(path, &too_large()));
    }
    let mut bytes = Vec::new();
    if !safe_read::read_at_most(file, MAX_FILE_BYTES, &mut bytes).map_err(|e| io_err("read the image", e))? {
        return Err(bad(path, &too_large()));
    }
    decode(&bytes).map_err(|problem| bad(path, &problem))
}

fn too_large() -> String {
    format!(
        "the file is larger than {} MiB; scale the picture down first",
        MAX_FILE_BYTES >> 20
    )
}

/// The error for an unusable image file.
fn bad(path: &Path, problem: &str) -> Error {
    Error::Invalid(format!("'{}' is not a usable image: {problem}", path.display()))
}
