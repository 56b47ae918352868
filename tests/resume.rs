//! Never lose a run: checkpoints, exact resume, Ctrl-C and a killed write.
//!
//! Through the real binary with `--limit` small; a resumed run's saved model
//! must be byte for byte the uninterrupted run's, on 1 and 2 threads.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{expect_with_data as expect, s, DATA};
use simdnet::data::Mnist;
use simdnet::matrix::MatRef;
use simdnet::nn::{
    checkpoint, Activation, Network, Optimizer, Outcome, PartialEpoch, Session, TrainConfig, Trainer,
};

fn scratch(name: &str) -> PathBuf {
    common::scratch("resume", name)
}

#[test]
fn resuming_after_any_epoch_gives_the_same_weights_on_1_and_2_threads() {
    let d = scratch("epochs");
    let reference = d.join("ref.bin");
    let run = ["train", "--limit", "3000", "--layers", "32,16"];
    expect(
        &[
            &run[..],
            &["--epochs", "3", "--threads", "2", "--save", s(&reference)],
        ]
        .concat(),
        0,
    );
    let reference = std::fs::read(&reference).unwrap();
    for k in ["1", "2"] {
        for (first, second) in [("1", "2"), ("2", "1"), ("1", "1")] {
            let ck = d.join(format!("k{k}-{first}{second}.ck"));
            let model = d.join(format!("k{k}-{first}{second}.bin"));
            let (out, _) = expect(
                &[
                    &run[..],
                    &["--epochs", k, "--threads", first, "--checkpoint", s(&ck)],
                ]
                .concat(),
                0,
            );
            assert!(out.contains(&format!("Epoch {k}/{k}")), "{out}");
            let (out, _) = expect(
                &[
                    "train",
                    "--resume",
                    s(&ck),
                    "--epochs",
                    "3",
                    "--threads",
                    second,
                    "--save",
                    s(&model),
                ],
                0,
            );
            assert!(out.contains(&format!("{k} of 3 epochs done")), "{out}");
            assert!(out.contains("Epoch 3/3") && !out.contains("Epoch 1/3"), "{out}");
            assert!(
                std::fs::read(&model).unwrap() == reference,
                "stopped after {k} epochs on {first} threads, resumed on {second}: the weights differ"
            );
        }
    }
}

/// A library run interrupted inside an epoch (and between two), checkpointed
/// to bytes and read back, ends with the uninterrupted run's weights.
#[test]
fn a_run_interrupted_mid_epoch_resumes_bit_for_bit() {
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let (train, val) = mnist.train.take(1200).split_tail(0.25).unwrap();
    let cfg = TrainConfig::default().with_epochs(3).with_batch_size(100);
    let new_net = || Network::mlp(784, &[24], 10, Activation::Tanh, 3).unwrap();
    let opt = Optimizer::adam(0.002);
    let mut reference = new_net();
    let history = simdnet::nn::fit(&mut reference, opt, &train, Some(&val), &cfg, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    // 900 examples, batch 100: 9 steps an epoch. Stop after global step `stop_at`.
    for stop_at in [4, 9, 13] {
        let mut net = new_net();
        let mut session = Session::new(&net, opt, &train, &cfg).unwrap();
        let mut seen = 0;
        let mut on = |p: simdnet::nn::Progress| {
            if let simdnet::nn::Progress::Step { .. } = p {
                seen += 1;
                if seen == stop_at {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        };
        while let Outcome::Epoch = session
            .next_epoch(&mut net, &train, Some(&val), &cfg, &mut on)
            .unwrap()
        {}
        assert!(session.epochs_done < 3, "stopped at step {stop_at}");
        let bytes = checkpoint::to_bytes(&net, &session, &cfg, &[]);
        let ck = checkpoint::from_bytes(&bytes, "mem.ck".as_ref()).unwrap();
        assert_eq!(ck.cfg, cfg);
        let (mut net, mut session) = (ck.net, ck.session);
        while let Outcome::Epoch = session
            .next_epoch(&mut net, &train, Some(&val), &cfg, &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap()
        {}
        assert_eq!(session.epochs_done, 3);
        assert!(
            net == reference,
            "stopped after step {stop_at}: the weights differ"
        );
        // The history is whole; only the timings may differ.
        for (a, b) in session.history.iter().zip(&history) {
            assert_eq!(
                (a.epoch, a.loss, a.accuracy, a.validation),
                (b.epoch, b.loss, b.accuracy, b.validation)
            );
        }
    }
}

/// An interruption after an update that overflowed the weights ends in an
/// error, not in a checkpoint whose model would not load; and a checkpoint
/// of such a network is refused before anything is written.
#[test]
fn an_interruption_after_an_overflowing_update_is_an_error_not_a_checkpoint() {
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let train = mnist.train.take(256);
    let cfg = TrainConfig::default().with_epochs(1).with_batch_size(128);
    // Raw pixels and a rate near f32's largest: the first update overflows.
    let mut net = Network::mlp(784, &[16], 10, Activation::Relu, 1)
        .unwrap()
        .with_input_scale(1.0)
        .unwrap();
    let opt = Optimizer::sgd(3e38);
    let mut session = Session::new(&net, opt, &train, &cfg).unwrap();
    let err = session
        .next_epoch(&mut net, &train, None, &cfg, &mut |_| ControlFlow::Break(()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "training diverged: a weight of layer 0 became NaN or infinite by epoch 1, step 1 \
         (lower the learning rate with --lr, e.g. to a tenth)"
    );
    assert_eq!(net.non_finite_layer(), Some(0));
    let ck = scratch("overflow").join("run.ck");
    let err = checkpoint::save(&ck, &net, &session, &cfg, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot save the checkpoint to '{}': layer 0 of the network holds a NaN or infinite weight, \
             which no model file may hold (nothing was written; train again with a lower learning rate)",
            ck.display()
        )
    );
    assert!(!ck.exists());
}

#[test]
fn ctrl_c_stops_cleanly_and_the_checkpoint_resumes_exactly() {
    let d = scratch("sigint");
    let (reference, ck, model) = (d.join("ref.bin"), d.join("run.ck"), d.join("resumed.bin"));
    let run = [
        "train",
        "--limit",
        "4000",
        "--layers",
        "256,256",
        "--epochs",
        "8",
        "--threads",
        "2",
    ];
    expect(&[&run[..], &["--save", s(&reference)]].concat(), 0);
    // The signal goes after the first of eight epochs, with about 0.2 s of
    // the run left on a fast machine: a host that stalls this test that
    // long lets the run finish first, and nothing was interrupted. Then try
    // again; a Ctrl-C that is ignored fails every try.
    let mut tries = 0;
    let (out, o) = loop {
        tries += 1;
        let _ = std::fs::remove_file(&ck);
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args(run)
            .args(["--data", DATA, "--checkpoint", s(&ck)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Epoch 1/8") {
                signal(&child, "-INT");
                break;
            }
        }
        let out: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let o = child.wait_with_output().unwrap();
        let finished = o.status.code() == Some(0) && out.iter().any(|l| l.starts_with("Epoch 8/8"));
        if !finished || tries == 3 {
            break (out, o);
        }
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{out:?}\n{err}");
    assert!(
        !out.iter().any(|l| l.starts_with("Epoch 8/8")),
        "it stopped early: {out:?}"
    );
    assert!(err.contains("Interrupted by Ctrl-C after"), "{err}");
    assert!(
        err.contains(&format!("Saved the checkpoint to {}", s(&ck))),
        "{err}"
    );
    let hint = err
        .lines()
        .find_map(|l| l.strip_prefix("Resume with: simdnet "))
        .unwrap_or_else(|| panic!("no resume hint in:\n{err}"));
    assert!(hint.starts_with(&format!("train --resume {}", s(&ck))), "{hint}");
    // Run the hint as printed (the paths have no spaces), adding --save.
    let args: Vec<&str> = hint.split(' ').chain(["--save", s(&model)]).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&model).unwrap() == std::fs::read(&reference).unwrap(),
        "the resumed run's weights differ from the uninterrupted run's"
    );
}

/// Sends `signal` (e.g. "-INT") to `child`.
fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_no_partial_file() {
    let d = scratch("sigint2");
    let model = d.join("m.bin");
    let (mut caught, mut finished_first) = (false, 0);
    for _attempt in 0..6 {
        // A large model (4.2M parameters, 17 MB): the save that the first
        // Ctrl-C starts takes long enough to be caught half-written.
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args([
                "train",
                "--limit",
                "256",
                "--layers",
                "2048,1280",
                "--epochs",
                "1000",
            ])
            .args(["--data", DATA, "--save", s(&model)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Epoch 1/1000") {
                break;
            }
        }
        signal(&child, "-INT");
        loop {
            if temp_beside(&model).is_some() {
                signal(&child, "-INT");
                caught = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        drop(lines);
        let status = child.wait().unwrap();
        if caught && status.code() == Some(130) && model.exists() && temp_beside(&model).is_none() {
            // The save ended (renamed into place) before the second signal
            // landed: `kill` is a process of its own, started after the
            // temporary file was seen. Nothing was caught; try again.
            caught = false;
            finished_first += 1;
        }
        if caught {
            assert_eq!(status.code(), Some(130), "the second Ctrl-C exits at once");
            assert_eq!(temp_beside(&model), None, "the half-written file is removed");
            assert!(!model.exists(), "no model was completed");
            break;
        }
        let _ = std::fs::remove_file(&model);
    }
    assert!(
        caught,
        "never caught the save in progress in 6 attempts; in {finished_first} of them the model was \
         saved whole after the second Ctrl-C was sent (as when a second Ctrl-C does not quit at once)"
    );
}

/// The temporary file of a checkpoint being written beside `ck`, if one exists.
fn temp_beside(ck: &Path) -> Option<PathBuf> {
    let name = ck.file_name()?.to_str()?;
    std::fs::read_dir(ck.parent()?).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        let n = p.file_name()?.to_str()?.to_string();
        (n.starts_with(&format!(".{name}.")) && n.ends_with(".simdnet-tmp")).then_some(p)
    })
}

#[test]
fn a_kill_during_a_checkpoint_write_leaves_the_previous_one_resumable() {
    let d = scratch("sigkill");
    let run = [
        "train",
        "--limit",
        "512",
        "--validation-split",
        "0.25",
        "--layers",
        "1024,1024",
        "--epochs",
        "5",
        "--threads",
        "2",
    ];
    let reference = d.join("ref.bin");
    expect(&[&run[..], &["--save", s(&reference)]].concat(), 0);
    let ck = d.join("run.ck");
    let mut caught = false;
    for _attempt in 0..6 {
        let _ = std::fs::remove_file(&ck);
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args(run)
            .args(["--data", DATA, "--checkpoint", s(&ck)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a second checkpoint write: the first is then complete.
        loop {
            if ck.exists() && temp_beside(&ck).is_some() {
                child.kill().unwrap(); // SIGKILL
                caught = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let _ = child.wait();
        if caught {
            break;
        }
    }
    assert!(caught, "never caught a checkpoint being written in 6 attempts");
    let model = d.join("resumed.bin");
    let (out, _) = expect(&["train", "--resume", s(&ck), "--save", s(&model)], 0);
    assert!(out.contains("Resuming from"), "{out}");
    assert!(
        std::fs::read(&model).unwrap() == std::fs::read(&reference).unwrap(),
        "the run resumed from the previous checkpoint differs from the uninterrupted one"
    );
    // The killed writer's temporary file is gone: the resumed run's first
    // checkpoint write removed it.
    assert_eq!(temp_beside(&ck), None);
}

#[test]
fn flags_that_contradict_the_checkpoint_are_refused() {
    let d = scratch("contradict");
    let ck = d.join("c.ck");
    expect(
        &[
            "train",
            "--limit",
            "1000",
            "--epochs",
            "1",
            "--checkpoint",
            s(&ck),
        ],
        0,
    );
    let cases: &[(&[&str], &str)] = &[
        (&["--lr", "0.01"], "--lr 0.01 contradicts the checkpoint"),
        (&["--layers", "32"], "--layers 32 contradicts the checkpoint"),
        (&["--seed", "2"], "--seed 2 contradicts the checkpoint"),
        (
            &["--optimizer", "adam"],
            "--optimizer adam contradicts the checkpoint",
        ),
        (&["--batch", "64"], "--batch 64 contradicts the checkpoint"),
        (
            &["--activation", "tanh"],
            "--activation tanh,tanh contradicts the checkpoint",
        ),
        (&["--dropout", "0.2"], "--dropout 0.2 contradicts the checkpoint"),
        (
            &["--weight-decay", "0.001"],
            "--weight-decay 0.001 contradicts the checkpoint",
        ),
        (&["--no-scale"], "--no-scale true contradicts the checkpoint"),
        (&["--limit", "2000"], "--limit 2000 contradicts the checkpoint"),
        (
            &["--validation-split", "0.1"],
            "--validation-split 0.1 contradicts the checkpoint",
        ),
    ];
    for (extra, want) in cases {
        let (_, err) = expect(&[&["train", "--resume", s(&ck)][..], extra].concat(), 2);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(err.contains("which was trained with --"), "{err}");
        assert!(err.contains("drop --"), "{err}");
    }
    let (_, err) = expect(&["train", "--resume", s(&ck), "--lr", "0.01"], 2);
    assert!(err.contains("which was trained with --lr 0.001"), "{err}");
    // Flags that agree with it are fine, and --epochs may raise the total.
    let (out, _) = expect(
        &[
            "train",
            "--resume",
            s(&ck),
            "--seed",
            "1",
            "--lr",
            "0.001",
            "--epochs",
            "2",
        ],
        0,
    );
    assert!(out.contains("Epoch 2/2"), "{out}");
    let (_, err) = expect(&["train", "--resume", s(&ck), "--epochs", "1"], 2);
    assert!(err.contains("--epochs 1 is fewer than the 2 epochs"), "{err}");
}

#[test]
fn a_corrupt_or_truncated_checkpoint_gives_a_clear_error() {
    let d = scratch("corrupt");
    let ck = d.join("c.ck");
    expect(
        &["train", "--limit", "500", "--epochs", "1", "--checkpoint", s(&ck)],
        0,
    );
    let good = std::fs::read(&ck).unwrap();
    let bad = d.join("bad.ck");
    let check = |bytes: &[u8], want: &str| {
        std::fs::write(&bad, bytes).unwrap();
        let (_, err) = expect(&["train", "--resume", s(&bad)], 1);
        assert!(err.contains("is not a usable simdnet checkpoint"), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    };
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    check(&flipped, "the checksum does not match");
    check(&good[..good.len() - 100], "the checksum does not match");
    check(&good[..10], "truncated");
    check(b"", "the file is empty");
    let model = d.join("m.bin");
    expect(
        &["train", "--limit", "500", "--epochs", "1", "--save", s(&model)],
        0,
    );
    check(&std::fs::read(&model).unwrap(), "magic bytes");
    let (_, err) = expect(&["train", "--resume", s(&d.join("absent.ck"))], 1);
    assert!(err.contains("absent.ck"), "{err}");
    // Every short prefix: the magic bytes are checked before they are read.
    for cut in 1..24 {
        let err = checkpoint::from_bytes(&good[..cut], "t.ck".as_ref())
            .err()
            .unwrap()
            .to_string();
        let want = if cut < 8 {
            "it does not start with the simdnet checkpoint magic bytes".to_string()
        } else {
            format!("the file is truncated ({cut} bytes)")
        };
        assert!(err.contains(&want), "{cut} bytes: {err}");
    }
    // 24 bytes, the least a checkpoint can be (magic bytes, version, section
    // count, checksum): read on, not called truncated.
    let err = checkpoint::from_bytes(&good[..24], "t.ck".as_ref())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("the checksum does not match"), "24 bytes: {err}");
    // Every truncation and a byte flip at every 97th offset: an error, never a panic.
    for cut in (0..good.len()).step_by(997) {
        assert!(checkpoint::from_bytes(&good[..cut], "t.ck".as_ref()).is_err());
    }
    for i in (0..good.len()).step_by(97) {
        let mut b = good.clone();
        b[i] ^= 0xff;
        assert!(
            checkpoint::from_bytes(&b, "f.ck".as_ref()).is_err(),
            "flip at {i}"
        );
    }
}

#[test]
fn a_checkpoint_with_a_valid_checksum_but_bad_contents_is_refused() {
    // Rewrites the CONF section and recomputes the checksum: the reader must
    // still check every value rather than trust the hash.
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let train = mnist.train.take(300);
    let net = Network::mlp(784, &[8], 10, Activation::Relu, 1).unwrap();
    let cfg = TrainConfig::default();
    let session = Session::new(&net, Optimizer::sgd(0.1), &train, &cfg).unwrap();
    let good = checkpoint::to_bytes(&net, &session, &cfg, &[]);
    let text = String::from_utf8_lossy(&good).into_owned();
    for (from, to, want) in [
        ("epochs-done=0", "epochs-done=9", "epochs done of"),
        ("optimizer=sgd", "optimizer=sgx", "unknown optimizer"),
        ("batch=128", "batch=000", "do not make a run"),
        ("examples=300", "examples=abc", "not a valid number"),
    ] {
        assert_eq!(from.len(), to.len(), "same length keeps the section sizes");
        let at = text
            .find(from)
            .unwrap_or_else(|| panic!("{from} not in the checkpoint"));
        let mut b = good[..good.len() - 8].to_vec();
        b[at..at + from.len()].copy_from_slice(to.as_bytes());
        let sum = simdnet::nn::model_file::fnv1a64(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        let err = checkpoint::from_bytes(&b, "x.ck".as_ref())
            .err()
            .map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains(want)), "{to}: {err:?}");
    }
    // The count of sections is bounded before anything is reserved for
    // them: one more than the most is refused by name, the most is read on.
    let max = checkpoint::MAX_SECTIONS;
    for (count, want) in [
        (
            max + 1,
            format!("it declares {} sections (at most {max})", max + 1),
        ),
        (max, "a section header is truncated".to_string()),
    ] {
        let mut b = good[..12].to_vec(); // the magic bytes and the version
        b.extend_from_slice(&(count as u32).to_le_bytes());
        let sum = simdnet::nn::model_file::fnv1a64(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        let err = checkpoint::from_bytes(&b, "x.ck".as_ref())
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains(&want)),
            "{count} sections: {err:?}"
        );
    }
}

/// A checkpoint whose checksum is right but whose mid-epoch position or
/// best weights do not fit its run is refused, each field out of range
/// alone; the same checkpoint with them in range is read.
#[test]
fn a_position_or_best_weights_that_do_not_fit_the_run_are_refused() {
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let train = mnist.train.take(300); // batches of 128: steps 1 and 2 are mid-epoch
    let net = Network::mlp(784, &[8], 10, Activation::Relu, 1).unwrap();
    let cfg = TrainConfig::default();
    let fresh = || Session::new(&net, Optimizer::sgd(0.1), &train, &cfg).unwrap();
    let read = |session: &Session| {
        let bytes = checkpoint::to_bytes(&net, session, &cfg, &[]);
        checkpoint::from_bytes(&bytes, "p.ck".as_ref())
            .err()
            .map(|e| e.to_string())
    };
    let at = |step, seen, correct| {
        let mut session = fresh();
        session.partial = Some(PartialEpoch {
            step,
            loss_sum: 1.5,
            correct,
            seen,
            seconds: 0.25,
        });
        session
    };
    assert_eq!(read(&at(2, 256, 256)), None, "step 2 of 3, 256 seen, all correct");
    assert_eq!(read(&at(1, 300, 0)), None, "all 300 seen");
    for (step, seen, correct) in [(0, 128, 0), (3, 128, 0), (1, 301, 0), (1, 128, 129)] {
        let err = read(&at(step, seen, correct));
        let want = format!("the position (step {step} of 3, {seen} seen) does not fit the run");
        assert!(
            err.as_deref().is_some_and(|e| e.contains(&want)),
            "step {step}, {seen} seen, {correct} correct: {err:?}"
        );
    }
    let mut session = fresh();
    session.early.best = Some(net.clone());
    assert_eq!(read(&session), None, "best weights of the network's shape");
    session.early.best = Some(Network::mlp(784, &[9], 10, Activation::Relu, 1).unwrap());
    let err = read(&session);
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("the best weights (BEST) do not have the network's shape")),
        "{err:?}"
    );
}

#[test]
fn trainer_step_returns_errors_instead_of_panicking() {
    let mut net = Network::mlp(4, &[3], 2, Activation::Relu, 1).unwrap();
    let mut trainer = Trainer::new(&net, Optimizer::sgd(0.1), 4).unwrap();
    let x = [0.5f32; 8];
    let before = net.clone();
    let step = |t: &mut Trainer, n: &mut Network, rows: usize, cols: usize, labels: &[u8]| {
        t.step(n, MatRef::from_slice(&x[..rows * cols], rows, cols), 1.0, labels)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(step(&mut trainer, &mut net, 2, 4, &[0, 2])
        .contains("label 2 is out of range for a network with 2 outputs"));
    assert!(step(&mut trainer, &mut net, 2, 4, &[0]).contains("1 labels for a batch of 2"));
    assert!(step(&mut trainer, &mut net, 0, 4, &[]).contains("the batch is empty"));
    assert!(step(&mut trainer, &mut net, 4, 2, &[0, 1, 0, 1])
        .contains("2 features per example but the network expects 4"));
    let mut wide = Network::mlp(4, &[5], 2, Activation::Relu, 1).unwrap();
    assert!(step(&mut trainer, &mut wide, 2, 4, &[0, 1]).contains("not the one this trainer was made for"));
    let mut small = Trainer::new(&net, Optimizer::sgd(0.1), 1).unwrap();
    assert!(step(&mut small, &mut net, 2, 4, &[0, 1]).contains("over this trainer's capacity of 1"));
    assert!(net == before, "a refused step changes nothing");
    assert!(trainer
        .step(&mut net, MatRef::from_slice(&x, 2, 4), 1.0, &[0, 1])
        .is_ok());
}
