//! Scoring the fast model on labelled rows, as `gema eval` does: metrics, language-id accuracy
//! and speed.

use std::time::Instant;

use super::data::Example;
use super::metrics::{self, Report};
use super::model::FastModel;
use super::pipeline_sentiment;
use super::{Label, Sentiment};
use crate::text::lang::Lang;

/// What [`evaluate`] found on a set of rows.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Metrics, language-id accuracy and texts/s.
    pub report: Report,
    /// Each row's predicted label, in row order.
    pub pred: Vec<Label>,
    /// Each row's language as the model was given it, in row order.
    pub langs: Vec<Lang>,
}

impl Evaluation {
    /// The rows of `examples` (the rows evaluated) that count as misclassified, in row order,
    /// with their prediction and language. On a negative-vs-rest file a positive row predicted
    /// neutral is not an error.
    pub fn errors<'a>(
        &'a self,
        examples: &'a [Example],
    ) -> impl Iterator<Item = (&'a Example, Label, Lang)> + 'a {
        examples
            .iter()
            .zip(&self.pred)
            .zip(&self.langs)
            .filter(|((e, p), _)| {
                e.label != **p
                    && !(e.label == Label::Positive
                        && **p != Label::Negative
                        && self.report.scheme == "negative-vs-rest")
            })
            .map(|((e, p), l)| (e, *p, *l))
    }
}

/// Scores `model` on `examples`: predictions, metrics, language-id accuracy (when rows carry
/// `lang` and `gold_lang` is off) and texts/s. The timed pass repeats until `min_timing_s` has
/// passed, so that small files and scheduler hiccups on a shared machine do not decide the figure.
pub fn evaluate(
    model: &FastModel,
    name: &str,
    examples: &[Example],
    gold_lang: bool,
    min_timing_s: f64,
) -> Evaluation {
    let run = || -> (Vec<Sentiment>, Vec<Lang>) {
        examples
            .iter()
            .map(|e| {
                let lang = match (gold_lang, e.lang) {
                    (true, Some(l)) => l,
                    _ => model.language(&e.text, None).0,
                };
                (pipeline_sentiment(model, &e.text, lang), lang)
            })
            .unzip()
    };
    let (verdicts, langs) = run();
    let pred: Vec<Label> = verdicts.iter().map(|v| v.label).collect();
    let start = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || start.elapsed().as_secs_f64() < min_timing_s {
        std::hint::black_box(run());
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9) / passes as f64;
    let gold: Vec<Label> = examples.iter().map(|e| e.label).collect();
    let mut report = metrics::score(name, &gold, &pred, examples.len() as f64 / secs);
    report.negative_alerts = metrics::negative_alerts(&gold, &verdicts);
    report.lang_accuracy = lang_accuracy(examples, &langs, gold_lang);
    Evaluation {
        report,
        pred,
        langs,
    }
}

/// The share of the rows tagged with a `lang` whose language `langs` got right; `None` when no
/// row is tagged or `gold_lang` gave the model the tags.
pub fn lang_accuracy(examples: &[Example], langs: &[Lang], gold_lang: bool) -> Option<f64> {
    let tagged: Vec<(Lang, Lang)> = examples
        .iter()
        .zip(langs)
        .filter_map(|(e, l)| e.lang.map(|g| (g, *l)))
        .collect();
    if !gold_lang && !tagged.is_empty() {
        let ok = tagged.iter().filter(|(g, l)| g == l).count();
        Some(ok as f64 / tagged.len() as f64)
    } else {
        None
    }
}
