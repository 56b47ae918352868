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
//! Shapes: `p`, `y`, `z`, `dz`: (rows, classes), row-major `[r * classes + k]`.

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
/// - `p_row`: (classes) — returns `J`: (classes, classes), row-major `J[k * classes + c]`
pub fn softmax_jacobian(p_row: &[f64]) -> Vec<f64> {
    let n = p_row.len();
    let mut jac = vec![0.0; n * n];
    for k in 0..n {
        for c in 0..n {
            let delta = if k == c { 1.0 } else { 0.0 };
            jac[k * n + c] = p_row[k] * (delta - p_row[c]);
        }
    }
    jac
}

/// The gradient `dz = ∂L/∂z` of the mean loss, the LONG way: by the chain rule
/// through the softmax Jacobian.
///
/// ```text
/// ∂L/∂p[r,k] = -(1/rows) · y[r,k] / p[r,k]                 (derivative of -ln, and of the mean)
/// ∂L/∂z[r,c] = Σ_k ∂L/∂p[r,k] · J_r[k, c]                  (every p_k depends on every z_c)
/// ```
///
/// - `z`, `y`: (rows, classes) — returns `dz`: (rows, classes)
pub fn output_error_long_way(z: &[f64], y: &[f64], rows: usize) -> Vec<f64> {
    let classes = z.len() / rows;
    let p = super::forward::softmax(z, rows);
    let mut dz = vec![0.0; z.len()];
    for r in 0..rows {
        let pr = &p[r * classes..(r + 1) * classes];
        let jac = softmax_jacobian(pr); // (classes, classes)
        for k in 0..classes {
            let dp = -y[r * classes + k] / pr[k] / rows as f64; // ∂L/∂p[r,k]
            for c in 0..classes {
                dz[r * classes + c] += dp * jac[k * classes + c];
            }
        }
    }
    dz
}

/// The gradient `dz = ∂L/∂z` of the mean loss, the SHORT way:
///
/// ```text
/// dz[r,c] = (p[r,c] - y[r,c]) / rows
/// ```
///
/// Why: put the two factors of the long way together. With `Σ_k y_k = 1`,
/// `Σ_k (-y_k/p_k) · p_k (δ_kc - p_c) = -Σ_k y_k δ_kc + p_c Σ_k y_k = -y_c + p_c`.
/// The `1/p_k` of the logarithm cancels the `p_k` of softmax: no division, no
/// Jacobian, and no trouble when a probability is tiny. This "output error"
/// is where the backward pass starts.
///
/// - `p`, `y`: (rows, classes) — returns `dz`: (rows, classes)
pub fn output_error(p: &[f64], y: &[f64], rows: usize) -> Vec<f64> {
    assert_eq!(p.len(), y.len(), "p and y must have the same shape");
    p.iter().zip(y).map(|(pk, yk)| (pk - yk) / rows as f64).collect()
}

/// The predicted class of each row: the index of its largest probability.
///
/// - `p`: (rows, classes) — returns (rows)
pub fn predictions(p: &[f64], rows: usize) -> Vec<usize> {
    let classes = p.len() / rows;
    (0..rows)
        .map(|r| {
            let pr = &p[r * classes..(r + 1) * classes];
            let mut best = 0;
            for k in 1..classes {
                if pr[k] > pr[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}

/// Accuracy: the fraction of rows whose predicted class is the label.
/// (Not differentiable — a small change of a weight rarely changes it — which
/// is why we train on the cross-entropy and only *report* the accuracy.)
///
/// - `p`: (rows, classes), `labels`: (rows)
pub fn accuracy(p: &[f64], labels: &[usize]) -> f64 {
    let rows = labels.len();
    let correct = predictions(p, rows)
        .iter()
        .zip(labels)
        .filter(|(pred, label)| pred == label)
        .count();
    correct as f64 / rows as f64
}
