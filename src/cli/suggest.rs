//! "Did you mean ...?" for a mistyped flag or command.
//!
//! Three rules, tried in order, each only among the names that exist:
//!
//! 1. a small table of synonyms that users of Keras, PyTorch and other tools
//!    type (`--learning-rate` -> `--lr`, `--batch-size` -> `--batch`, `fit` ->
//!    `train`), case and `_`/`-` ignored;
//! 2. a prefix: `--epoch` -> `--epochs`, `--layers16` -> `--layers`;
//! 3. the Damerau-Levenshtein distance (insertions, deletions, substitutions
//!    and swaps of two neighbours, each costing one): `--optimiser` ->
//!    `--optimizer`, `trian` -> `train`; the closest name within a third of
//!    the typed length (at least 1, at most 3), the first one on a tie.

use super::args::Flag;

/// Flag names people type for a flag that simdnet spells otherwise, as
/// `(typed, simdnet's name)`. Used only when simdnet's name is a flag of the command.
pub const FLAG_SYNONYMS: &[(&str, &str)] = &[
    ("learning-rate", "lr"),
    ("learningrate", "lr"),
    ("rate", "lr"),
    ("batch-size", "batch"),
    ("batchsize", "batch"),
    ("bs", "batch"),
    ("num-epochs", "epochs"),
    ("n-epochs", "epochs"),
    ("nb-epoch", "epochs"),
    ("epoch", "epochs"),
    ("hidden", "layers"),
    ("hidden-layers", "layers"),
    ("units", "layers"),
    ("optimiser", "optimizer"),
    ("optim", "optimizer"),
    ("l2", "weight-decay"),
    ("decay", "weight-decay"),
    ("patience", "early-stopping"),
    ("val-split", "validation-split"),
    ("validation", "validation-split"),
    ("jobs", "threads"),
    ("workers", "threads"),
    ("output", "save"),
    ("out", "save"),
    ("digit", "index"),
    ("image", "index"),
];

/// Command names people type for a simdnet command, as `(typed, command)`.
pub const COMMAND_SYNONYMS: &[(&str, &str)] = &[
    ("fit", "train"),
    ("eval", "evaluate"),
    ("test", "evaluate"),
    ("benchmark", "bench"),
    ("show", "inspect"),
    ("predict-one", "predict"),
    ("grid", "sweep"),
    ("completion", "completions"),
];

/// `s` lowercased, with `_` read as `-`.
fn normal(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

/// The optimal-string-alignment distance between `a` and `b` (Damerau-Levenshtein
/// where no substring is edited twice): insertions, deletions, substitutions
/// and swaps of two neighbours each cost one.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j]; three rows suffice.
    let mut two_back = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two_back[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The name in `names` that `typed` most likely meant, by the three rules of
/// the module docs with `synonyms` as the table; `None` when nothing is close.
pub fn closest<'a>(typed: &str, names: &[&'a str], synonyms: &[(&str, &str)]) -> Option<&'a str> {
    let t = normal(typed);
    if t.is_empty() {
        return None;
    }
    if let Some(&n) = names.iter().find(|n| **n == t) {
        return Some(n);
    }
    if let Some(&(_, to)) = synonyms.iter().find(|(from, _)| *from == t) {
        if let Some(&n) = names.iter().find(|n| **n == to) {
            return Some(n);
        }
    }
    if let Some(&n) = names
        .iter()
        .find(|n| n.starts_with(t.as_str()) || t.starts_with(**n))
    {
        return Some(n);
    }
    let limit = (t.chars().count() / 3).clamp(1, 3);
    names
        .iter()
        .map(|&n| (distance(&t, n), n))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// The flag of `flags` that `--typed` most likely meant (its name, without dashes).
pub fn flag(typed: &str, flags: &[Flag]) -> Option<&'static str> {
    let names: Vec<&'static str> = flags.iter().map(|f| f.name).collect();
    closest(typed, &names, FLAG_SYNONYMS)
}

/// The command of `names` that `typed` most likely meant.
pub fn command<'a>(typed: &str, names: &[&'a str]) -> Option<&'a str> {
    closest(typed, names, COMMAND_SYNONYMS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_neighbour_swaps_as_one() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("optimiser", "optimizer"), 1);
        assert_eq!(distance("trian", "train"), 1, "a swap is one edit");
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            distance("ca", "abc"),
            3,
            "optimal string alignment, not full Damerau"
        );
    }

    #[test]
    fn synonyms_prefixes_then_distance() {
        let names = ["layers", "epochs", "batch", "optimizer", "lr", "early-stopping"];
        let s = |t| closest(t, &names, FLAG_SYNONYMS);
        assert_eq!(s("learning-rate"), Some("lr"));
        assert_eq!(s("learning_rate"), Some("lr"));
        assert_eq!(s("batch-size"), Some("batch"));
        assert_eq!(s("Batch_Size"), Some("batch"));
        assert_eq!(s("epoch"), Some("epochs"));
        assert_eq!(s("optimiser"), Some("optimizer"));
        assert_eq!(s("optimzer"), Some("optimizer"));
        assert_eq!(s("layrs"), Some("layers"));
        assert_eq!(s("bogus"), None);
        assert_eq!(s(""), None);
        // a synonym whose target the command lacks suggests nothing through it
        assert_eq!(closest("digit", &names, FLAG_SYNONYMS), None);
        assert_eq!(closest("digit", &["index"], FLAG_SYNONYMS), Some("index"));
    }

    #[test]
    fn commands() {
        let names = ["inspect", "train", "evaluate", "bench", "help"];
        assert_eq!(command("trian", &names), Some("train"));
        assert_eq!(command("fit", &names), Some("train"));
        assert_eq!(command("eval", &names), Some("evaluate"));
        assert_eq!(command("benhc", &names), Some("bench"));
        assert_eq!(command("zzz", &names), None);
    }
}
