//! Scoring the transformer tier on labelled rows, as `gema eval --tier bert|cascade` does:
//! metrics, how many rows the transformer decided, and the gain over the fast tier.

use std::time::Instant;

use super::decide::escalated;
use super::tier::BertTier;
use crate::sentiment::classify::Tier;
use crate::sentiment::data::Example;
use crate::sentiment::evaluate::lang_accuracy;
use crate::sentiment::metrics::{self, Gains, Report};
use crate::sentiment::model::FastModel;
use crate::sentiment::{pipeline_sentiment, Label};
use crate::text::lang::Lang;

/// Resamples of the paired bootstrap behind `gema eval`'s gain over the fast tier.
const BOOTSTRAP_RESAMPLES: usize = 1000;

/// What [`evaluate`] found on a set of rows.
#[derive(Debug, Clone)]
pub struct TierEvaluation {
    /// Metrics of the tier's decisions, language-id accuracy and texts/s.
    pub report: Report,
    /// Rows the transformer decided.
    pub transformer_rows: usize,
    /// Rows in a language the head decides.
    pub eligible: usize,
    /// `transformer_rows` over `eligible` (0 when none is eligible).
    pub transformer_fraction: f64,
    /// The tier's gain over the fast tier alone, with paired-bootstrap intervals.
    pub gains: Gains,
}

/// Scores `kind` ([`Tier::Bert`]: the transformer decides every row its head decides;
/// [`Tier::Cascade`]: those whose fast-tier confidence is below `threshold`) on `examples`,
/// in each row's detected language (its `lang` field with `gold_lang`). `fast` is the fast
/// model `tier` was loaded with.
pub fn evaluate(
    tier: &BertTier,
    fast: &FastModel,
    kind: Tier,
    threshold: f32,
    name: &str,
    examples: &[Example],
    gold_lang: bool,
) -> anyhow::Result<TierEvaluation> {
    let start = Instant::now();
    let langs: Vec<Lang> = examples
        .iter()
        .map(|e| match (gold_lang, e.lang) {
            (true, Some(l)) => l,
            _ => fast.language(&e.text, None).0,
        })
        .collect();
    let fast_s: Vec<_> = examples
        .iter()
        .zip(&langs)
        .map(|(e, &l)| pipeline_sentiment(fast, &e.text, l))
        .collect();
    let decided = escalated(tier, kind, threshold, &langs, &fast_s);
    let items: Vec<(&str, Lang)> = decided
        .iter()
        .map(|&i| (examples[i].text.as_str(), langs[i]))
        .collect();
    let verdicts = tier.classify_batch(&items)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let fast_pred: Vec<Label> = fast_s.iter().map(|s| s.label).collect();
    let mut decisions = fast_s.clone();
    for (k, &i) in decided.iter().enumerate() {
        decisions[i] = verdicts[k].sentiment;
    }
    let pred: Vec<Label> = decisions.iter().map(|s| s.label).collect();
    let gold: Vec<Label> = examples.iter().map(|e| e.label).collect();
    let mut report = metrics::score(name, &gold, &pred, examples.len() as f64 / secs);
    report.negative_alerts = metrics::negative_alerts(&gold, &decisions);
    report.lang_accuracy = lang_accuracy(examples, &langs, gold_lang);
    let eligible = (0..examples.len())
        .filter(|&i| tier.head().decides(langs[i]))
        .count();
    let transformer_fraction = decided.len() as f64 / eligible.max(1) as f64;
    let gains = metrics::paired_bootstrap(&gold, &fast_pred, &pred, BOOTSTRAP_RESAMPLES, 42);
    Ok(TierEvaluation {
        report,
        transformer_rows: decided.len(),
        eligible,
        transformer_fraction,
        gains,
    })
}
