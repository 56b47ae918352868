//! The golden test: a tiny network, fixed by formulas (no RNG), trained for
//! 20 steps with each optimiser; the 20 mean losses are pinned below.
//!
//! Network: 6 inputs -> 5 (tanh) -> 4 (relu) -> 3 (identity; softmax is in
//! the loss). One batch of 16 examples, the same batch every step.
//!
//! Any change to the maths of the engine (forward, loss, backward, an
//! optimiser) moves these numbers. The tolerance is relative 1e-5, not
//! bit-exact: builds with and without FMA, and the polynomial `exp` behind
//! tanh, round differently in the last bits.
//!
//! Only [`network`] and [`losses`] touch the engine's API: adapt those two if
//! it changes. If the maths changes on purpose, run
//! `cargo test --release --test golden -- --nocapture` and paste the printed
//! arrays.

use simdnet::activation::Activation;
use simdnet::matrix::{MatRef, Matrix};
use simdnet::nn::dense::Dense;
use simdnet::nn::{Layer, Network, Optimizer, Trainer};

const INPUTS: usize = 6;
const WIDTHS: [usize; 3] = [5, 4, 3];
const ACTS: [Activation; 3] = [Activation::Tanh, Activation::Relu, Activation::Identity];
const ROWS: usize = 16;
const STEPS: usize = 20;
const REL_TOL: f64 = 1e-5;

/// Weight `(i, j)` of layer `l`, in [-0.5, 0.5].
fn weight(l: usize, i: usize, j: usize) -> f32 {
    ((i * 7 + j * 3 + l * 5) % 11) as f32 / 10.0 - 0.5
}

/// Bias `j` of layer `l`, in [-0.15, 0.15].
fn bias(l: usize, j: usize) -> f32 {
    ((j * 5 + l * 2) % 7) as f32 / 20.0 - 0.15
}

/// Input `(r, c)`, in [-1, 1].
fn input(r: usize, c: usize) -> f32 {
    ((r * 5 + c * 3) % 13) as f32 / 6.0 - 1.0
}

/// Label of example `r`, one of 0, 1, 2 (each class 5 or 6 times).
fn label(r: usize) -> u8 {
    ((r * 7 + r / 4) % 3) as u8
}

/// The network, built from explicit weights.
fn network() -> Network {
    let mut fan_in = INPUTS;
    let layers = (0..WIDTHS.len())
        .map(|l| {
            let out = WIDTHS[l];
            let layer = Dense {
                w: Matrix::from_fn(fan_in, out, |i, j| weight(l, i, j)),
                b: (0..out).map(|j| bias(l, j)).collect(),
                act: ACTS[l],
            };
            fan_in = out;
            Layer::from(layer)
        })
        .collect();
    Network::from_layers(INPUTS, layers).unwrap()
}

/// The mean loss before each of `STEPS` training steps with `opt` on the fixed batch.
fn losses(opt: Optimizer) -> Vec<f64> {
    let x: Vec<f32> = (0..ROWS * INPUTS)
        .map(|k| input(k / INPUTS, k % INPUTS))
        .collect();
    let labels: Vec<u8> = (0..ROWS).map(label).collect();
    let mut net = network();
    let mut trainer = Trainer::new(&net, opt, ROWS).unwrap();
    (0..STEPS)
        .map(|_| {
            let (loss_sum, _correct) = trainer
                .step(&mut net, MatRef::from_slice(&x, ROWS, INPUTS), 1.0, &labels)
                .unwrap();
            loss_sum / ROWS as f64
        })
        .collect()
}

fn check(name: &str, opt: Optimizer, want: &[f64; STEPS]) {
    let got = losses(opt);
    println!("const {}: [f64; STEPS] = {got:?};", name.to_uppercase());
    for (step, (&g, &w)) in got.iter().zip(want).enumerate() {
        let rel = (g - w).abs() / w.abs();
        assert!(
            rel <= REL_TOL,
            "{name} ({opt}): step {step}: loss {g}, pinned {w} (relative error {rel:.2e} > {REL_TOL:e})\n\
             all losses: {got:?}"
        );
    }
}

const SGD: [f64; STEPS] = [
    1.1421836679801345,
    1.1367371547967196,
    1.1313246968202293,
    1.1262711412273347,
    1.1214325525797904,
    1.1160479858517647,
    1.1109127092640847,
    1.1059944842709228,
    1.1012657099636272,
    1.0967023711418733,
    1.0922836356330663,
    1.0879912511445582,
    1.083809259813279,
    1.07972351484932,
    1.0757216482888907,
    1.0717926174402237,
    1.0678557711653411,
    1.0636513018980622,
    1.059371148236096,
    1.0549390204250813,
];
const MOMENTUM: [f64; STEPS] = [
    1.1421836679801345,
    1.1367371547967196,
    1.126746748574078,
    1.1137256473302841,
    1.0979352046269923,
    1.0810180118423887,
    1.06328344787471,
    1.0441258954815567,
    1.023771152831614,
    1.0026107276789844,
    0.9807224064134061,
    0.9588542776182294,
    0.9380725491791964,
    0.917024377733469,
    0.8962817303836346,
    0.8765601310878992,
    0.8585918750613928,
    0.8430688045918941,
    0.8299432843923569,
    0.8179990369826555,
];
const RMSPROP: [f64; STEPS] = [
    1.1421836679801345,
    1.09828858228866,
    1.063067005481571,
    1.030385873047635,
    1.0010519484058022,
    0.975299381185323,
    0.9525707317516208,
    0.9326656563207507,
    0.9144593076780438,
    0.8973894072696567,
    0.881793562322855,
    0.8676568251103163,
    0.8541063256561756,
    0.8417271673679352,
    0.830228291451931,
    0.8202700484544039,
    0.8111001998186111,
    0.801513060927391,
    0.7928190995007753,
    0.7862723544239998,
];
const ADAM: [f64; STEPS] = [
    1.1421836679801345,
    1.1269698389805853,
    1.1116816555149853,
    1.0964975357055664,
    1.0820588585920632,
    1.0680637788027525,
    1.0541415342595428,
    1.0398023282177746,
    1.0257926941849291,
    1.011925027705729,
    0.9981204476207495,
    0.9845033478923142,
    0.9721812782809138,
    0.9600028935819864,
    0.9479804718866944,
    0.9361434821039438,
    0.9245204739272594,
    0.9131360268220305,
    0.9020083928480744,
    0.8911487888544798,
];

#[test]
fn golden_sgd() {
    check("sgd", Optimizer::sgd(0.1), &SGD);
}

#[test]
fn golden_momentum() {
    check("momentum", Optimizer::momentum(0.1, 0.9), &MOMENTUM);
}

#[test]
fn golden_rmsprop() {
    check("rmsprop", Optimizer::rmsprop(0.01), &RMSPROP);
}

#[test]
fn golden_adam() {
    check("adam", Optimizer::adam(0.01), &ADAM);
}

#[test]
fn the_batch_is_not_degenerate() {
    // Every class appears, and the losses really move (a test pinned on a
    // flat curve would not see a wrong gradient).
    let labels: Vec<u8> = (0..ROWS).map(label).collect();
    for c in 0..3u8 {
        assert!(labels.iter().filter(|&&l| l == c).count() >= 5, "class {c}");
    }
    for (name, want) in [
        ("sgd", SGD),
        ("momentum", MOMENTUM),
        ("rmsprop", RMSPROP),
        ("adam", ADAM),
    ] {
        assert!(
            want[STEPS - 1] < want[0] - 0.05,
            "{name}: {} -> {}",
            want[0],
            want[STEPS - 1]
        );
    }
}

#[test]
fn the_first_loss_is_the_plain_f64_forward_pass() {
    // The pinned step-0 loss, recomputed from the formulas with plain f64
    // loops (z = x·W + b, a = f(z), loss = mean of -log softmax(z)[label]),
    // so the golden numbers do not merely pin whatever the engine did.
    let mut total = 0.0;
    for r in 0..ROWS {
        let mut a: Vec<f64> = (0..INPUTS).map(|c| input(r, c) as f64).collect();
        for (l, &out) in WIDTHS.iter().enumerate() {
            let z: Vec<f64> = (0..out)
                .map(|j| bias(l, j) as f64 + (0..a.len()).map(|i| a[i] * weight(l, i, j) as f64).sum::<f64>())
                .collect();
            a = match ACTS[l] {
                Activation::Tanh => z.iter().map(|v| v.tanh()).collect(),
                Activation::Relu => z.iter().map(|v| v.max(0.0)).collect(),
                Activation::Identity => z,
                other => unreachable!("{other} is not in ACTS"),
            };
        }
        let max = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = a.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
        total += log_sum - a[label(r) as usize];
    }
    let want = total / ROWS as f64;
    for (name, pinned) in [
        ("sgd", SGD),
        ("momentum", MOMENTUM),
        ("rmsprop", RMSPROP),
        ("adam", ADAM),
    ] {
        let rel = (pinned[0] - want).abs() / want;
        assert!(rel < REL_TOL, "{name}: pinned {} vs f64 {want}", pinned[0]);
    }
}
