//! Part 4 of `simdnet explain`: the update of every weight and bias by the
//! optimizer, with its state before and after, and the loss after the step.
//! The formulas are text; every number in them (the hyper-parameters too) is
//! read from the trace.

use super::format::{at, hp, input_name, num, par, pick, small, stats, Out, EXCERPT, FULL};
use super::Lesson;
use crate::teach::optimizers::OptimizerF64;

/// The rule of the optimizer, with its hyper-parameters from `opt`.
pub(super) fn rule(opt: &OptimizerF64, t: u32) -> Vec<String> {
    match opt {
        OptimizerF64::Sgd(_) => vec!["w = w - lr·g".to_string()],
        OptimizerF64::Momentum(m) => vec![
            format!(
                "v = momentum·v - lr·g      (momentum {}; v starts at 0)",
                hp(m.momentum)
            ),
            "w = w + v".into(),
            "(v is the velocity: the step itself; on the first step v = -lr·g, SGD's step)".into(),
        ],
        OptimizerF64::RmsProp(r) => vec![
            format!("v = rho·v + (1 - rho)·g²   (rho {}; v starts at 0)", hp(r.rho)),
            format!("w = w - lr·g / sqrt(v + eps)   (eps {:e})", r.eps),
            "(v is the running mean of g², not momentum's velocity. On the first step v = (1 - rho)·g²,"
                .into(),
            format!(
                " so a weight moves lr·|g| / sqrt({}·g² + eps) ≈ lr / sqrt({}) = {}·lr = {}, not lr;",
                hp(1.0 - r.rho),
                hp(1.0 - r.rho),
                num(1.0 / (1.0 - r.rho).sqrt()),
                num(r.lr / (1.0 - r.rho).sqrt())
            ),
            format!(
                " less where {}·g² is not much above eps = {:e}, |g| below about {}: eps damps those)",
                hp(1.0 - r.rho),
                r.eps,
                hp((10.0 * r.eps / (1.0 - r.rho)).sqrt())
            ),
        ],
        OptimizerF64::Adam(a) => vec![
            format!(
                "m = b1·m + (1 - b1)·g,  v = b2·v + (1 - b2)·g²   (b1 {}, b2 {}; m, v start at 0)",
                hp(a.beta1),
                hp(a.beta2)
            ),
            format!(
                "m̂ = m / (1 - b1^t),  v̂ = v / (1 - b2^t)            (t = {t}{})",
                if t == 1 { ": the first step" } else { "" }
            ),
            format!(
                "w = w - lr·m̂ / (sqrt(v̂) + eps)                    (eps {:e})",
                a.eps
            ),
            "(m is the running mean of g, v of g²; on the first step m̂ = g, v̂ = g²: every weight moves"
                .into(),
            " by about lr against the sign of its gradient)".into(),
        ],
    }
}

pub(super) fn update(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title(&format!("4. update ({}, lr {})", t.kind, num(t.lr)));
    let first = &t.layers[0];
    let steps = match &first.w_opt_after {
        OptimizerF64::Adam(a) => a.t,
        _ => 1,
    };
    o.line("every weight and bias, with its gradient g from the backward pass (w: a weight or a bias):");
    for r in rule(&first.w_opt_before, steps) {
        o.line(format!("  {r}"));
    }
    for (li, lt) in t.layers.iter().enumerate() {
        let k = li + 1;
        let x: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let row_ok = |i: usize| (0..t.rows).any(|r| x[r * lt.inputs + i] != 0.0);
        o.blank();
        o.line(format!("layer {k}:"));
        let entries = pick(lt.inputs, lt.outputs, row_ok);
        for &(i, j) in &entries {
            let idx = i * lt.outputs + j;
            update_lines(o, l, &format!("W{k}[{i},{j}]"), li, false, idx);
        }
        if entries.len() < lt.w.len() {
            o.line(format!("  updates of all of W{k}: {}", stats(&lt.w_update)));
        }
        let shown = if lt.outputs <= FULL { lt.outputs } else { EXCERPT };
        for j in 0..shown {
            update_lines(o, l, &at(&format!("b{k}"), None, j), li, true, j);
        }
        if shown < lt.outputs {
            o.line(format!("  updates of all of b{k}: {}", stats(&lt.b_update)));
        }
    }

    o.blank();
    o.line("the same batch again, with the new weights:");
    let classes = t.layers[n - 1].outputs;
    for r in 0..t.rows {
        let label = t.labels[r];
        o.line(format!(
            "  p[{r},{label}] (the true class) {} -> {}",
            num(t.probabilities[r * classes + label]),
            num(t.probabilities_after[r * classes + label])
        ));
    }
    o.line(format!(
        "loss before the step {}, after {}: change {} ({})",
        num(t.loss),
        num(t.loss_after),
        num(t.loss_change),
        if t.loss_change < 0.0 {
            "lower: the step went downhill"
        } else {
            "not lower: the step was too big, try a smaller --lr"
        }
    ));
    step_size(o, l);
}

/// With one example and SGD (or momentum's first step, the same): how far the
/// step moved each layer's `z`. `ΔW = -lr·xᵀ·dz` and `Δb = -lr·dz`, so
/// `Δz = x·ΔW + Δb = -lr·(‖x‖² + 1)·dz`: the squared size of a layer's input
/// multiplies its learning rate.
fn step_size(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let sgd_like = matches!(
        t.layers[0].w_opt_before,
        OptimizerF64::Sgd(_) | OptimizerF64::Momentum(_)
    );
    if t.rows != 1 || !sgd_like {
        return;
    }
    o.blank();
    o.line("why the loss moved this much: the input's scale sets the step size");
    o.line("  ΔW = -lr·xᵀ·dz and Δb = -lr·dz, so a layer's z moves by Δz = x·ΔW + Δb = -lr·(‖x‖² + 1)·dz:");
    o.line("  a gradient step on z itself, with lr multiplied by ‖x‖² + 1, the squared size of its input");
    for (li, lt) in t.layers.iter().enumerate() {
        let k = li + 1;
        let x: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let sq: f64 = x.iter().map(|v| v * v).sum();
        // the change of z, from the updates themselves: x·ΔW + Δb
        let j = (0..lt.outputs)
            .max_by(|&a, &b| lt.dz[a].abs().total_cmp(&lt.dz[b].abs()))
            .unwrap_or(0);
        let dzj: f64 = (0..lt.inputs)
            .map(|i| x[i] * lt.w_update[i * lt.outputs + j])
            .sum::<f64>()
            + lt.b_update[j];
        o.line(format!(
            "  layer {k}: ‖{x}‖² + 1 = {}, lr·that = {}: z{k}[0,{j}] moved {} = -{}·dz{k}[0,{j}]",
            num(sq + 1.0),
            num(t.lr * (sq + 1.0)),
            num(dzj),
            num(t.lr * (sq + 1.0)),
            x = input_name(li),
        ));
    }
    if l.digit.is_some() {
        let sq: f64 = t.x.iter().map(|v| v * v).sum();
        o.line(format!(
            "  {} pixels in 0..1 give ‖x‖² = {}: layer 1 took a step {:.1} times the learning rate,",
            t.x.len(),
            num(sq),
            sq + 1.0
        ));
        o.line(format!(
            "  so one step moved the loss this far; raw 0..255 pixels: ‖x‖² = 65025·{} = {:.0},",
            num(sq),
            65025.0 * sq
        ));
        o.line("  one step would throw z1 far away (teach::pitfalls::saturation; RMSprop and Adam divide");
        o.line("  the size of g back out: their steps are about lr whatever the input's scale)");
    }
}

/// The update of one weight (`bias = false`, `W[idx]`) or bias of layer `li`, formula by formula.
fn update_lines(o: &mut Out, l: &Lesson, name: &str, li: usize, bias: bool, idx: usize) {
    let lt = &l.trace.layers[li];
    let (w, g, up, after, before, now) = if bias {
        let (b, a) = (&lt.b_opt_before, &lt.b_opt_after);
        (lt.b[idx], lt.db[idx], lt.b_update[idx], lt.b_after[idx], b, a)
    } else {
        let (b, a) = (&lt.w_opt_before, &lt.w_opt_after);
        (lt.w[idx], lt.dw[idx], lt.w_update[idx], lt.w_after[idx], b, a)
    };
    let w_or_b = if bias { "b" } else { "w" };
    param_update_lines(o, name, w_or_b, [w, g, up, after], before, now, idx);
}

/// The update of one number `name` (`w_or_b`: `w` or `b` in the formula), entry `idx`
/// of its buffer: `[w, g, update, after]` and its optimizer before and after, formula by formula.
pub(super) fn param_update_lines(
    o: &mut Out,
    name: &str,
    w_or_b: &str,
    [w, g, up, after]: [f64; 4],
    before: &OptimizerF64,
    now: &OptimizerF64,
    idx: usize,
) {
    let pad = " ".repeat(name.len() + 4);
    match (before, now) {
        (OptimizerF64::Sgd(s), _) => {
            o.line(format!(
                "  {name} = {} - {}·{} = {}",
                num(w),
                num(s.lr),
                par(g),
                num(after)
            ));
        }
        (OptimizerF64::Momentum(b), OptimizerF64::Momentum(a)) => {
            o.line(format!(
                "  {name}  v = {}·{} - {}·{} = {}",
                hp(b.momentum),
                par(b.velocity[idx]),
                num(b.lr),
                par(g),
                num(a.velocity[idx])
            ));
            o.line(format!(
                "{pad}{w_or_b} = {} + {} = {}",
                num(w),
                par(up),
                num(after)
            ));
        }
        (OptimizerF64::RmsProp(b), OptimizerF64::RmsProp(a)) => {
            o.line(format!(
                "  {name}  v = {}·{} + {}·{}² = {}",
                hp(b.rho),
                small(b.mean_square[idx]),
                hp(1.0 - b.rho),
                par(g),
                small(a.mean_square[idx])
            ));
            o.line(format!(
                "{pad}{w_or_b} = {} - {}·{} / sqrt({} + {:e}) = {}",
                num(w),
                num(b.lr),
                par(g),
                small(a.mean_square[idx]),
                b.eps,
                num(after)
            ));
        }
        (OptimizerF64::Adam(b), OptimizerF64::Adam(a)) => {
            let t = a.t;
            o.line(format!(
                "  {name}  m = {}·{} + {}·{} = {}",
                hp(b.beta1),
                par(b.m[idx]),
                hp(1.0 - b.beta1),
                par(g),
                num(a.m[idx]),
            ));
            o.line(format!(
                "{pad}v = {}·{} + {}·{}² = {}",
                hp(b.beta2),
                small(b.v[idx]),
                hp(1.0 - b.beta2),
                par(g),
                small(a.v[idx]),
            ));
            o.line(format!(
                "{pad}m̂ = m / (1 - {}^{t}) = {},   v̂ = v / (1 - {}^{t}) = {}",
                hp(b.beta1),
                num(a.m_hat[idx]),
                hp(b.beta2),
                small(a.v_hat[idx])
            ));
            o.line(format!(
                "{pad}{w_or_b} = {} - {}·{} / (sqrt({}) + {:e}) = {}",
                num(w),
                num(b.lr),
                par(a.m_hat[idx]),
                small(a.v_hat[idx]),
                b.eps,
                num(after)
            ));
        }
        _ => unreachable!("the optimizer does not change kind during a step"),
    }
}
