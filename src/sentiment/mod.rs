//! Sentiment scoring for social text in English and Indonesian.
//!
//! Everything here is pure (no I/O on the hot path): the enrich stage loads a [`SentimentModel`] once
//! at start-up and calls [`SentimentModel::classify`] for every mention.

pub mod bert;
pub mod classify;
pub mod data;
pub mod evaluate;
pub mod explain;
pub mod features;
pub mod fit;
pub mod langid;
pub mod lexicon;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod train;

use serde::{Deserialize, Serialize};

use crate::text::lang::Lang;

pub use model::{load_model, FastModel, ModelError, DEFAULT_MANIFEST_PATH, DEFAULT_MODEL_PATH};

/// The sentiment class of a mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Negative,
    Neutral,
    Positive,
    /// The text is in a language the model does not know; never a confident guess.
    Unscored,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Negative => "negative",
            Label::Neutral => "neutral",
            Label::Positive => "positive",
            Label::Unscored => "unscored",
        }
    }
}

impl std::str::FromStr for Label {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "negative" => Ok(Label::Negative),
            "neutral" => Ok(Label::Neutral),
            "positive" => Ok(Label::Positive),
            "unscored" => Ok(Label::Unscored),
            other => Err(format!(
                "unknown sentiment label {other:?} (expected negative, neutral, positive or unscored)"
            )),
        }
    }
}

/// What a model says about one text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    pub label: Label,
    /// Polarity in [-1, 1]: negative below zero.
    pub score: f32,
    /// How sure the model is of `label`, in [0, 1]; 0 for [`Label::Unscored`].
    pub confidence: f32,
}

impl Sentiment {
    pub const UNSCORED: Sentiment = Sentiment {
        label: Label::Unscored,
        score: 0.0,
        confidence: 0.0,
    };
}

/// A sentiment classifier. Implementations are immutable after loading and shared across tasks.
/// The sentiment the pipeline gives `text` in `lang` (as [`SentimentModel::language`] found
/// it): the model's reading for English and Indonesian, its reading of the symbols of a post
/// with no letters ([`SentimentModel::classify_symbols`]), and unscored otherwise.
pub fn pipeline_sentiment(model: &dyn SentimentModel, text: &str, lang: Lang) -> Sentiment {
    match lang {
        Lang::Other => model.classify_symbols(text).unwrap_or(Sentiment::UNSCORED),
        l if !l.is_scored() => Sentiment::UNSCORED,
        _ => model.classify(text, lang),
    }
}

pub trait SentimentModel: Send + Sync {
    /// Short name recorded on each enriched mention (e.g. `lexicon-v1`).
    fn name(&self) -> &str;
    /// The language `text` is scored in (`hint`: the platform's, used when the text has no
    /// letters). By default lid.176 alone decides ([`crate::text::lang::resolve`]).
    fn language(&self, text: &str, hint: Option<&str>) -> (Lang, f32) {
        crate::text::lang::resolve(text, hint)
    }
    /// `text` as this model reads it (by default [`crate::text::normalize::normalize`]).
    fn normalized(&self, text: &str) -> String {
        crate::text::normalize::normalize(text)
    }
    /// A sentiment for a post with no letters (emoji only, `😡😡😡`), which has no language;
    /// `None` when the model cannot read it. By default nothing is scored.
    fn classify_symbols(&self, _text: &str) -> Option<Sentiment> {
        None
    }
    /// Classifies one text already known to be in `lang`.
    fn classify(&self, text: &str, lang: Lang) -> Sentiment;
}
