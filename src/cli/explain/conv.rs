//! `simdnet explain --conv`: one training step of a tiny convolutional
//! network on a real digit, every number with its formula.
//!
//! The network ([`crate::teach::conv_network`], lesson 11): a 6x6 image made
//! from an MNIST training digit (its centre cut into 6x6 blocks, each block's
//! mean pixel), ONE 3x3 filter (`valid`: 4x4 out), an activation (ReLU unless
//! `--activation`), a 2x2 max-pool (2x2 out), flatten (4 numbers) and a dense
//! output layer of 10 classes; Glorot-uniform weights from `--seed`, zero
//! biases. All the computing is done once, by
//! [`crate::teach::conv_network::conv_train_step`]; this file sets it up and
//! prints the header and the forward pass, `conv_back.rs` the backward pass,
//! the update and the check. The loss part is the dense explain's
//! (`error.rs`), fed from this trace.
//!
//! One image, one channel, one filter: every buffer is printed as a grid and
//! indexed `[y,x]` (the batch, channel and filter indices, all 0, are left out).

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::error::{loss_part, LossView};
use super::format::{num, par, prod, Out};
use super::Part;
use crate::activation::Activation;
use crate::cli::CliError;
use crate::data::mnist::{load_split, Split};
use crate::data::NUM_CLASSES;
use crate::geometry::{ImageShape, Padding};
use crate::teach::conv_network::{
    block_means, check, conv_train_step, kink_margin, BlockImage, ConvNetworkF64, ConvOptimizerF64,
    ConvStepTrace, KinkMargin,
};
use crate::teach::gradcheck::TensorCheck;
use crate::teach::optimizers::OptimizerKind;
use crate::teach::pitfalls::Bug;

/// The side of the lesson's image.
pub const IMAGE: usize = 6;
/// The side of its filter.
pub const KERNEL: usize = 3;

/// What `--conv` was asked for (the flags, parsed and checked by `mod.rs`).
pub(super) struct ConvRequest<'a> {
    pub part: Part,
    pub kind: OptimizerKind,
    pub lr: f64,
    pub lr_is_default: bool,
    pub index: usize,
    pub seed: u64,
    pub data: &'a Path,
    pub act: Activation,
    pub check: bool,
    pub bug: Option<Bug>,
}

/// Everything the printer needs: the trace and how it was made.
pub(super) struct ConvLesson {
    pub part: Part,
    pub lr_is_default: bool,
    pub index: usize,
    pub seed: u64,
    pub label: u8,
    pub image_rows: usize,
    pub image_cols: usize,
    /// The digit's pixels, (image_rows, image_cols).
    pub pixels: Vec<u8>,
    /// The lesson's 6x6 image made from them.
    pub image: BlockImage,
    pub trace: ConvStepTrace,
    /// With `--check`: every tensor's check, the bug checked (if any), and how far
    /// the forward pass is from a kink.
    pub check: Option<(Vec<TensorCheck>, Option<Bug>, KinkMargin)>,
}

/// Runs `simdnet explain --conv`.
pub(super) fn run(r: &ConvRequest) -> Result<(), CliError> {
    let train = load_split(r.data, Split::Train)?;
    if r.index >= train.len() {
        return Err(crate::Error::Invalid(format!(
            "--index {} is past the {} training images in '{}' (use 0 to {})",
            r.index,
            train.len(),
            r.data.display(),
            train.len().saturating_sub(1)
        ))
        .into());
    }
    let (image_rows, image_cols) = (train.image_rows(), train.image_cols());
    let pixels = train.image(r.index).to_vec();
    let label = train.labels()[r.index];
    let image = block_means(&pixels, image_rows, image_cols, IMAGE).map_err(|e| {
        crate::Error::Invalid(format!(
            "--conv: {e} (the images of --data '{}')",
            r.data.display()
        ))
    })?;
    let mut rng = StdRng::seed_from_u64(r.seed);
    let shape = ImageShape::new(1, IMAGE, IMAGE, 1)?;
    let mut net =
        ConvNetworkF64::glorot_uniform(shape, KERNEL, 1, Padding::Valid, r.act, NUM_CLASSES, &mut rng)?;
    let labels = [label as usize];
    let x = image.x.clone();
    // the check is of the gradients at the weights before the step
    let check = r.check.then(|| {
        let f = net.forward(&x, 1);
        let grads = net.backward_with(&x, &labels, &f, r.bug);
        (check(&net, &x, &labels, &grads), r.bug, kink_margin(&net, &f, 1))
    });
    let mut opt = ConvOptimizerF64::new(r.kind, r.lr, &net);
    let trace = conv_train_step(&mut net, &mut opt, &x, &labels);
    let lesson = ConvLesson {
        part: r.part,
        lr_is_default: r.lr_is_default,
        index: r.index,
        seed: r.seed,
        label,
        image_rows,
        image_cols,
        pixels,
        image,
        trace,
        check,
    };
    print!("{}", render(&lesson));
    Ok(())
}

fn render(l: &ConvLesson) -> String {
    let mut o = Out(String::new());
    header(&mut o, l);
    let all = l.part == Part::All;
    if all || l.part == Part::Forward {
        forward(&mut o, l);
    }
    if all || l.part == Part::Error {
        error(&mut o, l);
    }
    if all || l.part == Part::Backward {
        super::conv_back::backward(&mut o, l);
    }
    if all || l.part == Part::Update {
        super::conv_back::update(&mut o, l);
    }
    if let Some((checks, bug, margin)) = &l.check {
        super::conv_back::check(&mut o, l, checks, *bug, margin);
    }
    o.0
}

/// The sizes of the layers: (image side, conv output side, pool output side, features, classes).
pub(super) fn sizes(t: &ConvStepTrace) -> (usize, usize, usize, usize, usize) {
    let (conv, pool) = t.net.shapes(1);
    (
        conv.input().height(),
        conv.output().height(),
        pool.output().height(),
        t.net.dense.inputs,
        t.net.dense.outputs,
    )
}

fn header(o: &mut Out, l: &ConvLesson) {
    let t = &l.trace;
    let (side, out, pooled, features, classes) = sizes(t);
    let k = t.net.conv.kernel_h();
    o.line(
        "simdnet explain --conv: one training step of a convolutional network, every number with its formula",
    );
    o.blank();
    o.line(format!(
        "network    {side}x{side} image -> conv {k}x{k}, 1 filter, valid, {act} -> {out}x{out} -> max-pool 2x2 -> \
         {pooled}x{pooled}",
        act = t.net.act
    ));
    o.line(format!(
        "           -> flatten {features} -> dense {classes} (the logits); {} weights and biases",
        t.net.parameter_count()
    ));
    o.line(format!(
        "weights    Glorot-uniform (StdRng seed {}), b = 0: W1 {k}x{k}, b1 (1), W4 ({features}, {classes}), b4 ({classes})",
        l.seed
    ));
    o.line(format!(
        "batch      MNIST training image {} (label {}), {}x{} pixels, made {side}x{side}: its centre {c}x{c} cut into",
        l.index,
        l.label,
        l.image_rows,
        l.image_cols,
        c = side * l.image.block
    ));
    o.line(format!(
        "           {side}x{side} blocks of {b}x{b} pixels, each block's mean pixel / 255",
        b = l.image.block
    ));
    o.line("loss       softmax, then categorical cross-entropy");
    o.line(format!(
        "optimizer  {}, lr {}{}",
        t.kind,
        num(t.lr),
        if l.lr_is_default { " (Keras' default)" } else { "" }
    ));
    o.line("notation   layers as Keras numbers them: 1 conv, 2 max-pool, 3 flatten, 4 dense; a_l: their outputs;");
    o.line("           one image, one channel, one filter: [y,x] = row y, column x; dX = dL/dX");
}

/// `name (h, w):` then the grid, one row per line.
pub(super) fn grid(o: &mut Out, name: &str, v: &[f64], h: usize, w: usize) {
    o.line(format!("  {name} ({h}, {w}):"));
    for y in 0..h {
        o.values("   ", &v[y * w..(y + 1) * w]);
    }
}

fn forward(o: &mut Out, l: &ConvLesson) {
    let t = &l.trace;
    let f = &t.forward;
    let (side, out, pooled, features, classes) = sizes(t);
    let k = t.net.conv.kernel_h();
    let act = t.net.act;
    o.title("1. forward pass");

    // the image
    let img = &l.image;
    let (b, top, left) = (img.block, img.top, img.left);
    o.line(format!(
        "the image x: rows and columns {top}..{} of the {}x{} digit, blocks of {b}x{b}:",
        top + side * b,
        l.image_rows,
        l.image_cols
    ));
    o.line(format!(
        "  x[y,x] = (Σ of the {} pixels of block y, x) / {} / 255: the pixels of rows {top}+{b}y.., columns {left}+{b}x..",
        b * b,
        b * b
    ));
    // one block in full: the one with the most ink
    let (by, bx) = {
        let best = (0..img.sums.len()).fold(0, |m, i| if img.sums[i] > img.sums[m] { i } else { m });
        (best / side, best % side)
    };
    let mut pixels = Vec::new();
    for dy in 0..b {
        for dx in 0..b {
            pixels.push(l.pixels[(top + by * b + dy) * l.image_cols + left + bx * b + dx].to_string());
        }
    }
    if let Some(first) = pixels.first_mut() {
        *first = format!("({first}");
    }
    if let Some(last) = pixels.last_mut() {
        *last = format!("{last})");
    }
    o.sum(
        &format!(
            "  x[{by},{bx}] (rows {}..{}, columns {}..{}) =",
            top + by * b,
            top + (by + 1) * b,
            left + bx * b,
            left + (bx + 1) * b
        ),
        &pixels,
        &format!(
            "/ {} / 255 = {} / {} = {}",
            b * b,
            img.sums[by * side + bx],
            b * b * 255,
            num(img.x[by * side + bx])
        ),
    );
    grid(o, "x", &t.x, side, side);
    o.line("  drawn, '#' > 0.5, '+' > 0.1, '.' > 0:");
    for y in 0..side {
        let row: String = (0..side)
            .map(|x| match t.x[y * side + x] {
                v if v > 0.5 => " #",
                v if v > 0.1 => " +",
                v if v > 0.0 => " .",
                _ => "  ",
            })
            .collect();
        o.line(format!("    |{row} |"));
    }

    // layer 1: the convolution
    o.blank();
    o.line(format!(
        "layer 1: conv {k}x{k}, 1 filter, valid, {act}: {side}x{side} -> {out}x{out} ({side} - {k} + 1 = {out})."
    ));
    o.line(format!("  z1 = conv(x, W1) + b1,   a1 = {act}(z1)"));
    o.line(format!(
        "  z1[oy,ox] = Σ_ky Σ_kx x[oy+ky, ox+kx]·W1[ky,kx] + b1: the filter on the {k}x{k} window at (oy, ox);"
    ));
    o.line(format!(
        "  the same {} weights at all {} positions (a dense layer would need {}·{} = {} weights)",
        k * k,
        out * out,
        side * side,
        out * out,
        side * side * out * out
    ));
    grid(o, "W1", &t.net.w, k, k);
    o.line(format!("  b1 = {}", num(t.net.b[0])));
    // the first position with every term named
    let named: Vec<String> = (0..k * k)
        .map(|i| format!("x[{},{}]·W1[{},{}]", i / k, i % k, i / k, i % k))
        .collect();
    o.sum("  z1[0,0] =", &named, "+ b1");
    for oy in 0..out {
        for ox in 0..out {
            let terms: Vec<String> = (0..k * k)
                .map(|i| prod(t.x[(oy + i / k) * side + ox + i % k], t.net.w[i]))
                .chain(std::iter::once(par(t.net.b[0])))
                .collect();
            let z = f.z1[oy * out + ox];
            o.sum(
                &format!("  z1[{oy},{ox}] ="),
                &terms,
                &format!(
                    "= {}   a1[{oy},{ox}] = {act}({}) = {}",
                    num(z),
                    num(z),
                    num(f.a1[oy * out + ox])
                ),
            );
        }
    }
    grid(o, "z1", &f.z1, out, out);
    grid(o, &format!("a1 = {act}(z1)"), &f.a1, out, out);

    // layer 2: max-pool
    o.blank();
    o.line(format!(
        "layer 2: max-pool 2x2: {out}x{out} -> {pooled}x{pooled}.   a2[py,px] = the largest of the tile a1[2py..2py+2, 2px..2px+2]"
    ));
    o.line("  (the winner's place, the argmax, is kept: the backward pass sends the gradient there)");
    for py in 0..pooled {
        for px in 0..pooled {
            let tile: Vec<(usize, usize)> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|&(dy, dx)| (2 * py + dy, 2 * px + dx))
                .collect();
            let names: Vec<String> = tile.iter().map(|(y, x)| format!("a1[{y},{x}]")).collect();
            let values: Vec<String> = tile.iter().map(|(y, x)| num(f.a1[y * out + x])).collect();
            let w = f.argmax[py * pooled + px];
            let tie = tile.iter().filter(|(y, x)| f.a1[y * out + x] == f.a1[w]).count() > 1;
            o.line(format!("  a2[{py},{px}] = max({})", names.join(", ")));
            o.line(format!(
                "          = max({}) = {}, from a1[{},{}]{}",
                values.join(", "),
                num(f.a2[py * pooled + px]),
                w / out,
                w % out,
                if tie {
                    " (a tie: the first in row order wins)"
                } else {
                    ""
                }
            ));
        }
    }

    // layer 3: flatten
    o.blank();
    o.line(format!(
        "layer 3: flatten: {pooled}x{pooled} -> {features}.   a3[py·{pooled} + px] = a2[py,px]: the same numbers in one row"
    ));
    o.values("  a3 =", &f.a3);

    // layer 4: dense
    o.blank();
    o.line(format!(
        "layer 4: dense {features} -> {classes}, identity.   z4 = a3·W4 + b4,   a4 = z4: the logits"
    ));
    o.line(format!(
        "  z4[j] = Σ_i a3[i]·W4[i,j] + b4[j]   W4 ({features}, {classes}), one row per input:"
    ));
    for i in 0..features {
        o.values(
            &format!("    W4[{i}] ="),
            &t.net.dense.w[i * classes..(i + 1) * classes],
        );
    }
    o.values("    b4 =  ", &t.net.dense.b);
    for j in 0..classes {
        let terms: Vec<String> = (0..features)
            .map(|i| prod(f.a3[i], t.net.dense.w[i * classes + j]))
            .chain(std::iter::once(par(t.net.dense.b[j])))
            .collect();
        o.sum(&format!("  z4[{j}] ="), &terms, &format!("= {}", num(f.z4[j])));
    }
    o.line("  the logits a4 = z4 go to the loss, whose first step is softmax (part 2, the error)");
}

fn error(o: &mut Out, l: &ConvLesson) {
    let t = &l.trace;
    let s = &t.grads.loss;
    loss_part(
        o,
        &LossView {
            rows: t.rows,
            classes: t.net.dense.outputs,
            logits: "a4".into(),
            max: &s.m,
            exp: &s.e,
            sum: &s.sum,
            p: &s.p,
            y: &s.y,
            losses: &s.losses,
            loss: s.loss,
            labels: &t.labels,
            predicted: &t.predicted,
            correct: t.correct,
            output_error: &t.grads.dz4,
        },
    );
}
