//! Parts 3 to 5 of `simdnet explain --conv`: the backward pass (dense, flatten,
//! the pool's routing, the activation's gate, the filter gradient summed over
//! the positions), the update of every weight and bias, and with `--check`
//! every gradient against a finite difference. Printing only: the numbers are
//! the trace's ([`crate::teach::conv_network::ConvStepTrace`]).

use super::backward::slope_rule;
use super::check::{grad, sci, thousands};
use super::conv::{grid, sizes, ConvLesson};
use super::format::{num, par, prod, Out};
use super::update::{param_update_lines, rule};
use crate::activation::Activation;
use crate::teach::conv_network::KinkMargin;
use crate::teach::gradcheck::{TensorCheck, Verdict, H, RIGHT, WRONG};
use crate::teach::optimizers::OptimizerF64;
use crate::teach::pitfalls::Bug;

pub(super) fn backward(o: &mut Out, l: &ConvLesson) {
    let t = &l.trace;
    let (f, g) = (&t.forward, &t.grads);
    let (side, out, pooled, features, classes) = sizes(t);
    let k = t.net.conv.kernel_h();
    let act = t.net.act;
    o.title("3. backward pass");
    o.line("from the logits back to the image, starting at da4 = (p - y) / 1, the output error (part 2);");
    o.line("each layer turns the gradient of its output into the gradients of its weights and of its input");

    // layer 4: dense
    o.blank();
    o.line(format!(
        "layer 4 (dense {features} -> {classes}), from da4 (1, {classes}):"
    ));
    o.line("  the forward pass was a4 = identity(z4), so dz4 = da4 ⊙ 1 = da4");
    o.values("    dz4 =", &g.dz4);
    o.line("  the forward pass was z4 = a3·W4 + b4, so:");
    o.line(format!(
        "  dW4 = a3ᵀ·dz4:  dW4[i,j] = a3[i]·dz4[j]   ({features}, {classes}); one image: one product each"
    ));
    for i in 0..features {
        o.values(
            &format!("    dW4[{i}] = {}·dz4 =", num(f.a3[i])),
            &g.dw4[i * classes..(i + 1) * classes],
        );
    }
    let label = t.labels[0];
    o.line(format!(
        "    e.g. dW4[0,{label}] = {} = {}",
        prod(f.a3[0], g.dz4[label]),
        num(g.dw4[label])
    ));
    o.values("  db4 = Σ_rows dz4 = dz4 (one image):", &g.db4);
    o.line(format!(
        "  da3 = dz4·W4ᵀ:  da3[i] = Σ_j dz4[j]·W4[i,j]   ({features}): what reaches the pooled numbers"
    ));
    for i in 0..features {
        let terms: Vec<String> = (0..classes)
            .map(|j| prod(g.dz4[j], t.net.dense.w[i * classes + j]))
            .collect();
        o.sum(
            &format!("    da3[{i}] ="),
            &terms,
            &format!("= {}", num(g.da3[i])),
        );
    }

    // layer 3: flatten
    o.blank();
    o.line(format!(
        "layer 3 (flatten), from da3 ({features}): da2[py,px] = da3[py·{pooled} + px], read as an image again; no arithmetic"
    ));
    grid(o, "da2", &g.da2, pooled, pooled);

    // layer 2: max-pool
    o.blank();
    o.line(format!("layer 2 (max-pool 2x2), from da2 ({pooled}, {pooled}):"));
    o.line("  the forward pass was a2 = a1[argmax]: only the winner moved the output (slope 1), the other");
    o.line("  three of its tile did not (slope 0); so each da2 goes to its tile's winner, the others get 0:");
    for py in 0..pooled {
        for px in 0..pooled {
            let w = f.argmax[py * pooled + px];
            let others: Vec<String> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|&(dy, dx)| (2 * py + dy) * out + 2 * px + dx)
                .filter(|&i| i != w)
                .map(|i| format!("da1[{},{}]", i / out, i % out))
                .collect();
            o.line(format!(
                "    tile ({py},{px}): winner a1[{},{}] = {}: da1[{},{}] = da2[{py},{px}] = {}",
                w / out,
                w % out,
                num(f.a1[w]),
                w / out,
                w % out,
                num(g.da2[py * pooled + px]),
            ));
            o.line(format!(
                "                 the other three: {} = 0",
                others.join(" = ")
            ));
        }
    }
    grid(o, "da1", &g.da1, out, out);

    // layer 1: activation, then the convolution
    o.blank();
    o.line(format!(
        "layer 1 (conv {k}x{k} + {act}), from da1 ({out}, {out}):"
    ));
    if act == Activation::Relu {
        o.line("  the forward pass was a1 = relu(z1), so dz1 = da1 ⊙ relu'(a1): relu' = 1 if a > 0 else 0, a gate");
        o.line("  that lets the gradient through where the filter responded (z1 > 0) and stops it elsewhere");
    } else {
        o.line(format!(
            "  the forward pass was a1 = {act}(z1), so dz1 = da1 ⊙ {act}'(a1),  {act}' = {}",
            slope_rule(act)
        ));
    }
    grid(o, &format!("{act}'(a1)"), &g.slope1, out, out);
    for i in 0..out * out {
        if g.da1[i] != 0.0 {
            o.line(format!(
                "    dz1[{},{}] = {}·{act}'({}) = {}·{} = {}",
                i / out,
                i % out,
                par(g.da1[i]),
                num(f.a1[i]),
                par(g.da1[i]),
                num(g.slope1[i]),
                num(g.dz1[i])
            ));
        }
    }
    grid(o, "dz1", &g.dz1, out, out);
    let live: Vec<usize> = (0..out * out).filter(|&i| g.dz1[i] != 0.0).collect();

    o.line("  the forward pass was z1[oy,ox] = Σ_ky Σ_kx x[oy+ky, ox+kx]·W1[ky,kx] + b1: each weight was used at");
    o.line(format!(
        "  all {} positions, so its gradient sums one share per position:",
        out * out
    ));
    o.line(format!(
        "  dW1[ky,kx] = Σ_oy Σ_ox x[oy+ky, ox+kx]·dz1[oy,ox]   ({k}, {k}), {} terms each",
        out * out
    ));
    let term = |ky: usize, kx: usize, p: usize| prod(t.x[(p / out + ky) * side + p % out + kx], g.dz1[p]);
    let full: Vec<String> = (0..out * out).map(|p| term(0, 0, p)).collect();
    o.sum("    dW1[0,0] =", &full, &format!("= {}", num(g.dw1[0])));
    o.line(format!(
        "    only the {} position(s) where dz1 ≠ 0 add anything (the pool's winners the gate let through):",
        live.len()
    ));
    for ky in 0..k {
        for kx in 0..k {
            let terms: Vec<String> = live.iter().map(|&p| term(ky, kx, p)).collect();
            let terms = if terms.is_empty() { vec![num(0.0)] } else { terms };
            o.sum(
                &format!("    dW1[{ky},{kx}] ="),
                &terms,
                &format!("= {}", num(g.dw1[ky * k + kx])),
            );
        }
    }
    o.line(format!(
        "  db1 = Σ_oy Σ_ox dz1[oy,ox]: b1 was added at every position ({} terms, the nonzero ones:)",
        out * out
    ));
    let terms: Vec<String> = live.iter().map(|&p| par(g.dz1[p])).collect();
    let terms = if terms.is_empty() { vec![num(0.0)] } else { terms };
    o.sum("    db1 =", &terms, &format!("= {}", num(g.db1[0])));
    o.line(
        "  dx[y,x] = Σ W1[ky,kx]·dz1[y-ky, x-kx] over the windows that covered pixel (y, x): the gradient a",
    );
    o.line("  layer below would receive (the image is data, not weights: nothing uses it here)");
    grid(o, "dx", &g.dx, side, side);
    // one dx in full: the pixel that the most windows with a gradient covered
    let covers = |y: usize, x: usize| -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for ky in 0..k {
            for kx in 0..k {
                if y >= ky && x >= kx && y - ky < out && x - kx < out {
                    v.push((ky, kx));
                }
            }
        }
        v
    };
    let live_at = |y: usize, x: usize| {
        covers(y, x)
            .iter()
            .filter(|&&(ky, kx)| g.dz1[(y - ky) * out + x - kx] != 0.0)
            .count()
    };
    let (y, x) = (0..side * side)
        .map(|i| (i / side, i % side))
        .fold((0, 0), |b, p| {
            if live_at(p.0, p.1) > live_at(b.0, b.1) {
                p
            } else {
                b
            }
        });
    let terms: Vec<String> = covers(y, x)
        .iter()
        .map(|&(ky, kx)| prod(t.net.w[ky * k + kx], g.dz1[(y - ky) * out + x - kx]))
        .collect();
    o.line(format!(
        "    dx[{y},{x}]: the {} windows that covered it, W1[ky,kx]·dz1[{y}-ky, {x}-kx] for each:",
        terms.len()
    ));
    o.sum(
        &format!("    dx[{y},{x}] ="),
        &terms,
        &format!("= {}", num(g.dx[y * side + x])),
    );
}

pub(super) fn update(o: &mut Out, l: &ConvLesson) {
    let t = &l.trace;
    let classes = t.net.dense.outputs;
    let k = t.net.conv.kernel_h();
    o.title(&format!("4. update ({}, lr {})", t.kind, num(t.lr)));
    let steps = match &t.updates[0].opt_after {
        OptimizerF64::Adam(a) => a.t,
        _ => 1,
    };
    o.line("every weight and bias, with its gradient g from the backward pass (w: a weight or a bias):");
    for r in rule(&t.updates[0].opt_before, steps) {
        o.line(format!("  {r}"));
    }
    let label = t.labels[0];
    for (n, u) in t.updates.iter().enumerate() {
        if n % 2 == 0 {
            o.blank();
            o.line(if n == 0 {
                "layer 1 (conv):".to_string()
            } else {
                format!("layer 4 (dense): every W4[i,{label}] (the true class's column), then b4")
            });
        }
        let w_or_b = if n % 2 == 0 { "w" } else { "b" };
        for idx in 0..u.before.len() {
            let name = match n {
                0 => format!("W1[{},{}]", idx / k, idx % k),
                1 => "b1".to_string(),
                2 if idx % classes == label => format!("W4[{},{}]", idx / classes, idx % classes),
                2 => continue,
                _ => format!("b4[{idx}]"),
            };
            let values = [u.before[idx], u.grad[idx], u.update[idx], u.after[idx]];
            param_update_lines(o, &name, w_or_b, values, &u.opt_before, &u.opt_after, idx);
        }
        if n == 2 {
            for i in 0..t.net.dense.inputs {
                o.values(
                    &format!("  W4[{i}] after ="),
                    &u.after[i * classes..(i + 1) * classes],
                );
            }
        }
    }
    o.blank();
    o.line("the same image again, with the new weights:");
    o.line(format!(
        "  p[0,{label}] (the true class) {} -> {}",
        num(t.grads.loss.p[label]),
        num(t.probabilities_after[label])
    ));
    let change = t.loss_after - t.grads.loss.loss;
    o.line(format!(
        "loss before the step {}, after {}: change {} ({})",
        num(t.grads.loss.loss),
        num(t.loss_after),
        num(change),
        if change < 0.0 {
            "lower: the step went downhill"
        } else {
            "not lower: the step was too big, try a smaller --lr"
        }
    ));
}

pub(super) fn check(
    o: &mut Out,
    l: &ConvLesson,
    checks: &[TensorCheck],
    bug: Option<Bug>,
    margin: &KinkMargin,
) {
    let t = &l.trace;
    let k = t.net.conv.kernel_h();
    let classes = t.net.dense.outputs;
    o.title("5. gradient check");
    if let Some(b) = bug {
        o.line(format!(
            "a deliberate bug (--bug {}): one line of the backward pass is wrong,",
            b.name()
        ));
        o.line(format!(
            "  {}",
            match b {
                Bug::ForgottenSlope => "dz1 = da1   (right: dz1 = da1 ⊙ f'(a1))",
                Bug::Overwrite =>
                    "dW1[ky,kx] = x·dz1 at each position   (right: dW1[ky,kx] += x·dz1, summed)",
            }
        ));
    }
    o.line("every gradient of the backward pass against a finite difference, in f64");
    o.line("(teach::conv_network::check):");
    o.line(format!(
        "  numeric = (4·D(h/2) - D(h)) / 3, D(h) = (L(θ + h) - L(θ - h)) / 2h, h = {H} (h² cancels)"
    ));
    o.line(format!(
        "  error = |analytic - numeric| / max(|analytic|, |numeric|); below {RIGHT:e}: right, above {WRONG:e}: a bug"
    ));
    let reach = H * t.x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    o.line(format!(
        "  kinks: the smallest |z1| is {} (relu bends at 0), the smallest gap between a pool winner and",
        if margin.relu.is_finite() {
            sci(margin.relu)
        } else {
            "none (no relu)".into()
        }
    ));
    o.line(format!(
        "  its runner-up {}; a difference moves z1 by at most {}: {}",
        if margin.pool.is_finite() {
            sci(margin.pool)
        } else {
            "none".into()
        },
        sci(reach),
        if margin.clear(&t.x) {
            "no kink is crossed"
        } else {
            "a kink is within reach, so a difference there measures a mix of two slopes"
        }
    ));
    let mut wrong = 0;
    for c in checks {
        let (name, cols) = match (c.layer, c.bias) {
            (0, false) => ("dW1", k),
            (0, true) => ("db1", 1),
            (_, false) => ("dW4", classes),
            (_, true) => ("db4", classes),
        };
        o.blank();
        o.line(format!(
            "{:<15}{:>14} {:>14}   error",
            format!("{name}:"),
            "analytic",
            "numeric"
        ));
        for idx in 0..c.analytic.len() {
            let at = match (c.bias, cols) {
                (true, 1) => name.to_string(),
                (true, _) => format!("{name}[{idx}]"),
                (false, _) => format!("{name}[{},{}]", idx / cols, idx % cols),
            };
            o.line(format!(
                "  {at:<12} {} {}   {}",
                grad(c.analytic[idx]),
                grad(c.numeric[idx]),
                sci(c.error[idx])
            ));
        }
        let (_, worst) = c.worst();
        let below = c.error.iter().filter(|&&e| e < RIGHT).count();
        let verdict = match c.verdict() {
            Verdict::Right => "right",
            Verdict::Suspicious => "suspicious (a kink crossed, or a small bug)",
            Verdict::Wrong => {
                wrong += 1;
                "WRONG: a bug in the backward pass"
            }
        };
        o.line(format!(
            "  {name}: {below} of {} below {RIGHT:e}, largest error {}: {name} is {verdict}",
            c.error.len(),
            sci(worst)
        ));
    }
    o.blank();
    if wrong == 0 {
        o.line(format!(
            "every gradient agrees with its finite difference: the backward pass is right ({} tensors)",
            checks.len()
        ));
        if bug == Some(Bug::ForgottenSlope) {
            o.line(
                "  (the forgotten gate changes nothing here: every pool winner had z1 > 0, where relu' = 1",
            );
            o.line("  anyway; with --seed 2 a tile is all below 0 and the bug shows)");
        }
    } else {
        o.line(format!(
            "{wrong} of {} tensors are WRONG: the errors point at the layer and the line to fix",
            checks.len()
        ));
    }
    // what backpropagation saves, in multiply-adds
    let (_, out, _, features, _) = sizes(t);
    let conv = (out * out * k * k) as u64;
    let dense = (features * classes) as u64;
    let params = t.net.parameter_count() as u64;
    o.blank();
    o.line("why backpropagation: the cost in multiply-adds, for this image");
    o.line(format!(
        "  forward pass {} (conv {} = {out}·{out} positions · {} taps, dense {}), backward pass {}",
        thousands(conv + dense),
        thousands(conv),
        k * k,
        thousands(dense),
        thousands(conv + 2 * dense)
    ));
    o.line("  (dW1, dW4 and da3; the image needs no dx)");
    o.line(format!(
        "  all gradients by finite differences, 2 forward passes each: 2·{}·{} = {}",
        params,
        thousands(conv + dense),
        thousands(2 * params * (conv + dense))
    ));
}
