//! The command line never panics, whatever it is handed: arguments that are
//! not UTF-8, standard output that is full or closed, values that look like
//! flags, data sets whose images are not 28x28, and a battery of hostile
//! argument lists for every command. All through the real binary.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, stderr, stdout};

/// The bundled MNIST folder.
fn mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A fresh, empty folder for one test.
fn temp(tag: &str) -> PathBuf {
    common::fresh_dir(&format!("simdnet-robust-{}-{tag}", std::process::id()))
}

/// Runs `simdnet args...` in `cwd`.
fn run_in<S: AsRef<std::ffi::OsStr>>(cwd: &Path, args: &[S]) -> Output {
    bin().args(args).current_dir(cwd).output().expect("run simdnet")
}

/// Checks a run did not panic and exited with `code`; returns its stderr.
fn expect_code(o: &Output, code: i32, what: &str) -> String {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{err}",
        stdout(o)
    );
    err
}

/// A raw (not gzipped) IDX image file of `n` images of `rows`x`cols`.
fn idx_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut v = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        v.extend((d as u32).to_be_bytes());
    }
    // a diagonal stroke, so each image has some ink and some background
    for i in 0..n {
        for r in 0..rows {
            for c in 0..cols {
                v.push(if (r + i) % cols == c {
                    255
                } else if c == 0 {
                    40
                } else {
                    0
                });
            }
        }
    }
    v
}

/// A raw IDX label file: labels 0, 1, ..., 9, 0, ...
fn idx_labels(n: usize) -> Vec<u8> {
    let mut v = 0x0000_0801u32.to_be_bytes().to_vec();
    v.extend((n as u32).to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// A data folder with 20 training and 10 test images of `rows`x`cols` (raw IDX files).
fn small_data(tag: &str, rows: usize, cols: usize) -> PathBuf {
    let d = temp(tag);
    for (prefix, n) in [("train", 20), ("t10k", 10)] {
        std::fs::write(
            d.join(format!("{prefix}-images-idx3-ubyte")),
            idx_images(n, rows, cols),
        )
        .unwrap();
        std::fs::write(d.join(format!("{prefix}-labels-idx1-ubyte")), idx_labels(n)).unwrap();
    }
    d
}

/// A quick training run on MNIST that saves to `save` (any bytes).
fn quick_train(save: &Path) -> Command {
    let mut c = bin();
    c.arg("train")
        .args(["--epochs", "1", "--limit", "1000", "--layers", "8", "--data"])
        .arg(mnist())
        .arg("--save")
        .arg(save);
    c
}

fn assert_valid_model(path: &Path) {
    let net = simdnet::nn::model_file::load(path)
        .unwrap_or_else(|e| panic!("{} is not a valid model: {e}", path.display()));
    assert_eq!(net.outputs(), 10);
}

#[cfg(unix)]
#[test]
fn a_non_utf8_save_path_is_used_byte_for_byte() {
    use std::os::unix::ffi::OsStringExt;
    let dir = temp("nonutf8");
    let name = OsString::from_vec(b"\xffmodel.bin".to_vec());
    let path = dir.join(&name);
    let o = quick_train(&path).output().unwrap();
    expect_code(&o, 0, "train --save \\xffmodel.bin");
    assert!(stdout(&o).contains("Saved the model to"));
    assert_valid_model(&path);
    // the same bytes, again as a path flag, read it back
    let o = run_in(
        &dir,
        &[
            OsString::from("evaluate"),
            "--model".into(),
            name.clone(),
            "--data".into(),
            mnist().into(),
        ],
    );
    expect_code(&o, 0, "evaluate --model \\xffmodel.bin");
    // a missing non-UTF-8 folder is named (lossily) in a one-line error
    let o = run_in(
        &dir,
        &[
            OsString::from("inspect"),
            "--data".into(),
            OsString::from_vec(b"/no/such/\xffdir".to_vec()),
        ],
    );
    let err = expect_code(&o, 1, "inspect --data /no/such/\\xffdir");
    assert!(err.contains("/no/such/\u{FFFD}dir"), "{err}");
    // a flag that takes text refuses bytes that are not text, naming the flag
    let o = run_in(
        &dir,
        &[
            OsString::from("train"),
            "--layers".into(),
            OsString::from_vec(b"16,\xff".to_vec()),
        ],
    );
    let err = expect_code(&o, 2, "train --layers 16,\\xff");
    assert!(
        err.contains("error: the value '16,\u{FFFD}' of --layers is not valid UTF-8 text"),
        "{err}"
    );
    // a command name or flag name that is not UTF-8 is unknown, shown lossily
    let o = run_in(&dir, &[OsString::from_vec(b"tr\xffin".to_vec())]);
    assert!(expect_code(&o, 2, "tr\\xffin").contains("unknown command 'tr\u{FFFD}in'"));
    let o = run_in(
        &dir,
        &[
            OsString::from("train"),
            OsString::from_vec(b"--sa\xffve=m".to_vec()),
        ],
    );
    assert!(expect_code(&o, 2, "--sa\\xffve").contains("unknown flag '--sa\u{FFFD}ve'"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_still_saves_the_model_then_fails_with_a_message() {
    let dir = temp("full");
    let model = dir.join("m.bin");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = quick_train(&model).stdout(full).output().unwrap();
    let err = expect_code(&o, 1, "train > /dev/full");
    assert!(
        err.starts_with("error: cannot write to standard output: No space left on device"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    assert_valid_model(&model);
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_still_saves_the_model_and_ends_quietly() {
    let dir = temp("pipe");
    let model = dir.join("m.bin");
    // a pipe whose reading end is already closed: every write fails with EPIPE
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = quick_train(&model).stdout(writer).output().unwrap();
    let err = expect_code(&o, 141, "train | (closed)");
    assert!(err.is_empty(), "a closed pipe ends quietly: {err}");
    assert_valid_model(&model);
}

#[cfg(unix)]
#[test]
fn inspect_into_head_ends_quietly() {
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"("$0" inspect --numbers --data "$1"; echo "exit $?" >&2) | head -n 1"#)
        .arg(env!("CARGO_BIN_EXE_simdnet"))
        .arg(mnist())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "== Loading: shapes as stored ==\n");
    let err = stderr(&o);
    // 0 if inspect finished writing before head closed the pipe, 141 if not; nothing else
    assert!(err == "exit 141\n" || err == "exit 0\n", "stderr: {err}");
}

#[test]
fn a_flag_where_a_value_belongs_is_refused() {
    let dir = temp("flagvalue");
    let data = small_data("flagvalue-data", 8, 8);
    let d = data.to_str().unwrap();
    let o = run_in(
        &dir,
        &["train", "--data", d, "--epochs", "1", "--save", "--quiet"],
    );
    let err = expect_code(&o, 2, "train --save --quiet");
    assert!(
        err.starts_with(
            "error: --save needs a value (FILE), but got the flag --quiet; \
             to give that text as the value, write --save=--quiet"
        ),
        "{err}"
    );
    assert!(!dir.join("--quiet").exists(), "no model named --quiet");
    // unknown words that look like flags too, and for other commands
    let o = run_in(&dir, &["evaluate", "--model", "--data", d]);
    assert!(expect_code(&o, 2, "evaluate --model --data")
        .contains("--model needs a value (FILE), but got the flag --data"));
    // written with `=`, the value is taken as given
    let o = run_in(
        &dir,
        &[
            "train",
            "--data",
            d,
            "--epochs",
            "1",
            "--layers",
            "4",
            "--save=--quiet",
        ],
    );
    expect_code(&o, 0, "train --save=--quiet");
    assert_valid_model(&dir.join("--quiet"));
    // a negative number is a value: it reaches the numeric check
    let o = run_in(&dir, &["train", "--data", d, "--lr", "-1"]);
    assert!(expect_code(&o, 2, "--lr -1").contains("positive"));
    let o = run_in(&dir, &["inspect", "--data", d, "--index", "-1"]);
    assert!(expect_code(&o, 2, "--index -1").contains("invalid value '-1' for --index"));
}

#[test]
fn other_image_sizes_are_drawn_and_trained_at_their_own_size() {
    let data = small_data("8x8", 8, 8);
    let d = data.to_str().unwrap();
    let dir = temp("8x8-run");
    let o = run_in(
        &dir,
        &["explain", "--digit", "3", "--data", d, "--step", "forward"],
    );
    expect_code(&o, 0, "explain --digit 3 on 8x8 images");
    let out = stdout(&o);
    for s in [
        "network    64 -> 16 -> 16 -> 10: an MLP",
        "batch      MNIST training image 3 (label 3), 8x8 pixels flattened to 64, / 255",
        "inputs x (1, 64):",
        "15 of 64 pixels are nonzero",
        "layer 1: 64 -> 16, relu.",
    ] {
        assert!(out.contains(s), "'{s}' missing from:\n{out}");
    }
    // the drawing: 8 rows of 8 pixels (two characters each): grey column 0, the stroke
    // on the diagonal shifted by 3 (image 3)
    let start = out.find("'+' = ink > 0:\n").unwrap() + "'+' = ink > 0:\n".len();
    let rows: Vec<&str> = out[start..].lines().take(8).collect();
    assert_eq!(rows[0], "    ++ . .## . . . .", "{out}");
    assert_eq!(rows[2], "    ++ . . . .## . .", "{out}");
    assert_eq!(rows[5], "    ## . . . . . . .", "{out}");
    assert!(out[start..]
        .lines()
        .nth(8)
        .unwrap()
        .starts_with("  x[i] = pixel[i] / 255"));

    let o = run_in(&dir, &["inspect", "--data", d, "--split", "test", "--index", "9"]);
    expect_code(&o, 0, "inspect on 8x8 images");
    let out = stdout(&o);
    for s in [
        "x_train: (20, 8, 8) u8    y_train: (20,) u8",
        "x_test:  (10, 8, 8) u8    y_test:  (10,) u8",
        "== x_test[9], drawn (8x8, one character per pixel) ==",
        "== Reshape: each 8x8 image becomes one row of 64 values ==",
        "x_train: (20, 64)    x_test: (10, 64)",
    ] {
        assert!(out.contains(s), "'{s}' missing from:\n{out}");
    }
    let o = run_in(
        &dir,
        &[
            "train", "--data", d, "--epochs", "1", "--layers", "4", "--save", "m.bin",
        ],
    );
    assert!(stdout(&expect_ok(o)).contains("Model: 64 -> 4 relu -> 10 softmax"));
    let o = run_in(
        &dir,
        &["predict", "--model", "m.bin", "--data", d, "--index", "2"],
    );
    assert!(stdout(&expect_ok(o)).contains("Actual value: 2"));
}

fn expect_ok(o: Output) -> Output {
    expect_code(&o, 0, "run");
    o
}

#[test]
fn explain_refuses_a_network_too_big_to_trace_before_allocating_it() {
    let dir = temp("explain-big");
    let data = small_data("explain-big-data", 8, 8);
    let o = run_in(
        &dir,
        &[
            "explain",
            "--digit",
            "0",
            "--data",
            data.to_str().unwrap(),
            "--layers",
            "100000,100000",
        ],
    );
    let err = expect_code(&o, 2, "explain --layers 100000,100000");
    assert!(
        err.starts_with(
            "error: --index: the network 64 -> 100000 -> 100000 -> 10 (inputs from the 8x8 \
             images of --data) has 10007600010 weights and biases, more than the 2000000"
        ) && err.contains("use narrower --layers"),
        "{err}"
    );
    let o = run_in(
        &dir,
        &[
            "explain",
            "--digit",
            "0",
            "--data",
            data.to_str().unwrap(),
            "--layers",
            "18446744073709551615,2",
        ],
    );
    assert!(expect_code(&o, 2, "explain --layers 2^64-1").contains("over 2^64 weights and biases"));
}

/// Values that break naive parsers; each flag of each command gets every one.
fn hostile_values() -> Vec<OsString> {
    let mut v: Vec<OsString> = [
        "",
        "=",
        " ",
        "0",
        "-1",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "1e999",
        "NaN",
        "inf",
        "1,,2",
        ";",
        "0x10",
        "\u{1F600}",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        v.push(OsString::from_vec(b"\xff\xfe".to_vec()));
    }
    v
}

#[test]
fn no_command_panics_on_hostile_arguments() {
    let dir = temp("hostile");
    let data = small_data("hostile-data", 8, 8);
    // a small valid model for evaluate and predict
    let model = dir.join("m.bin");
    let o = run_in(
        &dir,
        &[
            OsString::from("train"),
            "--data".into(),
            data.clone().into(),
            "--epochs".into(),
            "1".into(),
            "--layers".into(),
            "4".into(),
            "--save".into(),
            model.clone().into(),
        ],
    );
    expect_code(&o, 0, "train the model for the hostile tests");
    // cheap settings first, so that a hostile value that happens to be valid runs fast;
    // the hostile flag comes after and wins
    let base = |cmd: &str| -> Vec<OsString> {
        let mut b: Vec<&str> = match cmd {
            "train" => vec!["--epochs", "1", "--layers", "4", "--limit", "20"],
            "sweep" => vec!["--quiet", "--epochs", "1", "--layers", "4"],
            "evaluate" | "predict" => vec!["--model", "m.bin"],
            "explain" => vec!["--digit", "0", "--layers", "4"],
            "bench" => vec![
                "--quick", "--runs", "1", "--sizes", "8", "--layers", "4", "--batch", "8",
            ],
            "tune" => vec![
                "--quick",
                "--dry-run",
                "--runs",
                "1",
                "--layers",
                "4",
                "--batch",
                "8",
            ],
            _ => vec![],
        };
        if cmd != "bench" && cmd != "tune" {
            b.extend(["--data", data.to_str().unwrap()]);
        }
        b.iter().map(OsString::from).collect()
    };
    let mut runs = 0;
    for cmd in simdnet::cli::commands() {
        let mut cases: Vec<Vec<OsString>> = Vec::new();
        for whole in [
            &["--"][..],
            &["-"],
            &[""],
            &["--="],
            &["--=x"],
            &["---layers", "4"],
            &["--help=1"],
            &["--nonsense"],
            &["positional"],
        ] {
            cases.push(whole.iter().map(OsString::from).collect());
        }
        for f in cmd.flags {
            let name = format!("--{}", f.name);
            if f.value.is_none() {
                cases.push(vec![format!("{name}=1").into()]);
                cases.push(vec![format!("{name}=").into()]);
                continue;
            }
            cases.push(vec![name.clone().into()]); // no value at all
            cases.push(vec![name.clone().into(), "--help".into()]);
            for v in hostile_values() {
                cases.push(vec![name.clone().into(), v.clone()]);
                let mut inline = OsString::from(format!("{name}="));
                inline.push(&v);
                cases.push(vec![inline]);
            }
        }
        for case in cases {
            let mut argv = vec![OsString::from(cmd.name)];
            argv.extend(base(cmd.name));
            argv.extend(case.iter().cloned());
            let o = run_in(&dir, &argv);
            let err = stderr(&o);
            let what = format!("{argv:?}");
            assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
            let code = o.status.code();
            assert!(
                matches!(code, Some(0..=2)),
                "{what}: exit code {code:?} (101 is a panic, None a signal)\n{err}"
            );
            if code != Some(0) {
                assert!(err.starts_with("error: "), "{what}: no clear message:\n{err}");
            }
            runs += 1;
        }
    }
    assert!(runs > 300, "only {runs} hostile command lines");
}
