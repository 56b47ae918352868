//! Your own digit, made the way MNIST's were: any picture becomes a 28x28
//! grey image with white ink on black, the digit scaled into a 20x20 box and
//! centred by its centre of mass.
//!
//! LeCun et al. made MNIST from NIST's black-and-white digits: each was
//! size-normalised to fit a 20x20 box keeping its aspect ratio (anti-aliasing
//! made the grey levels), then placed in a 28x28 field so that its centre of
//! mass sat at the field's centre. [`prepare`] does the same to a picture:
//!
//! 1. **Grey**: RGB becomes luma `0.299 R + 0.587 G + 0.114 B` (Rec. 601);
//!    transparent pixels are laid over white, as a browser shows them.
//! 2. **Invert when the background is light**: the background is the median
//!    of the outermost pixels (the picture's frame); above mid-grey (127) the
//!    picture is inverted, so the ink is light on dark as in MNIST.
//! 3. **Contrast**: the background level becomes 0 and the strongest ink 255
//!    (a photo of grey paper gets a black background).
//! 4. **Crop to the ink**: the smallest box holding every pixel of at least a
//!    quarter of full ink (64), so faint noise does not widen it.
//! 5. **Scale into 20x20** keeping the aspect ratio (the longer side becomes
//!    20 pixels) by **area averaging**: each new pixel is the mean of the
//!    part of the picture it covers, which anti-aliases as NIST's
//!    normalisation did; then the brightest pixel is made 255 again, so a
//!    thin pen on a big picture does not fade.
//! 6. **Centre by the centre of mass** in 28x28: the 20x20 result is moved by
//!    whole pixels so that its centre of mass (pixel `i` spans `[i, i+1)`)
//!    lands within half a pixel of (14, 14). The move is clamped so that no
//!    ink leaves the field (only a very lopsided digit is then off-centre).

use super::image::{Channels, Image};

/// Side of the prepared digit, in pixels (MNIST's 28).
pub const SIDE: usize = 28;
/// Side of the box the ink is scaled into (MNIST's 20).
pub const BOX: usize = 20;
/// Grey level (after contrast) from which a pixel counts as ink when cropping.
pub const INK: u8 = 64;
/// The least difference between the background and the strongest ink for a picture to hold a digit.
pub const MIN_CONTRAST: u8 = 32;

/// A picture made into an MNIST-style digit, and what was done to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digit {
    /// `SIDE * SIDE` grey levels, row-major, white (255) ink on black (0).
    pub pixels: Vec<u8>,
    /// Whether the picture had a light background and was inverted.
    pub inverted: bool,
    /// The ink's box in the picture: `(left, top, width, height)`.
    pub ink: (usize, usize, usize, usize),
    /// The ink's size once scaled into the 20x20 box: `(width, height)`.
    pub scaled: (usize, usize),
    /// Where the scaled ink's top-left corner was placed in the 28x28 field: `(x, y)`.
    pub offset: (usize, usize),
}

/// The picture in grey levels (0 black, 255 white), one per pixel.
pub fn to_grey(image: &Image) -> Vec<u8> {
    let over_white = |v: u32, a: u32| (v * a + 255 * (255 - a) + 127) / 255;
    let luma = |r: u32, g: u32, b: u32| (299 * r + 587 * g + 114 * b + 500) / 1000;
    let s = &image.samples;
    let p = |i: usize| s[i] as u32;
    let n = image.channels.count();
    (0..s.len() / n)
        .map(|i| {
            let i = i * n;
            (match image.channels {
                Channels::Grey => p(i),
                Channels::GreyAlpha => over_white(p(i), p(i + 1)),
                Channels::Rgb => luma(p(i), p(i + 1), p(i + 2)),
                Channels::Rgba => over_white(luma(p(i), p(i + 1), p(i + 2)), p(i + 3)),
            }) as u8
        })
        .collect()
}

/// The median of the outermost pixels: the background's grey level.
fn background(grey: &[u8], width: usize, height: usize) -> u8 {
    let mut frame = Vec::with_capacity(2 * (width + height));
    for y in 0..height {
        if y == 0 || y + 1 == height {
            frame.extend_from_slice(&grey[y * width..(y + 1) * width]);
        } else {
            frame.push(grey[y * width]);
            if width > 1 {
                frame.push(grey[y * width + width - 1]);
            }
        }
    }
    frame.sort_unstable();
    frame[frame.len() / 2]
}

/// For each of `m` new pixels along a line of `n` old ones, the old pixels it
/// covers and by how much (weights summing to 1): area averaging in one dimension.
fn area_weights(n: usize, m: usize) -> Vec<Vec<(usize, f32)>> {
    let step = n as f64 / m as f64;
    (0..m)
        .map(|i| {
            let (lo, hi) = (i as f64 * step, (i + 1) as f64 * step);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(n);
            (first..last)
                .filter_map(|j| {
                    let overlap = hi.min(j as f64 + 1.0) - lo.max(j as f64);
                    (overlap > 0.0).then_some((j, (overlap / step) as f32))
                })
                .collect()
        })
        .collect()
}

/// Resizes `src` (`w x h`, row-major) to `nw x nh` by area averaging (rows, then columns).
fn resize(src: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    let wx = area_weights(w, nw);
    let wy = area_weights(h, nh);
    let mut across = vec![0f32; h * nw];
    for y in 0..h {
        for (x, weights) in wx.iter().enumerate() {
            across[y * nw + x] = weights.iter().map(|&(j, k)| src[y * w + j] * k).sum();
        }
    }
    let mut out = vec![0f32; nh * nw];
    for (y, weights) in wy.iter().enumerate() {
        for x in 0..nw {
            out[y * nw + x] = weights.iter().map(|&(j, k)| across[j * nw + x] * k).sum();
        }
    }
    out
}

/// The centre of mass of `pixels` (`width` per row), pixel `i` spanning `[i, i+1)`: `(x, y)`.
pub fn centre_of_mass(pixels: &[u8], width: usize) -> Option<(f64, f64)> {
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (i, &v) in pixels.iter().enumerate() {
        let v = v as f64;
        m += v;
        mx += v * ((i % width) as f64 + 0.5);
        my += v * ((i / width) as f64 + 0.5);
    }
    (m > 0.0).then(|| (mx / m, my / m))
}

/// Makes `image` into a 28x28 MNIST-style digit (see the module doc for the
/// steps). Fails, saying why, when the picture holds no ink.
pub fn prepare(image: &Image) -> Result<Digit, String> {
    let (w, h) = (image.width, image.height);
    let mut grey = to_grey(image);
    // checked: a hand-built `Image` may state any size (a product that
    // wrapped round to the pixels' count would pass, then index past them)
    if w.checked_mul(h) != Some(grey.len()) || grey.is_empty() {
        return Err(format!(
            "it holds {} pixels instead of the {w}x{h} it states",
            grey.len()
        ));
    }
    // 2. Light background: invert.
    let inverted = background(&grey, w, h) > 127;
    if inverted {
        grey.iter_mut().for_each(|v| *v = 255 - *v);
    }
    // 3. Contrast: background 0, strongest ink 255.
    let bg = background(&grey, w, h);
    let top = grey.iter().copied().max().unwrap_or(0);
    if top < bg.saturating_add(MIN_CONTRAST) {
        return Err(format!(
            "no digit found: the picture is almost one flat grey (background {bg}, darkest ink {top} after inverting \
             a light background); draw the digit in a dark pen on a light background, or light on dark"
        ));
    }
    let span = (top - bg) as f32;
    let ink: Vec<f32> = grey
        .iter()
        .map(|&v| (v.saturating_sub(bg) as f32 / span * 255.0).min(255.0))
        .collect();
    // 4. Crop to the ink.
    let (mut left, mut top_row, mut right, mut bottom) = (w, h, 0, 0);
    for (i, &v) in ink.iter().enumerate() {
        if v >= INK as f32 {
            let (x, y) = (i % w, i / w);
            left = left.min(x);
            right = right.max(x);
            top_row = top_row.min(y);
            bottom = bottom.max(y);
        }
    }
    // `top >= bg + MIN_CONTRAST`, so the strongest pixel is 255 >= INK: the box is not empty.
    let (cw, ch) = (right - left + 1, bottom - top_row + 1);
    let crop: Vec<f32> = (top_row..=bottom)
        .flat_map(|y| ink[y * w + left..=y * w + right].iter().copied())
        .collect();
    // 5. Into the 20x20 box, keeping the aspect ratio.
    let longer = cw.max(ch) as f64;
    let fit = |side: usize| ((side as f64 * BOX as f64 / longer).round() as usize).clamp(1, BOX);
    let (nw, nh) = (fit(cw), fit(ch));
    let scaled = resize(&crop, cw, ch, nw, nh);
    let peak = scaled.iter().copied().fold(0f32, f32::max).max(f32::MIN_POSITIVE);
    let small: Vec<u8> = scaled
        .iter()
        .map(|&v| (v / peak * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    // 6. Centre by the centre of mass.
    let (cx, cy) = centre_of_mass(&small, nw).unwrap_or((nw as f64 / 2.0, nh as f64 / 2.0));
    let centre = SIDE as f64 / 2.0;
    let place = |c: f64, size: usize| ((centre - c).round().max(0.0) as usize).min(SIDE - size);
    let (ox, oy) = (place(cx, nw), place(cy, nh));
    let mut pixels = vec![0u8; SIDE * SIDE];
    for y in 0..nh {
        let row = (oy + y) * SIDE + ox;
        pixels[row..row + nw].copy_from_slice(&small[y * nw..(y + 1) * nw]);
    }
    Ok(Digit {
        pixels,
        inverted,
        ink: (left, top_row, cw, ch),
        scaled: (nw, nh),
        offset: (ox, oy),
    })
}
