//! Classifying batches of texts tier by tier, as `gema classify` does, and explaining a verdict
//! word by word.

use std::sync::Arc;

use super::explain::{word_effects, WordEffect};
use super::{Sentiment, SentimentModel};
use crate::text::lang::Lang;

/// Which sentiment tier decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The fast classifier (hashed n-grams + lexicons), every mention.
    Fast,
    /// The transformer head fused with the fast tier, every row the head decides.
    Bert,
    /// The fast tier, with the transformer on the rows where the fast tier is unsure.
    Cascade,
}

impl Tier {
    /// The tier's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Bert => "bert",
            Tier::Cascade => "cascade",
        }
    }
}

/// Which texts of a batch a [`Decide`] sends to the transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Those the tier escalates (`--tier cascade`: the unsure ones; `bert`: every one its head
    /// decides).
    Tier,
    /// None: the fast tier decides.
    Fast,
    /// Every one the head decides.
    Transformer,
}

/// A tier's decisions for a batch of `(text, lang)`, each with whether the transformer took part.
pub type Decide<'a> = dyn Fn(&[(&str, Lang)], Route) -> anyhow::Result<Vec<(Sentiment, bool)>> + 'a;

/// The fast tier's [`Decide`]: `model` decides every text, whatever the route.
pub fn fast_decider(model: Arc<dyn SentimentModel>) -> Box<Decide<'static>> {
    Box::new(
        move |items: &[(&str, Lang)], _: Route| -> anyhow::Result<Vec<(Sentiment, bool)>> {
            Ok(items
                .iter()
                .map(|&(t, l)| (super::pipeline_sentiment(model.as_ref(), t, l), false))
                .collect())
        },
    )
}

/// Leaves each word of `text` out in turn and re-scores the rest in `lang` with `decide`
/// along `route` (one batch; the route that decided the whole text, so that a word's effect is
/// never a change of tier): [`word_effects`].
pub fn explain(
    decide: &Decide,
    route: Route,
    text: &str,
    lang: Lang,
    score: f32,
) -> anyhow::Result<Vec<WordEffect>> {
    word_effects(
        text,
        score,
        |_| true,
        usize::MAX,
        |variants| {
            let items: Vec<(&str, Lang)> = variants.iter().map(|v| (v.as_str(), lang)).collect();
            Ok(decide(&items, route)?
                .into_iter()
                .map(|(s, _)| s.score)
                .collect())
        },
    )
}
