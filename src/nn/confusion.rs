//! The confusion matrix of a network on a data set: how many images of each
//! true class were predicted as each class, and the accuracy, per-class
//! precision and recall read from it. (The command line renders it; the
//! heat map is [`crate::plot`]'s job, a floor above.)
//!
//! A prediction is the argmax of the logits, exactly as the evaluation
//! counts a correct answer, so the diagonal's sum over the total is the
//! accuracy [`Network::evaluate`] reports.

use rayon::prelude::*;

use crate::data::{Dataset, Input};
use crate::error::{Error, Result};
use crate::gemm::Parallelism;
use crate::matrix::{argmax, Element, MatRef};
use crate::nn::network::Network;
use crate::nn::per_thread::PerThread;

/// Examples per task: fixed, so the work and its result do not depend on the thread count.
const CHUNK: usize = 256;

/// A `k x k` table of counts: `count(t, p)` examples of true class `t` were predicted as `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    /// Row-major: `counts[t * classes + p]`.
    counts: Vec<u64>,
}

/// What one chunk found: its counts, and the first example whose outputs were not finite.
struct Part {
    counts: Vec<u64>,
    non_finite: usize,
    first_bad: Option<usize>,
}

impl Confusion {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Confusion {
        Confusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// The matrix of `predicted` against the true `labels` (the same length,
    /// every value below `classes`).
    pub fn from_predictions(classes: usize, labels: &[u8], predicted: &[usize]) -> Result<Confusion> {
        if labels.len() != predicted.len() {
            return Err(Error::Invalid(format!(
                "{} labels but {} predictions: there must be one prediction per label",
                labels.len(),
                predicted.len()
            )));
        }
        let mut c = Confusion::new(classes);
        for (i, (&t, &p)) in labels.iter().zip(predicted).enumerate() {
            if t as usize >= classes || p >= classes {
                return Err(Error::Invalid(format!(
                    "example {i}: label {t} or prediction {p} is out of range for {classes} classes"
                )));
            }
            c.counts[t as usize * classes + p] += 1;
        }
        Ok(c)
    }

    /// The confusion matrix of `net` on `data` (raw pixels, scaled as in
    /// training). Fails on an empty data set, a label the network has no
    /// output for, or outputs that are not finite (a model whose weights are
    /// finite but so large that its logits overflow), naming how many.
    pub fn of(net: &Network, data: &Dataset) -> Result<Confusion> {
        let k = net.outputs();
        let n = data.len();
        if data.features() != net.inputs() {
            return Err(Error::Invalid(format!(
                "the images have {} pixels but the network expects {} inputs",
                data.features(),
                net.inputs()
            )));
        }
        if n == 0 {
            return Err(Error::Invalid("cannot evaluate on an empty data set".into()));
        }
        if let Some(&bad) = data.labels().iter().find(|&&y| y as usize >= k) {
            return Err(Error::Invalid(format!(
                "label {bad} is out of range for a network with {k} classes"
            )));
        }
        let parts = match data.input() {
            Input::Pixels(x) => parts(net, x, net.input_scale(), data.labels()),
            Input::Values(x) => parts(net, x, 1.0, data.labels()),
        };
        let non_finite: usize = parts.iter().map(|p| p.non_finite).sum();
        if non_finite > 0 {
            let first = parts.iter().find_map(|p| p.first_bad).unwrap_or(0);
            return Err(Error::Invalid(format!(
                "the model's outputs are not finite (NaN or infinity) for {non_finite} of {n} images \
                 (the first is image {first}): its weights are finite but so large that the \
                 computation overflows, so its loss and accuracy mean nothing; retrain it, e.g. \
                 with a lower --lr"
            )));
        }
        let mut c = Confusion::new(k);
        for p in parts {
            for (a, b) in c.counts.iter_mut().zip(p.counts) {
                *a += b;
            }
        }
        Ok(c)
    }

    /// Number of classes `k`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Examples of true class `t` predicted as `p`. Panics if either is `>= classes()`.
    pub fn count(&self, t: usize, p: usize) -> u64 {
        assert!(t < self.classes && p < self.classes, "class out of range");
        self.counts[t * self.classes + p]
    }

    /// The row of true class `t`: how its examples were predicted.
    pub fn row(&self, t: usize) -> &[u64] {
        &self.counts[t * self.classes..(t + 1) * self.classes]
    }

    /// Every row, as `rows[t][p]`.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        (0..self.classes).map(|t| self.row(t).to_vec()).collect()
    }

    /// All examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Examples predicted correctly (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|c| self.count(c, c)).sum()
    }

    /// Examples whose true class is `c` (the row sum, "support").
    pub fn support(&self, c: usize) -> u64 {
        self.row(c).iter().sum()
    }

    /// Examples predicted as `c` (the column sum).
    pub fn predicted(&self, c: usize) -> u64 {
        (0..self.classes).map(|t| self.count(t, c)).sum()
    }

    /// The fraction predicted correctly; 0 for an empty matrix.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total()).unwrap_or(0.0)
    }

    /// Of the examples predicted as `c`, the fraction that are `c`;
    /// `None` when nothing was predicted as `c` (0/0).
    pub fn precision(&self, c: usize) -> Option<f64> {
        ratio(self.count(c, c), self.predicted(c))
    }

    /// Of the examples of class `c`, the fraction predicted as `c`;
    /// `None` when there is no example of `c` (0/0).
    pub fn recall(&self, c: usize) -> Option<f64> {
        ratio(self.count(c, c), self.support(c))
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The counts of `x: (n, inputs)` (scaled by `x_scale`) against `labels`, one [`Part`] per chunk.
fn parts<T: Element>(net: &Network, x: MatRef<T>, x_scale: f32, labels: &[u8]) -> Vec<Part> {
    let (k, n) = (net.outputs(), x.rows());
    let workspaces = PerThread::new(net, CHUNK.min(n));
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            workspaces.with(|ws| {
                let (r0, r1) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
                let logits = ws.forward(net, x.rows_range(r0, r1), x_scale, Parallelism::Sequential);
                let mut part = Part {
                    counts: vec![0; k * k],
                    non_finite: 0,
                    first_bad: None,
                };
                for r in 0..r1 - r0 {
                    let row = &logits.data()[r * logits.row_stride()..][..k];
                    if row.iter().any(|v| !v.is_finite()) {
                        part.non_finite += 1;
                        part.first_bad.get_or_insert(r0 + r);
                        continue;
                    }
                    part.counts[labels[r0 + r] as usize * k + argmax(row)] += 1;
                }
                part
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_precision_and_recall() {
        // true:      0 0 0 1 1 2
        // predicted: 0 0 1 1 0 1
        let c = Confusion::from_predictions(3, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 0, 1]).unwrap();
        assert_eq!(c.rows(), vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 1, 0]]);
        assert_eq!((c.total(), c.correct()), (6, 3));
        assert_eq!(c.accuracy(), 0.5);
        assert_eq!(c.precision(0), Some(2.0 / 3.0));
        assert_eq!(c.recall(0), Some(2.0 / 3.0));
        assert_eq!(c.precision(1), Some(1.0 / 3.0));
        assert_eq!(c.recall(1), Some(0.5));
        // Class 2 is never predicted: its precision is 0/0; its recall is 0.
        assert_eq!(c.precision(2), None);
        assert_eq!(c.recall(2), Some(0.0));
        assert!(Confusion::from_predictions(3, &[0], &[3]).is_err());
        assert!(Confusion::from_predictions(3, &[0], &[]).is_err());
        assert_eq!(Confusion::new(2).accuracy(), 0.0);
    }
}
