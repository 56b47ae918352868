//! Hostile inputs, through the real binary, each under a 2 GiB address-space
//! limit (`ulimit -v`): a gzip bomb, `/dev/zero` as every kind of input,
//! absurd image sizes, junk after the gzip data, a dangling symlink, bad
//! block sizes in the environment and in the tuning file, and networks or
//! batches far too large for memory. Every one must exit non-zero at once
//! with one clear message (no panic, no abort, no allocation attempt).

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::s;
use flate2::write::GzEncoder;
use flate2::Compression;
use simdnet::data::{idx, mnist, Mnist, Split};

/// 2 GiB in the KiB units of `ulimit -v`.
const ADDRESS_SPACE_KIB: &str = "2097152";

/// Runs simdnet with `args` and `env` under the 2 GiB address-space limit, in the repository.
fn limited(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_simdnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for v in [
        "SIMDNET_TUNE_CONFIG",
        "SIMDNET_MC",
        "SIMDNET_KC",
        "SIMDNET_NC",
        "SIMDNET_MAX_MEMORY",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run simdnet under sh")
}

/// Runs under the limit, checks exit code `code`, no panic or abort, and that
/// stderr contains every one of `needles`; returns stderr.
fn expect_fail(args: &[&str], env: &[(&str, &str)], code: i32, needles: &[&str]) -> String {
    let o = limited(args, env);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "{args:?} crashed:\n{err}"
    );
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?} {env:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert_eq!(err.matches("error:").count(), 1, "one message:\n{err}");
    err
}

/// A fresh, empty folder.
fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    common::fresh_dir(&format!("simdnet-hostile-{}-{tag}-{n}", std::process::id()))
}

fn gzip_with(bytes: &[u8], level: Compression) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), level);
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_with(bytes, Compression::fast())
}

fn images_header(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn images_file(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = images_header(n, rows, cols);
    v.extend((0..n * rows * cols).map(|i| (i * 7 % 256) as u8));
    v
}

fn labels_file(n: u32) -> Vec<u8> {
    let mut v = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&n.to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// A data folder with both splits of small valid images (`rows x cols`), gzipped.
fn data_dir(tag: &str, rows: u32, cols: u32) -> PathBuf {
    let dir = temp_dir(tag);
    for split in [Split::Train, Split::Test] {
        let (img, lbl) = split.file_names();
        fs::write(dir.join(img), gzip(&images_file(20, rows, cols))).unwrap();
        fs::write(dir.join(lbl), gzip(&labels_file(20))).unwrap();
    }
    dir
}

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";

// ---------------------------------------------------------------- data files

#[test]
fn the_bundled_data_trains_under_the_limit() {
    // The limit itself leaves room for real work: the workshop network on 1000 images.
    let o = limited(&["train", "--limit", "1000", "--epochs", "1", "--quiet"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
}

#[test]
fn a_gzip_bomb_fails_at_once_by_its_header() {
    // A 7.7 MB gzip whose header claims 10 million images: the file's size
    // allows that much (deflate expands up to 1032:1), so it is the memory cap
    // (3/4 of the 2 GiB address space) that refuses it, before decompressing.
    let dir = data_dir("bomb", 28, 28);
    let mut content = images_header(10_000_000, 28, 28);
    let mut x: u32 = 1;
    content.extend((0..7_700_000).map(|_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 24) as u8
    }));
    fs::write(dir.join(TRAIN_IMAGES), gzip_with(&content, Compression::none())).unwrap();
    let mut labels = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    labels.extend_from_slice(&10_000_000u32.to_be_bytes());
    fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[
            TRAIN_IMAGES,
            "10000000 images of 28x28 = 7840000000 bytes",
            "more than the memory cap",
            "SIMDNET_MAX_MEMORY",
        ],
    );

    // The classic bomb: a header and 100 MB of zeros in 100 KB of gzip.
    let mut zeros = images_header(10_000_000, 28, 28);
    zeros.resize(16 + 100_000_000, 0);
    fs::write(dir.join(TRAIN_IMAGES), gzip_with(&zeros, Compression::best())).unwrap();
    expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[
            TRAIN_IMAGES,
            "truncated or its header is corrupt",
            "cannot hold more than",
        ],
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn labels_are_counted_against_images_before_any_body_is_read() {
    // The image file's body would not even fit: the label count fails first.
    let dir = data_dir("count", 28, 28);
    fs::write(dir.join(TRAIN_IMAGES), gzip(&images_header(10_000_000, 28, 28))).unwrap();
    expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[
            "train-labels-idx1-ubyte.gz",
            "20 labels",
            TRAIN_IMAGES,
            "10000000 images",
        ],
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn dev_zero_as_every_data_file() {
    let dir = temp_dir("zero");
    for split in [Split::Train, Split::Test] {
        let (img, lbl) = split.file_names();
        std::os::unix::fs::symlink("/dev/zero", dir.join(img)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(lbl)).unwrap();
    }
    expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[TRAIN_IMAGES, "wrong magic number 0x00000000", "not an IDX file"],
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn images_of_4096x4096_blame_the_data_file_not_the_layers() {
    let dir = data_dir("side", 28, 28);
    fs::write(dir.join(TRAIN_IMAGES), gzip(&images_header(20, 4096, 4096))).unwrap();
    let err = expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[TRAIN_IMAGES, "20 images of 4096x4096", "at most 1024x1024"],
    );
    assert!(!err.contains("--layers"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn junk_after_the_gzip_data_is_not_called_truncated() {
    let dir = data_dir("junk", 28, 28);
    let mut file = gzip(&images_file(20, 28, 28));
    file.extend_from_slice(b"this is not gzip");
    fs::write(dir.join(TRAIN_IMAGES), file).unwrap();
    let err = expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[TRAIN_IMAGES, "extra bytes after the end of the gzip data"],
    );
    assert!(!err.contains("truncated"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_dangling_symlink_is_named_not_a_missing_gz() {
    let dir = data_dir("dangling", 28, 28);
    fs::remove_file(dir.join(TRAIN_IMAGES)).unwrap();
    let raw = dir.join("train-images-idx3-ubyte");
    std::os::unix::fs::symlink(dir.join("gone"), &raw).unwrap();
    let err = expect_fail(
        &["train", "--data", s(&dir)],
        &[],
        1,
        &[s(&raw), "symbolic link", "gone", "does not exist"],
    );
    assert!(!err.contains(TRAIN_IMAGES), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn training_and_test_images_of_different_sizes_fail_at_load_naming_both_files() {
    let dir = data_dir("sizes", 28, 28);
    let (test_img, test_lbl) = Split::Test.file_names();
    fs::write(dir.join(test_img), gzip(&images_file(20, 20, 20))).unwrap();
    fs::write(dir.join(test_lbl), gzip(&labels_file(20))).unwrap();
    let cli = expect_fail(&["train", "--data", s(&dir)], &[], 1, &[]);
    assert!(!cli.contains("Epoch"), "refused before training: {cli}");
    for err in [
        Mnist::load(&dir).unwrap_err().to_string(),
        mnist::load_both(&dir).unwrap_err().to_string(),
        cli,
    ] {
        for needle in [TRAIN_IMAGES, test_img, "20x20", "28x28", "same size"] {
            assert!(err.contains(needle), "lacks {needle:?}: {err}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- model and tuning files

/// Runs simdnet on a FIFO nobody writes to: it must refuse it without
/// opening it (opening would block). Killed and failed after a minute.
fn refuses_fifo(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simdnet"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SIMDNET_TUNE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 60 {
            child.kill().unwrap();
            panic!("{args:?} blocked on the FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "lacks {needle:?}: {err}");
}

#[test]
fn a_fifo_as_the_model_or_the_tuning_file_is_refused_without_blocking() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refuses_fifo(&["evaluate", "--model", s(&fifo)], &[], "not a regular file");
    refuses_fifo(
        &["bench", "--quick"],
        &[("SIMDNET_TUNE_CONFIG", s(&fifo))],
        "is not a regular file",
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn dev_zero_or_a_huge_file_as_the_model() {
    expect_fail(
        &["evaluate", "--model", "/dev/zero"],
        &[],
        1,
        &["'/dev/zero' is not a usable simdnet model", "not a regular file"],
    );
    expect_fail(
        &["predict", "--model", "/dev/zero"],
        &[],
        1,
        &["not a regular file"],
    );
    // A sparse 5 GiB file: refused by its size, never read.
    let dir = temp_dir("model");
    let big = dir.join("big.simdnet");
    fs::File::create(&big).unwrap().set_len(5 << 30).unwrap();
    expect_fail(
        &["evaluate", "--model", s(&big)],
        &[],
        1,
        &[
            "big.simdnet",
            "5.0 GiB",
            "more than a model file may be (4.0 GiB)",
        ],
    );
    // A sparse 3 GiB file: under the format's cap, over the memory cap of the limit.
    fs::File::create(&big).unwrap().set_len(3 << 30).unwrap();
    expect_fail(
        &["evaluate", "--model", s(&big)],
        &[],
        1,
        &["big.simdnet", "more than the cap", "SIMDNET_MAX_MEMORY"],
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn dev_zero_or_a_fifo_as_the_checkpoint_to_resume() {
    expect_fail(
        &["train", "--resume", "/dev/zero"],
        &[],
        1,
        &["/dev/zero", "not a regular file"],
    );
    let dir = temp_dir("ckfifo");
    let fifo = dir.join("run.ck");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refuses_fifo(&["train", "--resume", s(&fifo)], &[], "not a regular file");
    let _ = fs::remove_dir_all(&dir);
}

/// A checkpoint is read whole (its checksum covers every byte): a huge one
/// is refused by its size, or by the memory cap, before anything is read;
/// a 3 GiB one under a 2 GiB address space used to abort the process.
#[test]
fn a_huge_checkpoint_is_refused_before_it_is_read() {
    let dir = temp_dir("bigck");
    let big = dir.join("big.ck");
    // Sparse files: no disk space is used.
    fs::File::create(&big).unwrap().set_len(9 << 30).unwrap();
    expect_fail(
        &["train", "--resume", s(&big)],
        &[],
        1,
        &[&format!(
            "error: '{}' is not a usable simdnet checkpoint: it is 9.0 GiB, more than the 8.0 GiB a checkpoint may have",
            big.display()
        )],
    );
    // 8 GiB is the size limit itself: allowed by it, refused by the cap.
    for size in [8 << 30, 3 << 30] {
        fs::File::create(&big).unwrap().set_len(size).unwrap();
        let err = expect_fail(
            &["train", "--resume", s(&big)],
            &[],
            1,
            &["more than the cap of 1.5 GiB"],
        );
        assert!(!err.contains("a checkpoint may have"), "{err}");
    }
    expect_fail(
        &["train", "--resume", s(&big)],
        &[],
        1,
        &[
            &format!("error: loading the checkpoint '{}' would need about 6.0 GiB of memory, more than the cap of 1.5 GiB", big.display()),
            "raise the cap with SIMDNET_MAX_MEMORY",
        ],
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A grid file is read before any training: a FIFO must not block the
/// sweep, and a device or a folder is named as such.
#[test]
fn a_fifo_a_device_or_a_folder_as_the_grid_file_is_refused() {
    let dir = temp_dir("gridfifo");
    let fifo = dir.join("grid.txt");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refuses_fifo(
        &["sweep", "--grid", s(&fifo)],
        &[],
        &format!(
            "error: grid file '{}' is not a regular file (a device, a pipe or a socket): give the path of a text file with one row of train flags per line",
            fifo.display()
        ),
    );
    expect_fail(
        &["sweep", "--grid", "/dev/zero"],
        &[],
        1,
        &["error: grid file '/dev/zero' is not a regular file (a device, a pipe or a socket)"],
    );
    expect_fail(
        &["sweep", "--grid", s(&dir)],
        &[],
        1,
        &[&format!(
            "error: grid file '{}' is a folder: give the path of a text file",
            dir.display()
        )],
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A missing file that is not a data file is named with the generic fix,
/// not with the hint about the bundled MNIST files.
#[test]
fn a_missing_checkpoint_or_grid_file_gets_no_data_folder_hint() {
    for (args, path) in [
        (&["train", "--resume", "/no/such/run.ck"][..], "/no/such/run.ck"),
        (&["sweep", "--grid", "/no/such/grid.txt"][..], "/no/such/grid.txt"),
    ] {
        let err = expect_fail(args, &[], 1, &[path, "No such file or directory"]);
        assert!(err.trim_end().ends_with("(check the path)"), "{err}");
        assert!(!err.contains("MNIST"), "{err}");
    }
}

#[test]
fn dev_zero_or_a_folder_as_the_tuning_file() {
    for (args, path) in [
        (&["bench", "--quick"][..], "/dev/zero"),
        (&["train", "--limit", "100", "--epochs", "1"][..], "/dev/zero"),
        (&["bench", "--quick"][..], "/"),
    ] {
        let err = expect_fail(
            args,
            &[("SIMDNET_TUNE_CONFIG", path)],
            1,
            &[&format!("the tuning file '{path}' is"), "--no-tune-config"],
        );
        assert!(!err.contains("delete it"), "{err}");
    }
}

#[test]
fn tune_refuses_a_folder_as_its_destination_before_searching() {
    let o = limited(&["tune", "--quick", "--config", "/"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("Tuning for"), "the search started:\n{out}");
    let err = expect_fail(
        &["tune", "--quick", "--config", "/"],
        &[],
        1,
        &["cannot save the tuning file to '/'", "folder"],
    );
    assert!(!err.contains("delete"), "{err}");
}

#[test]
fn control_bytes_in_a_tuning_file_are_escaped() {
    let dir = temp_dir("ctl");
    let cfg = dir.join("ctl.cfg");
    fs::write(&cfg, "version = 1\nmc = \x1b[2J\x07\nkc = 256\nnc = 4096\n").unwrap();
    let err = expect_fail(
        &["bench", "--quick"],
        &[("SIMDNET_TUNE_CONFIG", s(&cfg))],
        1,
        &["line 2: mc must be a whole number", "\\u{1b}[2J\\u{7}"],
    );
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- block sizes

#[test]
fn bad_block_sizes_in_the_environment_are_errors() {
    for (var, value, args) in [
        ("SIMDNET_KC", "100000000", &["bench", "--quick"][..]),
        ("SIMDNET_MC", "abc", &["tune", "--quick", "--dry-run"][..]),
        (
            "SIMDNET_NC",
            "0",
            &["train", "--limit", "100", "--epochs", "1"][..],
        ),
        ("SIMDNET_KC", "4096", &["bench", "--quick"][..]),
        ("SIMDNET_KC", "100000000", &["evaluate", "--model", "m.bin"][..]),
        (
            "SIMDNET_MC",
            "x",
            &["sweep", "--limit", "100", "--epochs", "1"][..],
        ),
    ] {
        let needles: &[&str] = if value == "4096" {
            // In range alone, but with the default nc the packed B~ block is too large.
            &["SIMDNET_MC/SIMDNET_KC/SIMDNET_NC", "B~"]
        } else {
            &[var, value, "from 1 to"]
        };
        let mut env = vec![(var, value)];
        if value == "4096" {
            env.push(("SIMDNET_NC", "16384"));
        }
        expect_fail(args, &env, 1, needles);
    }
}

#[test]
fn huge_block_sizes_in_a_tuning_file_are_ignored_with_the_range() {
    // From a file they are a warning, not fatal (tests/tune_file.rs); from the environment, an error.
    let dir = temp_dir("cfg");
    let cfg = dir.join("huge.cfg");
    fs::write(&cfg, "version = 1\nmc = 16384\nkc = 16384\nnc = 16384\n").unwrap();
    for args in [
        &["bench", "--quick"][..],
        &["train", "--limit", "100", "--epochs", "1"][..],
    ] {
        let o = limited(args, &[("SIMDNET_TUNE_CONFIG", s(&cfg))]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        for needle in ["huge.cfg", "mc = 16384", "allowed 1..=4096", "simdnet tune"] {
            assert!(err.contains(needle), "{args:?}: {needle:?} missing from {err}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- memory estimates

#[test]
fn huge_layers_or_batches_for_bench_and_tune_are_refused_before_allocating() {
    for args in [
        &["bench", "--batch", "60000", "--layers", "65536"][..],
        &["bench", "--layers", "16000,15000"][..],
        &["tune", "--batch", "60000", "--layers", "65536", "--dry-run"][..],
        &["tune", "--layers", "16000,15000", "--dry-run"][..],
        &["train", "--batch", "60000", "--layers", "65536"][..],
        &["train", "--layers", "16000,15000"][..],
        &["sweep", "--layers", "16000,15000", "--epochs", "1"][..],
    ] {
        expect_fail(
            args,
            &[],
            1,
            &[
                "would need about",
                "more than the cap of 1.5 GiB (3/4 of the address-space limit",
                "--batch",
                "--layers",
                "SIMDNET_MAX_MEMORY",
            ],
        );
    }
}

#[test]
fn simdnet_max_memory_sets_the_cap_and_a_bad_value_is_an_error() {
    expect_fail(
        &["bench", "--quick"],
        &[("SIMDNET_MAX_MEMORY", "1M")],
        1,
        &[
            "bench with --batch",
            "more than the cap of 1.0 MiB (set by SIMDNET_MAX_MEMORY)",
        ],
    );
    expect_fail(
        &["tune", "--quick", "--dry-run"],
        &[("SIMDNET_MAX_MEMORY", "lots")],
        1,
        &["SIMDNET_MAX_MEMORY=lots is not a memory size", "8G"],
    );
}
