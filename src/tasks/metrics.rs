//! The claim tasks' evaluation metrics, as the seed papers report them (scikit-learn's
//! definitions; rouge_score's ROUGE without stemming).
//!
//! For classes `c` with true positives `TP_c`, false positives `FP_c`, false negatives `FN_c`
//! and support `n_c` (gold count):
//! - `P_c = TP_c / (TP_c + FP_c)`, `R_c = TP_c / (TP_c + FN_c)`, `F1_c = 2·P_c·R_c / (P_c + R_c)`,
//!   each 0 when its denominator is 0 (scikit-learn's `zero_division=0`);
//! - accuracy `= Σ_c TP_c / N`;
//! - macro-F1 `= mean_c F1_c` over the classes that occur in the gold or the predictions;
//! - weighted P, R, F1 `= Σ_c n_c·X_c / N`;
//! - micro-F1 `= 2·P_μ·R_μ / (P_μ + R_μ)` with `P_μ = ΣTP / (ΣTP + ΣFP)`, `R_μ = ΣTP / (ΣTP +
//!   ΣFN)`; with one label per item it equals accuracy;
//! - ROUGE-N F1 `= 2·o / (|pred n-grams| + |ref n-grams|)`, `o` the clipped n-gram overlap;
//!   ROUGE-L F1 `= 2·P·R / (P + R)`, `P = LCS / |pred|`, `R = LCS / |ref|`; tokens are the
//!   lower-cased runs of ASCII letters and digits (rouge_score's tokenizer);
//! - the FMD challenge score `= (micro-F1 + ROUGE-1) / 2`.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

/// Precision, recall and F1 of one class, or their weighted average.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Every classification metric of a set of gold and predicted labels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub micro_f1: f64,
    pub weighted: Scores,
    pub weighted_f1: f64,
    /// Each class's scores and support, in `labels` order.
    pub per_class: Vec<(String, Scores, usize)>,
    /// The classes, sorted: the gold labels' and the predictions' together.
    pub labels: Vec<String>,
    /// `confusion[i][j]`: items of gold class `labels[i]` predicted as `labels[j]`.
    pub confusion: Vec<Vec<usize>>,
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// The metrics of `predicted` against `gold`, item by item. Empty input gives zeros.
pub fn classification(gold: &[&str], predicted: &[&str]) -> Classification {
    assert_eq!(gold.len(), predicted.len(), "one prediction per gold label");
    let labels: Vec<String> =
        gold.iter().chain(predicted).map(|s| s.to_string()).collect::<BTreeSet<_>>().into_iter().collect();
    let index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let mut confusion = vec![vec![0; labels.len()]; labels.len()];
    for (g, p) in gold.iter().zip(predicted) {
        confusion[index[g]][index[p]] += 1;
    }
    let total = gold.len();
    let per_class: Vec<(String, Scores, usize)> = labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let tp = confusion[c][c];
            let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
            let support: usize = confusion[c].iter().sum();
            let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, support));
            (label.clone(), Scores { precision, recall, f1: f1(precision, recall) }, support)
        })
        .collect();
    let correct: usize = (0..labels.len()).map(|c| confusion[c][c]).sum();
    let weighted_mean = |pick: fn(&Scores) -> f64| -> f64 {
        if total == 0 {
            0.0
        } else {
            per_class.iter().map(|(_, s, n)| pick(s) * *n as f64).sum::<f64>() / total as f64
        }
    };
    let weighted = Scores {
        precision: weighted_mean(|s| s.precision),
        recall: weighted_mean(|s| s.recall),
        f1: weighted_mean(|s| s.f1),
    };
    let macro_f1 =
        if labels.is_empty() { 0.0 } else { per_class.iter().map(|(_, s, _)| s.f1).sum::<f64>() / labels.len() as f64 };
    // Every wrong item is one false positive and one false negative, so P_μ = R_μ = accuracy.
    let micro = ratio(correct, total);
    Classification {
        accuracy: micro,
        macro_f1,
        micro_f1: f1(micro, micro),
        weighted_f1: weighted.f1,
        weighted,
        per_class,
        labels,
        confusion,
    }
}

/// rouge_score's tokens: lower-cased runs of ASCII letters and digits.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-N F1 of `prediction` against `reference`.
pub fn rouge_n(prediction: &str, reference: &str, n: usize) -> f64 {
    let (p, r) = (rouge_tokens(prediction), rouge_tokens(reference));
    let (pc, rc) = (ngram_counts(&p, n), ngram_counts(&r, n));
    let overlap: usize = pc.iter().map(|(gram, &count)| count.min(rc.get(gram).copied().unwrap_or(0))).sum();
    let (total_p, total_r): (usize, usize) = (pc.values().sum(), rc.values().sum());
    f1(ratio(overlap, total_p), ratio(overlap, total_r))
}

/// The longest text, in [`rouge_tokens`], that a caller should score: ROUGE-L's cost is the
/// product of the two lengths, about 0.1 s at this bound, and explanations are a few sentences.
pub const MAX_ROUGE_TOKENS: usize = 8192;

/// ROUGE-L F1 of `prediction` against `reference`: the longest common subsequence of tokens.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let (p, r) = (rouge_tokens(prediction), rouge_tokens(reference));
    // One row of the LCS table at a time: memory linear in the reference's length.
    let mut previous = vec![0usize; r.len() + 1];
    for token in &p {
        let mut row = vec![0usize; r.len() + 1];
        for (j, other) in r.iter().enumerate() {
            row[j + 1] = if token == other { previous[j] + 1 } else { row[j].max(previous[j + 1]) };
        }
        previous = row;
    }
    let lcs = previous[r.len()];
    f1(ratio(lcs, p.len()), ratio(lcs, r.len()))
}

/// Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over pairs of (prediction, reference).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rouge {
    pub rouge1: f64,
    pub rouge2: f64,
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
}

pub fn rouge(pairs: &[(&str, &str)]) -> Rouge {
    let mean = |score: &dyn Fn(&str, &str) -> f64| {
        if pairs.is_empty() {
            0.0
        } else {
            pairs.iter().map(|(p, r)| score(p, r)).sum::<f64>() / pairs.len() as f64
        }
    };
    Rouge {
        rouge1: mean(&|p, r| rouge_n(p, r, 1)),
        rouge2: mean(&|p, r| rouge_n(p, r, 2)),
        rouge_l: mean(&|p, r| rouge_l(p, r)),
    }
}

/// The FinFact/FMD challenge score: `(micro-F1 + ROUGE-1) / 2`.
pub fn fmd_score(classification: &Classification, rouge: &Rouge) -> f64 {
    (classification.micro_f1 + rouge.rouge1) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// gold  T T T F F N
    /// pred  T T F F T T
    /// Worked by hand: TP_T = 2, FP_T = 2 (a gold F and a gold N predicted T), FN_T = 1;
    /// TP_F = 1, FP_F = 1, FN_F = 1; TP_N = 0, FP_N = 0, FN_N = 1.
    /// P_T = 2/4, R_T = 2/3, F1_T = 2·(1/2)(2/3)/(1/2 + 2/3) = 4/7; P_F = R_F = F1_F = 1/2;
    /// F1_N = 0. Accuracy 3/6. Macro-F1 = (4/7 + 1/2 + 0)/3 = 15/42. Weighted F1 =
    /// (3·4/7 + 2·1/2 + 1·0)/6 = (12/7 + 1)/6 = 19/42.
    #[test]
    fn classification_metrics_match_the_hand_computation() {
        let gold = ["True", "True", "True", "False", "False", "NEI"];
        let pred = ["True", "True", "False", "False", "True", "True"];
        let m = classification(&gold, &pred);
        assert_eq!(m.labels, ["False", "NEI", "True"]);
        assert!(close(m.accuracy, 0.5));
        assert!(close(m.micro_f1, 0.5));
        assert!(close(m.macro_f1, 15.0 / 42.0), "{}", m.macro_f1);
        assert!(close(m.weighted_f1, 19.0 / 42.0), "{}", m.weighted_f1);
        // Weighted precision: (3·1/2 + 2·1/2 + 1·0)/6 = 5/12; weighted recall = accuracy.
        assert!(close(m.weighted.precision, 5.0 / 12.0));
        assert!(close(m.weighted.recall, 0.5));
        assert_eq!(m.confusion, vec![vec![1, 0, 1], vec![0, 0, 1], vec![1, 0, 2]]);
        let t = &m.per_class[2];
        assert_eq!((t.0.as_str(), t.2), ("True", 3));
        assert!(close(t.1.precision, 0.5) && close(t.1.recall, 2.0 / 3.0) && close(t.1.f1, 4.0 / 7.0));
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let m = classification(&["a", "b"], &["a", "a"]);
        assert!(close(m.per_class[1].1.precision, 0.0) && close(m.per_class[1].1.f1, 0.0));
        assert!(m.macro_f1.is_finite());
        let empty = classification(&[], &[]);
        assert_eq!((empty.accuracy, empty.macro_f1, empty.weighted_f1), (0.0, 0.0, 0.0));
    }

    /// prediction "the cat sat on the mat", reference "The cat is on the mat!":
    /// tokens p = the cat sat on the mat (6), r = the cat is on the mat (6).
    /// Unigrams: the×2, cat, on, mat shared → overlap 5; F1 = 5/6.
    /// Bigrams: p = {the cat, cat sat, sat on, on the, the mat}, r = {the cat, cat is, is on,
    /// on the, the mat} → overlap 3 of 5 each; F1 = 3/5.
    /// LCS = the cat on the mat = 5; F1 = 5/6.
    #[test]
    fn rouge_matches_the_hand_computation() {
        let (p, r) = ("the cat sat on the mat", "The cat is on the mat!");
        assert!(close(rouge_n(p, r, 1), 5.0 / 6.0));
        assert!(close(rouge_n(p, r, 2), 3.0 / 5.0));
        assert!(close(rouge_l(p, r), 5.0 / 6.0));
        assert_eq!(rouge_tokens("Don't PANIC: 42-ish"), ["don", "t", "panic", "42", "ish"]);
        assert!(close(rouge_n("", r, 1), 0.0));
        let both = rouge(&[(p, r), (r, r)]);
        assert!(close(both.rouge1, (5.0 / 6.0 + 1.0) / 2.0));
        let m = classification(&["True", "False"], &["True", "True"]);
        assert!(close(fmd_score(&m, &both), (0.5 + both.rouge1) / 2.0));
    }
}
