//! A dense (fully connected) layer: `z = x·W + b`, `a = f(z)`.
//!
//! Shapes, for a mini-batch of `rows` examples:
//! `x: (rows, inputs)`, `W: (inputs, outputs)`, `b: (outputs)`, `z, a: (rows, outputs)`.
//!
//! The forward pass keeps `a` (the backward pass needs it for `f'`, and the
//! next layer's `dW` needs it as its input). The backward pass, beside the
//! forward line it differentiates:
//!
//! ```text
//! forward:  z = x·W + b          backward: dW = xᵀ·dz,  db = Σ_rows dz,  dx = dz·Wᵀ
//! forward:  a = f(z)             backward: dz = da ⊙ f'(z)   (f' from the stored a)
//! ```
//!
//! These functions run on the fast engine ([`crate::gemm`], [`crate::kernels`]);
//! [`crate::teach`] has the same maths as plain loops.

use crate::activation::Activation;
use crate::gemm::{gemm, Epilogue, Parallelism};
use crate::matrix::{Element, MatMut, MatRef, Matrix};

/// One dense layer's parameters and activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Weights, `(inputs, outputs)`: column `j` holds the weights into neuron `j`.
    pub w: Matrix,
    /// Biases, `(outputs)`.
    pub b: Vec<f32>,
    /// The activation applied to `z` (the output layer uses `Identity`: softmax is in the loss).
    pub act: Activation,
}

impl Dense {
    pub fn inputs(&self) -> usize {
        self.w.rows()
    }
    pub fn outputs(&self) -> usize {
        self.w.cols()
    }
}

/// Forward: `a = f(x_scale · x·W + b)`, in one fused GEMM.
///
/// `x_scale` lets the first layer read raw `u8` pixels with `1/255` applied as
/// they are packed. Shapes: `a: (rows, outputs)`, `x: (rows, inputs)`.
pub fn dense_forward<T: Element>(a: MatMut, x: MatRef<T>, x_scale: f32, layer: &Dense, par: Parallelism) {
    let epilogue = Epilogue::BiasActivation {
        bias: &layer.b,
        act: layer.act,
    };
    gemm(x_scale, x, layer.w.view(), 0.0, a, epilogue, par);
}

/// Backward through `z = x·W + b`, the weights: `dW = x_scale · xᵀ·dz`.
///
/// The bias gradient `db = Σ_rows dz` is computed where `dz` is made
/// (fused into [`crate::kernels::activation_backward`]).
/// Shapes: `dw: (inputs, outputs)`, `dz: (rows, outputs)`, `x: (rows, inputs)`.
pub fn dense_backward_weights<T: Element>(
    dw: MatMut,
    dz: MatRef,
    x: MatRef<T>,
    x_scale: f32,
    par: Parallelism,
) {
    gemm(x_scale, x.t(), dz, 0.0, dw, Epilogue::None, par);
}

/// Backward through `z = x·W + b`, the input: `dx = dz·Wᵀ` (the error sent to the layer below).
///
/// Shapes: `dx: (rows, inputs)`, `dz: (rows, outputs)`, `w: (inputs, outputs)`.
pub fn dense_backward_input(dx: MatMut, dz: MatRef, w: MatRef, par: Parallelism) {
    gemm(1.0, dz, w.t(), 0.0, dx, Epilogue::None, par);
}
