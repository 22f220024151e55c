//! Language identification: English, Indonesian or other.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::hash::FastMap;

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

/// Frequent English function and chat words: the prior that decides clear cases without
/// running the trigram detector.
const EN_WORDS: &[&str] = &[
    "the", "and", "is", "are", "was", "were", "this", "that", "with", "for", "you", "not", "my",
    "it", "of", "to", "in", "on", "have", "has", "just", "so", "but", "what", "be", "they", "me",
    "your", "i", "an", "at", "will", "can", "do", "does", "did", "all", "if", "about", "from", "we",
    "he", "she", "his", "her", "our", "their", "been", "would", "should", "could", "there", "when",
    "who", "how", "why", "out", "up", "get", "got", "like", "know", "today", "tomorrow", "more",
    "or", "by", "day", "time", "new", "see", "going", "want", "good", "love", "its", "im", "dont",
    "am", "as", "than", "then", "them", "him", "had", "because", "really", "only", "still", "now",
    "night", "tonight", "after", "first", "may", "people", "think", "great", "best", "thanks",
    "being", "some", "any", "too", "very", "which", "into", "over", "back", "us", "u", "lol",
    "going", "gonna", "happy", "watch", "game", "year", "last", "next", "never", "ever", "these",
    "those", "here", "where", "something", "nothing", "everything", "bad", "hate", "make", "made",
];

/// Frequent Indonesian function and chat words (standard and colloquial).
const ID_WORDS: &[&str] = &[
    "yang", "dan", "di", "ini", "itu", "tidak", "gak", "ga", "nggak", "enggak", "aku", "saya",
    "kamu", "ke", "dari", "banget", "sudah", "udah", "sama", "tapi", "untuk", "buat", "ada", "mau",
    "juga", "lagi", "kok", "deh", "sih", "dong", "nya", "bgt", "yg", "tdk", "kalau", "kalo", "bisa",
    "karena", "dengan", "akan", "pada", "atau", "jadi", "sangat", "lebih", "kita", "kami",
    "mereka", "dia", "apa", "belum", "masih", "harus", "bukan", "semua", "hari", "orang", "baru",
    "banyak", "sekali", "enak", "bagus", "tempat", "makanan", "pelayanan", "saja", "aja", "terus",
    "hanya", "seperti", "kayak", "gue", "gw", "lo", "nih", "tuh", "yah", "kenapa", "gimana",
    "bagaimana", "sampai", "setelah", "tersebut", "dalam", "oleh", "para", "telah", "namun",
    "tetapi", "adalah", "bahwa", "mas", "mbak", "pak", "semoga", "selamat", "terima", "kasih",
    "makasih", "jangan", "sini", "mana", "dgn", "krn", "udh", "sdh", "jg", "tp", "utk", "lg", "klo",
    "emang", "memang", "cuma", "pernah", "tahu", "tau", "kalian", "biar", "nanti", "gitu",
    "begitu", "mah", "loh", "lah", "kan", "pun", "setiap", "makan", "murah", "mahal", "kecewa",
];

fn word_set(words: &'static [&'static str]) -> FastMap<&'static str, ()> {
    words.iter().map(|w| (*w, ())).collect()
}

static EN_SET: LazyLock<FastMap<&'static str, ()>> = LazyLock::new(|| word_set(EN_WORDS));
static ID_SET: LazyLock<FastMap<&'static str, ()>> = LazyLock::new(|| word_set(ID_WORDS));

static DETECTOR: LazyLock<whatlang::Detector> = LazyLock::new(whatlang::Detector::new);

/// Evidence gathered in one pass over the text.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    latin: u32,
    non_latin: u32,
    words: u32,
    en: u32,
    id: u32,
}

fn count(text: &str) -> Counts {
    let mut c = Counts::default();
    let mut buf = [0u8; 24];
    for raw in text.split(|ch: char| ch.is_whitespace() || (ch.is_ascii_punctuation() && ch != '\'')) {
        if raw.is_empty() {
            continue;
        }
        let mut ascii_len = 0usize;
        let mut ascii_only = true;
        let mut letters = 0u32;
        for ch in raw.chars() {
            if ch.is_alphabetic() {
                letters += 1;
                if ch.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&ch) {
                    c.latin += 1;
                } else {
                    c.non_latin += 1;
                }
            }
            if ch.is_ascii() && ascii_len < buf.len() {
                if ch != '\'' {
                    buf[ascii_len] = ch.to_ascii_lowercase() as u8;
                    ascii_len += 1;
                }
            } else {
                ascii_only = false;
            }
        }
        if letters == 0 {
            continue;
        }
        c.words += 1;
        if ascii_only {
            let w = std::str::from_utf8(&buf[..ascii_len]).expect("ASCII bytes");
            c.en += u32::from(EN_SET.contains_key(w));
            c.id += u32::from(ID_SET.contains_key(w));
        }
    }
    c
}

/// Detects whether `text` is English, Indonesian or something else, with a confidence in [0, 1].
///
/// A function-word prior decides clear cases in one cheap pass; everything else goes to the
/// `whatlang` trigram detector over all its languages, so Spanish, Tagalog or Javanese text is
/// `Other` rather than a confident guess. Non-Latin scripts are `Other` at once. URLs and
/// @mentions are ignored. `Other` always comes with the detector's confidence that the text is
/// *not* English or Indonesian, never a sentiment.
pub fn detect(text: &str) -> (Lang, f32) {
    let cleaned = strip_handles(text);
    let c = count(&cleaned);
    let letters = c.latin + c.non_latin;
    if letters == 0 {
        return (Lang::Other, 0.0);
    }
    if c.non_latin * 2 > letters {
        return (Lang::Other, c.non_latin as f32 / letters as f32);
    }
    let words = c.words.max(1) as f32;
    let (major, minor, lang) = if c.id > c.en { (c.id, c.en, Lang::Id) } else { (c.en, c.id, Lang::En) };
    // Clear function-word evidence: two or more hits, a quarter of the words, little of the other.
    if major >= 2 && major as f32 >= 0.25 * words && minor * 3 <= major {
        let conf = 0.8 + 0.2 * ((major - minor) as f32 / major as f32);
        return (lang, conf.min(1.0));
    }
    match DETECTOR.detect(&cleaned) {
        Some(info) => {
            let wl = match info.lang() {
                whatlang::Lang::Eng => Lang::En,
                // whatlang has no Malay; Indonesian-like Malay text lands here too, which suits
                // the model (shared vocabulary).
                whatlang::Lang::Ind => Lang::Id,
                _ => Lang::Other,
            };
            let conf = info.confidence() as f32;
            match wl {
                Lang::Other if major >= 1 && major > minor && major as f32 >= 0.2 * words => {
                    // Short chatty posts: whatlang guesses from few trigrams; the function words
                    // are the stronger signal.
                    (lang, 0.5 * (1.0 - conf) + 0.3)
                }
                Lang::Other => (Lang::Other, conf),
                l if major > 0 && l != lang && major > minor + 1 => (lang, 0.5),
                l => (l, conf.max(0.3)),
            }
        }
        None if major > minor => (lang, 0.3),
        None => (Lang::Other, 0.0),
    }
}

/// Removes URLs, @mentions and `#` signs, which carry no language evidence.
fn strip_handles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for w in text.split_whitespace() {
        if w.starts_with('@') || w.starts_with("http") || w.starts_with("www.") {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w.trim_start_matches('#'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_english_and_indonesian() {
        assert_eq!(detect("this is not what I paid for").0, Lang::En);
        assert_eq!(detect("aku kecewa banget sama pelayanan yang ini").0, Lang::Id);
        assert_eq!(detect("🙂🙂").0, Lang::Other);
        assert_eq!(detect("@budi https://t.co/x").0, Lang::Other);
    }

    #[test]
    fn other_languages_are_not_guessed() {
        let others = [
            "El servicio fue muy malo y la comida llegó fría, no vuelvo nunca más a este lugar",
            "Je suis très déçu par le service client, personne ne répond à mes messages depuis hier",
            "Ich bin sehr enttäuscht von diesem Produkt, es ist nach zwei Tagen kaputt gegangen",
            "Eu adorei o atendimento da loja, os funcionários foram muito simpáticos comigo hoje",
            "Это было ужасно, никогда больше не закажу здесь",
            "このアプリは本当に使いやすいです",
        ];
        for t in others {
            let (lang, conf) = detect(t);
            assert_eq!(lang, Lang::Other, "{t}");
            assert!((0.0..=1.0).contains(&conf));
        }
    }
}
