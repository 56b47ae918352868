//! The profiling and tuning tools: the tuning file, kernel verification, the profile table.
//! No timing assertions: timings are noisy.

use std::path::{Path, PathBuf};

use simdnet::profile::engine_knobs::BlockSizes;
use simdnet::profile::tune_config::{self, TuneConfig};
use simdnet::Error;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("simdnet-profile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn problem(text: &str) -> String {
    match tune_config::parse(text, Path::new("t.cfg")) {
        Err(Error::BadConfig { problem, .. }) => problem,
        other => panic!("expected BadConfig for {text:?}, got {other:?}"),
    }
}

#[test]
fn config_round_trips_through_an_atomic_write() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("simdnet-tune.cfg");
    let cfg = TuneConfig {
        blocks: BlockSizes {
            mc: 96,
            kc: 384,
            nc: 2048,
        },
        kernel: None,
    };
    tune_config::save(&path, &cfg, &["a comment".into()]).unwrap();
    assert_eq!(tune_config::load(&path).unwrap(), cfg);
    let with_kernel = TuneConfig {
        kernel: Some("reference".into()),
        ..cfg.clone()
    };
    tune_config::save(&path, &with_kernel, &[]).unwrap();
    assert_eq!(tune_config::load(&path).unwrap(), with_kernel);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_accepts_comments_blank_lines_and_spaces() {
    let cfg = tune_config::parse("# hi\n\n version=1\nmc = 8\n  kc =16 \nnc= 32\n", Path::new("x")).unwrap();
    assert_eq!(
        cfg.blocks,
        BlockSizes {
            mc: 8,
            kc: 16,
            nc: 32
        }
    );
}

#[test]
fn every_malformed_config_is_a_clear_error() {
    let ok = "version = 1\nmc = 96\nkc = 256\nnc = 4096\n";
    assert!(tune_config::parse(ok, Path::new("x")).is_ok());
    let cases: &[(&str, &str)] = &[
        ("mc = 96\nkc = 256\nnc = 4096\n", "no `version = 1` line"),
        (
            "version = 2\nmc = 96\nkc = 256\nnc = 4096\n",
            "version 2 is not supported",
        ),
        ("version = 1\nmc = 96\nkc = 256\n", "'nc' is missing"),
        (
            "version = 1\nmc = 96\nkc = 256\nnc = 4096\nfoo = 3\n",
            "unknown key 'foo'",
        ),
        (
            "version = 1\nmc = abc\nkc = 256\nnc = 4096\n",
            "mc must be a whole number, found 'abc'",
        ),
        ("version = 1\nmc = -4\nkc = 256\nnc = 4096\n", "whole number"),
        (
            "version = 1\nmc = 96\nkc = 0\nnc = 4096\n",
            "kc must be at least 1",
        ),
        (
            "version = 1\nmc = 96\nkc = 256\nnc = 99999999999\n",
            "absurdly large",
        ),
        (
            "version = 1\nmc = 96\nkc = 16384\nnc = 1048576\n",
            "absurdly large for a packed block",
        ),
        (
            "version = 1\nmc = 96\nmc = 96\nkc = 256\nnc = 4096\n",
            "'mc' is given twice",
        ),
        (
            "version = 1\nmc 96\nkc = 256\nnc = 4096\n",
            "line 2: expected `key = value`",
        ),
        (
            "version = one\nmc = 96\nkc = 256\nnc = 4096\n",
            "version must be a whole number",
        ),
    ];
    for (text, want) in cases {
        let p = problem(text);
        assert!(p.contains(want), "for {text:?}: got '{p}', wanted '{want}'");
    }
    // The message names the file and the fix.
    let e = tune_config::parse("version = 7", Path::new("my.cfg"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("my.cfg") && e.contains("simdnet tune"), "{e}");
}

#[test]
fn a_missing_or_ignored_config_is_not_an_error_but_a_bad_one_is() {
    let dir = temp_dir("apply");
    let path = dir.join("simdnet-tune.cfg");
    assert_eq!(tune_config::apply_from(&path, false).unwrap(), None);
    std::fs::write(&path, "version = 1\nmc = 0\n").unwrap();
    assert!(tune_config::apply_from(&path, true).unwrap().is_none());
    assert!(matches!(
        tune_config::apply_from(&path, false),
        Err(Error::BadConfig { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
