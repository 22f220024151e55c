//! The pure part of the enrich stage: one [`Mention`] in, one [`EnrichedMention`] out.

use std::sync::Arc;

use chrono::Utc;

use crate::mention::{EnrichedMention, Mention};
use crate::sentiment::explain::{model_word_effects, WordEffect};
use crate::sentiment::{pipeline_sentiment, SentimentModel};
use crate::text::lang::Lang;
use crate::text::normalize::BRAND_MARK;
use crate::tracked::{Doc, QuerySet};
use crate::trends::{bigrams, handle_term, hashtag_term, query_negative_term, query_term};

use super::cascade::Cascade;
use super::extract::{extract, keywords, merge_phrases};
use super::stopwords::names_a_reason;

/// Most keywords kept per mention.
const MAX_KEYWORDS: usize = 12;
/// Most words of a mention left out in turn to explain its sentiment (each costs one more
/// classification, paid only by mentions that raise a negative-comment alert).
pub const EXPLAINED_WORDS: usize = 16;

/// Enriches mentions with a shared sentiment model. Cheap to clone.
#[derive(Clone)]
pub struct Enricher {
    model: Arc<dyn SentimentModel>,
    queries: Arc<QuerySet>,
    /// The queries' multi-word phrases, kept whole as keywords (`arunika air`).
    phrases: Arc<Vec<Vec<String>>>,
    cascade: Option<Arc<Cascade>>,
}

impl Enricher {
    /// An enricher with no tracked queries.
    pub fn new(model: Arc<dyn SentimentModel>) -> Self {
        let queries = QuerySet::compile(&[]).expect("an empty query set compiles");
        Enricher {
            model,
            queries: Arc::new(queries),
            phrases: Arc::default(),
            cascade: None,
        }
    }

    /// Gives uncertain mentions that matter a second look by the transformer tier (used by the
    /// enrich stage; [`Enricher::enrich`] itself stays the fast tier alone).
    pub fn with_cascade(mut self, cascade: Cascade) -> Self {
        self.cascade = Some(Arc::new(cascade));
        self
    }

    /// The transformer tier, when the cascade is enabled.
    pub fn cascade(&self) -> Option<&Cascade> {
        self.cascade.as_deref()
    }

    /// The leave-one-word-out effects on `e`'s score under the fast tier of its first
    /// [`EXPLAINED_WORDS`] words that can name a reason (not function words, except negations),
    /// the largest first; empty when the transformer decided `e`, whose reading they would not
    /// explain. `e.sentiment` is then the fast tier's, so its score is not computed again. Words
    /// are left out of the text the score came from, brand names masked: a brand is never
    /// given as a reason.
    pub fn word_effects(&self, e: &EnrichedMention) -> Vec<WordEffect> {
        if e.cascade.as_ref().is_some_and(|c| c.tier != "fast") {
            return Vec::new();
        }
        // The text the score came from (brand names masked); a masked name is no reason.
        let masked = self.scored_text(e);
        model_word_effects(
            self.model.as_ref(),
            masked.as_deref().unwrap_or(&e.mention.text),
            Lang::from_hint(&e.lang),
            e.sentiment.score,
            |w| names_a_reason(w) && !w.contains(BRAND_MARK),
            EXPLAINED_WORDS,
        )
    }

    /// The text the sentiment tiers read for `e`: its text with the words of the queries it
    /// matched masked (`QuerySet::mask`), or `None` when nothing is masked.
    pub fn scored_text(&self, e: &EnrichedMention) -> Option<String> {
        let names = self.queries.names();
        let matched: Vec<usize> = e
            .queries
            .iter()
            .filter_map(|q| names.iter().position(|n| n == q))
            .collect();
        self.queries.mask(&e.mention.text, &matched)
    }

    /// Matches `queries` against every mention (names stored in `EnrichedMention::queries`).
    pub fn with_queries(mut self, queries: QuerySet) -> Self {
        self.phrases = Arc::new(queries.phrases());
        self.queries = Arc::new(queries);
        self
    }

    pub fn model_name(&self) -> &str {
        self.model.name()
    }

    /// Language, sentiment and entities of one mention.
    pub fn enrich(&self, mention: Mention) -> EnrichedMention {
        let extracted = extract(&mention.text);
        // A platform's hint decides only when detection has no evidence either way.
        let hint = mention.lang.as_deref();
        let mut kw = merge_phrases(keywords(&extracted.normalized, MAX_KEYWORDS), &self.phrases);
        // Hashtags are reported on their own; do not count them twice as keywords.
        kw.retain(|k| !extracted.hashtags.contains(k));
        let doc = |lang: Lang| Doc {
            text: &mention.text,
            hashtags: &extracted.hashtags,
            handles: &extracted.handles,
            author_handle: &mention.author.handle,
            lang: lang.as_str(),
            platform: &mention.platform,
        };
        // Brand-blind: the matched queries' words are masked, so no brand name sways the score
        // (`QuerySet::mask`); a post with no letters is read from its emoji. Nor the language:
        // an invented name ("Zorvia") tips short posts either way, so it is read without the
        // names. Matching depends on the language only when a query asks for one: then it is
        // read first from the whole text, and the queries are matched again if reading it
        // without the names changes it. Otherwise it is read once, after matching.
        let first = self
            .queries
            .asks_language()
            .then(|| self.model.language(&mention.text, hint));
        let mut matched = self
            .queries
            .match_indices(&doc(first.map_or(Lang::Other, |(l, _)| l)));
        let mut masked = self.queries.mask(&mention.text, &matched);
        let unnamed: Option<String> = masked
            .as_deref()
            .map(|m| m.chars().filter(|&c| c != BRAND_MARK).collect());
        let (lang, lang_confidence) = match (unnamed, first) {
            (None, Some(read)) => read,
            (unnamed, _) => {
                let read = self
                    .model
                    .language(unnamed.as_deref().unwrap_or(&mention.text), hint);
                if first.is_some_and(|(l, _)| l != read.0) {
                    matched = self.queries.match_indices(&doc(read.0));
                    masked = self.queries.mask(&mention.text, &matched);
                }
                read
            }
        };
        let text = masked.as_deref().unwrap_or(&mention.text);
        let sentiment = pipeline_sentiment(self.model.as_ref(), text, lang);
        let queries = self.queries.names_of(&matched);
        EnrichedMention {
            key: mention.key(),
            lang: lang.as_str().to_string(),
            lang_confidence,
            sentiment,
            sentiment_model: self.model.name().to_string(),
            normalized_text: extracted.normalized,
            hashtags: extracted.hashtags,
            mentions: extracted.handles,
            urls: extracted.urls,
            emojis: extracted.emojis,
            keywords: kw,
            queries,
            enriched_at: Utc::now(),
            mention,
            cascade: None,
        }
    }
}

/// `text` with the words of the tracked queries it matches masked, as the enrich stage scores
/// it (`QuerySet::mask`), for texts that come without a mention: people's corrections that
/// `gema train --corrections` learns from. `None` when nothing is masked.
pub fn masked_for_scoring(queries: &QuerySet, text: &str, lang: &str) -> Option<String> {
    let extracted = extract(text);
    let matched = queries.match_indices(&Doc {
        text,
        hashtags: &extracted.hashtags,
        handles: &extracted.handles,
        author_handle: "",
        lang,
        platform: "",
    });
    queries.mask(text, &matched)
}

/// The terms a mention contributes to trend detection: `#hashtags`, `@handles`, keywords,
/// bigrams, `q:<query>` per matched query and `qneg:<query>` when it is also negative.
pub fn terms_of(e: &EnrichedMention) -> Vec<String> {
    let mut terms: Vec<String> = e.hashtags.iter().map(|h| hashtag_term(h)).collect();
    terms.extend(e.mentions.iter().map(|h| handle_term(h)));
    terms.extend(e.keywords.iter().cloned());
    terms.extend(bigrams(&e.keywords));
    for q in &e.queries {
        terms.push(query_term(q));
        if e.is_negative() {
            terms.push(query_negative_term(q));
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::lexicon::LexiconModel;
    use crate::sentiment::{Label, Sentiment};

    fn mention(text: &str, lang: Option<&str>) -> Mention {
        let json = serde_json::json!({
            "id": "9", "platform": "mastodon", "text": text,
            "created_at": "2026-11-26T10:00:00Z", "author": {"id": "u1", "handle": "ann"},
            "lang": lang,
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_language_is_read_without_the_matched_names() {
        use crate::tracked::TrackedQueryConfig;
        let set = |query: &str| {
            QuerySet::compile(&[TrackedQueryConfig {
                name: "zorvia".into(),
                query: query.into(),
            }])
            .unwrap()
        };
        // "Zorvia" itself would tip language id (checked below); without it the post reads
        // English, whether or not a query asks for a language.
        for q in ["zorvia OR @zorvia", "zorvia lang:en", "zorvia -lang:id"] {
            let queries = set(q);
            assert_eq!(queries.asks_language(), q.contains("lang:"));
            let e = Enricher::new(Arc::new(LexiconModel)).with_queries(queries);
            let out = e.enrich(mention("Using Zorvia again today", None));
            assert_eq!((out.lang.as_str(), out.queries.len()), ("en", 1), "{q}");
        }
        let named = crate::text::lang::detect("Using Zorvia again today");
        let unnamed = crate::text::lang::detect("Using again today");
        assert_eq!(unnamed.0, Lang::En);
        assert!(named != unnamed, "the name moves language id: {named:?}");
    }

    #[test]
    fn enriches_a_negative_indonesian_complaint() {
        let e = Enricher::new(Arc::new(LexiconModel));
        let out = e.enrich(mention(
            "Saldo hilang, transfer gagal @NusaPay #NusaPayError kecewa banget",
            None,
        ));
        assert_eq!(out.key, "mastodon:9");
        assert_eq!(out.lang, "id");
        assert_eq!(out.sentiment.label, Label::Negative);
        assert_eq!(out.hashtags, vec!["nusapayerror"]);
        assert_eq!(out.mentions, vec!["nusapay"]);
        assert!(out.keywords.contains(&"saldo".to_string()));
        assert!(!out.keywords.contains(&"nusapayerror".to_string()));
    }

    #[test]
    fn a_brand_name_is_never_a_reason() {
        let queries = QuerySet::compile(&[crate::tracked::TrackedQueryConfig {
            name: "nusapay".into(),
            query: "nusapay OR @nusapay".into(),
        }])
        .unwrap();
        let model = crate::sentiment::load_model(std::path::Path::new(
            crate::sentiment::DEFAULT_MODEL_PATH,
        ))
        .unwrap();
        let e = Enricher::new(Arc::new(model)).with_queries(queries);
        let out = e.enrich(mention("NusaPay agak lambat hari ini @nusapay", None));
        assert_eq!(out.queries, vec!["nusapay"]);
        let words: Vec<String> = e.word_effects(&out).into_iter().map(|w| w.word).collect();
        assert_eq!(
            words.first().map(String::as_str),
            Some("lambat"),
            "{words:?}"
        );
        assert!(
            words
                .iter()
                .all(|w| !w.to_lowercase().contains("nusapay") && !w.contains(BRAND_MARK)),
            "{words:?}"
        );
    }

    #[test]
    fn other_languages_are_unscored() {
        let e = Enricher::new(Arc::new(LexiconModel));
        let out = e.enrich(mention("Das ist wirklich gut", Some("de")));
        assert_eq!(out.lang, "other");
        assert_eq!(out.sentiment, Sentiment::UNSCORED);
    }
}
