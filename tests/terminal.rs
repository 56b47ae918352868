//! Terminal conventions: the progress bar fits the terminal and leaves no
//! stale line (checked on a tiny terminal emulator, and on a real pseudo-
//! terminal under util-linux `script`), short usage errors, `help CMD`,
//! suggestions for mistyped flags and commands, repeated flags, `explain
//! --index`, and the shell completion scripts.

mod common;

use std::path::Path;
use std::process::Command;

use common::{expect, run, stderr, stdout, DATA};
use simdnet::cli::progress::{self, render_bar, BarState};

/// A `W`-column terminal screen that understands what simdnet writes: text,
/// `\r`, `\n` and `\x1b[K`. It wraps a row as soon as its last column is
/// written (as a terminal without deferred wrap does: the strictest case, in
/// which a line exactly `W` wide already moves the cursor down). Any other
/// control character or escape sequence fails the test.
struct Screen {
    width: usize,
    rows: Vec<Vec<char>>,
    /// `continued[r]`: row `r` goes on from row `r - 1` (a wrap, not a newline).
    continued: Vec<bool>,
    row: usize,
    col: usize,
}

impl Screen {
    fn new(width: usize) -> Screen {
        Screen {
            width,
            rows: vec![Vec::new()],
            continued: vec![false],
            row: 0,
            col: 0,
        }
    }

    fn down(&mut self, wrapped: bool) {
        self.row += 1;
        if self.row == self.rows.len() {
            self.rows.push(Vec::new());
            self.continued.push(wrapped);
        } else if wrapped {
            self.continued[self.row] = true;
        }
    }

    fn feed(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => self.col = 0,
                '\n' => {
                    self.down(false);
                    self.col = 0; // the pty's output processing turns \n into \r\n
                }
                '\x1b' => {
                    let seq: String = [chars.next(), chars.next()].iter().flatten().collect();
                    assert_eq!(seq, "[K", "unexpected escape sequence ESC {seq:?}");
                    self.rows[self.row].truncate(self.col);
                }
                c if c.is_control() => panic!("unexpected control character {c:?}"),
                c => {
                    let line = &mut self.rows[self.row];
                    if line.len() <= self.col {
                        line.resize(self.col + 1, ' ');
                    }
                    line[self.col] = c;
                    self.col += 1;
                    if self.col == self.width {
                        self.down(true);
                        self.col = 0;
                    }
                }
            }
        }
    }

    /// The lines on the screen, each wrapped line joined again, trailing spaces
    /// and the empty last row dropped.
    fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (r, row) in self.rows.iter().enumerate() {
            let text: String = row.iter().collect();
            match out.last_mut() {
                Some(last) if self.continued[r] => last.push_str(&text),
                _ => out.push(text),
            }
        }
        for l in &mut out {
            *l = l.trim_end().to_string();
        }
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out
    }
}

fn bar(epoch: usize, step: usize, steps: usize, loss: f64) -> BarState {
    BarState {
        epoch,
        epochs: 2,
        step,
        steps,
        loss,
        accuracy: 0.8388,
        seconds: 0.01 * step as f64,
    }
}

#[test]
fn the_bar_never_exceeds_the_width_it_is_given() {
    let states = [
        bar(1, 1, 469, 0.5813),
        bar(2, 234, 469, 0.5813),
        bar(2, 468, 469, 1e30), // a huge loss has a long printout
        bar(2, 5, 1_000_000, f64::NAN),
        BarState {
            epoch: 999_999,
            epochs: 1_000_000,
            step: 1,
            steps: 60_000,
            loss: 2.3,
            accuracy: 0.1,
            seconds: 1e7,
        },
    ];
    for width in (0..=220).chain([40, 80, 200]) {
        for s in &states {
            let line = render_bar(s, width);
            assert!(
                line.chars().count() < width.max(1),
                "{width} columns: {} characters: {line:?}",
                line.chars().count()
            );
        }
    }
    // What is kept as the width shrinks: everything, then the bar and ETA.
    let s = bar(1, 234, 469, 0.5813);
    let wide = render_bar(&s, 200);
    assert!(wide.contains("ETA") && wide.contains("loss: 0.5813") && wide.contains("acc: 0.8388"));
    assert!(wide.contains(&format!("[{}", "=".repeat(14))), "{wide}");
    let normal = render_bar(&s, 80);
    assert!(
        normal.contains("loss: 0.5813") && normal.contains("acc: 0.8388"),
        "{normal}"
    );
    let narrow = render_bar(&s, 40);
    assert!(
        narrow.starts_with("Epoch 1/2 234/469 [") && narrow.contains("] ETA 2."),
        "{narrow}"
    );
}

#[test]
fn the_emulator_sees_a_stale_line_when_a_line_is_too_wide() {
    // The check below is only worth something if it can fail: the old
    // 86-column bar on an 80-column screen leaves its first copy behind.
    let mut screen = Screen::new(80);
    let old = "Epoch 1/4   100/469 [======......................] 0.1s - loss: 0.5813 - acc: 0.8388";
    screen.feed(&progress::redraw(old));
    screen.feed(&progress::redraw(old));
    screen.feed(progress::CLEAR);
    screen.feed("Epoch 1/4 - 0.045s - loss: 0.5813\n");
    assert_ne!(screen.lines(), vec!["Epoch 1/4 - 0.045s - loss: 0.5813"]);
    // and so does a line exactly as wide as the screen
    let mut screen = Screen::new(40);
    screen.feed(&progress::redraw(&"x".repeat(40)));
    screen.feed(progress::CLEAR);
    screen.feed("done\n");
    assert!(screen.lines()[0].starts_with("xxxx"), "{:?}", screen.lines());
}

#[test]
fn redraws_leave_no_stale_line_at_40_80_and_200_columns() {
    for width in [40, 80, 200] {
        let mut screen = Screen::new(width);
        let mut want = Vec::new();
        screen.feed("Model: 784 -> 16 relu -> 16 relu -> 10 softmax (13002 parameters)\n");
        want.push("Model: 784 -> 16 relu -> 16 relu -> 10 softmax (13002 parameters)".to_string());
        for epoch in 1..=2 {
            for step in (1..469).step_by(7) {
                let loss = if step % 2 == 0 { 0.5813 } else { 12345.678 };
                screen.feed(&progress::redraw(&render_bar(
                    &bar(epoch, step, 469, loss),
                    width,
                )));
            }
            screen.feed(progress::CLEAR);
            // the epoch's line is longer than 40 columns: it wraps, as printed text may
            let summary = format!(
                "Epoch {epoch}/2 - 0.045s - loss: 0.5813 - acc: 0.8388 - val_loss: 0.3017 - val_acc: 0.9140"
            );
            screen.feed(&format!("{summary}\n"));
            want.push(summary);
        }
        screen.feed("Test accuracy: 0.9416\n");
        want.push("Test accuracy: 0.9416".to_string());
        assert_eq!(screen.lines(), want, "{width} columns");
    }
}

/// Whether util-linux `script` is here to give a run a pseudo-terminal.
fn have_script() -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("note: util-linux `script` is not installed: the pseudo-terminal checks are skipped");
    }
    ok
}

/// Runs `shell_command` on a pseudo-terminal (stdout and stderr both on it);
/// returns its exit code and everything it wrote to the terminal.
fn on_a_terminal(shell_command: &str) -> (Option<i32>, String) {
    let o = Command::new("script")
        .args(["-qec", shell_command, "/dev/null"])
        .env_remove("COLUMNS")
        .output()
        .expect("run script");
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A `train` long enough per epoch (more than 0.1 s) for the bar to be
/// drawn: about 0.25 s on one thread of a Zen 5 (AVX-512, 16 lanes), the
/// fastest machine seen; 256,256 took about 0.1 s there, at the edge.
fn train_args() -> String {
    format!(
        "'{}' train --layers 512,512 --limit 15000 --epochs 2 --threads 1 --data '{DATA}'",
        env!("CARGO_BIN_EXE_simdnet")
    )
}

/// Checks a `train` run written on a `width`-column terminal: the bar was
/// drawn, each redraw fits in `width - 1` columns, and the screen ends with
/// only the printed lines, no stale bar.
fn check_train_on_screen(raw: &str, width: usize) {
    assert!(
        raw.contains("\x1b[K") && raw.contains("ETA"),
        "no bar was drawn:\n{raw:?}"
    );
    for redraw in raw.split('\r').filter(|s| s.ends_with("\x1b[K") && s.len() > 3) {
        let line = redraw.trim_end_matches("\x1b[K");
        assert!(
            line.chars().count() < width,
            "{line:?} is wider than {} columns",
            width - 1
        );
    }
    let mut screen = Screen::new(width);
    // (a portable build's warning line first, see `common::without_build_warning`)
    screen.feed(&common::without_build_warning(raw));
    let lines = screen.lines();
    let kinds = [
        "Model: ",
        "Optimizer: ",
        "Data: ",
        "Epoch 1/2 - ",
        "Epoch 2/2 - ",
        "Trained in ",
        "Test loss: ",
        "Test accuracy: ",
    ];
    assert_eq!(lines.len(), kinds.len(), "{lines:#?}");
    for (line, kind) in lines.iter().zip(kinds) {
        assert!(
            line.starts_with(kind) && !line.contains("ETA"),
            "{line:?}\n{lines:#?}"
        );
    }
}

#[test]
fn on_a_real_terminal_of_40_columns_the_bar_fits_and_leaves_no_stale_line() {
    if !have_script() {
        return;
    }
    // the width from COLUMNS
    let (code, raw) = on_a_terminal(&format!("env COLUMNS=40 TERM=xterm {}", train_args()));
    assert_eq!(code, Some(0), "{raw}");
    check_train_on_screen(&raw, 40);
    // the width from the terminal itself (TIOCGWINSZ), no COLUMNS
    let (code, raw) = on_a_terminal(&format!("stty cols 40 rows 24; env TERM=xterm {}", train_args()));
    assert_eq!(code, Some(0), "{raw}");
    check_train_on_screen(&raw, 40);
}

#[test]
fn under_term_dumb_progress_is_plain_lines() {
    if !have_script() {
        return;
    }
    let (code, raw) = on_a_terminal(&format!("env COLUMNS=40 TERM=dumb {}", train_args()));
    assert_eq!(code, Some(0), "{raw}");
    let text = raw.replace("\r\n", "\n");
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{raw:?}");
    assert!(text.contains("Test accuracy: "), "{raw}");
}

/// Runs `simdnet args` and returns (exit code, stdout, stderr).
fn sim(args: &[&str]) -> (Option<i32>, String, String) {
    let o = run(args);
    (o.status.code(), stdout(&o), stderr(&o))
}

/// The exact text of a usage error of `command` (`None`: a command-line-wide one).
fn usage_error(message: &str, usage: &str, help: &str) -> String {
    format!("error: {message}\n\n{usage}\n\nFor more information, try '{help}'.\n")
}

#[test]
fn a_usage_error_is_short_and_points_at_help() {
    let (code, out, err) = sim(&["train", "--epoch", "3"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert_eq!(
        err,
        usage_error(
            "unknown flag '--epoch' for `simdnet train` (did you mean --epochs?)",
            "Usage: simdnet train [FLAGS]",
            "simdnet train --help"
        )
    );
    // a value the command refuses is a usage error of the same form
    let (code, _, err) = sim(&["evaluate", "--split", "validation"]);
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with(
            "\n\nUsage: simdnet evaluate [FLAGS]\n\nFor more information, try 'simdnet evaluate --help'.\n"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 5, "{err}");
    let (code, _, err) = sim(&["trian"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        usage_error(
            "unknown command 'trian' (did you mean train?)",
            "Usage: simdnet <COMMAND> [FLAGS]",
            "simdnet --help"
        )
    );
    let (code, _, err) = sim(&["--epochs", "3"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(
            "error: unknown command '--epochs': the command comes first, then its flags \
             (e.g. `simdnet train --epochs ...`)\n"
        ),
        "{err}"
    );
}

#[test]
fn help_cmd_prints_the_help_of_cmd() {
    let (top, _) = expect(&["--help"], 0);
    let (help, _) = expect(&["help"], 0);
    assert_eq!(help, top);
    for cmd in simdnet::cli::command_names() {
        assert!(top.contains(&format!("\n  {cmd} ")), "{cmd} missing from:\n{top}");
    }
    for cmd in ["train", "sweep", "explain", "evaluate"] {
        let (via_help, _) = expect(&["help", cmd], 0);
        let (via_flag, _) = expect(&[cmd, "--help"], 0);
        assert_eq!(via_help, via_flag, "{cmd}");
        assert!(via_help.starts_with(&format!("simdnet {cmd}: ")), "{via_help}");
    }
    let (completions, _) = expect(&["help", "completions"], 0);
    assert!(
        completions.contains("Usage: simdnet completions <bash|zsh|fish>"),
        "{completions}"
    );
    let (_, err) = expect(&["help", "trian"], 2);
    assert_eq!(
        err,
        usage_error(
            "unknown command 'trian' (did you mean train?)",
            "Usage: simdnet help [COMMAND]",
            "simdnet --help"
        )
    );
    let (_, err) = expect(&["help", "train", "sweep"], 2);
    assert!(
        err.starts_with("error: unexpected argument 'sweep' for `simdnet help`: give one command\n"),
        "{err}"
    );
}

#[test]
fn mistyped_flags_and_commands_get_the_closest_name() {
    let flag_cases: &[(&[&str], &str, &str)] = &[
        (&["train", "--optimiser", "adam"], "optimiser", "optimizer"),
        (&["train", "--learning-rate", "0.1"], "learning-rate", "lr"),
        (&["train", "--learning_rate", "0.1"], "learning_rate", "lr"),
        (&["train", "--batch-size", "32"], "batch-size", "batch"),
        (&["train", "--epoch", "3"], "epoch", "epochs"),
        (
            &["train", "--valdation-split", "0.1"],
            "valdation-split",
            "validation-split",
        ),
        (&["sweep", "--optimzer", "adam"], "optimzer", "optimizer"),
        (&["inspect", "--digit", "3"], "digit", "index"),
        (&["evaluate", "--modle", "m.simdnet"], "modle", "model"),
    ];
    for (args, typed, meant) in flag_cases {
        let (code, _, err) = sim(args);
        assert_eq!(code, Some(2), "{args:?}");
        let want = format!(
            "error: unknown flag '--{typed}' for `simdnet {}` (did you mean --{meant}?)\n",
            args[0]
        );
        assert!(err.starts_with(&want), "{args:?}: want {want:?} in:\n{err}");
    }
    let (_, _, err) = sim(&["train", "--zzzzzz"]);
    assert!(
        err.starts_with("error: unknown flag '--zzzzzz' for `simdnet train`\n"),
        "{err}"
    );
    for (typed, meant) in [
        ("trian", "train"),
        ("evalute", "evaluate"),
        ("fit", "train"),
        ("sweeep", "sweep"),
    ] {
        let (code, _, err) = sim(&[typed]);
        assert_eq!(code, Some(2));
        assert!(
            err.starts_with(&format!(
                "error: unknown command '{typed}' (did you mean {meant}?)\n"
            )),
            "{typed}: {err}"
        );
    }
    let (_, _, err) = sim(&["zzzzzz"]);
    assert!(err.starts_with("error: unknown command 'zzzzzz'\n"), "{err}");
}

#[test]
fn a_repeated_flag_is_an_error_except_sweeps_alternatives() {
    let (code, _, err) = sim(&["train", "--epochs", "3", "--epochs", "4"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("error: --epochs given twice (3 and 4); give it once\n"),
        "{err}"
    );
    let (_, _, err) = sim(&["train", "--quiet", "--quiet"]);
    assert!(
        err.starts_with("error: --quiet given twice; give it once\n"),
        "{err}"
    );
    let (_, _, err) = sim(&["evaluate", "--model", "a", "--model=b"]);
    assert!(
        err.starts_with("error: --model given twice (a and b); give it once\n"),
        "{err}"
    );
    // sweep's axes are alternatives: repeating them is the point
    let (code, out, err) = sim(&[
        "sweep",
        "--layers",
        "8",
        "--layers",
        "4",
        "--epochs",
        "1",
        "--limit",
        "100",
        "--threads",
        "1",
        "--quiet",
        "--data",
        DATA,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("| (8, 10)") && out.contains("| (4, 10)"), "{out}");
    // but not its other flags
    let (code, _, err) = sim(&[
        "sweep", "--layers", "8", "--layers", "4", "--seed", "1", "--seed", "2",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("error: --seed given twice (1 and 2); give it once\n"),
        "{err}"
    );
    let (sweep_help, _) = expect(&["sweep", "--help"], 0);
    assert!(sweep_help.contains("[repeatable]"), "{sweep_help}");
    let (train_help, _) = expect(&["train", "--help"], 0);
    assert!(!train_help.contains("[repeatable]"), "{train_help}");
}

#[test]
fn explain_names_its_image_with_index_and_still_takes_digit() {
    let (help, _) = expect(&["explain", "--help"], 0);
    assert!(help.contains("--index I") && !help.contains("--digit"), "{help}");
    let args = ["explain", "--step", "forward", "--data", DATA];
    let with = |flag: &str| {
        let mut a = args.to_vec();
        a.extend([flag, "0"]);
        let (code, out, err) = sim(&a);
        assert_eq!(code, Some(0), "{a:?}: {err}");
        out
    };
    let index = with("--index");
    assert!(index.contains("784 -> 16 -> 16 -> 10"), "{index}");
    assert_eq!(with("--digit"), index, "--digit is a hidden alias of --index");
    let (code, _, err) = sim(&["explain", "--index", "60000", "--data", DATA]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: --index 60000 is past the 60000 training images"),
        "{err}"
    );
}

/// Every name the scripts must offer: each command, and each flag of `train`.
fn must_list() -> (Vec<&'static str>, Vec<&'static str>) {
    let train = simdnet::cli::commands()
        .into_iter()
        .find(|c| c.name == "train")
        .unwrap();
    (
        simdnet::cli::command_names(),
        train.flags.iter().map(|f| f.name).collect(),
    )
}

fn completion(shell: &str) -> String {
    let (script, err) = expect(&["completions", shell], 0);
    assert!(err.is_empty(), "{err}");
    script
}

/// Checks `script` with `shell -n`, or prints a note if `shell` is not installed.
fn parses(shell: &str, script: &str) -> bool {
    let path = common::temp_file("terminal", &format!("completion.{shell}"));
    std::fs::write(&path, script).unwrap();
    match Command::new(shell).arg("-n").arg(&path).output() {
        Ok(o) => {
            assert!(o.status.success(), "{shell} -n: {}\n{script}", stderr(&o));
            true
        }
        Err(_) => {
            println!("note: {shell} is not installed: its completion script was not parsed");
            false
        }
    }
}

#[test]
fn completion_scripts_parse_and_list_every_command_and_every_train_flag() {
    let (commands, train_flags) = must_list();
    assert!(commands.contains(&"completions") && commands.contains(&"help") && train_flags.len() > 20);
    for shell in ["bash", "zsh", "fish"] {
        let script = completion(shell);
        for cmd in &commands {
            let listed = match shell {
                "bash" => {
                    let top = script.lines().find(|l| l.contains("--version")).unwrap_or("");
                    top.split(['"', ' ']).any(|w| w == *cmd) && script.contains(&format!("        {cmd})"))
                }
                "zsh" => script.contains(&format!("'{cmd}:")) && script.contains(&format!("({cmd})")),
                _ => script.contains(&format!("-a {cmd} -d")),
            };
            assert!(listed, "{shell}: command {cmd} missing");
        }
        for flag in &train_flags {
            let listed = match shell {
                "fish" => script.contains(&format!("__simdnet_command train' -l {flag} ")),
                "zsh" => script.contains(&format!("'--{flag}[")) || script.contains(&format!("'--{flag}=[")),
                _ => {
                    // the words offered after `simdnet train`
                    let train = script.split("        train)").nth(1).unwrap_or("");
                    let offered = train
                        .lines()
                        .find(|l| l.contains("compgen -W \"--"))
                        .unwrap_or("");
                    offered.split(['"', ' ']).any(|w| w == format!("--{flag}"))
                }
            };
            assert!(listed, "{shell}: train's --{flag} missing");
        }
        assert!(
            !script.contains("--digit") && !script.contains("-l digit"),
            "{shell}: the hidden alias is offered"
        );
    }
    let bash_parsed = parses("bash", &completion("bash"));
    assert!(bash_parsed, "bash must be installed to check the bash script");
    parses("zsh", &completion("zsh"));
    parses("fish", &completion("fish"));
}

/// What bash offers for the words `line` (the last word being completed).
fn bash_completes(script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _simdnet; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        line.len() - 1
    );
    let o = Command::new("bash")
        .args(["-c", &program])
        .output()
        .expect("run bash");
    assert!(o.status.success(), "{}", stderr(&o));
    // (printf prints one empty line for no words)
    stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_script_completes_commands_flags_and_values() {
    let script = common::temp_file("terminal", "simdnet.bash");
    std::fs::write(&script, completion("bash")).unwrap();
    assert_eq!(bash_completes(&script, &["simdnet", "tr"]), ["train"]);
    assert_eq!(
        bash_completes(&script, &["simdnet", "train", "--ep"]),
        ["--epochs"]
    );
    assert_eq!(
        bash_completes(&script, &["simdnet", "train", "--no-"]),
        ["--no-scale", "--no-tune-config"]
    );
    assert_eq!(
        bash_completes(&script, &["simdnet", "sweep", "--scale", "o"]),
        ["on", "off"]
    );
    assert_eq!(
        bash_completes(&script, &["simdnet", "sweep", "--scale", "=", "of"]),
        ["off"]
    );
    assert!(bash_completes(&script, &["simdnet", "train", "--epochs", ""]).is_empty());
    assert_eq!(bash_completes(&script, &["simdnet", "help", "ev"]), ["evaluate"]);
    assert_eq!(
        bash_completes(&script, &["simdnet", "completions", "f"]),
        ["fish"]
    );
    // a path flag completes file names
    let dir = common::scratch("terminal", "bash-files");
    std::fs::write(dir.join("model.simdnet"), b"").unwrap();
    let prefix = format!("{}/mod", dir.display());
    assert_eq!(
        bash_completes(&script, &["simdnet", "evaluate", "--model", &prefix]),
        [format!("{}/model.simdnet", dir.display())]
    );
}

#[test]
fn the_fish_script_completes_commands_flags_and_values() {
    let script = common::temp_file("terminal", "simdnet.fish");
    std::fs::write(&script, completion("fish")).unwrap();
    let complete = |line: &str| -> Option<Vec<String>> {
        let program = format!("source '{}'; complete -C '{line}'", script.display());
        let o = Command::new("fish").args(["-c", &program]).output().ok()?;
        assert!(o.status.success(), "{}", stderr(&o));
        Some(
            stdout(&o)
                .lines()
                .map(|l| l.split('\t').next().unwrap_or("").to_string())
                .collect(),
        )
    };
    let Some(commands) = complete("simdnet tr") else {
        println!("note: fish is not installed: its completion script was not run");
        return;
    };
    assert_eq!(commands, ["train"]);
    assert_eq!(complete("simdnet train --ep").unwrap(), ["--epochs"]);
    assert_eq!(complete("simdnet sweep --scale ").unwrap(), ["off", "on"]);
    assert!(complete("simdnet train --epochs ").unwrap().is_empty());
    // `train` as a value is not the command
    // (train has --data and --dropout, predict --data and --draw)
    assert_eq!(
        complete("simdnet predict --split train --d").unwrap(),
        ["--data", "--draw"]
    );
}

#[test]
fn completions_needs_one_known_shell() {
    let (_, err) = expect(&["completions"], 2);
    assert_eq!(
        err,
        usage_error(
            "`simdnet completions` needs a shell: bash, zsh or fish",
            "Usage: simdnet completions <bash|zsh|fish>",
            "simdnet completions --help"
        )
    );
    let (_, err) = expect(&["completions", "zhs"], 2);
    assert!(
        err.starts_with("error: unknown shell 'zhs': expected bash, zsh or fish (did you mean zsh?)\n"),
        "{err}"
    );
    let (_, err) = expect(&["completions", "tcsh"], 2);
    assert!(
        err.starts_with("error: unknown shell 'tcsh': expected bash, zsh or fish\n"),
        "{err}"
    );
    let (help, _) = expect(&["completions", "--help"], 0);
    assert!(help.contains("source <(simdnet completions bash)"), "{help}");
}
