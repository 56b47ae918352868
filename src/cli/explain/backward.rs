//! Part 3 of `simdnet explain`: the backward pass, from the last layer to the
//! first. For each layer, as `teach::backward::dense_backward` does it: first
//! `dz = da ⊙ f'(a)`, then `dW = xᵀ·dz`, `db = Σ dz` and `dx = dz·Wᵀ`.

use super::format::{input_name, num, par, pick, prod, shorten, stats, Out, EXCERPT, FULL, MAX_TERMS};
use super::Lesson;
use crate::activation::Activation;

/// How `f'` is computed from the stored output `a`.
pub(super) fn slope_rule(act: Activation) -> &'static str {
    match act {
        Activation::Identity => "1",
        Activation::Relu => "1 if a > 0 else 0",
        Activation::Sigmoid => "a·(1 - a)",
        Activation::Tanh => "1 - a²",
    }
}

pub(super) fn backward(o: &mut Out, l: &Lesson) {
    let t = &l.trace;
    let n = t.layers.len();
    o.title("3. backward pass");
    o.line(format!(
        "from the last layer to the first, starting at da{n} = (p - y) / {}, the output error (part 2)",
        t.rows
    ));
    nielsen(o, n);
    for li in (0..n).rev() {
        let lt = &t.layers[li];
        let k = li + 1;
        let x: &[f64] = if li == 0 { &t.x } else { &t.layers[li - 1].a };
        let prev = input_name(li);
        let (ins, outs) = (lt.inputs, lt.outputs);
        let act = lt.act;
        o.blank();
        o.line(format!(
            "layer {k} ({ins} -> {outs}), from da{k} ({}, {outs}):",
            t.rows
        ));

        // dz = da ⊙ f'(a)
        if act == Activation::Identity {
            o.line(format!(
                "  the forward pass was a{k} = identity(z{k}), so dz{k} = da{k} ⊙ 1 = da{k}"
            ));
            for r in 0..t.rows {
                o.values(&format!("    dz{k}[{r}] ="), &lt.dz[r * outs..(r + 1) * outs]);
            }
        } else {
            o.line(format!(
                "  the forward pass was a{k} = {act}(z{k}), so dz{k} = da{k} ⊙ {act}'(a{k}),  \
                 {act}' = {}",
                slope_rule(act)
            ));
            let show = if t.rows * outs <= FULL {
                outs
            } else {
                EXCERPT.min(outs)
            };
            for r in 0..t.rows {
                for j in 0..show {
                    let idx = r * outs + j;
                    o.line(format!(
                        "    dz{k}[{r},{j}] = {}·{act}'({}) = {}·{} = {}",
                        par(lt.da[idx]),
                        num(lt.a[idx]),
                        par(lt.da[idx]),
                        num(lt.slope[idx]),
                        num(lt.dz[idx])
                    ));
                }
                if show < outs {
                    o.values(&format!("    dz{k}[{r}] ="), &lt.dz[r * outs..(r + 1) * outs]);
                }
            }
        }
        o.line(format!("  the forward pass was z{k} = {prev}·W{k} + b{k}, so:"));
        let rows = t.rows;
        o.line(format!(
            "  shapes: {prev}ᵀ ({ins}x{rows})·dz{k} ({rows}x{outs}) -> dW{k} ({ins}x{outs}), the shape of W{k}"
        ));
        o.line(format!(
            "          Σ_rows dz{k} ({rows}x{outs}) -> db{k} ({outs}), the shape of b{k}"
        ));
        if li > 0 {
            o.line(format!(
                "          dz{k} ({rows}x{outs})·W{k}ᵀ ({outs}x{ins}) -> d{prev} ({rows}x{ins}), the shape of {prev}"
            ));
        }

        // dW = xᵀ·dz
        o.line(format!(
            "  dW{k} = {prev}ᵀ·dz{k}:  dW{k}[i,j] = Σ_r {prev}[r,i]·dz{k}[r,j]   ({ins}, {outs})"
        ));
        let row_ok = |i: usize| (0..t.rows).any(|r| x[r * ins + i] != 0.0);
        let entries = pick(ins, outs, row_ok);
        for &(i, j) in &entries {
            let terms: Vec<String> = (0..t.rows)
                .map(|r| prod(x[r * ins + i], lt.dz[r * outs + j]))
                .collect();
            o.sum(
                &format!("    dW{k}[{i},{j}] ="),
                &terms,
                &format!("= {}", num(lt.dw[i * outs + j])),
            );
        }
        if entries.len() < lt.dw.len() {
            o.line(format!("    all of dW{k}: {}", stats(&lt.dw)));
            if li == 0 && l.digit.is_some() {
                o.line("    (the rows of black pixels, x = 0, are exactly 0: those weights get no gradient)");
            }
        }

        // db = Σ_rows dz
        o.line(format!(
            "  db{k} = Σ_r dz{k}[r,j]   ({outs})   (b{k} is added to every example)"
        ));
        if t.rows == 1 {
            o.values(
                &format!("    one example, nothing to add up: db{k} = dz{k}[0] ="),
                &lt.db,
            );
        } else {
            for j in 0..outs.min(if outs <= FULL { outs } else { EXCERPT }) {
                let terms: Vec<String> = (0..t.rows).map(|r| par(lt.dz[r * outs + j])).collect();
                o.sum(
                    &format!("    db{k}[{j}] ="),
                    &terms,
                    &format!("= {}", num(lt.db[j])),
                );
            }
        }

        // dx = dz·Wᵀ: the da of the layer before
        if li == 0 {
            o.line(format!(
                "  (no d{prev}: the inputs are data, not weights; the backward pass ends here)"
            ));
            continue;
        }
        o.line(format!(
            "  d{prev} = dz{k}·W{k}ᵀ:  d{prev}[r,i] = Σ_j dz{k}[r,j]·W{k}[i,j]   ({}, {ins})",
            t.rows
        ));
        let dx = &t.layers[li - 1].da; // (rows, ins): the da of the layer before
        let show = if t.rows * ins <= FULL && outs <= MAX_TERMS {
            ins
        } else {
            EXCERPT.min(ins)
        };
        for r in 0..t.rows {
            for i in 0..show {
                let terms: Vec<String> = (0..outs)
                    .map(|j| prod(lt.dz[r * outs + j], lt.w[i * outs + j]))
                    .collect();
                o.sum(
                    &format!("    d{prev}[{r},{i}] ="),
                    &shorten(terms),
                    &format!("= {}", num(dx[r * ins + i])),
                );
            }
            if show < ins {
                o.values(&format!("    d{prev}[{r}] ="), &dx[r * ins..(r + 1) * ins]);
            }
        }
    }
}

/// Nielsen's four equations of backpropagation, and the lines of this output that compute them.
fn nielsen(o: &mut Out, n: usize) {
    o.line("Nielsen's four equations (Neural Networks and Deep Learning, ch. 2) and the lines below that");
    o.line("compute them (his δ is our dz, his w^l our Wᵀ; his vectors are one example, our rows a batch):");
    o.line(format!(
        "  BP1  δ^L = ∇_a C ⊙ σ'(z^L)                  dz{n} = da{n} ⊙ 1, da{n} = (p - y) / rows"
    ));
    o.line(
        "  BP2  δ^l = ((w^(l+1))ᵀ δ^(l+1)) ⊙ σ'(z^l)    da_l = dz_(l+1)·W_(l+1)ᵀ, then dz_l = da_l ⊙ f'(a_l)",
    );
    o.line("  BP3  ∂C/∂b^l_j = δ^l_j                       db = Σ_rows dz");
    o.line("  BP4  ∂C/∂w^l_jk = a^(l-1)_k δ^l_j            dW = xᵀ·dz, x = the layer's input a_(l-1)");
}
