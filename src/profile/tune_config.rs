//! The tuning file written by `simdnet tune` and read by `train` and `bench`.
//!
//! A small text file of `key = value` lines; `#` starts a comment line:
//!
//! ```text
//! # simdnet tuning file, written by `simdnet tune`
//! version = 1
//! cpu = AMD EPYC (family 25, model 1)
//! isa = AVX2 (8 lanes)
//! measured_kernel = simd-6x16
//! mc = 144
//! kc = 256
//! nc = 4080
//! kernel = simd-6x16
//! ```
//!
//! `cpu` (the CPU's model, [`machine::cpu_model`]), `isa` (the SIMD
//! instruction set and lanes of the build that measured,
//! [`crate::simd::isa_of`]) and `measured_kernel` (the micro-kernel the
//! block sizes were measured with) say where the file comes from; they are
//! optional, so files written before they existed still load. `kernel`, the
//! micro-kernel to force, is optional too. The other keys are required;
//! unknown or repeated keys, non-numeric values and other versions are
//! rejected with [`Error::BadConfig`] naming the line and the problem; text
//! from the file is shown escaped (no control bytes reach the terminal).
//!
//! A file that is well-formed but does not fit this machine is *ignored with
//! one warning* on standard error, never fatal ([`apply_from`]): written for
//! another CPU or another SIMD instruction set, naming a micro-kernel this
//! build does not have, or with block sizes outside the GEMM's ranges
//! ([`gemm::blocking::MC_RANGE`] and its neighbours). The warning names the
//! file and the fix: `simdnet tune` again, or delete the file. ([`parse`] and
//! [`load`] still reject out-of-range block sizes as errors; block sizes set
//! in the environment, `SIMDNET_MC` and friends, stay strict errors.) Reading is bounded: only a regular file of at most
//! [`MAX_FILE_BYTES`] is read. The file lives in
//! the current directory as `simdnet-tune.cfg`, or wherever the environment
//! variable `SIMDNET_TUNE_CONFIG` points. It is written atomically (a
//! temporary file in the same folder, then a rename).

use std::path::{Path, PathBuf};

use super::facts::describe;
use super::machine;
use crate::error::{escape_unprintable, printable, Error, Result};
use crate::gemm::{self, BlockSizes};
use crate::{safe_file, safe_read};

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// The file name used when `SIMDNET_TUNE_CONFIG` is not set.
pub const DEFAULT_PATH: &str = "simdnet-tune.cfg";
/// The environment variable naming another tuning file.
pub const ENV_PATH: &str = "SIMDNET_TUNE_CONFIG";
/// Largest tuning file read: 64 KiB (a real one is about 200 bytes).
pub const MAX_FILE_BYTES: u64 = 64 << 10;
/// Longest piece of the file quoted in an error message (characters).
const MAX_QUOTE: usize = 60;

/// What a tuning file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneConfig {
    /// The GEMM block sizes MC, KC, NC.
    pub blocks: BlockSizes,
    /// The micro-kernel to force, if the tuner found one better than the default choice.
    pub kernel: Option<String>,
}

/// The tuning file's path: `$SIMDNET_TUNE_CONFIG`, else `simdnet-tune.cfg`.
pub fn default_path() -> PathBuf {
    match std::env::var_os(ENV_PATH) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// `text` as it may be shown in a message: control characters and other
/// non-printing ones escaped (`\u{1b}`, `\n`), cut after `MAX_QUOTE` characters.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => escape_unprintable(&text[..cut]) + "...",
        None => escape_unprintable(text),
    }
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::BadConfig {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Where a tuning file was measured: its optional `cpu`, `isa` and
/// `measured_kernel` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The CPU's model name ([`machine::cpu_model`]).
    pub cpu: Option<String>,
    /// The build's SIMD instruction set and lanes ([`crate::simd::isa_of`]).
    pub isa: Option<String>,
    /// The micro-kernel the block sizes were measured with.
    pub measured_kernel: Option<String>,
}

impl Origin {
    /// This machine and build, with the micro-kernel in use now.
    pub fn here() -> Origin {
        Origin {
            cpu: Some(machine::cpu_model()),
            isa: Some(this_isa().to_string()),
            measured_kernel: Some(gemm::micro_kernel_name().to_string()),
        }
    }
}

/// The SIMD instruction set and lanes of this build, as the `isa` line says it.
fn this_isa() -> &'static str {
    let built: Vec<&str> = crate::simd::TARGET_FEATURES
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
    crate::simd::isa_of(&built)
}

/// A well-formed file: its settings (block sizes not yet range-checked) and origin.
struct Parsed {
    cfg: TuneConfig,
    origin: Origin,
}

/// Parses and validates the text of a tuning file (`path` is for messages only).
pub fn parse(text: &str, path: &Path) -> Result<TuneConfig> {
    let parsed = parse_parts(text, path, true)?;
    parsed.cfg.blocks.validate().map_err(|e| bad(path, e))?;
    Ok(parsed.cfg)
}

/// Parses a tuning file and its origin lines; `strict` also rejects block
/// sizes of 0 or above their range here, else only [`BlockSizes::validate`]
/// (called later) judges them.
fn parse_parts(text: &str, path: &Path, strict: bool) -> Result<Parsed> {
    let (mut version, mut mc, mut kc, mut nc, mut kernel) = (None, None, None, None, None);
    let mut origin = Origin::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let no = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(
                path,
                format!("line {no}: expected `key = value`, found '{}'", quote(line)),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let number = |what: &str, max: usize| -> Result<usize> {
            let max = if strict || what == "version" {
                max
            } else {
                usize::MAX
            };
            let v: usize = value.parse().map_err(|_| {
                bad(
                    path,
                    format!(
                        "line {no}: {what} must be a whole number, found '{}'",
                        quote(value)
                    ),
                )
            })?;
            if v == 0 && (strict || what == "version") {
                return Err(bad(
                    path,
                    format!("line {no}: {what} must be at least 1, found 0"),
                ));
            }
            if v > max {
                return Err(bad(
                    path,
                    format!("line {no}: {what} = {v} is absurdly large (allowed 1..={max})"),
                ));
            }
            Ok(v)
        };
        let slot: &mut Option<usize> = match key {
            "version" => &mut version,
            "mc" => &mut mc,
            "kc" => &mut kc,
            "nc" => &mut nc,
            "kernel" | "measured_kernel" => {
                let slot = if key == "kernel" { &mut kernel } else { &mut origin.measured_kernel };
                if slot.is_some() {
                    return Err(bad(path, format!("line {no}: '{key}' is given twice")));
                }
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(bad(
                        path,
                        format!("line {no}: kernel name '{}' is not a name", quote(value)),
                    ));
                }
                *slot = Some(value.to_string());
                continue;
            }
            "cpu" | "isa" => {
                let slot = if key == "cpu" { &mut origin.cpu } else { &mut origin.isa };
                if slot.is_some() {
                    return Err(bad(path, format!("line {no}: '{key}' is given twice")));
                }
                if value.is_empty() || value.chars().any(|c| !printable(c)) {
                    return Err(bad(
                        path,
                        format!("line {no}: '{key}' must be a line of text, found '{}'", quote(value)),
                    ));
                }
                *slot = Some(value.to_string());
                continue;
            }
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "line {no}: unknown key '{}' (expected version, cpu, isa, measured_kernel, mc, kc, nc or kernel)",
                        quote(key)
                    ),
                ))
            }
        };
        if slot.is_some() {
            return Err(bad(path, format!("line {no}: '{key}' is given twice")));
        }
        *slot = Some(match key {
            "version" => number("version", u32::MAX as usize)?,
            "mc" => number("mc", *gemm::blocking::MC_RANGE.end())?,
            "kc" => number("kc", *gemm::blocking::KC_RANGE.end())?,
            _ => number("nc", *gemm::blocking::NC_RANGE.end())?,
        });
    }
    match version {
        None => return Err(bad(path, format!("no `version = {VERSION}` line"))),
        Some(v) if v != VERSION as usize => {
            return Err(bad(
                path,
                format!("version {v} is not supported (this build reads version {VERSION})"),
            ))
        }
        Some(_) => {}
    }
    let missing = |k: &str| bad(path, format!("the key '{k}' is missing"));
    let blocks = BlockSizes {
        mc: mc.ok_or_else(|| missing("mc"))?,
        kc: kc.ok_or_else(|| missing("kc"))?,
        nc: nc.ok_or_else(|| missing("nc"))?,
    };
    Ok(Parsed {
        cfg: TuneConfig { blocks, kernel },
        origin,
    })
}

/// The text of a tuning file; `comment` lines (without `#`) go on top.
fn to_text(cfg: &TuneConfig, comment: &[String]) -> String {
    let mut s = String::from(
        "# simdnet tuning file, written by `simdnet tune`; read by `simdnet train` and `bench`.\n",
    );
    for c in comment {
        s.push_str(&format!("# {c}\n"));
    }
    s.push_str(&format!("version = {VERSION}\n"));
    let origin = Origin::here();
    for (key, value) in [
        ("cpu", &origin.cpu),
        ("isa", &origin.isa),
        ("measured_kernel", &origin.measured_kernel),
    ] {
        if let Some(v) = value {
            s.push_str(&format!("{key} = {v}\n"));
        }
    }
    s.push_str(&format!(
        "mc = {}\nkc = {}\nnc = {}\n",
        cfg.blocks.mc, cfg.blocks.kc, cfg.blocks.nc
    ));
    if let Some(k) = &cfg.kernel {
        s.push_str(&format!("kernel = {k}\n"));
    }
    s
}

/// Reads and validates a tuning file: a regular file of at most
/// [`MAX_FILE_BYTES`], UTF-8 text.
pub fn load(path: &Path) -> Result<TuneConfig> {
    let parsed = load_parts(path, true)?;
    parsed.cfg.blocks.validate().map_err(|e| bad(path, e))?;
    Ok(parsed.cfg)
}

/// [`load`] with the origin lines; see [`parse_parts`] for `strict`.
fn load_parts(path: &Path, strict: bool) -> Result<Parsed> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        action: "read the tuning file",
        source,
    };
    let (file, _) = safe_read::open_regular(path, io, |kind| {
        Error::Invalid(format!(
            "the tuning file '{}' is {kind}: point {ENV_PATH} at a tuning file written by `simdnet tune` (or unset it), or pass --no-tune-config",
            path.display()
        ))
    })?;
    let mut bytes = Vec::new();
    if !safe_read::read_at_most(file, MAX_FILE_BYTES, &mut bytes).map_err(io)? {
        return Err(bad(
            path,
            format!(
                "it is larger than {} KiB; a tuning file is a few lines",
                MAX_FILE_BYTES >> 10
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(
            path,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    parse_parts(&text, path, strict)
}

/// Writes a tuning file atomically and safely (see [`crate::safe_file`]).
pub fn save(path: &Path, cfg: &TuneConfig, comment: &[String]) -> Result<()> {
    safe_file::write_atomic(path, to_text(cfg, comment).as_bytes(), "tuning file")
}

/// Why a well-formed tuning file does not fit this machine and build, if it does not.
fn misfit(parsed: &Parsed) -> Option<String> {
    let origin = &parsed.origin;
    let cpu_here = machine::cpu_model();
    let isa_here = this_isa();
    let from = |what: &str| match &origin.cpu {
        Some(cpu) => format!("{what} on the CPU '{}'", quote(cpu)),
        None => what.to_string(),
    };
    if let Some(isa) = origin.isa.as_deref().filter(|&isa| isa != isa_here) {
        return Some(format!(
            "it was measured {}, but this build uses {isa_here}",
            from(&format!("with {}", quote(isa)))
        ));
    }
    if let Some(cpu) = origin.cpu.as_deref().filter(|&cpu| cpu != cpu_here) {
        return Some(format!(
            "it was measured on the CPU '{}', but this one is '{}'",
            quote(cpu),
            quote(&cpu_here)
        ));
    }
    if let Some(k) = &parsed.cfg.kernel {
        if !gemm::kernel::all_kernels().any(|m| m.name == k) {
            let names: Vec<&str> = gemm::kernel::all_kernels().map(|m| m.name).collect();
            return Some(format!(
                "it names the micro-kernel '{}', which this build ({isa_here}) does not have (it has {})",
                quote(k),
                names.join(", ")
            ));
        }
    }
    parsed
        .cfg
        .blocks
        .validate()
        .err()
        .map(|e| format!("its block sizes do not fit this build: {e}"))
}

/// The warning for a tuning file at `path` that is ignored because of `why`.
pub fn ignored_warning(path: &Path, why: &str) -> String {
    format!(
        "warning: ignoring the tuning file '{}': {why}; run `simdnet tune` again on this machine, or delete the file",
        path.display()
    )
}

/// Applies the tuning file at `path` if it exists and `ignore` is false;
/// returns a line saying what was used (or why it was not). First checks
/// the block sizes set in the environment ([`gemm::blocking::check_env`]):
/// a bad value is an error here, not silently ignored. A malformed file is an
/// error; a well-formed file that does not fit this machine (see the module
/// docs) is not applied: one warning ([`ignored_warning`]) goes to standard
/// error and `Ok(None)` is returned.
pub fn apply_from(path: &Path, ignore: bool) -> Result<Option<String>> {
    gemm::blocking::check_env()?;
    if ignore || !path.exists() {
        return Ok(None);
    }
    let parsed = load_parts(path, false)?;
    let env: Vec<&str> = ["SIMDNET_MC", "SIMDNET_KC", "SIMDNET_NC"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    if !env.is_empty() {
        return Ok(Some(format!(
            "Not using {}: {} set in the environment takes precedence",
            path.display(),
            env.join(", ")
        )));
    }
    if let Some(why) = misfit(&parsed) {
        use std::io::Write;
        // Nowhere to report a failure to write to standard error.
        let _ = writeln!(std::io::stderr().lock(), "{}", ignored_warning(path, &why));
        return Ok(None);
    }
    let cfg = parsed.cfg;
    if let Some(k) = &cfg.kernel {
        gemm::set_kernel(Some(k))
            .map_err(|e| bad(path, format!("{e} (this build cannot use the tuned kernel)")))?;
    }
    gemm::set_block_sizes(cfg.blocks);
    let kernel = cfg
        .kernel
        .as_ref()
        .map_or(String::new(), |k| format!(" and micro-kernel {k}"));
    Ok(Some(format!(
        "Using block sizes {}{kernel} from {} (ignore with --no-tune-config)",
        describe(cfg.blocks),
        path.display()
    )))
}

/// Applies the tuning file at [`default_path`] if present and not ignored;
/// returns a line saying what was used.
pub fn apply_if_present(ignore: bool) -> Result<Option<String>> {
    apply_from(&default_path(), ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_what_is_not_printable_and_cuts_long_text() {
        assert_eq!(quote("simd\u{1b}[2J-12x32\n"), "simd\\u{1b}[2J-12x32\\n");
        assert_eq!(quote("a\u{202e}b\u{feff}"), "a\\u{202e}b\\u{feff}");
        let exact = "é".repeat(MAX_QUOTE);
        assert_eq!(quote(&exact), exact);
        let long = exact.clone() + "x";
        assert_eq!(quote(&long), exact + "...");
        // cut by characters, then escaped: an escape after the cut is not shown
        let tail = "y".repeat(MAX_QUOTE) + "\u{1b}";
        assert_eq!(quote(&tail), "y".repeat(MAX_QUOTE) + "...");
    }
}
