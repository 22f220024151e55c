//! Which words of a text moved its sentiment score: each whitespace-separated word is left out in
//! turn and the rest re-scored. Works for any tier, because it only needs scores.

use serde::Serialize;

use super::SentimentModel;
use crate::text::lang::Lang;

/// How far leaving one word out moves the polarity score: `effect` is the score with the word
/// minus the score without it, so a negative effect means the word pulled towards negative.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordEffect {
    pub word: String,
    pub effect: f32,
}

/// A word as people read it in an explanation: without the punctuation around it (`bales.` is
/// `bales`, `"awful"` is `awful`), keeping a leading `#` or `@`. A word of punctuation only
/// (an emoji, `!!!`) stays as it is.
pub fn bare_word(word: &str) -> &str {
    let keep = |c: char| c.is_alphanumeric() || c == '#' || c == '@';
    let end = word.trim_end_matches(|c: char| !c.is_alphanumeric());
    let trimmed = end.trim_start_matches(|c: char| !keep(c));
    if trimmed.is_empty() {
        word
    } else {
        trimmed
    }
}

/// Smallest move of the score that counts.
const MIN_EFFECT: f32 = 0.01;

/// The words of `text` whose absence moves its polarity score (`score`, of the whole text) by at
/// least 0.01, largest move first. Only the first `max` words that `candidate` accepts are tried.
/// `rescore` gets those variants of `text` with one word left out, in word order, and returns
/// their scores in the same order.
pub fn word_effects<E>(
    text: &str,
    score: f32,
    candidate: impl Fn(&str) -> bool,
    max: usize,
    rescore: impl FnOnce(&[String]) -> Result<Vec<f32>, E>,
) -> Result<Vec<WordEffect>, E> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let tried: Vec<usize> = (0..words.len())
        .filter(|&k| candidate(words[k]))
        .take(max)
        .collect();
    let variants: Vec<String> = tried
        .iter()
        .map(|&skip| {
            let kept: Vec<&str> = (0..words.len())
                .filter(|&k| k != skip)
                .map(|k| words[k])
                .collect();
            kept.join(" ")
        })
        .collect();
    let scores = rescore(&variants)?;
    let mut effects: Vec<WordEffect> = tried
        .iter()
        .zip(scores)
        .map(|(&k, s)| WordEffect {
            word: bare_word(words[k]).to_string(),
            effect: score - s,
        })
        .filter(|e| e.effect.abs() >= MIN_EFFECT)
        .collect();
    effects.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
    Ok(effects)
}

/// [`word_effects`] of `text` in `lang` under `model`, whose score for the whole text the
/// caller already has (`score`), trying the first `max` words that `candidate` accepts.
pub fn model_word_effects(
    model: &dyn SentimentModel,
    text: &str,
    lang: Lang,
    score: f32,
    candidate: impl Fn(&str) -> bool,
    max: usize,
) -> Vec<WordEffect> {
    let rescore = |variants: &[String]| -> Result<Vec<f32>, std::convert::Infallible> {
        Ok(variants
            .iter()
            .map(|v| super::pipeline_sentiment(model, v, lang).score)
            .collect())
    };
    match word_effects(text, score, candidate, max, rescore) {
        Ok(effects) => effects,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::lexicon::LexiconModel;

    #[test]
    fn explained_words_are_shown_without_their_punctuation() {
        assert_eq!(bare_word("bales."), "bales");
        assert_eq!(bare_word("\"awful\","), "awful");
        assert_eq!(bare_word("(#NusaPayDown)!"), "#NusaPayDown");
        assert_eq!(bare_word("@nusapay:"), "@nusapay");
        assert_eq!(bare_word("!!!"), "!!!");
        assert_eq!(bare_word("😡"), "😡");
        let words = lexicon_effects("the service is awful.", Lang::En, |_| true, 64);
        assert_eq!(words[0].word, "awful", "{words:?}");
    }

    /// [`model_word_effects`] under the built-in lexicon, scoring the whole text first.
    fn lexicon_effects(
        text: &str,
        lang: Lang,
        candidate: impl Fn(&str) -> bool,
        max: usize,
    ) -> Vec<WordEffect> {
        let score = LexiconModel.classify(text, lang).score;
        model_word_effects(&LexiconModel, text, lang, score, candidate, max)
    }

    #[test]
    fn the_sentiment_word_has_the_largest_effect_with_its_sign() {
        let all = |_: &str| true;
        let bad = lexicon_effects("the delivery was awful today", Lang::En, all, usize::MAX);
        assert_eq!(bad[0].word, "awful", "{bad:?}");
        assert!(bad[0].effect < 0.0, "{bad:?}");
        let good = lexicon_effects("pelayanannya bagus sekali", Lang::Id, all, usize::MAX);
        assert_eq!(good[0].word, "bagus", "{good:?}");
        assert!(good[0].effect > 0.0, "{good:?}");
        // Words that change nothing are left out, and the list is ordered by size.
        assert!(bad.iter().all(|e| e.word != "the"), "{bad:?}");
        assert!(bad
            .windows(2)
            .all(|p| p[0].effect.abs() >= p[1].effect.abs()));
    }

    #[test]
    fn an_empty_text_has_no_words() {
        assert!(lexicon_effects("  ", Lang::En, |_| true, 9).is_empty());
    }

    #[test]
    fn only_the_first_accepted_words_are_tried() {
        let text = "awful awful service, truly awful";
        let not_service = |w: &str| !w.starts_with("service");
        let effects = lexicon_effects(text, Lang::En, not_service, 2);
        assert_eq!(effects.len(), 2, "{effects:?}");
        assert!(effects.iter().all(|e| e.word == "awful"), "{effects:?}");
    }
}
