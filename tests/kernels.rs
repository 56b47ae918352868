//! The fast fused kernels against `kernels::reference`.
//!
//! Tolerances (stated once, used everywhere):
//! - identity, ReLU, `activation_backward` (its `db` too): exact (`==`);
//! - sigmoid and tanh: `|fast - ref| <= REL_TOL · |ref| + ABS_TOL`;
//! - softmax (probabilities, `dz`, loss): the same bound.

use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::activation::Activation;
use simdnet::kernels::{self, reference};
use simdnet::matrix::{MatMut, MatRef};
use simdnet::simd as vector;

/// Relative tolerance of the vectorised `exp`-based functions.
const REL_TOL: f32 = 1e-6;
/// Absolute floor for values near zero.
const ABS_TOL: f32 = 1e-7;

fn close(fast: f32, reference: f32) -> bool {
    fast == reference || (fast - reference).abs() <= REL_TOL * reference.abs() + ABS_TOL
}

fn exact(act: Activation) -> bool {
    matches!(act, Activation::Identity | Activation::Relu)
}

fn random(rows: usize, cols: usize, scale: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..rows * cols)
        .map(|_| rng.random_range(-scale..scale))
        .collect()
}

const SHAPES: &[(usize, usize)] = &[
    (0, 0),
    (0, 5),
    (3, 0),
    (1, 1),
    (2, 7),
    (3, 8),
    (4, 15),
    (5, 16),
    (3, 17),
    (2, 31),
    (7, 33),
    (128, 10),
    (128, 16),
    (64, 512),
];

#[test]
fn vector_activations_match_scalar() {
    let mut zs: Vec<f32> = vec![
        0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-3, -1e-3, 0.5, -0.5, 20.0, -20.0,
    ];
    zs.extend([
        88.0,
        -88.0,
        100.0,
        -100.0,
        1e4,
        -1e4,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]);
    let mut rng = StdRng::seed_from_u64(1);
    zs.extend((0..20_000).map(|_| rng.random_range(-12.0f32..12.0)));
    for act in Activation::ALL {
        let mut worst = 0.0f32;
        for chunk in zs.chunks(vector::LANES) {
            let mut buf = [0.0f32; vector::LANES];
            buf[..chunk.len()].copy_from_slice(chunk);
            let out = vector::activate(act, vector::V::from(buf)).to_array();
            let back = vector::derivative_from_output(act, vector::V::from(out)).to_array();
            for (j, &z) in chunk.iter().enumerate() {
                let want = act.f(z);
                if exact(act) {
                    assert_eq!(out[j], want, "{act}({z})");
                } else {
                    assert!(close(out[j], want), "{act}({z}) = {} vs {want}", out[j]);
                    worst = worst.max((out[j] - want).abs() / want.abs().max(1e-30));
                }
                assert_eq!(back[j], act.df_from_output(out[j]), "{act}' at {}", out[j]);
            }
        }
        eprintln!("{act}: worst relative error {worst:e}");
    }
}

#[test]
fn bias_activation_matches_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    for &(rows, cols) in SHAPES {
        for act in Activation::ALL {
            let z = random(rows, cols, 6.0, &mut rng);
            let bias = random(1, cols, 2.0, &mut rng);
            // The fast version on an interior view with a larger row stride.
            let rs = cols + 3;
            let mut fast = vec![f32::NAN; rows * rs + 3];
            for i in 0..rows {
                fast[i * rs + 1..i * rs + 1 + cols].copy_from_slice(&z[i * cols..(i + 1) * cols]);
            }
            let mut want = z.clone();
            reference::bias_activation(MatMut::from_slice(&mut want, rows, cols), &bias, act);
            let len = fast.len();
            kernels::bias_activation(
                MatMut::with_row_stride(&mut fast[1..len], rows, cols, rs),
                &bias,
                act,
            );
            for i in 0..rows {
                for j in 0..cols {
                    let (x, y) = (fast[i * rs + 1 + j], want[i * cols + j]);
                    assert!(
                        if exact(act) { x == y } else { close(x, y) },
                        "{rows}x{cols} {act} ({i},{j}): {x} vs {y}"
                    );
                }
                // The padding between rows is untouched.
                assert!(fast[i * rs].is_nan() && fast[i * rs + 1 + cols].is_nan());
            }
        }
    }
}

#[test]
fn activation_backward_matches_reference_exactly() {
    let mut rng = StdRng::seed_from_u64(3);
    for &(rows, cols) in SHAPES {
        for act in Activation::ALL {
            let z = random(rows, cols, 3.0, &mut rng);
            let a: Vec<f32> = z.iter().map(|&v| act.f(v)).collect();
            let da = random(rows, cols, 1.0, &mut rng);
            // NaN everywhere: both must overwrite dz and db, never read them.
            let (mut fast, mut want) = (vec![f32::NAN; rows * cols], vec![f32::NAN; rows * cols]);
            let (mut db_fast, mut db_want) = (vec![f32::NAN; cols], vec![f32::NAN; cols]);
            let (da_view, a_view) = (
                MatRef::from_slice(&da, rows, cols),
                MatRef::from_slice(&a, rows, cols),
            );
            kernels::activation_backward(
                MatMut::from_slice(&mut fast, rows, cols),
                da_view,
                a_view,
                act,
                &mut db_fast,
            );
            reference::activation_backward(
                MatMut::from_slice(&mut want, rows, cols),
                da_view,
                a_view,
                act,
                &mut db_want,
            );
            assert_eq!(fast, want, "{rows}x{cols} {act}: dz");
            assert_eq!(db_fast, db_want, "{rows}x{cols} {act}: db");
        }
    }
}

/// Two tasks of rows (a 2-thread pool), with and without dropout, have
/// the bits of one task: `dz` and every `db_j` (summed over the rows in
/// order, the bottom task's rows added to the top's sums), for odd and
/// even row counts and widths of whole vectors and ragged ones, inside a
/// wider row stride (the columns past the view untouched); a 1-thread pool
/// and a single row take one task.
#[test]
fn activation_backward_in_halves_has_the_bits_of_one_task() {
    let mut rng = StdRng::seed_from_u64(6);
    let pools = [1, 2].map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap());
    for (rows, cols) in [
        (1, 64),
        (5, 33),
        (7, 40),
        (16, 100),
        (33, 129),
        (128, 512),
        (3, 200),
    ] {
        let ld = cols + 3;
        for act in Activation::ALL {
            for mask in [None, Some(kernels::DropoutMask::new(0.3, 9, 2, 1))] {
                let a: Vec<f32> = random(rows, ld, 3.0, &mut rng)
                    .iter()
                    .map(|&v| act.f(v))
                    .collect();
                let da = random(rows, ld, 1.0, &mut rng);
                let (da_view, a_view) = (
                    MatRef::with_strides(&da, rows, cols, ld, 1),
                    MatRef::with_strides(&a, rows, cols, ld, 1),
                );
                let mut want = vec![-7.0f32; rows * ld];
                let mut db_want = vec![f32::NAN; cols];
                let one = MatMut::with_row_stride(&mut want, rows, cols, ld);
                match &mask {
                    None => kernels::activation_backward(one, da_view, a_view, act, &mut db_want),
                    Some(m) => {
                        kernels::activation_dropout_backward(one, da_view, a_view, act, m, &mut db_want)
                    }
                }
                for pool in &pools {
                    let mut got = vec![-7.0f32; rows * ld];
                    let mut db = vec![f32::NAN; cols];
                    pool.install(|| {
                        kernels::activation_backward_in_halves(
                            MatMut::with_row_stride(&mut got, rows, cols, ld),
                            da_view,
                            a_view,
                            act,
                            mask.as_ref(),
                            &mut db,
                        )
                    });
                    let at = format!(
                        "{rows}x{cols} {act}, dropout {}, {} threads",
                        mask.is_some(),
                        pool.current_num_threads()
                    );
                    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{at}: dz");
                    assert_eq!(bits(&db), bits(&db_want), "{at}: db");
                }
            }
        }
    }
}

#[test]
fn identity_backward_copies_da_and_sums_its_columns() {
    // The output layer (identity): dz = da exactly, db = the column sums of da
    // in row order; also through a transposed (strided) view of da.
    let mut rng = StdRng::seed_from_u64(4);
    for &(rows, cols) in SHAPES {
        let da = random(rows, cols, 1.0, &mut rng);
        let a = random(rows, cols, 1.0, &mut rng);
        let want_db: Vec<f32> = (0..cols)
            .map(|j| (0..rows).fold(0.0f32, |s, i| s + da[i * cols + j]))
            .collect();
        let (mut dz, mut db) = (vec![f32::NAN; rows * cols], vec![f32::NAN; cols]);
        kernels::activation_backward(
            MatMut::from_slice(&mut dz, rows, cols),
            MatRef::from_slice(&da, rows, cols),
            MatRef::from_slice(&a, rows, cols),
            Activation::Identity,
            &mut db,
        );
        assert_eq!(dz, da, "{rows}x{cols}: dz");
        assert_eq!(db, want_db, "{rows}x{cols}: db");
        let t = MatRef::from_slice(&da, rows, cols).to_matrix();
        let at = MatRef::from_slice(&a, rows, cols).to_matrix();
        let (mut dz_t, mut db_t) = (vec![f32::NAN; rows * cols], vec![f32::NAN; rows]);
        kernels::activation_backward(
            MatMut::from_slice(&mut dz_t, cols, rows),
            t.view().t(),
            at.view().t(),
            Activation::Identity,
            &mut db_t,
        );
        for i in 0..rows {
            assert_eq!(
                db_t[i],
                da[i * cols..(i + 1) * cols].iter().sum::<f32>(),
                "{rows}x{cols}: row {i}"
            );
        }
    }
}

#[test]
fn softmax_kernels_match_reference() {
    let mut rng = StdRng::seed_from_u64(5);
    for &(rows, cols) in SHAPES {
        if cols == 0 {
            continue;
        }
        for scale in [1.0, 30.0] {
            let logits = random(rows, cols, scale, &mut rng);
            let labels: Vec<u8> = (0..rows)
                .map(|_| rng.random_range(0..cols.min(256)) as u8)
                .collect();
            let view = MatRef::from_slice(&logits, rows, cols);
            let (mut fast, mut want) = (vec![f32::NAN; rows * cols], vec![f32::NAN; rows * cols]);
            let grad_scale = 1.0 / rows.max(1) as f32;
            let l_fast = kernels::softmax_cross_entropy(
                MatMut::from_slice(&mut fast, rows, cols),
                view,
                &labels,
                grad_scale,
            );
            let l_want = reference::softmax_cross_entropy(
                MatMut::from_slice(&mut want, rows, cols),
                view,
                &labels,
                grad_scale,
            );
            assert!(
                (l_fast - l_want).abs() <= 1e-5 * l_want.abs() + 1e-6,
                "{rows}x{cols}: loss {l_fast} vs {l_want}"
            );
            for (x, y) in fast.iter().zip(&want) {
                assert!(
                    close(*x, *y) || (x - y).abs() <= 2.0 * REL_TOL * grad_scale,
                    "{rows}x{cols}: dz {x} vs {y}"
                );
            }
            let (mut p_fast, mut p_want) = (logits.clone(), logits.clone());
            kernels::softmax_rows(MatMut::from_slice(&mut p_fast, rows, cols));
            reference::softmax_rows(MatMut::from_slice(&mut p_want, rows, cols));
            for (x, y) in p_fast.iter().zip(&p_want) {
                assert!(close(*x, *y), "{rows}x{cols}: p {x} vs {y}");
            }
        }
    }
}
