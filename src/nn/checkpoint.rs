//! The checkpoint file: everything a training run needs to continue bit for
//! bit after a stop (the weights, the optimiser and its state, the
//! configuration, the position, the history, the early-stopping state).
//!
//! All integers and floats are little-endian.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 8 | magic `SIMDCKP\x01` |
//! | 8 | 4 | format version (`u32`, currently 1) |
//! | 12 | 4 | number of sections `S` (`u32`, at most [`MAX_SECTIONS`]) |
//! | 16 | … | `S` sections: tag (4 bytes), length `n` (`u64`), `n` bytes |
//! | end-8 | 8 | FNV-1a 64-bit hash of every byte before it (`u64`) |
//!
//! Sections, in this order (readers find them by tag and ignore tags they do
//! not know):
//! - `CONF`: UTF-8 text, one `key=value` per line: the training
//!   configuration (`epochs`, `batch`, `seed`, `shuffle`, `early-stopping`),
//!   the optimiser (`optimizer`, `lr`, `momentum`, `rho`, `eps`, `beta1`,
//!   `beta2`), the position (`examples`, `epochs-done`, and inside an
//!   interrupted epoch `step`, `loss-sum`, `correct`, `seen`,
//!   `epoch-seconds`), `start-loss`, the early-stopping state
//!   (`best-val-loss`, `best-epoch`, `wait`, `stopped-early`), and any keys
//!   the caller adds (the CLI records `layers`, `activation`, `limit`,
//!   `validation-split`, ...). New options add keys; old readers keep them.
//!   Floats are written in Rust's shortest form that reads back exactly.
//! - `HIST`: UTF-8 text, one line per completed epoch:
//!   `epoch,loss,accuracy,val_loss,val_accuracy,train_seconds,validation_seconds`
//!   (the validation fields empty when there was none).
//! - `MODL`: the network as a model file ([`model_file::to_bytes`]), an opaque blob.
//! - `OPTS`: the optimiser state: steps (`u64`), tensors `T` (`u32`), then
//!   per tensor its length `n` (`u64`), `slot1` and `slot2` as `n` `f32` each.
//! - `BEST` (optional): the early-stopping best weights, as a model file.
//!
//! The shuffle generator is not stored: [`Session`] re-creates it from the
//! seed and replays the completed epochs' shuffles. Every read is bounded:
//! lengths are checked against the bytes left before anything is allocated.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::nn::memory;
use crate::nn::model_file::{self, fnv1a64};
use crate::nn::network::{Evaluation, Network};
use crate::nn::optim::{Optimizer, OptimizerState};
use crate::nn::train::{EarlyStopping, EpochStats, PartialEpoch, Session, TrainConfig};
use crate::{safe_file, safe_read};

/// The first eight bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"SIMDCKP\x01";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Most sections a file may declare.
pub const MAX_SECTIONS: usize = 64;
/// Largest checkpoint read (the weights, their best copy and two optimiser
/// slots of the largest network allowed, with room to spare).
pub const MAX_BYTES: u64 = 1 << 33;

/// A checkpoint, read back: the network, the run ready to continue, its
/// configuration, and every `key=value` of the `CONF` section (in order,
/// including keys added by the caller).
pub struct Checkpoint {
    /// The network's weights at the checkpoint.
    pub net: Network,
    /// The run, ready to continue where it stopped.
    pub session: Session,
    /// The run's training configuration.
    pub cfg: TrainConfig,
    /// Every `key=value` of the `CONF` section, in order.
    pub config: Vec<(String, String)>,
}

impl Checkpoint {
    /// The value of `key` in the `CONF` section.
    pub fn get(&self, key: &str) -> Option<&str> {
        lookup(&self.config, key)
    }
}

fn lookup<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The `key=value` pairs that describe `optimizer`.
pub fn optimizer_pairs(optimizer: &Optimizer) -> Vec<(String, String)> {
    let p = |k: &str, v: String| (k.to_string(), v);
    match *optimizer {
        Optimizer::Sgd { lr, momentum: 0.0 } => {
            vec![p("optimizer", "sgd".into()), p("lr", lr.to_string())]
        }
        Optimizer::Sgd { lr, momentum } => vec![
            p("optimizer", "momentum".into()),
            p("lr", lr.to_string()),
            p("momentum", momentum.to_string()),
        ],
        Optimizer::RmsProp { lr, rho, eps } => vec![
            p("optimizer", "rmsprop".into()),
            p("lr", lr.to_string()),
            p("rho", rho.to_string()),
            p("eps", eps.to_string()),
        ],
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => vec![
            p("optimizer", "adam".into()),
            p("lr", lr.to_string()),
            p("beta1", beta1.to_string()),
            p("beta2", beta2.to_string()),
            p("eps", eps.to_string()),
        ],
    }
}

/// The checkpoint of `net` trained by `session` under `cfg`, with the
/// caller's own `extra` keys in the `CONF` section.
pub fn to_bytes(net: &Network, session: &Session, cfg: &TrainConfig, extra: &[(String, String)]) -> Vec<u8> {
    let mut conf = String::new();
    let mut put = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(conf, "{k}={v}");
    };
    put("epochs", &cfg.epochs);
    put("batch", &cfg.batch_size);
    put("seed", &cfg.seed);
    put("shuffle", &cfg.shuffle);
    if let Some(p) = cfg.early_stopping {
        put("early-stopping", &p);
    }
    for (k, v) in optimizer_pairs(&session.trainer.optimizer) {
        put(&k, &v);
    }
    put("examples", &session.examples());
    put("epochs-done", &session.epochs_done);
    if let Some(p) = &session.partial {
        put("step", &p.step);
        put("loss-sum", &p.loss_sum);
        put("correct", &p.correct);
        put("seen", &p.seen);
        put("epoch-seconds", &p.seconds);
    }
    if let Some(s) = session.start_loss {
        put("start-loss", &s);
    }
    put("best-val-loss", &session.early.best_loss);
    put("best-epoch", &session.early.best_epoch);
    put("wait", &session.early.wait);
    if let Some(e) = session.stopped_early {
        put("stopped-early", &e);
    }
    for (k, v) in extra {
        put(k, v);
    }

    let mut hist = String::new();
    for h in &session.history {
        let (vl, va) = h.validation.map_or((String::new(), String::new()), |v| {
            (v.loss.to_string(), v.accuracy.to_string())
        });
        let _ = writeln!(
            hist,
            "{},{},{},{vl},{va},{},{}",
            h.epoch, h.loss, h.accuracy, h.train_seconds, h.validation_seconds
        );
    }

    let state = &session.trainer.state;
    let (slot1, slot2) = state.slots();
    let mut opts = Vec::with_capacity(12 + slot1.iter().map(|s| 8 + 8 * s.len()).sum::<usize>());
    opts.extend_from_slice(&state.steps.to_le_bytes());
    opts.extend_from_slice(&(slot1.len() as u32).to_le_bytes());
    for (a, b) in slot1.iter().zip(slot2) {
        opts.extend_from_slice(&(a.len() as u64).to_le_bytes());
        a.iter()
            .chain(b)
            .for_each(|v| opts.extend_from_slice(&v.to_le_bytes()));
    }

    let mut sections: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"CONF", conf.into_bytes()),
        (b"HIST", hist.into_bytes()),
        (b"MODL", model_file::to_bytes(net)),
        (b"OPTS", opts),
    ];
    if let Some(best) = &session.early.best {
        sections.push((b"BEST", model_file::to_bytes(best)));
    }
    let mut out = Vec::with_capacity(24 + sections.iter().map(|(_, b)| 12 + b.len()).sum::<usize>());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for (tag, body) in &sections {
        out.extend_from_slice(*tag);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(body);
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Saves the checkpoint atomically ([`safe_file::write_atomic`]). Refuses,
/// writing nothing, a network with a NaN or infinite weight (its model
/// section would not load).
pub fn save(
    path: &Path,
    net: &Network,
    session: &Session,
    cfg: &TrainConfig,
    extra: &[(String, String)],
) -> Result<()> {
    model_file::refuse_non_finite(net, path, "checkpoint")?;
    if let Some(best) = &session.early.best {
        model_file::refuse_non_finite(best, path, "checkpoint")?;
    }
    safe_file::write_atomic(path, &to_bytes(net, session, cfg, extra), "checkpoint")
}

/// Reads a checkpoint (a regular file of at most [`MAX_BYTES`]).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let io = |action, source| Error::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let (file, len) =
        safe_read::open_regular(path, |e| io("open", e), |kind| bad(path, format!("it is {kind}")))?;
    let too_big = |len: String| {
        bad(
            path,
            format!(
                "it is {len}, more than the {} a checkpoint may have",
                memory::human(MAX_BYTES)
            ),
        )
    };
    if len > MAX_BYTES {
        return Err(too_big(memory::human(len)));
    }
    // The bytes and the run built from them are both in memory at once.
    memory::check_with(
        len.saturating_mul(2),
        &format!("loading the checkpoint '{}'", path.display()),
        "check that it is a checkpoint written by `simdnet train --checkpoint`; if it is,",
    )?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| bad(path, "it does not fit in memory".into()))?;
    if !safe_read::read_at_most(file, MAX_BYTES, &mut bytes).map_err(|e| io("read", e))? {
        return Err(too_big("growing while it is read".into()));
    }
    from_bytes(&bytes, path)
}

fn bad(path: &Path, problem: String) -> Error {
    Error::Invalid(format!(
        "'{}' is not a usable simdnet checkpoint: {problem} (resume from another checkpoint, or start a new run with `simdnet train --checkpoint FILE`)",
        path.display()
    ))
}

/// A cursor that never reads past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        if n > self.bytes.len() as u64 {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n as usize);
        self.bytes = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn f32s(&mut self, n: u64) -> Option<Vec<f32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

/// Parses a checkpoint; `path` only names the file in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad = |problem: &str| bad(path, problem.to_string());
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(bad("it does not start with the simdnet checkpoint magic bytes"));
    }
    if bytes.len() < 24 {
        return Err(bad(&format!("the file is truncated ({} bytes)", bytes.len())));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let mut r = Reader { bytes: &body[8..] };
    let version = r.u32().unwrap_or(0);
    if version != VERSION {
        return Err(bad(&format!(
            "format version {version}; this simdnet reads version {VERSION}"
        )));
    }
    let stored = u64::from_le_bytes(tail.try_into().unwrap_or([0; 8]));
    if fnv1a64(body) != stored {
        return Err(bad(
            "the checksum does not match: the file is corrupt or truncated",
        ));
    }
    let count = r.u32().unwrap_or(0) as usize;
    if count > MAX_SECTIONS {
        return Err(bad(&format!(
            "it declares {count} sections (at most {MAX_SECTIONS})"
        )));
    }
    let mut sections: Vec<([u8; 4], &[u8])> = Vec::with_capacity(count);
    for _ in 0..count {
        let (Some(tag), Some(len)) = (r.take(4), r.u64()) else {
            return Err(bad("a section header is truncated"));
        };
        let Some(data) = r.take(len) else {
            return Err(bad("a section is longer than the file"));
        };
        sections.push((tag.try_into().unwrap_or([0; 4]), data));
    }
    if !r.bytes.is_empty() {
        return Err(bad("there are bytes after the last section"));
    }
    let section = |tag: &[u8; 4]| sections.iter().find(|(t, _)| t == tag).map(|(_, d)| *d);
    let need = |tag: &[u8; 4]| {
        section(tag).ok_or_else(|| {
            bad(&format!(
                "the section {} is missing",
                String::from_utf8_lossy(tag)
            ))
        })
    };

    // The configuration.
    let conf = std::str::from_utf8(need(b"CONF")?).map_err(|_| bad("the CONF section is not UTF-8 text"))?;
    let mut config = Vec::new();
    for line in conf.lines() {
        let Some((k, v)) = line.split_once('=') else {
            return Err(bad(&format!("the CONF line {:?} is not key=value", line)));
        };
        config.push((k.to_string(), v.to_string()));
    }
    let text = |k: &str| lookup(&config, k).ok_or_else(|| bad(&format!("the setting '{k}' is missing")));
    fn num<T: std::str::FromStr>(v: &str) -> Option<T> {
        v.parse().ok()
    }
    let value = |k: &str| -> Result<&str> { text(k) };
    macro_rules! get {
        ($k:expr, $t:ty) => {{
            let v = value($k)?;
            num::<$t>(v).ok_or_else(|| bad(&format!("the setting {}={v:?} is not a valid number", $k)))?
        }};
    }
    macro_rules! opt {
        ($k:expr, $t:ty) => {{
            match lookup(&config, $k) {
                None => None,
                Some(_) => Some(get!($k, $t)),
            }
        }};
    }
    let cfg = TrainConfig {
        epochs: get!("epochs", usize),
        batch_size: get!("batch", usize),
        seed: get!("seed", u64),
        shuffle: match value("shuffle")? {
            "true" => true,
            "false" => false,
            v => return Err(bad(&format!("the setting shuffle={v:?} is not true or false"))),
        },
        early_stopping: opt!("early-stopping", usize),
    };
    let lr = get!("lr", f32);
    let optimizer = match value("optimizer")? {
        "sgd" => Optimizer::sgd(lr),
        "momentum" => Optimizer::momentum(lr, get!("momentum", f32)),
        "rmsprop" => Optimizer::RmsProp {
            lr,
            rho: get!("rho", f32),
            eps: get!("eps", f32),
        },
        "adam" => Optimizer::Adam {
            lr,
            beta1: get!("beta1", f32),
            beta2: get!("beta2", f32),
            eps: get!("eps", f32),
        },
        o => return Err(bad(&format!("unknown optimizer {o:?}"))),
    };

    // The network and the optimiser state.
    let model = |tag: &[u8; 4], data: &[u8]| {
        model_file::from_bytes(data, path).map_err(|e| {
            bad(&format!(
                "its {} section is not a valid model ({e})",
                String::from_utf8_lossy(tag)
            ))
        })
    };
    let net = model(b"MODL", need(b"MODL")?)?;
    let best = section(b"BEST").map(|d| model(b"BEST", d)).transpose()?;
    if best.as_ref().is_some_and(|b| b.widths() != net.widths()) {
        return Err(bad("the best weights (BEST) do not have the network's shape"));
    }
    let mut o = Reader {
        bytes: need(b"OPTS")?,
    };
    let truncated = || bad("the optimiser state (OPTS) is truncated");
    let steps = o.u64().ok_or_else(truncated)?;
    let tensors = o.u32().ok_or_else(truncated)? as usize;
    let sizes = net.param_sizes();
    if tensors != sizes.len() {
        return Err(bad(&format!(
            "the optimiser state has {tensors} tensors but the network has {}",
            sizes.len()
        )));
    }
    let (mut slot1, mut slot2) = (Vec::with_capacity(tensors), Vec::with_capacity(tensors));
    for _ in 0..tensors {
        let n = o.u64().ok_or_else(truncated)?;
        slot1.push(o.f32s(n).ok_or_else(truncated)?);
        slot2.push(o.f32s(n).ok_or_else(truncated)?);
    }
    if !o.bytes.is_empty() {
        return Err(bad("the optimiser state (OPTS) is longer than its tensors"));
    }
    let state = OptimizerState::from_parts(&sizes, slot1, slot2, steps).map_err(|e| bad(&e))?;

    // The position and the history.
    let examples = get!("examples", usize);
    let mut session = Session::for_examples(&net, optimizer, examples, &cfg)
        .map_err(|e| bad(&format!("its settings do not make a run ({e})")))?;
    session.trainer.state = state;
    session.epochs_done = get!("epochs-done", usize);
    let steps_per_epoch = examples.div_ceil(session.trainer.batch_size());
    session.partial = match opt!("step", usize) {
        None => None,
        Some(step) => Some(PartialEpoch {
            step,
            loss_sum: get!("loss-sum", f64),
            correct: get!("correct", usize),
            seen: get!("seen", usize),
            seconds: get!("epoch-seconds", f64),
        }),
    };
    if let Some(p) = &session.partial {
        if p.step == 0 || p.step >= steps_per_epoch || p.seen > examples || p.correct > p.seen {
            return Err(bad(&format!(
                "the position (step {} of {steps_per_epoch}, {} seen) does not fit the run",
                p.step, p.seen
            )));
        }
    }
    if session.epochs_done > cfg.epochs {
        return Err(bad(&format!(
            "it has {} epochs done of {} planned",
            session.epochs_done, cfg.epochs
        )));
    }
    session.start_loss = opt!("start-loss", f64);
    session.early = EarlyStopping {
        best_loss: get!("best-val-loss", f64),
        best_epoch: get!("best-epoch", usize),
        wait: get!("wait", usize),
        best,
    };
    session.stopped_early = opt!("stopped-early", usize);
    let hist = std::str::from_utf8(need(b"HIST")?).map_err(|_| bad("the HIST section is not UTF-8 text"))?;
    for line in hist.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let parsed = (|| -> Option<EpochStats> {
            if f.len() != 7 {
                return None;
            }
            let validation = match (f[3], f[4]) {
                ("", "") => None,
                (l, a) => Some(Evaluation {
                    loss: l.parse().ok()?,
                    accuracy: a.parse().ok()?,
                }),
            };
            Some(EpochStats {
                epoch: f[0].parse().ok()?,
                loss: f[1].parse().ok()?,
                accuracy: f[2].parse().ok()?,
                validation,
                train_seconds: f[5].parse().ok()?,
                validation_seconds: f[6].parse().ok()?,
                steps: None,
            })
        })();
        let Some(stats) = parsed else {
            return Err(bad(&format!("the history line {line:?} is malformed")));
        };
        session.history.push(stats);
    }
    if session.history.len() != session.epochs_done {
        return Err(bad(&format!(
            "the history has {} epochs but {} are done",
            session.history.len(),
            session.epochs_done
        )));
    }
    Ok(Checkpoint {
        net,
        session,
        cfg,
        config,
    })
}
