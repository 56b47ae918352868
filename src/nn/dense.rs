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
use crate::gemm::{gemm, transpose_into, AOperand, Epilogue, Parallelism};
use crate::kernels::{
    activation_backward, activation_backward_in_halves, activation_dropout_backward, DropoutMask,
};
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
    dense_backward_dz(dz.rb_mut(), db, da, a, layer, dropout, par);
    // forward: z = x·W + b   ->  dW = xᵀ·dz
    gemm(x_scale, x.t(), dz.as_ref(), 0.0, dw, Epilogue::None, par);
    //                        ->  dx = dz·Wᵀ
    if let Some(dx) = dx {
        if transposed_input_gradient_pays(&dx, layer) {
            // (as dxᵀ = W·dzᵀ, then transposed: see the function; the same sums, the same bits)
            DXT.with(|cell| {
                let mut buf = cell.borrow_mut();
                let (rows, inputs) = (dx.rows(), dx.cols());
                if buf.len() < rows * inputs {
                    buf.resize(rows * inputs, 0.0);
                }
                let mut dxt = MatMut::from_slice(&mut buf[..rows * inputs], inputs, rows);
                gemm(
                    1.0,
                    layer.w.view(),
                    dz.as_ref().t(),
                    0.0,
                    dxt.rb_mut(),
                    Epilogue::None,
                    par,
                );
                transpose_into(dx, dxt.as_ref());
            });
        } else {
            gemm(1.0, dz.as_ref(), layer.w.view().t(), 0.0, dx, Epilogue::None, par);
        }
    }
}

/// The element-wise half of [`dense_backward`]: `dz = da [⊙ m] ⊙ f'(a)`
/// and `db = Σ_rows dz`, without the products. For a first layer whose
/// `dW` is computed apart, in slices of its inputs (`crate::nn::split`).
/// With [`Parallelism::Rayon`] (a large network's one shard), in two
/// halves of rows at once ([`activation_backward_in_halves`]; the same
/// bits).
///
/// Shapes: `dz, da, a: (rows, outputs)`, `db: (outputs)`.
pub fn dense_backward_dz(
    dz: MatMut,
    db: &mut [f32],
    da: MatRef,
    a: MatRef,
    layer: &Dense,
    dropout: Option<&DropoutMask>,
    par: Parallelism,
) {
    // forward: a = f(z) [⊙ m] ->  dz = da [⊙ m] ⊙ f'(a),  and db = Σ_rows dz in the same pass
    match (dropout, par) {
        (_, Parallelism::Rayon) => activation_backward_in_halves(dz, da, a, layer.act, dropout, db),
        (None, Parallelism::Sequential) => activation_backward(dz, da, a, layer.act, db),
        (Some(mask), Parallelism::Sequential) => activation_dropout_backward(dz, da, a, layer.act, mask, db),
    }
}

thread_local! {
    /// `dxᵀ` for [`transposed_input_gradient_pays`]: grows to the largest
    /// layer a thread meets, then is reused (no allocation per step).
    static DXT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `dx = dz·Wᵀ` is computed as `dxᵀ = W·dzᵀ` and transposed: for a
/// wide input feeding a narrower layer (at least 8 times as many inputs as
/// outputs, at least as many outputs as rows: Keras' flattened 9216 ->
/// 128). `dz·Wᵀ` would pack the transpose of all of `W` at every call;
/// `W·dzᵀ` reads `W` where it is and packs only `dzᵀ`, and the transpose of
/// `dx` is half the numbers of `W`. Each element is the same sum over the
/// same `k` (the outputs) in the same order: the same bits.
/// Measured (Keras' dense 9216 -> 128, one 64-image shard, 1 thread, Zen 5): the
/// product 1.37 -> 0.68 ms, the whole pass 28.2 -> 27.4 ms (medians of 3).
fn transposed_input_gradient_pays(dx: &MatMut, layer: &Dense) -> bool {
    let (rows, inputs, outputs) = (dx.rows(), layer.w.rows(), layer.w.cols());
    inputs >= 8 * outputs && outputs >= rows && rows > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `dx` of a wide layer (computed as `dxᵀ = W·dzᵀ`, then transposed) has
    /// the bits of `dz·Wᵀ`; a layer where it does not pay takes `dz·Wᵀ` itself.
    #[test]
    fn wide_input_gradient_has_the_bits_of_dz_times_w_transposed() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (rows, inputs, outputs, transposed) in
            [(12, 200, 16, true), (5, 1000, 100, true), (20, 200, 16, false)]
        {
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
            let layer = Dense {
                w: Matrix::from_slice(inputs, outputs, &random(inputs * outputs)),
                b: random(outputs),
                act: Activation::Relu,
            };
            let (x, a, da) = (
                random(rows * inputs),
                random(rows * outputs),
                random(rows * outputs),
            );
            let (mut dx, mut dw, mut db, mut dz) = (
                vec![f32::NAN; rows * inputs],
                vec![0.0; inputs * outputs],
                vec![0.0; outputs],
                vec![0.0; rows * outputs],
            );
            let mut dx_view = MatMut::from_slice(&mut dx, rows, inputs);
            assert_eq!(transposed_input_gradient_pays(&dx_view, &layer), transposed);
            dense_backward(
                Some(dx_view.rb_mut()),
                MatMut::from_slice(&mut dw, inputs, outputs),
                &mut db,
                MatMut::from_slice(&mut dz, rows, outputs),
                MatRef::from_slice(&da, rows, outputs),
                MatRef::from_slice(&a, rows, outputs),
                MatRef::from_slice(&x, rows, inputs),
                1.0,
                &layer,
                None,
                Parallelism::Sequential,
            );
            let mut want = vec![f32::NAN; rows * inputs];
            let dz_view = MatRef::from_slice(&dz, rows, outputs);
            let want_view = MatMut::from_slice(&mut want, rows, inputs);
            gemm(
                1.0,
                dz_view,
                layer.w.view().t(),
                0.0,
                want_view,
                Epilogue::None,
                Parallelism::Sequential,
            );
            let bad = crate::matrix::first_bit_difference(&dx, &want);
            assert!(
                bad.is_none(),
                "{rows}x{inputs}->{outputs}: dx element {bad:?} differs"
            );
        }
    }
}
