//! Tests of the teaching module's convolution, max-pooling and flatten
//! (src/teach/conv.rs, src/teach/pool.rs): numbers computed by hand, the links
//! to the dense lesson, every gradient against a central finite difference in
//! f64, and the messages for impossible shapes.
//!
//! The hand computation (one 3x3 image, one channel, a 2x2 filter, b = 0.5):
//!
//! ```text
//! x = 1 2 3      W = 1  2
//!     4 5 6         -1  0
//!     7 8 9
//!
//! valid (2x2 out): z[0,0] = 1·1 + 2·2 + 4·(-1) + 5·0 + 0.5 = 1.5    z[0,1] = 2 + 6 - 5 + 0.5 = 3.5
//!                  z[1,0] = 4 + 10 - 7 + 0.5 = 7.5                  z[1,1] = 5 + 12 - 8 + 0.5 = 9.5
//! same (3x3 out; even kernel: 0 rows of zeros on top, 1 at the bottom, 0 columns left, 1 right):
//!                  the 2x2 block above, then the last column and row see zeros:
//!                  z[0,2] = 3·1 + 0·2 + 6·(-1) + 0·0 + 0.5 = -2.5   z[1,2] = 6 - 9 + 0.5 = -2.5
//!                  z[2,0] = 7·1 + 8·2 + 0.5 = 23.5   z[2,1] = 8 + 18 + 0.5 = 26.5   z[2,2] = 9 + 0.5 = 9.5
//!
//! backward of valid with dz = all ones:
//!   db = 4 (four positions)
//!   dW[ky,kx] = Σ_positions x[oy+ky, ox+kx]:  dW = 1+2+4+5  2+3+5+6  =  12 16
//!                                                  4+5+7+8  5+6+8+9     24 28
//!   dx[y,x] = Σ of the W[ky,kx] that touched it (a "full" convolution of dz with the flipped W):
//!   dx = w00        w00+w01             w01          =   1   3   2
//!        w00+w10    w00+w01+w10+w11     w01+w11          0   2   2
//!        w10        w10+w11             w11             -1  -1   0
//! ```

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use simdnet::activation::Activation;
use simdnet::teach::backward::{activation_backward, input_gradient, weight_gradient};
use simdnet::teach::conv::{
    conv2d_backward, conv2d_forward, input_position, Conv2dGeometry, ImageShape, Padding,
};
use simdnet::teach::forward::{activate, weighted_sum};
use simdnet::teach::pool::{
    flatten_backward, flatten_forward, maxpool2d_backward, maxpool2d_forward, Pool2dGeometry,
};

/// The finite-difference step. Every loss below is a polynomial of degree 2 in
/// any one number (locally, for the pooling), so the central difference is
/// exact but for rounding, about `1e-16 · |L| / H`.
const H: f64 = 1e-5;
/// The largest allowed `|analytic - numeric| / max(1, |analytic|, |numeric|)`.
const TOLERANCE: f64 = 1e-7;

fn shape(batch: usize, height: usize, width: usize, channels: usize) -> ImageShape {
    ImageShape::new(batch, height, width, channels).unwrap()
}

fn random(n: usize, rng: &mut StdRng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The test's loss of a layer output `out`: `L = Σ r·out + ½ Σ out²` for fixed
/// random `r`, so that `dL/dout = r + out` differs from number to number.
fn loss(out: &[f64], r: &[f64]) -> f64 {
    out.iter().zip(r).map(|(&o, &r)| r * o + 0.5 * o * o).sum()
}

fn dloss(out: &[f64], r: &[f64]) -> Vec<f64> {
    out.iter().zip(r).map(|(&o, &r)| r + o).collect()
}

/// Checks `analytic[i]` against `(L(at + H·e_i) - L(at - H·e_i)) / 2H` for every `i`.
fn assert_gradient(what: &str, analytic: &[f64], at: &[f64], loss_at: impl Fn(&[f64]) -> f64) {
    assert_eq!(
        analytic.len(),
        at.len(),
        "{what}: gradient and point differ in length"
    );
    let mut moved = at.to_vec();
    for i in 0..at.len() {
        moved[i] = at[i] + H;
        let up = loss_at(&moved);
        moved[i] = at[i] - H;
        let down = loss_at(&moved);
        moved[i] = at[i];
        let numeric = (up - down) / (2.0 * H);
        let error = (analytic[i] - numeric).abs() / 1f64.max(analytic[i].abs()).max(numeric.abs());
        assert!(
            error < TOLERANCE,
            "{what}[{i}]: backward pass {} but finite difference {numeric} (error {error:e})",
            analytic[i]
        );
    }
}

fn conv(x: &[f64], w: &[f64], b: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut z = vec![0.0; g.output().len()];
    conv2d_forward(&mut z, x, w, b, g);
    z
}

// ---------------------------------------------------------------- hand-computed numbers

const X3: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
const W2: [f64; 4] = [1.0, 2.0, -1.0, 0.0];

#[test]
fn hand_computed_valid_forward_and_backward() {
    let g = Conv2dGeometry::new(shape(1, 3, 3, 1), 2, 2, 1, Padding::Valid).unwrap();
    assert_eq!(g.output(), shape(1, 2, 2, 1));
    assert_eq!(conv(&X3, &W2, &[0.5], &g), [1.5, 3.5, 7.5, 9.5]);

    let (mut dx, mut dw, mut db) = (vec![0.0; 9], vec![0.0; 4], vec![0.0; 1]);
    conv2d_backward(Some(&mut dx), &mut dw, &mut db, &[1.0; 4], &X3, &W2, &g);
    assert_eq!(db, [4.0]);
    assert_eq!(dw, [12.0, 16.0, 24.0, 28.0]);
    assert_eq!(dx, [1.0, 3.0, 2.0, 0.0, 2.0, 2.0, -1.0, -1.0, 0.0]);
}

#[test]
fn hand_computed_same_with_an_even_kernel_pads_bottom_and_right() {
    let g = Conv2dGeometry::new(shape(1, 3, 3, 1), 2, 2, 1, Padding::Same).unwrap();
    assert_eq!(
        (g.pad_top(), g.pad_bottom(), g.pad_left(), g.pad_right()),
        (0, 1, 0, 1)
    );
    assert_eq!(g.output(), shape(1, 3, 3, 1));
    assert_eq!(
        conv(&X3, &W2, &[0.5], &g),
        [1.5, 3.5, -2.5, 7.5, 9.5, -2.5, 23.5, 26.5, 9.5]
    );
}

#[test]
fn same_padding_splits_odd_kernels_evenly_and_puts_the_extra_row_of_even_ones_last() {
    let input = shape(1, 6, 6, 1);
    for (k, before, after) in [(1, 0, 0), (2, 0, 1), (3, 1, 1), (4, 1, 2), (5, 2, 2)] {
        let g = Conv2dGeometry::new(input, k, k, 1, Padding::Same).unwrap();
        assert_eq!(
            (g.pad_top(), g.pad_bottom(), g.pad_left(), g.pad_right()),
            (before, after, before, after),
            "kernel {k}"
        );
        assert_eq!(g.output(), input, "same keeps the size, kernel {k}");
        let v = Conv2dGeometry::new(input, k, k, 1, Padding::Valid).unwrap();
        assert_eq!(
            v.output(),
            shape(1, 7 - k, 7 - k, 1),
            "valid: in - k + 1, kernel {k}"
        );
    }
    assert_eq!(input_position(0, 0, 1, 6), None, "above the image");
    assert_eq!(input_position(0, 1, 1, 6), Some(0));
    assert_eq!(input_position(5, 2, 1, 6), None, "below the image");
}

#[test]
fn a_1x1_convolution_is_a_dense_layer_on_every_pixel() {
    let mut rng = StdRng::seed_from_u64(1);
    let input = shape(2, 3, 5, 4);
    let g = Conv2dGeometry::new(input, 1, 1, 3, Padding::Same).unwrap();
    let (x, w, b) = (
        random(input.len(), &mut rng),
        random(g.weight_len(), &mut rng),
        random(3, &mut rng),
    );
    // the pixels as rows: (batch·height·width, channels), the same buffer
    let mut dense = vec![0.0; g.output().len()];
    weighted_sum(&mut dense, &x, &w, &b, 2 * 3 * 5);
    assert_eq!(conv(&x, &w, &b, &g), dense);
}

#[test]
fn a_valid_kernel_as_large_as_the_image_is_a_dense_layer_on_the_flattened_image() {
    let mut rng = StdRng::seed_from_u64(2);
    let input = shape(3, 4, 5, 2);
    let g = Conv2dGeometry::new(input, 4, 5, 6, Padding::Valid).unwrap();
    assert_eq!(g.output(), shape(3, 1, 1, 6));
    let (x, w, b) = (
        random(input.len(), &mut rng),
        random(g.weight_len(), &mut rng),
        random(6, &mut rng),
    );
    let z = conv(&x, &w, &b, &g);

    // W (kh, kw, c_in, c_out) is the dense W (kh·kw·c_in, c_out) of the flattened image
    let mut flat = vec![0.0; input.len()];
    assert_eq!(flatten_forward(&mut flat, &x, input), (3, 40));
    let mut dense = vec![0.0; 3 * 6];
    weighted_sum(&mut dense, &flat, &w, &b, 3);
    assert_eq!(z, dense);

    // and so are its gradients: dW = xᵀ·dz, dx = dz·Wᵀ
    let dz = random(z.len(), &mut rng);
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 6]);
    conv2d_backward(Some(&mut dx), &mut dw, &mut db, &dz, &x, &w, &g);
    let (mut dx_dense, mut dw_dense) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    weight_gradient(&mut dw_dense, &flat, &dz, 3);
    input_gradient(&mut dx_dense, &dz, &w, 3);
    assert_eq!(dw, dw_dense);
    assert_eq!(dx, dx_dense);
}

#[test]
fn hand_computed_max_pool_drops_the_odd_row_and_column_and_routes_to_the_argmax() {
    // a 3x5 image: the last row and the last column (all 9s, the largest numbers) are dropped
    let x = [
        1.0, 5.0, 2.0, 0.0, 9.0, //
        3.0, 4.0, 8.0, 1.0, 9.0, //
        9.0, 9.0, 9.0, 9.0, 9.0,
    ];
    let g = Pool2dGeometry::new(shape(1, 3, 5, 1)).unwrap();
    assert_eq!(g.output(), shape(1, 1, 2, 1));
    let (mut a, mut argmax) = (vec![0.0; 2], vec![0; 2]);
    maxpool2d_forward(&mut a, &mut argmax, &x, &g);
    assert_eq!(a, [5.0, 8.0]);
    assert_eq!(argmax, [1, 7]);
    let mut dx = vec![0.0; 15];
    maxpool2d_backward(&mut dx, &[10.0, 20.0], &argmax);
    let mut expected = [0.0; 15];
    expected[1] = 10.0;
    expected[7] = 20.0;
    assert_eq!(dx, expected);
}

#[test]
fn max_pool_ties_go_to_the_first_in_row_major_order() {
    // channel 0: all four equal -> top-left (index 0); channel 1: top-right and
    // bottom-left tie at 7 -> top-right (pixel (0,1), index 1·2 + 1 = 3)
    let x = [
        2.0, 1.0, 2.0, 7.0, //  row 0: pixel (0,0) = (2, 1), pixel (0,1) = (2, 7)
        2.0, 7.0, 2.0, 3.0, //  row 1: pixel (1,0) = (2, 7), pixel (1,1) = (2, 3)
    ];
    let g = Pool2dGeometry::new(shape(1, 2, 2, 2)).unwrap();
    let (mut a, mut argmax) = (vec![0.0; 2], vec![0; 2]);
    maxpool2d_forward(&mut a, &mut argmax, &x, &g);
    assert_eq!(a, [2.0, 7.0]);
    assert_eq!(argmax, [0, 3]);
}

#[test]
fn flatten_moves_no_number() {
    let input = shape(2, 3, 2, 4);
    let x: Vec<f64> = (0..input.len()).map(|i| i as f64).collect();
    let mut a = vec![0.0; x.len()];
    assert_eq!(flatten_forward(&mut a, &x, input), (2, 24));
    assert_eq!(a, x, "row-major NHWC: flatten is the identity on the buffer");
    let mut dx = vec![0.0; x.len()];
    flatten_backward(&mut dx, &a, input);
    assert_eq!(dx, x);
}

// ---------------------------------------------------------------- finite differences

/// (batch, height, width, c_in, kh, kw, c_out, padding)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, Padding);

/// The conv cases: odd and even kernels,
/// odd image sizes, several channels, batch > 1, a kernel larger than the image
/// (same), and a kernel as large as it (valid).
const CONV_CASES: [ConvCase; 10] = [
    (2, 5, 7, 3, 3, 3, 4, Padding::Valid),
    (2, 5, 7, 3, 3, 3, 4, Padding::Same),
    (2, 5, 5, 2, 2, 2, 3, Padding::Valid),
    (2, 5, 5, 2, 2, 2, 3, Padding::Same),
    (3, 7, 5, 2, 4, 3, 2, Padding::Same),
    (2, 4, 6, 2, 4, 2, 2, Padding::Same),
    (2, 3, 3, 2, 5, 5, 2, Padding::Same),
    (2, 3, 5, 2, 3, 5, 3, Padding::Valid),
    (2, 1, 6, 2, 1, 3, 2, Padding::Same),
    (1, 9, 9, 1, 5, 5, 1, Padding::Valid),
];

#[test]
fn conv_gradients_match_finite_differences_for_every_padding_and_kernel() {
    let mut rng = StdRng::seed_from_u64(14);
    for (batch, height, width, c_in, kh, kw, c_out, padding) in CONV_CASES {
        let case = format!("{batch}x{height}x{width}x{c_in}, kernel {kh}x{kw}x{c_out} {padding}");
        let g = Conv2dGeometry::new(shape(batch, height, width, c_in), kh, kw, c_out, padding).unwrap();
        let x = random(g.input().len(), &mut rng);
        let w = random(g.weight_len(), &mut rng);
        let b = random(c_out, &mut rng);
        let r = random(g.output().len(), &mut rng);

        let dz = dloss(&conv(&x, &w, &b, &g), &r);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; c_out]);
        conv2d_backward(Some(&mut dx), &mut dw, &mut db, &dz, &x, &w, &g);

        assert_gradient(&format!("{case}: dx"), &dx, &x, |x| {
            loss(&conv(x, &w, &b, &g), &r)
        });
        assert_gradient(&format!("{case}: dw"), &dw, &w, |w| {
            loss(&conv(&x, w, &b, &g), &r)
        });
        assert_gradient(&format!("{case}: db"), &db, &b, |b| {
            loss(&conv(&x, &w, b, &g), &r)
        });

        // the first layer skips dx: the same dw and db
        let (mut dw1, mut db1) = (vec![0.0; w.len()], vec![0.0; c_out]);
        conv2d_backward(None, &mut dw1, &mut db1, &dz, &x, &w, &g);
        assert_eq!((dw1, db1), (dw, db), "{case}: without dx");
    }
}

#[test]
fn conv_relu_pool_flatten_dense_chain_matches_finite_differences() {
    // a tiny convolutional network, as `explain` will show it: conv 3x3 same, ReLU,
    // max-pool, flatten, dense; the gradient of the image and of the filter
    let mut rng = StdRng::seed_from_u64(3);
    let input = shape(2, 5, 5, 2);
    let g = Conv2dGeometry::new(input, 3, 3, 3, Padding::Same).unwrap();
    let pool = Pool2dGeometry::new(g.output()).unwrap();
    let features = pool.output().image_len(); // 2·2·3
    let (x, w, b) = (
        random(input.len(), &mut rng),
        random(g.weight_len(), &mut rng),
        random(3, &mut rng),
    );
    let (w2, b2) = (random(features * 4, &mut rng), random(4, &mut rng));
    let r = random(2 * 4, &mut rng);

    let forward = |x: &[f64], w: &[f64]| {
        let z = conv(x, w, &b, &g);
        let mut a = vec![0.0; z.len()];
        activate(&mut a, &z, Activation::Relu);
        let (mut p, mut argmax) = (vec![0.0; pool.output().len()], vec![0; pool.output().len()]);
        maxpool2d_forward(&mut p, &mut argmax, &a, &pool);
        let mut flat = vec![0.0; p.len()];
        flatten_forward(&mut flat, &p, pool.output());
        let mut out = vec![0.0; 2 * 4];
        weighted_sum(&mut out, &flat, &w2, &b2, 2);
        (a, argmax, flat, out)
    };
    let (a, argmax, flat, out) = forward(&x, &w);
    let dout = dloss(&out, &r);
    let mut dflat = vec![0.0; flat.len()];
    input_gradient(&mut dflat, &dout, &w2, 2);
    let mut dp = vec![0.0; flat.len()];
    flatten_backward(&mut dp, &dflat, pool.output());
    let mut da = vec![0.0; a.len()];
    maxpool2d_backward(&mut da, &dp, &argmax);
    let mut dz = vec![0.0; a.len()];
    activation_backward(&mut dz, &da, &a, Activation::Relu);
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 3]);
    conv2d_backward(Some(&mut dx), &mut dw, &mut db, &dz, &x, &w, &g);

    assert_gradient("chain: dx", &dx, &x, |x| loss(&forward(x, &w).3, &r));
    assert_gradient("chain: dw", &dw, &w, |w| loss(&forward(&x, w).3, &r));
}

#[test]
fn pool_gradients_match_finite_differences_on_odd_sizes() {
    let mut rng = StdRng::seed_from_u64(15);
    for input in [
        shape(2, 5, 7, 3),
        shape(1, 4, 4, 2),
        shape(2, 3, 2, 1),
        shape(3, 2, 3, 4),
    ] {
        let g = Pool2dGeometry::new(input).unwrap();
        // distinct numbers 0.01 apart (far more than H): every argmax stays put
        let mut order: Vec<usize> = (0..input.len()).collect();
        order.shuffle(&mut rng);
        let x: Vec<f64> = order.iter().map(|&k| k as f64 * 0.01 - 0.5).collect();
        let r = random(g.output().len(), &mut rng);
        let pool = |x: &[f64]| {
            let (mut a, mut argmax) = (vec![0.0; g.output().len()], vec![0; g.output().len()]);
            maxpool2d_forward(&mut a, &mut argmax, x, &g);
            (a, argmax)
        };
        let (a, argmax) = pool(&x);
        let mut dx = vec![0.0; x.len()];
        maxpool2d_backward(&mut dx, &dloss(&a, &r), &argmax);
        assert_gradient(&format!("pool {input}: dx"), &dx, &x, |x| loss(&pool(x).0, &r));
    }
}

#[test]
fn flatten_gradient_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(16);
    let input = shape(3, 3, 5, 2);
    let x = random(input.len(), &mut rng);
    let r = random(input.len(), &mut rng);
    let flat = |x: &[f64]| {
        let mut a = vec![0.0; x.len()];
        flatten_forward(&mut a, x, input);
        a
    };
    let mut dx = vec![0.0; x.len()];
    flatten_backward(&mut dx, &dloss(&flat(&x), &r), input);
    assert_gradient("flatten: dx", &dx, &x, |x| loss(&flat(x), &r));
}

// ---------------------------------------------------------------- impossible shapes

fn message<T: std::fmt::Debug>(result: simdnet::Result<T>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn impossible_shapes_are_refused_with_the_shape_stated() {
    assert_eq!(
        message(ImageShape::new(2, 0, 28, 1)),
        "image shape 2x0x28x1 (batch x height x width x channels) has a size 0: \
         every size must be at least 1"
    );
    let input = shape(2, 3, 4, 1);
    assert_eq!(
        message(Conv2dGeometry::new(input, 5, 5, 8, Padding::Valid)),
        "conv2d: a 5x5 kernel does not fit in the 3x4 images of input 2x3x4x1 with padding valid \
         (the output would be -1x0): use a kernel of at most 3x4, or padding same"
    );
    assert_eq!(
        message(Conv2dGeometry::new(input, 3, 5, 8, Padding::Valid)),
        "conv2d: a 3x5 kernel does not fit in the 3x4 images of input 2x3x4x1 with padding valid \
         (the output would be 1x0): use a kernel of at most 3x4, or padding same"
    );
    assert_eq!(
        message(Conv2dGeometry::new(input, 0, 3, 4, Padding::Same)),
        "conv2d: a 0x3 kernel with 4 filters has a size 0 (input 2x3x4x1): \
         the kernel height, width and the filters must be at least 1"
    );
    assert_eq!(
        message(Conv2dGeometry::new(input, 3, 3, 0, Padding::Valid)),
        "conv2d: a 3x3 kernel with 0 filters has a size 0 (input 2x3x4x1): \
         the kernel height, width and the filters must be at least 1"
    );
    assert_eq!(
        message(Pool2dGeometry::new(shape(4, 1, 5, 3))),
        "max-pool 2x2: the 1x5 images of input 4x1x5x3 are too small (the output would be 0x2): \
         pooling needs images of at least 2x2; remove this pooling layer or give it a larger input \
         (less valid padding, or fewer poolings before it)"
    );
    assert_eq!(
        message(ImageShape::new(usize::MAX, 2, 1, 1)),
        format!(
            "image shape {}x2x1x1 (batch x height x width x channels) holds more numbers than \
             memory can: use smaller images or a smaller batch",
            usize::MAX
        )
    );
    // A side whose square overflows usize on 64-bit and 32-bit targets alike.
    let huge = 1usize << (usize::BITS / 2 + 1);
    assert_eq!(
        message(Conv2dGeometry::new(input, huge, huge, 1, Padding::Same)),
        format!(
            "conv2d: a {huge}x{huge} kernel with 1 filters on input 2x3x4x1 has \
             more weights than memory can hold: use a smaller kernel or fewer filters"
        )
    );
    // the edges that are possible: a kernel exactly the image's size (valid), any kernel (same)
    assert_eq!(
        Conv2dGeometry::new(input, 3, 4, 1, Padding::Valid)
            .unwrap()
            .output(),
        shape(2, 1, 1, 1)
    );
    assert_eq!(
        Conv2dGeometry::new(shape(1, 1, 1, 1), 7, 6, 2, Padding::Same)
            .unwrap()
            .output(),
        shape(1, 1, 1, 2)
    );
    assert_eq!(
        Pool2dGeometry::new(shape(1, 2, 3, 1)).unwrap().output(),
        shape(1, 1, 1, 1)
    );
}
