//! The engine's convolution, max-pooling and flatten layers: against a naive
//! 7-loop convolution written here, against the teaching module (lessons 9
//! and 10) through a whole small CNN, max-pool ties and odd sizes, an f32
//! finite-difference gradient check, and bit-identical training on 1, 2 and
//! 3 threads. (No allocation per step: tests/conv_no_alloc.rs.)

mod common;

use rand::SeedableRng;
use simdnet::data::Dataset;
use simdnet::gemm::{AOperand, Gathered, Parallelism};
use simdnet::geometry::{Conv2dGeometry, ImageShape, Padding, Pool2dGeometry};
use simdnet::matrix::{MatMut, MatRef, Matrix};
use simdnet::nn::conv::{conv2d_backward, conv2d_forward};
use simdnet::nn::pool::{maxpool2d_backward, maxpool2d_forward};
use simdnet::nn::{
    Activation, Conv2d, Dense, Flatten, Layer, MaxPool2d, Network, Optimizer, Trainer, Workspace,
};
use simdnet::teach;

/// A deterministic number in `-1..=1` on a grid of eighths: products of two
/// are exact in f32, and so are the sums of the small tests, so any
/// difference from the f64 loops is an indexing mistake, not rounding.
fn eighth(i: usize, salt: usize) -> f32 {
    let h = (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(40503)).wrapping_mul(2246822519) >> 7;
    ((h % 17) as f32 - 8.0) / 8.0
}

/// `z = conv(x, W) + b`, `dW`, `db`, `dx` from `dz`, by seven plain loops in f64.
#[allow(clippy::type_complexity)]
fn naive(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dz: &[f32],
    g: &Conv2dGeometry,
    batch: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (i, o) = (g.input(), g.output());
    let (h, wd, ci_n) = (i.height() as isize, i.width() as isize, i.channels());
    let (oh, ow, co_n) = (o.height(), o.width(), o.channels());
    let (kh, kw) = (g.kernel_h(), g.kernel_w());
    let mut z = vec![0.0f64; batch * oh * ow * co_n];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; co_n];
    let mut dx = vec![0.0f64; x.len()];
    for n in 0..batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..co_n {
                    let zi = ((n * oh + oy) * ow + ox) * co_n + co;
                    z[zi] = b[co] as f64;
                    db[co] += dz[zi] as f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for ci in 0..ci_n {
                                let iy = oy as isize + ky as isize - g.pad_top() as isize;
                                let ix = ox as isize + kx as isize - g.pad_left() as isize;
                                if iy < 0 || iy >= h || ix < 0 || ix >= wd {
                                    continue;
                                }
                                let xi = ((n as isize * h + iy) * wd + ix) as usize * ci_n + ci;
                                let wi = ((ky * kw + kx) * ci_n + ci) * co_n + co;
                                z[zi] += x[xi] as f64 * w[wi] as f64;
                                dw[wi] += x[xi] as f64 * dz[zi] as f64;
                                dx[xi] += w[wi] as f64 * dz[zi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (z, dw, db, dx)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{k}]: engine {g}, reference {w}"
        );
    }
}

/// The engine's forward and backward for one convolution (identity
/// activation, so `a = z` and `dz = da`), against [`naive`].
fn check_conv(h: usize, w: usize, kernel: (usize, usize), channels: (usize, usize), padding: Padding) {
    check_conv_keeping(h, w, kernel, channels, padding, 1);
}

/// [`check_conv`] with only one `dz` in `keep` not zero (a max-pool above
/// keeps one in 4): the input gradient then skips the zeros (gemm::sparse).
fn check_conv_keeping(
    h: usize,
    w: usize,
    (kh, kw): (usize, usize),
    (c_in, c_out): (usize, usize),
    padding: Padding,
    keep: usize,
) {
    let batch = 2;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let input = ImageShape::new(1, h, w, c_in).unwrap();
    let Ok(mut layer) = Conv2d::new(input, kh, kw, c_out, padding, Activation::Identity, &mut rng) else {
        return; // the kernel does not fit (valid padding)
    };
    let salt = h * 1000 + w * 100 + kh * 10 + kw;
    for (k, v) in layer.w.as_mut_slice().iter_mut().enumerate() {
        *v = eighth(k, salt);
    }
    for (k, v) in layer.b.iter_mut().enumerate() {
        *v = eighth(k, salt + 1);
    }
    let (inputs, outputs) = (layer.inputs(), layer.outputs());
    let x: Vec<f32> = (0..batch * inputs).map(|k| eighth(k, salt + 2)).collect();
    let dz_in: Vec<f32> = (0..batch * outputs)
        .map(|k| {
            if (k / 3) % keep == 0 {
                eighth(k, salt + 3)
            } else {
                0.0
            }
        })
        .collect();
    let g = Conv2dGeometry::new(
        ImageShape::new(batch, h, w, c_in).unwrap(),
        kh,
        kw,
        c_out,
        padding,
    )
    .unwrap();
    let (z, dw, db, dx) = naive(&x, layer.w.as_slice(), &layer.b, &dz_in, &g, batch);
    let name = format!("{h}x{w}x{c_in} kernel {kh}x{kw}x{c_out} {padding} dz 1 in {keep}");

    let xv = MatRef::from_slice(&x, batch, inputs);
    let mut a = vec![f32::NAN; batch * outputs];
    conv2d_forward(
        MatMut::from_slice(&mut a, batch, outputs),
        xv,
        1.0,
        &layer,
        None,
        Parallelism::Sequential,
    );
    assert_close(&format!("{name}: z"), &a, &z, 1e-5);

    let (sr, sc) = simdnet::nn::conv::input_gradient_scratch(&layer, batch);
    let mut w_flipped = Matrix::zeros(sr, sc);
    let (mut gw, mut gb) = (vec![f32::NAN; layer.w.as_slice().len()], vec![f32::NAN; c_out]);
    let (mut gx, mut dz) = (vec![f32::NAN; batch * inputs], vec![f32::NAN; batch * outputs]);
    conv2d_backward(
        Some(MatMut::from_slice(&mut gx, batch, inputs)),
        &mut w_flipped,
        MatMut::from_slice(&mut gw, kh * kw * c_in, c_out),
        &mut gb,
        MatMut::from_slice(&mut dz, batch, outputs),
        MatRef::from_slice(&dz_in, batch, outputs),
        MatRef::from_slice(&a, batch, outputs),
        xv,
        1.0,
        &layer,
        None,
        Parallelism::Rayon,
    );
    assert_close(&format!("{name}: dW"), &gw, &dw, 1e-5);
    assert_close(&format!("{name}: db"), &gb, &db, 1e-5);
    assert_close(&format!("{name}: dx"), &gx, &dx, 1e-5);
}

#[test]
fn convolution_matches_seven_plain_loops_on_sizes_1_to_9() {
    for h in 1..=9 {
        for w in 1..=9 {
            for (k, kernel) in [(1, 1), (2, 3), (3, 3), (4, 2), (5, 5)].into_iter().enumerate() {
                let channels = [(1, 1), (2, 3), (3, 5), (1, 6), (2, 2), (4, 2)][(h + w + k) % 6];
                for padding in [Padding::Valid, Padding::Same] {
                    check_conv(h, w, kernel, channels, padding);
                }
            }
        }
    }
}

#[test]
fn single_channel_layers_match_seven_plain_loops_for_many_filter_counts() {
    // a grey first layer (one input channel, up to 16 filters) runs its own
    // kernels, the filters slid along each row a vector of positions at a
    // time, in groups of filters (6 for LeNet-5, whose weight gradient keeps
    // its sums in registers; 8 otherwise, a last group partly empty)
    for filters in [2, 3, 5, 6, 8, 12, 15, 16] {
        check_conv(28, 28, (5, 5), (1, filters), Padding::Same);
        check_conv(13, 9, (3, 3), (1, filters), Padding::Valid);
        check_conv(6, 30, (2, 4), (1, filters), Padding::Same);
    }
    // the largest padded image the kernels take (64 x 64 floats with the row margin)
    check_conv(60, 44, (5, 5), (1, 6), Padding::Same);
}

#[test]
fn single_channel_weight_gradient_adds_in_one_order_at_every_simd_width() {
    // The grey first layer's dW keeps 16 partial sums per weight on every
    // build (simd::SUM_LANES): position ox of a row goes to sum ox mod 16,
    // rows and images in order, then the 16 are added in order. Here that
    // order is written out in scalar code and compared bit for bit, so an
    // 8-lane build that kept 8 sums (which trained LeNet-5 to other bits
    // than AVX-512 until 2026-12-01) fails on any machine. Random numbers:
    // their sums round, so another order gives other bits.
    use rand::Rng;
    use simdnet::kernels::conv::{single_channel_sums, single_channel_weight_gradient, SingleChannel};
    use simdnet::simd::{mul_add_f32, SUM_VECTORS, V};
    // the AVX-512 build's order, the one the docs' numbers come from
    const SUMS: usize = 16;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    for (h, w, (kh, kw), filters, padding) in [
        (28, 28, (5, 5), 6, Padding::Same), // LeNet-5's: the sums in registers
        (28, 28, (5, 5), 3, Padding::Same),
        (13, 9, (3, 3), 16, Padding::Valid),
        (12, 30, (2, 4), 8, Padding::Same),
        (10, 40, (3, 3), 6, Padding::Valid), // rows of 38: 3 chunks of 16, 5 of 8
        (5, 5, (3, 3), 5, Padding::Same),
    ] {
        let g = Conv2dGeometry::new(ImageShape::new(1, h, w, 1).unwrap(), kh, kw, filters, padding).unwrap();
        let shape = SingleChannel::new(&g).expect("a single-channel shape");
        let (oh, ow) = (g.output().height(), g.output().width());
        let (images, x_scale, taps) = (3, 0.37f32, kh * kw * filters);
        let xs: Vec<Vec<f32>> = (0..images)
            .map(|_| (0..h * w).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let dzs: Vec<Vec<f32>> = (0..images)
            .map(|_| {
                (0..oh * ow * filters)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect()
            })
            .collect();
        let mut acc = vec![V::ZERO; taps * SUM_VECTORS];
        for (x, dz) in xs.iter().zip(&dzs) {
            single_channel_weight_gradient(&mut acc, x, x_scale, dz, &shape);
        }
        let mut dw = vec![0.0f32; taps];
        single_channel_sums(&mut dw, &acc);

        let mut sums = vec![[0.0f32; SUMS]; taps];
        for (x, dz) in xs.iter().zip(&dzs) {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (iy, ix) = (
                                (oy + ky).wrapping_sub(g.pad_top()),
                                (ox + kx).wrapping_sub(g.pad_left()),
                            );
                            let xv = if iy < h && ix < w {
                                x_scale * x[iy * w + ix]
                            } else {
                                0.0
                            };
                            for co in 0..filters {
                                let s = &mut sums[(ky * kw + kx) * filters + co][ox % SUMS];
                                *s = mul_add_f32(xv, dz[(oy * ow + ox) * filters + co], *s);
                            }
                        }
                    }
                }
            }
        }
        for (k, (got, sums)) in dw.iter().zip(&sums).enumerate() {
            let want: f32 = sums.iter().sum();
            assert!(
                *got == want,
                "{h}x{w} kernel {kh}x{kw}x{filters} {padding:?}: dW[{k}] = {got:e}, in the 16 sums' order {want:e}"
            );
        }
    }
}

#[test]
fn convolution_matches_seven_plain_loops_on_packed_and_threaded_shapes() {
    // n > 16 filters (packed micro-panels, not the direct mode), taps past one
    // kc block (3·3·64 = 576), and enough work to be split across threads.
    check_conv(10, 9, (3, 3), (64, 40), Padding::Same);
    check_conv(12, 12, (5, 5), (6, 16), Padding::Valid);
    check_conv(7, 11, (4, 4), (33, 70), Padding::Same);
    // deep filters (c_out >= 32): dx folded from dz·Wᵀ a few images at a time;
    // here one image per fold (16·16·288 floats of columns), so two folds
    check_conv(16, 16, (3, 3), (32, 32), Padding::Same);
    check_conv(12, 12, (3, 3), (20, 36), Padding::Valid);
}

#[test]
fn one_vector_of_filters_over_windows_inside_matches_seven_plain_loops() {
    // LANES filters and no padding read: the direct kernels (kernels::conv_direct)
    // on AVX-512, a tile of positions or taps read from one pointer; elsewhere the GEMM
    let lanes = simdnet::simd::LANES;
    for (h, w, kernel, c_in) in [
        (14, 14, (5, 5), 6),
        (9, 9, (3, 3), 4),
        (8, 13, (2, 3), 3),
        (6, 6, (3, 3), 2),
        (15, 13, (3, 1), 7),
    ] {
        for padding in [Padding::Valid, Padding::Same] {
            check_conv(h, w, kernel, (c_in, lanes), padding);
        }
    }
}

#[test]
fn gradients_of_mostly_zero_errors_match_seven_plain_loops() {
    // dz with one entry in 4 (a max-pool above) or fewer not zero: the
    // columns dz·Wᵀ skip the zeros (gemm::sparse) before the fold, and so
    // does dW for windows inside the image (kernels::conv_sparse); one in 1
    // and one in 2 take the GEMM. Few input channels and deep filters, two
    // and more folds (LeNet-5's second layer, Keras' second), odd sizes.
    for keep in [1, 2, 4, 9] {
        check_conv_keeping(14, 14, (5, 5), (6, 16), Padding::Valid, keep);
        check_conv_keeping(9, 7, (3, 3), (3, 5), Padding::Same, keep);
        check_conv_keeping(16, 16, (3, 3), (32, 32), Padding::Same, keep);
        check_conv_keeping(11, 13, (3, 2), (20, 36), Padding::Valid, keep);
    }
}

#[test]
fn convolution_reads_gathered_pixels_as_the_copied_batch() {
    // The first layer reads u8 pixels straight from the data set by row index.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let layer = Conv2d::new(
        ImageShape::new(1, 8, 8, 1).unwrap(),
        3,
        3,
        20,
        Padding::Same,
        Activation::Relu,
        &mut rng,
    )
    .unwrap();
    let data = common::synthetic(20);
    let pixels = match data.input() {
        simdnet::data::Input::Pixels(x) => x,
        _ => unreachable!("synthetic() holds pixels"),
    };
    let index = [7, 3, 3, 19, 0];
    let copy: Vec<u8> = index
        .iter()
        .flat_map(|&i| (0..64).map(move |j| pixels.at(i, j)))
        .collect();
    let copied = MatRef::from_slice(&copy, 5, 64);
    let gathered = Gathered::new(pixels, &index).unwrap();
    // the forward pass, then dW and db, from the copied rows and from the same rows by index
    fn passes<X: AOperand>(x: X, layer: &Conv2d, da: &[f32]) -> (Vec<f32>, Matrix, Vec<f32>) {
        let (rows, outputs, s) = (x.rows(), layer.outputs(), 1.0 / 255.0);
        let par = Parallelism::Sequential;
        let mut a = vec![f32::NAN; rows * outputs];
        conv2d_forward(MatMut::from_slice(&mut a, rows, outputs), x, s, layer, None, par);
        let (sr, sc) = simdnet::nn::conv::input_gradient_scratch(layer, rows);
        let mut scratch = Matrix::zeros(sr, sc);
        let (mut dw, mut db) = (
            Matrix::zeros(layer.w.rows(), layer.w.cols()),
            vec![0.0; layer.b.len()],
        );
        let mut dz = vec![0.0; rows * outputs];
        conv2d_backward(
            None,
            &mut scratch,
            dw.view_mut(),
            &mut db,
            MatMut::from_slice(&mut dz, rows, outputs),
            MatRef::from_slice(da, rows, outputs),
            MatRef::from_slice(&a, rows, outputs),
            x,
            s,
            layer,
            None,
            par,
        );
        (a, dw, db)
    }
    let da: Vec<f32> = (0..5 * layer.outputs()).map(|k| eighth(k, 9)).collect();
    let (a1, dw1, db1) = passes(copied, &layer, &da);
    let (a2, dw2, db2) = passes(gathered, &layer, &da);
    assert_eq!(a1, a2);
    assert_eq!(dw1, dw2);
    assert_eq!(db1, db2);
}

// ---------------------------------------------------------------------------
// Engine against the teaching module, through a whole small CNN.

fn dense(inputs: usize, outputs: usize, act: Activation, salt: usize) -> Layer {
    Layer::Dense(Dense {
        w: Matrix::from_fn(inputs, outputs, |i, j| 0.4 * eighth(i * outputs + j, salt)),
        b: (0..outputs).map(|j| 0.1 * eighth(j, salt + 1)).collect(),
        act,
    })
}

/// 9x9x2 -> conv 3x3x4 same relu -> pool (4x4x4, the odd row and column
/// dropped) -> conv 2x2x3 valid tanh -> flatten 27 -> dense 8 sigmoid -> dense 5.
fn small_cnn() -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    let mut c0 = Conv2d::new(img(9, 9, 2), 3, 3, 4, Padding::Same, Activation::Relu, &mut rng).unwrap();
    c0.b = vec![0.05, -0.02, 0.0, 0.1];
    let p1 = MaxPool2d::new(img(9, 9, 4)).unwrap();
    let mut c2 = Conv2d::new(img(4, 4, 4), 2, 2, 3, Padding::Valid, Activation::Tanh, &mut rng).unwrap();
    c2.b = vec![0.1, -0.1, 0.02];
    let layers = vec![
        Layer::Conv2d(c0),
        Layer::MaxPool2d(p1),
        Layer::Conv2d(c2),
        Layer::Flatten(Flatten::new(img(3, 3, 3))),
        dense(27, 8, Activation::Sigmoid, 11),
        dense(8, 5, Activation::Identity, 13),
    ];
    Network::from_layers(9 * 9 * 2, layers).unwrap()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn a_small_cnn_matches_the_lessons_in_every_output_and_gradient() {
    use teach::backward::{activation_backward, bias_gradient, input_gradient, weight_gradient};
    use teach::forward::{activate, weighted_sum};
    let net = small_cnn();
    let rows = 5;
    let pixels: Vec<u8> = (0..rows * 162).map(|k| ((k * 37 + k / 7) % 256) as u8).collect();
    let labels = [0u8, 3, 4, 1, 3];
    let x = MatRef::from_slice(&pixels, rows, 162);
    let scale = 1.0 / 255.0;
    let mut ws = Workspace::new(&net, 8);
    ws.forward(&net, x, scale, Parallelism::Sequential);
    ws.loss(&labels, 1.0 / rows as f32);
    ws.backward(&net, x, scale, Parallelism::Sequential);

    let conv = |l: usize| match &net.layers()[l] {
        Layer::Conv2d(c) => c.clone(),
        _ => unreachable!(),
    };
    let dense_of = |l: usize| net.layers()[l].as_dense().unwrap().clone();
    let batch = |g: Conv2dGeometry| {
        let i = g.input();
        let shape = ImageShape::new(rows, i.height(), i.width(), i.channels()).unwrap();
        Conv2dGeometry::new(shape, g.kernel_h(), g.kernel_w(), g.filters(), g.padding()).unwrap()
    };
    let (c0, c2, d4, d5) = (conv(0), conv(2), dense_of(4), dense_of(5));
    let (g0, g2) = (batch(c0.geometry), batch(c2.geometry));
    let x64: Vec<f64> = pixels.iter().map(|&p| p as f64 * scale as f64).collect();

    // forward, as lessons 9, 10 and 2 do it
    let mut z0 = vec![0.0; rows * 324];
    teach::conv::conv2d_forward(&mut z0, &x64, &f64s(c0.w.as_slice()), &f64s(&c0.b), &g0);
    let mut a0 = vec![0.0; z0.len()];
    activate(&mut a0, &z0, Activation::Relu);
    let gp = Pool2dGeometry::new(ImageShape::new(rows, 9, 9, 4).unwrap()).unwrap();
    let (mut a1, mut arg1) = (vec![0.0; rows * 64], vec![0; rows * 64]);
    teach::pool::maxpool2d_forward(&mut a1, &mut arg1, &a0, &gp);
    let mut z2 = vec![0.0; rows * 27];
    teach::conv::conv2d_forward(&mut z2, &a1, &f64s(c2.w.as_slice()), &f64s(&c2.b), &g2);
    let mut a2 = vec![0.0; z2.len()];
    activate(&mut a2, &z2, Activation::Tanh);
    let mut a3 = vec![0.0; a2.len()];
    teach::pool::flatten_forward(&mut a3, &a2, ImageShape::new(rows, 3, 3, 3).unwrap());
    let mut z4 = vec![0.0; rows * 8];
    weighted_sum(&mut z4, &a3, &f64s(d4.w.as_slice()), &f64s(&d4.b), rows);
    let mut a4 = vec![0.0; z4.len()];
    activate(&mut a4, &z4, Activation::Sigmoid);
    let mut a5 = vec![0.0; rows * 5];
    weighted_sum(&mut a5, &a4, &f64s(d5.w.as_slice()), &f64s(&d5.b), rows);
    for (l, want) in [&a0, &a1, &a2, &a3, &a4, &a5].into_iter().enumerate() {
        assert_close(&format!("a{l}"), ws.output(l).to_matrix().as_slice(), want, 1e-4);
    }

    // loss: da5 = (softmax(a5) - y) / rows
    let mut p = vec![0.0; a5.len()];
    teach::loss::softmax(&mut p, &a5, rows);
    let y = teach::loss::one_hot(&labels.iter().map(|&l| l as usize).collect::<Vec<_>>(), 5);
    let mut da5 = vec![0.0; p.len()];
    teach::loss::output_error(&mut da5, &p, &y, rows);

    // backward, layer by layer
    let (mut dw5, mut db5, mut da4) = (vec![0.0; 40], vec![0.0; 5], vec![0.0; rows * 8]);
    weight_gradient(&mut dw5, &a4, &da5, rows);
    bias_gradient(&mut db5, &da5, rows);
    input_gradient(&mut da4, &da5, &f64s(d5.w.as_slice()), rows);
    let mut dz4 = vec![0.0; da4.len()];
    activation_backward(&mut dz4, &da4, &a4, Activation::Sigmoid);
    let (mut dw4, mut db4, mut da3) = (vec![0.0; 27 * 8], vec![0.0; 8], vec![0.0; rows * 27]);
    weight_gradient(&mut dw4, &a3, &dz4, rows);
    bias_gradient(&mut db4, &dz4, rows);
    input_gradient(&mut da3, &dz4, &f64s(d4.w.as_slice()), rows);
    let mut da2 = vec![0.0; da3.len()];
    teach::pool::flatten_backward(&mut da2, &da3, ImageShape::new(rows, 3, 3, 3).unwrap());
    let mut dz2 = vec![0.0; da2.len()];
    activation_backward(&mut dz2, &da2, &a2, Activation::Tanh);
    let (mut dw2, mut db2, mut da1) = (vec![0.0; 4 * 4 * 3], vec![0.0; 3], vec![0.0; rows * 64]);
    teach::conv::conv2d_backward(
        Some(&mut da1),
        &mut dw2,
        &mut db2,
        &dz2,
        &a1,
        &f64s(c2.w.as_slice()),
        &g2,
    );
    let mut da0 = vec![0.0; rows * 324];
    teach::pool::maxpool2d_backward(&mut da0, &da1, &arg1);
    let mut dz0 = vec![0.0; da0.len()];
    activation_backward(&mut dz0, &da0, &a0, Activation::Relu);
    let (mut dw0, mut db0) = (vec![0.0; 9 * 2 * 4], vec![0.0; 4]);
    teach::conv::conv2d_backward(None, &mut dw0, &mut db0, &dz0, &x64, &f64s(c0.w.as_slice()), &g0);

    for (l, want) in [&da0, &da1, &da2, &da3, &da4, &da5].into_iter().enumerate() {
        assert_close(&format!("da{l}"), ws.da(l).to_matrix().as_slice(), want, 1e-4);
    }
    assert_close("dz0", ws.dz(0).to_matrix().as_slice(), &dz0, 1e-4);
    assert_close("dz2", ws.dz(2).to_matrix().as_slice(), &dz2, 1e-4);
    for (l, dw, db) in [(0, &dw0, &db0), (2, &dw2, &db2), (4, &dw4, &db4), (5, &dw5, &db5)] {
        assert_close(&format!("dW{l}"), ws.grad(l, 0), dw, 1e-4);
        assert_close(&format!("db{l}"), ws.grad(l, 1), db, 1e-4);
    }
}

// ---------------------------------------------------------------------------
// Max-pooling: ties, odd sizes, dropout.

#[test]
fn max_pool_breaks_ties_row_major_and_drops_the_odd_row_and_column() {
    // one 3x5 image of 2 channels: tiles at columns 0-1 and 2-3; row 2 and column 4 are read by none
    let (h, w, c) = (3, 5, 2);
    #[rustfmt::skip]
    let x: Vec<f32> = vec![
        // (y, x) -> channel 0, channel 1
        1.0, 7.0,   1.0, 7.0,   5.0, 0.0,   2.0, 0.0,   9.0, 9.0,
        1.0, 7.0,   0.0, 3.0,   5.0, 0.0,   5.0, 0.5,   9.0, 9.0,
        9.0, 9.0,   9.0, 9.0,   9.0, 9.0,   9.0, 9.0,   9.0, 9.0,
    ];
    let layer = MaxPool2d::new(ImageShape::new(1, h, w, c).unwrap()).unwrap();
    assert_eq!(layer.outputs(), 4);
    let mut a = vec![f32::NAN; 4];
    let mut argmax = vec![u32::MAX; 4];
    maxpool2d_forward(
        MatMut::from_slice(&mut a, 1, 4),
        &mut argmax,
        MatRef::from_slice(&x, 1, 30),
        1.0,
        &layer,
        None,
    );
    assert_eq!(a, [1.0, 7.0, 5.0, 0.5]);
    // ties: channel 0 of tile 0 has 1.0 three times (top-left wins), channel 1 7.0 three
    // times (top-left), channel 0 of tile 1 5.0 three times (top-left, index (0,2))
    let at = |y: usize, xx: usize, ch: usize| ((y * w + xx) * c + ch) as u32;
    assert_eq!(argmax, [at(0, 0, 0), at(0, 0, 1), at(0, 2, 0), at(1, 3, 1)]);

    // the same with the lesson
    let gp = Pool2dGeometry::new(ImageShape::new(1, h, w, c).unwrap()).unwrap();
    let (mut a64, mut arg64) = (vec![0.0; 4], vec![0; 4]);
    teach::pool::maxpool2d_forward(&mut a64, &mut arg64, &f64s(&x), &gp);
    assert_eq!(argmax.iter().map(|&i| i as usize).collect::<Vec<_>>(), arg64);

    let da = [0.5f32, -1.0, 2.0, 3.0];
    let mut dx = vec![f32::NAN; 30];
    maxpool2d_backward(
        MatMut::from_slice(&mut dx, 1, 30),
        MatRef::from_slice(&da, 1, 4),
        &argmax,
        &layer,
        None,
    );
    let mut want = vec![0.0f32; 30];
    for (o, &i) in argmax.iter().enumerate() {
        want[i as usize] = da[o];
    }
    assert_eq!(dx, want);
    for xx in 0..w {
        assert_eq!(
            dx[(2 * w + xx) * c..][..c],
            [0.0, 0.0],
            "dropped row 2 gets no gradient"
        );
    }
    assert_eq!(
        dx[(4) * c..][..c],
        [0.0, 0.0],
        "dropped column 4 gets no gradient"
    );
    assert_eq!(
        dx[(w + 4) * c..][..c],
        [0.0, 0.0],
        "dropped column 4 gets no gradient"
    );
}

// ---------------------------------------------------------------------------
// Gradients by finite differences, through the engine in f32.

#[test]
fn a_tiny_cnn_passes_a_finite_difference_gradient_check() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    let layers = vec![
        Layer::Conv2d(Conv2d::new(img(6, 6, 1), 3, 3, 2, Padding::Same, Activation::Tanh, &mut rng).unwrap()),
        Layer::MaxPool2d(MaxPool2d::new(img(6, 6, 2)).unwrap()),
        Layer::Conv2d(
            Conv2d::new(
                img(3, 3, 2),
                2,
                2,
                3,
                Padding::Valid,
                Activation::Sigmoid,
                &mut rng,
            )
            .unwrap(),
        ),
        Layer::Flatten(Flatten::new(img(2, 2, 3))),
        dense(12, 4, Activation::Identity, 21),
    ];
    let mut net = Network::from_layers(36, layers).unwrap();
    let rows = 3;
    // continuous values: no ties in the pooling that a perturbation could flip
    let x: Vec<f32> = (0..rows * 36).map(|k| (k as f32 * 1.37).sin()).collect();
    let xv = MatRef::from_slice(&x, rows, 36);
    let labels = [1u8, 3, 0];
    let mut ws = Workspace::new(&net, rows);
    let loss = |net: &Network, ws: &mut Workspace| {
        ws.forward(net, xv, 1.0, Parallelism::Sequential);
        ws.loss(&labels, 1.0 / rows as f32).0 / rows as f64
    };
    loss(&net, &mut ws);
    ws.backward(&net, xv, 1.0, Parallelism::Sequential);
    let grads: Vec<Vec<f32>> = [(0, 0), (0, 1), (2, 0), (2, 1), (4, 0)]
        .iter()
        .map(|&(l, k)| ws.grad(l, k).to_vec())
        .collect();
    let h = 4e-3f32;
    let mut checked = 0;
    for (t, &(l, k)) in [(0, 0), (0, 1), (2, 0), (2, 1), (4, 0)].iter().enumerate() {
        for (i, &g) in grads[t].iter().enumerate() {
            let orig = net.layers_mut()[l].params_mut(k)[i];
            net.layers_mut()[l].params_mut(k)[i] = orig + h;
            let up = loss(&net, &mut ws);
            net.layers_mut()[l].params_mut(k)[i] = orig - h;
            let down = loss(&net, &mut ws);
            net.layers_mut()[l].params_mut(k)[i] = orig;
            let fd = (up - down) / (2.0 * h as f64);
            let g = g as f64;
            assert!(
                (fd - g).abs() <= 2e-2 * g.abs() + 3e-4,
                "layer {l} tensor {k} [{i}]: backward {g}, finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 18 + 2 + 24 + 3 + 48);
}

// ---------------------------------------------------------------------------
// Threads: bit-identical training, with dropout after conv, pool and dense.

fn dropout_cnn() -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    let layers = vec![
        Layer::Conv2d(Conv2d::new(img(8, 8, 1), 3, 3, 6, Padding::Same, Activation::Relu, &mut rng).unwrap()),
        Layer::Conv2d(
            Conv2d::new(img(8, 8, 6), 3, 3, 20, Padding::Valid, Activation::Relu, &mut rng).unwrap(),
        ),
        Layer::MaxPool2d(MaxPool2d::new(img(6, 6, 20)).unwrap()),
        Layer::Flatten(Flatten::new(img(3, 3, 20))),
        dense(180, 32, Activation::Relu, 3),
        dense(32, 10, Activation::Identity, 4),
    ];
    Network::from_layers(64, layers)
        .unwrap()
        .with_dropout_rates(&[0.1, 0.0, 0.25, 0.0, 0.5])
        .unwrap()
        .with_dropout_seed(7)
}

fn train_bits(threads: usize, data: &Dataset) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut net = dropout_cnn();
    let order: Vec<usize> = (0..data.len()).rev().collect();
    pool.install(|| {
        let mut trainer = Trainer::new(&net, Optimizer::adam(1e-3), 100).unwrap();
        for batch in order.chunks(100).chain(order.chunks(57)) {
            trainer.step_indices(&mut net, data, batch).unwrap();
        }
    });
    common::bits(&net)
}

#[test]
fn a_cnn_with_dropout_trains_bit_identically_on_1_2_and_3_threads() {
    let data = common::synthetic(300);
    assert_eq!(
        Trainer::shard_rows_for(&dropout_cnn(), 100),
        64,
        "a CNN trains in shards"
    );
    let one = train_bits(1, &data);
    assert_ne!(one, common::bits(&dropout_cnn()), "training changed the weights");
    assert_eq!(train_bits(2, &data), one, "2 threads");
    assert_eq!(train_bits(3, &data), one, "3 threads");
}

#[test]
fn a_cnn_step_on_a_copied_batch_equals_the_step_on_gathered_rows() {
    let data = common::synthetic(100);
    let pixels = match data.input() {
        simdnet::data::Input::Pixels(x) => x,
        _ => unreachable!("synthetic() holds pixels"),
    };
    let index: Vec<usize> = (0..80).map(|i| (i * 37) % 100).collect();
    let copy: Vec<u8> = index
        .iter()
        .flat_map(|&i| (0..64).map(move |j| pixels.at(i, j)))
        .collect();
    let labels: Vec<u8> = index.iter().map(|&i| data.labels()[i]).collect();
    let (mut n1, mut n2) = (dropout_cnn(), dropout_cnn());
    let mut t1 = Trainer::new(&n1, Optimizer::adam(1e-3), 80).unwrap();
    let mut t2 = Trainer::new(&n2, Optimizer::adam(1e-3), 80).unwrap();
    for _ in 0..2 {
        let r1 = t1
            .step(&mut n1, MatRef::from_slice(&copy, 80, 64), 1.0 / 255.0, &labels)
            .unwrap();
        let r2 = t2.step_indices(&mut n2, &data, &index).unwrap();
        assert_eq!(r1, r2);
    }
    assert_eq!(common::bits(&n1), common::bits(&n2));
}

#[test]
fn evaluate_and_predict_work_on_a_cnn_without_dropout() {
    let data = common::synthetic(300);
    let net = dropout_cnn();
    let pixels = match data.input() {
        simdnet::data::Input::Pixels(x) => x,
        _ => unreachable!("synthetic() holds pixels"),
    };
    // the training workspace's forward pass without dropout, 100 rows at a time
    let mut ws = Workspace::new(&net, 100);
    let (mut loss, mut correct) = (0.0, 0);
    for r0 in (0..300).step_by(100) {
        ws.forward(
            &net,
            pixels.rows_range(r0, r0 + 100),
            net.input_scale(),
            Parallelism::Sequential,
        );
        let (l, c) = ws.loss(&data.labels()[r0..r0 + 100], 1.0);
        loss += l;
        correct += c;
    }
    let e = net.evaluate(&data).unwrap();
    assert!(
        (e.loss - loss / 300.0).abs() < 1e-9,
        "evaluate {} vs workspace {}",
        e.loss,
        loss / 300.0
    );
    assert_eq!(e.accuracy, correct as f64 / 300.0);
    let p = net.predict(&data).unwrap();
    assert_eq!(p.shape(), (300, 10));
    for r in 0..300 {
        let sum: f32 = p.row(r).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {r} sums to {sum}");
    }
}

#[test]
fn max_pool_over_many_channels_matches_the_lesson_with_ties() {
    // 19 channels (whole vectors and a remainder), values from a set of 3: many ties
    let (h, w, c) = (5, 6, 19);
    let x: Vec<f32> = (0..2 * h * w * c).map(|k| ((k * 7 + k / 5) % 3) as f32).collect();
    let layer = MaxPool2d::new(ImageShape::new(1, h, w, c).unwrap()).unwrap();
    let outputs = layer.outputs();
    let (mut a, mut argmax) = (vec![f32::NAN; 2 * outputs], vec![u32::MAX; 2 * outputs]);
    let xv = MatRef::from_slice(&x, 2, h * w * c);
    maxpool2d_forward(
        MatMut::from_slice(&mut a, 2, outputs),
        &mut argmax,
        xv,
        0.5,
        &layer,
        None,
    );
    let gp = Pool2dGeometry::new(ImageShape::new(2, h, w, c).unwrap()).unwrap();
    let (mut a64, mut arg64) = (vec![0.0; 2 * outputs], vec![0; 2 * outputs]);
    teach::pool::maxpool2d_forward(&mut a64, &mut arg64, &f64s(&x), &gp);
    for (k, (&i, &j)) in argmax.iter().zip(&arg64).enumerate() {
        let r = k / outputs;
        assert_eq!(i as usize + r * h * w * c, j, "output {k}");
        assert_eq!(a[k] as f64, 0.5 * a64[k], "output {k}");
    }
}

// ---------------------------------------------------------------------------
// A first one-channel convolution and its pool run image by image
// (nn::fused): the same bits as the two layers run one after the other.

/// `got` and `want` as the same f32 bits (`+0` and `-0` equal when `signed_zero`).
fn assert_same_bits(what: &str, got: &[f32], want: &[f32], signed_zero: bool) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = if signed_zero {
            g == w
        } else {
            g.to_bits() == w.to_bits()
        };
        assert!(same, "{what}[{i}]: image by image {g}, layer by layer {w}");
    }
}

fn check_first_block_bits<X: AOperand + Copy>(x: X, x_scale: f32, net: &Network, name: &str) {
    let rows = x.rows();
    let labels: Vec<u8> = (0..rows).map(|r| (r % 3) as u8).collect();
    let mut ws = Workspace::new(net, rows);
    ws.forward(net, x, x_scale, Parallelism::Sequential);
    ws.loss(&labels, 1.0 / rows as f32);
    ws.backward(net, x, x_scale, Parallelism::Sequential);

    let (Layer::Conv2d(conv), Layer::MaxPool2d(pool)) = (&net.layers()[0], &net.layers()[1]) else {
        panic!("{name}: the block is a convolution and a pool");
    };
    let seq = Parallelism::Sequential;
    let mut a0 = Matrix::zeros(rows, conv.outputs());
    conv2d_forward(a0.view_mut(), x, x_scale, conv, None, seq);
    assert_same_bits(
        &format!("{name}: a0"),
        ws.output(0).to_matrix().as_slice(),
        a0.as_slice(),
        false,
    );
    let (mut a1, mut argmax) = (
        Matrix::zeros(rows, pool.outputs()),
        vec![0u32; rows * pool.outputs()],
    );
    maxpool2d_forward(a1.view_mut(), &mut argmax, a0.view(), 1.0, pool, None);
    assert_same_bits(
        &format!("{name}: a1"),
        ws.output(1).to_matrix().as_slice(),
        a1.as_slice(),
        false,
    );

    let mut da0 = Matrix::zeros(rows, conv.outputs());
    maxpool2d_backward(da0.view_mut(), ws.da(1), &argmax, pool, None);
    let (sr, sc) = simdnet::nn::conv::input_gradient_scratch(conv, rows);
    let mut scratch = Matrix::zeros(sr, sc);
    let mut dw = Matrix::zeros(conv.w.rows(), conv.w.cols());
    let (mut db, mut dz) = (vec![f32::NAN; conv.b.len()], Matrix::zeros(rows, conv.outputs()));
    conv2d_backward(
        None,
        &mut scratch,
        dw.view_mut(),
        &mut db,
        dz.view_mut(),
        da0.view(),
        a0.view(),
        x,
        x_scale,
        conv,
        None,
        seq,
    );
    // dz0 may hold -0 where the layer-by-layer path multiplied a negative 0-routed error
    assert_same_bits(
        &format!("{name}: dz0"),
        ws.dz(0).to_matrix().as_slice(),
        dz.as_slice(),
        true,
    );
    assert_same_bits(&format!("{name}: dW0"), ws.grad(0, 0), dw.as_slice(), false);
    assert_same_bits(&format!("{name}: db0"), ws.grad(0, 1), &db, false);
}

#[test]
fn a_first_one_channel_convolution_and_its_pool_run_image_by_image_with_the_same_bits() {
    let shapes = [
        // (h, w, kernel, filters, padding): LeNet-5's first block, odd sizes, few and many filters
        (28, 28, 5, 6, Padding::Same),
        (9, 7, 3, 4, Padding::Valid),
        (5, 5, 2, 3, Padding::Same),
        (8, 11, 3, 16, Padding::Same),
        (7, 7, 1, 1, Padding::Valid),
    ];
    let acts = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Identity,
    ];
    for (k, &(h, w, kernel, filters, padding)) in shapes.iter().enumerate() {
        let act = acts[k % acts.len()];
        let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
        let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
        let mut conv = Conv2d::new(img(h, w, 1), kernel, kernel, filters, padding, act, &mut rng).unwrap();
        conv.b = (0..filters).map(|j| 0.1 * eighth(j, k)).collect();
        let out = conv.output_shape();
        let pool = MaxPool2d::new(out).unwrap();
        let pooled = pool.geometry.output();
        let flat = pooled.image_len();
        let layers = vec![
            Layer::Conv2d(conv),
            Layer::MaxPool2d(pool),
            Layer::Flatten(Flatten::new(pooled)),
            dense(flat, 3, Activation::Identity, 7 + k),
        ];
        let net = Network::from_layers(h * w, layers).unwrap();
        let rows = 5;
        let pixels: Vec<u8> = (0..rows * h * w).map(|i| (i * 37 % 256) as u8).collect();
        let floats: Vec<f32> = (0..rows * h * w).map(|i| eighth(i, 100 + k)).collect();
        let name = format!("{h}x{w} kernel {kernel}x{kernel}x{filters} {padding} {act:?}");
        check_first_block_bits(
            MatRef::from_slice(&pixels, rows, h * w),
            1.0 / 255.0,
            &net,
            &format!("{name} u8"),
        );
        check_first_block_bits(
            MatRef::from_slice(&floats, rows, h * w),
            1.0,
            &net,
            &format!("{name} f32"),
        );
    }
}

// ---------------------------------------------------------------------------
// A convolution below a max-pool (not the first layer) runs its backward
// pass from the pool's error by scattering (nn::fused, kernels::conv_pooled):
// the same gradients as the two layers' own backward passes, up to rounding.

#[test]
fn a_convolution_below_a_max_pool_scatters_the_layer_by_layer_gradients() {
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    // (h, w, c_in of the second convolution, kernel, filters, activation, the pool's dropout)
    let cases = [
        // LeNet-5's second block, Keras' (smaller), odd outputs, filters not a vector, kh 4
        (14, 14, 6, 5, 16, Activation::Relu, 0.0),
        (12, 12, 32, 3, 64, Activation::Relu, 0.25),
        (9, 8, 3, 3, 19, Activation::Tanh, 0.5),
        (10, 11, 5, 4, 7, Activation::Sigmoid, 0.0),
        (6, 7, 2, 2, 33, Activation::Identity, 0.25),
    ];
    for (k, &(h, w, c_in, kernel, filters, act, rate)) in cases.iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(40 + k as u64);
        // a first convolution makes the second one's input an f32 image (2x the size, pooled)
        let c0 = Conv2d::new(
            img(2 * h, 2 * w, 1),
            3,
            3,
            c_in,
            Padding::Same,
            Activation::Relu,
            &mut rng,
        )
        .unwrap();
        let p1 = MaxPool2d::new(img(2 * h, 2 * w, c_in)).unwrap();
        let mut c2 = Conv2d::new(
            img(h, w, c_in),
            kernel,
            kernel,
            filters,
            Padding::Valid,
            act,
            &mut rng,
        )
        .unwrap();
        c2.b = (0..filters).map(|j| 0.1 * eighth(j, k)).collect();
        let p3 = MaxPool2d::new(c2.output_shape()).unwrap();
        let pooled = p3.geometry.output();
        let layers = vec![
            Layer::Conv2d(c0),
            Layer::MaxPool2d(p1),
            Layer::Conv2d(c2.clone()),
            Layer::MaxPool2d(p3.clone()),
            Layer::Flatten(Flatten::new(pooled)),
            dense(pooled.image_len(), 4, Activation::Identity, 9 + k),
        ];
        let inputs = 4 * h * w;
        let net = Network::from_layers(inputs, layers)
            .unwrap()
            .with_dropout_rates(&[0.0, 0.0, 0.0, rate, 0.0])
            .unwrap()
            .with_dropout_seed(3);
        let rows = 5;
        let floats: Vec<f32> = (0..rows * inputs).map(|i| eighth(i, 50 + k)).collect();
        let x = MatRef::from_slice(&floats, rows, inputs);
        let labels: Vec<u8> = (0..rows).map(|r| (r % 4) as u8).collect();
        let mut ws = Workspace::new(&net, rows);
        ws.forward_train(&net, x, 1.0, 9, 0, Parallelism::Sequential);
        ws.loss(&labels, 1.0 / rows as f32);
        ws.backward(&net, x, 1.0, Parallelism::Sequential);
        let name = format!("{h}x{w}x{c_in} kernel {kernel}x{kernel}x{filters} {act:?} dropout {rate}");

        // the same layers' own backward passes, from the same pool error and forward outputs
        let seq = Parallelism::Sequential;
        let mask = ws.dropout_mask(3);
        assert_eq!(mask.is_some(), rate > 0.0, "{name}: the pool's mask");
        let mut argmax = vec![0u32; rows * p3.outputs()];
        let mut a3 = Matrix::zeros(rows, p3.outputs());
        maxpool2d_forward(a3.view_mut(), &mut argmax, ws.output(2), 1.0, &p3, mask.as_ref());
        let mut da2 = Matrix::zeros(rows, c2.outputs());
        maxpool2d_backward(da2.view_mut(), ws.da(3), &argmax, &p3, mask.as_ref());
        let (sr, sc) = simdnet::nn::conv::input_gradient_scratch(&c2, rows);
        let mut scratch = Matrix::zeros(sr, sc);
        let mut dw = Matrix::zeros(c2.w.rows(), c2.w.cols());
        let (mut db, mut dz) = (vec![f32::NAN; c2.b.len()], Matrix::zeros(rows, c2.outputs()));
        let mut da1 = Matrix::zeros(rows, c2.inputs());
        conv2d_backward(
            Some(da1.view_mut()),
            &mut scratch,
            dw.view_mut(),
            &mut db,
            dz.view_mut(),
            da2.view(),
            ws.output(2),
            ws.output(1),
            1.0,
            &c2,
            None,
            seq,
        );
        let near = |what: &str, got: &[f32], want: &[f32]| {
            assert_close(&format!("{name}: {what}"), got, &f64s(want), 1e-5);
        };
        near("dW2", ws.grad(2, 0), dw.as_slice());
        near("db2", ws.grad(2, 1), &db);
        near("da1", ws.da(1).to_matrix().as_slice(), da1.as_slice());
        assert!(
            da1.as_slice().iter().any(|&v| v != 0.0),
            "{name}: some error reaches the input"
        );
        // (the block writes no dz and no da for the convolution: they stay as a new workspace
        // has them; on every build, so that every build with FMA trains the same bits)
        let scattered = ws.dz(2).to_matrix().as_slice().iter().all(|&v| v == 0.0);
        assert!(
            scattered,
            "{name}: the scattering pass ran, not the layers one by one"
        );
    }
}

/// `conv2d_input_gradient` (what `bench --models` times as dx) gives the
/// bits of the `dx` that `conv2d_backward` computes, from the `dz` it left:
/// a full convolution of `dz` (LeNet-5's second layer), unfolded columns
/// folded back (Keras' second layer), and a `dz` mostly zeros, as below a
/// max-pool, where the columns skip them.
#[test]
fn the_input_gradient_alone_has_the_bits_of_the_backward_pass() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    let layers = [
        Conv2d::new(
            img(14, 14, 6),
            5,
            5,
            16,
            Padding::Valid,
            Activation::Relu,
            &mut rng,
        )
        .unwrap(),
        Conv2d::new(
            img(26, 26, 32),
            3,
            3,
            64,
            Padding::Valid,
            Activation::Relu,
            &mut rng,
        )
        .unwrap(),
    ];
    let par = Parallelism::Sequential;
    for layer in &layers {
        for sparse in [false, true] {
            let (rows, inputs, outputs) = (3, layer.inputs(), layer.outputs());
            let x: Vec<f32> = (0..rows * inputs).map(|i| eighth(i, 1)).collect();
            // below a max-pool 3 of 4 errors are zero
            let da: Vec<f32> = (0..rows * outputs)
                .map(|i| if sparse && i % 4 != 0 { 0.0 } else { eighth(i, 2) })
                .collect();
            let mut a = vec![f32::NAN; rows * outputs];
            let xr = MatRef::from_slice(&x, rows, inputs);
            conv2d_forward(
                MatMut::from_slice(&mut a, rows, outputs),
                xr,
                1.0,
                layer,
                None,
                par,
            );
            let (sr, sc) = simdnet::nn::conv::input_gradient_scratch(layer, rows);
            let mut scratch = Matrix::zeros(sr, sc);
            let (mut dw, mut db) = (
                Matrix::zeros(layer.w.rows(), layer.w.cols()),
                vec![0.0; layer.b.len()],
            );
            let (mut dz, mut dx) = (vec![0.0; rows * outputs], vec![f32::NAN; rows * inputs]);
            conv2d_backward(
                Some(MatMut::from_slice(&mut dx, rows, inputs)),
                &mut scratch,
                dw.view_mut(),
                &mut db,
                MatMut::from_slice(&mut dz, rows, outputs),
                MatRef::from_slice(&da, rows, outputs),
                MatRef::from_slice(&a, rows, outputs),
                xr,
                1.0,
                layer,
                None,
                par,
            );
            let mut alone = vec![f32::NAN; rows * inputs];
            simdnet::nn::conv::conv2d_input_gradient(
                MatMut::from_slice(&mut alone, rows, inputs),
                &mut Matrix::zeros(sr, sc),
                MatRef::from_slice(&dz, rows, outputs),
                layer,
                par,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(
                dx.iter().any(|&v| v != 0.0),
                "{:?}: dx is all zeros",
                layer.geometry
            );
            assert_eq!(
                bits(&alone),
                bits(&dx),
                "{:?}, sparse dz {sparse}",
                layer.geometry
            );
        }
    }
}
