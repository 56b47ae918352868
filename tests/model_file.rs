//! The model file: round trip, atomic save, and every way a file can be bad.

mod common;

use std::path::{Path, PathBuf};

use common::{model_load_err, reseal};
use simdnet::matrix::MatRef;
use simdnet::nn::{model_file, Activation, Network};

fn temp_dir(name: &str) -> PathBuf {
    let d = common::scratch_root().join(format!("simdnet-model-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_net() -> Network {
    Network::mlp(12, &[7, 5], 3, Activation::Sigmoid, 9).unwrap()
}

#[test]
fn save_then_load_predicts_identically() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("m.simdnet");
    let net = small_net();
    model_file::save(&net, &path).unwrap();
    let back = model_file::load(&path).unwrap();
    assert_eq!(net, back);
    let x: Vec<u8> = (0..4 * 12).map(|i| (i * 37 % 256) as u8).collect();
    let a = net.predict(MatRef::from_slice(&x, 4, 12)).unwrap();
    let b = back.predict(MatRef::from_slice(&x, 4, 12)).unwrap();
    assert_eq!(a, b);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn save_into_a_missing_folder_fails_cleanly() {
    let err = model_file::save(&small_net(), Path::new("/nonexistent-simdnet-dir/m.bin")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot save the model to '/nonexistent-simdnet-dir/m.bin': the folder '/nonexistent-simdnet-dir' does not exist; create it (mkdir -p '/nonexistent-simdnet-dir') or choose another path"
    );
}

#[test]
fn saving_over_an_existing_model_replaces_it_whole() {
    let dir = temp_dir("replace");
    let path = dir.join("m.simdnet");
    model_file::save(&small_net(), &path).unwrap();
    let other = Network::mlp(12, &[4], 3, Activation::Tanh, 1).unwrap();
    model_file::save(&other, &path).unwrap();
    assert_eq!(model_file::load(&path).unwrap(), other);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_and_truncated_files_are_rejected_with_a_reason() {
    let good = model_file::to_bytes(&small_net());
    assert!(model_load_err(&[]).contains("empty"));
    assert!(model_load_err(b"hello world, not a model").contains("magic"));
    assert!(model_load_err(&good[..20]).contains("truncated"));
    for cut in [good.len() - 1, good.len() / 2, 40] {
        let e = model_load_err(&good[..cut]);
        assert!(
            e.contains("checksum") || e.contains("truncated"),
            "cut {cut}: {e}"
        );
    }
    let mut flipped = good.clone();
    flipped[100] ^= 0x40;
    assert!(model_load_err(&flipped).contains("checksum"));
    let mut version = good.clone();
    version[8] = 9;
    assert!(model_load_err(&reseal(version)).contains("version 9"));
    let mut act = good.clone();
    act[24] = 77; // first layer's activation code
    assert!(model_load_err(&reseal(act)).contains("activation code 77"));
    let mut width = good.clone();
    width[20] = 0;
    width[21] = 0; // first layer's width 7 -> 0
    assert!(model_load_err(&reseal(width)).contains("width"));
    let mut nan = good.clone();
    let at = nan.len() - 12;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(model_load_err(&reseal(nan)).contains("non-finite"));
    let mut extra = good.clone();
    extra.splice(good.len() - 8..good.len() - 8, [0u8; 4]);
    assert!(model_load_err(&reseal(extra)).contains("describes"));
    // Every message says how to get a good model.
    assert!(model_load_err(&[]).contains("simdnet train --save"));
}

#[test]
fn a_missing_model_names_the_path() {
    let e = model_file::load(Path::new("no-such-model.simdnet"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-model.simdnet"), "{e}");
}
