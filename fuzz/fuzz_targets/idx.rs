//! The IDX reader on arbitrary bytes, raw or (when they start with `1f 8b`) gzipped:
//! as an image file and as a label file. Any input must give `Ok` or `Err`, never a
//! panic, and never allocate more than the header's promise allows.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use simdnet::data::idx;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok((n, r, c, pixels)) = idx::parse_images(data, path) {
        assert_eq!(pixels.len(), n * r * c);
    }
    if let Ok(labels) = idx::parse_labels(data, path) {
        assert!(!labels.is_empty());
    }
});
