//! Memory estimates and the memory cap: refuse work that would not fit
//! before allocating it, with a message instead of an abort.
//!
//! [`training_bytes`] estimates what training a network needs (parameters,
//! per-shard gradients and activations, optimiser state, packing buffers);
//! [`check`] compares an estimate with the cap ([`cap`]): by default 3/4 of
//! the smallest of physical memory (`MemTotal` in `/proc/meminfo`), the
//! process's address-space limit (`ulimit -v`, from `/proc/self/limits`) and
//! the cgroup's `memory.max`; [`FALLBACK_CAP`] when none can be read. The
//! environment variable [`ENV_VAR`] (`SIMDNET_MAX_MEMORY`, e.g. `8G`,
//! `500M`) replaces it; a value that is not a size is an error.

use std::fmt;

use crate::error::{Error, Result};
use crate::gemm;
use crate::nn::train::{SHARD_MAX_PARAMS, SHARD_ROWS};

/// The environment variable that sets the memory cap (`8G`, `500M`, `65536K`, bytes).
pub const ENV_VAR: &str = "SIMDNET_MAX_MEMORY";
/// The cap when no limit of the machine can be read: 4 GiB.
pub const FALLBACK_CAP: u64 = 4 << 30;
/// The default cap is this fraction (numerator, denominator) of the machine's memory.
pub const DEFAULT_FRACTION: (u64, u64) = (3, 4);
/// What the program itself needs besides its buffers (code, thread stacks, allocator): 64 MiB.
pub const BASELINE_BYTES: u64 = 64 << 20;
/// Rows per chunk of an evaluation (`nn::network`'s `EVAL_ROWS`).
const EVAL_ROWS: u64 = 256;

/// The memory cap in force and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cap {
    /// Bytes.
    pub bytes: u64,
    /// Where the number comes from, e.g. `3/4 of physical memory (23.4 GiB)`.
    pub source: String,
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", human(self.bytes), self.source)
    }
}

/// `1536` -> `1.5 KiB`; bytes in the largest binary unit that keeps the number at least 1.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a size such as `8G`, `500M`, `1.5G`, `64k`, `2GiB` or a number of
/// bytes (binary units: K = 1024). `None` if it is not one, or is 0.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let bytes = if number.contains('.') {
        let v: f64 = number.parse().ok()?;
        let b = v * (1u64 << shift) as f64;
        if !(b.is_finite() && b < u64::MAX as f64) {
            return None;
        }
        b as u64
    } else {
        number.parse::<u64>().ok()?.checked_mul(1 << shift)?
    };
    (bytes > 0).then_some(bytes)
}

/// The first number (in kB) on the line of `/proc/meminfo` that starts with `key`.
fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit of `Max address space` in a `/proc/self/limits` text, if not unlimited.
fn address_space_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A small file of the system, read with a bound (`None` if unreadable).
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// The machine's limits: `(bytes, what)` for physical memory, the address
/// space limit and the cgroup limit, those that can be read (read once).
fn machine_limits() -> &'static [(u64, &'static str)] {
    static LIMITS: std::sync::OnceLock<Vec<(u64, &'static str)>> = std::sync::OnceLock::new();
    LIMITS.get_or_init(read_machine_limits)
}

fn read_machine_limits() -> Vec<(u64, &'static str)> {
    let mut limits = Vec::new();
    if let Some(kib) = read_small("/proc/meminfo").and_then(|t| meminfo_kib(&t, "MemTotal:")) {
        limits.push((kib.saturating_mul(1024), "physical memory"));
    }
    if let Some(b) = read_small("/proc/self/limits").and_then(|t| address_space_limit(&t)) {
        limits.push((b, "the address-space limit (ulimit -v)"));
    }
    if let Some(b) = read_small("/sys/fs/cgroup/memory.max").and_then(|t| t.trim().parse::<u64>().ok()) {
        limits.push((b, "the cgroup's memory.max"));
    }
    limits
}

/// The memory cap: `SIMDNET_MAX_MEMORY` if set (an error if it is not a size),
/// else 3/4 of the machine's tightest limit, else [`FALLBACK_CAP`].
pub fn cap() -> Result<Cap> {
    if let Some(v) = std::env::var_os(ENV_VAR) {
        let text = v.to_string_lossy();
        return match parse_size(&text) {
            Some(bytes) => Ok(Cap {
                bytes,
                source: format!("set by {ENV_VAR}"),
            }),
            None => Err(Error::Invalid(format!(
                "{ENV_VAR}={} is not a memory size: give a whole number of bytes or a number with a unit K, M, G or T, e.g. {ENV_VAR}=8G or {ENV_VAR}=500M (or unset it for the default, 3/4 of physical memory)",
                text.escape_debug()
            ))),
        };
    }
    let (num, den) = DEFAULT_FRACTION;
    Ok(match machine_limits().iter().min_by_key(|&&(b, _)| b) {
        Some(&(bytes, what)) => Cap {
            bytes: bytes / den * num,
            source: format!("{num}/{den} of {what}, {}", human(bytes)),
        },
        None => Cap {
            bytes: FALLBACK_CAP,
            source: "the machine's memory could not be read".into(),
        },
    })
}

/// Checks that `bytes` (an estimate for `what`, e.g. "training 784-16-16-10
/// at batch 128 on 2 threads") fits under the [`cap`]; the error states the
/// estimate, the cap and the fixes (a smaller `--batch` or `--layers`, or a
/// higher `SIMDNET_MAX_MEMORY`).
pub fn check(bytes: u64, what: &str) -> Result<()> {
    check_with(
        bytes,
        what,
        "use a smaller --batch or fewer or narrower --layers, or",
    )
}

/// [`check`] with another fix than the flags: `fix` is followed by "raise the
/// cap with SIMDNET_MAX_MEMORY (e.g. ...)" in the message.
pub fn check_with(bytes: u64, what: &str, fix: &str) -> Result<()> {
    let cap = cap()?;
    if bytes <= cap.bytes {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{what} would need about {} of memory, more than the cap of {cap}: {fix} raise the cap with {ENV_VAR} (e.g. {ENV_VAR}={}G)",
        human(bytes),
        bytes.div_ceil(1 << 30).saturating_add(1)
    )))
}

/// Bytes of `floats` `f32`s, saturating.
fn floats(n: u64) -> u64 {
    n.saturating_mul(4)
}

/// Parameters of an MLP with these widths (inputs first): weights and biases.
pub fn parameters(widths: &[usize]) -> u64 {
    widths
        .windows(2)
        .map(|w| {
            (w[0] as u64)
                .saturating_mul(w[1] as u64)
                .saturating_add(w[1] as u64)
        })
        .fold(0u64, u64::saturating_add)
}

/// The GEMM's packing buffers of one thread (A~ and B~ at the current block
/// sizes), in bytes. They grow to the full blocks on the first large product.
pub fn packing_bytes_per_thread() -> u64 {
    let b = gemm::block_sizes();
    // The widest register tile of any kernel is well under 64 x 64.
    const TILE: u64 = 64;
    let (mc, kc, nc) = (b.mc as u64, b.kc as u64, b.nc as u64);
    let a = (mc.div_ceil(TILE) * TILE + TILE).saturating_mul(kc);
    let bb = (nc.div_ceil(TILE) * TILE).saturating_mul(kc);
    floats(a.saturating_add(bb))
}

/// Estimated bytes to train an MLP of `widths` (inputs first, outputs last)
/// on mini-batches of `batch` with `threads` threads, not counting the data
/// set: the parameters, two optimiser slots, per shard (see
/// [`crate::nn::train`]) a gradient of every parameter, the layer buffers
/// (`a`, `da`, `dz`) and the labels, the examples as `f32` (per shard,
/// and for the first layer's split), the evaluation's buffers per
/// thread, the GEMM's packing buffers per thread and [`BASELINE_BYTES`].
pub fn training_bytes(widths: &[usize], batch: usize, threads: usize) -> u64 {
    let params = parameters(widths);
    let batch = batch.max(1) as u64;
    let threads = threads.max(1) as u64;
    let shard_rows = if params > SHARD_MAX_PARAMS as u64 {
        batch
    } else {
        (SHARD_ROWS as u64).min(batch)
    };
    let shards = batch.div_ceil(shard_rows);
    let outputs: u64 = widths
        .iter()
        .skip(1)
        .map(|&w| w as u64)
        .fold(0, u64::saturating_add);
    let per_shard = floats(params)
        .saturating_add(floats(shard_rows.saturating_mul(outputs).saturating_mul(3)))
        .saturating_add(shard_rows);
    let evaluation = floats(EVAL_ROWS.saturating_mul(outputs).saturating_mul(2)).saturating_mul(threads);
    // The examples as f32, once per shard (the shards of a batch: a batch's
    // worth); and the first layer's split (`nn::split`): the examples again,
    // a dW of the first layer per shard and the parts' partial outputs (two
    // parts, more when inputs are over 1024); the examples as lists of
    // non-zeros (a column and a value for every input, at most) and, for a
    // wide layer, regrouped by four columns (a row and four values per group).
    let (inputs, first) = (widths[0] as u64, widths.get(1).map_or(0, |&w| w as u64));
    let small = params <= SHARD_MAX_PARAMS as u64;
    let shard_copies = batch.saturating_mul(inputs);
    let grouped = if first >= crate::gemm::sparse_rows::GROUPED_MIN_N as u64 {
        batch.saturating_mul(inputs.div_ceil(4)).saturating_mul(5)
    } else {
        0
    };
    let split = if small || first <= crate::nn::split::ONE_SHARD_MAX_OUTPUTS as u64 {
        batch
            .saturating_mul(inputs)
            .saturating_add(shards.saturating_mul(inputs).saturating_mul(first))
            .saturating_add(
                batch
                    .saturating_mul(first)
                    .saturating_mul(inputs.div_ceil(512).max(2)),
            )
            .saturating_add(batch.saturating_mul(inputs).saturating_mul(2))
            .saturating_add(grouped)
    } else {
        0
    };
    // evaluation's first layer from the non-zeros (`nn::split::SparseFirst`,
    // per thread; a narrow layer only where the pixels are read 64 at a
    // time): the lists, for a wide layer the groups, and two partial
    // products
    let takes = usize::try_from(first).is_ok_and(crate::nn::split::SparseFirst::takes);
    let sparse_evaluation = if takes {
        let rows = EVAL_ROWS;
        let groups = if first >= crate::gemm::sparse_rows::GROUPED_MIN_N as u64 {
            inputs.div_ceil(4).saturating_mul(5)
        } else {
            0
        };
        floats(
            rows.saturating_mul(inputs.saturating_mul(2).saturating_add(groups))
                .saturating_add(rows.saturating_mul(first).saturating_mul(2)),
        )
        .saturating_mul(threads)
    } else {
        0
    };
    let copies = floats(shard_copies.saturating_add(split));
    floats(params)
        .saturating_mul(3)
        .saturating_add(per_shard.saturating_mul(shards))
        .saturating_add(copies)
        .saturating_add(evaluation)
        .saturating_add(sparse_evaluation)
        .saturating_add(packing_bytes_per_thread().saturating_mul(threads + 1))
        .saturating_add(BASELINE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("500 MiB"), Some(500 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("12345"), Some(12345));
        for bad in ["", "0", "G", "8X", "-1G", "1.G", ".5G", "99999999999T", "8G8"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_the_proc_files() {
        assert_eq!(
            meminfo_kib("MemTotal:       24534820 kB\nMemFree: 1 kB\n", "MemTotal:"),
            Some(24534820)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max address space         2147483648           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(2147483648));
        let unlimited = "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(unlimited), None);
    }

    #[test]
    fn the_estimate_counts_every_large_buffer() {
        // The workshop network is small: dominated by the packing buffers and the baseline.
        let small = training_bytes(&[784, 16, 16, 10], 128, 2);
        assert!(small < 256 << 20, "{}", human(small));
        // 16000 x 15000 weights: parameters, gradients and two optimiser slots are 4 GB alone.
        let params = parameters(&[784, 16000, 15000, 10]);
        assert!(training_bytes(&[784, 16000, 15000, 10], 128, 2) > floats(params) * 4);
        // One shard of 60000 rows of 65536 activations, three buffers: 47 GB.
        assert!(training_bytes(&[784, 65536, 10], 60000, 2) > 3 * 60000 * 65536 * 4);
        // Absurd sizes saturate instead of overflowing.
        assert_eq!(
            training_bytes(&[usize::MAX, usize::MAX], usize::MAX, usize::MAX),
            u64::MAX
        );
    }
}
