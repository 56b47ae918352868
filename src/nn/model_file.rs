//! The model file: a small, versioned, checksummed binary format.
//!
//! All integers and floats are little-endian.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 8 | magic `SIMDNET\x01` |
//! | 8 | 4 | format version (`u32`, currently 1) |
//! | 12 | 4 | inputs per example (`u32`) |
//! | 16 | 4 | number of layers `L` (`u32`) |
//! | 20 | 5·L | per layer: outputs (`u32`), activation code (`u8`; the output layer is softmax: 255) |
//! | … | … | per layer: `W` as `inputs × outputs` `f32` row-major, then `b` as `outputs` `f32` |
//! | end-8 | 8 | FNV-1a 64-bit hash of every byte before it (`u64`) |
//!
//! Saving is atomic and safe ([`crate::safe_file`]): the bytes go to a fresh
//! temporary file in the same folder, which is flushed to disk and then
//! renamed over the target, so a crash leaves either the old file or the new
//! one, never half of one; only an absent path or a regular file is replaced.

use std::fs;
use std::path::Path;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::nn::dense::Dense;
use crate::nn::layer::Layer;
use crate::nn::network::Network;
use crate::safe_file;

/// The first eight bytes of every model file.
pub const MAGIC: [u8; 8] = *b"SIMDNET\x01";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Activation code of the softmax output layer.
const SOFTMAX_CODE: u8 = 255;
/// Limits that reject absurd headers before anything is allocated.
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 20;

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
    let mut out = Vec::with_capacity(32 + 4 * net.num_params());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(net.inputs() as u32).to_le_bytes());
    out.extend_from_slice(&(net.layers().len() as u32).to_le_bytes());
    let last = net.layers().len() - 1;
    for (i, layer) in net.layers().iter().enumerate() {
        match layer {
            Layer::Dense(l) => {
                out.extend_from_slice(&(l.outputs() as u32).to_le_bytes());
                out.push(if i == last { SOFTMAX_CODE } else { l.act.code() });
            }
        }
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

/// Parses a model from bytes; `path` only names the file in errors.
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
    let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let version = u32_at(8);
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}; this simdnet reads version {VERSION}"
        )));
    }
    let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
    if fnv1a64(body) != stored {
        return Err(bad(
            "the checksum does not match: the file is corrupt or truncated".into(),
        ));
    }
    let inputs = u32_at(12) as usize;
    let nlayers = u32_at(16) as usize;
    if nlayers == 0 || nlayers > MAX_LAYERS || inputs == 0 || inputs > MAX_WIDTH {
        return Err(bad(format!(
            "implausible header: {inputs} inputs, {nlayers} layers"
        )));
    }
    let header_end = 20 + 5 * nlayers;
    if body.len() < header_end {
        return Err(bad("the layer table is truncated".into()));
    }
    let mut shapes = Vec::with_capacity(nlayers);
    let mut width = inputs;
    let mut expected = header_end;
    for i in 0..nlayers {
        let outputs = u32_at(20 + 5 * i) as usize;
        let code = bytes[24 + 5 * i];
        if outputs == 0 || outputs > MAX_WIDTH {
            return Err(bad(format!("layer {i} has an implausible width {outputs}")));
        }
        let act = if i + 1 == nlayers {
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
        expected += 4 * (width * outputs + outputs);
        shapes.push((width, outputs, act));
        width = outputs;
    }
    if body.len() != expected {
        return Err(bad(format!(
            "the header describes {expected} bytes of model but the file has {}",
            body.len()
        )));
    }
    let mut floats = body[header_end..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
    let mut layers = Vec::with_capacity(nlayers);
    for (i, &(fan_in, fan_out, act)) in shapes.iter().enumerate() {
        let w: Vec<f32> = floats.by_ref().take(fan_in * fan_out).collect();
        let b: Vec<f32> = floats.by_ref().take(fan_out).collect();
        if w.iter().chain(&b).any(|v| !v.is_finite()) {
            return Err(bad(format!(
                "layer {i} holds a non-finite weight (NaN or infinity)"
            )));
        }
        layers.push(Layer::Dense(Dense {
            w: Matrix::from_slice(fan_in, fan_out, &w),
            b,
            act,
        }));
    }
    Network::from_layers(inputs, layers).map_err(|e| bad(e.to_string()))
}

/// Saves `net` to `path` atomically and safely (see [`crate::safe_file`]).
pub fn save(net: &Network, path: &Path) -> Result<()> {
    safe_file::write_atomic(path, &to_bytes(net), "model")
}

/// Largest model file [`load`] reads: 4 GiB (a billion parameters).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Loads and validates a model file: a regular file of at most
/// [`MAX_FILE_BYTES`] (and within the memory cap, [`crate::nn::memory`]), read
/// with that bound whatever its size claims, so that `/dev/zero` or a huge
/// file fails at once.
pub fn load(path: &Path) -> Result<Network> {
    use std::io::Read;
    let bad = |problem: String| Error::BadModel {
        path: path.to_path_buf(),
        problem,
    };
    let unreadable = |e: std::io::Error| bad(format!("it cannot be read ({e})"));
    let regular = |meta: fs::Metadata| {
        if meta.is_file() {
            return Ok(meta);
        }
        let kind = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a device, a pipe or a socket)"
        };
        Err(bad(format!("it is {kind}")))
    };
    // Look before opening (opening a FIFO would block), then at what was opened.
    regular(fs::metadata(path).map_err(unreadable)?)?;
    let file = fs::File::open(path).map_err(unreadable)?;
    let meta = regular(file.metadata().map_err(unreadable)?)?;
    let too_big = |len: String| {
        bad(format!(
            "it is {len}, more than a model file may be ({})",
            crate::nn::memory::human(MAX_FILE_BYTES)
        ))
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(crate::nn::memory::human(meta.len())));
    }
    // The bytes and the network built from them are both in memory at once.
    crate::nn::memory::check_with(
        meta.len().saturating_mul(2),
        &format!("loading the model '{}'", path.display()),
        "check that it is a model saved by `simdnet train --save`; if it is,",
    )?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(meta.len() as usize)
        .map_err(|_| bad("it does not fit in memory".into()))?;
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big("growing while it is read".into()));
    }
    from_bytes(&bytes, path)
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
