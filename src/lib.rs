//! # simdnet
//!
//! Train neural networks on the CPU from first principles: hand-written
//! row-major matrices, a BLIS-style SIMD GEMM, fused kernels, rayon
//! parallelism, and a teaching module that shows every number of a training
//! step.
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
//! micro-kernels), [`kernels`] (fused element-wise work), then [`trace`] and
//! [`profile`].
//!
//! ## Floors
//! Each module uses only modules on its own floor or below
//! (`tests/architecture.rs` checks it):
//! 1. [`matrix`], [`error`], [`simd`], [`activation`], [`trace`],
//!    [`interrupt`], [`safe_file`];
//! 2. [`gemm`], [`kernels`];
//! 3. [`data`], [`nn`], [`teach`];
//! 4. [`profile`], [`plot`];
//! 5. [`cli`].

// Floor 1: matrices, errors, the SIMD vector type, activations, timer hooks,
// signals and safe saving.
pub mod activation;
pub mod error;
pub mod interrupt;
pub mod matrix;
pub mod safe_file;
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
pub mod profile;
// Floor 5: the command line.
pub mod cli;

pub use error::{Error, Result};
pub use matrix::{MatMut, MatRef, Matrix};
