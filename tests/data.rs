//! The data layer: the bundled MNIST files, and malformed IDX files written into a
//! temporary folder. Every malformed file must give an `Err` naming the file and the
//! problem, never a panic.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use simdnet::data::{idx, mnist, scale_pixels, Dataset, Mnist, Split};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

// ---------------------------------------------------------------- the real files

const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

fn counts(labels: &[u8]) -> [usize; 10] {
    let mut c = [0; 10];
    for &l in labels {
        c[l as usize] += 1;
    }
    c
}

#[test]
fn loads_the_bundled_mnist() {
    let start = std::time::Instant::now();
    let m = Mnist::load(&data_dir()).unwrap();
    eprintln!("Mnist::load took {:?}", start.elapsed());

    for (d, n) in [(&m.train, 60_000), (&m.test, 10_000)] {
        assert_eq!(d.len(), n);
        assert!(!d.is_empty());
        assert_eq!((d.image_rows(), d.image_cols(), d.features()), (28, 28, 784));
        assert_eq!(d.pixels().len(), n * 784);
        assert_eq!(d.labels().len(), n);
        let images = d.images();
        assert_eq!((images.rows(), images.cols()), (n, 784));
        assert_eq!(d.image(n - 1), &d.pixels()[(n - 1) * 784..]);
        assert_eq!(d.pixels().iter().max(), Some(&255));
        assert_eq!(d.pixels().iter().min(), Some(&0));
    }
    assert_eq!(m.train.labels()[0], 5);
    assert_eq!(m.test.labels()[0], 7);

    let train = counts(m.train.labels());
    assert_eq!(train.iter().sum::<usize>(), 60_000);
    assert_eq!(train, TRAIN_COUNTS);
    assert_eq!(counts(m.test.labels()), TEST_COUNTS);

    let scaled = scale_pixels(m.train.image(0));
    assert_eq!(scaled.len(), 784);
    assert_eq!(scaled.iter().cloned().fold(f32::MIN, f32::max), 1.0);
    assert!(scaled.iter().all(|&x| (0.0..=1.0).contains(&x)));

    let few = m.train.take(100);
    assert_eq!(few.len(), 100);
    assert_eq!(few.labels(), &m.train.labels()[..100]);
    assert_eq!(few.pixels(), &m.train.pixels()[..100 * 784]);
    assert_eq!(m.test.take(1_000_000).len(), 10_000);
}

/// Raw (not gzipped) files load identically, whether named `*.gz` or without the suffix.
#[test]
fn raw_files_load_like_gzipped_ones() {
    let gz = mnist::load_split(&data_dir(), Split::Test).unwrap();
    let (img, lbl) = Split::Test.file_names();
    let raw_img = idx::read_maybe_gzipped(&data_dir().join(img)).unwrap();
    let raw_lbl = idx::read_maybe_gzipped(&data_dir().join(lbl)).unwrap();
    assert_eq!((raw_img.len(), raw_lbl.len()), (7_840_016, 10_008));

    for strip in [false, true] {
        let dir = temp_dir("raw");
        let name = |n: &str| {
            if strip {
                n.trim_end_matches(".gz").to_string()
            } else {
                n.to_string()
            }
        };
        fs::write(dir.join(name(img)), &raw_img).unwrap();
        fs::write(dir.join(name(lbl)), &raw_lbl).unwrap();
        let raw = mnist::load_split(&dir, Split::Test).unwrap();
        assert_eq!(raw.pixels(), gz.pixels());
        assert_eq!(raw.labels(), gz.labels());
        assert_eq!((raw.image_rows(), raw.image_cols()), (28, 28));
        let _ = fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------- malformed files

/// A fresh, empty folder under this binary's scratch folder (`common::scratch_root`).
fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = common::scratch_root().join(format!("simdnet-data-test-{}-{tag}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX image file: header with `(n, rows, cols)`, then `body`.
fn images_file(n: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
    let mut v = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// An IDX label file.
fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut v = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// A small valid split: 3 images of 2x3 pixels, labels 4, 0, 9.
fn small_images() -> Vec<u8> {
    images_file(3, 2, 3, &(0..18).map(|i| i * 14).collect::<Vec<u8>>())
}
fn small_labels() -> Vec<u8> {
    labels_file(&[4, 0, 9])
}

/// Writes the test split's two files (gzipped) into a fresh folder, `None` meaning absent.
fn write_split(images: Option<&[u8]>, labels: Option<&[u8]>) -> PathBuf {
    let dir = temp_dir("split");
    let (img, lbl) = Split::Test.file_names();
    if let Some(b) = images {
        fs::write(dir.join(img), b).unwrap();
    }
    if let Some(b) = labels {
        fs::write(dir.join(lbl), b).unwrap();
    }
    dir
}

/// Loads a split written by [`write_split`] that must fail; checks the message names
/// `file` and contains every one of `needles`. Returns the message.
fn expect_error(dir: &Path, file: &str, needles: &[&str]) -> String {
    let err = match mnist::load_split(dir, Split::Test) {
        Ok(_) => panic!(
            "loading {} succeeded, expected an error naming {file}",
            dir.display()
        ),
        Err(e) => e.to_string(),
    };
    eprintln!("{err}");
    assert!(err.contains(file), "error does not name {file}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "error lacks {needle:?}: {err}");
    }
    let _ = fs::remove_dir_all(dir);
    err
}

const IMG: &str = "t10k-images-idx3-ubyte.gz";
const LBL: &str = "t10k-labels-idx1-ubyte.gz";

#[test]
fn a_small_valid_split_loads_gzipped_or_raw() {
    for wrap in [gzip as fn(&[u8]) -> Vec<u8>, |b: &[u8]| b.to_vec()] {
        let dir = write_split(Some(&wrap(&small_images())), Some(&wrap(&small_labels())));
        let d = mnist::load_split(&dir, Split::Test).unwrap();
        assert_eq!(
            (d.len(), d.image_rows(), d.image_cols(), d.features()),
            (3, 2, 3, 6)
        );
        assert_eq!(d.labels(), &[4, 0, 9]);
        assert_eq!(d.image(1), &[84, 98, 112, 126, 140, 154]);
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn bad_magic() {
    let mut bytes = small_images();
    bytes[3] = 0x02;
    let dir = write_split(Some(&gzip(&bytes)), Some(&gzip(&small_labels())));
    expect_error(&dir, IMG, &["magic number 0x00000802", "expected 0x00000803"]);

    let mut bytes = small_images();
    bytes[..4].copy_from_slice(b"GIF8");
    let dir = write_split(Some(&bytes), Some(&small_labels()));
    expect_error(&dir, IMG, &["magic number 0x47494638", "not an IDX file"]);
}

#[test]
fn a_label_file_where_images_belong_and_vice_versa() {
    let dir = write_split(Some(&gzip(&small_labels())), Some(&gzip(&small_labels())));
    expect_error(&dir, IMG, &["0x00000801", "this looks like a label file"]);
    let dir = write_split(Some(&gzip(&small_images())), Some(&gzip(&small_images())));
    expect_error(&dir, LBL, &["0x00000803", "this looks like an image file"]);
}

#[test]
fn truncated_body() {
    let bytes = small_images();
    let short = &bytes[..bytes.len() - 1];
    let dir = write_split(Some(&gzip(short)), Some(&gzip(&small_labels())));
    expect_error(
        &dir,
        IMG,
        &["truncated", "3 images of 2x3 = 18 bytes", "only 17 follow"],
    );
    let dir = write_split(Some(short), Some(&small_labels()));
    expect_error(&dir, IMG, &["truncated", "only 17 follow"]);
    let labels = small_labels();
    let dir = write_split(Some(&small_images()), Some(&gzip(&labels[..9])));
    expect_error(&dir, LBL, &["truncated", "3 labels = 3 bytes", "only 1 follow"]);
}

#[test]
fn truncated_header() {
    let bytes = small_images();
    for len in [1, 3, 4, 15] {
        let dir = write_split(Some(&gzip(&bytes[..len])), Some(&gzip(&small_labels())));
        expect_error(
            &dir,
            IMG,
            &["header is truncated", &format!("only {len} bytes"), "needs 16"],
        );
    }
    let dir = write_split(Some(&small_images()), Some(&small_labels()[..7]));
    expect_error(&dir, LBL, &["header is truncated", "only 7 bytes", "needs 8"]);
}

#[test]
fn trailing_bytes() {
    let mut bytes = small_images();
    bytes.extend_from_slice(&[0; 5]);
    let dir = write_split(Some(&gzip(&bytes)), Some(&gzip(&small_labels())));
    expect_error(&dir, IMG, &["5 trailing bytes", "18 data bytes"]);
    let mut labels = small_labels();
    labels.push(1);
    let dir = write_split(Some(&small_images()), Some(&labels));
    expect_error(&dir, LBL, &["1 trailing byte follows"]);
}

#[test]
fn zero_and_absurd_sizes() {
    for (n, r, c) in [(0, 28, 28), (3, 0, 6), (3, 6, 0)] {
        let dir = write_split(
            Some(&gzip(&images_file(n, r, c, &[]))),
            Some(&gzip(&small_labels())),
        );
        expect_error(&dir, IMG, &["zero size", &format!("{n} images of {r}x{c}")]);
    }
    let dir = write_split(Some(&small_images()), Some(&labels_file(&[])));
    expect_error(&dir, LBL, &["zero size", "0 labels"]);

    // count * rows * cols overflows 64 bits, or is far more than the file can hold:
    // neither may panic nor allocate it.
    for (n, r, c) in [
        (u32::MAX, u32::MAX, u32::MAX),
        (u32::MAX, 28, 28),
        (60_000, 65_536, 65_536),
    ] {
        let bytes = images_file(n, r, c, &[1, 2, 3]);
        for file in [gzip(&bytes), bytes] {
            let dir = write_split(Some(&file), Some(&gzip(&small_labels())));
            let shape = format!("{n} images of {r}x{c}");
            let err = expect_error(&dir, IMG, &[&shape]);
            assert!(
                err.contains("absurdly large") || err.contains("truncated"),
                "{err}"
            );
        }
    }
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = write_split(Some(&gzip(&small_images())), Some(&gzip(&labels_file(&[1, 2]))));
    let err = expect_error(&dir, LBL, &["2 labels", "3 images"]);
    assert!(err.contains(IMG), "{err}");
}

#[test]
fn label_out_of_range() {
    let dir = write_split(
        Some(&gzip(&small_images())),
        Some(&gzip(&labels_file(&[3, 10, 255]))),
    );
    expect_error(&dir, LBL, &["label 10 at index 1", "out of range 0..10"]);
}

#[test]
fn corrupt_gzip() {
    // A valid gzip header (magic, deflate, no flags), then garbage.
    let mut garbage = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8 | 0x07));
    let dir = write_split(Some(&garbage), Some(&gzip(&small_labels())));
    expect_error(&dir, IMG, &["gzip stream"]);

    // A gzip stream cut short, at several places.
    let whole = gzip(&small_images());
    for cut in [2, 10, whole.len() / 2, whole.len() - 8, whole.len() - 1] {
        let dir = write_split(Some(&whole[..cut]), Some(&gzip(&small_labels())));
        expect_error(&dir, IMG, &["gzip stream"]);
    }

    // A flipped bit in the compressed data or the checksum.
    let real = gzip(&images_file(2, 28, 28, &[7; 2 * 784]));
    for at in [12, real.len() - 6] {
        let mut bad = real.clone();
        bad[at] ^= 0x10;
        let dir = write_split(Some(&bad), Some(&gzip(&labels_file(&[1, 2]))));
        expect_error(&dir, IMG, &[]);
    }
}

#[test]
fn empty_file() {
    let dir = write_split(Some(&[]), Some(&small_labels()));
    expect_error(&dir, IMG, &["empty", "0 bytes"]);
    let dir = write_split(Some(&small_images()), Some(&gzip(&[])));
    expect_error(&dir, LBL, &["empty", "decompresses to 0 bytes"]);
}

#[test]
fn missing_files() {
    let dir = write_split(None, Some(&small_labels()));
    expect_error(&dir, IMG, &["cannot open", "--data"]);
    let dir = write_split(Some(&small_images()), None);
    expect_error(&dir, LBL, &["cannot open", "--data"]);
    let dir = temp_dir("nowhere").join("does-not-exist");
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("does-not-exist") && err.contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn splits_must_have_the_same_image_size() {
    let dir = temp_dir("mixed");
    let (img, lbl) = Split::Train.file_names();
    fs::write(dir.join(img), images_file(1, 4, 4, &[0; 16])).unwrap();
    fs::write(dir.join(lbl), labels_file(&[1])).unwrap();
    let (img, lbl) = Split::Test.file_names();
    fs::write(dir.join(img), small_images()).unwrap();
    fs::write(dir.join(lbl), small_labels()).unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains(IMG) && err.contains("2x3") && err.contains("4x4"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Every prefix and many single-byte corruptions of a valid file: errors, never panics.
#[test]
fn no_panic_on_any_prefix_or_corruption() {
    for wrap in [gzip as fn(&[u8]) -> Vec<u8>, |b: &[u8]| b.to_vec()] {
        let dir = temp_dir("fuzz");
        let path = dir.join("file");
        let good = wrap(&small_images());
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            let err = idx::read_images(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
        for at in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                fs::write(&path, &bad).unwrap();
                let _ = idx::read_images(&path);
                let _ = idx::read_labels(&path);
                let _ = idx::read_maybe_gzipped(&path);
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn read_maybe_gzipped_sniffs_the_content() {
    let dir = temp_dir("sniff");
    let bytes = small_labels();
    fs::write(dir.join("plain.gz"), &bytes).unwrap();
    fs::write(dir.join("packed"), gzip(&bytes)).unwrap();
    assert_eq!(idx::read_maybe_gzipped(&dir.join("plain.gz")).unwrap(), bytes);
    assert_eq!(idx::read_maybe_gzipped(&dir.join("packed")).unwrap(), bytes);
    assert_eq!(idx::read_labels(&dir.join("packed")).unwrap(), [4, 0, 9]);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- Dataset and helpers

#[test]
fn dataset_new_checks_its_arguments() {
    assert!(Dataset::new(vec![0; 12], vec![1, 2], 2, 3).is_ok());
    let err = Dataset::new(vec![0; 11], vec![1, 2], 2, 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("11 pixels") && err.contains("2 images of 2x3"),
        "{err}"
    );
    let err = Dataset::new(vec![0; 12], vec![1, 12], 2, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 12 at index 1"), "{err}");
    assert!(Dataset::new(vec![], vec![1; 4], usize::MAX, usize::MAX).is_err());
}

#[test]
fn scale_pixels_maps_0_255_to_0_1() {
    assert_eq!(scale_pixels(&[0, 255, 51]), vec![0.0, 1.0, 0.2]);
    assert!(scale_pixels(&[]).is_empty());
    let all: Vec<u8> = (0..=255).collect();
    let scaled = scale_pixels(&all);
    assert!(scaled.windows(2).all(|w| w[0] < w[1]));
}
