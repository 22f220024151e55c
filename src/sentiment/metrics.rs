//! Classification metrics for `gema eval` and training-time model selection.
//!
//! A file whose gold labels are only negative and positive is scored as negative-vs-rest: any
//! prediction other than negative (neutral, positive, unscored) counts as "not negative".

use serde::Serialize;

use super::{Label, Sentiment};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold examples of this class.
    pub support: u64,
}

/// Scores of one labelled file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub n: usize,
    /// `negative-vs-rest` for files with only negative/positive gold labels, else `3-class`.
    pub scheme: String,
    pub accuracy: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// F1 of the negative class (the one a social media manager acts on).
    pub neg_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Row labels of `confusion` (gold).
    pub labels: Vec<String>,
    /// Column labels of `confusion` (predicted).
    pub predicted_labels: Vec<String>,
    /// `confusion[gold][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Predictions that were `unscored` (language identified as other).
    pub unscored: u64,
    pub texts_per_s: f64,
    /// Share of rows whose detected language matches the file's `lang` field, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_accuracy: Option<f64>,
    /// What negative-comment alerts would give at each confidence floor
    /// ([`negative_alerts`]; empty when the caller had no confidences).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub negative_alerts: Vec<AlertFloor>,
}

/// Negative-comment alerts at one confidence floor: what `alerts.negative_comment.min_confidence`
/// set to `min_confidence` would have raised on a labelled file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertFloor {
    pub min_confidence: f32,
    /// Rows predicted negative with at least this confidence.
    pub alerts: u64,
    /// Share of those alerts whose gold label is negative (0 without alerts).
    pub precision: f64,
    /// Share of the gold-negative rows that raised one.
    pub recall: f64,
}

/// The confidence floors [`negative_alerts`] reports (0.5 is the shipped default).
pub const ALERT_FLOORS: [f32; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// Precision and recall of "negative with confidence ≥ floor" against the gold negatives, for
/// each of [`ALERT_FLOORS`]: the trade-off behind `alerts.negative_comment.min_confidence`.
pub fn negative_alerts(gold: &[Label], pred: &[Sentiment]) -> Vec<AlertFloor> {
    assert_eq!(gold.len(), pred.len(), "one prediction per gold label");
    let negatives = gold.iter().filter(|g| **g == Label::Negative).count() as u64;
    ALERT_FLOORS
        .iter()
        .map(|&floor| {
            let (mut alerts, mut hits) = (0u64, 0u64);
            for (g, p) in gold.iter().zip(pred) {
                if p.label == Label::Negative && p.confidence >= floor {
                    alerts += 1;
                    hits += u64::from(*g == Label::Negative);
                }
            }
            AlertFloor {
                min_confidence: floor,
                alerts,
                precision: share(hits, alerts),
                recall: share(hits, negatives),
            }
        })
        .collect()
}

/// `part / whole`, or 0 when `whole` is 0 (a precision with no predictions, a recall with no
/// gold rows).
fn share(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// Scores predictions against gold labels. `gold` holds only negative/neutral/positive.
pub fn score(file: &str, gold: &[Label], pred: &[Label], texts_per_s: f64) -> Report {
    assert_eq!(gold.len(), pred.len(), "one prediction per gold label");
    let binary = !gold.contains(&Label::Neutral);
    let unscored = pred.iter().filter(|p| **p == Label::Unscored).count() as u64;
    let (labels, predicted_labels, confusion): (Vec<&str>, Vec<&str>, Vec<Vec<u64>>) = if binary {
        let mut m = vec![vec![0u64; 2]; 2];
        for (g, p) in gold.iter().zip(pred) {
            let gi = usize::from(*g != Label::Negative);
            let pi = usize::from(*p != Label::Negative);
            m[gi][pi] += 1;
        }
        (
            vec!["negative", "not_negative"],
            vec!["negative", "not_negative"],
            m,
        )
    } else {
        let mut m = vec![vec![0u64; 4]; 3];
        let idx = |l: Label| match l {
            Label::Negative => 0,
            Label::Neutral => 1,
            Label::Positive => 2,
            Label::Unscored => 3,
        };
        for (g, p) in gold.iter().zip(pred) {
            m[idx(*g)][idx(*p)] += 1;
        }
        (
            vec!["negative", "neutral", "positive"],
            vec!["negative", "neutral", "positive", "unscored"],
            m,
        )
    };
    let k = labels.len();
    let n: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|i| {
            let tp = confusion[i][i];
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = (0..k).map(|g| confusion[g][i]).sum();
            let precision = share(tp, predicted);
            let recall = share(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                label: labels[i].to_string(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k as f64;
    Report {
        file: file.to_string(),
        n: gold.len(),
        scheme: if binary {
            "negative-vs-rest"
        } else {
            "3-class"
        }
        .to_string(),
        accuracy: share(correct, n),
        macro_recall: mean(|c| c.recall),
        macro_f1: mean(|c| c.f1),
        neg_f1: per_class[0].f1,
        per_class,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        predicted_labels: predicted_labels.iter().map(|s| s.to_string()).collect(),
        confusion,
        unscored,
        texts_per_s,
        lang_accuracy: None,
        negative_alerts: Vec::new(),
    }
}

impl Report {
    /// The headline metrics, as the model manifests list them.
    pub fn brief(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file, "n": self.n, "scheme": self.scheme, "accuracy": self.accuracy,
            "macro_recall": self.macro_recall, "macro_f1": self.macro_f1, "neg_f1": self.neg_f1,
        })
    }

    /// A human-readable block: headline metrics, per-class table and confusion matrix.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: n={} ({}) accuracy={:.3} macro_recall={:.3} macro_f1={:.3} neg_f1={:.3} \
             unscored={} texts/s={:.0}",
            self.file,
            self.n,
            self.scheme,
            self.accuracy,
            self.macro_recall,
            self.macro_f1,
            self.neg_f1,
            self.unscored,
            self.texts_per_s
        );
        if let Some(a) = self.lang_accuracy {
            let _ = writeln!(s, "  language id accuracy vs the file's lang field: {a:.3}");
        }
        let _ = writeln!(
            s,
            "  {:<14}{:>10}{:>10}{:>10}{:>10}",
            "class", "precision", "recall", "f1", "n"
        );
        for c in &self.per_class {
            let _ = writeln!(
                s,
                "  {:<14}{:>10.3}{:>10.3}{:>10.3}{:>10}",
                c.label, c.precision, c.recall, c.f1, c.support
            );
        }
        let _ = write!(s, "  {:<14}", "gold \\ pred");
        for l in &self.predicted_labels {
            let _ = write!(s, "{:>14}", l);
        }
        s.push('\n');
        for (l, row) in self.labels.iter().zip(&self.confusion) {
            let _ = write!(s, "  {:<14}", l);
            for v in row {
                let _ = write!(s, "{:>14}", v);
            }
            s.push('\n');
        }
        if !self.negative_alerts.is_empty() {
            let _ = writeln!(
                s,
                "  negative-comment alerts by min_confidence (alerts, precision, recall):"
            );
            for a in &self.negative_alerts {
                let _ = writeln!(
                    s,
                    "    >= {:.1}: {:>6} {:>8.3} {:>8.3}",
                    a.min_confidence, a.alerts, a.precision, a.recall
                );
            }
        }
        s
    }
}

/// The change `new − base` in one metric, with a 95 % paired-bootstrap interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Difference {
    pub gain: f64,
    /// 2.5th and 97.5th percentiles of the gain over the resamples.
    pub ci95: [f64; 2],
}

/// How a second prediction of the same rows scores against a first, and how sure that is: the
/// rows are resampled with replacement `resamples` times and both predictions are scored on
/// each resample (a paired bootstrap), so the interval shows what a dev set of this size can
/// tell apart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gains {
    pub resamples: usize,
    pub macro_recall: Difference,
    pub macro_f1: Difference,
    pub neg_f1: Difference,
}

/// Paired bootstrap of `new` against `base` on `gold` (deterministic for a `seed`).
pub fn paired_bootstrap(
    gold: &[Label],
    base: &[Label],
    new: &[Label],
    resamples: usize,
    seed: u64,
) -> Gains {
    use rand::{Rng, SeedableRng};
    assert!(
        gold.len() == base.len() && gold.len() == new.len(),
        "one prediction per gold label"
    );
    let metrics = |r: &Report| [r.macro_recall, r.macro_f1, r.neg_f1];
    let (b, n) = (score("", gold, base, 0.0), score("", gold, new, 0.0));
    let point: Vec<f64> = metrics(&n)
        .iter()
        .zip(metrics(&b))
        .map(|(x, y)| x - y)
        .collect();
    let mut draws: [Vec<f64>; 3] = Default::default();
    if !gold.is_empty() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut g, mut pb, mut pn) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..resamples {
            g.clear();
            pb.clear();
            pn.clear();
            for _ in 0..gold.len() {
                let i = rng.gen_range(0..gold.len());
                g.push(gold[i]);
                pb.push(base[i]);
                pn.push(new[i]);
            }
            let (rb, rn) = (
                metrics(&score("", &g, &pb, 0.0)),
                metrics(&score("", &g, &pn, 0.0)),
            );
            for k in 0..3 {
                draws[k].push(rn[k] - rb[k]);
            }
        }
    }
    draws.iter_mut().for_each(|d| d.sort_by(f64::total_cmp));
    let diff = |k: usize| {
        let d = &draws[k];
        let q = |p: f64| match d.len() {
            0 => point[k],
            len => d[((p * (len - 1) as f64).round() as usize).min(len - 1)],
        };
        Difference {
            gain: point[k],
            ci95: [q(0.025), q(0.975)],
        }
    };
    Gains {
        resamples,
        macro_recall: diff(0),
        macro_f1: diff(1),
        neg_f1: diff(2),
    }
}

impl Gains {
    /// One line for `gema eval`'s text output.
    pub fn to_text(&self, base: &str) -> String {
        let d = |x: &Difference| format!("{:+.4} ({:+.3} to {:+.3})", x.gain, x.ci95[0], x.ci95[1]);
        format!(
            "  gain over the {base}: macro-recall {}, macro-F1 {}, negative F1 {} (95 % paired \
             bootstrap interval, {} resamples)\n",
            d(&self.macro_recall),
            d(&self.macro_f1),
            d(&self.neg_f1),
            self.resamples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::*;

    #[test]
    fn negative_alerts_trade_recall_for_precision() {
        let v = |label, confidence| Sentiment {
            label,
            score: 0.0,
            confidence,
        };
        let gold = [Negative, Negative, Negative, Neutral, Positive];
        let pred = [
            v(Negative, 0.95),
            v(Negative, 0.65),
            v(Neutral, 0.9),
            v(Negative, 0.55),
            v(Positive, 0.99),
        ];
        let floors = negative_alerts(&gold, &pred);
        let at = |f: f32| {
            floors
                .iter()
                .find(|a| (a.min_confidence - f).abs() < 1e-6)
                .unwrap()
        };
        // ≥ 0.5: three alerts, two right; two of three negatives caught.
        assert_eq!(at(0.5).alerts, 3);
        assert!((at(0.5).precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((at(0.5).recall - 2.0 / 3.0).abs() < 1e-9);
        // ≥ 0.6: the neutral row's 0.55 no longer alerts.
        assert_eq!((at(0.6).alerts, at(0.6).precision), (2, 1.0));
        // ≥ 0.9: one alert, one negative in three.
        assert_eq!(at(0.9).alerts, 1);
        assert!((at(0.9).recall - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(floors.len(), ALERT_FLOORS.len());
    }

    #[test]
    fn three_class_metrics() {
        let gold = [Negative, Negative, Neutral, Positive, Positive, Positive];
        let pred = [Negative, Neutral, Neutral, Positive, Positive, Unscored];
        let r = score("f", &gold, &pred, 1.0);
        assert_eq!(r.scheme, "3-class");
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-9);
        // recalls: neg 1/2, neu 1/1, pos 2/3
        assert!((r.macro_recall - (0.5 + 1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-9);
        assert_eq!(r.confusion[2][3], 1);
        assert_eq!(r.unscored, 1);
        // neg: precision 1, recall .5
        assert!((r.neg_f1 - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn binary_files_are_negative_vs_rest() {
        let gold = [Negative, Negative, Positive, Positive];
        let pred = [Negative, Neutral, Neutral, Positive];
        let r = score("f", &gold, &pred, 1.0);
        assert_eq!(r.scheme, "negative-vs-rest");
        // A neutral prediction on a positive text is correct (not negative).
        assert!((r.accuracy - 0.75).abs() < 1e-9);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert!((r.neg_f1 - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn paired_bootstrap_brackets_the_gain() {
        // 300 rows; `new` fixes 30 of `base`'s errors.
        let gold: Vec<Label> = (0..300)
            .map(|i| [Negative, Neutral, Positive][i % 3])
            .collect();
        let base: Vec<Label> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| if i % 5 == 0 { Neutral } else { g })
            .collect();
        let new: Vec<Label> = gold
            .iter()
            .zip(&base)
            .enumerate()
            .map(|(i, (&g, &b))| if i % 10 == 0 { g } else { b })
            .collect();
        let g = paired_bootstrap(&gold, &base, &new, 500, 7);
        let exact =
            score("", &gold, &new, 0.0).macro_recall - score("", &gold, &base, 0.0).macro_recall;
        assert!((g.macro_recall.gain - exact).abs() < 1e-12);
        let [lo, hi] = g.macro_recall.ci95;
        assert!(0.0 < lo && lo < exact && exact < hi, "{lo} {exact} {hi}");
        // Same seed, same interval; the same prediction twice gains nothing, surely.
        assert_eq!(g, paired_bootstrap(&gold, &base, &new, 500, 7));
        let same = paired_bootstrap(&gold, &base, &base, 200, 7);
        assert_eq!(
            same.macro_f1,
            Difference {
                gain: 0.0,
                ci95: [0.0, 0.0]
            }
        );
        assert!(g.to_text("fast tier").contains("macro-recall +0.0"));
    }
}
