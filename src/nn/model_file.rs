//! The model file: a small, versioned, checksummed binary format.
//!
//! All integers and floats are little-endian. Version 2 (written for
//! networks of dense layers only, so that older simdnets read them):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 8 | magic `SIMDNET\x01` |
//! | 8 | 4 | format version (`u32`, 2) |
//! | 12 | 4 | inputs per example (`u32`) |
//! | 16 | 4 | number of layers `L` (`u32`) |
//! | 20 | 5·L | per layer: outputs (`u32`), activation code (`u8`; the output layer is softmax: 255) |
//! | 20+5·L | 4 | input scale (`f32`: `1/255` for pixels read as 0..1, `1` for raw 0-255) |
//! | 24+5·L | 4 | L2 weight decay used in training (`f32`, 0: none) |
//! | 28+5·L | 8 | seed of the dropout masks (`u64`) |
//! | 36+5·L | 4·L | per layer: dropout rate after it in training (`f32`, 0 ≤ rate < 1; the output layer's is 0) |
//! | … | … | per layer: `W` as `inputs × outputs` `f32` row-major, then `b` as `outputs` `f32` |
//! | end-8 | 8 | FNV-1a 64-bit hash of every byte before it (`u64`) |
//!
//! Version 3 (written for networks with convolution, pooling or flatten
//! layers) is version 2 with a layer table that says each layer's kind:
//! per layer a kind byte, then
//!
//! | kind | fields after it |
//! |------|-----------------|
//! | 0 dense | outputs (`u32`), activation code (`u8`; 255 for the softmax output layer) |
//! | 1 conv2d | input height, width, channels (`u32` each), kernel height, width (`u32` each), filters (`u32`), padding (`u8`: 0 valid, 1 same), activation code (`u8`) |
//! | 2 max-pool 2x2 | input height, width, channels (`u32` each) |
//! | 3 flatten | input height, width, channels (`u32` each) |
//!
//! and the weights of a conv layer are its filters, `(kh·kw·c_in) × c_out`
//! `f32` row-major, then its `c_out` biases (pool and flatten have none).
//! Every image shape must chain: a layer's input image is the previous
//! layer's output image (or, for the first, has `inputs` values).
//!
//! Version 1 is version 2 without the fields after the layer table (its
//! models read pixels scaled by `1/255` and have no weight decay or
//! dropout); all three are read.
//!
//! Saving is atomic and safe ([`crate::safe_file`]): the bytes go to a fresh
//! temporary file in the same folder, which is flushed to disk and then
//! renamed over the target, so a crash leaves either the old file or the new
//! one, never half of one; only an absent path or a regular file is replaced.

use std::path::Path;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, ImageShape, Padding};
use crate::matrix::Matrix;
use crate::nn::conv::Conv2d;
use crate::nn::dense::Dense;
use crate::nn::layer::Layer;
use crate::nn::network::{Network, PIXEL_SCALE};
use crate::nn::pool::{Flatten, MaxPool2d};
use crate::{safe_file, safe_read};

/// The first eight bytes of every model file.
pub const MAGIC: [u8; 8] = *b"SIMDNET\x01";
/// The newest format version this code writes (for networks with image
/// layers; a network of dense layers is written as [`DENSE_VERSION`]).
pub const VERSION: u32 = 3;
/// The version written for a network of dense layers only.
pub const DENSE_VERSION: u32 = 2;
/// The oldest format version this code reads.
pub const OLDEST_VERSION: u32 = 1;
/// Activation code of the softmax output layer.
const SOFTMAX_CODE: u8 = 255;
/// Limits that reject absurd headers before anything is allocated.
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 20;
/// The largest kernel side a model file may hold.
const MAX_KERNEL: usize = 1 << 10;
/// Layer kind codes of version 3.
const KIND_DENSE: u8 = 0;
const KIND_CONV: u8 = 1;
const KIND_POOL: u8 = 2;
const KIND_FLATTEN: u8 = 3;

/// FNV-1a, 64 bit: a simple checksum that catches corruption and truncation.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The model as bytes (see the module docs for the layout).
pub fn to_bytes(net: &Network) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 4 * net.num_params());
    out.extend_from_slice(&MAGIC);
    let dense_only = net.layers().iter().all(|l| matches!(l, Layer::Dense(_)));
    let version = if dense_only { DENSE_VERSION } else { VERSION };
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(net.inputs() as u32).to_le_bytes());
    out.extend_from_slice(&(net.layers().len() as u32).to_le_bytes());
    let last = net.layers().len() - 1;
    let put_u32 = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u32).to_le_bytes());
    let put_image = |out: &mut Vec<u8>, s: ImageShape| {
        for v in [s.height(), s.width(), s.channels()] {
            put_u32(out, v);
        }
    };
    for (i, layer) in net.layers().iter().enumerate() {
        match layer {
            Layer::Dense(l) => {
                if !dense_only {
                    out.push(KIND_DENSE);
                }
                put_u32(&mut out, l.outputs());
                out.push(if i == last { SOFTMAX_CODE } else { l.act.code() });
            }
            Layer::Conv2d(c) => {
                let g = &c.geometry;
                out.push(KIND_CONV);
                put_image(&mut out, g.input());
                for v in [g.kernel_h(), g.kernel_w(), g.filters()] {
                    put_u32(&mut out, v);
                }
                out.push(match g.padding() {
                    Padding::Valid => 0,
                    Padding::Same => 1,
                });
                out.push(c.act.code());
            }
            Layer::MaxPool2d(p) => {
                out.push(KIND_POOL);
                put_image(&mut out, p.geometry.input());
            }
            Layer::Flatten(f) => {
                out.push(KIND_FLATTEN);
                put_image(&mut out, f.shape);
            }
        }
    }
    out.extend_from_slice(&net.input_scale().to_le_bytes());
    out.extend_from_slice(&net.weight_decay().to_le_bytes());
    out.extend_from_slice(&net.dropout_seed().to_le_bytes());
    for rate in net.dropout() {
        out.extend_from_slice(&rate.to_le_bytes());
    }
    for layer in net.layers() {
        for v in layer.params().into_iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads the body of a model file front to back; every read checks the
/// length first, so no input can make it index out of bounds.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes, or `None` if fewer are left.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }
}

/// One layer of the table, read and checked; the weights come later.
enum Shape {
    Dense {
        fan_in: usize,
        fan_out: usize,
        act: Activation,
    },
    Conv {
        geometry: Conv2dGeometry,
        act: Activation,
    },
    Pool(ImageShape),
    Flatten(ImageShape),
}

/// Parses a model from bytes (version 1, 2 or 3); `path` only names the file in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Network> {
    let bad = |problem: String| Error::BadModel {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(bad("it does not start with the simdnet model magic bytes".into()));
    }
    if bytes.len() < 28 {
        return Err(bad(format!("the file is truncated ({} bytes)", bytes.len())));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let mut r = Reader { bytes: body, at: 8 };
    let truncated = || bad("the header is truncated".into());
    let version = r.u32().ok_or_else(truncated)?;
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(bad(format!(
            "format version {version}; this simdnet reads versions {OLDEST_VERSION} to {VERSION}"
        )));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(tail);
    if fnv1a64(body) != u64::from_le_bytes(sum) {
        return Err(bad(
            "the checksum does not match: the file is corrupt or truncated".into(),
        ));
    }
    let inputs = r.u32().ok_or_else(truncated)? as usize;
    let nlayers = r.u32().ok_or_else(truncated)? as usize;
    if nlayers == 0 || nlayers > MAX_LAYERS || inputs == 0 || inputs > MAX_WIDTH {
        return Err(bad(format!(
            "implausible header: {inputs} inputs, {nlayers} layers"
        )));
    }
    let mut shapes = Vec::with_capacity(nlayers);
    let mut width = inputs;
    // The previous layer's output image (None: a row of values, or the input).
    let mut image: Option<ImageShape> = None;
    let mut floats = 0usize;
    for i in 0..nlayers {
        let table = || bad("the layer table is truncated".into());
        let kind = if version >= 3 {
            r.u8().ok_or_else(table)?
        } else {
            KIND_DENSE
        };
        let last = i + 1 == nlayers;
        if last && kind != KIND_DENSE {
            return Err(bad(format!(
                "the output layer has kind {kind}, expected a dense (softmax) layer"
            )));
        }
        let read_image = |r: &mut Reader| -> Result<ImageShape> {
            let mut v = [0usize; 3];
            for x in &mut v {
                *x = r.u32().ok_or_else(table)? as usize;
            }
            let n = v[0].saturating_mul(v[1]).saturating_mul(v[2]);
            if v.contains(&0) || n > MAX_WIDTH || n != width {
                return Err(bad(format!(
                    "layer {i} reads {}x{}x{} images, but its input has {width} values",
                    v[0], v[1], v[2]
                )));
            }
            let shape = ImageShape::new(1, v[0], v[1], v[2]).map_err(|e| bad(e.to_string()))?;
            if image.is_some_and(|prev| prev != shape) {
                return Err(bad(format!(
                    "layer {i} reads {}x{}x{} images, but the layer before it writes other images",
                    v[0], v[1], v[2]
                )));
            }
            Ok(shape)
        };
        let shape = match kind {
            KIND_DENSE => {
                let outputs = r.u32().ok_or_else(table)? as usize;
                let code = r.u8().ok_or_else(table)?;
                if outputs == 0 || outputs > MAX_WIDTH {
                    return Err(bad(format!("layer {i} has an implausible width {outputs}")));
                }
                let act = if last {
                    if code != SOFTMAX_CODE {
                        return Err(bad(format!(
                            "the output layer has activation code {code}, expected softmax"
                        )));
                    }
                    Activation::Identity
                } else {
                    Activation::from_code(code)
                        .ok_or_else(|| bad(format!("layer {i} has unknown activation code {code}")))?
                };
                Shape::Dense {
                    fan_in: width,
                    fan_out: outputs,
                    act,
                }
            }
            KIND_CONV => {
                let input = read_image(&mut r)?;
                let mut k = [0usize; 3];
                for x in &mut k {
                    *x = r.u32().ok_or_else(table)? as usize;
                }
                let pad = r.u8().ok_or_else(table)?;
                let code = r.u8().ok_or_else(table)?;
                if k[0] > MAX_KERNEL || k[1] > MAX_KERNEL || k[2] > MAX_WIDTH {
                    return Err(bad(format!(
                        "layer {i} has an implausible {}x{} kernel with {} filters",
                        k[0], k[1], k[2]
                    )));
                }
                let padding = match pad {
                    0 => Padding::Valid,
                    1 => Padding::Same,
                    p => return Err(bad(format!("layer {i} has unknown padding code {p}"))),
                };
                let act = Activation::from_code(code)
                    .ok_or_else(|| bad(format!("layer {i} has unknown activation code {code}")))?;
                let geometry = Conv2dGeometry::new(input, k[0], k[1], k[2], padding)
                    .map_err(|e| bad(format!("layer {i}: {e}")))?;
                if geometry.output().image_len() > MAX_WIDTH {
                    return Err(bad(format!(
                        "layer {i} writes {} values per example, more than a model may",
                        geometry.output().image_len()
                    )));
                }
                Shape::Conv { geometry, act }
            }
            KIND_POOL => {
                let input = read_image(&mut r)?;
                if input.height() < 2 || input.width() < 2 {
                    return Err(bad(format!(
                        "layer {i} pools {}x{} images, smaller than 2x2",
                        input.height(),
                        input.width()
                    )));
                }
                Shape::Pool(input)
            }
            KIND_FLATTEN => Shape::Flatten(read_image(&mut r)?),
            k => return Err(bad(format!("layer {i} has unknown kind {k}"))),
        };
        // widths are at most 2^20, kernels 2^10 and layers 1024: saturating is only a guard
        let (outputs, out_image, params) = match &shape {
            Shape::Dense { fan_in, fan_out, .. } => (
                *fan_out,
                None,
                fan_in.saturating_mul(*fan_out).saturating_add(*fan_out),
            ),
            Shape::Conv { geometry, .. } => (
                geometry.output().image_len(),
                Some(geometry.output()),
                geometry.weight_len().saturating_add(geometry.filters()),
            ),
            Shape::Pool(input) => {
                let out = ImageShape::new(1, input.height() / 2, input.width() / 2, input.channels())
                    .map_err(|e| bad(e.to_string()))?;
                (out.image_len(), Some(out), 0)
            }
            Shape::Flatten(input) => (input.image_len(), None, 0),
        };
        floats = floats.saturating_add(params);
        shapes.push(shape);
        width = outputs;
        image = out_image;
    }
    let (input_scale, weight_decay) = if version >= 2 {
        let scale = r.f32().ok_or_else(truncated)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad(format!(
                "the input scale is {scale}, not a positive finite number"
            )));
        }
        let decay = r.f32().ok_or_else(truncated)?;
        if !(decay.is_finite() && decay >= 0.0) {
            return Err(bad(format!(
                "the weight decay is {decay}, not a finite number >= 0"
            )));
        }
        (scale, decay)
    } else {
        (PIXEL_SCALE, 0.0)
    };
    let (dropout_seed, mut dropout) = (
        if version >= 2 {
            r.u64().ok_or_else(truncated)?
        } else {
            0
        },
        vec![0.0; nlayers],
    );
    if version >= 2 {
        for (i, rate) in dropout.iter_mut().enumerate() {
            *rate = r.f32().ok_or_else(truncated)?;
            let last = i + 1 == nlayers;
            if !(0.0..1.0).contains(rate) || (last && *rate != 0.0) {
                return Err(bad(format!(
                    "layer {i} has dropout rate {rate}, expected at least 0 and below 1 (0 for the output layer)"
                )));
            }
        }
    }
    let expected = r.at.saturating_add(floats.saturating_mul(4));
    if body.len() != expected {
        return Err(bad(format!(
            "the header describes {expected} bytes of model but the file has {}",
            body.len()
        )));
    }
    let mut values = body[r.at..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let mut layers = Vec::with_capacity(nlayers);
    for shape in shapes {
        let mut params = |rows: usize, cols: usize| -> Result<(Matrix, Vec<f32>)> {
            let w: Vec<f32> = values.by_ref().take(rows * cols).collect();
            let b: Vec<f32> = values.by_ref().take(cols).collect();
            Ok((Matrix::from_slice(rows, cols, &w), b))
        };
        layers.push(match shape {
            Shape::Dense { fan_in, fan_out, act } => {
                let (w, b) = params(fan_in, fan_out)?;
                Layer::Dense(Dense { w, b, act })
            }
            Shape::Conv { geometry, act } => {
                let rows = geometry.kernel_h() * geometry.kernel_w() * geometry.input().channels();
                let (w, b) = params(rows, geometry.filters())?;
                Layer::Conv2d(Conv2d { geometry, w, b, act })
            }
            Shape::Pool(input) => Layer::MaxPool2d(MaxPool2d::new(input).map_err(|e| bad(e.to_string()))?),
            Shape::Flatten(input) => Layer::Flatten(Flatten::new(input)),
        });
    }
    let net = Network::from_layers(inputs, layers)
        .and_then(|net| net.with_input_scale(input_scale))
        .and_then(|net| net.with_weight_decay(weight_decay))
        .and_then(|net| net.with_dropout_rates(&dropout[..nlayers - 1]))
        .map(|net| net.with_dropout_seed(dropout_seed))
        .map_err(|e| bad(e.to_string()))?;
    // the rule `save` applies too (`refuse_non_finite`)
    match net.non_finite_layer() {
        Some(i) => Err(bad(format!(
            "layer {i} holds a non-finite weight (NaN or infinity)"
        ))),
        None => Ok(net),
    }
}

/// Saves `net` to `path` atomically and safely (see [`crate::safe_file`]).
/// Refuses, writing nothing, a network with a NaN or infinite weight: no
/// reader would load it ([`load`] does not).
pub fn save(net: &Network, path: &Path) -> Result<()> {
    refuse_non_finite(net, path, "model")?;
    safe_file::write_atomic(path, &to_bytes(net), "model")
}

/// An error, naming `path`, if `net` holds a NaN or an infinity: what
/// [`save`] and a checkpoint's save check before they write.
pub fn refuse_non_finite(net: &Network, path: &Path, what: &str) -> Result<()> {
    match net.non_finite_layer() {
        None => Ok(()),
        Some(layer) => Err(Error::Save {
            path: path.to_path_buf(),
            what: what.to_string(),
            problem: format!(
                "layer {layer} of the network holds a NaN or infinite weight, which no model file may hold (nothing was written; train again with a lower learning rate)"
            ),
        }),
    }
}

/// Largest model file [`load`] reads: 4 GiB (a billion parameters).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Loads and validates a model file: a regular file of at most
/// [`MAX_FILE_BYTES`] (and within the memory cap, [`crate::nn::memory`]), read
/// with that bound whatever its size claims, so that `/dev/zero` or a huge
/// file fails at once.
pub fn load(path: &Path) -> Result<Network> {
    let bad = |problem: String| Error::BadModel {
        path: path.to_path_buf(),
        problem,
    };
    let unreadable = |e: std::io::Error| bad(format!("it cannot be read ({e})"));
    let (file, len) = safe_read::open_regular(path, unreadable, |kind| bad(format!("it is {kind}")))?;
    let too_big = |len: String| {
        bad(format!(
            "it is {len}, more than a model file may be ({})",
            crate::nn::memory::human(MAX_FILE_BYTES)
        ))
    };
    if len > MAX_FILE_BYTES {
        return Err(too_big(crate::nn::memory::human(len)));
    }
    // The bytes and the network built from them are both in memory at once.
    crate::nn::memory::check_with(
        len.saturating_mul(2),
        &format!("loading the model '{}'", path.display()),
        "check that it is a model saved by `simdnet train --save`; if it is,",
    )?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| bad("it does not fit in memory".into()))?;
    if !safe_read::read_at_most(file, MAX_FILE_BYTES, &mut bytes).map_err(unreadable)? {
        return Err(too_big("growing while it is read".into()));
    }
    from_bytes(&bytes, path)
}

impl Network {
    /// Saves the network to `path` in the model file format above, atomically
    /// and safely (the same as [`save`]).
    ///
    /// ```
    /// # use simdnet::nn::{Activation, Network};
    /// let net = Network::mlp(4, &[8], 3, Activation::Relu, 1)?;
    /// let path = std::env::temp_dir().join(format!("doc-{}.simdnet", std::process::id()));
    /// net.save(&path)?;
    /// assert_eq!(Network::load(&path)?, net);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), simdnet::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save(self, path.as_ref())
    }

    /// Loads and checks a model file written by [`Network::save`] (the same as [`load`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Network> {
        load(path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn bytes_round_trip() {
        let net = Network::mlp(5, &[4, 3], 2, Activation::Tanh, 7).unwrap();
        let back = from_bytes(&to_bytes(&net), Path::new("m")).unwrap();
        assert_eq!(net, back);
    }
}
