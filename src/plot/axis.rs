//! Axis scales with "nice" ticks: steps of 1, 2 or 5 times a power of ten,
//! and the range widened to whole steps, so the ticks read 0.80, 0.85, 0.90
//! rather than 0.8137, 0.8562, ...

/// A linear axis: its range (from the first tick to the last) and ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// The value at the start of the axis (the first tick).
    pub lo: f64,
    /// The value at the end of the axis (the last tick).
    pub hi: f64,
    /// The distance between two ticks.
    pub step: f64,
    /// The tick values, `lo` to `hi` in steps of `step`.
    pub ticks: Vec<f64>,
}

/// The most ticks an axis gets, whatever it is asked for.
const MAX_TICKS: usize = 50;

/// A 1-2-5 step that splits `span` into about `ticks - 1` intervals (at most that many).
pub fn nice_step(span: f64, ticks: usize) -> f64 {
    let raw = span / ticks.saturating_sub(1).max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = if f <= 1.0 + 1e-9 {
        1.0
    } else if f <= 2.0 + 1e-9 {
        2.0
    } else if f <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

impl Scale {
    /// A scale covering `lo..=hi` with at most about `ticks` nice ticks.
    /// A single value gets a range around it; non-finite bounds give 0..1;
    /// `integer` keeps the step a whole number (for epochs).
    pub fn nice(lo: f64, hi: f64, ticks: usize, integer: bool) -> Scale {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
            (lo.min(hi), lo.max(hi))
        } else {
            (0.0, 1.0)
        };
        let span = hi - lo;
        if !span.is_finite() {
            // Beyond f64's range: two ticks at the ends, no arithmetic on the span.
            return Scale {
                lo,
                hi,
                step: f64::INFINITY,
                ticks: vec![lo, hi],
            };
        }
        if span <= hi.abs().max(lo.abs()) * 1e-12 || span == 0.0 {
            // A flat series: centre it in a small range of its own.
            let pad = if integer || lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        let mut step = nice_step(hi - lo, ticks.clamp(2, MAX_TICKS));
        if integer {
            step = step.max(1.0).round();
        }
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let count = ((last - first) as usize).min(MAX_TICKS);
        let ticks: Vec<f64> = (0..=count).map(|i| (first + i as f64) * step).collect();
        Scale {
            lo: ticks[0],
            hi: ticks[ticks.len() - 1],
            step,
            ticks,
        }
    }

    /// Where `v` falls on the axis, as a fraction: 0 at `lo`, 1 at `hi`.
    pub fn fraction(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.5
        }
    }

    /// Decimals a tick label needs to tell two ticks apart.
    pub fn decimals(&self) -> usize {
        if self.step.is_finite() && self.step > 0.0 {
            (-self.step.log10() - 1e-9).ceil().clamp(0.0, 12.0) as usize
        } else {
            0
        }
    }

    /// A tick value as its label, e.g. `0.85` or `2` (never `-0`).
    pub fn label(&self, v: f64) -> String {
        if !self.step.is_finite() {
            return format!("{v:e}");
        }
        let s = format!("{:.*}", self.decimals(), v);
        if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
            s.trim_start_matches('-').to_string()
        } else {
            s
        }
    }

    /// Every tick's label.
    pub fn labels(&self) -> Vec<String> {
        self.ticks.iter().map(|&v| self.label(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let s = Scale::nice(0.0, 1.0, 6, false);
        assert_eq!(s.labels(), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let s = Scale::nice(0.83, 0.95, 6, false);
        assert_eq!(s.labels(), ["0.80", "0.85", "0.90", "0.95"]);
        let s = Scale::nice(0.19, 2.31, 6, false);
        assert_eq!(s.labels(), ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]);
        let s = Scale::nice(1.0, 4.0, 6, true);
        assert_eq!(s.labels(), ["1", "2", "3", "4"]);
        let s = Scale::nice(1.0, 1.0, 6, true);
        assert_eq!(s.labels(), ["0", "1", "2"]);
        let s = Scale::nice(-3.0, -3.0, 6, false);
        assert!(s.lo < -3.0 && s.hi > -3.0, "{s:?}");
        let s = Scale::nice(f64::NAN, 1.0, 6, false);
        assert_eq!((s.lo, s.hi), (0.0, 1.0));
        assert_eq!(Scale::nice(-1e308, 1e308, 6, false).ticks.len(), 2);
    }
}
