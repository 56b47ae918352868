//! The IDX file format (LeCun's MNIST format), gzipped or raw.
//!
//! | offset | size    | content                                              |
//! |--------|---------|------------------------------------------------------|
//! | 0      | 4       | magic `0x0000_08TD`, big-endian: `T = 08` is `u8` data, `D` the number of dimensions |
//! | 4      | 4 * D   | the `D` sizes, big-endian `u32` (images: count, rows, cols; labels: count) |
//! | 4 + 4D | product | the data, `u8`, row-major (last dimension fastest)    |
//!
//! A file is gzipped if it starts with the gzip magic `1f 8b`, whatever its name
//! (several gzip members one after another are one stream, as `gunzip` reads them).
//!
//! Reading is bounded by the header: the header is read first (through the
//! gzip decoder for a `.gz`), its sizes are checked against the caps
//! ([`MAX_COUNT`] items, images of at most [`MAX_SIDE`] x [`MAX_SIDE`]), against
//! what a file of its size can hold, and against the memory cap
//! ([`crate::nn::memory::cap`]); only then is exactly the promised body read,
//! through [`Read::take`], and at most a few KiB past it to report extra bytes.
//! [`open_images`] and [`open_labels`] stop after the header so that a caller can
//! compare two files before reading either body.
//!
//! The readers validate everything (magic, sizes, exact length, gzip integrity)
//! and never panic: each failure is an [`Error`] that names the file and the problem.
//! [`parse_images`] and [`parse_labels`] read from memory (for tests and fuzzing).
//!
//! A large gzipped file's body may come from a decompressed copy kept beside
//! it ([`super::cache`]), used only when it matches the file and its checksum.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;

use super::cache;
use crate::error::{Error, Result};
use crate::nn::memory;

/// Magic number of an image file: u8 data, 3 dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file: u8 data, 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Most images (or labels) a file may hold: 2^24 (MNIST has 60,000).
pub const MAX_COUNT: u32 = 1 << 24;
/// Most rows, and most columns, of an image: 1024 (MNIST's are 28).
pub const MAX_SIDE: u32 = 1024;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate expands at most about 1032:1, so a gzip file of `n` bytes decodes to
/// at most `n * MAX_DEFLATE_RATIO` bytes.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Buffer size of the file reader.
const BUF_SIZE: usize = 1 << 16;
/// At most this many bytes after the body are read to count them in a message.
const COUNT_LIMIT: u64 = 1 << 16;

/// Reads the whole file, un-gzipping it if it starts with the gzip magic bytes;
/// at most the memory cap ([`crate::nn::memory::cap`]) is read.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let mut input = Input::open(path)?;
    let cap = memory::cap()?;
    let mut out = Vec::new();
    let res = (&mut input.reader)
        .take(cap.bytes.saturating_add(1))
        .read_to_end(&mut out);
    input.pos += out.len() as u64;
    res.map_err(|e| input.error(e))?;
    if out.len() as u64 > cap.bytes {
        return Err(input.bad(format!("it decodes to more than the memory cap of {cap}")));
    }
    Ok(out)
}

/// Images: `(count, rows, cols, pixels)` with `count * rows * cols` pixels,
/// image-major then row-major. All three sizes are at least 1.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    open_images(path)?.read()
}

/// Labels, one byte each; at least one.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    open_labels(path)?.read()
}

/// [`read_images`] on the bytes of a file held in memory (`path` names it in errors).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    Header::parse(Input::from_bytes(bytes, path), IMAGES_MAGIC)?.read_images()
}

/// [`read_labels`] on the bytes of a file held in memory (`path` names it in errors).
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    Header::parse(Input::from_bytes(bytes, path), LABELS_MAGIC)?.read_body()
}

/// An image file whose header has been read and checked; its body is not read yet.
pub struct ImageFile {
    header: Header<BufReader<File>>,
}

impl ImageFile {
    /// Number of images the header promises.
    pub fn count(&self) -> usize {
        self.header.dims[0] as usize
    }
    /// Rows of each image.
    pub fn rows(&self) -> usize {
        self.header.dims[1] as usize
    }
    /// Columns of each image.
    pub fn cols(&self) -> usize {
        self.header.dims[2] as usize
    }
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.header.input.path
    }
    /// Reads the body: `(count, rows, cols, pixels)` as [`read_images`] returns them.
    pub fn read(self) -> Result<(usize, usize, usize, Vec<u8>)> {
        self.header.read_images()
    }
}

/// A label file whose header has been read and checked; its body is not read yet.
pub struct LabelFile {
    header: Header<BufReader<File>>,
}

impl LabelFile {
    /// Number of labels the header promises.
    pub fn count(&self) -> usize {
        self.header.dims[0] as usize
    }
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.header.input.path
    }
    /// Reads the body: the labels.
    pub fn read(self) -> Result<Vec<u8>> {
        self.header.read_body()
    }
}

/// Opens an image file and reads and checks its header only.
pub fn open_images(path: &Path) -> Result<ImageFile> {
    Ok(ImageFile {
        header: Header::parse(Input::open(path)?, IMAGES_MAGIC)?,
    })
}

/// Opens a label file and reads and checks its header only.
pub fn open_labels(path: &Path) -> Result<LabelFile> {
    Ok(LabelFile {
        header: Header::parse(Input::open(path)?, LABELS_MAGIC)?,
    })
}

/// What a magic number means, for error messages.
fn describe_magic(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "images: u8, 3 dimensions",
        LABELS_MAGIC => "labels: u8, 1 dimension",
        _ => "unknown",
    }
}

/// The marker of the error "bytes that are not gzip follow a gzip member".
#[derive(Debug)]
struct JunkAfterGzip;

impl std::fmt::Display for JunkAfterGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("extra bytes after the end of the gzip data")
    }
}

impl std::error::Error for JunkAfterGzip {}

/// The decoded bytes of a file, raw or gunzipped.
enum Reader<R: BufRead> {
    Raw(R),
    /// The decoder of the current gzip member (`None` only while switching members).
    Gzip(Option<Box<GzDecoder<R>>>),
}

impl<R: BufRead> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let slot = match self {
            Reader::Raw(r) => return r.read(buf),
            Reader::Gzip(slot) => slot,
        };
        loop {
            let Some(dec) = slot.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended (its checksum verified): the end of the file,
            // another member, or junk.
            let next = dec.get_mut().fill_buf()?;
            match next.first() {
                None => return Ok(0),
                Some(&b) if b == GZIP_MAGIC[0] => {
                    let inner = slot.take().map(|d| d.into_inner());
                    *slot = inner.map(|r| Box::new(GzDecoder::new(r)));
                }
                Some(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, JunkAfterGzip)),
            }
        }
    }
}

/// An open IDX file, positioned at the start of its (decoded) contents.
struct Input<R: BufRead> {
    path: PathBuf,
    reader: Reader<R>,
    /// Size of the file as stored (compressed, if gzipped), when known (a regular file).
    stored_len: Option<u64>,
    /// Decoded bytes consumed so far.
    pos: u64,
    /// The opened file's metadata (for the key of a cached decompressed copy).
    meta: Option<std::fs::Metadata>,
}

impl Input<BufReader<File>> {
    fn open(path: &Path) -> Result<Self> {
        let io = |action, source| Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        let file = File::open(path).map_err(|e| io(crate::error::DATA_OPEN, e))?;
        let meta = file.metadata().map_err(|e| io("read", e))?;
        if meta.is_dir() {
            return Err(Error::BadData {
                path: path.to_path_buf(),
                problem: "it is a folder, not a file".into(),
            });
        }
        // A device or a pipe reports no useful length: it is bounded by its header alone.
        let stored_len = meta.is_file().then_some(meta.len());
        let buffered = BufReader::with_capacity(BUF_SIZE, file);
        let mut input = Input::new(buffered, stored_len, path).map_err(|e| io("read", e))?;
        input.meta = Some(meta);
        Ok(input)
    }
}

impl<'a> Input<&'a [u8]> {
    fn from_bytes(bytes: &'a [u8], path: &Path) -> Self {
        Input::new(bytes, Some(bytes.len() as u64), path).expect("reading from memory cannot fail")
    }
}

impl<R: BufRead> Input<R> {
    fn new(mut source: R, stored_len: Option<u64>, path: &Path) -> io::Result<Self> {
        let start = source.fill_buf()?;
        let gzipped = start.len() >= 2 && start[..2] == GZIP_MAGIC;
        let reader = if gzipped {
            Reader::Gzip(Some(Box::new(GzDecoder::new(source))))
        } else {
            Reader::Raw(source)
        };
        Ok(Input {
            path: path.to_path_buf(),
            reader,
            stored_len,
            pos: 0,
            meta: None,
        })
    }

    fn gzipped(&self) -> bool {
        matches!(self.reader, Reader::Gzip(_))
    }

    /// The most bytes this file could decode to, if its size is known.
    fn max_decoded_len(&self) -> Option<u64> {
        let len = self.stored_len?;
        Some(if self.gzipped() {
            len.saturating_mul(MAX_DEFLATE_RATIO)
        } else {
            len
        })
    }

    fn bad(&self, problem: String) -> Error {
        Error::BadData {
            path: self.path.clone(),
            problem,
        }
    }

    /// Turns a read error into an [`Error`]: in a gzipped file it means corrupt data.
    fn error(&self, e: io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<JunkAfterGzip>()) {
            self.bad(format!(
                "extra bytes after the end of the gzip data: the compressed stream ends after {} decoded bytes and what follows it is not gzip (the file was padded or has something appended; cut it at the end of the gzip data)",
                self.pos
            ))
        } else if !self.gzipped() {
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
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(filled)
    }
}

/// A file whose header has been read and checked: the sizes, and the input
/// positioned at the body.
struct Header<R: BufRead> {
    input: Input<R>,
    dims: Vec<u32>,
    /// The header's bytes as read (magic and sizes).
    head: Vec<u8>,
}

impl<R: BufRead> Header<R> {
    /// Reads and checks the header: magic `expected`, then its dimensions,
    /// each at least 1 and within the caps.
    fn parse(mut input: Input<R>, expected: u32) -> Result<Self> {
        let ndims = (expected & 0xff) as usize;
        let kind = if expected == IMAGES_MAGIC {
            "image"
        } else {
            "label"
        };
        let header_len = 4 + 4 * ndims;
        let mut head = vec![0u8; header_len];
        let got = input.read_full(&mut head)?;
        let what = if input.gzipped() { "decompresses to" } else { "has" };
        if got == 0 {
            return Err(input.bad(format!(
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
                return Err(input.bad(format!(
                    "wrong magic number 0x{magic:08x}{hint}, expected 0x{expected:08x} ({})",
                    describe_magic(expected)
                )));
            }
        }
        if got < header_len {
            return Err(input.bad(format!(
                "the header is truncated: the file {what} only {got} bytes, an IDX {kind} header needs {header_len}"
            )));
        }
        let dims: Vec<u32> = head[4..]
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let shape = describe_dims(&dims);
        if dims.contains(&0) {
            return Err(input.bad(format!("the header has a zero size ({shape}): there is no data")));
        }
        if dims[0] > MAX_COUNT {
            return Err(input.bad(format!(
                "the header's sizes ({shape}) are absurdly large: a file may hold at most {MAX_COUNT} {kind}s (the header is corrupt, or this is not an MNIST-like data set)"
            )));
        }
        if dims[1..].iter().any(|&d| d > MAX_SIDE) {
            return Err(input.bad(format!(
                "the header's sizes ({shape}) are absurdly large: images may be at most {MAX_SIDE}x{MAX_SIDE} pixels (MNIST's are 28x28)"
            )));
        }
        Ok(Header { input, dims, head })
    }

    /// Reads the body of an image file.
    fn read_images(self) -> Result<(usize, usize, usize, Vec<u8>)> {
        let (n, r, c) = (self.dims[0], self.dims[1], self.dims[2]);
        let pixels = self.read_body()?;
        // The sizes are within the caps, so these casts are exact.
        Ok((n as usize, r as usize, c as usize, pixels))
    }

    /// Reads exactly the `product(dims)` data bytes promised by the header, and checks
    /// that nothing follows them.
    fn read_body(mut self) -> Result<Vec<u8>> {
        let input = &mut self.input;
        let header_len = input.pos;
        let shape = describe_dims(&self.dims);
        // Within the caps: at most 2^24 * 2^10 * 2^10 = 2^44, no overflow.
        let promised = self.dims.iter().map(|&d| d as u64).product::<u64>();
        if let Some(available) = input.max_decoded_len().map(|m| m.saturating_sub(header_len)) {
            if promised > available {
                let holds = match input.stored_len {
                    Some(len) if input.gzipped() => {
                        format!("a gzip file of {len} bytes cannot hold more than {available}")
                    }
                    _ => format!("only {available} follow"),
                };
                return Err(input.bad(format!(
                    "the file is truncated or its header is corrupt: the header promises {shape} = \
                     {promised} bytes after the {header_len}-byte header, but {holds}"
                )));
            }
        }
        let cap = memory::cap()?;
        if promised > cap.bytes {
            return Err(input.bad(format!(
                "the header promises {shape} = {promised} bytes ({}), more than the memory cap of {cap}; if the file is right, raise the cap with {}",
                memory::human(promised),
                memory::ENV_VAR
            )));
        }
        let promised_len = usize::try_from(promised)
            .map_err(|_| input.bad(format!("the header's sizes ({shape}) are absurdly large")))?;
        // Exactly the promised size, below the memory cap: the buffer never grows,
        // and pages that are not filled (a truncated file) are never touched.
        let mut data = Vec::new();
        data.try_reserve_exact(promised_len).map_err(|_| {
            input.bad(format!(
                "{shape} = {promised} bytes do not fit in memory; if the file is right, free some memory"
            ))
        })?;
        // Rows of a training set are read in shuffled order: 2 MiB pages
        // spare them a TLB miss each (see crate::huge_pages; a hint).
        crate::huge_pages::advise(&data);
        // A large gzipped file may have a verified decompressed copy beside it
        // (see [`cache`]): then its body comes from there, else from the file.
        let cache_key = match &input.meta {
            Some(meta) if input.gzipped() && promised >= cache::MIN_BODY && !cache::disabled() => {
                cache::Key::of(&input.path, meta)
            }
            _ => None,
        };
        if let Some(hit) = cache_key.and_then(|key| cache::open(&input.path, key, &self.head, promised)) {
            if hit.read_body(&mut data, promised) {
                return Ok(data);
            }
        }
        let res = (&mut input.reader).take(promised).read_to_end(&mut data);
        input.pos += data.len() as u64;
        res.map_err(|e| input.error(e))?;
        if (data.len() as u64) < promised {
            return Err(input.bad(format!(
                "the file is truncated: the header promises {shape} = {promised} bytes after the \
                 {header_len}-byte header, but only {} follow",
                data.len()
            )));
        }
        // Read on to the end: this also makes the gzip decoder verify its checksum.
        let mut probe = [0u8; 1];
        if input.read_full(&mut probe)? > 0 {
            let rest = io::copy(&mut (&mut input.reader).take(COUNT_LIMIT), &mut io::sink()).unwrap_or(0);
            let count = match rest + 1 {
                1 => "1 trailing byte follows".to_string(),
                n if n > COUNT_LIMIT => format!("more than {COUNT_LIMIT} trailing bytes follow"),
                n => format!("{n} trailing bytes follow"),
            };
            return Err(input.bad(format!(
                "extra bytes after the end of the data: {count} the {promised} data bytes promised by the header ({shape})"
            )));
        }
        if let Some(key) = cache_key {
            cache::store(&input.path, key, &self.head, &data);
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn labels(l: &[u8]) -> Vec<u8> {
        let mut v = LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&(l.len() as u32).to_be_bytes());
        v.extend_from_slice(l);
        v
    }

    #[test]
    fn several_gzip_members_are_one_stream() {
        let whole = labels(&[1, 2, 3, 4]);
        let mut two = gzip(&whole[..6]);
        two.extend(gzip(&whole[6..]));
        assert_eq!(parse_labels(&two, Path::new("x")).unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn junk_after_a_gzip_member_is_named_as_such() {
        let mut bytes = gzip(&labels(&[1, 2]));
        bytes.extend_from_slice(b"junk");
        let e = parse_labels(&bytes, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("extra bytes after the end of the gzip data"), "{e}");
        assert!(!e.contains("truncated"), "{e}");
    }

    #[test]
    fn caps_on_counts_and_sides() {
        let mut v = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [1u32, 4096, 4096] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        let e = parse_images(&v, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("at most 1024x1024"), "{e}");
        let mut v = LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&(MAX_COUNT + 1).to_be_bytes());
        let e = parse_labels(&v, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("at most 16777216 labels"), "{e}");
    }
}
