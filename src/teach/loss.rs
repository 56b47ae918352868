//! Lesson 2: measuring the error — categorical cross-entropy, and why its
//! gradient through softmax is simply `p - y`.
//!
//! The network's output for one example is a row of probabilities `p`
//! (softmax of the logits `z`). The label is a class number, written as a
//! one-hot row `y` (all zeros, a 1 at the label). The loss of one example is
//!
//! ```text
//! L_r = - Σ_k y_k · ln(p_k)  =  - ln(p_label)
//! ```
//!
//! (only the true class counts: the loss is small when the network gives the
//! true class a probability near 1, and grows without bound as it nears 0).
//! A mini-batch's loss is the **mean** over its `rows` examples:
//! `L = (1/rows) · Σ_r L_r`. Every gradient in this module is of that mean.
//!
//! The network's last layer has the identity as its activation: its output
//! `a` are the logits `z`, and softmax is the first step of the loss. So the
//! loss gives `da = ∂L/∂a` of the last layer, and the backward pass starts there
//! ([`softmax_cross_entropy`]), exactly as in the engine (`nn::loss`).
//!
//! Shapes: `p`, `y`, `z`, `da`: (rows, classes), row-major `[r * classes + k]`.

use crate::matrix::argmax;

/// One-hot rows for a batch of labels: `y[r, k] = 1` if `k == labels[r]`, else 0.
///
/// - returns `y`: (rows, classes)
pub fn one_hot(labels: &[usize], classes: usize) -> Vec<f64> {
    let mut y = vec![0.0; labels.len() * classes];
    for (r, &label) in labels.iter().enumerate() {
        assert!(label < classes, "label {label} is not < {classes}");
        y[r * classes + label] = 1.0;
    }
    y
}

/// Softmax of one row: the logits `z` of one example become probabilities.
///
/// ```text
/// p_k = e^(z_k) / Σ_c e^(z_c)
/// ```
///
/// Every `p_k` is in (0, 1) and the row adds up to 1. Subtracting the row's
/// largest logit `m` first changes nothing mathematically
/// (`e^(z_k - m) / Σ e^(z_c - m)`: the `e^-m` cancels) but keeps `e^z` from
/// overflowing to infinity when a logit is large (e^710 does not fit in an f64).
///
/// - `p`, `e`: (classes), written: the probabilities and the exponentials `e^(z_k - m)`
/// - `z`: (classes) — returns `(m, Σ)`: the largest logit and the sum of the exponentials
pub fn softmax_row(p: &mut [f64], e: &mut [f64], z: &[f64]) -> (f64, f64) {
    let classes = z.len();
    assert!(
        p.len() == classes && e.len() == classes,
        "p, e and z must be (classes)"
    );
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for k in 0..classes {
        e[k] = (z[k] - m).exp();
        sum += e[k];
    }
    for k in 0..classes {
        p[k] = e[k] / sum;
    }
    (m, sum)
}

/// Softmax of every row ([`softmax_row`]).
///
/// - `p`: (rows, classes), written; `z`: (rows, classes)
pub fn softmax(p: &mut [f64], z: &[f64], rows: usize) {
    assert!(
        rows > 0 && z.len().is_multiple_of(rows),
        "z must be (rows, classes)"
    );
    assert_eq!(p.len(), z.len(), "p and z must have the same shape");
    let classes = z.len() / rows;
    let mut e = vec![0.0; classes]; // scratch: e^(z - m) of one row
    for r in 0..rows {
        let row = r * classes..(r + 1) * classes;
        softmax_row(&mut p[row.clone()], &mut e, &z[row]);
    }
}

/// The categorical cross-entropy of a batch, averaged over its rows:
///
/// ```text
/// L = (1/rows) · Σ_r Σ_k  -y[r,k] · ln(p[r,k])
/// ```
///
/// - `p`, `y`: (rows, classes)
pub fn cross_entropy(p: &[f64], y: &[f64], rows: usize) -> f64 {
    assert_eq!(p.len(), y.len(), "p and y must have the same shape");
    let mut total = 0.0;
    for (pk, yk) in p.iter().zip(y) {
        if *yk != 0.0 {
            // (skipping y_k = 0 avoids 0 · ln(0) = NaN when a probability underflows to 0)
            total += -yk * pk.ln();
        }
    }
    total / rows as f64
}

/// The Jacobian of softmax for one row: `J[k, c] = ∂p_k / ∂z_c`.
///
/// ```text
/// ∂p_k/∂z_c = p_k · (1 - p_k)   if k == c    (raising z_k raises p_k)
///           = -p_k · p_c        if k != c    (... and lowers every other p_c)
///           = p_k · (δ_kc - p_c)
/// ```
///
/// - `jac`: (classes, classes), written, row-major `jac[k * classes + c]`; `p_row`: (classes)
pub fn softmax_jacobian(jac: &mut [f64], p_row: &[f64]) {
    let n = p_row.len();
    assert_eq!(jac.len(), n * n, "jac must be (classes, classes)");
    for k in 0..n {
        for c in 0..n {
            let delta = if k == c { 1.0 } else { 0.0 };
            jac[k * n + c] = p_row[k] * (delta - p_row[c]);
        }
    }
}

/// The gradient `da = ∂L/∂z` of the mean loss with respect to the logits, the
/// LONG way: by the chain rule through the softmax Jacobian. (The logits are
/// the output `a` of the last layer, whose activation is the identity: `a = z`.)
///
/// ```text
/// ∂L/∂p[r,k] = -(1/rows) · y[r,k] / p[r,k]                 (derivative of -ln, and of the mean)
/// ∂L/∂z[r,c] = Σ_k ∂L/∂p[r,k] · J_r[k, c]                  (every p_k depends on every z_c)
/// ```
///
/// - `da`: (rows, classes), written; `z`, `y`: (rows, classes)
pub fn output_error_long_way(da: &mut [f64], z: &[f64], y: &[f64], rows: usize) {
    let classes = z.len() / rows;
    let mut p = vec![0.0; z.len()]; // (rows, classes)
    softmax(&mut p, z, rows);
    let mut jac = vec![0.0; classes * classes]; // (classes, classes)
    for r in 0..rows {
        let pr = &p[r * classes..(r + 1) * classes];
        softmax_jacobian(&mut jac, pr);
        for c in 0..classes {
            da[r * classes + c] = 0.0;
        }
        for k in 0..classes {
            let dp = -y[r * classes + k] / pr[k] / rows as f64; // ∂L/∂p[r,k]
            for c in 0..classes {
                da[r * classes + c] += dp * jac[k * classes + c];
            }
        }
    }
}

/// The gradient `da = ∂L/∂z` of the mean loss with respect to the logits, the SHORT way:
///
/// ```text
/// da[r,c] = (p[r,c] - y[r,c]) / rows
/// ```
///
/// Why: put the two factors of the long way together. With `Σ_k y_k = 1`,
/// `Σ_k (-y_k/p_k) · p_k (δ_kc - p_c) = -Σ_k y_k δ_kc + p_c Σ_k y_k = -y_c + p_c`.
/// The `1/p_k` of the logarithm cancels the `p_k` of softmax: no division, no
/// Jacobian, and no trouble when a probability is tiny. This "output error"
/// is where the backward pass starts.
///
/// - `da`: (rows, classes), written; `p`, `y`: (rows, classes)
pub fn output_error(da: &mut [f64], p: &[f64], y: &[f64], rows: usize) {
    assert_eq!(p.len(), y.len(), "p and y must have the same shape");
    assert_eq!(da.len(), p.len(), "da and p must have the same shape");
    for k in 0..p.len() {
        da[k] = (p[k] - y[k]) / rows as f64;
    }
}

/// Everything the loss computes for a batch, kept for `simdnet explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCrossEntropy {
    /// The largest logit of each row, (rows): subtracted before `e^`.
    pub m: Vec<f64>,
    /// The exponentials `e^(z[r,k] - m[r])`, (rows, classes).
    pub e: Vec<f64>,
    /// Their sum per row, `Σ_c e^(z[r,c] - m[r])`, (rows).
    pub sum: Vec<f64>,
    /// The probabilities `p = softmax(z)`, (rows, classes).
    pub p: Vec<f64>,
    /// The one-hot labels `y`, (rows, classes).
    pub y: Vec<f64>,
    /// The loss of each example, `-ln p[r, label_r]`, (rows).
    pub losses: Vec<f64>,
    /// The mean loss over the batch.
    pub loss: f64,
}

/// The loss of a batch, and the gradient where the backward pass starts:
///
/// ```text
/// p   = softmax(logits)                 row by row
/// L_r = -ln p[r, label_r]               the cross-entropy of example r
/// L   = (1/rows) · Σ_r L_r              the mean
/// da  = ∂L/∂logits = (p - y) / rows     (see output_error: no Jacobian needed)
/// ```
///
/// The engine's `nn::loss::softmax_cross_entropy` does the same, fused, in `f32`
/// (it returns the summed loss and takes `1/rows` as a scale).
///
/// - `da`: (rows, classes), written: `∂L/∂a` of the last layer, whose output `a` are the logits
/// - `logits`: (rows, classes), `labels`: (rows)
pub fn softmax_cross_entropy(
    da: &mut [f64],
    logits: &[f64],
    labels: &[usize],
    rows: usize,
) -> SoftmaxCrossEntropy {
    assert_eq!(labels.len(), rows, "one label per row");
    let classes = logits.len() / rows;
    let y = one_hot(labels, classes); // (rows, classes)
    let mut out = SoftmaxCrossEntropy {
        m: vec![0.0; rows],
        e: vec![0.0; rows * classes],
        sum: vec![0.0; rows],
        p: vec![0.0; rows * classes],
        y,
        losses: vec![0.0; rows],
        loss: 0.0,
    };
    for r in 0..rows {
        let row = r * classes..(r + 1) * classes;
        // p = softmax(z)
        let (m, sum) = softmax_row(&mut out.p[row.clone()], &mut out.e[row.clone()], &logits[row]);
        out.m[r] = m;
        out.sum[r] = sum;
        // L_r = -ln p[r, label]
        out.losses[r] = -out.p[r * classes + labels[r]].ln();
    }
    // L = mean of L_r
    out.loss = out.losses.iter().sum::<f64>() / rows as f64;
    // da = (p - y) / rows
    output_error(da, &out.p, &out.y, rows);
    out
}

/// The predicted class of each row: the index of its largest value
/// ([`crate::matrix::argmax`], the one the engine and the CLI use).
///
/// - `p`: (rows, classes) — returns (rows)
pub fn argmax_rows(p: &[f64], rows: usize) -> Vec<usize> {
    let classes = p.len() / rows;
    (0..rows)
        .map(|r| argmax(&p[r * classes..(r + 1) * classes]))
        .collect()
}

/// Accuracy: the fraction of rows whose predicted class is the label.
/// (Not differentiable — a small change of a weight rarely changes it — which
/// is why we train on the cross-entropy and only *report* the accuracy.)
///
/// - `p`: (rows, classes), `labels`: (rows)
pub fn accuracy(p: &[f64], labels: &[usize]) -> f64 {
    let rows = labels.len();
    let correct = argmax_rows(p, rows)
        .iter()
        .zip(labels)
        .filter(|(pred, label)| pred == label)
        .count();
    correct as f64 / rows as f64
}

/// Why cross-entropy, not the squared error: the gradient at the logits of ONE
/// example under both losses, `(cross_entropy, squared_error)`, each (classes).
///
/// ```text
/// cross-entropy  L = -ln p_label          dz_c = p_c - y_c
/// squared error  L = ½ Σ_k (p_k - y_k)²   dz_c = Σ_k (p_k - y_k) · p_k (δ_kc - p_c)
/// ```
///
/// The squared error's gradient goes through the softmax Jacobian
/// ([`softmax_jacobian`]), whose entries are all near 0 when the output is
/// saturated (one `p` near 1, the others near 0). So when the network is
/// confidently WRONG, the squared error barely moves it: the learning slows
/// down exactly when it has most to learn. Cross-entropy's `1/p` cancels the
/// Jacobian (see [`output_error`]): its gradient is `p - y`, of order 1 when
/// the answer is wrong. (Nielsen's chapter 3 shows the same for a sigmoid output.)
///
/// - `z`: (classes), the logits of one example; `label`: its class
pub fn saturated_gradients(z: &[f64], label: usize) -> (Vec<f64>, Vec<f64>) {
    let classes = z.len();
    let (mut p, mut e) = (vec![0.0; classes], vec![0.0; classes]);
    softmax_row(&mut p, &mut e, z);
    let y = one_hot(&[label], classes);
    let mut ce = vec![0.0; classes];
    output_error(&mut ce, &p, &y, 1);
    let mut jac = vec![0.0; classes * classes];
    softmax_jacobian(&mut jac, &p);
    let mut se = vec![0.0; classes];
    for c in 0..classes {
        for k in 0..classes {
            se[c] += (p[k] - y[k]) * jac[k * classes + c];
        }
    }
    (ce, se)
}
