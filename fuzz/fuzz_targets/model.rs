//! The model reader (`model_file::from_bytes`) on arbitrary bytes, as they are
//! and with the trailing checksum made to match (so that the fuzzer reaches
//! the header and layer checks behind it).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use simdnet::nn::model_file;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.simdnet");
    let _ = model_file::from_bytes(data, path);
    if data.len() >= 8 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 8;
        let sum = model_file::fnv1a64(&fixed[..body]);
        fixed[body..].copy_from_slice(&sum.to_le_bytes());
        if let Ok(net) = model_file::from_bytes(&fixed, path) {
            // What loads must save to bytes that load to the same network, and,
            // when saved in the version it was read from (v1 and an all-dense
            // v3 are saved as v2), to the same bytes.
            let saved = model_file::to_bytes(&net);
            assert_eq!(model_file::from_bytes(&saved, path).ok(), Some(net));
            if saved[8..12] == fixed[8..12] {
                assert_eq!(saved, fixed);
            }
        }
    }
});
