//! A small built-in lexicon scorer: the fallback when no trained model is configured.
//!
//! It knows a few hundred common English and Indonesian opinion words, handles negation
//! (not/never/gak/tidak/bukan...) over the next three words, and never scores other languages.

use super::{Label, Sentiment, SentimentModel};
use crate::text::lang::Lang;

const NEGATORS: &[&str] = &[
    "not", "no", "never", "dont", "don't", "didnt", "didn't", "isnt", "isn't", "wasnt", "wasn't",
    "cant", "can't", "won't", "wont", "gak", "ga", "nggak", "enggak", "ngga", "tidak", "tdk",
    "bukan", "belum", "jangan", "kagak", "tak",
];

const WORDS: &[(&str, f32)] = &[
    // English
    ("love", 2.5),
    ("loved", 2.5),
    ("great", 2.5),
    ("good", 1.8),
    ("amazing", 3.0),
    ("awesome", 3.0),
    ("excellent", 3.0),
    ("best", 2.5),
    ("happy", 2.3),
    ("thanks", 1.5),
    ("thank", 1.5),
    ("fast", 1.0),
    ("nice", 1.8),
    ("recommend", 1.8),
    ("perfect", 3.0),
    ("fantastic", 3.0),
    ("smooth", 1.5),
    ("helpful", 2.0),
    ("impressed", 2.2),
    ("fixed", 1.0),
    ("works", 1.0),
    ("wow", 1.5),
    ("bad", -2.5),
    ("worst", -3.2),
    ("terrible", -3.0),
    ("awful", -3.0),
    ("hate", -2.8),
    ("broken", -2.2),
    ("scam", -3.0),
    ("refund", -1.5),
    ("slow", -1.5),
    ("angry", -2.5),
    ("disappointed", -2.5),
    ("disappointing", -2.5),
    ("useless", -2.8),
    ("never", -0.5),
    ("fail", -2.0),
    ("failed", -2.0),
    ("fails", -2.0),
    ("crash", -2.0),
    ("crashed", -2.0),
    ("crashes", -2.0),
    ("rude", -2.5),
    ("late", -1.5),
    ("delayed", -1.8),
    ("poor", -2.2),
    ("wrong", -1.8),
    ("problem", -1.6),
    ("issue", -1.0),
    ("horrible", -3.0),
    ("ugh", -1.8),
    ("cancel", -1.2),
    ("cancelled", -1.5),
    ("lost", -1.8),
    ("stolen", -2.5),
    ("fraud", -3.0),
    ("ripoff", -3.0),
    ("overpriced", -2.0),
    ("sucks", -2.8),
    ("annoying", -2.2),
    ("down", -1.0),
    // Indonesian
    ("bagus", 2.2),
    ("mantap", 2.5),
    ("mantul", 2.5),
    ("keren", 2.3),
    ("suka", 2.0),
    ("puas", 2.3),
    ("senang", 2.3),
    ("cepat", 1.5),
    ("ramah", 2.0),
    ("terima", 0.5),
    ("kasih", 0.8),
    ("recommended", 2.0),
    ("enak", 2.0),
    ("murah", 1.2),
    ("terbaik", 2.8),
    ("mantab", 2.5),
    ("membantu", 2.0),
    ("lancar", 1.8),
    ("top", 1.8),
    ("oke", 1.2),
    ("hebat", 2.5),
    ("kecewa", -2.8),
    ("buruk", -2.8),
    ("jelek", -2.5),
    ("lambat", -2.0),
    ("lemot", -2.2),
    ("parah", -2.5),
    ("penipuan", -3.2),
    ("tipu", -3.0),
    ("nipu", -3.0),
    ("rusak", -2.3),
    ("mahal", -1.5),
    ("kesal", -2.5),
    ("kesel", -2.5),
    ("marah", -2.5),
    ("batal", -1.5),
    ("hilang", -1.8),
    ("gagal", -2.2),
    ("error", -2.0),
    ("lapor", -1.5),
    ("komplain", -2.0),
    ("telat", -1.8),
    ("lama", -1.0),
    ("susah", -1.8),
    ("ribet", -1.8),
    ("zonk", -2.5),
    ("payah", -2.5),
    ("kapok", -2.8),
    ("bohong", -2.8),
    ("sampah", -3.0),
    ("nyesel", -2.5),
];

const POSITIVE_EMOJI: &[char] = &[
    '😀', '😃', '😄', '😁', '😊', '😍', '🥰', '👍', '❤', '🔥', '🎉', '🙏', '💯',
];
const NEGATIVE_EMOJI: &[char] = &[
    '😡', '😠', '🤬', '😤', '😞', '😢', '😭', '👎', '💩', '😒', '🙄',
];

/// The built-in lexicon model. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct LexiconModel;

impl SentimentModel for LexiconModel {
    fn name(&self) -> &str {
        "lexicon-v1"
    }

    fn classify(&self, text: &str, lang: Lang) -> Sentiment {
        if !lang.is_scored() {
            return Sentiment::UNSCORED;
        }
        let mut sum = 0.0f32;
        let mut hits = 0u32;
        let mut negate_left = 0u8;
        // Negation reaches at most three words and never past the end of a clause.
        for word in text
            .split_inclusive([',', '.', '!', '?', ';', ':'])
            .flat_map(|clause| {
                clause
                    .split(|c: char| !(c.is_alphanumeric() || c == '\''))
                    .chain(["."])
            })
            .filter(|w| !w.is_empty())
        {
            if word == "." {
                negate_left = 0;
                continue;
            }
            let w = word.to_lowercase();
            if NEGATORS.contains(&w.as_str()) {
                negate_left = 3;
                continue;
            }
            if let Some((_, v)) = WORDS.iter().find(|(k, _)| *k == w) {
                hits += 1;
                sum += if negate_left > 0 { -0.75 * v } else { *v };
            }
            negate_left = negate_left.saturating_sub(1);
        }
        for c in text.chars() {
            if POSITIVE_EMOJI.contains(&c) {
                sum += 1.5;
                hits += 1;
            } else if NEGATIVE_EMOJI.contains(&c) {
                sum -= 1.5;
                hits += 1;
            }
        }
        // VADER-style squashing of the summed valence into [-1, 1].
        let score = sum / (sum * sum + 15.0).sqrt();
        let label = if score <= -0.05 {
            Label::Negative
        } else if score >= 0.05 {
            Label::Positive
        } else {
            Label::Neutral
        };
        let confidence = if hits == 0 {
            0.34
        } else {
            (0.34 + score.abs() * 0.66).min(1.0)
        };
        Sentiment {
            label,
            score,
            confidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_polarity_and_negation() {
        let m = LexiconModel;
        assert_eq!(
            m.classify("worst service ever, I want a refund", Lang::En)
                .label,
            Label::Negative
        );
        assert_eq!(
            m.classify("love it, great app", Lang::En).label,
            Label::Positive
        );
        assert_eq!(
            m.classify("this is not good", Lang::En).label,
            Label::Negative
        );
        assert_eq!(
            m.classify("pelayanan gak bagus, kecewa", Lang::Id).label,
            Label::Negative
        );
        assert_eq!(
            m.classify("mantap, puas banget", Lang::Id).label,
            Label::Positive
        );
        assert_eq!(
            m.classify("the parcel arrived today", Lang::En).label,
            Label::Neutral
        );
        assert_eq!(m.classify("great", Lang::Other), Sentiment::UNSCORED);
    }
}
