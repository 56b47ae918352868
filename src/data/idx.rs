//! The IDX file format (LeCun's MNIST format), gzipped or raw.
//!
//! | offset | size    | content                                              |
//! |--------|---------|------------------------------------------------------|
//! | 0      | 4       | magic `0x0000_08TD`, big-endian: `T = 08` is `u8` data, `D` the number of dimensions |
//! | 4      | 4 * D   | the `D` sizes, big-endian `u32` (images: count, rows, cols; labels: count) |
//! | 4 + 4D | product | the data, `u8`, row-major (last dimension fastest)    |
//!
//! A file is gzipped if it starts with the gzip magic `1f 8b`, whatever its name.
//! The readers validate everything (magic, sizes, exact length, gzip integrity)
//! and never panic: each failure is an [`Error`] that names the file and the problem.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

/// Magic number of an image file: u8 data, 3 dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file: u8 data, 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate expands at most about 1032:1, so a gzip file of `n` bytes decodes to
/// at most `n * MAX_DEFLATE_RATIO` bytes: the cap on any preallocation.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Buffer size of the file reader.
const BUF_SIZE: usize = 1 << 16;
/// Never preallocate more than this (256 MiB); beyond it the buffer grows as data arrives.
const MAX_PREALLOC: u64 = 1 << 28;

/// Reads the whole file, un-gzipping it if it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let mut input = Input::open(path)?;
    let mut out = Vec::with_capacity(input.size_hint(u64::MAX));
    let res = input.reader.read_to_end(&mut out);
    input.pos += out.len() as u64;
    res.map_err(|e| input.error(e))?;
    Ok(out)
}

/// Images: `(count, rows, cols, pixels)` with `count * rows * cols` pixels,
/// image-major then row-major. All three sizes are at least 1.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let mut input = Input::open(path)?;
    let dims = input.header(IMAGES_MAGIC)?;
    let (n, r, c) = (dims[0], dims[1], dims[2]);
    let pixels = input.body(&dims)?;
    // The sizes are u32 and their product fits in usize (body checked it), so these casts are exact.
    Ok((n as usize, r as usize, c as usize, pixels))
}

/// Labels, one byte each; at least one.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut input = Input::open(path)?;
    let dims = input.header(LABELS_MAGIC)?;
    input.body(&dims)
}

/// What a magic number means, for error messages.
fn describe_magic(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "images: u8, 3 dimensions",
        LABELS_MAGIC => "labels: u8, 1 dimension",
        _ => "unknown",
    }
}

/// The decoded bytes of a file, raw or gunzipped.
enum Reader {
    Raw(BufReader<File>),
    Gzip(Box<MultiGzDecoder<BufReader<File>>>),
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Raw(r) => r.read(buf),
            Reader::Gzip(r) => r.read(buf),
        }
    }
}

/// An open IDX file, positioned at the start of its (decoded) contents.
struct Input {
    path: PathBuf,
    reader: Reader,
    /// Size of the file on disk.
    file_len: u64,
    /// Uncompressed size from the gzip trailer (modulo 2^32), if gzipped.
    gzip_isize: Option<u64>,
    /// Decoded bytes consumed so far.
    pos: u64,
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        let io = |action, source| Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        let mut file = File::open(path).map_err(|e| io("open", e))?;
        let file_len = file.metadata().map_err(|e| io("read", e))?.len();
        let mut magic = [0u8; 2];
        let got = read_full(&mut file, &mut magic).map_err(|e| io("read", e))?;
        let gzipped = got == 2 && magic == GZIP_MAGIC;
        let mut gzip_isize = None;
        if gzipped && file_len >= 18 {
            let mut trailer = [0u8; 4];
            file.seek(SeekFrom::End(-4)).map_err(|e| io("read", e))?;
            file.read_exact(&mut trailer).map_err(|e| io("read", e))?;
            gzip_isize = Some(u32::from_le_bytes(trailer) as u64);
        }
        file.rewind().map_err(|e| io("read", e))?;
        let buffered = BufReader::with_capacity(BUF_SIZE, file);
        let reader = if gzipped {
            Reader::Gzip(Box::new(MultiGzDecoder::new(buffered)))
        } else {
            Reader::Raw(buffered)
        };
        Ok(Input {
            path: path.to_path_buf(),
            reader,
            file_len,
            gzip_isize,
            pos: 0,
        })
    }

    fn gzipped(&self) -> bool {
        matches!(self.reader, Reader::Gzip(_))
    }

    /// The most bytes this file could decode to.
    fn max_decoded_len(&self) -> u64 {
        if self.gzipped() {
            self.file_len.saturating_mul(MAX_DEFLATE_RATIO)
        } else {
            self.file_len
        }
    }

    /// A good initial capacity for the rest of the decoded contents, at most `limit` bytes.
    fn size_hint(&self, limit: u64) -> usize {
        let total = self
            .gzip_isize
            .unwrap_or(self.file_len)
            .min(self.max_decoded_len());
        // MAX_PREALLOC fits in usize, so the cast is exact.
        total.saturating_sub(self.pos).min(limit).min(MAX_PREALLOC) as usize
    }

    fn bad(&self, problem: String) -> Error {
        Error::BadData {
            path: self.path.clone(),
            problem,
        }
    }

    /// Turns a read error into an [`Error`]: in a gzipped file it means corrupt data.
    fn error(&self, e: io::Error) -> Error {
        if !self.gzipped() {
            Error::Io {
                path: self.path.clone(),
                action: "read",
                source: e,
            }
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            self.bad(format!(
                "the gzip stream ends abruptly after {} decoded bytes (the file is truncated)",
                self.pos
            ))
        } else {
            self.bad(format!(
                "the gzip stream is corrupt after {} decoded bytes ({e})",
                self.pos
            ))
        }
    }

    /// Reads up to `buf.len()` bytes, fewer only at the end of the data.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = read_full(&mut self.reader, buf).map_err(|e| self.error(e))?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads and checks the header: magic `expected`, then its dimensions, each at least 1.
    fn header(&mut self, expected: u32) -> Result<Vec<u32>> {
        let ndims = (expected & 0xff) as usize;
        let kind = if expected == IMAGES_MAGIC {
            "image"
        } else {
            "label"
        };
        let header_len = 4 + 4 * ndims;
        let mut head = vec![0u8; header_len];
        let got = self.read_full(&mut head)?;
        let what = if self.gzipped() { "decompresses to" } else { "has" };
        if got == 0 {
            return Err(self.bad(format!(
                "the file is empty (it {what} 0 bytes; an IDX {kind} file starts with a header of {header_len} bytes)"
            )));
        }
        if got >= 4 {
            let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if magic != expected {
                let hint = match magic {
                    LABELS_MAGIC => " (this looks like a label file)".to_string(),
                    IMAGES_MAGIC => " (this looks like an image file)".to_string(),
                    m if m >> 16 == 0 && matches!((m >> 8) & 0xff, 0x08 | 0x09 | 0x0b..=0x0e) => format!(
                        " (an IDX file of data type 0x{:02x} with {} dimensions, not u8 {kind}s)",
                        (m >> 8) & 0xff,
                        m & 0xff
                    ),
                    _ => " (this is not an IDX file)".to_string(),
                };
                return Err(self.bad(format!(
                    "wrong magic number 0x{magic:08x}{hint}, expected 0x{expected:08x} ({})",
                    describe_magic(expected)
                )));
            }
        }
        if got < header_len {
            return Err(self.bad(format!(
                "the header is truncated: the file {what} only {got} bytes, an IDX {kind} header needs {header_len}"
            )));
        }
        let dims: Vec<u32> = head[4..]
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        if dims.contains(&0) {
            return Err(self.bad(format!(
                "the header has a zero size ({}): there is no data",
                describe_dims(&dims)
            )));
        }
        Ok(dims)
    }

    /// Reads exactly the `product(dims)` data bytes promised by the header, and checks
    /// that nothing follows them.
    fn body(&mut self, dims: &[u32]) -> Result<Vec<u8>> {
        let header_len = self.pos;
        let shape = describe_dims(dims);
        let promised = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .filter(|&p| usize::try_from(p).is_ok_and(|p| p <= isize::MAX as usize))
            .ok_or_else(|| self.bad(format!("the header's sizes ({shape}) are absurdly large")))?;
        let available = self.max_decoded_len().saturating_sub(header_len);
        if promised > available {
            let holds = if self.gzipped() {
                format!(
                    "a gzip file of {} bytes cannot hold more than {available}",
                    self.file_len
                )
            } else {
                format!("only {available} follow")
            };
            return Err(self.bad(format!(
                "the file is truncated or its header is corrupt: the header promises {shape} = \
                 {promised} bytes after the {header_len}-byte header, but {holds}"
            )));
        }
        let mut data = Vec::with_capacity(self.size_hint(promised));
        let res = (&mut self.reader).take(promised).read_to_end(&mut data);
        self.pos += data.len() as u64;
        res.map_err(|e| self.error(e))?;
        if (data.len() as u64) < promised {
            return Err(self.bad(format!(
                "the file is truncated: the header promises {shape} = {promised} bytes after the \
                 {header_len}-byte header, but only {} follow",
                data.len()
            )));
        }
        // Read to the end: this also makes the gzip decoder verify its checksum.
        let mut probe = [0u8; 1];
        if self.read_full(&mut probe)? > 0 {
            const COUNT_LIMIT: u64 = 1 << 30;
            let rest = io::copy(&mut (&mut self.reader).take(COUNT_LIMIT), &mut io::sink()).unwrap_or(0);
            let count = match rest + 1 {
                1 => "1 trailing byte follows".to_string(),
                n if n > COUNT_LIMIT => "more than a GiB of trailing bytes follow".to_string(),
                n => format!("{n} trailing bytes follow"),
            };
            return Err(self.bad(format!(
                "{count} the {promised} data bytes promised by the header ({shape})"
            )));
        }
        Ok(data)
    }
}

/// `"60000 images of 28x28"` (3 dimensions) or `"60000 labels"` (1 dimension).
fn describe_dims(dims: &[u32]) -> String {
    match dims {
        [n, r, c] => format!("{n} images of {r}x{c}"),
        [n] => format!("{n} labels"),
        _ => dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x "),
    }
}

/// Reads until `buf` is full or the data ends; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
