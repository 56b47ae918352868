//! The IDX reader behind the gzip decoder: the input (after one control byte)
//! is gzipped, split into one or two gzip members, and optionally followed by
//! junk, so that the fuzzer explores the decoded contents (headers, sizes,
//! bodies) rather than the deflate bits.
#![no_main]

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use simdnet::data::idx;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    // Bits 0-3: where to cut the body into two members (0: one member);
    // bits 4-5: what follows the gzip data (nothing, a zero, junk, a cut).
    let cut = (control & 0x0f) as usize;
    let mut file = if cut > 0 && cut < body.len() {
        let mut v = gzip(&body[..cut]);
        v.extend(gzip(&body[cut..]));
        v
    } else {
        gzip(body)
    };
    match control >> 4 & 0x03 {
        1 => file.push(0),
        2 => file.extend_from_slice(b"junk"),
        3 => {
            let keep = file.len().saturating_sub(1 + cut);
            file.truncate(keep);
        }
        _ => {}
    }
    let path = Path::new("fuzz.idx.gz");
    if let Ok((n, r, c, pixels)) = idx::parse_images(&file, path) {
        assert_eq!(pixels.len(), n * r * c);
    }
    let _ = idx::parse_labels(&file, path);
});
