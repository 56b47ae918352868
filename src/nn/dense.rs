//! A dense (fully connected) layer: `z = x·W + b`, `a = f(z)`.
//!
//! Shapes, for a mini-batch of `rows` examples:
//! `x: (rows, inputs)`, `W: (inputs, outputs)`, `b: (outputs)`, `z, a: (rows, outputs)`.
//!
//! The forward pass keeps `a` (the backward pass needs it for `f'`, and the
//! next layer's `dW` needs it as its input); `z` is never stored: the GEMM
//! adds the bias and applies `f` while each tile of `z` is still in registers.
//! The backward pass, beside the forward line it differentiates:
//!
//! ```text
//! forward:  z = x·W + b          backward: dW = xᵀ·dz,  db = Σ_rows dz,  dx = dz·Wᵀ
//! forward:  a = f(z)             backward: dz = da ⊙ f'(z)   (f' from the stored a)
//! ```
//!
//! In training, a layer may apply inverted dropout to its output: `a = f(z) ⊙ m`
//! with `m = 1/(1-rate)` for kept units and 0 for dropped ones, in the same
//! GEMM epilogue; backward `dz = da ⊙ m ⊙ f'(z)`, the mask regenerated from
//! its hash ([`DropoutMask`]).
//!
//! The same two functions, in plain `f64` loops with every intermediate kept,
//! are [`crate::teach::forward::dense_forward`] and
//! [`crate::teach::backward::dense_backward`]: same names, same argument
//! order (outputs first).

use crate::activation::Activation;
use crate::gemm::{gemm, AOperand, Epilogue, Parallelism};
use crate::kernels::{activation_backward, activation_dropout_backward, DropoutMask};
use crate::matrix::{MatMut, MatRef, Matrix};

/// One dense layer's parameters and activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Weights, `(inputs, outputs)`: column `j` holds the weights into neuron `j`.
    pub w: Matrix,
    /// Biases, `(outputs)`.
    pub b: Vec<f32>,
    /// The activation applied to `z` (the output layer uses `Identity`: its
    /// `a` are the logits, and softmax is part of the loss).
    pub act: Activation,
}

impl Dense {
    /// Values per example this layer reads.
    pub fn inputs(&self) -> usize {
        self.w.rows()
    }
    /// Neurons: values per example this layer writes.
    pub fn outputs(&self) -> usize {
        self.w.cols()
    }
}

/// Forward: `z = x_scale·x·W + b`, `a = f(z)` (times the dropout mask, if
/// given), in one fused GEMM.
///
/// `x_scale` lets the first layer read raw `u8` pixels with `1/255` applied as
/// they are packed. Shapes: `a: (rows, outputs)`, `x: (rows, inputs)`.
/// `x` is any GEMM operand: a view, or a mini-batch gathered by row index
/// straight from the data set ([`crate::gemm::Gathered`]).
pub fn dense_forward<X: AOperand>(
    a: MatMut,
    x: X,
    x_scale: f32,
    layer: &Dense,
    dropout: Option<&DropoutMask>,
    par: Parallelism,
) {
    // forward: z = x·W + b, a = f(z) [⊙ m]   (all applied while z is in registers)
    let (bias, act) = (&layer.b[..], layer.act);
    let epilogue = match dropout {
        None => Epilogue::BiasActivation { bias, act },
        Some(&mask) => Epilogue::BiasActivationDropout { bias, act, mask },
    };
    gemm(x_scale, x, layer.w.view(), 0.0, a, epilogue, par);
}

/// Backward: from `da = ∂L/∂a`, the gradients `dz`, `dW`, `db` and the error
/// `dx = ∂L/∂x` sent to the layer below (`None` for the first layer: the
/// inputs are data, they need no gradient). `dropout`: the mask the forward pass applied.
///
/// Shapes: `dx: (rows, inputs)`, `dw: (inputs, outputs)`, `db: (outputs)`,
/// `dz, da, a: (rows, outputs)`, `x: (rows, inputs)`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<X: AOperand>(
    dx: Option<MatMut>,
    dw: MatMut,
    db: &mut [f32],
    mut dz: MatMut,
    da: MatRef,
    a: MatRef,
    x: X,
    x_scale: f32,
    layer: &Dense,
    dropout: Option<&DropoutMask>,
    par: Parallelism,
) {
    // forward: a = f(z) [⊙ m] ->  dz = da [⊙ m] ⊙ f'(a),  and db = Σ_rows dz in the same pass
    match dropout {
        None => activation_backward(dz.rb_mut(), da, a, layer.act, db),
        Some(mask) => activation_dropout_backward(dz.rb_mut(), da, a, layer.act, mask, db),
    }
    // forward: z = x·W + b   ->  dW = xᵀ·dz
    gemm(x_scale, x.t(), dz.as_ref(), 0.0, dw, Epilogue::None, par);
    //                        ->  dx = dz·Wᵀ
    if let Some(dx) = dx {
        gemm(1.0, dz.as_ref(), layer.w.view().t(), 0.0, dx, Epilogue::None, par);
    }
}
