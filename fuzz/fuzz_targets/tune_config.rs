//! The tuning-file parser on arbitrary text: `Ok` only for sizes in the
//! GEMM's ranges, and no message may carry a raw control character.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use simdnet::profile::tune_config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match tune_config::parse(&text, Path::new("fuzz.cfg")) {
        Ok(cfg) => assert_eq!(cfg.blocks.validate(), Ok(())),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.chars().any(|c| c.is_control()),
                "raw control character in {msg:?}"
            );
        }
    }
});
