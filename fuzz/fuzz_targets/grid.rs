//! The grid file of `simdnet sweep --grid FILE` (`cli::sweep::grid::from_file`)
//! on arbitrary bytes, written to a file of this process's own (left in the
//! temporary folder, `simdnet-fuzz-grid-PID.txt`); the rows it
//! reads then go through the checks and descriptions `sweep` uses before it
//! trains (sizes for MNIST's 28x28x1 images and 10 classes, the optimiser,
//! the table's cells).
//!
//! What must hold: `Ok` or `Err`, never a panic; every message, and every
//! row's table cell and progress line, is one line without control
//! characters.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use simdnet::cli::sweep::grid;
use simdnet::cli::CliError;
use simdnet::geometry::ImageShape;
use simdnet::nn::spec::InputShape;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| std::env::temp_dir().join(format!("simdnet-fuzz-grid-{}.txt", std::process::id())))
}

fn clean(msg: &str) {
    assert!(!msg.chars().any(char::is_control), "control character in {msg:?}");
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(file(), data).expect("the fuzz grid file is writable");
    let rows = match grid::from_file(file()) {
        Ok(rows) => rows,
        Err(CliError::Usage(e)) => return clean(&e.0),
        Err(CliError::Run(e)) => return clean(&e.to_string()),
        Err(CliError::Exit(code)) => panic!("a grid file made sweep exit with {code}"),
    };
    let input = InputShape::Image(ImageShape::new(1, 28, 28, 1).expect("28x28x1"));
    if let Err(e) = grid::check_sizes(&rows, input, 10) {
        clean(&e.0);
    }
    for t in &rows {
        let _ = t.layer_activations();
        if let Err(e) = t.build_optimizer() {
            clean(&e);
        }
        let _ = t.params(input, 10);
        clean(&t.architecture(10));
        clean(&t.short(10));
    }
});
