//! Part 1 of `simdnet explain`: the forward pass, layer by layer.

use std::fmt::Write as _;

use super::format::{input_name, num, par, prod, shorten, stats, Out, EXCERPT, FULL, MAX_TERMS};
use super::Lesson;
use crate::activation::Activation;

pub(super) fn forward(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title("1. forward pass");
    let features = t.layers[0].inputs;
    o.line(format!("inputs x ({}, {features}):", t.rows));
    match &l.digit {
        None => {
            for r in 0..t.rows {
                let row = &t.x[r * features..(r + 1) * features];
                o.values_then(&format!("  x[{r}] ="), row, &format!("    label {}", t.labels[r]));
            }
        }
        Some(d) => {
            o.line(format!(
                "  the image (label {}), '#' = ink > 0.5, '+' = ink > 0:",
                d.label
            ));
            for row in d.pixels.chunks(d.image_cols.max(1)) {
                let mut s = String::from("    ");
                for &v in row {
                    s.push_str(if v > 127 {
                        "##"
                    } else if v > 0 {
                        "++"
                    } else {
                        " ."
                    });
                }
                o.line(s.trim_end());
            }
            let nonzero: Vec<usize> = (0..d.pixels.len()).filter(|&i| d.pixels[i] > 0).collect();
            o.line(format!(
                "  x[i] = pixel[i] / 255; {} of {} pixels are nonzero, the first of them:",
                nonzero.len(),
                d.pixels.len()
            ));
            for &i in nonzero.iter().take(EXCERPT) {
                o.line(format!("    x[{i}] = {} / 255 = {}", d.pixels[i], num(t.x[i])));
            }
            o.line(format!("  x: {}", stats(&t.x)));
        }
    }

    for (li, lt) in t.layers.iter().enumerate() {
        let k = li + 1;
        let x: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let prev = input_name(li);
        let last = li + 1 == n;
        let identity = lt.act == Activation::Identity;
        o.blank();
        o.line(format!(
            "layer {k}: {} -> {}, {}.   z{k} = {prev}·W{k} + b{k},   a{k} = {}(z{k}){}",
            lt.inputs,
            lt.outputs,
            lt.act,
            lt.act,
            if last { ": the logits" } else { "" }
        ));
        o.line(format!(
            "  shapes: {prev} ({rows}x{ins})·W{k} ({ins}x{outs}) + b{k} ({outs}, on every row) -> z{k} ({rows}x{outs}), \
             the shape of a{k}",
            rows = t.rows,
            ins = lt.inputs,
            outs = lt.outputs
        ));
        o.matrix(&format!("W{k}"), &lt.w, lt.inputs, lt.outputs);
        if lt.outputs <= FULL {
            o.values(&format!("  b{k} ({}):", lt.outputs), &lt.b);
        } else {
            o.line(format!("  b{k} ({}): {}", lt.outputs, stats(&lt.b)));
        }
        let skip_zeros = lt.inputs > MAX_TERMS;
        if skip_zeros {
            o.line(format!(
                "  (terms where {prev} = 0 add nothing and are left out of the sums below)"
            ));
        }
        for r in 0..t.rows {
            let shown = if lt.outputs <= FULL / 4 {
                lt.outputs
            } else {
                EXCERPT
            };
            let row = r * lt.outputs..(r + 1) * lt.outputs;
            for j in 0..shown {
                let mut terms = Vec::new();
                for i in 0..lt.inputs {
                    let xv = x[r * lt.inputs + i];
                    if !(skip_zeros && xv == 0.0) {
                        terms.push(prod(xv, lt.w[i * lt.outputs + j]));
                    }
                }
                let mut terms = shorten(terms);
                terms.push(par(lt.b[j]));
                let z = lt.z[r * lt.outputs + j];
                let mut tail = format!("= {}", num(z));
                if !identity {
                    let _ = write!(
                        tail,
                        "   a{k}[{r},{j}] = {}({}) = {}",
                        lt.act,
                        num(z),
                        num(lt.a[r * lt.outputs + j])
                    );
                }
                o.sum(&format!("  z{k}[{r},{j}] ="), &terms, &tail);
            }
            if shown < lt.outputs {
                o.values(&format!("  z{k}[{r}] ="), &lt.z[row.clone()]);
            }
            // (for the identity, a = z: a row already printed as z is not printed again)
            if (shown < lt.outputs) != identity {
                o.values(&format!("  a{k}[{r}] ="), &lt.a[row]);
            }
        }
        if identity {
            o.line(format!("  (identity: a{k} = z{k}, nothing to squash)"));
        }
        if last {
            o.line(format!(
                "  the logits a{k} go to the loss, whose first step is softmax (part 2, the error)"
            ));
        }
    }
}
