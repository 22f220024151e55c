//! Language identification: English, Indonesian or other.

use serde::{Deserialize, Serialize};

/// The languages gema scores. Anything else is `Other` and is never given a sentiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Id,
    Other,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Id => "id",
            Lang::Other => "other",
        }
    }

    /// Maps an ISO 639-1 hint (`en`, `id`, `in`, `ms`...) to a [`Lang`].
    pub fn from_hint(hint: &str) -> Lang {
        match hint.trim().to_ascii_lowercase().as_str() {
            "en" | "eng" => Lang::En,
            "id" | "in" | "ind" => Lang::Id,
            _ => Lang::Other,
        }
    }
}

const EN_WORDS: &[&str] = &[
    "the", "and", "is", "are", "was", "this", "that", "with", "for", "you", "not", "my", "it",
    "of", "to", "in", "on", "have", "just", "so", "but", "what", "be", "they", "me", "your", "i",
    "a",
];
const ID_WORDS: &[&str] = &[
    "yang", "dan", "di", "ini", "itu", "tidak", "gak", "ga", "nggak", "aku", "saya", "kamu", "ke",
    "dari", "banget", "sudah", "udah", "sama", "tapi", "untuk", "buat", "ada", "mau", "juga",
    "lagi", "kok", "deh", "sih", "dong", "nya", "bgt", "yg", "tdk", "kalau", "kalo", "bisa",
    "karena",
];

/// Detects the language of `text` by counting function words; `Other` when neither language has
/// enough evidence. Returns the language and a confidence in [0, 1].
pub fn detect(text: &str) -> (Lang, f32) {
    let (mut en, mut id, mut total) = (0u32, 0u32, 0u32);
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        total += 1;
        let w = word.to_lowercase();
        if EN_WORDS.contains(&w.as_str()) {
            en += 1;
        }
        if ID_WORDS.contains(&w.as_str()) {
            id += 1;
        }
    }
    if en + id == 0 || total == 0 {
        return (Lang::Other, 0.0);
    }
    let (lang, hits, other) = if id > en {
        (Lang::Id, id, en)
    } else {
        (Lang::En, en, id)
    };
    let confidence =
        (hits - other) as f32 / (hits + other) as f32 * (hits as f32 / total as f32 * 3.0).min(1.0);
    (lang, confidence.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_english_and_indonesian() {
        assert_eq!(detect("this is not what I paid for").0, Lang::En);
        assert_eq!(
            detect("aku kecewa banget sama pelayanan yang ini").0,
            Lang::Id
        );
        assert_eq!(detect("🙂🙂").0, Lang::Other);
    }
}
