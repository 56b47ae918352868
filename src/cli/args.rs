//! A tiny flag parser: `--name value`, `--name=value` and boolean `--name`.
//!
//! Each command declares its flags as a `&[Flag]`; `--help` text (with every
//! default) is generated from the same table, so the two cannot disagree.

use std::collections::HashMap;
use std::fmt::Write as _;
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
        }
    }
    /// A boolean switch (present or not).
    pub const fn switch(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            value: None,
            default: None,
            help,
        }
    }
}

/// A bad command line: printed with the command's usage, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The flags given for one command, with defaults filled in.
#[derive(Debug)]
pub struct Parsed {
    command: &'static str,
    values: HashMap<&'static str, String>,
    switches: Vec<&'static str>,
    /// The flags given on the command line (not defaulted).
    given: Vec<&'static str>,
    /// `--help` was given.
    pub help: bool,
}

/// Parses `args` (the arguments after the command name) against `flags`.
pub fn parse(command: &'static str, flags: &'static [Flag], args: &[String]) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed {
        command,
        values: HashMap::new(),
        switches: Vec::new(),
        given: Vec::new(),
        help: false,
    };
    for f in flags {
        if let Some(d) = f.default {
            parsed.values.insert(f.name, d.to_string());
        }
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--help" || arg == "-h" {
            parsed.help = true;
            continue;
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(UsageError(format!(
                "unexpected argument '{arg}' for `simdnet {command}` (flags start with --)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            let mut msg = format!("unknown flag '--{name}' for `simdnet {command}`");
            if let Some(close) = flags
                .iter()
                .find(|f| f.name.starts_with(name) || name.starts_with(f.name))
            {
                let _ = write!(msg, " (did you mean --{}?)", close.name);
            }
            return Err(UsageError(msg));
        };
        parsed.given.push(flag.name);
        match flag.value {
            None => {
                if inline.is_some() {
                    return Err(UsageError(format!("--{name} is a switch and takes no value")));
                }
                parsed.switches.push(flag.name);
            }
            Some(placeholder) => {
                let v = match inline {
                    Some(v) => v,
                    None if i < args.len() => {
                        i += 1;
                        args[i - 1].clone()
                    }
                    None => return Err(UsageError(format!("--{name} needs a value ({placeholder})"))),
                };
                parsed.values.insert(flag.name, v);
            }
        }
    }
    Ok(parsed)
}

impl Parsed {
    /// Whether `--name` was given on the command line (not just defaulted).
    pub fn given(&self, name: &str) -> bool {
        self.given.contains(&name)
    }

    /// Whether switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }

    /// The raw string value of `--name`, if set (given or defaulted).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.as_str())
    }

    /// The value of `--name` parsed as `T`, if set.
    pub fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, UsageError>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(None),
            Some(s) => s.parse::<T>().map(Some).map_err(|e| {
                UsageError(format!(
                    "invalid value '{s}' for --{name} of `simdnet {}`: {e}",
                    self.command
                ))
            }),
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

/// The `--help` text of a command: a usage line, a description, and every flag with its default.
pub fn help_text(command: &str, about: &str, flags: &[Flag]) -> String {
    let mut s = format!("simdnet {command}: {about}\n\nUsage: simdnet {command} [FLAGS]\n\nFlags:\n");
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
