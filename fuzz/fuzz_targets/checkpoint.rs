//! The checkpoint reader (`checkpoint::from_bytes`) on arbitrary bytes, as
//! they are and with the magic and the trailing checksum made to match (so
//! that the fuzzer reaches the sections behind them).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use simdnet::nn::{checkpoint, model_file};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.ck");
    let _ = checkpoint::from_bytes(data, path);
    let mut fixed = checkpoint::MAGIC.to_vec();
    fixed.extend_from_slice(data);
    fixed.extend_from_slice(&[0; 8]);
    let body = fixed.len() - 8;
    let sum = model_file::fnv1a64(&fixed[..body]);
    fixed[body..].copy_from_slice(&sum.to_le_bytes());
    let _ = checkpoint::from_bytes(&fixed, path);
});
