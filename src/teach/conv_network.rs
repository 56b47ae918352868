//! Lesson 11: a whole (tiny) convolutional network, and one training step with
//! every number kept (what `simdnet explain --conv` prints).
//!
//! The network is lessons 9 and 10 put in front of the dense lesson, layer by
//! layer, named as Keras numbers them (every layer's output is `a` with its
//! number, the way the dense lesson names them):
//!
//! ```text
//! layer 1  conv      z1 = conv(x, W1) + b1,  a1 = f(z1)      W1 (kh, kw, c_in, c_out), b1 (c_out)
//! layer 2  max-pool  a2 = maxpool(a1), argmax kept            no weights
//! layer 3  flatten   a3 = flatten(a2)                         no weights, no arithmetic
//! layer 4  dense     z4 = a3·W4 + b4 (the logits)             W4 (features, classes), b4 (classes)
//! loss     p = softmax(z4),  L = mean_r -ln p[r, label_r]
//! ```
//!
//! and the backward pass, each line beside the forward line it differentiates:
//!
//! ```text
//! da4 = (p - y) / rows                       the loss (lesson 2)
//! dz4 = da4;  dW4 = a3ᵀ·dz4;  db4 = Σ dz4;  da3 = dz4·W4ᵀ      the dense layer (lesson 3)
//! da2 = da3 read as an image                 flatten backward (lesson 10)
//! da1[argmax] = da2, 0 elsewhere             the pool routes each gradient to its tile's winner
//! dz1 = da1 ⊙ f'(a1)                         ReLU's gate: 1 where z1 > 0, else 0
//! dW1 = Σ_positions x·dz1;  db1 = Σ dz1;  dx = "full" convolution of dz1   (lesson 9)
//! ```
//!
//! [`conv_train_step`] runs it all once, updates every weight and bias with the
//! optimizer of lesson 4, and returns a [`ConvStepTrace`]; [`check`] compares
//! every gradient with a finite difference, as [`super::gradcheck`] does for
//! the dense network. [`block_means`] makes the lesson's small image from a
//! real digit: the centre of the image cut into square blocks, each block's
//! mean pixel.

use rand::Rng;

use crate::activation::Activation;
use crate::error::{Error, Result};

use super::backward::{activation_backward, dense_backward};
use super::conv::{conv2d_backward, conv2d_forward, input_position, Conv2dGeometry, ImageShape, Padding};
use super::forward::{activate, dense_forward};
use super::gradcheck::{relative_error, TensorCheck, H};
use super::loss::{argmax_rows, softmax_cross_entropy, SoftmaxCrossEntropy};
use super::network::DenseF64;
use super::optimizers::{build, OptimizerF64, OptimizerKind};
use super::pitfalls::Bug;
use super::pool::{flatten_backward, flatten_forward, maxpool2d_backward, maxpool2d_forward, Pool2dGeometry};

/// A small image made from a large one: its centre cut into `size x size`
/// square blocks of `block x block` pixels, each block's mean pixel / 255.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockImage {
    /// The image, (size, size), row-major, values in 0..1.
    pub x: Vec<f64>,
    /// Blocks per side (the small image's height and width).
    pub size: usize,
    /// Pixels per block side.
    pub block: usize,
    /// The first row of the centre that is cut (rows `top..top + size·block`).
    pub top: usize,
    /// The first column of the centre that is cut.
    pub left: usize,
    /// The sum of each block's pixels (0..255 each), (size, size).
    pub sums: Vec<u32>,
}

/// Cuts the centre of a `height x width` image (`pixels`, row-major, 0..255)
/// into `size x size` blocks as large as fit (`block = min(height, width) /
/// size`), and averages each: `x[by,bx] = Σ pixels of the block / block² / 255`.
/// For MNIST's 28x28 and `size` 6: blocks of 4x4 over the centre 24x24, rows and
/// columns 2..26.
///
/// # Errors
/// [`Error::Invalid`] when the image is smaller than `size x size` or
/// `pixels` is not `height · width` long.
pub fn block_means(pixels: &[u8], height: usize, width: usize, size: usize) -> Result<BlockImage> {
    if pixels.len() != height * width {
        return Err(Error::Invalid(format!(
            "an image of {height}x{width} pixels needs {} values, not {}",
            height * width,
            pixels.len()
        )));
    }
    let block = height.min(width) / size.max(1);
    if size == 0 || block == 0 {
        return Err(Error::Invalid(format!(
            "the {height}x{width} images are too small to make a {size}x{size} image of block means: \
             use images of at least {size}x{size} pixels"
        )));
    }
    let (top, left) = ((height - size * block) / 2, (width - size * block) / 2);
    let mut sums = vec![0u32; size * size];
    for by in 0..size {
        for bx in 0..size {
            for dy in 0..block {
                for dx in 0..block {
                    let (py, px) = (top + by * block + dy, left + bx * block + dx);
                    sums[by * size + bx] += pixels[py * width + px] as u32;
                }
            }
        }
    }
    let scale = (block * block) as f64 * 255.0;
    let x = sums.iter().map(|&s| s as f64 / scale).collect();
    Ok(BlockImage {
        x,
        size,
        block,
        top,
        left,
        sums,
    })
}

/// A convolutional network of the lesson: one convolution (with its
/// activation), a 2x2 max-pool, flatten, and a dense output layer (the
/// identity: its outputs are the logits). The `f64` twin of an engine
/// network `conv, pool2, flatten, dense`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvNetworkF64 {
    /// The convolution's shapes for ONE image (batch 1), as the engine keeps them.
    pub conv: Conv2dGeometry,
    /// The filters `W1`, (kh, kw, c_in, c_out), row-major ([`Conv2dGeometry::w_at`]).
    pub w: Vec<f64>,
    /// The convolution's biases `b1`, (c_out).
    pub b: Vec<f64>,
    /// The convolution's activation `f`.
    pub act: Activation,
    /// The output layer: (pooled features, classes), activation identity.
    pub dense: DenseF64,
}

/// Everything the forward pass computes for a batch, named by layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvForward {
    /// The convolution's output `z1`, (rows, out_height, out_width, c_out).
    pub z1: Vec<f64>,
    /// `a1 = f(z1)`, the same shape.
    pub a1: Vec<f64>,
    /// The max-pool's output `a2`, (rows, out_height / 2, out_width / 2, c_out).
    pub a2: Vec<f64>,
    /// For each number of `a2`, the index in `a1` of its tile's winner.
    pub argmax: Vec<usize>,
    /// `a3 = flatten(a2)`, (rows, features): the same numbers, read as rows.
    pub a3: Vec<f64>,
    /// The logits `z4 = a3·W4 + b4`, (rows, classes) (`a4 = z4`: the identity).
    pub z4: Vec<f64>,
}

/// The loss and every gradient of the mean loss for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGradients {
    /// The loss: softmax, each example's and the mean cross-entropy.
    pub loss: SoftmaxCrossEntropy,
    /// `da4 = dz4 = (p - y) / rows`, (rows, classes).
    pub dz4: Vec<f64>,
    /// `dW4 = a3ᵀ·dz4`, (features, classes).
    pub dw4: Vec<f64>,
    /// `db4 = Σ_rows dz4`, (classes).
    pub db4: Vec<f64>,
    /// `da3 = dz4·W4ᵀ`, (rows, features).
    pub da3: Vec<f64>,
    /// `da2`: `da3` read as images, the shape of `a2`.
    pub da2: Vec<f64>,
    /// `da1`: each `da2` at its tile's winner, 0 elsewhere; the shape of `a1`.
    pub da1: Vec<f64>,
    /// The slopes `f'(a1)` (ReLU's gate: 1 or 0), the shape of `a1`.
    pub slope1: Vec<f64>,
    /// `dz1 = da1 ⊙ f'(a1)`, the shape of `z1`.
    pub dz1: Vec<f64>,
    /// `dW1[ky,kx,ci,co] = Σ_n Σ_positions x·dz1`, (kh, kw, c_in, c_out).
    pub dw1: Vec<f64>,
    /// `db1 = Σ dz1` over the batch and the positions, (c_out).
    pub db1: Vec<f64>,
    /// `dx`, the gradient of the image, (rows, height, width, c_in) (nothing needs it;
    /// a convolution below would receive it as its `da`).
    pub dx: Vec<f64>,
}

impl ConvNetworkF64 {
    /// A network for images of shape `image` (its batch is ignored): a
    /// `kernel x kernel` convolution with `filters` filters, `padding` and
    /// activation `act`, a 2x2 max-pool, flatten and a dense layer of
    /// `classes` outputs; Glorot-uniform weights and zero biases.
    ///
    /// The limits are Keras' (and the engine's `nn::Conv2d::new`): for the
    /// filters `sqrt(6 / (kh·kw·c_in + kh·kw·c_out))`, for the dense layer
    /// `sqrt(6 / (features + classes))`. Drawn from `rng` in order: the
    /// filters (`W1` in its row-major order), then `W4` row by row.
    ///
    /// # Errors
    /// [`Error::Invalid`] stating the shapes when the kernel does not fit, the
    /// convolution's output is smaller than 2x2 (nothing to pool), or a size is 0.
    pub fn glorot_uniform(
        image: ImageShape,
        kernel: usize,
        filters: usize,
        padding: Padding,
        act: Activation,
        classes: usize,
        rng: &mut impl Rng,
    ) -> Result<ConvNetworkF64> {
        let one = ImageShape::new(1, image.height(), image.width(), image.channels())?;
        let conv = Conv2dGeometry::new(one, kernel, kernel, filters, padding)?;
        let pool = Pool2dGeometry::new(conv.output())?;
        if classes == 0 {
            return Err(Error::Invalid("the dense layer needs at least 1 class".into()));
        }
        let taps = kernel * kernel;
        let limit = (6.0 / (taps * image.channels() + taps * filters) as f64).sqrt();
        let w = (0..conv.weight_len())
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        let features = pool.output().image_len();
        let dense_limit = (6.0 / (features + classes) as f64).sqrt();
        let dense_w = (0..features * classes)
            .map(|_| rng.random_range(-dense_limit..dense_limit))
            .collect();
        Ok(ConvNetworkF64 {
            conv,
            w,
            b: vec![0.0; filters],
            act,
            dense: DenseF64 {
                inputs: features,
                outputs: classes,
                w: dense_w,
                b: vec![0.0; classes],
                act: Activation::Identity,
            },
        })
    }

    /// The shapes of the convolution and the pool for a batch of `rows` images.
    ///
    /// # Panics
    /// When `rows` is 0 or so large that the batch cannot be held in memory
    /// (the shapes of one image were checked when the network was made).
    pub fn shapes(&self, rows: usize) -> (Conv2dGeometry, Pool2dGeometry) {
        let one = self.conv.input();
        let input = ImageShape::new(rows, one.height(), one.width(), one.channels())
            .expect("a batch of at least one image that fits in memory");
        let conv = Conv2dGeometry::new(
            input,
            self.conv.kernel_h(),
            self.conv.kernel_w(),
            self.conv.filters(),
            self.conv.padding(),
        )
        .expect("the shapes of one image were checked");
        let pool = Pool2dGeometry::new(conv.output()).expect("the shapes of one image were checked");
        (conv, pool)
    }

    /// The number of weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.w.len() + self.b.len() + self.dense.w.len() + self.dense.b.len()
    }

    /// The forward pass of a batch `x`: (rows, height, width, c_in).
    pub fn forward(&self, x: &[f64], rows: usize) -> ConvForward {
        let (conv, pool) = self.shapes(rows);
        let mut f = ConvForward {
            z1: vec![0.0; conv.output().len()],
            a1: vec![0.0; conv.output().len()],
            a2: vec![0.0; pool.output().len()],
            argmax: vec![0; pool.output().len()],
            a3: vec![0.0; pool.output().len()],
            z4: vec![0.0; rows * self.dense.outputs],
        };
        conv2d_forward(&mut f.z1, x, &self.w, &self.b, &conv); //  z1 = conv(x, W1) + b1
        activate(&mut f.a1, &f.z1, self.act); //                     a1 = f(z1)
        maxpool2d_forward(&mut f.a2, &mut f.argmax, &f.a1, &pool); // a2 = maxpool(a1)
        flatten_forward(&mut f.a3, &f.a2, pool.output()); //          a3 = flatten(a2)
        let mut a4 = vec![0.0; f.z4.len()]; // = z4: the identity
        dense_forward(&mut a4, &mut f.z4, &f.a3, &self.dense, rows); // z4 = a3·W4 + b4
        f
    }

    /// The mean cross-entropy loss of a batch: `x` (rows, height, width, c_in), `labels` (rows).
    pub fn loss(&self, x: &[f64], labels: &[usize]) -> f64 {
        let rows = labels.len();
        let f = self.forward(x, rows);
        let mut da = vec![0.0; f.z4.len()]; // not needed here
        softmax_cross_entropy(&mut da, &f.z4, labels, rows).loss
    }

    /// The loss and the backward pass: the gradients of the mean loss of the
    /// batch `x`, `labels`, given its forward pass `f`.
    pub fn backward(&self, x: &[f64], labels: &[usize], f: &ConvForward) -> ConvGradients {
        self.backward_with(x, labels, f, None)
    }

    /// [`ConvNetworkF64::backward`], or with one line wrong ([`Bug`]): the
    /// forgotten slope skips ReLU's gate (`dz1 = da1`), the overwrite keeps
    /// only the last position's share of each filter weight's gradient
    /// (`dW1 = x·dz1` instead of `+=`). Compare with [`check`]: they stand out.
    pub fn backward_with(
        &self,
        x: &[f64],
        labels: &[usize],
        f: &ConvForward,
        bug: Option<Bug>,
    ) -> ConvGradients {
        let rows = labels.len();
        let (conv, pool) = self.shapes(rows);
        let (n1, n2) = (conv.output().len(), pool.output().len());
        let features = self.dense.inputs;
        // loss: p = softmax(z4), L = mean -ln p[label];  da4 = (p - y) / rows
        let mut da4 = vec![0.0; f.z4.len()];
        let loss = softmax_cross_entropy(&mut da4, &f.z4, labels, rows);
        let mut g = ConvGradients {
            loss,
            dz4: vec![0.0; f.z4.len()],
            dw4: vec![0.0; self.dense.w.len()],
            db4: vec![0.0; self.dense.b.len()],
            da3: vec![0.0; rows * features],
            da2: vec![0.0; n2],
            da1: vec![0.0; n1],
            slope1: vec![0.0; n1],
            dz1: vec![0.0; n1],
            dw1: vec![0.0; self.w.len()],
            db1: vec![0.0; self.b.len()],
            dx: vec![0.0; conv.input().len()],
        };
        // layer 4, dense: dz4 = da4 ⊙ 1,  dW4 = a3ᵀ·dz4,  db4 = Σ dz4,  da3 = dz4·W4ᵀ
        dense_backward(
            Some(&mut g.da3),
            &mut g.dw4,
            &mut g.db4,
            &mut g.dz4,
            &da4,
            &f.z4,
            &f.a3,
            &self.dense,
            rows,
        );
        // layer 3, flatten: da2 = da3, read as images
        flatten_backward(&mut g.da2, &g.da3, pool.output());
        // layer 2, max-pool: da1[argmax] += da2, 0 elsewhere
        maxpool2d_backward(&mut g.da1, &g.da2, &f.argmax);
        // layer 1, conv: dz1 = da1 ⊙ f'(a1), then dW1, db1, dx
        let act = if bug == Some(Bug::ForgottenSlope) {
            Activation::Identity // wrong: slope 1 everywhere, the gate forgotten
        } else {
            self.act
        };
        for k in 0..n1 {
            g.slope1[k] = super::forward::df_from_output(self.act, f.a1[k]);
        }
        activation_backward(&mut g.dz1, &g.da1, &f.a1, act);
        conv2d_backward(Some(&mut g.dx), &mut g.dw1, &mut g.db1, &g.dz1, x, &self.w, &conv);
        if bug == Some(Bug::Overwrite) {
            overwrite_filter_gradient(&mut g.dw1, &g.dz1, x, &conv);
        }
        g
    }
}

/// The filter gradient written with `=` instead of `+=`: each weight keeps only
/// the share of the last position (and image) that used it. (The bug of
/// [`Bug::Overwrite`], for [`ConvNetworkF64::backward_with`].)
fn overwrite_filter_gradient(dw: &mut [f64], dz: &[f64], x: &[f64], g: &Conv2dGeometry) {
    let (input, output) = (g.input(), g.output());
    for n in 0..input.batch() {
        for oy in 0..output.height() {
            for ox in 0..output.width() {
                for co in 0..g.filters() {
                    for ky in 0..g.kernel_h() {
                        let Some(iy) = input_position(oy, ky, g.pad_top(), input.height()) else {
                            continue;
                        };
                        for kx in 0..g.kernel_w() {
                            let Some(ix) = input_position(ox, kx, g.pad_left(), input.width()) else {
                                continue;
                            };
                            for ci in 0..input.channels() {
                                // wrong: `=` keeps only this position's share
                                dw[g.w_at(ky, kx, ci, co)] =
                                    x[input.at(n, iy, ix, ci)] * dz[output.at(n, oy, ox, co)];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One optimizer (with its state) for each of the four buffers `W1, b1, W4, b4`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvOptimizerF64 {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Its learning rate.
    pub lr: f64,
    /// The optimizers of `W1, b1, W4, b4`, in that order.
    pub buffers: [OptimizerF64; 4],
}

impl ConvOptimizerF64 {
    /// Fresh optimizer state (all zeros) for every buffer of `net`.
    pub fn new(kind: OptimizerKind, lr: f64, net: &ConvNetworkF64) -> ConvOptimizerF64 {
        ConvOptimizerF64 {
            kind,
            lr,
            buffers: [
                build(kind, lr, net.w.len()),
                build(kind, lr, net.b.len()),
                build(kind, lr, net.dense.w.len()),
                build(kind, lr, net.dense.b.len()),
            ],
        }
    }
}

/// One buffer of weights or biases through the update.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamUpdate {
    /// Its name in the lesson: `W1`, `b1`, `W4` or `b4`.
    pub name: &'static str,
    /// The values before the step.
    pub before: Vec<f64>,
    /// Their gradients `g`.
    pub grad: Vec<f64>,
    /// What the optimizer added to each.
    pub update: Vec<f64>,
    /// The values after the step.
    pub after: Vec<f64>,
    /// The optimizer (hyper-parameters and state) before the step.
    pub opt_before: OptimizerF64,
    /// The optimizer after the step.
    pub opt_after: OptimizerF64,
}

/// Every number of one training step of a [`ConvNetworkF64`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvStepTrace {
    /// Images in the batch.
    pub rows: usize,
    /// The images, (rows, height, width, c_in).
    pub x: Vec<f64>,
    /// The labels, (rows).
    pub labels: Vec<usize>,
    /// The network before the step.
    pub net: ConvNetworkF64,
    /// The forward pass.
    pub forward: ConvForward,
    /// The loss and every gradient.
    pub grads: ConvGradients,
    /// The predicted class of each image (largest p), (rows).
    pub predicted: Vec<usize>,
    /// How many predictions are right.
    pub correct: usize,
    /// `W1, b1, W4, b4` through the update, in that order.
    pub updates: [ParamUpdate; 4],
    /// The optimizer.
    pub kind: OptimizerKind,
    /// Its learning rate.
    pub lr: f64,
    /// The probabilities for the same batch after the step, (rows, classes).
    pub probabilities_after: Vec<f64>,
    /// The mean cross-entropy for the same batch after the step.
    pub loss_after: f64,
}

/// One full training step of `net` on the images `x` (rows, height, width,
/// c_in) with `labels` (rows): forward, loss, backward, the update of `W1, b1,
/// W4, b4` by `opt`, and the loss again. Updates `net` and `opt` in place and
/// returns every intermediate number.
pub fn conv_train_step(
    net: &mut ConvNetworkF64,
    opt: &mut ConvOptimizerF64,
    x: &[f64],
    labels: &[usize],
) -> ConvStepTrace {
    let rows = labels.len();
    let before = net.clone();
    let opt_before = opt.clone();
    let forward = net.forward(x, rows);
    let grads = net.backward(x, labels, &forward);

    // update: every buffer with its own optimizer state
    let names = ["W1", "b1", "W4", "b4"];
    let grad_of = [&grads.dw1, &grads.db1, &grads.dw4, &grads.db4];
    let mut steps = Vec::new();
    for (k, values) in [&mut net.w, &mut net.b, &mut net.dense.w, &mut net.dense.b]
        .into_iter()
        .enumerate()
    {
        let value_before = values.clone();
        let update = opt.buffers[k].step(values, grad_of[k]);
        steps.push(ParamUpdate {
            name: names[k],
            before: value_before,
            grad: grad_of[k].clone(),
            update,
            after: values.clone(),
            opt_before: opt_before.buffers[k].clone(),
            opt_after: opt.buffers[k].clone(),
        });
    }
    let updates: [ParamUpdate; 4] = steps.try_into().expect("four buffers");

    // the same batch again, with the new weights
    let after = net.forward(x, rows);
    let mut da = vec![0.0; after.z4.len()];
    let loss_after = softmax_cross_entropy(&mut da, &after.z4, labels, rows);
    let predicted = argmax_rows(&grads.loss.p, rows);
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    ConvStepTrace {
        rows,
        x: x.to_vec(),
        labels: labels.to_vec(),
        net: before,
        forward,
        grads,
        predicted,
        correct,
        updates,
        kind: opt.kind,
        lr: opt.lr,
        probabilities_after: loss_after.p,
        loss_after: loss_after.loss,
    }
}

/// Which number of a [`ConvNetworkF64`] a finite difference moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvParam {
    /// `W1[idx]`, a filter weight.
    Filter(usize),
    /// `b1[idx]`, a filter's bias.
    FilterBias(usize),
    /// `W4[idx]`, a dense weight.
    DenseWeight(usize),
    /// `b4[idx]`, a dense bias.
    DenseBias(usize),
}

fn value(net: &mut ConvNetworkF64, p: ConvParam) -> &mut f64 {
    match p {
        ConvParam::Filter(i) => &mut net.w[i],
        ConvParam::FilterBias(i) => &mut net.b[i],
        ConvParam::DenseWeight(i) => &mut net.dense.w[i],
        ConvParam::DenseBias(i) => &mut net.dense.b[i],
    }
}

/// The numeric gradient of one parameter, as [`super::gradcheck::numeric_gradient`]
/// computes it: central differences `D(h) = (L(θ + h) - L(θ - h)) / 2h` at
/// `h = H` and `H/2`, combined by Richardson, `(4·D(h/2) - D(h)) / 3`.
pub fn numeric_gradient(net: &mut ConvNetworkF64, x: &[f64], labels: &[usize], p: ConvParam) -> f64 {
    let old = *value(net, p);
    let mut moved = |delta: f64| {
        *value(net, p) = old + delta;
        let loss = net.loss(x, labels);
        *value(net, p) = old;
        loss
    };
    let mut d = |h: f64| (moved(h) - moved(-h)) / (2.0 * h);
    let (d1, d2) = (d(H), d(H / 2.0));
    (4.0 * d2 - d1) / 3.0
}

/// Checks every gradient of `grads` (of the batch `x`, `labels` for `net`)
/// against [`numeric_gradient`]: one [`TensorCheck`] per buffer, in the order
/// `W1, b1, W4, b4`; `layer` is the Keras layer number minus 1 (0: the
/// convolution, 3: the dense layer).
pub fn check(net: &ConvNetworkF64, x: &[f64], labels: &[usize], grads: &ConvGradients) -> Vec<TensorCheck> {
    let mut probe = net.clone();
    // (layer, bias?, the analytic gradient, which parameter each entry is)
    type Tensor<'a> = (usize, bool, &'a Vec<f64>, fn(usize) -> ConvParam);
    let tensors: [Tensor; 4] = [
        (0, false, &grads.dw1, ConvParam::Filter),
        (0, true, &grads.db1, ConvParam::FilterBias),
        (3, false, &grads.dw4, ConvParam::DenseWeight),
        (3, true, &grads.db4, ConvParam::DenseBias),
    ];
    tensors
        .into_iter()
        .map(|(layer, bias, analytic, param)| {
            let numeric: Vec<f64> = (0..analytic.len())
                .map(|i| numeric_gradient(&mut probe, x, labels, param(i)))
                .collect();
            let error = analytic
                .iter()
                .zip(&numeric)
                .map(|(&a, &n)| relative_error(a, n))
                .collect();
            TensorCheck {
                layer,
                bias,
                analytic: analytic.clone(),
                numeric,
                error,
            }
        })
        .collect()
}

/// How far a forward pass is from the places where the loss has no slope: a
/// finite difference that moves a number across one of them measures a mix of
/// two slopes, and disagrees with the backward pass though both are right.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KinkMargin {
    /// The smallest `|z1|`: ReLU bends at 0 (`z1 = 0` exactly when a window
    /// of the image is all zeros and `b1 = 0`); infinite for a smooth activation.
    pub relu: f64,
    /// The smallest gap between a tile's winner and the runner-up, over the
    /// tiles whose winner is above 0: a tie changes the argmax.
    pub pool: f64,
}

impl KinkMargin {
    /// Whether the check's finite differences stay clear of every kink: each
    /// moves `z1` by at most `H · max(1, |x|)` both ways (`H`, the check's step).
    pub fn clear(&self, x: &[f64]) -> bool {
        let reach = H * x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        self.relu > reach && self.pool > 2.0 * reach
    }
}

/// The [`KinkMargin`] of the forward pass `f` of `net` on `rows` images.
pub fn kink_margin(net: &ConvNetworkF64, f: &ConvForward, rows: usize) -> KinkMargin {
    let (_, pool) = net.shapes(rows);
    let relu = if net.act == Activation::Relu {
        f.z1.iter().fold(f64::INFINITY, |m, z| m.min(z.abs()))
    } else {
        f64::INFINITY // smooth: no kink
    };
    let (input, output) = (pool.input(), pool.output());
    let mut gap = f64::INFINITY;
    for n in 0..output.batch() {
        for py in 0..output.height() {
            for px in 0..output.width() {
                for c in 0..output.channels() {
                    let winner = f.argmax[output.at(n, py, px, c)];
                    if f.a1[winner] <= 0.0 {
                        continue;
                    }
                    for dy in 0..Pool2dGeometry::SIZE {
                        for dx in 0..Pool2dGeometry::SIZE {
                            let i = input.at(n, 2 * py + dy, 2 * px + dx, c);
                            if i != winner {
                                gap = gap.min(f.a1[winner] - f.a1[i]);
                            }
                        }
                    }
                }
            }
        }
    }
    KinkMargin { relu, pool: gap }
}
