//! The picture readers behind `simdnet predict IMAGE` (`data::image::decode`:
//! PNG and PGM) and the preparation of what they read into an MNIST digit
//! (`data::digitize::prepare`). The first byte picks how the rest is used:
//!
//! - 0: the bytes as they are (PGM's text headers, and PNG's signature and
//!   chunk framing);
//! - 1: a PNG's chunks: the signature, then the bytes as chunks whose CRCs
//!   are made to match (so that the fuzzer reaches `IHDR`, `PLTE`, `tRNS`
//!   and the zlib stream behind them);
//! - 2: a PNG made around the bytes: an `IHDR` from the first 10 (a small
//!   size, any depth and colour type), a palette and transparency from the
//!   next ones, and the rest compressed as its `IDAT` (so that the fuzzer
//!   reaches the row filters and the bit unpacking);
//! - 3: an `Image` built directly, as a library user may build one: any
//!   size, channels and samples, to `prepare`.
//!
//! What must hold: `Ok` or `Err`, never a panic; a decoded image holds
//! width x height x channels samples; a prepared digit is 28x28.
#![no_main]

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use libfuzzer_sys::fuzz_target;
use simdnet::data::digitize;
use simdnet::data::image::{self, Channels, Image};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn crc(kind: &[u8], data: &[u8]) -> u32 {
    let mut c = Crc::new();
    c.update(kind);
    c.update(data);
    c.sum()
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc(kind, data).to_be_bytes());
}

/// The signature, then `body` with each whole chunk's CRC rewritten.
fn crcs_fixed(body: &[u8]) -> Vec<u8> {
    let mut file = SIGNATURE.to_vec();
    file.extend_from_slice(body);
    let mut pos = SIGNATURE.len();
    while file.len() - pos >= 12 {
        let len = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        if len > file.len() - pos - 12 {
            break;
        }
        let sum = crc(&file[pos + 4..pos + 8], &file[pos + 8..pos + 8 + len]);
        file[pos + 8 + len..pos + 12 + len].copy_from_slice(&sum.to_be_bytes());
        pos += 12 + len;
    }
    file
}

/// A PNG around `body`: see the module comment.
fn made_png(body: &[u8]) -> Option<Vec<u8>> {
    let (head, rest) = body.split_at_checked(10)?;
    let width = 1 + u32::from(head[0] % 48);
    let height = 1 + u32::from(head[1] % 48);
    let (depth, colour) = (head[2], head[3]);
    let (plte_len, trns_len) = (usize::from(head[4]), usize::from(head[5]));
    let (interlace, extra) = (head[6] % 3, head[7]);
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, interlace]);
    let (plte, rest) = rest.split_at(rest.len().min(plte_len * 3));
    let (trns, pixels) = rest.split_at(rest.len().min(trns_len));
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    z.write_all(pixels).ok()?;
    let idat = z.finish().ok()?;
    let mut file = SIGNATURE.to_vec();
    chunk(&mut file, b"IHDR", &ihdr);
    if !plte.is_empty() {
        chunk(&mut file, b"PLTE", plte);
    }
    if !trns.is_empty() {
        chunk(&mut file, b"tRNS", trns);
    }
    // the stream whole, or cut into two IDATs at `extra`
    let cut = usize::from(extra).min(idat.len());
    chunk(&mut file, b"IDAT", &idat[..cut]);
    if cut < idat.len() {
        chunk(&mut file, b"IDAT", &idat[cut..]);
    }
    chunk(&mut file, b"IEND", &[]);
    Some(file)
}

/// An `Image` from `body`: a size and channels from its first 5 bytes, samples from the rest.
fn built_image(body: &[u8]) -> Option<Image> {
    let (head, samples) = body.split_at_checked(5)?;
    // Mostly small sizes, sometimes enormous ones (a width times a height that overflows).
    let side = |b: [u8; 2]| match b[0] >> 6 {
        3 => usize::MAX >> (b[1] % 64),
        _ => usize::from(u16::from_le_bytes(b) & 0x3fff) % 200,
    };
    let channels = match head[4] % 4 {
        0 => Channels::Grey,
        1 => Channels::GreyAlpha,
        2 => Channels::Rgb,
        _ => Channels::Rgba,
    };
    Some(Image {
        width: side([head[0], head[1]]),
        height: side([head[2], head[3]]),
        channels,
        samples: samples.to_vec(),
    })
}

fn check(image: &Image) {
    let _ = digitize::to_grey(image);
    if let Ok(digit) = digitize::prepare(image) {
        assert_eq!(digit.pixels.len(), digitize::SIDE * digitize::SIDE);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let file = match mode % 4 {
        0 => body.to_vec(),
        1 => crcs_fixed(body),
        2 => match made_png(body) {
            Some(file) => file,
            None => return,
        },
        _ => {
            if let Some(image) = built_image(body) {
                check(&image);
            }
            return;
        }
    };
    if let Ok(image) = image::decode(&file) {
        assert_eq!(
            image.samples.len(),
            image.width * image.height * image.channels.count()
        );
        check(&image);
    }
});
