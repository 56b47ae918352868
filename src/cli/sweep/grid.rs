//! The rows a sweep trains: one [`Trial`] per row, from repeated flags (the
//! cartesian product of their alternatives), from a grid file (one row per
//! line, written as `train` flags), or the default grid.

use std::path::Path;

use crate::cli::args::{self, parse_list, Flag, Parsed, UsageError};
use crate::cli::CliError;
use crate::error::{escape_unprintable, Error};
use crate::nn::network::MAX_PARAMS as MAX_PARAMS_PER_NET;
use crate::nn::spec::{self, Arch, InputShape};
use crate::nn::{Activation, Optimizer, OptimizerKind};
use crate::safe_read;

/// The most rows one sweep trains.
pub const MAX_ROWS: usize = 500;
/// The most bytes read from a grid file.
pub const MAX_GRID_BYTES: u64 = 64 * 1024;
/// The most lines a grid file may have (comments and blank lines included).
pub const MAX_GRID_LINES: usize = 1000;
/// The most epochs one row may ask for.
const MAX_EPOCHS: usize = 10_000;

/// The flags that describe one row: the sweep's axes, spelled as `train` spells them.
/// Each may be repeated on the command line, one alternative per time.
pub const AXES: &[Flag] = &[
    Flag::value(
        "arch",
        "SPEC|NAME",
        None,
        "a network as `train --arch` says it, or lenet or keras-cnn (then Adam unless --optimizer; --layers, --activation and --dropout do not apply); repeat the flag for alternatives",
    )
    .repeatable(),
    Flag::value(
        "layers",
        "W,W,..",
        None,
        "hidden layer widths (empty: none); repeat the flag for alternatives [workshop: 16,16]",
    )
    .repeatable(),
    Flag::value(
        "activation",
        "NAME[,NAME..]",
        None,
        "relu, sigmoid, tanh or identity, for every hidden layer or one per layer [workshop: relu]",
    )
    .repeatable(),
    Flag::value("epochs", "N", None, "passes over the training set [workshop: 4]").repeatable(),
    Flag::value(
        "scale",
        "on|off",
        None,
        "on: pixels / 255 (Scaled inputs); off: raw 0-255 inputs [workshop: on]",
    )
    .repeatable(),
    Flag::value(
        "optimizer",
        "NAME",
        None,
        "sgd, momentum, rmsprop or adam [workshop: rmsprop]",
    )
    .repeatable(),
    Flag::value(
        "lr",
        "RATE",
        None,
        "learning rate [default: the optimizer's Keras default]",
    )
    .repeatable(),
    Flag::value("batch", "N", None, "examples per mini-batch [workshop: 128]").repeatable(),
    Flag::value(
        "dropout",
        "RATE",
        None,
        "dropout rate after each hidden layer, 0 to <1 [workshop: 0]",
    )
    .repeatable(),
    Flag::value(
        "weight-decay",
        "L2",
        None,
        "L2 penalty on the weights, 0 or more [workshop: 0]",
    )
    .repeatable(),
];

/// A grid-file row may also say `--no-scale`, as `simdnet train` will.
const ROW_FLAGS: &[Flag] = &[
    AXES[9],
    AXES[0],
    AXES[1],
    AXES[2],
    AXES[3],
    AXES[4],
    AXES[5],
    AXES[6],
    AXES[7],
    AXES[8],
    Flag::switch("no-scale", "raw 0-255 inputs (same as --scale off)"),
];

/// One row of the table: everything that decides how its network is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// The network as a spec, with how it was named (`lenet`, or the spec
    /// itself); `None`: the MLP of `hidden` and `activations`.
    pub arch: Option<(String, Arch)>,
    /// Hidden layer widths (empty: softmax regression).
    pub hidden: Vec<usize>,
    /// One activation shared by every hidden layer, or one per hidden layer.
    pub activations: Vec<Activation>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Inputs divided by 255 (`true`, the workshop's "Scaled inputs") or raw 0-255.
    pub scale: bool,
    /// The optimizer, with Keras' defaults.
    pub optimizer: OptimizerKind,
    /// The learning rate given (`None`: the optimizer's default).
    pub lr: Option<f32>,
    /// Examples per mini-batch.
    pub batch: usize,
    /// Dropout rate after each hidden layer.
    pub dropout: f32,
    /// L2 penalty on the weights.
    pub weight_decay: f32,
}

impl Default for Trial {
    /// The workshop's row: `(16, 16, 10) | ReLU, ReLU, softmax | 4 | Scaled inputs`.
    fn default() -> Self {
        Trial {
            arch: None,
            hidden: vec![16, 16],
            activations: vec![Activation::Relu],
            epochs: 4,
            scale: true,
            optimizer: OptimizerKind::RmsProp,
            lr: None,
            batch: 128,
            dropout: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl Trial {
    /// The activation of each hidden layer.
    pub fn layer_activations(&self) -> Vec<Activation> {
        if self.activations.len() == self.hidden.len() {
            self.activations.clone()
        } else {
            vec![self.activations[0]; self.hidden.len()]
        }
    }

    /// The optimiser this row trains with.
    pub fn build_optimizer(&self) -> Result<Optimizer, String> {
        Optimizer::from_name(self.optimizer.name(), self.lr)
    }

    /// Weights and biases of this row's network on inputs of shape `input`
    /// and `outputs` classes (0 for a spec that does not fit them).
    pub fn params(&self, input: InputShape, outputs: usize) -> usize {
        if let Some((_, arch)) = &self.arch {
            return arch
                .shapes(input, outputs)
                .map_or(0, |shapes| spec::count_params(arch, input, &shapes));
        }
        let mut widths = vec![input.len()];
        widths.extend_from_slice(&self.hidden);
        widths.push(outputs);
        widths.windows(2).fold(0usize, |n, p| {
            n.saturating_add(p[0].saturating_mul(p[1])).saturating_add(p[1])
        })
    }

    /// The "Network architecture" cell: `(16, 16, 10)`, or the spec's name.
    pub fn architecture(&self, outputs: usize) -> String {
        match &self.arch {
            Some((name, _)) => name.clone(),
            None => super::table::architecture(&self.hidden, outputs),
        }
    }

    /// A short description for progress lines: `(64, 64, 10) relu 4 epochs`.
    pub fn short(&self, outputs: usize) -> String {
        if let Some((name, _)) = &self.arch {
            return format!(
                "{name} {} epoch{}",
                self.epochs,
                if self.epochs == 1 { "" } else { "s" }
            );
        }
        let acts: Vec<&str> = if self.hidden.is_empty() {
            vec![]
        } else if self.activations.len() == 1 {
            vec![self.activations[0].name()]
        } else {
            self.activations.iter().map(|a| a.name()).collect()
        };
        let mut s = format!(
            "{} {} {} epoch{}",
            super::table::architecture(&self.hidden, outputs),
            if acts.is_empty() {
                "softmax".to_string()
            } else {
                acts.join(",")
            },
            self.epochs,
            if self.epochs == 1 { "" } else { "s" }
        );
        if !self.scale {
            s.push_str(" raw inputs");
        }
        if self.optimizer != OptimizerKind::RmsProp {
            s.push(' ');
            s.push_str(self.optimizer.name());
        }
        s
    }
}

/// The values given for one axis, each checked, applied to a row.
type Setter = fn(&mut Trial, &str) -> Result<(), String>;

fn set_layers(t: &mut Trial, v: &str) -> Result<(), String> {
    let hidden = parse_list::<usize>(v).map_err(|e| format!("{e} (expected widths like 16,16)"))?;
    if let Some(z) = hidden.iter().position(|&w| w == 0) {
        return Err(format!(
            "hidden layer {} has 0 neurons; each needs at least 1",
            z + 1
        ));
    }
    t.hidden = hidden;
    Ok(())
}

fn set_activation(t: &mut Trial, v: &str) -> Result<(), String> {
    let acts = parse_list::<Activation>(v)?;
    if acts.is_empty() {
        return Err("expected relu, sigmoid, tanh or identity".into());
    }
    t.activations = acts;
    Ok(())
}

fn positive(v: &str, what: &str, max: usize) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{what} must be 1 to {max}, got {n}")),
        Err(e) => Err(format!("'{v}': {e} (expected a whole number)")),
    }
}

fn set_epochs(t: &mut Trial, v: &str) -> Result<(), String> {
    t.epochs = positive(v, "epochs", MAX_EPOCHS)?;
    Ok(())
}

fn set_batch(t: &mut Trial, v: &str) -> Result<(), String> {
    t.batch = positive(v, "the batch size", 1 << 20)?;
    Ok(())
}

fn set_scale(t: &mut Trial, v: &str) -> Result<(), String> {
    t.scale = match v.trim() {
        "on" => true,
        "off" => false,
        _ => return Err(format!("'{v}': expected on (pixels / 255) or off (raw 0-255)")),
    };
    Ok(())
}

fn set_optimizer(t: &mut Trial, v: &str) -> Result<(), String> {
    t.optimizer = v.trim().parse()?;
    Ok(())
}

fn number(v: &str) -> Result<f32, String> {
    let x: f32 = v
        .trim()
        .parse()
        .map_err(|e| format!("'{v}': {e} (expected a number)"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("'{v}' is not a finite number"))
    }
}

fn set_lr(t: &mut Trial, v: &str) -> Result<(), String> {
    let lr = number(v)?;
    if lr <= 0.0 {
        return Err(format!("the learning rate must be positive, got {v}"));
    }
    t.lr = Some(lr);
    Ok(())
}

fn set_dropout(t: &mut Trial, v: &str) -> Result<(), String> {
    let d = number(v)?;
    if !(0.0..1.0).contains(&d) {
        return Err(format!(
            "the dropout rate must be at least 0 and below 1, got {v}"
        ));
    }
    t.dropout = d;
    Ok(())
}

fn set_weight_decay(t: &mut Trial, v: &str) -> Result<(), String> {
    let l2 = number(v)?;
    if l2 < 0.0 {
        return Err(format!("the weight decay must be 0 or more, got {v}"));
    }
    t.weight_decay = l2;
    Ok(())
}

fn set_arch(t: &mut Trial, v: &str) -> Result<(), String> {
    let v = v.trim();
    let (name, arch) = match Arch::preset(v) {
        Some(arch) => (v.to_string(), arch),
        None => {
            let arch = Arch::parse(v).map_err(|e| e.to_string())?;
            (arch.canonical(), arch)
        }
    };
    t.arch = Some((name, arch));
    // A convolutional network trains with Adam unless --optimizer says otherwise (as in train).
    t.optimizer = OptimizerKind::Adam;
    Ok(())
}

/// Each axis and how its value applies to a row, the network first (so that
/// `--optimizer` overrides the spec's Adam).
const SETTERS: &[(&str, Setter)] = &[
    ("arch", set_arch),
    ("layers", set_layers),
    ("activation", set_activation),
    ("epochs", set_epochs),
    ("scale", set_scale),
    ("optimizer", set_optimizer),
    ("lr", set_lr),
    ("batch", set_batch),
    ("dropout", set_dropout),
    ("weight-decay", set_weight_decay),
];

/// Checks what no single value can: one activation per hidden layer, or one for all.
fn check_row(t: &Trial) -> Result<(), String> {
    let (a, h) = (t.activations.len(), t.hidden.len());
    if a > 1 && a != h {
        return Err(format!(
            "--activation lists {a} activations but --layers {} has {h} hidden layer{}: give one \
             activation for every layer, or one per layer",
            t.hidden
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(","),
            if h == 1 { "" } else { "s" }
        ));
    }
    t.build_optimizer().map(|_| ())
}

/// `--arch` says every layer: refuses the MLP's axes beside it.
fn check_arch_alone(given: &dyn Fn(&str) -> bool) -> Result<(), String> {
    if !given("arch") {
        return Ok(());
    }
    match ["layers", "activation", "dropout"].into_iter().find(|f| given(f)) {
        Some(f) => Err(format!(
            "--{f} is for the MLP rows, but --arch already says every layer: drop --{f}, or put it in the spec (sweep the MLP in a separate run or grid line)"
        )),
        None => Ok(()),
    }
}

/// Checks, before anything trains, that every row's network is one simdnet can hold.
pub fn check_sizes(rows: &[Trial], input: InputShape, outputs: usize) -> Result<(), UsageError> {
    for (i, t) in rows.iter().enumerate() {
        if let Some((name, arch)) = &t.arch {
            arch.shapes(input, outputs)
                .map_err(|e| UsageError(format!("row {}: --arch {name}: {e}", i + 1)))?;
            continue;
        }
        let params = t.params(input, outputs);
        if params > MAX_PARAMS_PER_NET {
            return Err(UsageError(format!(
                "row {}: a {} network has {params} parameters, more than simdnet trains \
                 ({MAX_PARAMS_PER_NET}): use narrower layers",
                i + 1,
                super::table::architecture(&t.hidden, outputs)
            )));
        }
    }
    Ok(())
}

/// Whether any axis was given on the command line.
pub fn any_axis(p: &Parsed) -> bool {
    AXES.iter().any(|f| !p.all(f.name).is_empty())
}

/// The rows from repeated axis flags: the cartesian product of their
/// alternatives, the first axis varying slowest; an axis not given keeps the
/// workshop's value.
pub fn from_flags(p: &Parsed) -> Result<Vec<Trial>, UsageError> {
    check_arch_alone(&|f| !p.all(f).is_empty()).map_err(UsageError)?;
    let mut rows = vec![Trial::default()];
    for &(name, set) in SETTERS {
        let values = p.all(name);
        if values.is_empty() {
            continue;
        }
        let count = rows.len().saturating_mul(values.len());
        if count > MAX_ROWS {
            return Err(UsageError(format!(
                "the grid has more than {MAX_ROWS} rows (at --{name}): give fewer alternatives"
            )));
        }
        let mut next = Vec::with_capacity(count);
        for row in &rows {
            for v in &values {
                let mut t = row.clone();
                set(&mut t, v).map_err(|e| UsageError(format!("invalid --{name} '{v}': {e}")))?;
                next.push(t);
            }
        }
        rows = next;
    }
    for t in &rows {
        check_row(t).map_err(UsageError)?;
    }
    Ok(rows)
}

/// Splits a grid line into words; `"..."` and `'...'` group words (`--layers ""`).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' || c == '\'' {
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(x) => word.push(x),
                        None => return Err(format!("a quote {c} is not closed")),
                    }
                }
            } else {
                word.push(c);
            }
        }
        out.push(word);
    }
    Ok(out)
}

/// One grid-file row from its words.
fn parse_row(words: &[String]) -> Result<Trial, String> {
    let p = args::parse("sweep", ROW_FLAGS, words).map_err(|e| e.0)?;
    if p.help {
        return Err("--help is not a row flag".into());
    }
    check_arch_alone(&|f| !p.all(f).is_empty())?;
    let mut t = Trial::default();
    for &(name, set) in SETTERS {
        let values = p.all(name);
        if values.len() > 1 {
            return Err(format!(
                "--{name} is given {} times; a line is one row (put alternatives on separate lines)",
                values.len()
            ));
        }
        if let Some(v) = values.first() {
            set(&mut t, v).map_err(|e| format!("invalid --{name} '{v}': {e}"))?;
        }
    }
    if p.switch("no-scale") {
        t.scale = false;
    }
    check_row(&t)?;
    Ok(t)
}

/// Reads the rows of a grid file: one row per line written as `train` flags,
/// `#` starts a comment, blank lines are skipped. Problems with the file's
/// content are usage errors naming the line; an unreadable file is a run error.
pub fn from_file(path: &Path) -> Result<Vec<Trial>, CliError> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        action: "read the grid file",
        source: e,
    };
    let (file, _) = safe_read::open_regular(path, io, |kind| {
        Error::Invalid(format!(
            "grid file '{}' is {kind}: give the path of a text file with one row of train flags per line",
            path.display()
        ))
    })?;
    let mut bytes = Vec::new();
    let whole = safe_read::read_at_most(file, MAX_GRID_BYTES, &mut bytes).map_err(io)?;
    let name = path.display();
    if !whole {
        return Err(UsageError(format!(
            "grid file '{name}' is larger than {} KiB: a grid has at most {MAX_ROWS} rows, one per line",
            MAX_GRID_BYTES / 1024
        ))
        .into());
    }
    let text =
        String::from_utf8(bytes).map_err(|_| UsageError(format!("grid file '{name}' is not UTF-8 text")))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_GRID_LINES {
        return Err(UsageError(format!(
            "grid file '{name}' has {} lines, more than {MAX_GRID_LINES}",
            lines.len()
        ))
        .into());
    }
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.split('#').next().unwrap_or("");
        // a line's problem may quote its words: escaped, as the file may hold anything
        let at_line = |e: String| {
            UsageError(format!(
                "grid file '{name}' line {}: {}",
                i + 1,
                escape_unprintable(&e)
            ))
        };
        let ws = words(body).map_err(at_line)?;
        if ws.is_empty() {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(UsageError(format!(
                "grid file '{name}' has more than {MAX_ROWS} rows: split it into smaller sweeps"
            ))
            .into());
        }
        let row = parse_row(&ws).map_err(at_line)?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(UsageError(format!(
            "grid file '{name}' has no rows: write one row per line as train flags, e.g. \
             --layers 64,64 --activation tanh --epochs 10"
        ))
        .into());
    }
    Ok(rows)
}

/// The default grid: the workshop's row, then one change at a time to answer
/// its questions (neurons per layer, one to four hidden layers, sigmoid / tanh
/// / ReLU, 4 against more epochs, scaled against raw inputs).
pub fn default_grid() -> Vec<Trial> {
    let base = Trial::default();
    let with = |f: &dyn Fn(&mut Trial)| {
        let mut t = base.clone();
        f(&mut t);
        t
    };
    vec![
        base.clone(),
        // Neurons per layer.
        with(&|t| t.hidden = vec![64, 64]),
        with(&|t| t.hidden = vec![128, 128]),
        with(&|t| t.hidden = vec![512, 512]),
        // One to four hidden layers (and a deep, wide one).
        with(&|t| t.hidden = vec![16]),
        with(&|t| t.hidden = vec![16, 16, 16]),
        with(&|t| t.hidden = vec![16, 16, 16, 16]),
        with(&|t| t.hidden = vec![128, 128, 128, 128]),
        // Activations.
        with(&|t| t.activations = vec![Activation::Sigmoid]),
        with(&|t| t.activations = vec![Activation::Tanh]),
        // Epochs.
        with(&|t| t.epochs = 10),
        with(&|t| t.epochs = 20),
        with(&|t| {
            t.hidden = vec![128, 128];
            t.epochs = 10
        }),
        // Inputs.
        with(&|t| t.scale = false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(argv: &[&str]) -> Parsed {
        let v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        args::parse("sweep", AXES, &v).unwrap()
    }

    #[test]
    fn repeats_give_the_cartesian_product() {
        let p = parsed(&[
            "--layers", "16", "--layers", "8,8", "--epochs", "1", "--epochs", "2", "--epochs", "3",
        ]);
        let rows = from_flags(&p).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].hidden, vec![16]);
        assert_eq!(rows[0].epochs, 1);
        assert_eq!(rows[5].hidden, vec![8, 8]);
        assert_eq!(rows[5].epochs, 3);
        assert_eq!(from_flags(&parsed(&[])).unwrap(), vec![Trial::default()]);
    }

    #[test]
    fn grid_words_and_rows() {
        assert_eq!(
            words(r#"--layers "" --x 'a b'"#).unwrap(),
            vec!["--layers", "", "--x", "a b"]
        );
        let ws = words("--layers 8,8 --activation relu,tanh --no-scale").unwrap();
        let t = parse_row(&ws).unwrap();
        assert_eq!(t.hidden, vec![8, 8]);
        assert_eq!(t.activations, vec![Activation::Relu, Activation::Tanh]);
        assert!(!t.scale);
        let ws = words("--layers 8 --activation relu,tanh").unwrap();
        assert!(parse_row(&ws).unwrap_err().contains("lists 2 activations"));
    }

    #[test]
    fn default_grid_starts_with_the_workshop_row_and_keeps_raw_inputs() {
        let g = default_grid();
        assert_eq!(g[0], Trial::default());
        assert!(g.iter().any(|t| !t.scale));
        assert!(g.len() <= 20);
    }
}
