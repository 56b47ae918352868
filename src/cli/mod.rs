//! The `simdnet` command line: one file per command.
//!
//! Every command is a table of flags (`FLAGS`, which also generates its
//! `--help`) and a `run` function. Usage errors exit with code 2, every
//! other failure with code 1 and a one-line message naming the fix.

pub mod args;
pub mod bench;
pub mod common;
pub mod evaluate;
pub mod explain;
pub mod inspect;
pub mod mistakes;
pub mod predict;
pub mod train;
pub mod tune;

use args::{Flag, Parsed, UsageError};

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The command line was wrong: exit code 2, usage shown.
    Usage(UsageError),
    /// The command ran and failed: exit code 1.
    Run(crate::Error),
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
    pub name: &'static str,
    pub about: &'static str,
    pub flags: &'static [Flag],
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
        command!(evaluate),
        command!(predict),
        command!(mistakes),
        command!(explain),
        command!(bench),
        command!(tune),
    ]
}

fn top_help() -> String {
    let mut s = String::from(
        "simdnet: train neural networks on the CPU from first principles\n\nUsage: simdnet <COMMAND> [FLAGS]\n\nCommands:\n",
    );
    for c in commands() {
        s.push_str(&format!("  {:<9} {}\n", c.name, c.about));
    }
    s.push_str("\nRun `simdnet <COMMAND> --help` for the flags of a command and their defaults.\n");
    s
}

/// Runs the CLI on `argv` (without the program name); returns the exit code.
pub fn run(argv: &[String]) -> i32 {
    let Some(name) = argv.first() else {
        eprint!("{}", top_help());
        return 2;
    };
    if name == "--help" || name == "-h" || name == "help" {
        print!("{}", top_help());
        return 0;
    }
    if name == "--version" || name == "-V" {
        println!("simdnet {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let cmds = commands();
    let Some(cmd) = cmds.iter().find(|c| c.name == name) else {
        eprintln!("error: unknown command '{name}'\n");
        eprint!("{}", top_help());
        return 2;
    };
    let result = args::parse(cmd.name, cmd.flags, &argv[1..])
        .map_err(CliError::from)
        .and_then(|p| {
            if p.help {
                print!("{}", args::help_text(cmd.name, cmd.about, cmd.flags));
                Ok(())
            } else {
                (cmd.run)(&p)
            }
        });
    match result {
        Ok(()) => 0,
        Err(CliError::Usage(e)) => {
            eprintln!(
                "error: {}\n\n{}",
                e.0,
                args::help_text(cmd.name, cmd.about, cmd.flags)
            );
            2
        }
        Err(CliError::Run(e)) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    run(&argv)
}
