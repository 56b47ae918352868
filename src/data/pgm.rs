//! PGM (Netpbm greymap), read: `P2` (numbers in text) and `P5` (bytes).
//!
//! ```text
//! P5            magic: P2 text, P5 binary
//! # a comment   comments run from '#' to the end of the line
//! 200 100       width height
//! 255           maxval: the grey level of white (1..=255 here)
//! <data>        P5: one byte per pixel after exactly one whitespace byte;
//!               P2: width*height decimal numbers separated by whitespace
//! ```
//!
//! Grey levels are scaled from `0..=maxval` to `0..=255`. A maxval above 255
//! (16-bit samples) is refused with the fix. The dimensions are checked
//! against the caps in [`super::image`] before any pixel is read, and the
//! reader takes exactly `width * height` samples.

use super::image::{check_dimensions, Channels, Image};

/// Reads the header's numbers and the data, one byte at a time.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Skips whitespace and `#` comments.
    fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b'#' {
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|&b| b != b'\n' && b != b'\r')
                {
                    self.pos += 1;
                }
            } else if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next decimal number, or `None` at the end of the file; `what` names it in errors.
    fn number(&mut self, what: &str) -> std::result::Result<Option<u64>, String> {
        self.skip_space();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value.saturating_mul(10).saturating_add((b - b'0') as u64);
            self.pos += 1;
        }
        if self.pos == start {
            return match self.bytes.get(self.pos) {
                None => Ok(None),
                Some(&b) => Err(format!(
                    "where its {what} should be there is '{}', not a number: the file is damaged",
                    (b as char).escape_default()
                )),
            };
        }
        if self
            .bytes
            .get(self.pos)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'#')
        {
            return Err(format!(
                "its {what} is followed by '{}' instead of a space: the file is damaged",
                (self.bytes[self.pos] as char).escape_default()
            ));
        }
        Ok(Some(value))
    }

    /// A header number that must be there.
    fn header(&mut self, what: &str) -> std::result::Result<u64, String> {
        self.number(what)?
            .ok_or_else(|| format!("the file is truncated: it ends before its {what}"))
    }
}

/// Decodes a whole `P2` or `P5` file held in memory; the error is the problem, in words.
pub fn decode(bytes: &[u8]) -> std::result::Result<Image, String> {
    let binary = match bytes.get(..2) {
        Some(b"P5") => true,
        Some(b"P2") => false,
        _ => return Err("it does not start with 'P2' or 'P5', the PGM magic".into()),
    };
    let mut c = Cursor { bytes, pos: 2 };
    if c.bytes
        .get(2)
        .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'#')
    {
        return Err("its magic 'P2'/'P5' is not followed by a space: it is not a PGM file".into());
    }
    let width = c.header("width")?;
    let height = c.header("height")?;
    let maxval = c.header("maxval")?;
    let pixels = check_dimensions(width, height)?;
    if maxval == 0 {
        return Err("its maxval is 0; it must be 1 to 255".into());
    }
    if maxval > 255 {
        return Err(format!(
            "its maxval is {maxval}, so it has 16-bit samples, which simdnet does not read; \
             save it with 8 bits per sample (maxval 255)"
        ));
    }
    let scale = |v: u64| ((v * 255 + maxval / 2) / maxval) as u8;
    let mut samples = Vec::with_capacity(pixels);
    if binary {
        // Exactly one whitespace byte separates maxval from the data.
        let start = c.pos + 1;
        let data = bytes.get(start..).unwrap_or(&[]);
        if data.len() < pixels {
            return Err(format!(
                "the file is truncated: it holds {} of the {pixels} pixels its {width}x{height} header promises",
                data.len()
            ));
        }
        for &v in &data[..pixels] {
            if v as u64 > maxval {
                return Err(format!(
                    "pixel {} is {v}, above its maxval {maxval}: the file is damaged",
                    samples.len()
                ));
            }
            samples.push(scale(v as u64));
        }
    } else {
        while samples.len() < pixels {
            let what = format!("pixel {}", samples.len());
            let Some(v) = c.number(&what)? else {
                return Err(format!(
                    "the file is truncated: it holds {} of the {pixels} pixels its {width}x{height} header promises",
                    samples.len()
                ));
            };
            if v > maxval {
                return Err(format!(
                    "{what} is {v}, above its maxval {maxval}: the file is damaged"
                ));
            }
            samples.push(scale(v));
        }
    }
    Ok(Image {
        width: width as usize,
        height: height as usize,
        channels: Channels::Grey,
        samples,
    })
}
