//! The fast model's language head: English against Indonesian, learnt by `gema train` from the
//! training files' `lang` tags (their held-out slice excluded), stored inside the model file.
//!
//! lid.176 ([`crate::text::lang`]) knows 176 languages but was trained on other text than social
//! posts and reviews: on the held-out slice of the training files it calls one Indonesian tweet
//! in ten English or something else. This head sees the same kind of text the sentiment model
//! does, so `lang::detect_with` lets it make the English/Indonesian call once lid.176 has said
//! the text is one of the two.
//!
//! A logistic regression over the mean of hashed character 1–4-grams of each word (fastText's
//! sub-word view, without embeddings).

use crate::text::hash::{fnv1a, mix, FNV_OFFSET};
use crate::text::lang::{self, Lang};

/// The language head's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LangHead {
    buckets_log2: u32,
    weights: Vec<f32>,
    bias: f32,
}

/// Hash buckets (2^18: 256k weights, 512 KiB as f16 in the model file).
pub const BUCKETS_LOG2: u32 = 18;
const EPOCHS: usize = 5;
const LR: f32 = 0.5;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl LangHead {
    /// A head from stored parameters; `weights.len()` must be `2^buckets_log2`.
    pub fn new(buckets_log2: u32, weights: Vec<f32>, bias: f32) -> Option<LangHead> {
        ((10..=24).contains(&buckets_log2) && weights.len() == 1 << buckets_log2).then_some(
            LangHead {
                buckets_log2,
                weights,
                bias,
            },
        )
    }

    pub fn buckets_log2(&self) -> u32 {
        self.buckets_log2
    }
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// The buckets of `prepared` text (as `lang::prepare` leaves it): each word's character
    /// 1–4-grams of `<word>`, and the word itself.
    fn buckets(buckets_log2: u32, prepared: &str, out: &mut Vec<u32>) {
        out.clear();
        let mask = (1u64 << buckets_log2) - 1;
        let mut chars: Vec<char> = Vec::with_capacity(32);
        for word in prepared.split_whitespace() {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            if word.is_empty() || !word.chars().any(char::is_alphabetic) {
                continue;
            }
            out.push((mix(fnv1a(fnv1a(FNV_OFFSET, b"w"), word.as_bytes())) & mask) as u32);
            chars.clear();
            chars.push('<');
            chars.extend(word.chars());
            chars.push('>');
            let mut buf = [0u8; 16];
            for i in 0..chars.len() {
                let mut h = fnv1a(FNV_OFFSET, b"c");
                for n in 0..4.min(chars.len() - i) {
                    h = fnv1a(h, chars[i + n].encode_utf8(&mut buf).as_bytes());
                    out.push((mix(h) & mask) as u32);
                }
            }
        }
    }

    fn score(&self, buckets: &[u32]) -> f32 {
        if buckets.is_empty() {
            return self.bias;
        }
        let sum: f32 = buckets.iter().map(|&b| self.weights[b as usize]).sum();
        self.bias + sum / buckets.len() as f32
    }

    /// The probability that `prepared` text is Indonesian rather than English.
    pub fn p_id(&self, prepared: &str) -> f32 {
        let mut buckets = Vec::with_capacity(4 * prepared.len() + 8);
        Self::buckets(self.buckets_log2, prepared, &mut buckets);
        sigmoid(self.score(&buckets))
    }

    /// Learns the head from `(text, lang)` rows (only English and Indonesian ones count), with
    /// the two languages weighted equally. Deterministic for a given `seed` and row order.
    pub fn train(rows: &[(&str, Lang)], seed: u64) -> LangHead {
        let mut data: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut prepared = String::new();
        for &(text, l) in rows {
            let y = match l {
                Lang::En => 0.0,
                Lang::Id => 1.0,
                _ => continue,
            };
            lang::prepare_without_tags(text, &mut prepared);
            let mut b = Vec::new();
            Self::buckets(BUCKETS_LOG2, &prepared, &mut b);
            if !b.is_empty() {
                data.push((b, y));
            }
        }
        let n_id = data.iter().filter(|(_, y)| *y == 1.0).count().max(1) as f32;
        let n_en = (data.len() as f32 - n_id).max(1.0);
        let total = data.len().max(1) as f32;
        let class_weight = [total / (2.0 * n_en), total / (2.0 * n_id)];
        let mut head = LangHead {
            buckets_log2: BUCKETS_LOG2,
            weights: vec![0.0; 1 << BUCKETS_LOG2],
            bias: 0.0,
        };
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let steps = (EPOCHS * data.len()).max(1) as f32;
        let mut step = 0usize;
        for _ in 0..EPOCHS {
            // Fisher–Yates with a splitmix64 stream: the same order on every machine.
            for i in (1..order.len()).rev() {
                state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            for &k in &order {
                let (b, y) = &data[k];
                let lr = LR * (1.0 - step as f32 / steps);
                step += 1;
                let g = (sigmoid(head.score(b)) - y) * class_weight[*y as usize] * lr;
                head.bias -= g;
                let gw = g / b.len() as f32;
                for &i in b {
                    head.weights[i as usize] -= gw;
                }
            }
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_english_from_indonesian_and_is_deterministic() {
        let mut rows = Vec::new();
        let en = [
            "the service was great",
            "my order is late again",
            "love this app",
        ];
        let id = [
            "pelayanannya bagus sekali",
            "pesanan saya telat lagi",
            "suka banget aplikasinya",
        ];
        for _ in 0..20 {
            rows.extend(en.iter().map(|t| (*t, Lang::En)));
            rows.extend(id.iter().map(|t| (*t, Lang::Id)));
        }
        rows.push(("ignored", Lang::Other));
        let head = LangHead::train(&rows, 7);
        assert_eq!(head, LangHead::train(&rows, 7));
        assert!(head.p_id("pesanan bagus") > 0.5);
        assert!(head.p_id("the app is late") < 0.5);
        assert!((0.0..=1.0).contains(&head.p_id("")));
        assert!(LangHead::new(12, vec![0.0; 5], 0.0).is_none());
    }
}
