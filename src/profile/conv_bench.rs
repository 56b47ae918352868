//! `simdnet bench --models`: the convolution layers of the preset CNNs
//! (`lenet`, `keras-cnn`), each pass timed on one training shard.
//!
//! For every convolution layer of a model (built by [`Arch::preset`] with
//! its real shapes and Glorot filters), three passes on `rows` random images
//! (a training shard: [`SHARD_ROWS`] = 64 images):
//! - **fwd**: [`conv2d_forward`], `a = f(im2col(x)·W + b)`;
//! - **dW**: [`conv2d_backward`] without an input gradient, i.e.
//!   `dz = da ⊙ f'(a)`, `db`, and `dW = im2col(x)ᵀ·dz` (the first layer's
//!   whole backward pass in training);
//! - **dx**: the input gradient alone ([`conv2d_input_gradient`], from the
//!   `dz` the dW pass left, as the whole backward pass runs it); not for a
//!   model's first layer, whose input gradient training never computes.
//!
//! Each pass counts the *useful* FLOPs of the convolution,
//! `2·rows·oh·ow·c_out·kh·kw·c_in` (what PyTorch and the issue count; the
//! zero padding's products are not counted), and its least traffic is
//! reading `x`, `W` and writing the output once (`4·(rows·(in + out) + weights)`
//! bytes), for the same roofline verdict as the GEMMs
//! ([`super::verdict::GemmStats::from_work`]).
//!
//! Before timing, each layer is verified on a few images against plain `f64`
//! loops written here from the definition (every index named), through
//! function pointers, so a test can hand in a broken kernel and see it
//! rejected ([`verify_conv`]).

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::gemm::Parallelism;
use crate::geometry::{input_position, ImageShape};
use crate::matrix::{MatMut, MatRef, Matrix};
use crate::nn::conv::{conv2d_backward, conv2d_forward, conv2d_input_gradient, input_gradient_scratch};
use crate::nn::spec::InputShape;
use crate::nn::train::SHARD_ROWS;
use crate::nn::{Arch, Conv2d, Layer};

/// The models `bench --models` knows (the presets of [`Arch::preset`]).
pub const MODELS: [&str; 2] = ["lenet", "keras-cnn"];

/// A convolution's forward pass as the benchmark calls it: `a = f(conv(x, W) + b)`.
pub type ConvForwardFn = fn(MatMut, MatRef<f32>, &Conv2d);
/// The buffers of one backward pass, in [`conv2d_backward`]'s order (outputs
/// first): `dx` (`None`: no input gradient), the input-gradient scratch,
/// `dW`, `db`, `dz`, then the inputs `da`, `a` and `x`.
pub struct BackwardBuffers<'a> {
    /// `∂L/∂x`, if wanted.
    pub dx: Option<MatMut<'a>>,
    /// The scratch buffer of [`input_gradient_scratch`].
    pub scratch: &'a mut Matrix,
    /// `∂L/∂W`.
    pub dw: MatMut<'a>,
    /// `∂L/∂b`.
    pub db: &'a mut [f32],
    /// `∂L/∂z`.
    pub dz: MatMut<'a>,
    /// `∂L/∂a`, from the layer above.
    pub da: MatRef<'a>,
    /// The forward pass's output.
    pub a: MatRef<'a>,
    /// The forward pass's input.
    pub x: MatRef<'a, f32>,
}

/// A convolution's backward pass as the benchmark calls it: as
/// [`conv2d_backward`] without scale, dropout or parallelism.
pub type ConvBackwardFn = fn(BackwardBuffers, &Conv2d);

/// The engine's forward pass ([`conv2d_forward`]) on one thread, as a
/// training shard runs it.
pub fn engine_forward(a: MatMut, x: MatRef<f32>, layer: &Conv2d) {
    conv2d_forward(a, x, 1.0, layer, None, Parallelism::Sequential);
}

/// The engine's backward pass ([`conv2d_backward`]) on one thread, as a
/// training shard runs it.
pub fn engine_backward(b: BackwardBuffers, layer: &Conv2d) {
    let BackwardBuffers {
        dx,
        scratch,
        dw,
        db,
        dz,
        da,
        a,
        x,
    } = b;
    let par = Parallelism::Sequential;
    conv2d_backward(dx, scratch, dw, db, dz, da, a, x, 1.0, layer, None, par);
}

/// One pass of a convolution layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    /// `a = f(im2col(x)·W + b)`.
    Forward,
    /// `dz = da ⊙ f'(a)`, `db`, `dW = im2col(x)ᵀ·dz`.
    WeightGradient,
    /// `dx` from `dz` and `W` (the full convolution, or columns and their fold).
    InputGradient,
}

impl ConvPass {
    /// `fwd`, `dW`, `dx`.
    pub fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "fwd",
            ConvPass::WeightGradient => "dW",
            ConvPass::InputGradient => "dx",
        }
    }
}

/// One convolution layer of a model, with its real shapes and filters.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvCase {
    /// The model it belongs to (`lenet`, `keras-cnn`).
    pub model: String,
    /// Its index among the model's layers (as in `train --profile`).
    pub layer: usize,
    /// Whether it is the model's first layer (training computes no `dx` for it).
    pub first: bool,
    /// The layer.
    pub conv: Conv2d,
}

impl ConvCase {
    /// Every convolution layer of the preset `model` on 28x28x1 images and 10
    /// classes (weights drawn with seed 1).
    ///
    /// # Errors
    /// A message naming the known models when `model` is not one of them.
    pub fn of_model(model: &str) -> Result<Vec<ConvCase>, String> {
        let unknown = || format!("unknown model '{model}' (expected {})", MODELS.join(" or "));
        let arch = Arch::preset(model).ok_or_else(unknown)?;
        let input = InputShape::Image(ImageShape::new(1, 28, 28, 1).map_err(|e| e.to_string())?);
        let net = arch.build(input, 10, 1).map_err(|e| e.to_string())?;
        Ok(net
            .layers()
            .iter()
            .enumerate()
            .filter_map(|(l, layer)| match layer {
                Layer::Conv2d(c) => Some(ConvCase {
                    model: model.to_string(),
                    layer: l,
                    first: l == 0,
                    conv: c.clone(),
                }),
                _ => None,
            })
            .collect())
    }

    /// E.g. `lenet L0 5x5x6 same 28x28x1`.
    pub fn name(&self) -> String {
        let g = &self.conv.geometry;
        let i = g.input();
        format!(
            "{} L{} {}x{}x{} {} {}x{}x{}",
            self.model,
            self.layer,
            g.kernel_h(),
            g.kernel_w(),
            g.filters(),
            g.padding(),
            i.height(),
            i.width(),
            i.channels()
        )
    }

    /// The passes training runs for this layer: fwd and dW, and dx unless it is the first.
    pub fn passes(&self) -> Vec<ConvPass> {
        let mut p = vec![ConvPass::Forward, ConvPass::WeightGradient];
        if !self.first {
            p.push(ConvPass::InputGradient);
        }
        p
    }

    /// Useful FLOPs of one pass on `rows` images: `2·rows·oh·ow·c_out·kh·kw·c_in`.
    pub fn flops(&self, rows: usize) -> f64 {
        let g = &self.conv.geometry;
        2.0 * rows as f64
            * self.conv.outputs() as f64
            * (g.kernel_h() * g.kernel_w() * g.input().channels()) as f64
    }

    /// The least traffic of one pass on `rows` images: read the images and the
    /// filters, write the output once (bytes).
    pub fn min_bytes(&self, rows: usize) -> f64 {
        4.0 * (rows * (self.conv.inputs() + self.conv.outputs()) + self.conv.w.as_slice().len()) as f64
    }

    /// Bytes the benchmark's buffers take for `rows` images (x, a, da, dz, dx, scratch), twice
    /// over while verifying.
    pub fn buffer_bytes(&self, rows: usize) -> u64 {
        let (sr, sc) = input_gradient_scratch(&self.conv, rows);
        let floats = rows * (2 * self.conv.inputs() + 3 * self.conv.outputs())
            + sr * sc
            + 2 * self.conv.w.as_slice().len();
        2 * 4 * floats as u64
    }
}

fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// The operands and outputs of one layer on `rows` images.
struct ConvData {
    rows: usize,
    x: Vec<f32>,
    a: Vec<f32>,
    da: Vec<f32>,
    dz: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    scratch: Matrix,
}

impl ConvData {
    /// Random images in [0, 1) (the pixels, or a ReLU layer's output), a random `da` in [-1, 1);
    /// outputs filled with NaN (a kernel that leaves one unwritten fails verification).
    fn new(case: &ConvCase, rows: usize, seed: u64) -> ConvData {
        let (c, (sr, sc)) = (&case.conv, input_gradient_scratch(&case.conv, rows));
        ConvData {
            rows,
            x: uniform(rows * c.inputs(), 0.0, 1.0, seed),
            a: vec![f32::NAN; rows * c.outputs()],
            da: uniform(rows * c.outputs(), -1.0, 1.0, seed + 1),
            dz: vec![f32::NAN; rows * c.outputs()],
            dx: vec![f32::NAN; rows * c.inputs()],
            dw: vec![f32::NAN; c.w.as_slice().len()],
            db: vec![f32::NAN; c.b.len()],
            scratch: Matrix::zeros(sr, sc),
        }
    }

    fn forward(&mut self, f: ConvForwardFn, c: &Conv2d) {
        let a = MatMut::from_slice(&mut self.a, self.rows, c.outputs());
        f(a, MatRef::from_slice(&self.x, self.rows, c.inputs()), c);
    }

    /// The engine's input gradient alone, from the `dz` the last backward
    /// pass left (one thread, as a training shard runs it).
    fn input_gradient(&mut self, c: &Conv2d) {
        let (rows, i, o) = (self.rows, c.inputs(), c.outputs());
        let dx = MatMut::from_slice(&mut self.dx, rows, i);
        let dz = MatRef::from_slice(&self.dz, rows, o);
        conv2d_input_gradient(dx, &mut self.scratch, dz, c, Parallelism::Sequential);
    }

    fn backward(&mut self, f: ConvBackwardFn, c: &Conv2d, with_dx: bool) {
        let (rows, i, o) = (self.rows, c.inputs(), c.outputs());
        let dx = with_dx.then(|| MatMut::from_slice(&mut self.dx, rows, i));
        let dw = MatMut::from_slice(&mut self.dw, c.w.rows(), c.w.cols());
        // The engine adds db into its buffer: start from 0 as training does.
        self.db.fill(0.0);
        let buffers = BackwardBuffers {
            dx,
            scratch: &mut self.scratch,
            dw,
            db: &mut self.db,
            dz: MatMut::from_slice(&mut self.dz, rows, o),
            da: MatRef::from_slice(&self.da, rows, o),
            a: MatRef::from_slice(&self.a, rows, o),
            x: MatRef::from_slice(&self.x, rows, i),
        };
        f(buffers, c);
    }
}

/// The reference: `(a, dW, db, dx)` of `layer` on `x` and `da` in plain `f64` loops from the
/// definition, with the sums of absolute terms of each value (for the tolerance).
struct Reference {
    a: Vec<(f64, f64)>,
    dw: Vec<(f64, f64)>,
    db: Vec<(f64, f64)>,
    dx: Vec<(f64, f64)>,
}

#[allow(clippy::needless_range_loop)] // every index named, as in the lesson
fn reference(c: &Conv2d, x: &[f32], da: &[f32], a_engine: &[f32], rows: usize) -> Reference {
    let g = &c.geometry;
    let (inp, out) = (g.input(), g.output());
    let (h, w, ci_n) = (inp.height(), inp.width(), inp.channels());
    let (oh, ow, co_n) = (out.height(), out.width(), g.filters());
    let (kh, kw) = (g.kernel_h(), g.kernel_w());
    let weights = c.w.as_slice();
    let x_at = |r: usize, y: usize, xx: usize, ci: usize| x[r * c.inputs() + (y * w + xx) * ci_n + ci] as f64;
    let o_at = |r: usize, oy: usize, ox: usize, co: usize| r * c.outputs() + (oy * ow + ox) * co_n + co;
    let mut a = vec![(0.0, 0.0); rows * c.outputs()];
    let mut dw = vec![(0.0, 0.0); weights.len()];
    let mut db = vec![(0.0, 0.0); co_n];
    let mut dx = vec![(0.0, 0.0); rows * c.inputs()];
    for r in 0..rows {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..co_n {
                    let o = o_at(r, oy, ox, co);
                    // dz = da ⊙ f'(a), with a as the engine computed it (checked below)
                    let dz = da[o] as f64 * c.act.df_from_output(a_engine[o]) as f64;
                    let (mut z, mut z_abs) = (c.b[co] as f64, (c.b[co] as f64).abs());
                    db[co].0 += dz;
                    db[co].1 += dz.abs();
                    for ky in 0..kh {
                        let Some(y) = input_position(oy, ky, g.pad_top(), h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(xx) = input_position(ox, kx, g.pad_left(), w) else {
                                continue;
                            };
                            for ci in 0..ci_n {
                                let wi = g.w_at(ky, kx, ci, co);
                                let (xv, wv) = (x_at(r, y, xx, ci), weights[wi] as f64);
                                // forward: z[r,oy,ox,co] += x[r,y,x,ci]·W[ky,kx,ci,co]
                                z += xv * wv;
                                z_abs += (xv * wv).abs();
                                // dW[ky,kx,ci,co] += x[r,y,x,ci]·dz[r,oy,ox,co]
                                dw[wi].0 += xv * dz;
                                dw[wi].1 += (xv * dz).abs();
                                // dx[r,y,x,ci] += W[ky,kx,ci,co]·dz[r,oy,ox,co]
                                let xi = r * c.inputs() + (y * w + xx) * ci_n + ci;
                                dx[xi].0 += wv * dz;
                                dx[xi].1 += (wv * dz).abs();
                            }
                        }
                    }
                    a[o] = (c.act.f(z as f32) as f64, z_abs);
                }
            }
        }
    }
    Reference { a, dw, db, dx }
}

/// `got` against the reference: `|got - want| <= 1e-5·(1 + Σ|terms|)`, finite.
fn compare(what: &str, got: &[f32], want: &[(f64, f64)]) -> Result<(), String> {
    for (i, (&g, &(w, abs))) in got.iter().zip(want).enumerate() {
        if !(g.is_finite() && (g as f64 - w).abs() <= 1e-5 * (1.0 + abs)) {
            return Err(format!("{what}: element {i} is {g}, the reference gives {w}"));
        }
    }
    Ok(())
}

/// Images each layer is verified on (few: the reference is a plain loop).
pub const VERIFY_ROWS: usize = 2;

/// Checks `forward` and `backward` on `case` against plain `f64` loops on
/// [`VERIFY_ROWS`] random images, with random biases: the output `a`, then `dW`, `db` and (unless
/// the layer is its model's first) `dx`. The error names the layer, the pass
/// and the first wrong element.
pub fn verify_conv(case: &ConvCase, forward: ConvForwardFn, backward: ConvBackwardFn) -> Result<(), String> {
    // A built layer's biases are 0, which would hide a kernel that loses them: draw some.
    let mut c = case.conv.clone();
    c.b = uniform(c.b.len(), -0.5, 0.5, 3);
    let c = &c;
    let mut d = ConvData::new(case, VERIFY_ROWS, 5);
    d.forward(forward, c);
    d.backward(backward, c, !case.first);
    let want = reference(c, &d.x, &d.da, &d.a, VERIFY_ROWS);
    let name = case.name();
    compare(&format!("{name} fwd a"), &d.a, &want.a)?;
    compare(&format!("{name} dW"), &d.dw, &want.dw)?;
    compare(&format!("{name} db"), &d.db, &want.db)?;
    if !case.first {
        compare(&format!("{name} dx"), &d.dx, &want.dx)?;
    }
    Ok(())
}

/// Run times of the passes of one layer on `rows` images: `(pass, seconds)`,
/// measured as training runs them: one shard of `rows` images per thread of
/// the current rayon pool, all at once, each on its own thread (shards are
/// training's parallel tasks; a shard's GEMMs do not split further). A time
/// is the wall time of all the shards divided by their number: the seconds
/// per shard when every thread works.
///
/// One warm-up of everything, then up to `runs` rounds while under `budget`
/// seconds (at least one); each round times the forward pass, the dW-only
/// backward pass and, for a layer that is not the first, the input gradient
/// from the `dz` that pass left. (dx used to be timed as the whole backward
/// pass minus the dW-only one: on a busy machine the difference came out
/// at zero or below.)
pub fn time_conv(case: &ConvCase, rows: usize, runs: usize, budget: f64) -> Vec<(ConvPass, Vec<f64>)> {
    use rayon::prelude::*;
    let c = &case.conv;
    let shards = rayon::current_num_threads().max(1);
    let mut data: Vec<ConvData> = (0..shards)
        .map(|s| ConvData::new(case, rows, 13 + 7 * s as u64))
        .collect();
    let time = |data: &mut Vec<ConvData>, f: &(dyn Fn(&mut ConvData) + Sync)| {
        let t = Instant::now();
        data.par_iter_mut().with_max_len(1).for_each(f);
        t.elapsed().as_secs_f64() / shards as f64
    };
    let forward = |d: &mut ConvData| d.forward(engine_forward, c);
    let only_dw = |d: &mut ConvData| d.backward(engine_backward, c, false);
    let only_dx = |d: &mut ConvData| d.input_gradient(c);
    time(&mut data, &forward);
    time(&mut data, &only_dw);
    if !case.first {
        time(&mut data, &only_dx);
    }
    let (mut fwd, mut dw, mut dx) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    while fwd.is_empty() || (fwd.len() < runs && start.elapsed().as_secs_f64() < budget) {
        fwd.push(time(&mut data, &forward));
        dw.push(time(&mut data, &only_dw));
        if !case.first {
            dx.push(time(&mut data, &only_dx));
        }
        black_box(&data);
    }
    let mut out = vec![(ConvPass::Forward, fwd), (ConvPass::WeightGradient, dw)];
    if !case.first {
        out.push((ConvPass::InputGradient, dx));
    }
    out
}

/// Images per timed pass: one training shard.
pub const BENCH_ROWS: usize = SHARD_ROWS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_have_their_convolutions() {
        let lenet = ConvCase::of_model("lenet").unwrap();
        assert_eq!(lenet.len(), 2);
        assert!(lenet[0].first && !lenet[1].first);
        // LeNet-5's first layer: 28·28·6 outputs x 25 taps x 1 channel, 2 FLOPs each.
        assert_eq!(lenet[0].flops(1), 2.0 * 28.0 * 28.0 * 6.0 * 25.0);
        assert_eq!(lenet[0].passes().len(), 2);
        assert_eq!(lenet[1].passes().len(), 3);
        assert_eq!(ConvCase::of_model("keras-cnn").unwrap().len(), 2);
        let e = ConvCase::of_model("vgg").unwrap_err();
        assert!(
            e.contains("unknown model 'vgg'") && e.contains("lenet or keras-cnn"),
            "{e}"
        );
    }

    fn wrong_dx(b: BackwardBuffers, layer: &Conv2d) {
        let mut dx = b.dx;
        let b = BackwardBuffers {
            dx: dx.as_mut().map(|m| m.rb_mut()),
            ..b
        };
        engine_backward(b, layer);
        if let Some(mut dx) = dx {
            dx.row_mut(1)[7] += 1e-2;
        }
    }

    #[test]
    fn verification_passes_the_engine_and_catches_a_wrong_kernel() {
        for case in ConvCase::of_model("lenet").unwrap() {
            verify_conv(&case, engine_forward, engine_backward).unwrap();
        }
        let second = &ConvCase::of_model("lenet").unwrap()[1];
        let e = verify_conv(second, engine_forward, wrong_dx).unwrap_err();
        assert!(e.starts_with("lenet L2 5x5x16 valid 14x14x6 dx: element "), "{e}");
    }
}
