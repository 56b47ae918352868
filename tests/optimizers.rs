//! Each optimiser's update against numbers worked out by hand.
//!
//! One parameter `w = 1.0` with gradient `g = 0.5`, two steps.

use simdnet::nn::{Optimizer, OptimizerState};

fn two_steps(opt: Optimizer) -> (f32, f32) {
    let mut state = OptimizerState::new(&[1]);
    let mut w = [1.0f32];
    state.begin_step();
    state.update(&opt, 0, &mut w, &[0.5]);
    let first = w[0];
    state.begin_step();
    state.update(&opt, 0, &mut w, &[0.5]);
    (first, w[0])
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() < 1e-6
}

#[test]
fn sgd() {
    // w = 1 - 0.1·0.5 = 0.95; then 0.95 - 0.05 = 0.90
    let (a, b) = two_steps(Optimizer::sgd(0.1));
    assert!(close(a, 0.95) && close(b, 0.90), "{a} {b}");
}

#[test]
fn sgd_with_momentum() {
    // v = 0.9·0 - 0.1·0.5 = -0.05, w = 0.95; v = 0.9·(-0.05) - 0.05 = -0.095, w = 0.855
    let (a, b) = two_steps(Optimizer::momentum(0.1, 0.9));
    assert!(close(a, 0.95) && close(b, 0.855), "{a} {b}");
}

#[test]
fn rmsprop() {
    // s = 0.9·0 + 0.1·0.25 = 0.025;   w = 1 - 0.001·0.5/sqrt(0.025 + 1e-7) = 0.99683773
    // s = 0.9·0.025 + 0.025 = 0.0475; w -= 0.001·0.5/sqrt(0.0475 + 1e-7)  -> 0.99454357
    let (a, b) = two_steps(Optimizer::rmsprop(0.001));
    assert!(close(a, 0.996_837_73) && close(b, 0.994_543_57), "{a} {b}");
}

#[test]
fn adam() {
    // t = 1: m = 0.05, v = 0.00025, m̂ = 0.05/0.1 = 0.5, v̂ = 0.00025/0.001 = 0.25,
    //        w = 1 - 0.001·0.5/(sqrt(0.25) + 1e-7) = 0.9990000002
    // t = 2: m = 0.095, v = 0.00049975, m̂ = 0.095/0.19 = 0.5, v̂ = 0.00049975/0.001999 = 0.25,
    //        w -> 0.9980000004 (Adam's first steps move by about lr)
    let (a, b) = two_steps(Optimizer::adam(0.001));
    assert!(close(a, 0.999_000_000_2) && close(b, 0.998_000_000_4), "{a} {b}");
}

#[test]
fn large_tensors_update_like_small_ones() {
    // Above PARALLEL_UPDATE_MIN_PARAMS the update runs in parallel chunks: same numbers.
    let n = simdnet::nn::optim::PARALLEL_UPDATE_MIN_PARAMS * 2 + 3;
    for opt in [
        Optimizer::momentum(0.1, 0.9),
        Optimizer::rmsprop(0.01),
        Optimizer::adam(0.01),
    ] {
        let g: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let mut big = vec![0.5f32; n];
        let mut state = OptimizerState::new(&[n]);
        state.begin_step();
        state.update(&opt, 0, &mut big, &g);
        for i in [0, 1, n / 2, n - 1] {
            let mut small = [0.5f32];
            let mut s = OptimizerState::new(&[1]);
            s.begin_step();
            s.update(&opt, 0, &mut small, &g[i..i + 1]);
            assert_eq!(small[0].to_bits(), big[i].to_bits(), "{opt} at {i}");
        }
    }
}

#[test]
fn names_and_bad_learning_rates() {
    assert_eq!(
        Optimizer::from_name("rmsprop", None).unwrap(),
        Optimizer::rmsprop(0.001)
    );
    assert_eq!(Optimizer::from_name("sgd", None).unwrap(), Optimizer::sgd(0.01));
    assert!(Optimizer::from_name("adagrad", None)
        .unwrap_err()
        .contains("sgd, momentum, rmsprop, adam"));
    assert!(Optimizer::from_name("adam", Some(-1.0))
        .unwrap_err()
        .contains("positive"));
    assert!(Optimizer::from_name("adam", Some(f32::NAN)).is_err());
}
