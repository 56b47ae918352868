//! Part 2 of `simdnet explain`: the loss — softmax, the cross-entropy of each
//! example and of the batch, the accuracy, and the gradient `da = (p - y) / rows`
//! where the backward pass starts.

use super::format::{num, Out, MAX_TERMS};
use super::Lesson;
use crate::teach::loss::saturated_gradients;

/// What the loss part prints, from either network's trace.
pub(super) struct LossView<'a> {
    /// Examples in the batch.
    pub rows: usize,
    /// Classes (logits per example).
    pub classes: usize,
    /// The name of the logits, e.g. `a2` (the dense network) or `z4` (the conv one).
    pub logits: String,
    /// Softmax: the largest logit of each example, the exponentials, their sums.
    pub max: &'a [f64],
    pub exp: &'a [f64],
    pub sum: &'a [f64],
    /// The probabilities, the one-hot labels, each example's loss and the mean.
    pub p: &'a [f64],
    pub y: &'a [f64],
    pub losses: &'a [f64],
    pub loss: f64,
    pub labels: &'a [usize],
    pub predicted: &'a [usize],
    pub correct: usize,
    /// `(p - y) / rows`.
    pub output_error: &'a [f64],
}

pub(super) fn error(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    loss_part(
        o,
        &LossView {
            rows: t.rows,
            classes: t.layers[n - 1].outputs,
            logits: format!("a{n}"),
            max: &t.softmax_max,
            exp: &t.softmax_exp,
            sum: &t.softmax_sum,
            p: &t.probabilities,
            y: &t.y,
            losses: &t.losses,
            loss: t.loss,
            labels: &t.labels,
            predicted: &t.predicted,
            correct: t.correct,
            output_error: &t.output_error,
        },
    );
}

/// Part 2 for any network: softmax, the loss, the accuracy and `da = (p - y) / rows`.
pub(super) fn loss_part(o: &mut Out, t: &LossView) {
    let n = &t.logits;
    let classes = t.classes;
    let p = t.p;
    let accuracy = t.correct as f64 / t.rows as f64;
    o.title("2. error");
    o.line(format!(
        "softmax turns the logits z = {n} of each example into probabilities p (part of the loss):"
    ));
    for r in 0..t.rows {
        let row = r * classes..(r + 1) * classes;
        o.line(format!(
            "  softmax of example {r}: p[{r},k] = e^(z[{r},k] - m) / Σ_c e^(z[{r},c] - m), m = max = {}",
            num(t.max[r])
        ));
        o.values("    e^(z - m) =", &t.exp[row.clone()]);
        o.line(format!("    Σ = {}", num(t.sum[r])));
        if classes <= MAX_TERMS {
            for k in 0..classes {
                o.line(format!(
                    "    p[{r},{k}] = {} / {} = {}",
                    num(t.exp[r * classes + k]),
                    num(t.sum[r]),
                    num(p[r * classes + k])
                ));
            }
        }
        o.values(&format!("  p[{r}] ="), &p[row]);
    }
    o.line("loss of each example: L_r = -Σ_k y[r,k]·ln p[r,k] = -ln p[r, label]");
    for r in 0..t.rows {
        o.line(format!(
            "  L_{r} = -ln p[{r},{}] = -ln {} = {}",
            t.labels[r],
            num(p[r * classes + t.labels[r]]),
            num(t.losses[r])
        ));
    }
    let terms: Vec<String> = t.losses.iter().map(|&v| num(v)).collect();
    o.line(format!(
        "mean loss L = ({}) / {} = {}",
        terms.join(" + "),
        t.rows,
        num(t.loss)
    ));
    o.line(format!(
        "accuracy: predicted class (largest p) {:?}, labels {:?}: {} of {} right = {}",
        t.predicted,
        t.labels,
        t.correct,
        t.rows,
        num(accuracy)
    ));
    o.blank();
    o.line(format!(
        "error at the output: d{n} = dL/d{n} = (p - y) / {}   ({n} = the logits; y = one-hot label)",
        t.rows
    ));
    o.line("  (softmax + cross-entropy: the 1/p of ln cancels the p of softmax; see teach::loss)");
    o.line(format!(
        "  shapes: p = softmax({n}) ({rows}x{classes}), y ({rows}x{classes}) -> d{n} ({rows}x{classes}), as {n}",
        rows = t.rows
    ));
    for r in 0..t.rows {
        for k in 0..classes {
            let idx = r * classes + k;
            o.line(format!(
                "  d{n}[{r},{k}] = ({} - {}) / {} = {}",
                num(p[idx]),
                t.y[idx],
                t.rows,
                num(t.output_error[idx])
            ));
        }
    }
    saturated(o);
}

/// Why cross-entropy and not the squared error: both gradients on a saturated output.
fn saturated(o: &mut Out) {
    let (z, label) = ([8.0, 0.0], 1);
    let (ce, se) = saturated_gradients(&z, label);
    o.blank();
    o.line("why cross-entropy, not the squared error: a confidently wrong output, logits (8, 0), label 1,");
    o.line(format!(
        "  p = softmax = ({}, {}): saturated, and wrong",
        num(ce[0]),
        num(ce[1] + 1.0)
    ));
    o.line(format!(
        "  cross-entropy  -ln p[1]          dz = p - y                       = ({}, {})",
        num(ce[0]),
        num(ce[1])
    ));
    o.line(format!(
        "  squared error  ½ Σ_k (p_k - y_k)²  dz = Jᵀ·(p - y), J = softmax'  = ({}, {})",
        num(se[0]),
        num(se[1])
    ));
    o.line(format!(
        "  the squared error's gradient is {:.0} times smaller: softmax's slope J is ~0 when saturated,",
        ce[0].abs() / se[0].abs()
    ));
    o.line("  so it learns slowest when most wrong; cross-entropy's 1/p cancels J");
    o.line("  (teach::loss::saturated_gradients)");
}
