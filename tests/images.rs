//! Pictures: the PNG writer against the independent `png` crate, the PNG
//! reader against the same crate on every colour type, bit depth and filter,
//! PGM P2/P5, broken images with their exact errors (library and CLI), the
//! MNIST-style preparation, and a digit drawn in a test and predicted by a
//! workshop model.

mod common;

use std::io::{Cursor, Read};
use std::path::PathBuf;

use common::{expect, s};
use flate2::Crc;
use simdnet::data::digitize::{self, centre_of_mass, BOX, SIDE};
use simdnet::data::image::{self, Channels, Image};
use simdnet::data::png as ours;

// ---------------------------------------------------------------- helpers

/// Deterministic bytes (a 64-bit LCG): test pictures without a `rand` dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 56) as u8
    }
}

/// A png-crate encoding of packed `data`.
#[allow(clippy::too_many_arguments)]
fn encode_reference(
    width: u32,
    height: u32,
    colour: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<&[u8]>,
    trns: Option<&[u8]>,
    filter: png::Filter,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(colour);
    enc.set_depth(depth);
    enc.set_filter(filter);
    if let Some(p) = palette {
        enc.set_palette(p.to_vec());
    }
    if let Some(t) = trns {
        enc.set_trns(t.to_vec());
    }
    let mut w = enc.write_header().unwrap();
    w.write_image_data(data).unwrap();
    w.finish().unwrap();
    out
}

/// The png crate's decoding, expanded to 8-bit samples (palettes to RGB(A)).
fn decode_reference(bytes: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
    let mut dec = png::Decoder::new(Cursor::new(bytes.to_vec()));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

fn channels_of(c: png::ColorType) -> Channels {
    match c {
        png::ColorType::Grayscale => Channels::Grey,
        png::ColorType::GrayscaleAlpha => Channels::GreyAlpha,
        png::ColorType::Rgb => Channels::Rgb,
        png::ColorType::Rgba => Channels::Rgba,
        png::ColorType::Indexed => panic!("EXPAND leaves no palette"),
    }
}

/// The chunks of a PNG: (offset of the length field, type, data range).
fn chunks(bytes: &[u8]) -> Vec<(usize, [u8; 4], std::ops::Range<usize>)> {
    let mut pos = 8;
    let mut out = Vec::new();
    while pos + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = bytes[pos + 4..pos + 8].try_into().unwrap();
        out.push((pos, kind, pos + 8..pos + 8 + len));
        pos += 12 + len;
    }
    out
}

/// The filter type byte of every row, read from the inflated IDAT stream.
fn filter_types(bytes: &[u8], height: usize, stride: usize) -> Vec<u8> {
    let idat: Vec<u8> = chunks(bytes)
        .into_iter()
        .filter(|(_, k, _)| k == b"IDAT")
        .flat_map(|(_, _, r)| bytes[r].to_vec())
        .collect();
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), height * (stride + 1));
    (0..height).map(|r| raw[r * (stride + 1)]).collect()
}

/// Rewrites the IHDR data with `f` and fixes its CRC.
fn patch_ihdr(bytes: &[u8], f: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let (pos, kind, range) = chunks(&b)[0].clone();
    assert_eq!(&kind, b"IHDR");
    f(&mut b[range.clone()]);
    let mut crc = Crc::new();
    crc.update(&b[pos + 4..range.end]);
    b[range.end..range.end + 4].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

/// A valid 8-bit greyscale PNG of `w x h` (our writer).
fn grey_png(w: usize, h: usize) -> Vec<u8> {
    let mut rng = Lcg(7);
    let pixels: Vec<u8> = (0..w * h).map(|_| rng.next()).collect();
    ours::encode_grey(w, h, &pixels).unwrap()
}

fn problem(bytes: &[u8]) -> String {
    image::decode(bytes).expect_err("a broken image must be refused")
}

fn temp(name: &str) -> PathBuf {
    common::temp_file("images", name)
}

// ---------------------------------------------------------------- the PNG writer

#[test]
fn png_writer_output_decodes_with_the_png_crate_to_the_same_pixels() {
    let mut rng = Lcg(1);
    for (w, h) in [(1, 1), (3, 5), (28, 28), (113, 7), (640, 3)] {
        let pixels: Vec<u8> = (0..w * h).map(|_| rng.next()).collect();
        let bytes = ours::encode_grey(w, h, &pixels).unwrap();
        let (rw, rh, colour, decoded) = decode_reference(&bytes);
        assert_eq!(
            (rw as usize, rh as usize, colour),
            (w, h, png::ColorType::Grayscale)
        );
        assert_eq!(decoded, pixels, "{w}x{h}");
        // And our reader agrees.
        let back = image::decode(&bytes).unwrap();
        assert_eq!((back.width, back.height, back.channels), (w, h, Channels::Grey));
        assert_eq!(back.samples, pixels);
    }
    assert!(ours::encode_grey(2, 2, &[0; 3]).is_err());
    assert!(ours::encode_grey(0, 2, &[]).is_err());
}

// ---------------------------------------------------------------- the PNG reader

#[test]
fn png_reader_agrees_with_the_png_crate_on_every_colour_type_depth_and_filter() {
    use png::{BitDepth as D, ColorType as C, Filter as F};
    let (w, h) = (13u32, 9u32); // odd: sub-byte rows end in padding bits
    let kinds: &[(C, D, usize)] = &[
        (C::Grayscale, D::One, 1),
        (C::Grayscale, D::Two, 1),
        (C::Grayscale, D::Four, 1),
        (C::Grayscale, D::Eight, 1),
        (C::GrayscaleAlpha, D::Eight, 2),
        (C::Rgb, D::Eight, 3),
        (C::Rgba, D::Eight, 4),
        (C::Indexed, D::One, 1),
        (C::Indexed, D::Two, 1),
        (C::Indexed, D::Four, 1),
        (C::Indexed, D::Eight, 1),
    ];
    let filters = [F::NoFilter, F::Sub, F::Up, F::Avg, F::Paeth, F::Adaptive];
    let mut rng = Lcg(3);
    let mut seen_filters = [false; 5];
    let mut cases = 0;
    for &(colour, depth, samples) in kinds {
        let bits = depth as usize;
        let stride = (w as usize * samples * bits).div_ceil(8);
        // Smooth gradients plus noise, so that every filter predicts something.
        let mut smooth = vec![0u8; stride * h as usize];
        for y in 0..h as usize {
            for s in 0..w as usize * samples {
                let max = (1u32 << bits) - 1;
                let v = ((s as u32 * 7 + y as u32 * 11 + (rng.next() as u32 % 5)) % (max + 1)) & max;
                let bit = s * bits;
                smooth[y * stride + bit / 8] |= (v as u8) << (8 - bits - bit % 8);
            }
        }
        // And pure noise, where the filters' corner cases (Paeth's ties) all occur.
        let noise: Vec<u8> = (0..stride * h as usize).map(|_| rng.next()).collect();
        let entries = 1usize << bits.min(8);
        let palette: Vec<u8> = (0..entries * 3).map(|_| rng.next()).collect();
        let alphas: Vec<u8> = (0..entries / 2).map(|_| rng.next()).collect();
        let trns_options: &[Option<&[u8]>] = if colour == C::Indexed {
            &[None, Some(&alphas)]
        } else {
            &[None]
        };
        for (&trns, data) in trns_options.iter().flat_map(|t| [(t, &smooth), (t, &noise)]) {
            for filter in filters {
                let pal = (colour == C::Indexed).then_some(&palette[..]);
                let bytes = encode_reference(w, h, colour, depth, data, pal, trns, filter);
                for f in filter_types(&bytes, h as usize, stride) {
                    seen_filters[f as usize] = true;
                }
                let (rw, rh, rc, expected) = decode_reference(&bytes);
                let got =
                    image::decode(&bytes).unwrap_or_else(|e| panic!("{colour:?} {depth:?} {filter:?}: {e}"));
                assert_eq!((got.width, got.height), (rw as usize, rh as usize));
                assert_eq!(
                    got.channels,
                    channels_of(rc),
                    "{colour:?} {depth:?} {filter:?} trns {}",
                    trns.is_some()
                );
                assert_eq!(
                    got.samples,
                    expected,
                    "{colour:?} {depth:?} {filter:?} trns {}",
                    trns.is_some()
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * (kinds.len() + 4) * filters.len());
    assert_eq!(
        seen_filters, [true; 5],
        "every filter type must appear in some row"
    );
}

#[test]
fn png_reader_checks_each_filter_type_by_itself() {
    // One row per filter type, forced: encode each filter alone on 8-bit RGB
    // and check every row really carries that type, then decode.
    use png::Filter as F;
    let mut rng = Lcg(11);
    let (w, h) = (17usize, 6usize);
    let data: Vec<u8> = (0..w * h * 3)
        .map(|i| (i as u8).wrapping_mul(3) ^ (rng.next() & 7))
        .collect();
    for (filter, code) in [
        (F::NoFilter, 0),
        (F::Sub, 1),
        (F::Up, 2),
        (F::Avg, 3),
        (F::Paeth, 4),
    ] {
        let bytes = encode_reference(
            w as u32,
            h as u32,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &data,
            None,
            None,
            filter,
        );
        assert_eq!(filter_types(&bytes, h, w * 3), vec![code; h], "{filter:?}");
        assert_eq!(image::decode(&bytes).unwrap().samples, data, "{filter:?}");
    }
}

// ---------------------------------------------------------------- PGM

#[test]
fn pgm_p2_and_p5_read_back_the_pixels() {
    let mut rng = Lcg(5);
    let (w, h) = (7usize, 4usize);
    let pixels: Vec<u8> = (0..w * h).map(|_| rng.next()).collect();
    let mut p5 = format!("P5\n# made by a test\n{w} {h}\n255\n").into_bytes();
    p5.extend_from_slice(&pixels);
    let mut p2 = format!("P2\n{w}\n# a comment between the numbers\n{h} 255\n");
    for row in pixels.chunks(w) {
        p2.push_str(&row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "));
        p2.push('\n');
    }
    for (name, bytes) in [("P5", p5), ("P2", p2.into_bytes())] {
        let img = image::decode(&bytes).unwrap();
        assert_eq!(
            (img.width, img.height, img.channels),
            (w, h, Channels::Grey),
            "{name}"
        );
        assert_eq!(img.samples, pixels, "{name}");
    }
    // maxval 15: 0..=15 is scaled to 0..=255.
    let img = image::decode(b"P2 3 1 15 0 8 15").unwrap();
    assert_eq!(img.samples, vec![0, 136, 255]);
    let img = image::decode(b"P5 2 1 1\n\x00\x01").unwrap();
    assert_eq!(img.samples, vec![0, 255]);
}

#[test]
fn broken_pgms_get_one_clear_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"P5\n2 2\n65535\n\0\0\0\0\0\0\0\0", "its maxval is 65535, so it has 16-bit samples, which simdnet does not read; save it with 8 bits per sample (maxval 255)"),
        (b"P5\n3 2\n255\n\x01\x02\x03\x04\x05", "the file is truncated: it holds 5 of the 6 pixels its 3x2 header promises"),
        (b"P2\n2 2\n255\n1 2 3", "the file is truncated: it holds 3 of the 4 pixels its 2x2 header promises"),
        (b"P2\n2 1\n100\n1 200", "pixel 1 is 200, above its maxval 100: the file is damaged"),
        (b"P2\n2 1\n255\n1 x", "where its pixel 1 should be there is 'x', not a number: the file is damaged"),
        (b"P5\n0 5\n255\n", "its header says 0x5 pixels: an image needs at least one pixel"),
        (b"P5\n100000 100000\n255\n", "its header says 100000x100000 pixels, more than simdnet reads"),
        (b"P5\n99999999999999999999999 1\n255\n", "more than simdnet reads"),
        (b"P5\n4 4\n0\n", "its maxval is 0; it must be 1 to 255"),
        (b"P5\n4 4", "the file is truncated: it ends before its maxval"),
        (b"P5x", "not followed by a space: it is not a PGM file"),
    ];
    for (bytes, expected) in cases {
        let p = problem(bytes);
        assert!(
            p.contains(expected),
            "{:?}: got '{p}', expected '{expected}'",
            String::from_utf8_lossy(bytes)
        );
    }
}

// ---------------------------------------------------------------- broken PNGs

#[test]
fn broken_pngs_get_one_clear_error() {
    let good = grey_png(6, 5);
    assert!(image::decode(&good).is_ok());
    let interlaced = patch_ihdr(&good, |d| d[12] = 1);
    let zero = patch_ihdr(&good, |d| d[..4].copy_from_slice(&0u32.to_be_bytes()));
    let huge = patch_ihdr(&good, |d| {
        d[..4].copy_from_slice(&100_000u32.to_be_bytes());
        d[4..8].copy_from_slice(&100_000u32.to_be_bytes());
    });
    let too_many_pixels = patch_ihdr(&good, |d| {
        d[..4].copy_from_slice(&10_000u32.to_be_bytes());
        d[4..8].copy_from_slice(&10_000u32.to_be_bytes());
    });
    let sixteen = encode_reference(
        2,
        2,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &[0; 8],
        None,
        None,
        png::Filter::NoFilter,
    );
    let idat = chunks(&good).into_iter().find(|(_, k, _)| k == b"IDAT").unwrap();
    let mut bad_crc = good.clone();
    bad_crc[idat.2.start + 2] ^= 0x40;
    let truncated = good[..good.len() / 2].to_vec();
    let no_iend = good[..good.len() - 12].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("interlaced", interlaced, "it is interlaced (Adam7), which simdnet does not read; save it again without interlacing"),
        ("16-bit", sixteen, "it has 16 bits per sample, which simdnet does not read; save it with 8 bits per sample"),
        ("zero width", zero, "its header says 0x5 pixels: an image needs at least one pixel"),
        ("huge", huge, "its header says 100000x100000 pixels, more than simdnet reads (at most 16384 pixels a side and 40000000 in all); scale it down first"),
        ("too many pixels", too_many_pixels, "its header says 10000x10000 pixels, more than simdnet reads"),
        ("bad CRC", bad_crc, "the CRC of its IDAT chunk is wrong"),
        ("truncated", truncated, "the file is truncated: its IDAT chunk claims"),
        ("no IEND", no_iend, "the file is truncated: it ends after"),
        ("not an image", b"hello, world\n".to_vec(), "it is neither a PNG nor a PGM (P2/P5) image"),
        ("empty", Vec::new(), "the file is empty"),
    ];
    for (name, bytes, expected) in &cases {
        let p = problem(bytes);
        assert!(p.contains(expected), "{name}: got '{p}', expected '{expected}'");
    }
    // Every prefix and every single-byte change of a valid PNG is refused, never a panic.
    for cut in 0..good.len() {
        assert!(
            image::decode(&good[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    for i in 8..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x01;
        assert!(image::decode(&b).is_err(), "byte {i} flipped, accepted");
    }
}

#[test]
fn png_inflate_stops_at_the_size_the_header_promises() {
    // A 1000x1000 header (1001000 bytes once inflated) with a zlib stream of
    // 64 MB of zeros that never ends (no final block): a reader bounded by
    // the header stops one byte past 1001000 and says so; one that inflated
    // everything would use 64 MB and then find the stream cut short.
    let good = grey_png(1000, 1000);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    std::io::Write::write_all(&mut z, &zeros).unwrap();
    std::io::Write::flush(&mut z).unwrap();
    let mut bomb = z.get_ref().clone();
    std::io::Write::write_all(&mut z, &zeros).unwrap();
    std::io::Write::flush(&mut z).unwrap();
    let megabyte = z.get_ref()[bomb.len()..].to_vec(); // 1 MB more zeros, as deflate blocks
    for _ in 1..64 {
        bomb.extend_from_slice(&megabyte);
    }
    let mut bytes = good[..8 + 25].to_vec(); // signature + IHDR chunk
    bytes.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
    let mut crc = Crc::new();
    crc.update(b"IDAT");
    crc.update(&bomb);
    bytes.extend_from_slice(b"IDAT");
    bytes.extend_from_slice(&bomb);
    bytes.extend_from_slice(&crc.sum().to_be_bytes());
    bytes.extend_from_slice(&good[good.len() - 12..]); // IEND
    assert_eq!(
        problem(&bytes),
        "it holds more image data than its 1000x1000 header promises: the file is damaged"
    );
}

#[test]
fn predict_image_names_the_file_and_the_problem() {
    let model = temp("untrained.bin");
    let net = simdnet::nn::Network::mlp(784, &[8], 10, simdnet::nn::Activation::Relu, 1).unwrap();
    simdnet::nn::model_file::save(&net, &model).unwrap();
    let good = grey_png(6, 5);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "interlaced.png",
            patch_ihdr(&good, |d| d[12] = 1),
            "it is interlaced (Adam7)",
        ),
        (
            "deep.png",
            encode_reference(
                2,
                2,
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                &[0; 8],
                None,
                None,
                png::Filter::NoFilter,
            ),
            "it has 16 bits per sample",
        ),
        ("cut.png", good[..40].to_vec(), "the file is truncated"),
        (
            "zero-height.png",
            patch_ihdr(&good, |d| d[4..8].copy_from_slice(&0u32.to_be_bytes())),
            "its header says 6x0 pixels",
        ),
        (
            "notes.txt",
            b"not a picture".to_vec(),
            "it is neither a PNG nor a PGM",
        ),
        (
            "blank.pgm",
            b"P2 3 3 255 9 9 9 9 9 9 9 9 9".to_vec(),
            "no digit found: the picture is almost one flat grey",
        ),
    ];
    for (name, bytes, expected) in &cases {
        let path = temp(name);
        std::fs::write(&path, bytes).unwrap();
        let (out, err) = expect(&["predict", "--model", s(&model), "--image", s(&path)], 1);
        let want = format!("error: '{}' is not a usable image: {expected}", s(&path));
        assert!(err.contains(&want), "{name}: got\n{err}\nexpected\n{want}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(out.is_empty(), "{out}");
    }
    for (path, expected) in [
        (
            "/dev/zero",
            "it is not a regular file (a device, a pipe or a socket)",
        ),
        ("/", "it is a folder"),
    ] {
        let (_, err) = expect(&["predict", "--model", s(&model), "--image", path], 1);
        assert!(
            err.contains(&format!("error: '{path}' is not a usable image: {expected}")),
            "{err}"
        );
    }
    let (_, err) = expect(
        &["predict", "--model", s(&model), "--image", "/no/such/digit.png"],
        1,
    );
    assert!(
        err.contains("cannot open the image '/no/such/digit.png'"),
        "{err}"
    );
    // A model that does not take 28x28 images.
    let small = temp("small-input.bin");
    let net = simdnet::nn::Network::mlp(100, &[], 10, simdnet::nn::Activation::Relu, 1).unwrap();
    simdnet::nn::model_file::save(&net, &small).unwrap();
    let path = temp("ok.png");
    std::fs::write(&path, &good).unwrap();
    let (_, err) = expect(&["predict", "--model", s(&small), "--image", s(&path)], 1);
    assert!(
        err.contains("takes 100 inputs per image, but --image prepares a 28x28 digit (784 pixels)"),
        "{err}"
    );
}

// ---------------------------------------------------------------- preparation

/// A pen stroke from one point to another, in pixels.
type Segment = ((f64, f64), (f64, f64));

/// A picture of anti-aliased strokes: ink 1.0 where a point is within
/// `radius` of a segment. `light` gives black ink on white.
fn strokes(w: usize, h: usize, segments: &[Segment], radius: f64, light: bool) -> Vec<u8> {
    (0..w * h)
        .map(|i| {
            let (px, py) = ((i % w) as f64 + 0.5, (i / w) as f64 + 0.5);
            let d = segments
                .iter()
                .map(|&((ax, ay), (bx, by))| {
                    let (dx, dy) = (bx - ax, by - ay);
                    let len2 = dx * dx + dy * dy;
                    let t = if len2 == 0.0 {
                        0.0
                    } else {
                        (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
                    };
                    ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            let ink = (radius + 0.5 - d).clamp(0.0, 1.0);
            let v = (ink * 255.0).round() as u8;
            if light {
                255 - v
            } else {
                v
            }
        })
        .collect()
}

/// An ellipse ring as short segments.
fn ring(cx: f64, cy: f64, rx: f64, ry: f64) -> Vec<Segment> {
    let p = |k: usize| {
        let a = k as f64 * std::f64::consts::TAU / 48.0;
        (cx + rx * a.cos(), cy + ry * a.sin())
    };
    (0..48).map(|k| (p(k), p(k + 1))).collect()
}

fn grey(w: usize, h: usize, samples: Vec<u8>) -> Image {
    Image {
        width: w,
        height: h,
        channels: Channels::Grey,
        samples,
    }
}

/// The ink's bounding box in a prepared digit: (width, height).
fn ink_box(pixels: &[u8]) -> (usize, usize) {
    let on: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i] > 0).collect();
    let xs = on.iter().map(|i| i % SIDE);
    let ys = on.iter().map(|i| i / SIDE);
    (
        xs.clone().max().unwrap() - xs.min().unwrap() + 1,
        ys.clone().max().unwrap() - ys.min().unwrap() + 1,
    )
}

#[test]
fn preparation_centres_the_mass_fits_20x20_and_keeps_the_aspect() {
    // An off-centre ring in a wide picture, and a tall thin bar.
    let wide = grey(
        300,
        120,
        strokes(300, 120, &ring(220.0, 50.0, 25.0, 40.0), 5.0, false),
    );
    let d = digitize::prepare(&wide).unwrap();
    assert!(!d.inverted);
    let (cx, cy) = centre_of_mass(&d.pixels, SIDE).unwrap();
    assert!(
        (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
        "centre of mass at ({cx}, {cy})"
    );
    let (bw, bh) = ink_box(&d.pixels);
    assert!(bw <= BOX && bh == BOX, "ink box {bw}x{bh}");
    // 61x91 pixels of ink scale to 13x20: the aspect ratio is kept.
    assert_eq!(d.scaled.1, BOX);
    assert!(
        (d.scaled.0 as f64 / BOX as f64 - 61.0 / 91.0).abs() < 0.05,
        "{:?}",
        d.scaled
    );

    // A "7" and an "L": their centres of mass are far from their boxes'
    // centres, so centring the box instead of the mass would miss (14, 14).
    let seven = [((50.0, 35.0), (150.0, 35.0)), ((150.0, 35.0), (85.0, 175.0))];
    let ell = [((40.0, 30.0), (40.0, 170.0)), ((40.0, 170.0), (150.0, 170.0))];
    for (name, shape) in [("7", &seven), ("L", &ell)] {
        let d = digitize::prepare(&grey(200, 200, strokes(200, 200, shape, 9.0, false))).unwrap();
        let (cx, cy) = centre_of_mass(&d.pixels, SIDE).unwrap();
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{name}: centre of mass at ({cx}, {cy})"
        );
        let (bw, bh) = ink_box(&d.pixels);
        assert!(bw <= BOX && bh == BOX, "{name}: ink box {bw}x{bh}");
    }

    let bar = grey(
        50,
        200,
        strokes(50, 200, &[((25.0, 20.0), (25.0, 180.0))], 4.0, false),
    );
    let d = digitize::prepare(&bar).unwrap();
    assert_eq!(d.scaled, (1, 20), "a 9x169 bar becomes 1x20");
    let (cx, cy) = centre_of_mass(&d.pixels, SIDE).unwrap();
    assert!(
        (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
        "centre of mass at ({cx}, {cy})"
    );
    assert_eq!(ink_box(&d.pixels), (1, 20));
}

#[test]
fn a_light_background_is_inverted_whatever_the_colour_type() {
    let (w, h) = (90, 70);
    let segs = ring(45.0, 35.0, 20.0, 28.0);
    let dark = digitize::prepare(&grey(w, h, strokes(w, h, &segs, 4.0, false))).unwrap();
    let light_pixels = strokes(w, h, &segs, 4.0, true);
    let light = digitize::prepare(&grey(w, h, light_pixels.clone())).unwrap();
    assert!(light.inverted && !dark.inverted);
    assert_eq!(
        light.pixels, dark.pixels,
        "black on white prepares as white on black"
    );
    // The digit is light ink on black, as MNIST: the corners are 0 and the ink reaches 255.
    assert_eq!(light.pixels[0], 0);
    assert_eq!(light.pixels.iter().max(), Some(&255));
    // The same picture as RGB, grey+alpha and RGBA.
    let rgb = Image {
        width: w,
        height: h,
        channels: Channels::Rgb,
        samples: light_pixels.iter().flat_map(|&v| [v, v, v]).collect(),
    };
    let ga = Image {
        width: w,
        height: h,
        channels: Channels::GreyAlpha,
        samples: light_pixels.iter().flat_map(|&v| [v, 255]).collect(),
    };
    // Black ink on a transparent background: transparent is laid over white.
    let transparent = Image {
        width: w,
        height: h,
        channels: Channels::Rgba,
        samples: light_pixels.iter().flat_map(|&v| [0, 0, 0, 255 - v]).collect(),
    };
    for (name, img) in [
        ("RGB", rgb),
        ("grey+alpha", ga),
        ("RGBA transparent", transparent),
    ] {
        let d = digitize::prepare(&img).unwrap();
        assert!(d.inverted, "{name}");
        let diff = d
            .pixels
            .iter()
            .zip(&dark.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(diff <= 2, "{name}: differs by up to {diff}");
    }
    // A photo of grey paper: background 180, ink 40. The background becomes 0.
    let paper: Vec<u8> = light_pixels
        .iter()
        .map(|&v| (40 + (v as u32 * 140 / 255)) as u8)
        .collect();
    let d = digitize::prepare(&grey(w, h, paper)).unwrap();
    assert!(d.inverted);
    assert_eq!(d.pixels[0], 0);
    assert_eq!(d.pixels.iter().max(), Some(&255));
}

#[test]
fn a_blank_picture_has_no_digit() {
    for v in [0u8, 128, 255] {
        let e = digitize::prepare(&grey(40, 30, vec![v; 1200])).unwrap_err();
        assert!(
            e.starts_with("no digit found: the picture is almost one flat grey"),
            "{e}"
        );
    }
}

#[test]
fn a_hand_built_image_whose_size_does_not_match_its_pixels_is_an_error() {
    // A library user may fill an `Image` by hand. 2^63 + 1 columns by 2 rows
    // (2^31 + 1 on 32 bits) is 2 pixels once the product wraps round (fuzz
    // target `image`).
    let width = usize::MAX / 2 + 2;
    let wraps = Image {
        width,
        height: 2,
        channels: Channels::Grey,
        samples: vec![0, 255],
    };
    let short = grey(40, 30, vec![0; 1199]);
    for (image, says) in [
        (&wraps, &format!("instead of the {width}x2")[..]),
        (&short, "1199 pixels instead of the 40x30"),
    ] {
        let e = digitize::prepare(image).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}

// ---------------------------------------------------------------- a digit drawn by hand

/// Writes a 200x200 RGB PNG (png crate) of strokes, dark ink on white paper.
fn drawn(name: &str, segments: &[Segment], radius: f64) -> PathBuf {
    let grey = strokes(200, 200, segments, radius, true);
    let rgb: Vec<u8> = grey
        .iter()
        .flat_map(|&v| [v, v, (v as u16 * 9 / 10 + 20).min(255) as u8])
        .collect();
    let bytes = encode_reference(
        200,
        200,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
        None,
        None,
        png::Filter::Adaptive,
    );
    let path = temp(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_digit_drawn_in_a_200x200_picture_is_predicted_by_a_workshop_model() {
    let model = temp("workshop.simdnet");
    let (out, _) = expect(&["train", "--threads", "2", "--save", s(&model)], 0);
    assert!(out.contains("Test accuracy: 0.9"), "{out}");
    let digits: Vec<(usize, PathBuf)> = vec![
        (1, drawn("one.png", &[((96.0, 30.0), (104.0, 170.0))], 9.0)),
        (0, drawn("zero.png", &ring(100.0, 100.0, 48.0, 70.0), 9.0)),
        (
            7,
            drawn(
                "seven.png",
                &[((50.0, 35.0), (150.0, 35.0)), ((150.0, 35.0), (85.0, 175.0))],
                9.0,
            ),
        ),
    ];
    for (digit, path) in digits {
        let (out, _) = expect(&["predict", "--model", s(&model), "--image", s(&path)], 0);
        assert!(out.contains("200x200 RGB, light background (inverted"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("  |")).count(),
            SIDE,
            "the 28x28 digit is drawn:\n{out}"
        );
        assert!(
            out.contains(&format!("Predicted: {digit}\n")),
            "the drawn {digit}:\n{out}"
        );
    }
}
