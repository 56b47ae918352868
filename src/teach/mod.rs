//! The teaching module: one training step of a multi-layer perceptron, line by
//! line, in plain scalar Rust.
//!
//! Written for reading, not for speed: `f64` everywhere, explicit index loops,
//! the maths in the doc comment of every function, and the shape of every
//! buffer in a comment. The layout and the steps are the engine's (`nn`), with
//! the same names and the same argument order (outputs first): matrices are
//! row-major `Vec<f64>`, a mini-batch has one example per row, a dense layer
//! computes `z = x·W + b`, `a = f(z)` with `W: (inputs, outputs)` stored as
//! `w[i * outputs + j]`, every layer has its own activation, the output layer's
//! is the identity and softmax is part of the loss. Gradients carry a `d`
//! prefix: `dz = ∂L/∂z`, `dw = ∂L/∂W`, ...
//!
//! The types end in `F64` ([`NetworkF64`], [`DenseF64`], [`OptimizerF64`],
//! [`NetworkOptimizerF64`]) to say the one thing that differs on purpose from
//! the engine's `Network`, `Dense` and `Optimizer`: plain `f64` vectors and
//! loops, not the fast `f32` kernels.
//!
//! # Lesson plan (reading order)
//!
//! 1. [`forward`] — the weighted sum of one neuron ([`forward::neuron`]), of a
//!    layer ([`forward::weighted_sum`]), the activations ReLU, sigmoid, tanh and
//!    identity ([`forward::activation`]), and a whole layer
//!    ([`forward::dense_forward`]).
//! 2. [`loss`] — softmax ([`loss::softmax`]), categorical cross-entropy
//!    ([`loss::cross_entropy`]); the gradient at the output computed the long
//!    way through the softmax Jacobian ([`loss::output_error_long_way`]) and the
//!    short way, `(p - y) / rows` ([`loss::output_error`]); all of it at once
//!    ([`loss::softmax_cross_entropy`]); accuracy.
//! 3. [`backward`] — the chain rule, each backward line beside the forward line
//!    it differentiates: `dz = da ⊙ f'(a)`, `dW = xᵀ·dz`, `db = Σ dz`,
//!    `dx = dz·Wᵀ`, and a whole layer ([`backward::dense_backward`]).
//! 4. [`optimizers`] — SGD, momentum, RMSprop and Adam, term by term, each with
//!    its state as an explicit struct.
//! 5. [`network`] — the whole network ([`network::NetworkF64`]) and one full
//!    training step that keeps every intermediate number ([`network::train_step`]
//!    returns a [`network::StepTrace`]; `simdnet explain` prints it).
//! 6. [`pitfalls`] — what goes wrong: gradients that must accumulate, the mean
//!    over the batch, unscaled inputs, weights that start equal, the forgotten
//!    `zero_grad`, and backward lines written wrong ([`pitfalls::wrong_backward`]).
//! 7. [`gradcheck`] — every gradient against a finite difference, the verdict,
//!    and what backpropagation saves ([`gradcheck::cost`]).
//! 8. [`fit`] — the loop: the same step on batch after batch of MNIST, from the
//!    engine's starting weights in the engine's order, so that it follows the
//!    engine's loss curve.
//! 9. [`conv`] — the convolution layer for images (batch, height, width,
//!    channels): `valid` and `same` padding, forward and backward
//!    ([`conv::conv2d_forward`], [`conv::conv2d_backward`]).
//! 10. [`pool`] — 2x2 max-pooling with its argmax, and flatten
//!     ([`pool::maxpool2d_forward`], [`pool::flatten_forward`]).
//! 11. [`conv_network`] — lessons 9 and 10 in front of a dense layer: a tiny
//!     convolutional network ([`conv_network::ConvNetworkF64`]) and one full
//!     training step that keeps every number ([`conv_network::conv_train_step`]),
//!     how the pool routes its gradient and how the filter gradient sums over
//!     the positions; every gradient checked ([`conv_network::check`]).
//!
//! Then run `simdnet explain` to see every number of a step of the tiny 3-4-2
//! network of [`network::NetworkF64::tiny`], `simdnet explain --index 0` for
//! the workshop's 784-16-16-10 network on the first MNIST training image,
//! `--check` to check every gradient, `simdnet explain --conv` for every number
//! of a step of lesson 11's convolutional network on a real digit, and
//! `simdnet teach` to watch this code learn MNIST beside the engine.
//!
//! # Nielsen's four equations
//!
//! Chapter 2 of Nielsen's *Neural Networks and Deep Learning* writes
//! backpropagation as four equations, for one example as a column vector, with
//! `δ` for our `dz` and `w^l` for our `Wᵀ` (outputs x inputs). Here they are
//! and the functions that compute them, for a batch (one example per row):
//!
//! ```text
//! BP1  δ^L = ∇_a C ⊙ σ'(z^L)                 loss::output_error: da = (p - y)/rows; dz = da ⊙ 1
//! BP2  δ^l = ((w^(l+1))ᵀ δ^(l+1)) ⊙ σ'(z^l)  backward::input_gradient (da = dz·Wᵀ of the layer
//!                                            above), then backward::activation_backward
//! BP3  ∂C/∂b^l_j = δ^l_j                     backward::bias_gradient: db = Σ_rows dz
//! BP4  ∂C/∂w^l_jk = a^(l-1)_k δ^l_j          backward::weight_gradient: dW = xᵀ·dz
//! ```
//!
//! # How we know the gradients are right
//!
//! The tests (`tests/teach.rs`) check every function against numbers computed
//! by hand, and every gradient against a central finite difference,
//! `∂L/∂θ ≈ (L(θ + h) - L(θ - h)) / 2h`, in `f64`: per activation, for the loss,
//! and for every weight and bias of the tiny network; [`gradcheck`] does the
//! same for any network, and `simdnet explain --check` prints it.

// Index loops are the point here: they show which element meets which.
#![allow(clippy::needless_range_loop)]

pub mod backward;
pub mod conv;
pub mod conv_network;
pub mod fit;
pub mod forward;
pub mod gradcheck;
pub mod loss;
pub mod network;
pub mod optimizers;
pub mod pitfalls;
pub mod pool;
pub mod summary;

pub use network::{tiny_batch, train_step, DenseF64, NetworkF64, NetworkOptimizerF64, StepTrace};
pub use optimizers::{OptimizerF64, OptimizerKind};
