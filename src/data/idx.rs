//! The IDX file format (LeCun's MNIST format), gzipped or raw.
//!
//! Header, big-endian: a magic number `0x0000_08TD` (`T = 08` for `u8`,
//! `D` = number of dimensions), then `D` sizes of 4 bytes, then the data.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Magic number of an image file: u8 data, 3 dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file: u8 data, 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads the whole file, un-gzipping it if it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    };
    let mut raw = Vec::new();
    File::open(path).map_err(io)?.read_to_end(&mut raw).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::BadData {
                path: path.to_path_buf(),
                problem: format!("the gzip stream is corrupt ({e})"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Images: `(count, rows, cols)` and `count * rows * cols` pixels.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gzipped(path)?;
    let dims = header(path, &bytes, IMAGES_MAGIC, 3)?;
    let (n, r, c) = (dims[0], dims[1], dims[2]);
    let body = body(path, &bytes, 16, n * r * c)?;
    Ok((n, r, c, body))
}

/// Labels, one byte each.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzipped(path)?;
    let dims = header(path, &bytes, LABELS_MAGIC, 1)?;
    body(path, &bytes, 8, dims[0])
}

fn header(path: &Path, bytes: &[u8], magic: u32, ndims: usize) -> Result<Vec<usize>> {
    let bad = |problem: String| Error::BadData {
        path: path.to_path_buf(),
        problem,
    };
    let word =
        |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    if bytes.len() < 4 * (1 + ndims) {
        return Err(bad(format!(
            "the file has {} bytes, too short for an IDX header",
            bytes.len()
        )));
    }
    if word(0) != magic {
        return Err(bad(format!(
            "magic number 0x{:08x}, expected 0x{magic:08x}",
            word(0)
        )));
    }
    Ok((1..=ndims).map(|i| word(i) as usize).collect())
}

fn body(path: &Path, bytes: &[u8], offset: usize, len: usize) -> Result<Vec<u8>> {
    if bytes.len() != offset + len {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            problem: format!(
                "the header promises {} bytes but the file has {}",
                offset + len,
                bytes.len()
            ),
        });
    }
    Ok(bytes[offset..].to_vec())
}
