//! The progress line on stderr: `train`'s Keras-style bar with an ETA, and
//! the line `sweep` shows while a row trains.
//!
//! On a terminal ([`Style::Live`]) the line is redrawn in place, at most ten
//! times a second, as `\r` + the line + `\x1b[K` (erase to the end of the
//! line), and never wider than the terminal less one column: a line that
//! filled the last column would wrap on some terminals, and the next `\r`
//! would then redraw one row lower, leaving a stale line behind. The width is
//! read again at every redraw (a resized window is followed): `COLUMNS` if it
//! is set to a positive number, else the terminal's own (`TIOCGWINSZ` on
//! stderr), else 80.
//!
//! When stderr is not a terminal, or `TERM=dumb`, the style is
//! [`Style::Plain`]: a plain line every 10 seconds, with no `\r` and no escape
//! codes, which reads well in a log file.
//!
//! Rendering is pure ([`render_bar`], [`fit`]): what the line says at a given
//! width is a function of the numbers and the width, and is tested so.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::nn::Progress;

/// How the progress line is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Redrawn in place on a terminal.
    Live,
    /// A plain line now and then: stderr is not a terminal, or `TERM=dumb`.
    Plain,
}

impl Style {
    /// The style for stderr as it is now.
    pub fn detect() -> Style {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            Style::Live
        } else {
            Style::Plain
        }
    }
}

/// The width used when nothing tells it.
pub const DEFAULT_WIDTH: usize = 80;

/// The width of the terminal in columns: `COLUMNS` if it is a positive
/// number, else the terminal on stderr's own, else [`DEFAULT_WIDTH`].
pub fn terminal_width() -> usize {
    width_from(std::env::var("COLUMNS").ok().as_deref(), sys::stderr_columns())
}

/// The width from the `COLUMNS` variable and the terminal's own (either may
/// be missing or nonsense): `COLUMNS` wins, then the terminal, then 80.
pub fn width_from(columns: Option<&str>, terminal: Option<usize>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or(terminal.filter(|&c| c > 0))
        .unwrap_or(DEFAULT_WIDTH)
}

#[cfg(unix)]
mod sys {
    use std::ffi::{c_int, c_ulong};

    /// `struct winsize` of `<sys/ioctl.h>`.
    #[repr(C)]
    #[derive(Default)]
    struct WinSize {
        rows: u16,
        cols: u16,
        x_pixels: u16,
        y_pixels: u16,
    }

    /// The `TIOCGWINSZ` request where its value is known: Linux's generic one
    /// (its MIPS, PowerPC and SPARC ports differ), and the BSDs' and macOS's.
    /// Elsewhere none: the caller falls back to `COLUMNS` or 80.
    const TIOCGWINSZ: Option<c_ulong> = if cfg!(all(
        any(target_os = "linux", target_os = "android"),
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "s390x",
            target_arch = "loongarch64"
        )
    )) {
        Some(0x5413)
    } else if cfg!(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )) {
        Some(0x4008_7468)
    } else {
        None
    };

    extern "C" {
        fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    }

    /// The columns of the terminal on stderr (fd 2), if it is one and knows its size.
    pub fn stderr_columns() -> Option<usize> {
        let request = TIOCGWINSZ?;
        let mut ws = WinSize::default();
        // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer,
        // which points at a live, properly laid out one; on a descriptor that
        // is not a terminal it fails and writes nothing.
        let r = unsafe { ioctl(2, request, &mut ws as *mut WinSize) };
        (r == 0 && ws.cols > 0).then_some(ws.cols as usize)
    }
}

#[cfg(not(unix))]
mod sys {
    /// Unknown on this platform: the caller falls back to `COLUMNS` or 80.
    pub fn stderr_columns() -> Option<usize> {
        None
    }
}

/// What erases the live line: back to column 0, erase to the end of the line.
pub const CLEAR: &str = "\r\x1b[K";

/// What redraws the live line with `line` (which must fit, see [`fit`]).
pub fn redraw(line: &str) -> String {
    format!("\r{line}\x1b[K")
}

/// `line` cut to fit a terminal `width` columns wide: at most `width - 1`
/// characters (the last column stays empty, see the module docs), ending in
/// `...` when it was cut and there is room for it.
pub fn fit(line: &str, width: usize) -> String {
    let max = width.saturating_sub(1);
    if line.chars().count() <= max {
        return line.to_string();
    }
    if max <= 3 {
        return line.chars().take(max).collect();
    }
    let mut s: String = line.chars().take(max - 3).collect();
    s.push_str("...");
    s
}

/// A time left, short: `0.4s`, `12s`, `3:05`, `1:02:03`.
pub fn eta(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    if s < 9.95 {
        return format!("{s:.1}s");
    }
    let whole = s.round() as u64;
    match whole {
        0..=59 => format!("{whole}s"),
        60..=3599 => format!("{}:{:02}", whole / 60, whole % 60),
        _ => format!("{}:{:02}:{:02}", whole / 3600, whole / 60 % 60, whole % 60),
    }
}

/// One redraw of `train`'s bar: where the epoch is and how it goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BarState {
    /// 1-based epoch and the number of epochs.
    pub epoch: usize,
    /// The number of epochs of the run.
    pub epochs: usize,
    /// Mini-batches done in this epoch (at least 1).
    pub step: usize,
    /// Mini-batches in the epoch.
    pub steps: usize,
    /// Running mean loss of the epoch.
    pub loss: f64,
    /// Running accuracy of the epoch.
    pub accuracy: f64,
    /// Seconds since the epoch began.
    pub seconds: f64,
}

/// The narrowest and widest inside of the `[=====>....]` bar.
const BAR_MIN: usize = 10;
const BAR_MAX: usize = 30;

/// The bar's line at `width` columns, never longer than `width - 1`; at 200,
/// 80 and 40 columns:
///
/// ```text
/// Epoch 1/4 234/469 [==============>...............] ETA 0.3s - loss: 0.5813 - acc: 0.8388
/// Epoch 1/4 234/469 [==========>..........] ETA 0.3s - loss: 0.5813 - acc: 0.8388
/// Epoch 1/4 234/469 [====>.....] ETA 0.3s
/// ```
///
/// As the width shrinks, the bar narrows (30 down to 10 marks), then the
/// accuracy goes, then the loss, then the ETA, then the bar; what is left
/// (`Epoch 1/4 234/469`) is cut if even that does not fit. The step count is
/// padded to the width of the total, so the line does not jitter.
pub fn render_bar(s: &BarState, width: usize) -> String {
    let max = width.saturating_sub(1);
    let digits = s.steps.to_string().len();
    let head = format!("Epoch {}/{} {:>digits$}/{}", s.epoch, s.epochs, s.step, s.steps);
    let left = if s.step > 0 {
        s.seconds / s.step as f64 * s.steps.saturating_sub(s.step) as f64
    } else {
        0.0
    };
    let eta = format!(" ETA {}", eta(left));
    let loss = format!(" - loss: {:.4}", s.loss);
    let acc = format!(" - acc: {:.4}", s.accuracy);
    let choices: [&[&str]; 4] = [&[&eta, &loss, &acc], &[&eta, &loss], &[&eta], &[]];
    for tail in choices {
        let text: usize = head.len() + tail.iter().map(|t| t.len()).sum::<usize>();
        // " [" + inside + "]"
        let room = max.saturating_sub(text + 3);
        if room >= BAR_MIN {
            return format!(
                "{head} {}{}",
                bar(s.step, s.steps, room.min(BAR_MAX)),
                tail.concat()
            );
        }
    }
    for tail in choices {
        let line = format!("{head}{}", tail.concat());
        if line.len() <= max {
            return line;
        }
    }
    fit(&head, width)
}

/// `[=====>....]` with `inside` marks, for `step` of `steps`.
fn bar(step: usize, steps: usize, inside: usize) -> String {
    let done = (step.min(steps) * inside).checked_div(steps).unwrap_or(inside);
    let mut s = String::with_capacity(inside + 2);
    s.push('[');
    if done >= inside {
        s.push_str(&"=".repeat(inside));
    } else {
        s.push_str(&"=".repeat(done));
        s.push('>');
        s.push_str(&".".repeat(inside - done - 1));
    }
    s.push(']');
    s
}

/// A line on stderr that shows how long work goes: redrawn in place on a
/// terminal, a plain line now and then otherwise (see [`Style`]).
pub struct StatusLine {
    style: Style,
    /// A live line is on the screen (and must be erased before other output).
    shown: bool,
    last_draw: Instant,
}

impl Default for StatusLine {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusLine {
    /// A line in the style of stderr as it is now.
    pub fn new() -> Self {
        StatusLine {
            style: Style::detect(),
            shown: false,
            last_draw: Instant::now(),
        }
    }

    /// How this line is shown.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Whether it is time to draw again: 0.1 s after the last draw on a
    /// terminal, 10 s otherwise.
    pub fn due(&self) -> bool {
        let every = match self.style {
            Style::Live => 0.1,
            Style::Plain => 10.0,
        };
        self.last_draw.elapsed().as_secs_f64() >= every
    }

    /// Draws the line `render(width)` (redrawn in place and cut to the width
    /// when live; a whole plain line otherwise).
    pub fn draw(&mut self, render: impl FnOnce(usize) -> String) {
        let width = terminal_width();
        let line = render(width);
        let mut err = std::io::stderr().lock();
        let _ = match self.style {
            Style::Live => write!(err, "{}", redraw(&fit(&line, width))),
            Style::Plain => writeln!(err, "{line}"),
        };
        let _ = err.flush();
        self.shown = self.style == Style::Live;
        self.last_draw = Instant::now();
    }

    /// Erases the live line, if one is shown, so that other output starts on a clean row.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{CLEAR}");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for StatusLine {
    /// A line still shown when the work ends early (an error, a stop) is
    /// erased, so that the message that follows starts on a clean row.
    fn drop(&mut self) {
        self.clear();
    }
}

/// `simdnet train`'s progress: the bar inside an epoch, and one line per epoch
/// on stdout (as Keras prints them).
pub struct TrainProgress {
    quiet: bool,
    line: StatusLine,
}

impl TrainProgress {
    /// Progress for a run; `quiet` shows nothing at all.
    pub fn new(quiet: bool) -> Self {
        TrainProgress {
            quiet,
            line: StatusLine::new(),
        }
    }

    /// Shows one event of the training loop.
    pub fn show(&mut self, ev: Progress) {
        if self.quiet {
            return;
        }
        match ev {
            Progress::Step {
                epoch,
                epochs,
                step,
                steps,
                loss,
                accuracy,
                seconds,
            } => {
                // After Ctrl-C the handler has written its line: draw no more.
                if step == steps || !self.line.due() || crate::interrupt::requested() {
                    return;
                }
                let state = BarState {
                    epoch,
                    epochs,
                    step,
                    steps,
                    loss,
                    accuracy,
                    seconds,
                };
                self.line.draw(|width| render_bar(&state, width));
            }
            Progress::Epoch { epochs, stats } => {
                self.line.clear();
                let mut line = format!(
                    "Epoch {}/{epochs} - {:.3}s - loss: {:.4} - acc: {:.4}",
                    stats.epoch, stats.train_seconds, stats.loss, stats.accuracy
                );
                if let Some(v) = stats.validation {
                    line.push_str(&format!(
                        " - val_loss: {:.4} - val_acc: {:.4}",
                        v.loss, v.accuracy
                    ));
                }
                println!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: usize, steps: usize) -> BarState {
        BarState {
            epoch: 1,
            epochs: 4,
            step,
            steps,
            loss: 0.5813,
            accuracy: 0.8388,
            seconds: 0.3,
        }
    }

    #[test]
    fn the_bar_shrinks_then_drops_fields_to_fit() {
        let s = state(234, 469);
        assert_eq!(
            render_bar(&s, 200),
            "Epoch 1/4 234/469 [==============>...............] ETA 0.3s - loss: 0.5813 - acc: 0.8388"
        );
        // 79 columns: the bar takes what the fields leave (21 marks)
        assert_eq!(
            render_bar(&s, 80),
            "Epoch 1/4 234/469 [==========>..........] ETA 0.3s - loss: 0.5813 - acc: 0.8388"
        );
        assert_eq!(render_bar(&s, 40), "Epoch 1/4 234/469 [====>.....] ETA 0.3s");
        assert_eq!(render_bar(&s, 30), "Epoch 1/4 234/469 ETA 0.3s");
        assert_eq!(render_bar(&s, 12), "Epoch 1/...");
        assert_eq!(render_bar(&s, 1), "");
        assert_eq!(render_bar(&s, 0), "");
    }

    #[test]
    fn steps_are_padded_so_the_line_does_not_jitter() {
        assert_eq!(
            render_bar(&state(7, 469), 40),
            "Epoch 1/4   7/469 [>..........] ETA 20s"
        );
        assert_eq!(
            render_bar(&state(469, 469), 40).len(),
            render_bar(&state(7, 469), 40).len()
        );
    }

    #[test]
    fn eta_is_short() {
        assert_eq!(eta(0.04), "0.0s");
        assert_eq!(eta(9.9), "9.9s");
        assert_eq!(eta(12.4), "12s");
        assert_eq!(eta(185.0), "3:05");
        assert_eq!(eta(3723.0), "1:02:03");
        assert_eq!(eta(f64::NAN), "0.0s");
        assert_eq!(eta(-3.0), "0.0s");
    }

    #[test]
    fn width_comes_from_columns_then_the_terminal_then_80() {
        assert_eq!(width_from(Some("40"), Some(120)), 40);
        assert_eq!(width_from(Some("0"), Some(120)), 120);
        assert_eq!(width_from(Some("wide"), None), 80);
        assert_eq!(width_from(None, Some(0)), 80);
        assert_eq!(width_from(None, None), 80);
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 7), "abcdef");
        assert_eq!(fit("abcdefg", 7), "abc...");
        assert_eq!(fit("abcdefg", 3), "ab");
    }
}
