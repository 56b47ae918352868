//! The decompressed copy kept beside a large gzipped IDX file
//! (`src/data/cache.rs`): used when it matches, never trusted when it is
//! stale, truncated or tampered with, and silently skipped when it cannot be
//! written.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{check, s, scratch};
use flate2::write::GzEncoder;
use flate2::Compression;
use simdnet::data::mnist::load_split;
use simdnet::data::Split;

/// Images per file: 1400 of 28x28 = 1,097,600 bytes, just above the cache's 1 MiB floor.
const N: usize = 1400;
const IMAGES: &str = "t10k-images-idx3-ubyte.gz";

/// The pixels of `N` pseudo-random images from `seed`.
fn pixels(seed: u32) -> Vec<u8> {
    pixels_of(seed, N)
}

/// The pixels of `n` pseudo-random images from `seed`.
fn pixels_of(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n * 784)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Stored (not compressed) gzip: the file's size depends only on the data's length.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::none());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// Writes one split (`t10k` or `train`) of `N` images made from `seed` into `dir`.
fn write_split(dir: &Path, prefix: &str, seed: u32) {
    write_split_of(dir, prefix, seed, N)
}

/// Writes one split (`t10k` or `train`) of `n` images made from `seed` into `dir`.
fn write_split_of(dir: &Path, prefix: &str, seed: u32, n: usize) {
    let images = idx(0x803, &[n as u32, 28, 28], &pixels_of(seed, n));
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let labels = idx(0x801, &[n as u32], &labels);
    fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), gzip(&images)).unwrap();
    fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), gzip(&labels)).unwrap();
}

fn cache_of(dir: &Path) -> PathBuf {
    dir.join(format!(".{IMAGES}.simdnet-cache"))
}

/// The length a valid copy has: 40 bytes of key, the 16-byte IDX header, the body.
const CACHE_LEN: u64 = 40 + 16 + (N * 784) as u64;

fn test_pixels(dir: &Path) -> Vec<u8> {
    load_split(dir, Split::Test).expect("load").pixels().to_vec()
}

/// Sets `path`'s modification time to `mtime` (so that only the content differs).
fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn the_first_load_writes_a_copy_and_the_next_one_reads_it() {
    let dir = scratch("cache", "used");
    write_split(&dir, "t10k", 1);
    assert_eq!(test_pixels(&dir), pixels(1));
    let cache = cache_of(&dir);
    assert_eq!(fs::metadata(&cache).expect("a cached copy").len(), CACHE_LEN);
    // The label file is too small to be worth a copy.
    assert!(!dir.join(".t10k-labels-idx1-ubyte.gz.simdnet-cache").exists());
    // Damage the deflate data near the end but keep the size, the trailer and
    // the time: only a load that takes the body from the copy still succeeds.
    let gz = dir.join(IMAGES);
    let mtime = fs::metadata(&gz).unwrap().modified().unwrap();
    let mut bytes = fs::read(&gz).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0xff;
    fs::write(&gz, &bytes).unwrap();
    set_mtime(&gz, mtime);
    assert_eq!(test_pixels(&dir), pixels(1), "the body came from the copy");
}

#[test]
fn a_stale_copy_is_not_used_even_with_the_same_size_and_time() {
    let dir = scratch("cache", "stale");
    write_split(&dir, "t10k", 1);
    assert_eq!(test_pixels(&dir), pixels(1));
    let gz = dir.join(IMAGES);
    let old = fs::metadata(&gz).unwrap();
    write_split(&dir, "t10k", 2);
    set_mtime(&gz, old.modified().unwrap());
    assert_eq!(fs::metadata(&gz).unwrap().len(), old.len(), "same size");
    assert_eq!(
        test_pixels(&dir),
        pixels(2),
        "the new file's pixels, not the copy's"
    );
    // The copy was refreshed: it now holds the new pixels.
    let cache = fs::read(cache_of(&dir)).unwrap();
    assert_eq!(&cache[56..], &pixels(2)[..]);
}

#[test]
fn a_truncated_copy_is_not_used_and_is_rewritten() {
    let dir = scratch("cache", "truncated");
    write_split(&dir, "t10k", 3);
    test_pixels(&dir);
    let cache = cache_of(&dir);
    let f = fs::File::options().write(true).open(&cache).unwrap();
    f.set_len(CACHE_LEN / 2).unwrap();
    drop(f);
    assert_eq!(test_pixels(&dir), pixels(3));
    assert_eq!(fs::metadata(&cache).unwrap().len(), CACHE_LEN, "rewritten whole");
}

#[test]
fn a_tampered_copy_is_not_used_and_is_rewritten() {
    let dir = scratch("cache", "tampered");
    write_split(&dir, "t10k", 4);
    test_pixels(&dir);
    let cache = cache_of(&dir);
    let mut bytes = fs::read(&cache).unwrap();
    let at = 56 + 123_457;
    bytes[at] ^= 0x01;
    fs::write(&cache, &bytes).unwrap();
    let got = test_pixels(&dir);
    assert_eq!(
        got[123_457],
        pixels(4)[123_457],
        "the tampered byte is not believed"
    );
    assert_eq!(got, pixels(4));
    assert_eq!(fs::read(&cache).unwrap()[at], bytes[at] ^ 0x01, "rewritten");
}

/// A copy is read in pieces of 4 MiB, one task each (`src/data/cache.rs`):
/// a body of three pieces, the last one short, comes back whole and in
/// order, and a byte changed in the last piece is caught.
#[test]
fn a_copy_of_several_read_pieces_is_read_whole_and_checked_whole() {
    const PIECE: usize = 4 << 20;
    let n = (2 * PIECE + PIECE / 3) / 784;
    let dir = scratch("cache", "pieces");
    write_split_of(&dir, "t10k", 7, n);
    assert_eq!(test_pixels(&dir), pixels_of(7, n));
    // Damage the deflate data, keeping size, trailer and time, as above:
    // only a load that takes the body from the copy succeeds.
    let gz = dir.join(IMAGES);
    let (mtime, good_gz) = (
        fs::metadata(&gz).unwrap().modified().unwrap(),
        fs::read(&gz).unwrap(),
    );
    let mut bad_gz = good_gz.clone();
    let at = bad_gz.len() / 2;
    bad_gz[at] ^= 0xff;
    fs::write(&gz, &bad_gz).unwrap();
    set_mtime(&gz, mtime);
    assert!(
        test_pixels(&dir) == pixels_of(7, n),
        "the body came whole from the copy"
    );
    // A byte of the copy's last piece changed: not believed, the (mended)
    // file is read instead and the copy rewritten.
    fs::write(&gz, &good_gz).unwrap();
    set_mtime(&gz, mtime);
    let cache = cache_of(&dir);
    let mut bytes = fs::read(&cache).unwrap();
    let at = 56 + 2 * PIECE + 1000;
    bytes[at] ^= 0x10;
    fs::write(&cache, &bytes).unwrap();
    assert!(
        test_pixels(&dir) == pixels_of(7, n),
        "the changed byte in the last piece is not believed"
    );
    assert_eq!(fs::read(&cache).unwrap()[at], bytes[at] ^ 0x10, "rewritten");
}

/// Makes the folder read-only; where that does not stop writes (running as
/// root), also puts a folder where the copy would go, so that writing it fails.
#[cfg(unix)]
fn block_writes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
    let probe = dir.join("probe");
    if fs::write(&probe, b"x").is_ok() {
        fs::remove_file(&probe).unwrap();
        fs::create_dir(cache_of(dir)).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_folder_that_cannot_be_written_still_loads_silently() {
    let dir = scratch("cache", "readonly");
    write_split(&dir, "t10k", 5);
    write_split(&dir, "train", 6);
    block_writes(&dir);
    assert_eq!(test_pixels(&dir), pixels(5));
    assert!(!cache_of(&dir).is_file(), "no copy was written");
    let args = ["train", "--data", s(&dir), "--epochs", "1", "--quiet"];
    let (out, err) = check(&args, &common::run(&args), 0);
    assert!(out.starts_with("Test accuracy: "), "{out}");
    // Nothing is said about the cache (`check` leaves out the
    // build-versus-CPU warning of a build that is not native to this CPU).
    assert_eq!(err, "", "nothing is said about the cache");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
}
