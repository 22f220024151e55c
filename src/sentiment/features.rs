//! Feature extraction: hashed word and character n-grams plus lexicon and rule features.
//!
//! Input is the output of [`crate::text::normalize::normalize()`]. Features are `(bucket, value)` pairs; the same
//! text always yields the same features on every platform (see [`crate::text::hash`]).
//!
//! - word unigrams, marked `n:` inside a negation scope (after `not`/`tidak`/`bukan`/`kurang`...
//!   up to three words or the next punctuation or contrast word);
//! - word bigrams;
//! - character n-grams of each word with boundary marks (`<word>`);
//! - dense lexicon features, each also conjoined with the language: VADER and InSet positive and
//!   negative valence sums (negation flips, intensifiers boost, words after a contrast such as
//!   `but`/`tapi`/`namun` count 1.5×, before it 0.5×), emoji polarity (VADER scores of the emoji
//!   names), negation count and a contrast flag;
//! - a per-language bias.
//!
//! Sparse values are scaled to unit L2 norm; dense values are squashed into [0, 1).

use serde::{Deserialize, Serialize};

use crate::text::hash::{fnv1a, mix, FastMap, FNV_OFFSET};
use crate::text::lang::Lang;
use crate::text::normalize::{normalize_into_with, SegmentVocab};

/// Shape of the hashed feature space; stored in the model header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// log2 of the number of hash buckets.
    pub buckets_log2: u32,
    /// Shortest character n-gram (in chars, boundary marks included).
    pub char_min: usize,
    /// Longest character n-gram.
    pub char_max: usize,
    /// Whether word bigrams are features.
    pub word_bigrams: bool,
    /// Whether word trigrams are features (absent in older model headers: off; left out of the
    /// header when off, so models without them keep their bytes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_trigrams: bool,
    /// Whether word and character features are hashed together with the language, so English
    /// and Indonesian get separate weights (dense lexicon features stay shared as well).
    pub lang_conjoin: bool,
    /// Weight of a character n-gram relative to a word feature (before L2 scaling).
    pub char_weight: f32,
    /// Whether character n-grams inside a negation scope are marked as negated, like words.
    pub negate_chars: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            buckets_log2: 20,
            char_min: 3,
            char_max: 5,
            word_bigrams: true,
            word_trigrams: false,
            lang_conjoin: true,
            char_weight: 0.5,
            negate_chars: true,
        }
    }
}

impl FeatureConfig {
    /// Number of hash buckets.
    pub fn buckets(&self) -> usize {
        1 << self.buckets_log2
    }
}

/// Word valences baked into the model: derived from VADER (MIT) and InSet at training time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicons {
    /// VADER word valences (about −4..4).
    pub vader: FastMap<String, f32>,
    /// InSet positive weights (1..5).
    pub inset_pos: FastMap<String, f32>,
    /// InSet negative weights (−5..−1).
    pub inset_neg: FastMap<String, f32>,
    /// Emoji polarity: sum of the VADER valences of the emoji's name words.
    pub emoji: FastMap<String, f32>,
    /// Lower-case words of the training text with their counts (three or more), for splitting
    /// lower-case hashtags ([`crate::text::normalize::SegmentVocab`]).
    #[serde(default)]
    pub segment: FastMap<String, u32>,
}

/// Words that open a negation scope (after normalisation: `gak`, `tdk` → `tidak`).
pub const NEGATORS: &[&str] = &[
    "not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "tidak",
    "bukan", "belum", "jangan", "tanpa", "kurang", "tak",
];
const CONTRAST: &[&str] = &[
    "but", "however", "although", "though", "tapi", "tetapi", "namun", "padahal",
];
const INTENSIFIERS: &[&str] = &[
    "very",
    "really",
    "so",
    "too",
    "extremely",
    "totally",
    "absolutely",
    "super",
    "most",
    "banget",
    "sangat",
    "sekali",
    "amat",
    "terlalu",
    "paling",
    "sungguh",
    "bener",
    "benar",
    "<elong>",
    "<caps>",
];
const SCOPE_END: &[&str] = &[".", ",", "!", "!!", "?", "??", "?!", "…"];

/// Names of the dense features, in output order.
pub const DENSE: &[&str] = &[
    "vader+",
    "vader-",
    "inset+",
    "inset-",
    "emoji+",
    "emoji-",
    "negations",
    "contrast",
];

/// Turns normalised text into hashed features.
#[derive(Debug, Clone)]
pub struct Featurizer {
    config: FeatureConfig,
    mask: u64,
    lexicons: Lexicons,
    /// Rule role and lexicon valences of every known token, merged for one lookup per token.
    words: FastMap<String, WordInfo>,
    segment: SegmentVocab,
}

/// What the rules do with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Role {
    #[default]
    Plain,
    Negator,
    Contrast,
    Intensifier,
    ScopeEnd,
}

#[derive(Debug, Clone, Copy, Default)]
struct WordInfo {
    role: Role,
    vader: f32,
    inset_pos: f32,
    inset_neg: f32,
    emoji: f32,
}

#[inline]
fn squash(x: f32) -> f32 {
    x / (x * x + 4.0).sqrt()
}

impl Featurizer {
    /// Builds a featurizer for `config` with the given lexicons.
    pub fn new(config: FeatureConfig, lexicons: Lexicons) -> Self {
        let mask = (config.buckets() as u64) - 1;
        let mut words: FastMap<String, WordInfo> = FastMap::default();
        for (k, v) in &lexicons.vader {
            words.entry(k.clone()).or_default().vader = *v;
        }
        for (k, v) in &lexicons.inset_pos {
            words.entry(k.clone()).or_default().inset_pos = *v;
        }
        for (k, v) in &lexicons.inset_neg {
            words.entry(k.clone()).or_default().inset_neg = *v;
        }
        for (k, v) in &lexicons.emoji {
            words.entry(k.clone()).or_default().emoji = *v;
        }
        // Later roles win where lists overlap; the order matches the rules' precedence.
        for (list, role) in [
            (INTENSIFIERS, Role::Intensifier),
            (SCOPE_END, Role::ScopeEnd),
            (CONTRAST, Role::Contrast),
            (NEGATORS, Role::Negator),
        ] {
            for w in list {
                words.entry(w.to_string()).or_default().role = role;
            }
        }
        let segment = SegmentVocab::new(lexicons.segment.clone());
        Featurizer {
            config,
            mask,
            lexicons,
            words,
            segment,
        }
    }

    /// Normalises `text` into `out` as this model reads it: [`normalize_into_with`] and the
    /// model's training words for splitting lower-case hashtags.
    pub fn normalize_into(&self, text: &str, out: &mut String) {
        normalize_into_with(text, out, Some(&self.segment));
    }

    /// The feature configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// The lexicons.
    pub fn lexicons(&self) -> &Lexicons {
        &self.lexicons
    }

    #[inline]
    fn bucket(&self, h: u64) -> u32 {
        (mix(h) & self.mask) as u32
    }

    /// Appends the features of `normalized` (in `lang`) to `out` (cleared first).
    pub fn features(&self, normalized: &str, lang: Lang, out: &mut Vec<(u32, f32)>) {
        out.clear();
        let mut prev: Option<&str> = None;
        let mut prev2: Option<&str> = None;
        let mut neg_left = 0u8;
        let mut negations = 0u32;
        let mut contrast_seen = false;
        let mut prev_intens = false;
        // [before contrast, after contrast] × [vader+, vader-, inset+, inset-, emoji+, emoji-]
        let mut lex = [[0f32; 6]; 2];
        let seed_w = fnv1a(FNV_OFFSET, b"w:");
        let seed_n = fnv1a(FNV_OFFSET, b"n:");
        let seed_b = fnv1a(FNV_OFFSET, b"b:");
        let seed_t = fnv1a(FNV_OFFSET, b"t:");
        let seed_c = fnv1a(FNV_OFFSET, b"c:");
        let seed_cn = fnv1a(FNV_OFFSET, b"cn:");
        let cw = self.config.char_weight;
        let mut bounds: Vec<usize> = Vec::with_capacity(34);
        let mut bytes: Vec<u8> = Vec::with_capacity(32);
        for tok in normalized.split(' ').filter(|t| !t.is_empty()) {
            let negated = neg_left > 0;
            // Unigram (negation-marked) and bigram.
            let seed = if negated { seed_n } else { seed_w };
            out.push((self.bucket(fnv1a(seed, tok.as_bytes())), 1.0));
            if self.config.word_bigrams {
                if let Some(p) = prev {
                    let h = fnv1a(fnv1a(fnv1a(seed_b, p.as_bytes()), b" "), tok.as_bytes());
                    out.push((self.bucket(h), 1.0));
                }
            }
            if self.config.word_trigrams {
                if let (Some(p2), Some(p)) = (prev2, prev) {
                    let h = fnv1a(fnv1a(seed_t, p2.as_bytes()), b" ");
                    let h = fnv1a(fnv1a(fnv1a(h, p.as_bytes()), b" "), tok.as_bytes());
                    out.push((self.bucket(h), 1.0));
                }
            }
            prev2 = prev;
            prev = Some(tok);
            // Character n-grams of real words.
            if !tok.starts_with('<') && tok.chars().next().is_some_and(char::is_alphanumeric) {
                let seed = if negated && self.config.negate_chars {
                    seed_cn
                } else {
                    seed_c
                };
                // Hash the UTF-8 bytes of each char n-gram of `<tok>`. FNV-1a is sequential, so
                // hashing char by char equals hashing the n-gram's bytes.
                bytes.clear();
                bytes.push(b'<');
                bytes.extend_from_slice(tok.as_bytes());
                bytes.push(b'>');
                bounds.clear();
                bounds.push(0);
                if tok.is_ascii() {
                    bounds.extend(1..=bytes.len());
                } else {
                    bounds.extend(tok.char_indices().map(|(i, _)| i + 1));
                    bounds.push(bytes.len() - 1);
                    bounds.push(bytes.len());
                }
                let nchars = bounds.len() - 1;
                for start in 0..nchars {
                    let mut h = seed;
                    let end = (start + self.config.char_max).min(nchars);
                    for k in start..end {
                        h = fnv1a(h, &bytes[bounds[k]..bounds[k + 1]]);
                        if k + 1 - start >= self.config.char_min {
                            out.push((self.bucket(h), cw));
                        }
                    }
                }
            }
            // Rules and lexicons: one table lookup per token.
            let Some(info) = self.words.get(tok) else {
                prev_intens = false;
                neg_left = neg_left.saturating_sub(1);
                continue;
            };
            match info.role {
                Role::Negator => {
                    neg_left = 3;
                    negations += 1;
                    prev_intens = false;
                    continue;
                }
                Role::Contrast => {
                    contrast_seen = true;
                    neg_left = 0;
                    prev_intens = false;
                    continue;
                }
                Role::ScopeEnd => {
                    neg_left = 0;
                    prev_intens = false;
                    continue;
                }
                Role::Intensifier | Role::Plain => {}
            }
            let is_intens = info.role == Role::Intensifier;
            let boost = if prev_intens { 1.3 } else { 1.0 };
            let flip = if negated { -0.74 } else { 1.0 };
            let part = &mut lex[usize::from(contrast_seen)];
            let mut add = |pos_slot: usize, v: f32| {
                let v = v * boost * flip;
                if v > 0.0 {
                    part[pos_slot] += v;
                } else {
                    part[pos_slot + 1] -= v;
                }
            };
            for (slot, v) in [
                (0, info.vader),
                (2, info.inset_pos * 0.8),
                (2, info.inset_neg * 0.8),
                (4, info.emoji),
            ] {
                if v != 0.0 {
                    add(slot, v);
                }
            }
            prev_intens = is_intens;
            neg_left = neg_left.saturating_sub(1);
        }
        if self.config.lang_conjoin {
            // Separate weights per language at no extra cost: re-hash every sparse bucket with
            // a language salt (shared strings such as emoji or names get per-language weights).
            let salt = mix(fnv1a(FNV_OFFSET, lang.as_str().as_bytes()));
            for f in out.iter_mut() {
                f.0 = (mix(u64::from(f.0) ^ salt) & self.mask) as u32;
            }
        }
        let norm2: f32 = out.iter().map(|f| f.1 * f.1).sum();
        if norm2 > 0.0 {
            let scale = 1.0 / norm2.sqrt();
            for f in out.iter_mut() {
                f.1 *= scale;
            }
        }
        let (w_before, w_after) = if contrast_seen {
            (0.5, 1.5)
        } else {
            (1.0, 0.0)
        };
        let mut dense = [0f32; 8];
        for (k, d) in dense.iter_mut().take(6).enumerate() {
            *d = squash(lex[0][k] * w_before + lex[1][k] * w_after);
        }
        dense[6] = (negations.min(3) as f32) / 3.0;
        dense[7] = f32::from(u8::from(contrast_seen));
        let lang_tag = lang.as_str().as_bytes();
        let seed_d = fnv1a(FNV_OFFSET, b"d:");
        for (name, &v) in DENSE.iter().zip(dense.iter()) {
            if v == 0.0 {
                continue;
            }
            let h = fnv1a(seed_d, name.as_bytes());
            out.push((self.bucket(h), v));
            out.push((self.bucket(fnv1a(fnv1a(h, b"@"), lang_tag)), v));
        }
        out.push((
            self.bucket(fnv1a(fnv1a(FNV_OFFSET, b"lang:"), lang_tag)),
            1.0,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn featurizer() -> Featurizer {
        let mut lex = Lexicons::default();
        lex.vader.insert("good".into(), 1.9);
        lex.vader.insert("bad".into(), -2.5);
        Featurizer::new(
            FeatureConfig {
                buckets_log2: 16,
                ..FeatureConfig::default()
            },
            lex,
        )
    }

    fn dense_value(f: &Featurizer, text: &str, name: &str) -> f32 {
        let mut out = Vec::new();
        f.features(text, Lang::En, &mut out);
        let b = f.bucket(fnv1a(fnv1a(FNV_OFFSET, b"d:"), name.as_bytes()));
        out.iter().filter(|(i, _)| *i == b).map(|(_, v)| *v).sum()
    }

    #[test]
    fn negation_flips_lexicon_polarity() {
        let f = featurizer();
        assert!(dense_value(&f, "this is good", "vader+") > 0.0);
        assert_eq!(dense_value(&f, "this is not good", "vader+"), 0.0);
        assert!(dense_value(&f, "this is not good", "vader-") > 0.0);
        // The scope ends at punctuation.
        assert!(dense_value(&f, "not sure , good", "vader+") > 0.0);
    }

    #[test]
    fn contrast_weights_the_second_clause() {
        let f = featurizer();
        let v_pos = dense_value(&f, "good but bad", "vader+");
        let v_neg = dense_value(&f, "good but bad", "vader-");
        assert!(v_neg > v_pos, "{v_neg} vs {v_pos}");
        assert_eq!(dense_value(&f, "good but bad", "contrast"), 1.0);
    }

    #[test]
    fn features_are_deterministic_and_in_range() {
        let f = featurizer();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        f.features("sangat bagus 👍", Lang::Id, &mut a);
        f.features("sangat bagus 👍", Lang::Id, &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|(i, _)| (*i as usize) < f.config.buckets()));
    }
}
