//! Part 5 of `simdnet explain`, with `--check`: every `dW` and `db` entry beside
//! its central finite difference and their relative error, a verdict per tensor,
//! and what the check costs against the backward pass.

use super::format::{pick, Out};
use super::Lesson;
use crate::teach::gradcheck::{cost, TensorCheck, Verdict, H, RIGHT, WRONG};
use crate::teach::pitfalls::Bug;

/// An error or a gradient in scientific notation, short enough for a column.
pub(super) fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.1e}")
    }
}

/// A gradient with enough digits to see where the two agree.
pub(super) fn grad(x: f64) -> String {
    format!("{x:>14.6e}")
}

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn check(o: &mut Out, l: &Lesson, checks: &[TensorCheck], bug: Option<Bug>) {
    let t = &l.trace;
    o.title("5. gradient check");
    if let Some(b) = bug {
        o.line(format!(
            "a deliberate bug (--bug {}): one line of the backward pass is wrong,",
            b.name()
        ));
        o.line(format!("  {}", b.line()));
    }
    o.line("every gradient of the backward pass against a finite difference, in f64 (teach::gradcheck):");
    o.line(format!(
        "  numeric = (4·D(h/2) - D(h)) / 3, D(h) = (L(θ + h) - L(θ - h)) / 2h, h = {H} (h² cancels)"
    ));
    o.line(format!(
        "  error = |analytic - numeric| / max(|analytic|, |numeric|); below {RIGHT:e}: right, above {WRONG:e}: a bug"
    ));
    let mut wrong = 0;
    for c in checks {
        let lt = &t.layers[c.layer];
        let k = c.layer + 1;
        let (name, rows, cols) = if c.bias {
            (format!("db{k}"), 1, lt.outputs)
        } else {
            (format!("dW{k}"), lt.inputs, lt.outputs)
        };
        o.blank();
        let shape = if c.bias {
            format!("({cols})")
        } else {
            format!("({rows}, {cols})")
        };
        o.line(format!(
            "{:<15}{:>14} {:>14}   error",
            format!("{name} {shape}:"),
            "analytic",
            "numeric"
        ));
        let x: &[f64] = if c.layer == 0 {
            &t.x
        } else {
            &t.layers[c.layer - 1].a
        };
        let ins = lt.inputs;
        let row_ok = |i: usize| c.bias || (0..t.rows).any(|r| x[r * ins + i] != 0.0);
        let mut entries = pick(rows, cols, row_ok);
        let (worst, worst_err) = c.worst();
        if !entries.contains(&(worst / cols, worst % cols)) {
            entries.push((worst / cols, worst % cols));
        }
        for (i, j) in entries.iter().copied() {
            let idx = i * cols + j;
            let at = if c.bias {
                format!("{name}[{j}]")
            } else {
                format!("{name}[{i},{j}]")
            };
            o.line(format!(
                "  {at:<12} {} {}   {}",
                grad(c.analytic[idx]),
                grad(c.numeric[idx]),
                sci(c.error[idx])
            ));
        }
        let worst_at = if c.bias {
            format!("{name}[{}]", worst)
        } else {
            format!("{name}[{},{}]", worst / cols, worst % cols)
        };
        let below = c.error.iter().filter(|&&e| e < RIGHT).count();
        let verdict = match c.verdict() {
            Verdict::Right => "right",
            Verdict::Suspicious => "suspicious (a ReLU kink crossed, or a small bug)",
            Verdict::Wrong => {
                wrong += 1;
                "WRONG: a bug in the backward pass"
            }
        };
        let shown = if entries.len() < c.error.len() {
            format!(" (all checked, {} shown)", entries.len())
        } else {
            String::new()
        };
        o.line(format!(
            "  {name}: {below} of {} below {RIGHT:e}{shown}, largest error {} at {worst_at}:",
            c.error.len(),
            sci(worst_err)
        ));
        o.line(format!("    {name} is {verdict}"));
    }
    o.blank();
    if wrong == 0 {
        o.line(format!(
            "every gradient agrees with its finite difference: the backward pass is right ({} tensors)",
            checks.len()
        ));
    } else {
        o.line(format!(
            "{wrong} of {} tensors are WRONG: the errors point at the layer and the line to fix",
            checks.len()
        ));
    }

    // what backpropagation saves
    let c = cost(&l.net_before, t.rows);
    o.blank();
    o.line("why backpropagation: the cost in multiply-adds of the matrix products, for this batch");
    o.line(format!(
        "  forward pass {}, backward pass {} (dW = xᵀ·dz in every layer, dx = dz·Wᵀ but in the first)",
        thousands(c.forward),
        thousands(c.backward)
    ));
    o.line(format!(
        "  all gradients by finite differences, 2 forward passes each: 2·{}·{} = {},",
        thousands(c.parameters),
        thousands(c.forward),
        thousands(c.finite_differences)
    ));
    o.line(format!(
        "  {} times the backward pass (and this check, for its precision, did 4 per parameter)",
        thousands((c.finite_differences as f64 / c.backward as f64).round() as u64)
    ));
}
