//! Which texts the transformer decides, and a [`Decide`] for `gema classify --tier bert|cascade`.

use std::path::Path;
use std::sync::Arc;

use super::encoder::set_threads;
use super::tier::BertTier;
use crate::sentiment::classify::{Decide, Route, Tier};
use crate::sentiment::model::load_model;
use crate::sentiment::{Sentiment, SentimentModel};
use crate::text::lang::Lang;

/// The rows `tier` sends to the transformer: with [`Tier::Bert`] every row the head decides,
/// otherwise those whose fast-tier confidence is below `threshold`.
pub fn escalated(
    tier: &BertTier,
    kind: Tier,
    threshold: f32,
    langs: &[Lang],
    fast: &[Sentiment],
) -> Vec<usize> {
    (0..langs.len())
        .filter(|&i| tier.head().decides(langs[i]))
        .filter(|&i| kind == Tier::Bert || fast[i].confidence < threshold)
        .collect()
}

/// Where [`decider`] finds the transformer tier and how it escalates.
#[derive(Debug, Clone)]
pub struct DeciderOptions<'a> {
    /// [`Tier::Bert`] or [`Tier::Cascade`].
    pub tier: Tier,
    /// The fast model file the transformer is fused with.
    pub model: &'a Path,
    /// The transformer head.
    pub head: &'a Path,
    /// The transformer's folder.
    pub model_dir: &'a Path,
    /// [`Tier::Cascade`]: escalate texts whose fast-tier confidence is below this.
    pub threshold: f32,
    /// libtorch threads.
    pub threads: usize,
}

/// The transformer tier's [`Decide`]: the fast model decides, and the transformer re-decides
/// the texts the tier escalates. Every text counts as one that matters (the cascade's query and
/// follower rules need a mention).
pub fn decider(options: &DeciderOptions) -> anyhow::Result<Box<Decide<'static>>> {
    set_threads(options.threads);
    let fast = Arc::new(load_model(options.model)?);
    let tier = BertTier::load(options.model_dir, options.head, fast.clone())?;
    let threshold = options.threshold;
    let kind = options.tier;
    Ok(Box::new(move |items: &[(&str, Lang)], route: Route| {
        let fast_s: Vec<Sentiment> = items.iter().map(|&(t, l)| fast.classify(t, l)).collect();
        let langs: Vec<Lang> = items.iter().map(|&(_, l)| l).collect();
        let chosen = match route {
            Route::Tier => escalated(&tier, kind, threshold, &langs, &fast_s),
            Route::Fast => Vec::new(),
            Route::Transformer => escalated(&tier, Tier::Bert, threshold, &langs, &fast_s),
        };
        let batch: Vec<(&str, Lang)> = chosen.iter().map(|&i| items[i]).collect();
        let verdicts = if batch.is_empty() {
            Vec::new()
        } else {
            tier.classify_batch(&batch)?
        };
        let mut out: Vec<(Sentiment, bool)> = fast_s.into_iter().map(|s| (s, false)).collect();
        for (&i, v) in chosen.iter().zip(&verdicts) {
            out[i] = (v.sentiment, v.by_transformer);
        }
        Ok(out)
    }))
}
