//! The profiling and tuning tools: the tuning file, kernel verification, the profile table.
//! No timing assertions: timings are noisy.

mod common;

use std::path::{Path, PathBuf};

use simdnet::gemm::BlockSizes;
use simdnet::profile::tune_config::{self, TuneConfig};
use simdnet::Error;

fn temp_dir(name: &str) -> PathBuf {
    let d = common::scratch_root().join(format!("simdnet-profile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn problem(text: &str) -> String {
    match tune_config::parse(text, Path::new("t.cfg")) {
        Err(Error::BadConfig { problem, .. }) => problem,
        other => panic!("expected BadConfig for {text:?}, got {other:?}"),
    }
}

#[test]
fn config_round_trips_through_an_atomic_write() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("simdnet-tune.cfg");
    let cfg = TuneConfig {
        blocks: BlockSizes {
            mc: 96,
            kc: 384,
            nc: 2048,
        },
        kernel: None,
    };
    tune_config::save(&path, &cfg, &["a comment".into()]).unwrap();
    assert_eq!(tune_config::load(&path).unwrap(), cfg);
    let with_kernel = TuneConfig {
        kernel: Some("reference".into()),
        ..cfg.clone()
    };
    tune_config::save(&path, &with_kernel, &[]).unwrap();
    assert_eq!(tune_config::load(&path).unwrap(), with_kernel);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_accepts_comments_blank_lines_and_spaces() {
    let cfg = tune_config::parse("# hi\n\n version=1\nmc = 8\n  kc =16 \nnc= 32\n", Path::new("x")).unwrap();
    assert_eq!(
        cfg.blocks,
        BlockSizes {
            mc: 8,
            kc: 16,
            nc: 32
        }
    );
}

#[test]
fn every_malformed_config_is_a_clear_error() {
    let ok = "version = 1\nmc = 96\nkc = 256\nnc = 4096\n";
    assert!(tune_config::parse(ok, Path::new("x")).is_ok());
    let cases: &[(&str, &str)] = &[
        ("mc = 96\nkc = 256\nnc = 4096\n", "no `version = 1` line"),
        (
            "version = 2\nmc = 96\nkc = 256\nnc = 4096\n",
            "version 2 is not supported",
        ),
        ("version = 1\nmc = 96\nkc = 256\n", "'nc' is missing"),
        (
            "version = 1\nmc = 96\nkc = 256\nnc = 4096\nfoo = 3\n",
            "unknown key 'foo'",
        ),
        (
            "version = 1\nmc = abc\nkc = 256\nnc = 4096\n",
            "mc must be a whole number, found 'abc'",
        ),
        ("version = 1\nmc = -4\nkc = 256\nnc = 4096\n", "whole number"),
        (
            "version = 1\nmc = 96\nkc = 0\nnc = 4096\n",
            "kc must be at least 1",
        ),
        (
            "version = 1\nmc = 96\nkc = 256\nnc = 99999999999\n",
            "absurdly large",
        ),
        (
            "version = 1\nmc = 96\nkc = 4096\nnc = 16384\n",
            "absurdly large for a packed block",
        ),
        (
            "version = 1\nmc = 96\nmc = 96\nkc = 256\nnc = 4096\n",
            "'mc' is given twice",
        ),
        (
            "version = 1\nmc 96\nkc = 256\nnc = 4096\n",
            "line 2: expected `key = value`",
        ),
        (
            "version = one\nmc = 96\nkc = 256\nnc = 4096\n",
            "version must be a whole number",
        ),
    ];
    for (text, want) in cases {
        let p = problem(text);
        assert!(p.contains(want), "for {text:?}: got '{p}', wanted '{want}'");
    }
    // The message names the file and the fix.
    let e = tune_config::parse("version = 7", Path::new("my.cfg"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("my.cfg") && e.contains("simdnet tune"), "{e}");
}

#[test]
fn a_missing_or_ignored_config_is_not_an_error_but_a_bad_one_is() {
    let dir = temp_dir("apply");
    let path = dir.join("simdnet-tune.cfg");
    assert_eq!(tune_config::apply_from(&path, false).unwrap(), None);
    std::fs::write(&path, "version = 1\nmc = 0\n").unwrap();
    assert!(tune_config::apply_from(&path, true).unwrap().is_none());
    assert!(matches!(
        tune_config::apply_from(&path, false),
        Err(Error::BadConfig { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod verification {
    use simdnet::gemm::Epilogue;
    use simdnet::matrix::{MatMut, MatRef};
    use simdnet::nn::{Activation, Optimizer, OptimizerState};
    use simdnet::profile::bench::{self, Fused, GemmShape};

    /// Off by one in the inner dimension: skips the last term of each dot product.
    fn short_gemm(alpha: f32, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut, e: Epilogue) {
        let k = a.cols();
        simdnet::gemm::reference::gemm(alpha, a.cols_range(0, k - 1), b.rows_range(0, k - 1), beta, c, e);
    }

    /// Ignores the epilogue.
    fn no_epilogue_gemm(alpha: f32, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut, _: Epilogue) {
        simdnet::gemm::reference::gemm(alpha, a, b, beta, c, Epilogue::None);
    }

    #[test]
    fn the_engine_passes_verification() {
        for s in [GemmShape::square(33)]
            .into_iter()
            .chain(GemmShape::training(&[784, 16, 16, 10], 32))
        {
            bench::verify_gemm(bench::engine_gemm, &s).unwrap();
        }
        for k in Fused::ALL {
            bench::verify_fused(k).unwrap();
        }
    }

    #[test]
    fn a_wrong_gemm_is_rejected() {
        let s = GemmShape::square(20);
        let e = bench::verify_gemm(short_gemm, &s).unwrap_err();
        assert!(e.contains("square 20") && e.contains("reference gives"), "{e}");
        let fwd = &GemmShape::training(&[30, 8, 4], 5)[0];
        assert!(fwd.bias_relu);
        assert!(bench::verify_gemm(no_epilogue_gemm, fwd).is_err());
        assert!(bench::verify_gemm(no_epilogue_gemm, &s).is_ok());
    }

    fn relu_without_bias(mut z: MatMut, _bias: &[f32], act: Activation) {
        for i in 0..z.rows() {
            z.row_mut(i).iter_mut().for_each(|v| *v = act.f(*v));
        }
    }

    fn softmax_without_scale(dz: MatMut, logits: MatRef, labels: &[u8], _scale: f32) -> f64 {
        simdnet::kernels::softmax_cross_entropy(dz, logits, labels, 1.0)
    }

    fn backward_without_bias_grad(dz: MatMut, da: MatRef, a: MatRef, act: Activation, db: &mut [f32]) {
        simdnet::kernels::activation_backward(dz, da, a, act, db);
        db.fill(0.0);
    }

    fn sgd_instead(state: &mut OptimizerState, _: &Optimizer, i: usize, w: &mut [f32], g: &[f32]) {
        state.update(&Optimizer::sgd(0.01), i, w, g);
    }

    #[test]
    fn wrong_fused_kernels_are_rejected() {
        assert!(bench::verify_bias_activation(relu_without_bias).is_err());
        assert!(bench::verify_softmax_ce(softmax_without_scale).is_err());
        let e = bench::verify_activation_backward(backward_without_bias_grad).unwrap_err();
        assert!(e.contains(" db"), "{e}");
        assert!(bench::verify_optimizer(sgd_instead).is_err());
    }

    #[test]
    fn training_shapes_follow_the_layers() {
        let s = GemmShape::training(&[784, 16, 10], 128);
        let dims: Vec<_> = s.iter().map(|s| (s.m, s.n, s.k)).collect();
        // L0: fwd, dW (no dX for the input); L1: fwd, dW, dX.
        assert_eq!(
            dims,
            vec![
                (128, 16, 784),
                (784, 16, 128),
                (128, 10, 16),
                (16, 10, 128),
                (128, 16, 10)
            ]
        );
    }
}

mod timers {
    use std::time::{Duration, Instant};

    use simdnet::trace::{self, scope, Kind};

    /// How long each timed section sleeps.
    const NAP: Duration = Duration::from_millis(20);

    /// A timed section's instants: (outer, inner), each (start, end).
    type Span = ((Instant, Instant), (Instant, Instant));

    #[test]
    fn coverage_and_table() {
        // The only test in this binary that touches the global timers.
        trace::reset();
        trace::enable(true);
        // The wall time, measured here, independently of the timers; and for
        // each timed section, instants just outside its timer (`outer`) and
        // just inside it (`inner`): the timer's interval lies between the two.
        let start = Instant::now();
        let section = |kind: Kind, layer: usize, work: usize| {
            let o0 = Instant::now();
            let t = scope(kind, layer);
            let t = if kind == Kind::Optimizer {
                t.bytes(work)
            } else {
                t.flops(work)
            };
            let i0 = Instant::now();
            std::thread::sleep(NAP);
            let i1 = Instant::now();
            drop(t);
            ((o0, Instant::now()), (i0, i1))
        };
        let mut spans = vec![section(Kind::Optimizer, 0, 1000)];
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| s.spawn(|| section(Kind::ForwardGemm, 1, 1_000_000)))
                .collect();
            spans.extend(threads.into_iter().map(|t| t.join().unwrap()));
        });
        let wall = start.elapsed().as_secs_f64();
        trace::enable(false);
        let _ignored = scope(Kind::Shuffle, 0);
        drop(_ignored);
        let recs = trace::snapshot();
        assert_eq!(recs.len(), 2);
        let fwd = recs.iter().find(|r| r.kind == Kind::ForwardGemm).unwrap();
        assert_eq!((fwd.layer, fwd.calls, fwd.flops), (1, 2, 2_000_000));
        // Each timer slept at least NAP inside it.
        let nap = NAP.as_secs_f64();
        assert!(fwd.seconds >= 2.0 * nap, "{fwd:?}");
        // Wall shares never exceed thread time, and the levels agree with the thread time.
        let cov = trace::coverage();
        let thread: f64 = recs.iter().map(|r| r.seconds).sum();
        let shares: f64 = recs.iter().map(|r| r.wall_seconds).sum();
        assert!(shares <= thread + 1e-6 && (cov.covered() - shares).abs() < 1e-6);
        assert!(
            (cov.busy() - thread).abs() < 1e-3 * thread.max(1.0),
            "{cov:?} {thread}"
        );
        // Against the instants measured here: the time covered by a timer is
        // at least the union of the inner intervals and at most the union of
        // the outer ones, and no more than the wall time. (No allowance for a
        // slow machine: a late thread only moves the intervals.)
        let union = |pick: &dyn Fn(&Span) -> (Instant, Instant)| {
            let mut iv: Vec<(f64, f64)> = spans
                .iter()
                .map(|sp| {
                    let (a, b) = pick(sp);
                    (
                        a.duration_since(start).as_secs_f64(),
                        b.duration_since(start).as_secs_f64(),
                    )
                })
                .collect();
            iv.sort_by(|x, y| x.0.total_cmp(&y.0));
            let (mut total, mut end) = (0.0, f64::MIN);
            for (a, b) in iv {
                total += (b - a.max(end)).max(0.0);
                end = end.max(b);
            }
            total
        };
        let (inner, outer) = (union(&|sp| sp.1), union(&|sp| sp.0));
        let covered = cov.covered();
        let what = format!("covered {covered}s, inner {inner}s, outer {outer}s, wall {wall}s");
        assert!(inner >= 2.0 * nap, "{what}");
        assert!(covered >= inner - 1e-6, "{what}");
        assert!(covered <= outer + 1e-6 && covered <= wall, "{what}");
        let mut stats = simdnet::nn::EpochStats::new(1, 1.0, 0.5);
        stats.train_seconds = wall;
        let hist = vec![stats];
        let table = simdnet::profile::report::training_table(&hist, 2);
        // Every kind of a dense network is listed, even unused; the convolutional
        // network's kinds only when they recorded something.
        for k in Kind::ALL {
            assert_eq!(
                table.contains(k.label()),
                !k.image_only(),
                "{} in\n{table}",
                k.label()
            );
        }
        // The table's share is the coverage over the wall time, to its one decimal.
        let line = table
            .lines()
            .find(|l| l.starts_with("Accounted: "))
            .unwrap_or_else(|| panic!("no Accounted line in\n{table}"));
        let pct: f64 = line["Accounted: ".len()..]
            .split('%')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (pct - 100.0 * covered / wall).abs() <= 0.051,
            "{line}: covered {covered}s, wall {wall}s"
        );
        trace::reset();
        assert!(trace::snapshot().is_empty());
        // Inside a convolution, a GEMM's timer is filed under the conv kind; outside, back to the GEMM's.
        trace::enable(true);
        {
            let _training = trace::training();
            let _layer = trace::layer(2);
            {
                let _conv = trace::convolution();
                let _t = trace::kernel(Kind::BackwardGemmDx).flops(10);
                let _u = trace::kernel(Kind::ActivationBackward).bytes(10);
            }
            let _v = trace::kernel(Kind::BackwardGemmDx).flops(10);
        }
        trace::enable(false);
        let kinds: Vec<(Kind, usize)> = trace::snapshot().iter().map(|r| (r.kind, r.layer)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::BackwardGemmDx, 2),
                (Kind::ConvBackwardDx, 2),
                (Kind::ActivationBackward, 2)
            ]
        );
        trace::reset();
    }
}

/// `bench --models`' check of the convolution layers: the engine passes on
/// every layer of both presets, and each kind of wrong kernel is rejected
/// with a message naming the layer and the pass.
mod conv_verification {
    use simdnet::matrix::{MatMut, MatRef};
    use simdnet::nn::Conv2d;
    use simdnet::profile::conv_bench::{
        engine_backward, engine_forward, verify_conv, BackwardBuffers, ConvCase,
    };

    /// Forgets the bias.
    fn forward_without_bias(a: MatMut, x: MatRef<f32>, layer: &Conv2d) {
        let mut no_bias = layer.clone();
        no_bias.b.iter_mut().for_each(|b| *b = 0.0);
        engine_forward(a, x, &no_bias);
    }

    /// Computes dW and dx with the filters of the next output channel (a wrong index).
    fn backward_with_shifted_filters(b: BackwardBuffers, layer: &Conv2d) {
        let mut shifted = layer.clone();
        shifted.w.as_mut_slice().rotate_left(1);
        engine_backward(b, &shifted);
    }

    /// Leaves dx as it found it (unwritten: NaN in the benchmark's buffers).
    fn backward_without_dx(b: BackwardBuffers, layer: &Conv2d) {
        engine_backward(BackwardBuffers { dx: None, ..b }, layer);
    }

    /// The filter gradient of one image too few (the last row's terms dropped).
    fn backward_one_image_short(b: BackwardBuffers, layer: &Conv2d) {
        let mut da = b.da.to_matrix();
        let last = da.rows() - 1;
        da.row_mut(last).fill(0.0);
        engine_backward(BackwardBuffers { da: da.view(), ..b }, layer);
    }

    #[test]
    fn the_engine_passes_on_every_layer_of_both_presets() {
        for model in ["lenet", "keras-cnn"] {
            for case in ConvCase::of_model(model).unwrap() {
                verify_conv(&case, engine_forward, engine_backward).unwrap();
            }
        }
    }

    #[test]
    fn wrong_convolution_kernels_are_rejected() {
        let lenet = ConvCase::of_model("lenet").unwrap();
        let second = &lenet[1];
        // (the built layers' biases are 0: verification draws random ones, or a lost bias would pass)
        let e = verify_conv(&lenet[0], forward_without_bias, engine_backward).unwrap_err();
        assert!(
            e.starts_with("lenet L0 5x5x6 same 28x28x1 fwd a: element "),
            "{e}"
        );
        let e = verify_conv(second, engine_forward, backward_with_shifted_filters).unwrap_err();
        assert!(e.starts_with("lenet L2 5x5x16 valid 14x14x6 dx: element "), "{e}");
        let e = verify_conv(second, engine_forward, backward_without_dx).unwrap_err();
        assert!(e.contains(" dx: element 0 is NaN, the reference gives "), "{e}");
        let e = verify_conv(&lenet[0], engine_forward, backward_one_image_short).unwrap_err();
        assert!(e.starts_with("lenet L0 5x5x6 same 28x28x1 dW: element "), "{e}");
    }
}
