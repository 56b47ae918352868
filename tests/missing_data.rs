//! A binary run without the MNIST files (the published crate does not bundle
//! them) says in one message which files are missing, where to get them and
//! how to point `--data` at them.

mod common;

use common::{check, run, s, scratch};

#[test]
fn an_empty_data_folder_says_where_to_get_the_four_files() {
    let dir = scratch("missing", "empty");
    let args = ["train", "--data", s(&dir)];
    let (out, err) = check(&args, &run(&args), 1);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    let expected = format!(
        "error: cannot open '{}/train-images-idx3-ubyte.gz': no such file (the folder '{}' has none of the four MNIST files). \
         simdnet trains on the four MNIST files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (gzipped or not): \
         download them from https://ossci-datasets.s3.amazonaws.com/mnist/ (or copy the data/ folder of the simdnet repository, checked by its SHA256SUMS) \
         into one folder and pass --data DIR\n",
        dir.display(),
        dir.display()
    );
    assert_eq!(err, expected);
}

#[test]
fn a_missing_folder_and_a_half_filled_one_are_named() {
    let dir = scratch("missing", "half");
    let nowhere = dir.join("nowhere");
    let args = ["train", "--data", s(&nowhere)];
    let (_, err) = check(&args, &run(&args), 1);
    assert!(
        err.contains(&format!("(the folder '{}' does not exist)", nowhere.display())),
        "{err}"
    );
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(format!("{}/{name}", common::DATA), dir.join(name)).unwrap();
    }
    let args = ["train", "--data", s(&dir)];
    let (_, err) = check(&args, &run(&args), 1);
    assert!(
        err.contains(&format!(
            "('{}' lacks train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz)",
            dir.display()
        )),
        "{err}"
    );
    assert!(err.contains("pass --data DIR"), "{err}");
}
