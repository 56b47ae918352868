//! The crates.io package: what `cargo package` would upload stays under
//! crates.io's 10 MiB limit (the bundled MNIST files stay out of it) and
//! carries the licences and the data's notice.
//!
//! `cargo package --list` only lists files (no build, no network), so this
//! is quick. The size checked is the sum of the listed files plus a tar
//! header per file: an upper bound on the compressed `.crate`.

use std::path::Path;
use std::process::Command;

/// crates.io's limit on a package.
const LIMIT: u64 = 10 * 1024 * 1024;

/// The files `cargo package` would put in the package.
fn package_files() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo package --list");
    assert!(
        out.status.success(),
        "cargo package --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("file names are UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The bytes `files` would take in the package (at most): each file's size
/// plus 1 KiB of tar header and padding. Files cargo generates itself
/// (`Cargo.toml.orig`, `.cargo_vcs_info.json`) are small; counted as 4 KiB.
fn package_bytes(root: &Path, files: &[String]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).map_or(4096, |m| m.len()) + 1024)
        .sum()
}

#[test]
fn the_package_is_under_10_mib_and_leaves_the_mnist_files_out() {
    let files = package_files();
    let bytes = package_bytes(Path::new(env!("CARGO_MANIFEST_DIR")), &files);
    assert!(
        bytes < LIMIT,
        "the package would take up to {bytes} bytes, over crates.io's limit of {LIMIT}: exclude large files in Cargo.toml's `exclude`"
    );
    let data: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("data/") && (f.ends_with(".gz") || f.ends_with("-ubyte")))
        .collect();
    assert!(data.is_empty(), "MNIST files in the package: {data:?}");
}

#[test]
fn the_package_carries_the_licences_and_the_data_notice() {
    let files = package_files();
    for needed in [
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "NOTICE",
        "README.md",
        "data/README.md",
        "data/SHA256SUMS",
        "examples/tabular.rs",
    ] {
        assert!(
            files.iter().any(|f| f == needed),
            "{needed} is missing from the package"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let notice = std::fs::read_to_string(root.join("NOTICE")).unwrap();
    for part in ["Yann LeCun", "Corinna Cortes", "CC BY-SA 3.0", "MIT", "Apache"] {
        assert!(notice.contains(part), "NOTICE does not mention {part}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("CC BY-SA 3.0") && readme.contains("LICENSE-MIT"),
        "README's licence section must name the code's and the data's licences"
    );
}
