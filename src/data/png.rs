//! PNG, read and written from first principles: chunks, CRC-32, the zlib
//! stream (flate2), the five row filters and the bit packing.
//!
//! A PNG is an 8-byte signature then chunks, each `length (u32 BE) | type (4
//! ASCII bytes) | data | CRC-32 of type and data`. `IHDR` comes first (width,
//! height, bit depth, colour type, interlace), `PLTE` holds a palette, `tRNS`
//! its transparency, the `IDAT`s together hold one zlib stream, `IEND` ends
//! the file. Inflated, the stream is one filter-type byte then the packed
//! samples of each row.
//!
//! [`decode`] reads 8-bit greyscale, greyscale+alpha, RGB and RGBA, palettes
//! of 1, 2, 4 or 8 bits and greyscale of 1, 2 or 4 bits, non-interlaced,
//! with all five filter types. Every chunk's CRC is checked; `IHDR`'s
//! dimensions are checked against the caps in [`super::image`] before
//! anything is inflated, and inflating stops at exactly the number of bytes
//! `IHDR` promises. Interlaced and 16-bit images are refused with the fix.
//! A `tRNS` colour key on greyscale or RGB is ignored (only palettes use it).
//!
//! [`encode_grey`] writes an 8-bit greyscale PNG (filter 0 on every row).

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};

use super::image::{check_dimensions, Channels, Image};
use crate::error::{Error, Result};

/// The eight bytes every PNG starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// The largest chunk length the format allows (2^31 - 1).
const MAX_CHUNK: usize = (1 << 31) - 1;

/// What `IHDR` says.
#[derive(Clone, Copy, Debug)]
struct Header {
    width: usize,
    height: usize,
    /// Bits per sample (or per palette index): 1, 2, 4 or 8.
    depth: u8,
    /// 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA.
    colour: u8,
}

impl Header {
    /// Samples per pixel as stored (a palette index is one sample).
    fn stored_samples(&self) -> usize {
        match self.colour {
            0 | 3 => 1,
            4 => 2,
            2 => 3,
            _ => 4,
        }
    }

    /// Bytes of one row, without its filter byte.
    fn stride(&self) -> usize {
        (self.width * self.stored_samples() * self.depth as usize).div_ceil(8)
    }

    /// The distance, in bytes, to the corresponding byte of the pixel on the left.
    fn filter_bpp(&self) -> usize {
        (self.stored_samples() * self.depth as usize / 8).max(1)
    }
}

/// One chunk: its type and data (CRC already checked).
struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
}

/// A chunk type for messages: the four letters, or their bytes if not ASCII letters.
fn kind_name(kind: &[u8; 4]) -> String {
    if kind.iter().all(u8::is_ascii_alphabetic) {
        String::from_utf8_lossy(kind).into_owned()
    } else {
        format!("{kind:02x?}")
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = Crc::new();
    for p in parts {
        crc.update(p);
    }
    crc.sum()
}

/// Reads the chunk at `*pos` and moves past it; checks its length and CRC.
fn next_chunk<'a>(bytes: &'a [u8], pos: &mut usize) -> std::result::Result<Chunk<'a>, String> {
    let rest = &bytes[*pos..];
    if rest.len() < 8 {
        return Err(format!(
            "the file is truncated: it ends after {} bytes, before its IEND chunk",
            bytes.len()
        ));
    }
    let len = be32(rest) as usize;
    let kind = [rest[4], rest[5], rest[6], rest[7]];
    if len > MAX_CHUNK {
        return Err(format!(
            "its {} chunk claims {len} bytes, more than PNG allows: the file is damaged",
            kind_name(&kind)
        ));
    }
    if rest.len() - 8 < len + 4 {
        return Err(format!(
            "the file is truncated: its {} chunk claims {len} bytes but the file ends first",
            kind_name(&kind)
        ));
    }
    let data = &rest[8..8 + len];
    let stored = be32(&rest[8 + len..]);
    let computed = crc32(&[&kind, data]);
    if stored != computed {
        return Err(format!(
            "the CRC of its {} chunk is wrong (stored {stored:08x}, computed {computed:08x}): the file is damaged",
            kind_name(&kind)
        ));
    }
    *pos += 12 + len;
    Ok(Chunk { kind, data })
}

/// Parses and validates `IHDR`, dimensions included, before any pixel is read.
fn parse_header(data: &[u8]) -> std::result::Result<Header, String> {
    if data.len() != 13 {
        return Err(format!(
            "its IHDR chunk has {} bytes instead of 13: the file is damaged",
            data.len()
        ));
    }
    let (width, height) = (be32(data) as u64, be32(&data[4..]) as u64);
    let (depth, colour) = (data[8], data[9]);
    let (compression, filter, interlace) = (data[10], data[11], data[12]);
    let allowed: &[u8] = match colour {
        0 => &[1, 2, 4, 8, 16],
        3 => &[1, 2, 4, 8],
        2 | 4 | 6 => &[8, 16],
        _ => {
            return Err(format!(
                "its colour type {colour} does not exist in PNG: the file is damaged"
            ))
        }
    };
    if !allowed.contains(&depth) {
        return Err(format!(
            "its bit depth {depth} is not valid for colour type {colour}: the file is damaged"
        ));
    }
    if depth == 16 {
        return Err(
            "it has 16 bits per sample, which simdnet does not read; save it with 8 bits per sample".into(),
        );
    }
    if compression != 0 || filter != 0 {
        return Err(format!(
            "its compression method {compression} or filter method {filter} is not 0, the only ones PNG defines"
        ));
    }
    match interlace {
        0 => {}
        1 => {
            return Err(
                "it is interlaced (Adam7), which simdnet does not read; save it again without interlacing"
                    .into(),
            )
        }
        m => {
            return Err(format!(
                "its interlace method {m} does not exist in PNG: the file is damaged"
            ))
        }
    }
    check_dimensions(width, height)?;
    Ok(Header {
        width: width as usize,
        height: height as usize,
        depth,
        colour,
    })
}

/// Decodes a whole PNG file held in memory; the error is the problem, in words.
pub fn decode(bytes: &[u8]) -> std::result::Result<Image, String> {
    if !bytes.starts_with(&SIGNATURE) {
        return Err("it does not start with the PNG signature".into());
    }
    let mut pos = SIGNATURE.len();
    let first = next_chunk(bytes, &mut pos)?;
    if &first.kind != b"IHDR" {
        return Err(format!(
            "its first chunk is {}, not IHDR: the file is damaged",
            kind_name(&first.kind)
        ));
    }
    let header = parse_header(first.data)?;
    let mut palette: &[u8] = &[];
    let mut alpha: &[u8] = &[];
    let mut idat: Vec<u8> = Vec::new(); // at most the file's size
    loop {
        let chunk = next_chunk(bytes, &mut pos)?;
        match &chunk.kind {
            b"IEND" => break,
            b"IHDR" => return Err("it has a second IHDR chunk: the file is damaged".into()),
            b"PLTE" => {
                if chunk.data.is_empty() || chunk.data.len() % 3 != 0 || chunk.data.len() > 256 * 3 {
                    return Err(format!(
                        "its palette (PLTE) has {} bytes, not 3 per colour for 1 to 256 colours: the file is damaged",
                        chunk.data.len()
                    ));
                }
                palette = chunk.data;
            }
            b"tRNS" => alpha = chunk.data,
            b"IDAT" => idat.extend_from_slice(chunk.data),
            kind if kind[0].is_ascii_uppercase() => {
                return Err(format!(
                    "it has a critical chunk {} that simdnet does not know",
                    kind_name(kind)
                ))
            }
            _ => {} // ancillary: text, gamma, time, ... not needed for the pixels
        }
    }
    if idat.is_empty() {
        return Err("it has no image data (no IDAT chunk): the file is damaged".into());
    }
    if header.colour == 3 && palette.is_empty() {
        return Err("it is a palette image without a palette (PLTE): the file is damaged".into());
    }
    let mut rows = inflate(&idat, &header)?;
    drop(idat); // the compressed copy is no longer needed
    unfilter(&mut rows, &header)?;
    expand(&rows, &header, palette, alpha)
}

/// Inflates the zlib stream, reading exactly what `IHDR` promises.
fn inflate(idat: &[u8], h: &Header) -> std::result::Result<Vec<u8>, String> {
    // `check_dimensions` capped width and height, so this cannot overflow.
    let expected = h.height * (h.stride() + 1);
    let mut out = Vec::with_capacity(expected + 1);
    ZlibDecoder::new(idat)
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            format!("its compressed image data is corrupt ({e}): the file is truncated or damaged")
        })?;
    if out.len() < expected {
        return Err(format!(
            "its image data ends early: {} of the {expected} bytes its {}x{} header promises \
             (the file is truncated or damaged)",
            out.len(),
            h.width,
            h.height
        ));
    }
    if out.len() > expected {
        return Err(format!(
            "it holds more image data than its {}x{} header promises: the file is damaged",
            h.width, h.height
        ));
    }
    Ok(out)
}

/// The Paeth predictor: whichever of left, up, up-left is closest to `a + b - c`.
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = a as i16 + b as i16 - c as i16;
    let (pa, pb, pc) = ((p - a as i16).abs(), (p - b as i16).abs(), (p - c as i16).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Undoes the row filters in place: `data` keeps each row's filter byte,
/// then its `stride` bytes, now unfiltered.
fn unfilter(data: &mut [u8], h: &Header) -> std::result::Result<(), String> {
    let line = h.stride() + 1;
    let bpp = h.filter_bpp();
    let zero = vec![0u8; line];
    for r in 0..h.height {
        let (done, rest) = data.split_at_mut(r * line);
        let prev: &[u8] = if r == 0 {
            &zero[1..]
        } else {
            &done[(r - 1) * line + 1..]
        };
        let (filter, cur) = (rest[0], &mut rest[1..line]);
        match filter {
            0 => {}
            1 => {
                for i in bpp..cur.len() {
                    cur[i] = cur[i].wrapping_add(cur[i - bpp]);
                }
            }
            2 => {
                for (c, &up) in cur.iter_mut().zip(prev) {
                    *c = c.wrapping_add(up);
                }
            }
            3 => {
                for i in 0..cur.len() {
                    let left = if i >= bpp { cur[i - bpp] } else { 0 };
                    cur[i] = cur[i].wrapping_add(((left as u16 + prev[i] as u16) / 2) as u8);
                }
            }
            4 => {
                for i in 0..cur.len() {
                    let (left, up_left) = if i >= bpp {
                        (cur[i - bpp], prev[i - bpp])
                    } else {
                        (0, 0)
                    };
                    cur[i] = cur[i].wrapping_add(paeth(left, prev[i], up_left));
                }
            }
            f => {
                return Err(format!(
                    "row {r} has filter type {f}, but PNG has only types 0 to 4: the file is damaged"
                ))
            }
        }
    }
    Ok(())
}

/// Unpacks the rows (each after its filter byte) to one byte per sample:
/// grey levels scaled to 0..=255, palette indices looked up (RGB, or RGBA
/// when `tRNS` gives transparency).
fn expand(raw: &[u8], h: &Header, palette: &[u8], alpha: &[u8]) -> std::result::Result<Image, String> {
    let line = h.stride() + 1;
    let per_row = h.width * h.stored_samples();
    // Samples of each row, one byte each (still indices for a palette).
    let mut samples = Vec::with_capacity(h.height * per_row);
    let depth = h.depth as usize;
    for row in raw.chunks_exact(line).map(|l| &l[1..]) {
        if depth == 8 {
            samples.extend_from_slice(&row[..per_row]);
        } else {
            let mask = (1u16 << depth) as u8 - 1;
            let scale = if h.colour == 0 { 255 / mask } else { 1 };
            for s in 0..per_row {
                let bit = s * depth;
                let v = (row[bit / 8] >> (8 - depth - bit % 8)) & mask;
                samples.push(v * scale);
            }
        }
    }
    let (channels, samples) = match h.colour {
        0 => (Channels::Grey, samples),
        4 => (Channels::GreyAlpha, samples),
        2 => (Channels::Rgb, samples),
        6 => (Channels::Rgba, samples),
        _ => {
            let colours = palette.len() / 3;
            let with_alpha = !alpha.is_empty();
            let ch = if with_alpha { 4 } else { 3 };
            let mut out = Vec::with_capacity(samples.len() * ch);
            for &i in &samples {
                let i = i as usize;
                if i >= colours {
                    return Err(format!(
                        "a pixel uses palette entry {i}, but the palette has only {colours} colours: the file is damaged"
                    ));
                }
                out.extend_from_slice(&palette[3 * i..3 * i + 3]);
                if with_alpha {
                    out.push(alpha.get(i).copied().unwrap_or(255));
                }
            }
            (if with_alpha { Channels::Rgba } else { Channels::Rgb }, out)
        }
    };
    Ok(Image {
        width: h.width,
        height: h.height,
        channels,
        samples,
    })
}

/// Appends one chunk (length, type, data, CRC) to `out`.
fn put_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encodes `pixels` (`width * height` grey levels, row-major, 0 black, 255
/// white) as an 8-bit greyscale PNG file.
pub fn encode_grey(width: usize, height: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    check_dimensions(width as u64, height as u64)
        .map_err(|p| Error::Invalid(format!("cannot encode a PNG: {p}")))?;
    if pixels.len() != width * height {
        return Err(Error::Invalid(format!(
            "cannot encode a PNG: {} pixels given for {width}x{height}",
            pixels.len()
        )));
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8 bits, grey, deflate, filter method 0, not interlaced
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    let compressed = pixels
        .chunks_exact(width)
        .try_for_each(|row| {
            z.write_all(&[0])?; // filter type 0: the row as it is
            z.write_all(row)
        })
        .and_then(|()| z.finish())
        .map_err(|e| Error::Invalid(format!("cannot compress a PNG: {e}")))?;
    let mut out = Vec::with_capacity(compressed.len() + 64);
    out.extend_from_slice(&SIGNATURE);
    put_chunk(&mut out, b"IHDR", &ihdr);
    put_chunk(&mut out, b"IDAT", &compressed);
    put_chunk(&mut out, b"IEND", &[]);
    Ok(out)
}
