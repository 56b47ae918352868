//! How long each training step of an epoch took, and what the slow ones
//! cost.
//!
//! Every step of an epoch does the same work (the same shapes; only the
//! number of non-zero pixels changes a little from batch to batch, and the
//! last batch may be short), so its time should hardly change. On a shared
//! machine it does: a step that waits for a core the host gave to someone
//! else, or for memory another guest is using, takes several times the usual
//! time. With two threads a step waits for the slower of the two, so such
//! steps cost more than on one. [`StepTimes`] sums them up so that
//! `train --profile` and `cargo bench --bench epoch` can say how much of an
//! epoch went to them, beside what the engine's own work took.
//!
//! The first step a [`Session`](super::Session) runs also makes the
//! workspaces (allocations, first touches of their pages, the pool's
//! threads starting): it is kept apart, as [`StepTimes::first`].

/// A step is slow when it takes more than this many times the epoch's median
/// step.
pub const SLOW_FACTOR: f64 = 2.0;

/// The step times of one epoch, in seconds (a summary: the times themselves
/// are not kept).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepTimes {
    /// Steps in the summary (the session's first step is not among them).
    pub steps: usize,
    /// The median step.
    pub median: f64,
    /// A tenth of the steps took less than this (the step at the 10th
    /// percentile, rank `(steps - 1) / 10` from the fastest).
    pub p10: f64,
    /// A tenth of the steps took more than this (rank `9 (steps - 1) / 10`).
    pub p90: f64,
    /// The slowest step.
    pub slowest: f64,
    /// Steps that took more than [`SLOW_FACTOR`] times the median.
    pub slow_steps: usize,
    /// What those steps took beyond the median, summed: the time the epoch
    /// would have saved had they taken the median.
    pub slow_excess: f64,
    /// All the steps' times, summed.
    pub total: f64,
    /// The session's first step, if this epoch ran it (it also made the
    /// workspaces); not in the numbers above.
    pub first: Option<f64>,
}

impl StepTimes {
    /// The summary of `times` (seconds, in any order; sorted in place), with
    /// `first` the session's first step if the epoch ran it. `None` when
    /// there are no times.
    pub fn summarize(times: &mut [f64], first: Option<f64>) -> Option<StepTimes> {
        if times.is_empty() {
            return None;
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        let slow = times.iter().filter(|&&t| t > SLOW_FACTOR * median);
        Some(StepTimes {
            steps: n,
            median,
            p10: times[(n - 1) / 10],
            p90: times[9 * (n - 1) / 10],
            slowest: times[n - 1],
            slow_steps: slow.clone().count(),
            // From +0.0: a sum of no f64 is -0.0, which printed "-0.0 µs".
            slow_excess: slow.fold(0.0, |sum, t| sum + (t - median)),
            total: times.iter().sum(),
            first,
        })
    }

    /// What the steps took beyond the median, summed (the slower ones'
    /// excess less the faster ones' shortfall, never below zero): the time
    /// the epoch would have saved had every step taken the median.
    pub fn beyond_median(&self) -> f64 {
        (self.total - self.steps as f64 * self.median).max(0.0)
    }

    /// `seconds` as a share of the steps' time (from 0 to 1, the first
    /// step not included).
    pub fn share(&self, seconds: f64) -> f64 {
        if self.total > 0.0 {
            seconds / self.total
        } else {
            0.0
        }
    }

    /// The summary of several epochs' summaries, for a report over a run:
    /// steps, slow steps, excess and totals added; the median, p10 and p90
    /// are the steps-weighted means of the epochs' (close to the run's own
    /// when the epochs are alike); the slowest and first steps over all.
    pub fn combine(epochs: &[StepTimes]) -> Option<StepTimes> {
        let steps: usize = epochs.iter().map(|e| e.steps).sum();
        if steps == 0 {
            return None;
        }
        let weighted = |f: fn(&StepTimes) -> f64| {
            epochs.iter().map(|e| f(e) * e.steps as f64).sum::<f64>() / steps as f64
        };
        Some(StepTimes {
            steps,
            median: weighted(|e| e.median),
            p10: weighted(|e| e.p10),
            p90: weighted(|e| e.p90),
            slowest: epochs.iter().map(|e| e.slowest).fold(0.0, f64::max),
            slow_steps: epochs.iter().map(|e| e.slow_steps).sum(),
            slow_excess: epochs.iter().map(|e| e.slow_excess).sum(),
            total: epochs.iter().map(|e| e.total).sum(),
            first: epochs.iter().find_map(|e| e.first),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_of_known_times() {
        // Ten steps: eight of 1 ms, one of 3 ms (slow: over 2 x 1 ms), one
        // of 1.5 ms (not slow), in a shuffled order.
        let mut t = [1.0, 3.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0].map(|ms| ms * 1e-3);
        let s = StepTimes::summarize(&mut t, Some(0.02)).unwrap();
        assert_eq!(s.steps, 10);
        assert_eq!(s.median, 1e-3);
        assert_eq!(s.p10, 1e-3);
        assert_eq!(s.p90, 1.5e-3);
        assert_eq!(s.slowest, 3e-3);
        assert_eq!(s.slow_steps, 1);
        assert!((s.slow_excess - 2e-3).abs() < 1e-15, "{}", s.slow_excess);
        assert!((s.total - 12.5e-3).abs() < 1e-15, "{}", s.total);
        assert_eq!(s.first, Some(0.02));
        // 12.5 ms for ten steps of median 1 ms: 2.5 ms beyond, 20% of 12.5.
        assert!(
            (s.beyond_median() - 2.5e-3).abs() < 1e-15,
            "{}",
            s.beyond_median()
        );
        assert!((s.share(s.beyond_median()) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two() {
        let mut t = [4.0, 1.0, 2.0, 3.0];
        let s = StepTimes::summarize(&mut t, None).unwrap();
        assert_eq!((s.median, s.slow_steps), (2.5, 0));
        // No slow step: nothing beyond the median, and not a negative zero.
        assert!(s.slow_excess == 0.0 && s.slow_excess.is_sign_positive());
        assert!(StepTimes::combine(&[s]).unwrap().slow_excess.is_sign_positive());
        // 5.0 is exactly 2 x 2.5: slow means strictly more.
        let mut t = [5.0, 1.0, 2.0, 3.0];
        assert_eq!(StepTimes::summarize(&mut t, None).unwrap().slow_steps, 0);
        let mut t = [5.5, 1.0, 2.0, 3.0];
        let s = StepTimes::summarize(&mut t, None).unwrap();
        assert_eq!((s.median, s.slow_steps, s.slow_excess), (2.5, 1, 3.0));
    }

    #[test]
    fn steps_mostly_faster_than_the_median_leave_nothing_beyond_it() {
        // Median 10, total 21: 9 under the median at 3 steps, reported as 0.
        let mut t = [1.0, 10.0, 10.0];
        assert_eq!(StepTimes::summarize(&mut t, None).unwrap().beyond_median(), 0.0);
    }

    #[test]
    fn no_steps_no_summary() {
        assert_eq!(StepTimes::summarize(&mut [], Some(1.0)), None);
        assert_eq!(StepTimes::combine(&[]), None);
    }

    #[test]
    fn epochs_combine_by_their_steps() {
        let mut a = [1.0, 1.0, 1.0, 5.0];
        let mut b = [2.0, 2.0];
        let a = StepTimes::summarize(&mut a, Some(9.0)).unwrap();
        let b = StepTimes::summarize(&mut b, None).unwrap();
        let c = StepTimes::combine(&[a, b]).unwrap();
        assert_eq!(c.steps, 6);
        assert_eq!(c.median, (1.0 * 4.0 + 2.0 * 2.0) / 6.0);
        assert_eq!(c.slowest, 5.0);
        assert_eq!(c.slow_steps, 1);
        assert_eq!(c.slow_excess, 4.0);
        assert_eq!(c.total, 12.0);
        assert_eq!(c.first, Some(9.0));
    }
}
