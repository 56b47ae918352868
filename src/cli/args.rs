//! A tiny flag parser: `--name value`, `--name=value` and boolean `--name`.
//!
//! Each command declares its flags as a `&[Flag]`; `--help` text (with every
//! default) is generated from the same table, so the two cannot disagree.
//!
//! Arguments arrive as `OsString`s (`std::env::args_os`), because a file name
//! need not be UTF-8. The value of a path flag (its placeholder names a FILE,
//! DIR or PATH, see [`Flag::is_path`]) is kept as it was given and read with
//! [`Parsed::path`]; any other flag, and every flag name, must be UTF-8, or the
//! command line is refused with a message naming the argument.
//!
//! A flag given twice is refused (`--epochs 3 --epochs 4` is almost always
//! an edit that forgot the first), unless its table entry says it repeats
//! ([`Flag::repeatable`], sweep's alternatives). An unknown flag is refused
//! with the closest real one suggested ([`super::suggest`]). A flag renamed
//! for consistency keeps its old name as a hidden alias ([`Flag::with_alias`]).
//!
//! A separate value that looks like a flag (`--save --quiet`) is refused: it
//! is almost always a forgotten value. `--save=--quiet` says it on purpose.
//! Negative numbers (`--lr -1`) are values and reach the numeric checks.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

/// One command-line flag.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// The name without dashes, e.g. `"epochs"`.
    pub name: &'static str,
    /// Placeholder for the value in help (e.g. `"N"`), or `None` for a boolean switch.
    pub value: Option<&'static str>,
    /// The default value, shown in help; `None` means "not set".
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
    /// Whether the flag may be given more than once (each value is kept, read
    /// with [`Parsed::all`]); any other flag given twice is a usage error.
    pub repeat: bool,
    /// An old name still accepted for this flag, shown nowhere (not in help,
    /// not in completions).
    pub alias: Option<&'static str>,
}

impl Flag {
    /// A flag that takes a value.
    pub const fn value(
        name: &'static str,
        placeholder: &'static str,
        default: Option<&'static str>,
        help: &'static str,
    ) -> Flag {
        Flag {
            name,
            value: Some(placeholder),
            default,
            help,
            repeat: false,
            alias: None,
        }
    }
    /// A boolean switch (present or not).
    pub const fn switch(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            value: None,
            default: None,
            help,
            repeat: false,
            alias: None,
        }
    }

    /// This flag, allowed more than once (see [`Flag::repeat`]).
    pub const fn repeatable(self) -> Flag {
        Flag { repeat: true, ..self }
    }

    /// This flag, also accepted under the hidden old name `old` (see [`Flag::alias`]).
    pub const fn with_alias(self, old: &'static str) -> Flag {
        Flag {
            alias: Some(old),
            ..self
        }
    }

    /// Whether `name` (without dashes) names this flag, by its name or its alias.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.alias == Some(name)
    }

    /// Whether the value is a path (its placeholder mentions FILE, DIR or PATH):
    /// kept as given, even when it is not UTF-8, and read with [`Parsed::path`].
    pub fn is_path(&self) -> bool {
        self.value
            .is_some_and(|v| ["FILE", "DIR", "PATH"].iter().any(|k| v.contains(k)))
    }
}

/// A bad command line: printed with the command's usage, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The flags given for one command, with defaults filled in.
#[derive(Debug)]
pub struct Parsed {
    command: &'static str,
    /// Every value as given; only a path flag's may be non-UTF-8 (see [`parse`]).
    values: HashMap<&'static str, OsString>,
    /// The values that are not UTF-8 (path flags only), as text for [`Parsed::raw`].
    lossy: HashMap<&'static str, String>,
    switches: Vec<&'static str>,
    /// Every value given for each flag, in command-line order (repeats kept;
    /// a non-UTF-8 path reads lossily here).
    given: HashMap<&'static str, Vec<String>>,
    /// `--help` was given.
    pub help: bool,
}

/// An argument for a message: as text, with any non-UTF-8 bytes shown as `\u{FFFD}`.
fn shown(arg: &OsStr) -> String {
    arg.to_string_lossy().into_owned()
}

/// Splits `--name=value` at the first `=`: the name (which must be UTF-8 to be
/// a flag at all) and the value, kept as an `OsString`.
fn split_inline(body: &OsStr) -> Option<(String, OsString)> {
    let bytes = body.as_encoded_bytes();
    let eq = bytes.iter().position(|&b| b == b'=')?;
    let name = String::from_utf8_lossy(&bytes[..eq]).into_owned();
    Some((name, os_from_tail(body, eq + 1)))
}

/// The part of `s` after its first `skip` bytes, which end on an ASCII character.
#[cfg(unix)]
fn os_from_tail(s: &OsStr, skip: usize) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(&s.as_bytes()[skip..]).to_os_string()
}

/// The part of `s` after its first `skip` bytes, which end on an ASCII character.
#[cfg(not(unix))]
fn os_from_tail(s: &OsStr, skip: usize) -> OsString {
    match s.to_str() {
        Some(t) => OsString::from(&t[skip..]),
        // Not Unix and not UTF-8: rare enough to show lossily (and then be refused if it matters).
        None => OsString::from(s.to_string_lossy()[skip..].to_string()),
    }
}

/// Whether a separate argument looks like a flag rather than a value:
/// `--` alone, or `--` then a letter (`--quiet`). `-1` and `--5` do not.
fn looks_like_flag(arg: &OsStr) -> bool {
    let b = arg.as_encoded_bytes();
    b == b"--" || (b.starts_with(b"--") && b.get(2).is_some_and(|c| c.is_ascii_alphabetic()))
}

/// Parses `args` (the arguments after the command name) against `flags`.
pub fn parse<S: AsRef<OsStr>>(
    command: &'static str,
    flags: &'static [Flag],
    args: &[S],
) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed {
        command,
        values: HashMap::new(),
        lossy: HashMap::new(),
        switches: Vec::new(),
        given: HashMap::new(),
        help: false,
    };
    for f in flags {
        if let Some(d) = f.default {
            parsed.values.insert(f.name, OsString::from(d));
        }
    }
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        i += 1;
        if arg == "--help" || arg == "-h" {
            parsed.help = true;
            continue;
        }
        if !arg.as_encoded_bytes().starts_with(b"--") {
            return Err(UsageError(format!(
                "unexpected argument '{}' for `simdnet {command}` (flags start with --)",
                shown(arg)
            )));
        }
        let body = os_from_tail(arg, 2);
        let (name, inline) = match split_inline(&body) {
            Some((n, v)) => (n, Some(v)),
            None => (shown(&body), None),
        };
        let Some(flag) = flags.iter().find(|f| f.answers_to(&name)) else {
            let mut msg = format!("unknown flag '--{name}' for `simdnet {command}`");
            if let Some(close) = super::suggest::flag(&name, flags) {
                let _ = write!(msg, " (did you mean --{close}?)");
            }
            return Err(UsageError(msg));
        };
        match flag.value {
            None => {
                if inline.is_some() {
                    return Err(UsageError(format!("--{name} is a switch and takes no value")));
                }
                if parsed.switches.contains(&flag.name) && !flag.repeat {
                    return Err(UsageError(format!("--{} given twice; give it once", flag.name)));
                }
                parsed.switches.push(flag.name);
            }
            Some(placeholder) => {
                let v = match inline {
                    Some(v) => v,
                    None if i < args.len() => {
                        let next = args[i].as_ref();
                        if looks_like_flag(next) {
                            return Err(UsageError(format!(
                                "--{name} needs a value ({placeholder}), but got the flag {}; \
                                 to give that text as the value, write --{name}={}",
                                shown(next),
                                shown(next)
                            )));
                        }
                        i += 1;
                        next.to_os_string()
                    }
                    None => return Err(UsageError(format!("--{name} needs a value ({placeholder})"))),
                };
                if v.to_str().is_none() && !flag.is_path() {
                    return Err(UsageError(format!(
                        "the value '{}' of --{name} is not valid UTF-8 text; \
                         --{name} takes {placeholder}: retype it in plain text",
                        shown(&v)
                    )));
                }
                if let Some(first) = parsed.given.get(flag.name).and_then(|v| v.first()) {
                    if !flag.repeat {
                        return Err(UsageError(format!(
                            "--{} given twice ({first} and {}); give it once",
                            flag.name,
                            shown(&v)
                        )));
                    }
                }
                match v.to_str() {
                    Some(_) => parsed.lossy.remove(flag.name),
                    None => parsed.lossy.insert(flag.name, shown(&v)),
                };
                parsed.given.entry(flag.name).or_default().push(shown(&v));
                parsed.values.insert(flag.name, v);
            }
        }
    }
    Ok(parsed)
}

impl Parsed {
    /// Whether `--name` was given on the command line (not just defaulted).
    pub fn given(&self, name: &str) -> bool {
        self.given.contains_key(name) || self.switches.contains(&name)
    }

    /// Whether switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }

    /// The raw string value of `--name`, if set (given or defaulted).
    ///
    /// Only a path flag can hold a value that is not UTF-8; read those with
    /// [`Parsed::path`], which keeps every byte. Here such a value reads lossily
    /// (`\u{FFFD}` for the bad bytes), never as "not set".
    pub fn raw(&self, name: &str) -> Option<&str> {
        let v = self.values.get(name)?;
        v.to_str().or_else(|| self.lossy.get(name).map(String::as_str))
    }

    /// The value of path flag `--name` as a path, exactly as given (any bytes), if set.
    /// An empty value is refused: it names no file.
    pub fn path(&self, name: &str) -> Result<Option<PathBuf>, UsageError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Err(UsageError(format!(
                "--{name} of `simdnet {}` is empty: give a file or folder name",
                self.command
            ))),
            Some(v) => Ok(Some(PathBuf::from(v))),
        }
    }

    /// The value of path flag `--name`; an error if it has no value and no default.
    pub fn required_path(&self, name: &str) -> Result<PathBuf, UsageError> {
        self.path(name)?
            .ok_or_else(|| UsageError(format!("`simdnet {}` needs --{name}", self.command)))
    }

    /// Every value given for `--name`, in order (a repeated flag keeps each
    /// one; defaults are not included).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.given
            .get(name)
            .map_or_else(Vec::new, |v| v.iter().map(|s| s.as_str()).collect())
    }

    /// The value of `--name` parsed as `T`, if set.
    pub fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, UsageError>
    where
        T::Err: std::fmt::Display,
    {
        let command = self.command;
        match self.values.get(name) {
            None => Ok(None),
            Some(os) => {
                let Some(s) = os.to_str() else {
                    return Err(UsageError(format!(
                        "the value '{}' of --{name} of `simdnet {command}` is not valid UTF-8 text: \
                         retype it in plain text",
                        shown(os)
                    )));
                };
                s.parse::<T>().map(Some).map_err(|e| {
                    UsageError(format!(
                        "invalid value '{s}' for --{name} of `simdnet {command}`: {e}"
                    ))
                })
            }
        }
    }

    /// The value of `--name` parsed as `T`; an error if it has no value and no default.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T, UsageError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt(name)?
            .ok_or_else(|| UsageError(format!("`simdnet {}` needs --{name}", self.command)))
    }
}

/// The one-line usage of a command: `Usage: simdnet train [FLAGS]`.
pub fn usage_line(command: &str) -> String {
    format!("Usage: simdnet {command} [FLAGS]")
}

/// What a usage error prints (without the trailing newline): the error, the
/// command's usage line and where to read more, as cargo and ripgrep do.
/// `usage` is the usage line; `help` the command that prints the full help.
pub fn error_text(message: &str, usage: &str, help: &str) -> String {
    format!("error: {message}\n\n{usage}\n\nFor more information, try '{help}'.")
}

/// The `--help` text of a command: a usage line, a description, and every flag with its default.
pub fn help_text(command: &str, about: &str, flags: &[Flag]) -> String {
    let mut s = format!(
        "simdnet {command}: {about}\n\n{}\n\nFlags:\n",
        usage_line(command)
    );
    let width = flags
        .iter()
        .map(|f| f.name.len() + f.value.map_or(0, |v| v.len() + 1))
        .max()
        .unwrap_or(0)
        .max(4);
    for f in flags {
        let left = match f.value {
            Some(v) => format!("{} {v}", f.name),
            None => f.name.to_string(),
        };
        let _ = write!(s, "  --{left:<width$}  {}", f.help);
        if let Some(d) = f.default {
            let _ = write!(s, " [default: {d}]");
        }
        if f.repeat {
            s.push_str(" [repeatable]");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "  --{:<width$}  print this help", "help");
    s
}

/// Parses a comma-separated list such as `16,16` (an empty string gives an empty list).
pub fn parse_list<T: FromStr>(s: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| p.trim().parse::<T>().map_err(|e| format!("'{p}': {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::value("epochs", "N", Some("4"), "epochs"),
        Flag::value("save", "FILE", None, "save"),
        Flag::switch("profile", "profile"),
    ];

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_values_and_switches() {
        let p = parse("train", FLAGS, &args(&["--save=m.bin", "--profile"])).unwrap();
        assert_eq!(p.get::<usize>("epochs").unwrap(), 4);
        assert_eq!(p.raw("save"), Some("m.bin"));
        assert!(p.switch("profile"));
        let p = parse("train", FLAGS, &args(&["--epochs", "7"])).unwrap();
        assert_eq!(p.get::<usize>("epochs").unwrap(), 7);
        assert_eq!(p.opt::<String>("save").unwrap(), None);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        assert!(parse("train", FLAGS, &args(&["--epoch", "3"]))
            .unwrap_err()
            .0
            .contains("did you mean --epochs"));
        assert!(parse("train", FLAGS, &args(&["--epochs"]))
            .unwrap_err()
            .0
            .contains("needs a value"));
        assert!(parse("train", FLAGS, &args(&["stray"])).is_err());
        let p = parse("train", FLAGS, &args(&["--epochs", "x"])).unwrap();
        assert!(p
            .get::<usize>("epochs")
            .unwrap_err()
            .0
            .contains("invalid value 'x' for --epochs"));
    }

    #[test]
    fn a_flag_where_a_value_belongs_is_refused_unless_written_with_equals() {
        let e = parse("train", FLAGS, &args(&["--save", "--profile"]))
            .unwrap_err()
            .0;
        assert!(
            e.contains("--save needs a value (FILE), but got the flag --profile")
                && e.contains("--save=--profile"),
            "{e}"
        );
        // any --word, known or not, and a bare `--`
        assert!(parse("train", FLAGS, &args(&["--save", "--nonsense"])).is_err());
        assert!(parse("train", FLAGS, &args(&["--save", "--"])).is_err());
        let p = parse("train", FLAGS, &args(&["--save=--profile"])).unwrap();
        assert_eq!(p.raw("save"), Some("--profile"));
        // negative numbers are values, for the numeric checks to judge
        let p = parse("train", FLAGS, &args(&["--epochs", "-1"])).unwrap();
        assert!(p
            .get::<usize>("epochs")
            .unwrap_err()
            .0
            .contains("invalid value '-1'"));
        let p = parse("train", FLAGS, &args(&["--epochs", "--5"])).unwrap();
        assert!(p.get::<usize>("epochs").is_err());
    }

    #[test]
    fn empty_path_values_are_refused() {
        let p = parse("train", FLAGS, &args(&["--save", ""])).unwrap();
        assert!(p
            .path("save")
            .unwrap_err()
            .0
            .contains("--save of `simdnet train` is empty"));
        let p = parse("train", FLAGS, &args(&["--save="])).unwrap();
        assert!(p.required_path("save").is_err());
        let p = parse("train", FLAGS, &args(&[])).unwrap();
        assert_eq!(p.path("save").unwrap(), None);
        assert!(p.required_path("save").unwrap_err().0.contains("needs --save"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_are_kept_byte_for_byte_and_other_values_refused() {
        use std::os::unix::ffi::OsStrExt;
        let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
        let name = os(b"\xffm.bin");
        for argv in [vec![os(b"--save"), name.clone()], vec![os(b"--save=\xffm.bin")]] {
            let p = parse("train", FLAGS, &argv).unwrap();
            assert_eq!(p.path("save").unwrap().unwrap().as_os_str(), name.as_os_str());
            assert_eq!(
                p.raw("save"),
                Some("\u{FFFD}m.bin"),
                "raw reads lossily, never None"
            );
            assert!(p.opt::<String>("save").unwrap_err().0.contains("not valid UTF-8"));
        }
        let e = parse("train", FLAGS, &[os(b"--epochs"), os(b"4\xff")])
            .unwrap_err()
            .0;
        assert!(
            e.contains("the value '4\u{FFFD}' of --epochs is not valid UTF-8"),
            "{e}"
        );
        let e = parse("train", FLAGS, &[os(b"--ep\xffochs=4")]).unwrap_err().0;
        assert!(e.contains("unknown flag '--ep\u{FFFD}ochs'"), "{e}");
        let e = parse("train", FLAGS, &[os(b"\xff")]).unwrap_err().0;
        assert!(e.contains("unexpected argument '\u{FFFD}'"), "{e}");
    }

    #[test]
    fn a_flag_given_twice_is_refused_unless_it_repeats() {
        let e = parse("train", FLAGS, &args(&["--epochs", "3", "--epochs=4"]))
            .unwrap_err()
            .0;
        assert_eq!(e, "--epochs given twice (3 and 4); give it once");
        let e = parse("train", FLAGS, &args(&["--profile", "--profile"]))
            .unwrap_err()
            .0;
        assert_eq!(e, "--profile given twice; give it once");
        const REPEATS: &[Flag] = &[Flag::value("layers", "W", None, "widths").repeatable()];
        let p = parse("sweep", REPEATS, &args(&["--layers", "8", "--layers", "16"])).unwrap();
        assert_eq!(p.all("layers"), vec!["8", "16"]);
    }

    #[test]
    fn a_hidden_alias_reads_as_the_flag() {
        const RENAMED: &[Flag] = &[Flag::value("index", "I", None, "image").with_alias("digit")];
        let p = parse("explain", RENAMED, &args(&["--digit", "3"])).unwrap();
        assert_eq!(p.get::<usize>("index").unwrap(), 3);
        assert!(p.given("index"));
        let e = parse("explain", RENAMED, &args(&["--digit", "3", "--index", "4"]))
            .unwrap_err()
            .0;
        assert_eq!(e, "--index given twice (3 and 4); give it once");
        assert!(!help_text("explain", "x", RENAMED).contains("digit"));
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let h = help_text("train", "train a network", FLAGS);
        assert!(h.contains("--epochs N") && h.contains("[default: 4]") && h.contains("--profile"));
    }

    #[test]
    fn lists_parse() {
        assert_eq!(parse_list::<usize>("16, 16").unwrap(), vec![16, 16]);
        assert!(parse_list::<usize>("").unwrap().is_empty());
        assert!(parse_list::<usize>("16,x").is_err());
    }
}
