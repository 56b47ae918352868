//! # simdnet
//!
//! Train neural networks on the CPU from first principles: hand-written
//! row-major matrices, a BLIS-style SIMD GEMM, fused kernels, rayon
//! parallelism, and a teaching module that shows every number of a training
//! step.
//!
//! ## Quick start
//!
//! A [`Dataset`](data::Dataset) holds examples and their class labels, as
//! `u8` pixels ([`data::Mnist::load`] reads MNIST's files; the network scales
//! pixels by `1/255`) or as `f32` values used as they are
//! ([`Dataset::from_values`](data::Dataset::from_values): any width, up to 256
//! classes). [`nn::Network::mlp`] makes a network, [`nn::Fit`] trains it with
//! Keras-like defaults, and the network predicts, evaluates, saves and loads:
//!
//! ```
//! use simdnet::data::Dataset;
//! use simdnet::nn::{Activation, Fit, Network, Optimizer};
//!
//! // A table of 300 points in the plane: class 0 inside the unit circle, 1 outside.
//! let (mut values, mut labels) = (Vec::new(), Vec::new());
//! for i in 0..300 {
//!     let (x, y) = ((i % 20) as f32 / 5.0 - 2.0, (i / 20) as f32 / 3.75 - 2.0);
//!     values.extend([x, y]);
//!     labels.push((x * x + y * y > 1.0) as u8);
//! }
//! let data = Dataset::from_values(values, labels, 2)?;
//! let (train, test) = data.split_tail(0.2)?;
//!
//! let mut net = Network::mlp(2, &[32, 32], 2, Activation::Relu, 1)?;
//! let history = Fit::new(&mut net, &train) // 4 epochs, batch 128, RMSprop(0.001) unless set
//!     .epochs(40)
//!     .batch(16)
//!     .optimizer(Optimizer::adam(0.01))
//!     .validation(&test)
//!     .run()?;
//! println!("last epoch: {:?}", history.last());
//! println!("test accuracy {:.3}", net.evaluate(&test)?.accuracy);
//! let probs = net.predict(&test)?; // (examples, classes), rows sum to 1
//! assert_eq!(probs.shape(), (test.len(), 2));
//!
//! let path = std::env::temp_dir().join(format!("quick-start-{}.simdnet", std::process::id()));
//! net.save(&path)?; // atomic: a temporary file, then a rename
//! assert_eq!(Network::load(&path)?, net);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), simdnet::Error>(())
//! ```
//!
//! Every fallible call returns [`Error`], whose message names the problem and
//! the fix; a seed fixes the weights bit for bit, whatever the thread count.
//!
//! Underneath, every layer is one call of the SIMD GEMM with its bias and
//! activation fused in ([`gemm::gemm`]); it also takes `u8` pixels as `A`
//! and scales them while packing:
//!
//! ```
//! use simdnet::activation::Activation;
//! use simdnet::gemm::{gemm, Epilogue, Parallelism};
//! use simdnet::matrix::{MatRef, Matrix};
//!
//! let x = [0u8, 255, 51, 102]; // (2, 2) pixels
//! let w = Matrix::from_slice(2, 3, &[1., -1., 2., 0.5, 0.5, -1.]); // (2, 3) weights
//! let bias = [0.0, 0.25, 0.0];
//! let mut z = Matrix::zeros(2, 3);
//! gemm(
//!     1.0 / 255.0, // alpha: the pixel scale, applied while packing A
//!     MatRef::from_slice(&x, 2, 2),
//!     w.view(),
//!     0.0, // beta: C is not read
//!     z.view_mut(),
//!     Epilogue::BiasActivation { bias: &bias, act: Activation::Relu },
//!     Parallelism::Sequential,
//! );
//! // Row 0 is (0, 1): relu((0.5, 0.5 + 0.25, -1)) = (0.5, 0.75, 0).
//! assert_eq!(z.row(0), &[0.5, 0.75, 0.0]);
//! ```
//!
//! More: the [README] (the workshop on MNIST, the command line, performance),
//! the [tutorial] (every step of the workshop with its output), and the
//! examples: [`examples/tabular.rs`] (a table of numbers the example makes
//! itself) and [`examples/workshop.rs`] (MNIST, the README's library
//! section), run with `cargo run --release --example tabular`. The `simdnet`
//! binary (`simdnet --help`) runs the same engine from the command line.
//!
//! [README]: https://docs.rs/crate/simdnet/latest/source/README.md
//! [tutorial]: https://docs.rs/crate/simdnet/latest/source/docs/TUTORIAL.md
//! [`examples/tabular.rs`]: https://docs.rs/crate/simdnet/latest/source/examples/tabular.rs
//! [`examples/workshop.rs`]: https://docs.rs/crate/simdnet/latest/source/examples/workshop.rs
//!
//! ## Conventions
//! - Matrices are row-major `f32`; a mini-batch is a `(batch, features)`
//!   matrix with one example per row. Shape letters: `m, n, k` for GEMM
//!   (`C: (m, n) = A: (m, k) · B: (k, n)`).
//! - A dense layer computes `z = x·W + b` with `W: (inputs, outputs)`, then
//!   `a = f(z)`.
//! - Gradients are named with a `d` prefix: `dw`, `db`, `dz`, `dx`.
//!
//! ## Reading order
//! To learn: [`teach`] (one training step, scalar, annotated), then the
//! engine's same steps: [`activation`], [`nn::dense`], [`nn::layer`],
//! [`nn::loss`], [`nn::network`], [`nn::optim`] and [`nn::train`].
//! To tune: [`matrix`], [`simd`], [`gemm`] (the five BLIS loops, packing,
//! micro-kernels), [`kernels`] (fused element-wise work), then [`trace`].
//!
//! ## Semver
//! The modules `cli` (the binary's commands) and `profile` (what `simdnet
//! bench`, `tune` and `train --profile` measure) are public only so that the
//! binary, the integration tests and the benchmarks can reach them: they are
//! hidden from these docs and not covered by semver; they may change in any
//! release. Public enums and option structs that will grow are
//! `#[non_exhaustive]`: build a [`nn::TrainConfig`] from its `Default` with
//! its `with_*` setters, and match enums with a `_` arm.
//!
//! ## Floors
//! Each module uses only modules on its own floor or below
//! (`tests/architecture.rs` checks it):
//! 1. [`matrix`], [`error`], [`simd`], [`activation`], [`trace`],
//!    [`interrupt`], [`safe_file`];
//! 2. [`gemm`], [`kernels`];
//! 3. [`data`], [`nn`], [`teach`];
//! 4. `profile`, [`plot`];
//! 5. `cli`.

#![warn(missing_docs)]

// Floor 1: matrices, errors, the SIMD vector type, activations, timer hooks,
// signals, safe saving and huge pages.
pub mod activation;
pub mod error;
pub mod geometry;
pub mod huge_pages;
pub mod interrupt;
pub mod matrix;
pub mod safe_file;
pub mod safe_read;
pub mod simd;
pub mod trace;
// Floor 2: the speed.
pub mod gemm;
pub mod kernels;
// Floor 3: data, the engine's network, the lesson.
pub mod data;
pub mod nn;
pub mod teach;
// Floor 4: tools and pictures.
pub mod plot;
// Not covered by semver (see "Semver" above), hence hidden.
#[doc(hidden)]
pub mod profile;
// Floor 5: the command line.
// Not covered by semver (see "Semver" above), hence hidden.
#[doc(hidden)]
pub mod cli;

pub use error::{Error, Result};
pub use matrix::{MatMut, MatRef, Matrix};
