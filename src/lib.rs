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
//! To learn: [`teach`] (one training step, scalar, annotated), then
//! [`nn::activation`], [`nn::loss`], [`nn::dense`], [`nn::optim`],
//! [`nn::network`] and [`nn::train`].
//! To tune: [`matrix`], [`gemm`] (the five BLIS loops, packing, micro-kernels),
//! [`kernels`] (fused element-wise work), then [`profile`].

// Floor 1: matrices, errors, the SIMD vector type, activations, timer hooks.
pub mod activation;
pub mod error;
pub mod matrix;
pub mod simd;
pub mod trace;
// Floor 2: the speed.
pub mod gemm;
pub mod kernels;
// Floor 3: data, the engine's network, the lesson.
pub mod data;
pub mod nn;
pub mod teach;
// Floor 4: tools.
pub mod profile;
// Floor 5: the command line.
pub mod cli;

pub use error::{Error, Result};
pub use matrix::{MatMut, MatRef, Matrix};
