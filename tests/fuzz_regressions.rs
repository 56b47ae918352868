//! The fuzz targets' inputs worth keeping, replayed on stable: every file
//! under `tests/fuzz-cases/TARGET/` (crashes the fuzzers found, once fixed,
//! and hand-made hostile cases) must give an `Err` with a clean message,
//! never a panic. The targets themselves live in `fuzz/` (see docs/FUZZING.md);
//! each function here does what its target does.

use std::fs;
use std::path::{Path, PathBuf};

use simdnet::cli::sweep::grid;
use simdnet::cli::{args, bench, commands, common, CliError};
use simdnet::data::idx;
use simdnet::nn::{checkpoint, model_file};
use simdnet::profile::tune_config;

/// Every case file of `target`, sorted; at least one.
fn cases(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-cases")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// A message must be one clean line: no control characters from the input.
fn clean(msg: &str, case: &Path) {
    assert!(
        !msg.chars().any(|c| c.is_control()),
        "{}: control character in {msg:?}",
        case.display()
    );
}

#[test]
fn idx_cases_are_errors() {
    for (case, bytes) in cases("idx") {
        let images = idx::parse_images(&bytes, &case);
        let labels = idx::parse_labels(&bytes, &case);
        match (images, labels) {
            (Err(a), Err(b)) => {
                clean(&a.to_string(), &case);
                clean(&b.to_string(), &case);
            }
            _ => panic!("{} was read as valid", case.display()),
        }
    }
}

#[test]
fn model_cases_are_errors() {
    for (case, bytes) in cases("model") {
        match model_file::from_bytes(&bytes, &case) {
            Err(e) => clean(&e.to_string(), &case),
            Ok(_) => panic!("{} was read as a model", case.display()),
        }
    }
}

#[test]
fn checkpoint_cases_are_errors() {
    let cases = cases("checkpoint");
    assert!(cases.len() >= 6, "the checkpoint cases are missing");
    for (case, bytes) in cases {
        match checkpoint::from_bytes(&bytes, &case) {
            Err(e) => clean(&e.to_string(), &case),
            Ok(_) => panic!("{} was read as a checkpoint", case.display()),
        }
    }
}

#[test]
fn tune_config_cases_are_errors() {
    for (case, bytes) in cases("tune_config") {
        let text = String::from_utf8_lossy(&bytes);
        match tune_config::parse(&text, &case) {
            Err(e) => clean(&e.to_string(), &case),
            Ok(c) => panic!("{} was accepted: {c:?}", case.display()),
        }
    }
}

/// What the `args` target does: the first byte picks the command, NUL bytes
/// split the arguments; `Err` if the parser or a shared value reader refuses.
fn args_case(bytes: &[u8]) -> Result<(), String> {
    let (&pick, rest) = bytes.split_first().ok_or("empty case")?;
    let cmds = commands();
    let cmd = &cmds[pick as usize % cmds.len()];
    let argv: Vec<String> = rest
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let p = args::parse(cmd.name, cmd.flags, &argv).map_err(|e| e.0)?;
    common::hidden_layers(&p).map_err(|e| e.0)?;
    common::threads(&p).map_err(|e| e.0)?;
    common::split(&p).map_err(|e| e.0)?;
    if let Some(layers) = p.raw("layers") {
        bench::parse_networks(layers).map_err(|e| e.0)?;
    }
    Ok(())
}

#[test]
fn args_cases_are_errors() {
    for (case, bytes) in cases("args") {
        match args_case(&bytes) {
            Err(e) => clean(&e, &case),
            Ok(()) => panic!("{} was accepted", case.display()),
        }
    }
}

#[test]
fn grid_cases_are_errors() {
    // from_file reads the case's own file, as sweep --grid does
    for (case, _) in cases("grid") {
        match grid::from_file(&case) {
            Err(CliError::Usage(e)) => clean(&e.0, &case),
            Err(CliError::Run(e)) => clean(&e.to_string(), &case),
            Err(CliError::Exit(code)) => panic!("{} made sweep exit with {code}", case.display()),
            Ok(rows) => panic!("{} was read as {} rows", case.display(), rows.len()),
        }
    }
}
