//! Saving never harms a file it was not asked to write: every destination
//! that is not absent or a regular, writable, singly-linked file is refused
//! with a message, and left exactly as it was.

#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use simdnet::nn::{model_file, Network};
use simdnet::{activation::Activation, safe_file};

fn scratch(name: &str) -> PathBuf {
    let d = common::scratch_root().join(format!("simdnet-safe-save-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn net() -> Network {
    Network::mlp(6, &[3], 2, Activation::Relu, 1).unwrap()
}

/// Saving to `path` fails with exactly `problem` after the standard prefix,
/// and so does the check before work starts.
fn refused(path: &Path, problem: &str) {
    let want = format!("cannot save the model to '{}': {problem}", path.display());
    let e = model_file::save(&net(), path).unwrap_err().to_string();
    assert_eq!(e, want);
    let e = safe_file::check_destination(path, "model")
        .unwrap_err()
        .to_string();
    assert_eq!(e, want);
}

/// The folder holds only `names`: no temporary file was left.
fn only(dir: &Path, names: &[&str]) {
    let mut got: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_device_node_is_refused_and_stays_a_device() {
    let dev = Path::new("/dev/null");
    refused(
        dev,
        "it is not a regular file (a device, FIFO or socket), and simdnet replaces only regular files; choose another path",
    );
    assert!(fs::symlink_metadata(dev).unwrap().file_type().is_char_device());
}

#[test]
fn a_fifo_is_refused_and_stays_a_fifo() {
    let d = scratch("fifo");
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refused(
        &fifo,
        "it is not a regular file (a device, FIFO or socket), and simdnet replaces only regular files; choose another path",
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    only(&d, &["pipe"]);
}

#[test]
fn a_symlink_is_refused_and_neither_it_nor_its_target_changes() {
    let d = scratch("symlink");
    let target = d.join("target");
    fs::write(&target, b"precious").unwrap();
    let link = d.join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(
        &link,
        "it is a symbolic link, and simdnet never writes through one; give the file's real path or remove the link",
    );
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    only(&d, &["link.bin", "target"]);
}

#[test]
fn a_read_only_file_is_refused_and_stays_read_only() {
    let d = scratch("readonly");
    let p = d.join("m.bin");
    fs::write(&p, b"old").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
    refused(
        &p,
        "the file is read-only; make it writable (chmod u+w) or choose another path",
    );
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o444);
    assert_eq!(fs::read(&p).unwrap(), b"old");
}

#[test]
fn a_hard_linked_file_is_refused_and_its_links_stay_joined() {
    let d = scratch("hardlink");
    let p = d.join("m.bin");
    fs::write(&p, b"old").unwrap();
    fs::hard_link(&p, d.join("other-name")).unwrap();
    refused(
        &p,
        "the file has 2 hard links, and replacing it would split them; choose another path",
    );
    assert_eq!(fs::metadata(&p).unwrap().nlink(), 2);
}

#[test]
fn a_folder_or_a_missing_folder_is_refused() {
    let d = scratch("folders");
    refused(&d, "it is a folder; add a file name");
    // Spelt as folders, whether or not one is there: `Path::file_name`
    // reads `no/.` as the file `no`, which must not pass the check before
    // training and fail only when the trained model is saved.
    for spelt in ["no/", "no/.", "no/..", "m.bin/."] {
        refused(
            &d.join(spelt),
            "the path names a folder, not a file; add a file name",
        );
    }
    let file = d.join("a-file");
    fs::write(&file, b"keep").unwrap();
    refused(
        &file.join("m.bin"),
        &format!("'{}' is not a folder; choose a path inside one", file.display()),
    );
    assert_eq!(fs::read(&file).unwrap(), b"keep");
    let missing = d.join("no/such/m.bin");
    refused(
        &missing,
        &format!(
            "the folder '{0}' does not exist; create it (mkdir -p '{0}') or choose another path",
            d.join("no/such").display()
        ),
    );
}

#[test]
fn a_regular_file_is_replaced_whole_and_keeps_its_permissions() {
    let d = scratch("replace");
    let p = d.join("m.bin");
    fs::write(&p, b"old").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    model_file::save(&net(), &p).unwrap();
    assert_eq!(model_file::load(&p).unwrap(), net());
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    only(&d, &["m.bin"]);
}

#[test]
fn a_new_file_is_readable_by_all_and_writable_by_its_owner() {
    let d = scratch("new");
    let p = d.join("m.bin");
    model_file::save(&net(), &p).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    only(&d, &["m.bin"]);
}
