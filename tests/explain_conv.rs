//! `simdnet explain --conv` (one step of the tiny convolutional network of
//! `teach::conv_network`) and the lesson behind it.
//!
//! - every gradient of the lesson's CNN against a central finite difference
//!   computed HERE (from `loss` only), for many images, seeds and activations;
//! - the printed numbers recomputed in this file from the printed inputs and
//!   weights (the image, W1, b1, W4, b4): every z1, the pool's winners and
//!   routing, the loss, the filter gradient and the update;
//! - the flags: usage errors, `--step` filters, `--check`, `--bug`, determinism.

// Index loops are the point here: they show which number meets which.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{expect_default_data, DATA};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use simdnet::activation::Activation;
use simdnet::geometry::{ImageShape, Padding};
use simdnet::teach::conv_network::{block_means, check, kink_margin, ConvNetworkF64};
use simdnet::teach::pitfalls::Bug;

fn explain(args: &[&str], code: i32) -> (String, String) {
    let mut all = vec!["explain"];
    all.extend(args);
    expect_default_data(&all, code)
}

// ------------------------------------------------------------ the gradients

/// `|a - n| <= 1e-6 · max(|a|, |n|)`, with 1e-10 of slack for gradients that are 0.
fn agree(a: f64, n: f64) -> bool {
    (a - n).abs() <= 1e-6 * a.abs().max(n.abs()) + 1e-10
}

/// One number of the network: `which` 0..4 is W1, b1, W4, b4.
fn slot(net: &mut ConvNetworkF64, which: usize, i: usize) -> &mut f64 {
    match which {
        0 => &mut net.w[i],
        1 => &mut net.b[i],
        2 => &mut net.dense.w[i],
        _ => &mut net.dense.b[i],
    }
}

/// The central difference of the loss in one number of the network, `h = 1e-5`
/// (its error: about h²·L''' + 1e-16·L/h, far below the tolerance).
fn central(net: &mut ConvNetworkF64, x: &[f64], labels: &[usize], which: usize, i: usize) -> f64 {
    let h = 1e-5;
    let old = *slot(net, which, i);
    *slot(net, which, i) = old + h;
    let up = net.loss(x, labels);
    *slot(net, which, i) = old - h;
    let down = net.loss(x, labels);
    *slot(net, which, i) = old;
    (up - down) / (2.0 * h)
}

#[test]
fn every_gradient_of_the_tiny_cnn_matches_a_finite_difference_within_1e_6() {
    let train =
        simdnet::data::mnist::load_split(std::path::Path::new(DATA), simdnet::data::mnist::Split::Train)
            .expect("the bundled MNIST");
    let mut checked = 0;
    let mut skipped = 0;
    for (case, act) in [Activation::Relu, Activation::Tanh, Activation::Sigmoid]
        .into_iter()
        .cycle()
        .take(24)
        .enumerate()
    {
        let image = block_means(train.image(case), 28, 28, 6).unwrap();
        let label = train.labels()[case] as usize;
        let mut rng = StdRng::seed_from_u64(case as u64);
        let shape = ImageShape::new(1, 6, 6, 1).unwrap();
        let mut net = ConvNetworkF64::glorot_uniform(shape, 3, 1, Padding::Valid, act, 10, &mut rng).unwrap();
        // nonzero biases too, so that b1 = 0 is not the only case
        net.b[0] = rng.random_range(-0.1..0.1);
        let f = net.forward(&image.x, 1);
        if !kink_margin(&net, &f, 1).clear(&image.x) {
            skipped += 1; // a difference would cross a kink of relu or of the max
            continue;
        }
        let g = net.backward(&image.x, &[label], &f);
        for (which, analytic) in [&g.dw1, &g.db1, &g.dw4, &g.db4].into_iter().enumerate() {
            for (i, &a) in analytic.iter().enumerate() {
                let n = central(&mut net, &image.x, &[label], which, i);
                assert!(
                    agree(a, n),
                    "case {case} ({act}), tensor {which}[{i}]: analytic {a}, numeric {n}"
                );
                checked += 1;
            }
        }
        // and the lesson's own check says the same
        for c in check(&net, &image.x, &[label], &g) {
            assert!(c.worst().1 < 1e-6, "case {case}: {c:?}");
        }
    }
    assert!(skipped <= 4, "{skipped} of 24 cases near a kink");
    assert!(checked >= 20 * 60, "only {checked} gradients checked");
}

#[test]
fn a_wrong_backward_line_is_caught_by_the_check() {
    let train =
        simdnet::data::mnist::load_split(std::path::Path::new(DATA), simdnet::data::mnist::Split::Train)
            .unwrap();
    let image = block_means(train.image(0), 28, 28, 6).unwrap();
    // seed 2: the tile (0,0) is all below 0, so its winner's gate is 0 (seed 1 has
    // no such tile, and there a forgotten gate changes nothing)
    let mut rng = StdRng::seed_from_u64(2);
    let shape = ImageShape::new(1, 6, 6, 1).unwrap();
    let net =
        ConvNetworkF64::glorot_uniform(shape, 3, 1, Padding::Valid, Activation::Relu, 10, &mut rng).unwrap();
    let f = net.forward(&image.x, 1);
    for bug in [Bug::ForgottenSlope, Bug::Overwrite] {
        let g = net.backward_with(&image.x, &[5], &f, Some(bug));
        let worst = check(&net, &image.x, &[5], &g)[0].worst().1; // dW1
        assert!(worst > 1e-2, "{bug:?}: dW1's largest error {worst}");
    }
}

// ------------------------------------------------ the printed numbers, recomputed

/// The `count` numbers printed after the line that starts with `label`
/// (on it and on the lines below it).
fn numbers_after(text: &str, label: &str, count: usize) -> Vec<f64> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(label));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no line '{label}' in:\n{text}"));
    let parse = |s: &str| -> Vec<f64> { s.split_whitespace().filter_map(|w| w.parse().ok()).collect() };
    let mut out = parse(&first[label.len()..]);
    for l in lines {
        if out.len() >= count {
            break;
        }
        out.extend(parse(l));
    }
    assert!(out.len() >= count, "'{label}': {out:?}");
    out.truncate(count);
    out
}

/// The value a printed sum ends with: the number after the last `= ` of the
/// line starting with `label` or of the lines wrapped below it.
fn sum_value(text: &str, label: &str) -> f64 {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(label));
    let mut line = lines.next().unwrap_or_else(|| panic!("no line '{label}'"));
    loop {
        if let Some((_, v)) = line.rsplit_once("= ") {
            if let Ok(v) = v.trim().parse() {
                return v;
            }
        }
        line = lines.next().unwrap_or_else(|| panic!("'{label}' never ends"));
    }
}

fn close(printed: f64, computed: f64, what: &str) {
    assert!(
        (printed - computed).abs() < 2e-5,
        "{what}: printed {printed}, recomputed {computed}"
    );
}

#[test]
fn printed_numbers_match_a_recomputation_from_the_printed_inputs() {
    let (text, _) = explain(&["--conv", "--index", "0"], 0);
    // the inputs, as printed
    let x = numbers_after(&text, "  x (6, 6):", 36);
    let w1 = numbers_after(&text, "  W1 (3, 3):", 9);
    let b1 = numbers_after(&text, "  b1 = ", 1)[0];
    let w4: Vec<f64> = (0..4)
        .flat_map(|i| numbers_after(&text, &format!("    W4[{i}] ="), 10))
        .collect();
    let b4 = numbers_after(&text, "    b4 =", 10);
    // the image: block means of the real digit, as this test makes them
    let train =
        simdnet::data::mnist::load_split(std::path::Path::new(DATA), simdnet::data::mnist::Split::Train)
            .unwrap();
    let px = train.image(0);
    for by in 0..6 {
        for bx in 0..6 {
            let s: u32 = (0..16)
                .map(|k| px[(2 + 4 * by + k / 4) * 28 + 2 + 4 * bx + k % 4] as u32)
                .sum();
            close(x[by * 6 + bx], s as f64 / 16.0 / 255.0, &format!("x[{by},{bx}]"));
        }
    }

    // forward: every z1, relu, the pool and its winners, flatten, the logits, the loss
    let mut z1 = [0.0; 16];
    for oy in 0..4 {
        for ox in 0..4 {
            let mut z = b1;
            for ky in 0..3 {
                for kx in 0..3 {
                    z += x[(oy + ky) * 6 + ox + kx] * w1[ky * 3 + kx];
                }
            }
            z1[oy * 4 + ox] = z;
        }
    }
    let printed_z1 = numbers_after(&text, "  z1 (4, 4):", 16);
    for k in 0..16 {
        close(printed_z1[k], z1[k], &format!("z1[{},{}]", k / 4, k % 4));
    }
    close(sum_value(&text, "  z1[0,0] = 0"), z1[0], "the z1[0,0] sum");
    let a1: Vec<f64> = z1.iter().map(|&z| z.max(0.0)).collect();
    let mut a2 = [0.0; 4];
    let mut winner = [0; 4];
    for py in 0..2 {
        for px in 0..2 {
            let tile = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| (2 * py + dy) * 4 + 2 * px + dx);
            let w = tile
                .into_iter()
                .fold(tile[0], |b, i| if a1[i] > a1[b] { i } else { b });
            winner[py * 2 + px] = w;
            a2[py * 2 + px] = a1[w];
            let from = format!(", from a1[{},{}]", w / 4, w % 4);
            let line = text
                .lines()
                .skip_while(|l| !l.starts_with(&format!("  a2[{py},{px}] = max(")))
                .nth(1)
                .unwrap();
            assert!(line.contains(&from), "tile ({py},{px}): {line} (expected {from})");
        }
    }
    let logits: Vec<f64> = (0..10)
        .map(|j| b4[j] + (0..4).map(|i| a2[i] * w4[i * 10 + j]).sum::<f64>())
        .collect();
    for j in 0..10 {
        close(
            sum_value(&text, &format!("  z4[{j}] =")),
            logits[j],
            &format!("z4[{j}]"),
        );
    }
    let norm: f64 = logits.iter().map(|z| z.exp()).sum();
    let p: Vec<f64> = logits.iter().map(|z| z.exp() / norm).collect();
    let label = 5; // MNIST training image 0 is a 5
    assert!(text.contains("MNIST training image 0 (label 5)"));
    close(sum_value(&text, "mean loss L = "), -p[label].ln(), "the loss");

    // backward: the pool routes each gradient to its winner, relu gates, the filter gradient sums
    let dz4: Vec<f64> = (0..10)
        .map(|j| p[j] - if j == label { 1.0 } else { 0.0 })
        .collect();
    let da3: Vec<f64> = (0..4)
        .map(|i| (0..10).map(|j| dz4[j] * w4[i * 10 + j]).sum())
        .collect();
    let da1 = numbers_after(&text, "  da1 (4, 4):", 16);
    for k in 0..16 {
        let routed = winner.iter().position(|&w| w == k).map_or(0.0, |t| da3[t]);
        close(da1[k], routed, &format!("da1[{},{}] (the routing)", k / 4, k % 4));
    }
    let dz1: Vec<f64> = (0..16).map(|k| if z1[k] > 0.0 { da1[k] } else { 0.0 }).collect();
    let printed_dz1 = numbers_after(&text, "  dz1 (4, 4):", 16);
    let mut dw1 = [0.0; 9];
    for ky in 0..3 {
        for kx in 0..3 {
            for oy in 0..4 {
                for ox in 0..4 {
                    dw1[ky * 3 + kx] += x[(oy + ky) * 6 + ox + kx] * dz1[oy * 4 + ox];
                }
            }
            close(
                sum_value(&text, &format!("    dW1[{ky},{kx}] =")),
                dw1[ky * 3 + kx],
                &format!("dW1[{ky},{kx}]"),
            );
        }
    }
    for k in 0..16 {
        close(printed_dz1[k], dz1[k], "dz1");
    }
    close(sum_value(&text, "    db1 ="), dz1.iter().sum(), "db1");
    // dx: every window that covered a pixel sends it W1·dz1
    let dx = numbers_after(&text, "  dx (6, 6):", 36);
    for y in 0..6 {
        for x_ in 0..6 {
            let mut d = 0.0;
            for oy in 0..4 {
                for ox in 0..4 {
                    if (oy..oy + 3).contains(&y) && (ox..ox + 3).contains(&x_) {
                        d += w1[(y - oy) * 3 + x_ - ox] * dz1[oy * 4 + ox];
                    }
                }
            }
            close(dx[y * 6 + x_], d, &format!("dx[{y},{x_}]"));
        }
    }

    // the update: SGD, lr 0.01
    for k in 0..9 {
        let line = format!("  W1[{},{}] = ", k / 3, k % 3);
        close(
            sum_value(&text, &line),
            w1[k] - 0.01 * dw1[k],
            &format!("W1[{},{}] after", k / 3, k % 3),
        );
    }
    // every line fits a terminal
    for l in text.lines() {
        assert!(l.chars().count() <= 100, "too wide: {l}");
    }
}

// ---------------------------------------------------------------- the flags

#[test]
fn check_prints_every_gradient_beside_its_finite_difference() {
    let (text, _) = explain(&["--conv", "--check", "--step", "update"], 0);
    let part = &text[text.find("== 5. gradient check").expect("no check")..];
    for (name, n) in [("dW1", 9), ("db1", 1), ("dW4", 40), ("db4", 10)] {
        assert!(
            part.contains(&format!("{name}: {n} of {n} below 1e-6")),
            "{name}:\n{part}"
        );
        assert!(part.contains(&format!("{name} is right")), "{name}:\n{part}");
    }
    let rows = part
        .lines()
        .filter(|l| l.starts_with("  d") && l.split_whitespace().count() == 4)
        .count();
    assert_eq!(rows, 60, "one row per weight and bias:\n{part}");
    assert!(part.contains("every gradient agrees with its finite difference"));
    for (bug, line) in [
        ("forgotten-slope", "dz1 = da1   (right: dz1 = da1 ⊙ f'(a1))"),
        ("overwrite", "dW1[ky,kx] = x·dz1 at each position"),
    ] {
        let (text, _) = explain(&["--conv", "--seed", "2", "--bug", bug, "--step", "error"], 0);
        assert!(text.contains(line), "{bug}:\n{text}");
        assert!(
            text.contains("dW1 is WRONG: a bug in the backward pass"),
            "{bug}:\n{text}"
        );
    }
}

#[test]
fn step_prints_only_its_part() {
    let parts = [
        "== 1. forward pass",
        "== 2. error",
        "== 3. backward pass",
        "== 4. update",
    ];
    let (all, _) = explain(&["--conv"], 0);
    for p in parts {
        assert!(all.contains(p), "{p} missing");
    }
    assert!(!all.contains("== 5. gradient check"));
    for (step, keep) in [("forward", 0), ("error", 1), ("backward", 2), ("update", 3)] {
        // `--part` is `--step`'s other name
        let flag = if keep % 2 == 0 { "--step" } else { "--part" };
        let (text, _) = explain(&["--conv", flag, step], 0);
        for (k, p) in parts.iter().enumerate() {
            assert_eq!(text.contains(p), k == keep, "--step {step}: {p}");
        }
        assert!(
            text.starts_with("simdnet explain --conv:"),
            "--step {step}: no header"
        );
    }
}

#[test]
fn the_output_is_the_same_for_a_seed_and_another_seed_changes_the_weights() {
    let (a, _) = explain(&["--conv", "--index", "7", "--seed", "3"], 0);
    let (b, _) = explain(&["--conv", "--index", "7", "--seed", "3"], 0);
    assert_eq!(a, b);
    let (c, _) = explain(&["--conv", "--index", "7", "--seed", "4"], 0);
    assert_ne!(
        numbers_after(&a, "  W1 (3, 3):", 9),
        numbers_after(&c, "  W1 (3, 3):", 9)
    );
    assert_eq!(
        numbers_after(&a, "  x (6, 6):", 36),
        numbers_after(&c, "  x (6, 6):", 36)
    );
    // other optimizers and activations run and go downhill
    for args in [
        vec!["--conv", "--optimizer", "adam", "--step", "update"],
        vec![
            "--conv",
            "--optimizer",
            "rmsprop",
            "--activation",
            "tanh",
            "--step",
            "update",
        ],
    ] {
        let (text, _) = explain(&args, 0);
        assert!(
            text.contains("(lower: the step went downhill)"),
            "{args:?}:\n{text}"
        );
    }
}

#[test]
fn bad_combinations_are_usage_errors_with_one_clear_message() {
    let (_, err) = explain(&["--conv", "--layers", "8"], 2);
    assert!(
        err.starts_with(
            "error: --layers sets the hidden dense layers of the MLP; the network of --conv has none"
        ),
        "{err}"
    );
    let (_, err) = explain(&["--conv", "--activation", "relu,tanh"], 2);
    assert!(err.contains("2 activations for 1 hidden layers"), "{err}");
    assert!(err.contains("(--conv has one: the convolution's)"), "{err}");
    let (_, err) = explain(&["--conv", "--step", "sideways"], 2);
    assert!(
        err.contains("expected one of forward, error, backward, update, all"),
        "{err}"
    );
    let (_, err) = explain(&["--conv", "--index", "60000"], 1);
    assert!(
        err.contains("--index 60000 is past the 60000 training images"),
        "{err}"
    );
}
