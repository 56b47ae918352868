//! The GEMM reading a convolution's unfolded input in place (`Im2col` over
//! `valid` windows, `f32`, `alpha = 1`: the gather micro-kernel, element
//! `(i, p)` at `row[i] + offset[p]`) against the same GEMM on the unfolded
//! matrix written out (`MatRef`: the strided kernel on a copy), bit for bit:
//! both sum every element in the same order, so any wrong pointer or offset,
//! or any change of order, shows as a different bit.
//!
//! Every kernel, block sizes small enough that `m`, `k` and the tiles have
//! partial edges, both orientations (`im2col(x)·W`, the forward pass, and
//! `im2col(x)ᵀ·dz`, the weight gradient), images as a view and as rows
//! gathered by index; a padded window (no gather: packed) as a control.

use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::gemm::{self, AOperand, BlockSizes, Epilogue, Gathered, Im2col, Parallelism, Window};
use simdnet::matrix::{MatMut, MatRef};

mod common;

use common::Globals;

/// `im2col` of `images` images `x` (each `win.image_len()`), written out:
/// `(images·out_h·out_w, kh·kw·c)` row-major, element `(q, t)` decoded from
/// its two indices (position `q = (n·out_h + oy)·out_w + ox`, tap
/// `t = (ky·kw + kx)·c + ci`), padding read as 0.
fn unfold(x: &[f32], images: usize, w: &Window) -> Vec<f32> {
    let (positions, taps) = (w.out_h * w.out_w, w.taps());
    let element = |q: usize, t: usize| {
        let (n, oy, ox) = (q / positions, q % positions / w.out_w, q % w.out_w);
        let (ky, kx, ci) = (
            t / (w.kernel_w * w.channels),
            t / w.channels % w.kernel_w,
            t % w.channels,
        );
        let (py, px) = (
            (oy + ky) as isize - w.pad_top as isize,
            (ox + kx) as isize - w.pad_left as isize,
        );
        if py < 0 || px < 0 || py as usize >= w.height || px as usize >= w.width {
            return 0.0;
        }
        x[n * w.image_len() + (py as usize * w.width + px as usize) * w.channels + ci]
    };
    (0..images * positions * taps)
        .map(|e| element(e / taps, e % taps))
        .collect()
}

fn valid(height: usize, width: usize, channels: usize, kernel_h: usize, kernel_w: usize) -> Window {
    Window {
        height,
        width,
        channels,
        kernel_h,
        kernel_w,
        pad_top: 0,
        pad_left: 0,
        out_h: height - kernel_h + 1,
        out_w: width - kernel_w + 1,
    }
}

fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `C = A·B` with the default epilogue, sequential.
fn product<A: AOperand>(a: A, b: MatRef<f32>) -> Vec<f32> {
    let mut c = vec![f32::NAN; a.rows() * b.cols()];
    let view = MatMut::from_slice(&mut c, a.rows(), b.cols());
    gemm::gemm(1.0, a, b, 0.0, view, Epilogue::None, Parallelism::Sequential);
    c
}

/// Forward and weight-gradient products over `win`, from the images in
/// place (a view and gathered rows) and from the unfolded copy: equal bits.
fn check(win: Window, images: usize, filters: usize, rng: &mut StdRng, label: &str) {
    let len = win.image_len();
    // images stored with two spare numbers per row, and a pool to gather rows from
    let stride = len + 2;
    let pool = images + 3;
    let data = random(rng, pool * stride);
    let index: Vec<usize> = (0..images).map(|_| rng.random_range(0..pool)).collect();
    let picked: Vec<f32> = index
        .iter()
        .flat_map(|&r| data[r * stride..][..len].to_vec())
        .collect();
    let cols = unfold(&picked, images, &win);
    let (m, k) = (images * win.positions(), win.taps());
    let unfolded = MatRef::from_slice(&cols, m, k);

    let base = MatRef::with_strides(&data, pool, len, stride, 1);
    let gathered = Gathered::new(base, &index).unwrap();
    let from_index = Im2col::from_rows(gathered.image_rows().unwrap(), win).unwrap();
    let x = MatRef::from_slice(&picked, images, len);
    let from_view = Im2col::new(x, win).unwrap();

    // forward: im2col(x)·W
    let w = random(rng, k * filters);
    let w = MatRef::from_slice(&w, k, filters);
    let want = product(unfolded, w);
    for (how, got) in [
        ("view", product(from_view, w)),
        ("rows by index", product(from_index, w)),
    ] {
        common::assert_same_bits(&got, &want, &format!("{label}, forward, {how}"));
    }
    // weight gradient: im2col(x)ᵀ·dz
    let dz = random(rng, m * filters);
    let dz = MatRef::from_slice(&dz, m, filters);
    let want = product(unfolded.t(), dz);
    for (how, got) in [
        ("view", product(from_view.t(), dz)),
        ("rows by index", product(from_index.t(), dz)),
    ] {
        common::assert_same_bits(&got, &want, &format!("{label}, weight gradient, {how}"));
    }
}

#[test]
fn in_place_windows_give_the_bits_of_the_unfolded_matrix_on_every_kernel() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(11);
    for (name, mr, nr) in common::forced_kernels() {
        // small blocks: several kc blocks (k = taps, or positions), several mc blocks, edge tiles
        gemm::set_block_sizes(BlockSizes {
            mc: 2 * mr,
            kc: 7,
            nc: 2 * nr,
        });
        for (win, images) in [
            (valid(5, 6, 3, 3, 2), 3), // 4x5 positions, 18 taps
            (valid(7, 7, 1, 3, 3), 2), // one channel
            (valid(6, 5, 4, 1, 1), 2), // 1x1 filters
            (valid(4, 9, 2, 4, 9), 5), // one position per image
            (valid(8, 6, 5, 2, 3), 1), // one image
        ] {
            for filters in [1, nr - 1, nr, nr + 3] {
                let label = format!("{name}, {win:?}, {images} images, {filters} filters");
                check(win, images, filters, &mut rng, &label);
            }
        }
    }
}

#[test]
fn default_blocks_and_network_shapes() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(12);
    // Keras' second convolution (3x3x64 on 26x26x32) on 3 images, LeNet-5's second (5x5x16 on 14x14x6)
    check(valid(26, 26, 32, 3, 3), 3, 64, &mut rng, "keras conv2");
    check(valid(14, 14, 6, 5, 5), 9, 16, &mut rng, "lenet conv2");
}

#[test]
fn padded_windows_are_packed_and_still_agree() {
    // control: a `same` window reads zeros outside the image, so it is packed, not gathered
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(13);
    let mut win = valid(6, 6, 3, 3, 3);
    (win.pad_top, win.pad_left, win.out_h, win.out_w) = (1, 1, 6, 6);
    let image = random(&mut rng, win.image_len());
    let a = Im2col::new(MatRef::from_slice(&image, 1, win.image_len()), win).unwrap();
    assert!(!a.gathers(1.0), "a padded window must not be read in place");
    check(win, 2, 16, &mut rng, "same padding");
    let v = valid(6, 6, 3, 3, 3);
    let a = Im2col::new(MatRef::from_slice(&image, 1, v.image_len()), v).unwrap();
    assert!(
        a.gathers(1.0) && !a.gathers(0.5),
        "valid windows are read in place only at alpha 1"
    );
}
