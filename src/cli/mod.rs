//! The `simdnet` command line: one file per command. Not covered by semver:
//! public for the binary and the integration tests, hidden from the docs.
//!
//! Every command is a table of flags (`FLAGS`, which also generates its
//! `--help` and the shell completions of [`completions`]) and a `run`
//! function. A usage error prints the error, the command's usage line and
//! `For more information, try 'simdnet CMD --help'.` (as cargo and ripgrep
//! do), and exits with code 2; every other failure exits with code 1 and a
//! one-line message naming the fix. A mistyped flag or command gets the
//! closest real name ([`suggest`]). `simdnet help CMD` is `simdnet CMD --help`.
//!
//! No command panics on what it is given: arguments are read as `OsString`s
//! (a path need not be UTF-8), and `print!`/`println!`/`eprint!`/`eprintln!`
//! are shadowed below for this whole module by macros that never panic when
//! standard output fails (see [`output`]).

// These macros shadow std's for every file under `cli/` (textual scope: they
// must stay above the `mod` lines). Output goes through `output`, which
// remembers the first write error instead of panicking.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::output::print(format_args!($($arg)*), false)
    };
}
macro_rules! println {
    () => {
        $crate::cli::output::print(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::output::print(format_args!($($arg)*), true)
    };
}
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::cli::output::eprint(format_args!($($arg)*), false)
    };
}
macro_rules! eprintln {
    () => {
        $crate::cli::output::eprint(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::output::eprint(format_args!($($arg)*), true)
    };
}

pub mod args;
pub mod bench;
pub mod common;
pub mod completions;
pub mod evaluate;
pub mod explain;
pub mod inspect;
pub mod mistakes;
pub mod output;
pub mod predict;
pub mod progress;
pub mod suggest;
pub mod summary;
pub mod sweep;
pub mod teach;
pub mod train;
pub mod tune;

use std::ffi::{OsStr, OsString};

use args::{Flag, Parsed, UsageError};

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The command line was wrong: exit code 2, usage shown.
    Usage(UsageError),
    /// The command ran and failed: exit code 1.
    Run(crate::Error),
    /// The command stopped on a signal and said so: exit with this code
    /// (128 + the signal: 130 for Ctrl-C, 143 for SIGTERM).
    Exit(i32),
}

impl From<UsageError> for CliError {
    fn from(e: UsageError) -> Self {
        CliError::Usage(e)
    }
}

impl From<crate::Error> for CliError {
    fn from(e: crate::Error) -> Self {
        CliError::Run(e)
    }
}

/// A subcommand: its name, one line about it, its flags and what it does.
pub struct Command {
    /// The name typed after `simdnet`.
    pub name: &'static str,
    /// Its line in `simdnet --help`.
    pub about: &'static str,
    /// Its flags: they parse the command line, print `--help` and make the completions.
    pub flags: &'static [Flag],
    /// Runs the command on its parsed flags.
    pub run: fn(&Parsed) -> Result<(), CliError>,
}

/// Every subcommand, in the order `simdnet --help` lists them.
pub fn commands() -> Vec<Command> {
    macro_rules! command {
        ($m:ident) => {
            Command {
                name: stringify!($m),
                about: $m::ABOUT,
                flags: $m::FLAGS,
                run: $m::run,
            }
        };
    }
    vec![
        command!(inspect),
        command!(train),
        command!(summary),
        command!(sweep),
        command!(evaluate),
        command!(predict),
        command!(mistakes),
        command!(explain),
        command!(teach),
        command!(bench),
        command!(tune),
    ]
}

/// The commands that are not a table of flags, with their line in the top help.
pub const BUILTINS: &[(&str, &str)] = &[("completions", completions::ABOUT), ("help", HELP_ABOUT)];

const HELP_ABOUT: &str = "print the help of simdnet, or of one command (simdnet help train)";
const HELP_USAGE: &str = "Usage: simdnet help [COMMAND]";
const TOP_USAGE: &str = "Usage: simdnet <COMMAND> [FLAGS]";

/// Every command name, in the order `simdnet --help` lists them, `completions`
/// and `help` last.
pub fn command_names() -> Vec<&'static str> {
    commands()
        .iter()
        .map(|c| c.name)
        .chain(BUILTINS.iter().map(|&(name, _)| name))
        .collect()
}

/// `simdnet --help`: every command with its line.
pub fn top_help() -> String {
    let lines: Vec<(&str, &str)> = commands()
        .iter()
        .map(|c| (c.name, c.about))
        .chain(BUILTINS.iter().copied())
        .collect();
    let width = lines.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut s = format!(
        "simdnet: train neural networks on the CPU from first principles\n\n{TOP_USAGE}\n\nCommands:\n"
    );
    for (name, about) in lines {
        s.push_str(&format!("  {name:<width$}  {about}\n"));
    }
    s.push_str("\nRun `simdnet <COMMAND> --help` for the flags of a command and their defaults.\n");
    s
}

/// The `--help` of `help` itself.
fn help_help() -> String {
    format!(
        "simdnet help: {HELP_ABOUT}\n\n{HELP_USAGE}\n\n`simdnet help COMMAND` prints the same as `simdnet COMMAND --help`.\n"
    )
}

/// Prints a usage error (the error, a usage line, where to read more); returns exit code 2.
fn usage_error(message: &str, usage: &str, help: &str) -> i32 {
    eprintln!("{}", args::error_text(message, usage, help));
    2
}

/// The message for a first argument that is not a command, with a suggestion.
fn unknown_command(name: &OsStr) -> String {
    let shown = name.to_string_lossy();
    let mut msg = format!("unknown command '{shown}'");
    if let Some(flag) = shown.strip_prefix("--") {
        let flag = flag.split('=').next().unwrap_or(flag);
        if let Some(cmd) = commands()
            .iter()
            .find(|c| c.flags.iter().any(|f| f.answers_to(flag)))
        {
            msg.push_str(&format!(
                ": the command comes first, then its flags (e.g. `simdnet {} --{flag} ...`)",
                cmd.name
            ));
        }
        return msg;
    }
    if let Some(close) = suggest::command(&shown, &command_names()) {
        msg.push_str(&format!(" (did you mean {close}?)"));
    }
    msg
}

/// `simdnet help [COMMAND]`: the top help, or the help of one command.
fn help<S: AsRef<OsStr>>(rest: &[S]) -> i32 {
    let rest: Vec<&OsStr> = rest.iter().map(|a| a.as_ref()).collect();
    let text = match rest.as_slice() {
        [] => top_help(),
        [name] if *name == "--help" || *name == "-h" || *name == "help" => help_help(),
        [name] if *name == "completions" => completions::help_text(),
        [name] => match commands().iter().find(|c| *name == c.name) {
            Some(c) => args::help_text(c.name, c.about, c.flags),
            None => return usage_error(&unknown_command(name), HELP_USAGE, "simdnet --help"),
        },
        [_, extra, ..] => {
            return usage_error(
                &format!(
                    "unexpected argument '{}' for `simdnet help`: give one command",
                    extra.to_string_lossy()
                ),
                HELP_USAGE,
                "simdnet help --help",
            )
        }
    };
    print!("{text}");
    0
}

/// Runs the CLI on `argv` (without the program name); returns the exit code.
///
/// If standard output failed on the way, the command still ran to its end;
/// then a closed pipe gives exit code 141 quietly, any other failure a
/// message and exit code 1 (see [`output::outcome`]).
pub fn run<S: AsRef<OsStr>>(argv: &[S]) -> i32 {
    output::reset();
    let code = run_command(argv);
    let (code, message) = output::outcome(code, output::finish());
    if let Some(m) = message {
        eprintln!("{m}");
    }
    code
}

fn run_command<S: AsRef<OsStr>>(argv: &[S]) -> i32 {
    let Some(name) = argv.first().map(|a| a.as_ref()) else {
        eprint!("{}", top_help());
        return 2;
    };
    if name == "--help" || name == "-h" {
        print!("{}", top_help());
        return 0;
    }
    if name == "--version" || name == "-V" {
        println!("simdnet {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    if name == "help" {
        return help(&argv[1..]);
    }
    if name == "completions" {
        return match completions::run(&argv[1..]) {
            Ok(()) => 0,
            Err(e) => usage_error(&e.0, completions::USAGE, "simdnet completions --help"),
        };
    }
    let cmds = commands();
    let Some(cmd) = cmds.iter().find(|c| name == c.name) else {
        return usage_error(&unknown_command(name), TOP_USAGE, "simdnet --help");
    };
    let result = args::parse(cmd.name, cmd.flags, &argv[1..])
        .map_err(CliError::from)
        .and_then(|p| {
            if p.help {
                print!("{}", args::help_text(cmd.name, cmd.about, cmd.flags));
                Ok(())
            } else {
                // A bad SIMDNET_MC/KC/NC is an error before any work, whatever the command.
                crate::gemm::blocking::check_env()?;
                (cmd.run)(&p)
            }
        });
    match result {
        Ok(()) => 0,
        Err(CliError::Usage(e)) => usage_error(
            &e.0,
            &args::usage_line(cmd.name),
            &format!("simdnet {} --help", cmd.name),
        ),
        Err(CliError::Run(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(CliError::Exit(code)) => code,
    }
}

/// Runs the CLI with the process arguments (any bytes: `args_os`); returns the exit code.
pub fn main() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    run(&argv)
}
