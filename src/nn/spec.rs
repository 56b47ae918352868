//! Saying a network in one line: the architecture spec behind `train --arch`
//! and the presets behind `train --model`, its checks (every shape, stated
//! layer by layer when one does not fit), the builder that makes the
//! [`Network`], and a Keras-like summary of any network.
//!
//! # The spec
//!
//! Items separated by commas, read left to right, the input first:
//!
//! | item | meaning |
//! |------|---------|
//! | `convKHxKWxF` | a `KH x KW` convolution with `F` filters, stride 1, padding `valid` |
//! | `convKHxKWxFsame` | the same with padding `same` (the output as high and wide as the input) |
//! | `convKHxKWxFvalid`, `…p0` | padding `valid`, said explicitly |
//! | `convKHxKWxFpN` | symmetric padding `N`: accepted only when it *is* `same` (an odd kernel, `N = (K-1)/2`: `conv5x5x6p2`) |
//! | `pool2` | 2x2 max-pooling, stride 2 |
//! | `flatten` | an image becomes one row (no value moves) |
//! | `denseN` | a dense layer of `N` units |
//! | `relu`, `tanh`, `sigmoid`, `identity` | the activation of the conv or dense layer just before (none given: identity, as in Keras) |
//! | `dropoutR` | inverted dropout of rate `R` (0 ≤ R < 1) on the output of the layer just before |
//!
//! The last item must be a dense layer with one unit per class: its output
//! goes through softmax inside the loss, so an activation or a dropout after
//! it is refused. A dense layer straight after an image (a conv or pool
//! output) is refused with the fix (`flatten` before it): Keras would apply
//! such a `Dense` to every pixel, simdnet would silently flatten; neither is
//! what a spec that forgot `flatten` means, so it says so.
//!
//! Example, LeNet-5 (the `lenet` preset):
//! `conv5x5x6same,relu,pool2,conv5x5x16,relu,pool2,flatten,dense120,relu,dense84,relu,dense10`.
//!
//! # Shapes
//!
//! The input shape comes from the data set ([`InputShape::of`]: MNIST's
//! images are 28x28x1; a table of values is a flat row with no image shape,
//! which only dense layers can read). A layer that does not fit gives one
//! error with the shape after every layer up to it, e.g.
//! `item 7 (conv5x5x16) does not fit: input 12x12x1 -> conv5x5x6 valid 8x8x6 -> … -> pool2 2x2x6 -> conv5x5x16 needs at least 5x5: …`.

use std::fmt::{self, Write as _};

use rand::SeedableRng;

use crate::activation::Activation;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::geometry::{ImageShape, Padding};
use crate::nn::conv::Conv2d;
use crate::nn::dense::Dense;
use crate::nn::init::glorot_uniform;
use crate::nn::layer::Layer;
use crate::nn::network::{Network, MAX_PARAMS};
use crate::nn::pool::{Flatten, MaxPool2d};

/// The presets `train --model NAME` knows, with their specs and one line each.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "lenet",
        "conv5x5x6same,relu,pool2,conv5x5x16,relu,pool2,flatten,dense120,relu,dense84,relu,dense10",
        "LeNet-5: conv 5x5 6 (pad 2 = same), ReLU, max-pool 2, conv 5x5 16, ReLU, max-pool 2, 120, 84, 10",
    ),
    (
        "keras-cnn",
        "conv3x3x32,relu,conv3x3x64,relu,pool2,dropout0.25,flatten,dense128,relu,dropout0.5,dense10",
        "Keras' mnist_cnn: conv 3x3 32, conv 3x3 64, max-pool 2, dropout 0.25, 128, dropout 0.5, 10",
    ),
];

/// The largest kernel side a spec may ask for (larger is surely a typo).
pub const MAX_KERNEL: usize = 64;
/// The most filters or dense units a spec item may ask for.
pub const MAX_UNITS: usize = 1 << 16;
/// The most items in one spec.
pub const MAX_ITEMS: usize = 256;

/// What one layer item of a spec asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum LayerKind {
    /// A `kernel_h x kernel_w` convolution with `filters` output channels.
    Conv {
        /// Filter rows.
        kernel_h: usize,
        /// Filter columns.
        kernel_w: usize,
        /// Output channels.
        filters: usize,
        /// `valid` or `same`.
        padding: Padding,
    },
    /// 2x2 max-pooling, stride 2.
    Pool,
    /// An image becomes one row.
    Flatten,
    /// A dense layer of `units` units.
    Dense {
        /// Units (outputs).
        units: usize,
    },
}

/// One layer of a spec, with the activation and dropout the items after it gave.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// The layer.
    pub kind: LayerKind,
    /// Its activation (conv and dense only; identity when none was given).
    pub act: Activation,
    /// The dropout rate on its output in training (0: none).
    pub dropout: f32,
    /// Its item as written (`conv5x5x6same`).
    pub token: String,
    /// Its place among the spec's items, from 1.
    pub item: usize,
}

impl LayerSpec {
    /// The item in canonical form (`conv5x5x6same`, `conv3x3x32`, `pool2`, `flatten`, `dense10`).
    pub fn canonical(&self) -> String {
        match self.kind {
            LayerKind::Conv {
                kernel_h,
                kernel_w,
                filters,
                padding,
            } => format!(
                "conv{kernel_h}x{kernel_w}x{filters}{}",
                if padding == Padding::Same { "same" } else { "" }
            ),
            LayerKind::Pool => "pool2".into(),
            LayerKind::Flatten => "flatten".into(),
            LayerKind::Dense { units } => format!("dense{units}"),
        }
    }

    /// The error's text for a second `what` (activation, dropout) given to this layer.
    fn second(&self, what: &str) -> String {
        format!(
            "is a second {what} for {} (item {}): give one {what} per layer",
            self.token, self.item
        )
    }
}

/// A parsed architecture spec (see the module docs): layers with their
/// activations and dropout, checked for everything that does not depend on
/// the input shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    layers: Vec<LayerSpec>,
}

/// The shape of one example the network reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputShape {
    /// A row of this many values with no image shape (a table).
    Flat(usize),
    /// An image, batch 1 (MNIST: 28x28x1).
    Image(ImageShape),
}

impl InputShape {
    /// The shape of `data`'s examples: an image (`rows x cols x 1`) when its
    /// examples have more than one row, else a flat row of values.
    pub fn of(data: &Dataset) -> InputShape {
        match ImageShape::new(1, data.image_rows(), data.image_cols(), 1) {
            Ok(shape) if data.image_rows() > 1 => InputShape::Image(shape),
            _ => InputShape::Flat(data.features()),
        }
    }

    /// Values per example.
    pub fn len(&self) -> usize {
        match self {
            InputShape::Flat(n) => *n,
            InputShape::Image(s) => s.image_len(),
        }
    }

    /// Whether there is no value (never, for a real data set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `28x28x1` for an image, `784` for a row.
impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputShape::Flat(n) => write!(f, "{n}"),
            InputShape::Image(s) => write!(f, "{}x{}x{}", s.height(), s.width(), s.channels()),
        }
    }
}

/// The spec of preset `name` (`lenet`, `keras-cnn`), or `None`.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|p| p.0 == name).map(|p| p.1)
}

fn item_error(item: usize, token: &str, problem: impl fmt::Display) -> Error {
    Error::Invalid(format!("item {item} ({token}) {problem}"))
}

/// A whole number from a spec item, at least 1 and at most `max`.
fn size(text: &str, item: usize, token: &str, what: &str, max: usize) -> Result<usize> {
    match text.parse::<usize>() {
        Ok(0) => Err(item_error(
            item,
            token,
            format!("has {what} 0: it must be at least 1"),
        )),
        Ok(n) if n <= max => Ok(n),
        Ok(n) => Err(item_error(
            item,
            token,
            format!("has {what} {n}, more than simdnet allows ({max})"),
        )),
        Err(_) => Err(item_error(
            item,
            token,
            format!("has {what} '{text}', not a whole number"),
        )),
    }
}

const CONV_FORM: &str = "a convolution is convKHxKWxFILTERS with an optional padding same or valid, e.g. conv5x5x6same or conv3x3x32";

/// Parses `convKHxKWxF[same|valid|pN]`.
fn parse_conv(body: &str, item: usize, token: &str) -> Result<LayerKind> {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let parts: Vec<&str> = body.splitn(3, 'x').collect();
    if parts.len() != 3 {
        return Err(item_error(
            item,
            token,
            format!("is not a convolution: {CONV_FORM}"),
        ));
    }
    let (f_text, pad_text) = parts[2].split_at(digits_end(parts[2]));
    if parts[0].is_empty() || parts[1].is_empty() || f_text.is_empty() {
        return Err(item_error(
            item,
            token,
            format!("is not a convolution: {CONV_FORM}"),
        ));
    }
    let kernel_h = size(parts[0], item, token, "kernel height", MAX_KERNEL)?;
    let kernel_w = size(parts[1], item, token, "kernel width", MAX_KERNEL)?;
    let filters = size(f_text, item, token, "filters", MAX_UNITS)?;
    let padding = match pad_text {
        "" | "valid" | "p0" => Padding::Valid,
        "same" => Padding::Same,
        p if p.len() > 1 && p.starts_with('p') && p[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let n: usize = p[1..].parse().unwrap_or(usize::MAX);
            let same_pad = (kernel_h - 1) / 2;
            if kernel_h == kernel_w && kernel_h % 2 == 1 && n == same_pad {
                Padding::Same
            } else if kernel_h == kernel_w && kernel_h % 2 == 1 {
                return Err(item_error(
                    item,
                    token,
                    format!(
                        "pads {n} on each side: simdnet pads 0 (valid, p0) or (K-1)/2 (same, p{same_pad} for a {kernel_h}x{kernel_w} kernel); write conv{kernel_h}x{kernel_w}x{filters}same or conv{kernel_h}x{kernel_w}x{filters}"
                    ),
                ));
            } else {
                return Err(item_error(
                    item,
                    token,
                    format!(
                        "pads {n} on each side, but a {kernel_h}x{kernel_w} kernel is not square and odd, so no symmetric padding keeps its size: write conv{kernel_h}x{kernel_w}x{filters}same (the extra row and column go bottom and right, as in Keras) or conv{kernel_h}x{kernel_w}x{filters}"
                    ),
                ));
            }
        }
        other => {
            return Err(item_error(
                item,
                token,
                format!("has an unknown padding '{other}': {CONV_FORM}"),
            ))
        }
    };
    Ok(LayerKind::Conv {
        kernel_h,
        kernel_w,
        filters,
        padding,
    })
}

/// What one item of a spec is.
enum Item {
    Layer(LayerKind),
    Act(Activation),
    Dropout(f32),
}

fn parse_item(token: &str, item: usize) -> Result<Item> {
    if let Ok(act) = token.parse::<Activation>() {
        return Ok(Item::Act(act));
    }
    if let Some(body) = token.strip_prefix("conv") {
        return parse_conv(body, item, token).map(Item::Layer);
    }
    if let Some(rest) = token.strip_prefix("pool") {
        return match rest {
            "2" | "" | "2x2" => Ok(Item::Layer(LayerKind::Pool)),
            _ => Err(item_error(
                item,
                token,
                "is not a pooling simdnet has: only 2x2 max-pooling with stride 2 (pool2)",
            )),
        };
    }
    if token == "flatten" {
        return Ok(Item::Layer(LayerKind::Flatten));
    }
    if let Some(n) = token.strip_prefix("dense") {
        if n.is_empty() {
            return Err(item_error(
                item,
                token,
                "gives no units: write denseN, e.g. dense128",
            ));
        }
        let units = size(n, item, token, "units", MAX_UNITS)?;
        return Ok(Item::Layer(LayerKind::Dense { units }));
    }
    if let Some(r) = token.strip_prefix("dropout") {
        return match r.parse::<f32>() {
            Ok(rate) if (0.0..1.0).contains(&rate) => Ok(Item::Dropout(rate)),
            _ => Err(item_error(
                item,
                token,
                "is not a dropout rate: write dropoutR with 0 <= R < 1, e.g. dropout0.25",
            )),
        };
    }
    Err(item_error(
        item,
        token,
        "is unknown: expected convKHxKWxF[same], pool2, flatten, denseN, dropoutR or an activation (relu, sigmoid, tanh, identity)",
    ))
}

impl Arch {
    /// Parses a spec (see the module docs).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the item (its place from 1 and its text)
    /// and the fix: an unknown item, a bad kernel or padding, an activation
    /// or dropout with no layer before it (or two for one layer, or one
    /// after a pool or flatten, which have no activation), a last item
    /// that is not a dense layer, or an activation or dropout after it.
    pub fn parse(spec: &str) -> Result<Arch> {
        let tokens: Vec<&str> = spec.split(',').map(str::trim).collect();
        if spec.trim().is_empty() {
            return Err(Error::Invalid(
                "the spec is empty: give layers separated by commas, e.g. conv3x3x8,relu,pool2,flatten,dense10"
                    .into(),
            ));
        }
        if tokens.len() > MAX_ITEMS {
            return Err(Error::Invalid(format!(
                "the spec has {} items, more than simdnet reads ({MAX_ITEMS})",
                tokens.len()
            )));
        }
        let mut layers: Vec<LayerSpec> = Vec::new();
        let mut act_given = false;
        let mut dropout_given = false;
        for (i, &token) in tokens.iter().enumerate() {
            let item = i + 1;
            if token.is_empty() {
                return Err(Error::Invalid(format!(
                    "item {item} is empty (two commas in a row, or a comma at an end): remove it"
                )));
            }
            let token_lc = token.to_ascii_lowercase();
            match parse_item(&token_lc, item)? {
                Item::Layer(kind) => {
                    layers.push(LayerSpec {
                        kind,
                        act: Activation::Identity,
                        dropout: 0.0,
                        token: token.to_string(),
                        item,
                    });
                    act_given = false;
                    dropout_given = false;
                }
                Item::Act(act) => {
                    let Some(prev) = layers.last_mut() else {
                        return Err(item_error(
                            item,
                            token,
                            "comes before any layer: an activation applies to the conv or dense layer before it",
                        ));
                    };
                    if matches!(prev.kind, LayerKind::Pool | LayerKind::Flatten) {
                        return Err(item_error(
                            item,
                            token,
                            format!(
                                "follows {} (item {}), which has no activation: put activations right after a conv or dense layer",
                                prev.token, prev.item
                            ),
                        ));
                    }
                    if act_given {
                        return Err(item_error(item, token, prev.second("activation")));
                    }
                    prev.act = act;
                    act_given = true;
                }
                Item::Dropout(rate) => {
                    let Some(prev) = layers.last_mut() else {
                        return Err(item_error(
                            item,
                            token,
                            "comes before any layer: a dropout applies to the output of the layer before it",
                        ));
                    };
                    if dropout_given {
                        return Err(item_error(item, token, prev.second("dropout")));
                    }
                    prev.dropout = rate;
                    dropout_given = true;
                }
            }
        }
        let last = layers.last().ok_or_else(|| {
            Error::Invalid(
                "the spec has no layer, only activations or dropouts: give layers such as conv3x3x8, pool2, flatten, dense10"
                    .into(),
            )
        })?;
        if !matches!(last.kind, LayerKind::Dense { .. }) {
            return Err(Error::Invalid(format!(
                "the last layer is {} (item {}): the spec must end with a dense layer of one unit per class, e.g. ...,flatten,dense10 for MNIST",
                last.token, last.item
            )));
        }
        if let Some(extra) = tokens.get(last.item) {
            let what = if extra.parse::<Activation>().is_ok() {
                "its activation is softmax, part of the loss"
            } else {
                "nothing may change its outputs before the softmax"
            };
            return Err(item_error(
                last.item + 1,
                extra,
                format!(
                    "follows the output layer {}: {what}; remove '{extra}'",
                    last.token
                ),
            ));
        }
        Ok(Arch { layers })
    }

    /// The spec of a preset name (`lenet`, `keras-cnn`), parsed.
    pub fn preset(name: &str) -> Option<Arch> {
        preset(name).and_then(|s| Arch::parse(s).ok())
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// The spec in canonical form (lower case, `same` spelled out, no
    /// `valid`/`p0`, dropout rates in Rust's shortest form): two specs that
    /// make the same network have the same canonical form.
    pub fn canonical(&self) -> String {
        let mut items = Vec::new();
        for l in &self.layers {
            items.push(l.canonical());
            if l.act != Activation::Identity {
                items.push(l.act.name().to_string());
            }
            if l.dropout > 0.0 {
                items.push(format!("dropout{}", l.dropout));
            }
        }
        items.join(",")
    }

    /// Checks every shape for `input` and `classes`, and returns the shape
    /// after each layer (batch 1 for images).
    ///
    /// # Errors
    /// [`Error::Invalid`] with the shape after every layer up to the one that
    /// does not fit, and the fix; or when the output layer's units are not
    /// `classes`, or the network would have more than [`MAX_PARAMS`] parameters.
    pub fn shapes(&self, input: InputShape, classes: usize) -> Result<Vec<InputShape>> {
        let mut trail = format!("input {input}");
        let mut shape = input;
        let mut out = Vec::with_capacity(self.layers.len());
        let mut params = 0usize;
        for l in &self.layers {
            let misfit = |problem: String| {
                Error::Invalid(format!(
                    "item {} ({}) does not fit: {trail} -> {problem}",
                    l.item, l.token
                ))
            };
            let next = match (l.kind, shape) {
                (
                    LayerKind::Conv {
                        kernel_h,
                        kernel_w,
                        filters,
                        padding,
                    },
                    InputShape::Image(img),
                ) => {
                    if padding == Padding::Valid && (kernel_h > img.height() || kernel_w > img.width()) {
                        return Err(misfit(format!(
                            "{} (valid) needs an image of at least {kernel_h}x{kernel_w} but gets {}x{}: use padding same ({}same) or fewer poolings or valid convolutions before it",
                            l.canonical(),
                            img.height(),
                            img.width(),
                            l.canonical()
                        )));
                    }
                    let out_h = if padding == Padding::Same {
                        img.height()
                    } else {
                        img.height() - kernel_h + 1
                    };
                    let out_w = if padding == Padding::Same {
                        img.width()
                    } else {
                        img.width() - kernel_w + 1
                    };
                    let weights = kernel_h * kernel_w * img.channels() * filters;
                    params = params.saturating_add(weights).saturating_add(filters);
                    InputShape::Image(ImageShape::new(1, out_h, out_w, filters)?)
                }
                (LayerKind::Pool, InputShape::Image(img)) => {
                    if img.height() < 2 || img.width() < 2 {
                        return Err(misfit(format!(
                            "pool2 needs an image of at least 2x2 but gets {}x{}: remove this pooling, or use padding same in the convolutions before it",
                            img.height(),
                            img.width()
                        )));
                    }
                    InputShape::Image(ImageShape::new(
                        1,
                        img.height() / 2,
                        img.width() / 2,
                        img.channels(),
                    )?)
                }
                (LayerKind::Flatten, InputShape::Image(img)) => InputShape::Flat(img.image_len()),
                (LayerKind::Dense { units }, InputShape::Flat(n)) => {
                    params = params
                        .saturating_add(n.saturating_mul(units))
                        .saturating_add(units);
                    InputShape::Flat(units)
                }
                (LayerKind::Dense { .. }, InputShape::Image(img)) => {
                    return Err(misfit(format!(
                        "{} reads a row of values, but gets a {}x{}x{} image: add flatten before it (...,flatten,{},...); simdnet does not flatten silently",
                        l.canonical(),
                        img.height(),
                        img.width(),
                        img.channels(),
                        l.canonical()
                    )));
                }
                (_, InputShape::Flat(n)) => {
                    let why = if l.item == 1 || out.is_empty() {
                        format!(
                            "{} needs an image, but the examples are rows of {n} values with no image shape: use dense layers only for such data (e.g. dense64,relu,dense{classes})",
                            l.canonical()
                        )
                    } else {
                        format!(
                            "{} needs an image, but gets a row of {n} values: put convolutions, poolings and flatten before the first dense layer or flatten",
                            l.canonical()
                        )
                    };
                    return Err(misfit(why));
                }
            };
            let _ = write!(trail, " -> {} {next}", describe_item(l));
            out.push(next);
            shape = next;
        }
        if let (Some(last), Some(InputShape::Flat(n))) = (self.layers.last(), out.last()) {
            if *n != classes {
                return Err(Error::Invalid(format!(
                    "the output layer {} (item {}) has {n} units but the data have {classes} classes: end the spec with dense{classes}",
                    last.token, last.item
                )));
            }
        }
        if params > MAX_PARAMS {
            return Err(Error::Invalid(format!(
                "the network has {params} parameters, more than simdnet trains ({MAX_PARAMS}): use fewer filters or units, or pool before the first dense layer"
            )));
        }
        Ok(out)
    }

    /// The network this spec describes for `input` and `classes`, with
    /// Glorot-uniform weights (Keras' conv fans for convolutions) and zero
    /// biases drawn in layer order from a generator seeded with `seed`, and
    /// its dropout masks seeded with `seed`: the same seed gives the same
    /// network bit for bit (and a spec of dense layers gives the same
    /// weights as [`Network::mlp_with`]).
    ///
    /// # Errors
    /// As [`Arch::shapes`].
    pub fn build(&self, input: InputShape, classes: usize, seed: u64) -> Result<Network> {
        self.shapes(input, classes)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut shape = input;
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let layer = match (l.kind, shape) {
                (
                    LayerKind::Conv {
                        kernel_h,
                        kernel_w,
                        filters,
                        padding,
                    },
                    InputShape::Image(img),
                ) => Layer::Conv2d(Conv2d::new(
                    img, kernel_h, kernel_w, filters, padding, l.act, &mut rng,
                )?),
                (LayerKind::Pool, InputShape::Image(img)) => Layer::MaxPool2d(MaxPool2d::new(img)?),
                (LayerKind::Flatten, InputShape::Image(img)) => Layer::Flatten(Flatten::new(img)),
                (LayerKind::Dense { units }, InputShape::Flat(width)) => Layer::Dense(Dense {
                    w: glorot_uniform(width, units, &mut rng),
                    b: vec![0.0; units],
                    act: if i + 1 == n { Activation::Identity } else { l.act },
                }),
                _ => unreachable!("Arch::shapes checked every pair"),
            };
            shape = match layer.output_image() {
                Some(img) => InputShape::Image(img),
                None => InputShape::Flat(layer.outputs()),
            };
            layers.push(layer);
        }
        let rates: Vec<f32> = self.layers[..n - 1].iter().map(|l| l.dropout).collect();
        Ok(Network::from_layers(input.len(), layers)?
            .with_dropout_rates(&rates)?
            .with_dropout_seed(seed))
    }
}

/// `conv5x5x6 same relu`, `pool2`, `dense120 relu`: an item in a shape trail.
fn describe_item(l: &LayerSpec) -> String {
    let mut s = match l.kind {
        LayerKind::Conv {
            kernel_h,
            kernel_w,
            filters,
            padding,
        } => format!("conv{kernel_h}x{kernel_w}x{filters} {padding}"),
        _ => l.canonical(),
    };
    if l.act != Activation::Identity {
        let _ = write!(s, " {}", l.act.name());
    }
    s
}

/// The spec that builds a network of `net`'s shape (`conv5x5x6same,relu,pool2,...,dense10`),
/// with its dropout; for a network of dense layers, the same items (`dense16,relu,dense10`).
pub fn spec_of(net: &Network) -> String {
    let mut items = Vec::new();
    let last = net.layers().len().saturating_sub(1);
    for (i, layer) in net.layers().iter().enumerate() {
        let act = match layer {
            Layer::Conv2d(c) => {
                let g = &c.geometry;
                items.push(format!(
                    "conv{}x{}x{}{}",
                    g.kernel_h(),
                    g.kernel_w(),
                    g.filters(),
                    if g.padding() == Padding::Same { "same" } else { "" }
                ));
                Some(c.act)
            }
            Layer::MaxPool2d(_) => {
                items.push("pool2".into());
                None
            }
            Layer::Flatten(_) => {
                items.push("flatten".into());
                None
            }
            Layer::Dense(d) => {
                items.push(format!("dense{}", d.outputs()));
                (i != last).then_some(d.act)
            }
        };
        if let Some(act) = act.filter(|a| *a != Activation::Identity) {
            items.push(act.name().to_string());
        }
        if let Some(rate) = net.dropout().get(i).filter(|r| **r > 0.0) {
            items.push(format!("dropout{rate}"));
        }
    }
    items.join(",")
}

/// `61,706`: thousands separated by commas, as Keras prints parameter counts.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `(28, 28, 1)` or `(784)`: a shape as a summary shows it.
fn shape_text(shape: InputShape) -> String {
    match shape {
        InputShape::Flat(n) => format!("({n})"),
        InputShape::Image(s) => format!("({}, {}, {})", s.height(), s.width(), s.channels()),
    }
}

/// The shape of one example a network reads: its first layer's input image,
/// or a row of [`Network::inputs`] values.
pub fn network_input(net: &Network) -> InputShape {
    match net.layers().first() {
        Some(Layer::Conv2d(c)) => InputShape::Image(c.geometry.input()),
        Some(Layer::MaxPool2d(p)) => InputShape::Image(p.geometry.input()),
        Some(Layer::Flatten(f)) => InputShape::Image(f.shape),
        _ => InputShape::Flat(net.inputs()),
    }
}

/// A table of every layer like Keras' `model.summary()`: its type (with
/// kernel, padding and activation), its output shape for one example and its
/// parameters; a dropout shows as its own row, as Keras' `Dropout` layer
/// does; then the totals.
///
/// ```text
/// Input shape: (28, 28, 1)
/// Layer (type)                Output shape     Param #
/// ====================================================
/// conv2d (5x5, same, relu)    (28, 28, 6)          156
/// ...
/// ====================================================
/// Total params: 61,706
/// ```
pub fn summary(net: &Network) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let last = net.layers().len().saturating_sub(1);
    for (i, layer) in net.layers().iter().enumerate() {
        let shape = match layer.output_image() {
            Some(img) => InputShape::Image(img),
            None => InputShape::Flat(layer.outputs()),
        };
        let kind = match layer {
            Layer::Conv2d(c) => {
                let g = &c.geometry;
                format!(
                    "conv2d ({}x{}, {}, {})",
                    g.kernel_h(),
                    g.kernel_w(),
                    g.padding(),
                    c.act.name()
                )
            }
            Layer::MaxPool2d(_) => "max_pooling2d (2x2)".to_string(),
            Layer::Dense(d) => format!("dense ({})", if i == last { "softmax" } else { d.act.name() }),
            other => other.kind_name().to_string(),
        };
        rows.push((kind, shape_text(shape), thousands(layer.num_params())));
        let rate = net.dropout().get(i).copied().unwrap_or(0.0);
        if rate > 0.0 {
            rows.push((format!("dropout ({rate})"), shape_text(shape), "0".into()));
        }
    }
    let head = ("Layer (type)", "Output shape", "Param #");
    // each column as wide as its widest cell, the heading included
    let width = |cell: fn(&(String, String, String)) -> usize, head: &str| {
        rows.iter().map(cell).chain([head.len()]).max().unwrap_or(0)
    };
    let w0 = width(|r| r.0.len(), head.0);
    let w1 = width(|r| r.1.len(), head.1);
    let w2 = width(|r| r.2.len(), head.2);
    let rule = "=".repeat(w0 + w1 + w2 + 4);
    let mut s = String::new();
    let _ = writeln!(s, "Input shape: {}", shape_text(network_input(net)));
    let _ = writeln!(s, "{:<w0$}  {:<w1$}  {:>w2$}", head.0, head.1, head.2);
    let _ = writeln!(s, "{rule}");
    for (a, b, c) in &rows {
        let _ = writeln!(s, "{a:<w0$}  {b:<w1$}  {c:>w2$}");
    }
    let _ = writeln!(s, "{rule}");
    let total = thousands(net.num_params());
    let _ = writeln!(s, "Total params: {total}");
    let _ = writeln!(s, "Trainable params: {total}");
    let _ = writeln!(s, "Non-trainable params: 0");
    s
}

/// A rough count of the bytes training `net`'s layers at `batch` examples on
/// `threads` threads needs (the parameters with their gradients and two
/// optimiser slots, plus per thread every layer's output, its error and its
/// gradient for a batch), to refuse a run that cannot fit before allocating.
pub fn training_bytes(shapes: &[InputShape], params: usize, batch: usize, threads: usize) -> u64 {
    let values: u64 = shapes.iter().map(|s| s.len() as u64).sum();
    let per_thread = values.saturating_mul(batch as u64).saturating_mul(3 * 4);
    (params as u64)
        .saturating_mul(4 * 4)
        .saturating_add(per_thread.saturating_mul(threads.max(1) as u64))
}

/// The number of parameters of a spec for `input` and `classes` (after
/// [`Arch::shapes`] has passed), without building the network.
pub fn count_params(arch: &Arch, input: InputShape, shapes: &[InputShape]) -> usize {
    let mut prev = input;
    let mut params = 0usize;
    for (l, &next) in arch.layers.iter().zip(shapes) {
        params = params.saturating_add(match (l.kind, prev) {
            (
                LayerKind::Conv {
                    kernel_h,
                    kernel_w,
                    filters,
                    ..
                },
                InputShape::Image(img),
            ) => kernel_h * kernel_w * img.channels() * filters + filters,
            (LayerKind::Dense { units }, p) => p.len().saturating_mul(units).saturating_add(units),
            _ => 0,
        });
        prev = next;
    }
    params
}

/// The multiply-adds of one example's forward pass through a spec for
/// `input` (after [`Arch::shapes`] has passed): a convolution does
/// `oh·ow·kh·kw·c_in·c_out`, a dense layer `in·out` (its weights).
pub fn multiply_adds(arch: &Arch, input: InputShape, shapes: &[InputShape]) -> usize {
    let mut prev = input;
    let mut macs = 0usize;
    for (l, &next) in arch.layers.iter().zip(shapes) {
        macs = macs.saturating_add(match (l.kind, prev, next) {
            (
                LayerKind::Conv {
                    kernel_h, kernel_w, ..
                },
                InputShape::Image(i),
                InputShape::Image(o),
            ) => o.image_len() * kernel_h * kernel_w * i.channels(),
            (LayerKind::Dense { units }, p, _) => p.len().saturating_mul(units),
            _ => 0,
        });
        prev = next;
    }
    macs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(850), "850");
        assert_eq!(thousands(61706), "61,706");
        assert_eq!(thousands(1199882), "1,199,882");
    }

    #[test]
    fn lenet_does_the_multiply_adds_of_the_issue() {
        // The issue: 2.5 MFLOP per training example (forward 2·MACs, backward twice that).
        let input = InputShape::Image(ImageShape::new(1, 28, 28, 1).unwrap());
        let arch = Arch::preset("lenet").unwrap();
        let macs = multiply_adds(&arch, input, &arch.shapes(input, 10).unwrap());
        assert_eq!(
            macs,
            28 * 28 * 6 * 25 + 10 * 10 * 16 * 25 * 6 + 400 * 120 + 120 * 84 + 84 * 10
        );
        assert_eq!((6 * macs + 50_000) / 100_000, 25, "{macs}");
    }

    #[test]
    fn presets_parse() {
        for (name, spec, _) in PRESETS {
            let arch = Arch::preset(name).unwrap();
            assert_eq!(&arch.canonical(), spec);
        }
    }
}
