//! Helpers shared by the integration tests: running the real `simdnet`
//! binary and checking its exit code, scratch folders, and small engine
//! helpers (`bits`, `act64`, the `synthetic` 8x8 data set).
//!
//! Cargo compiles each `tests/*.rs` as its own test binary; this folder
//! module is not one of them. A test file takes it with `mod common;`.
//! Not every test binary uses every helper, hence the `allow(dead_code)`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use simdnet::data::Dataset;
use simdnet::gemm::{self, Epilogue, Parallelism};
use simdnet::matrix::{Element, MatMut, MatRef};
use simdnet::nn::{Activation, Network};

/// The bundled MNIST folder, `<crate>/data`.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// A `Command` for the `simdnet` binary Cargo built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simdnet"))
}

/// Runs `simdnet args...` with the test's own working directory and nothing added.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run simdnet")
}

/// Runs `simdnet args...` in the crate's folder.
pub fn run_in_crate(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run simdnet")
}

/// Runs `simdnet args... --data <crate>/data`: the bundled data is always added.
pub fn run_with_data(args: &[&str]) -> Output {
    bin()
        .args(args)
        .args(["--data", DATA])
        .output()
        .expect("run simdnet")
}

/// A run's (stdout, stderr), decoded lossily.
pub fn text(o: &Output) -> (String, String) {
    (stdout(o), stderr(o))
}

/// A run's stdout, decoded lossily.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr, decoded lossily, without the line a build for fewer SIMD
/// features than this CPU has prints first (`simd::native_warning`: a
/// portable build of the tests, `RUSTFLAGS="-C target-cpu=x86-64"`, on an
/// AVX2 machine); that warning is checked on its own (`tests/tune_file.rs`).
pub fn stderr(o: &Output) -> String {
    without_build_warning(&String::from_utf8_lossy(&o.stderr))
}

/// `text` without its first line equal to `simd::native_warning()`, if
/// this build has one on this CPU (the binary under test is built with the
/// same flags and runs on the same CPU, so it prints the same line), ended
/// by `\n` or, as a terminal shows it, `\r\n`.
pub fn without_build_warning(text: &str) -> String {
    let Some(warning) = simdnet::simd::native_warning() else {
        return text.to_string();
    };
    let line = [format!("{warning}\r\n"), format!("{warning}\n")]
        .into_iter()
        .find(|line| text.contains(line.as_str()));
    line.map_or_else(|| text.to_string(), |line| text.replacen(&line, "", 1))
}

/// Checks that the run of `args` did not panic and exited with `code`;
/// returns (stdout, stderr). `args` only names the run in the messages.
pub fn check(args: &[&str], o: &Output, code: i32) -> (String, String) {
    let (out, err) = text(o);
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

/// Runs in the crate's folder and checks the exit code; returns (stdout,
/// stderr). No run may panic.
pub fn expect(args: &[&str], code: i32) -> (String, String) {
    check(args, &run_in_crate(args), code)
}

/// Runs with `--data <crate>/data` always added and checks the exit code;
/// returns (stdout, stderr). No run may panic.
pub fn expect_with_data(args: &[&str], code: i32) -> (String, String) {
    check(args, &run_with_data(args), code)
}

/// Runs with the bundled data unless `--data` is given, and checks the exit
/// code; returns (stdout, stderr). No run may panic. The messages name `args`
/// as given, without the added `--data`.
pub fn expect_default_data(args: &[&str], code: i32) -> (String, String) {
    let mut all: Vec<&str> = args.to_vec();
    if !args.contains(&"--data") {
        all.extend(["--data", DATA]);
    }
    check(args, &run(&all), code)
}

/// The folder this test binary's scratch folders go in:
/// `<target>/tmp/<test binary>` (Cargo's `CARGO_TARGET_TMPDIR`), not the
/// system's temporary folder, which a run of the suite used to leave about
/// 85 MB in. Emptied the first time the binary asks for it, so that a run
/// leaves only its own files (to look at after a failure) until the same
/// binary runs again; `cargo clean` removes them.
pub fn scratch_root() -> PathBuf {
    static EMPTIED: std::sync::Once = std::sync::Once::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
    EMPTIED.call_once(|| {
        let _ = std::fs::remove_dir_all(&root);
    });
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// The path of `name` in the folder `simdnet-<tag>-<pid>` of
/// [`scratch_root`], which is made if missing: one folder per test binary
/// and run.
pub fn temp_file(tag: &str, name: &str) -> PathBuf {
    let d = scratch_root().join(format!("simdnet-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A fresh, empty folder `<scratch_root>/<folder>`: removed first if it is there.
pub fn fresh_dir(folder: &str) -> PathBuf {
    let d = scratch_root().join(folder);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh, empty folder `simdnet-<tag>-<name>-<pid>` for one test.
pub fn scratch(tag: &str, name: &str) -> PathBuf {
    fresh_dir(&format!("simdnet-{tag}-{name}-{}", std::process::id()))
}

/// A path as `&str`, for an argument list; panics if it is not UTF-8.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every parameter of `net` as its bit pattern: equal only if bit for bit equal.
pub fn bits(net: &Network) -> Vec<u32> {
    net.layers()
        .iter()
        .flat_map(|l| l.params().into_iter().flatten().map(|v| v.to_bits()))
        .collect()
}

/// `act` applied to `z` in f64, written here independently of the engine.
pub fn act64(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        other => panic!("no f64 reference for {other:?}: add one here"),
    }
}

/// A data set of `n` 8x8 images whose label depends on the pixels.
pub fn synthetic(n: usize) -> Dataset {
    let mut s = 12345u32;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let mut sum = 0u32;
        for _ in 0..64 {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            let p = (s >> 24) as u8;
            sum += p as u32;
            pixels.push(p);
        }
        labels.push((sum % 10) as u8);
    }
    Dataset::new(pixels, labels, 8, 8).unwrap()
}

/// `alpha·A·B` then `epi`, by the reference GEMM: `a: (m, k)`, `b: (k, n)`, row-major.
pub fn reference_product<T: Element>(
    alpha: f32,
    a: &[T],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    epi: Epilogue,
) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    gemm::reference::gemm(
        alpha,
        MatRef::from_slice(a, m, k),
        MatRef::from_slice(b, k, n),
        0.0,
        MatMut::from_slice(&mut c, m, n),
        epi,
    );
    c
}

/// The same product by the engine's GEMM (`c` starts as NaN, so an element
/// it forgets to write shows).
pub fn engine_product<T: Element>(
    alpha: f32,
    a: &[T],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    epi: Epilogue,
    par: Parallelism,
) -> Vec<f32> {
    let mut c = vec![f32::NAN; m * n];
    gemm::gemm(
        alpha,
        MatRef::from_slice(a, m, k),
        MatRef::from_slice(b, k, n),
        0.0,
        MatMut::from_slice(&mut c, m, n),
        epi,
        par,
    );
    c
}

/// The message `model_file::from_bytes` refuses `bytes` with.
pub fn model_load_err(bytes: &[u8]) -> String {
    simdnet::nn::model_file::from_bytes(bytes, std::path::Path::new("bad.simdnet"))
        .unwrap_err()
        .to_string()
}

/// Recomputes a model file's trailing checksum so that a test reaches the checks after it.
pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 8;
    let sum = simdnet::nn::model_file::fnv1a64(&bytes[..n]);
    bytes[n..].copy_from_slice(&sum.to_le_bytes());
    bytes
}

/// The GEMM's kernel and block sizes are process-wide: a test that changes
/// them, or compares bits that depend on them, holds this.
static GEMM_GLOBALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the GEMM settings' lock; restores the default kernel, the block
/// sizes it found, the machine's choice of in-place reads and the
/// small-product path when dropped.
pub struct Globals {
    _lock: std::sync::MutexGuard<'static, ()>,
    saved: gemm::BlockSizes,
}

impl Globals {
    /// Waits for the lock (a test that panicked while holding it does not poison it).
    pub fn lock() -> Globals {
        let lock = GEMM_GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
        Globals {
            _lock: lock,
            saved: gemm::block_sizes(),
        }
    }
}

impl Drop for Globals {
    fn drop(&mut self) {
        gemm::set_block_sizes(self.saved);
        gemm::set_kernel(None).unwrap();
        gemm::loops::set_wide_in_place(None);
        gemm::set_small_products(true);
    }
}

/// Every micro-kernel compiled in, forced one after the other as the
/// iterator advances: `(name, mr, nr)`, each running every product (the
/// small-product path is off). Hold [`Globals`] (its drop goes back to
/// choosing by shape, and turns that path on again).
pub fn forced_kernels() -> impl Iterator<Item = (&'static str, usize, usize)> {
    gemm::set_small_products(false);
    gemm::available_kernels().into_iter().map(|name| {
        gemm::set_kernel(Some(name)).unwrap();
        let kernel = gemm::kernel::all_kernels().find(|k| k.name == name).unwrap();
        (name, kernel.mr, kernel.nr)
    })
}

/// Panics naming `what` and the first element whose bits differ.
pub fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = got.iter().zip(want).position(|(g, e)| g.to_bits() != e.to_bits());
    if let Some(i) = bad {
        panic!("{what}: element {i} differs: {} against {}", got[i], want[i]);
    }
}
