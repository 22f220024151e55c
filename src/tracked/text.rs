//! Text folding and word splitting shared by the query parser and the matcher, so that a query
//! word and a mention word are compared in exactly the same form.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Folds `s` for matching: NFKD, combining marks dropped, lower case. `KÉCEWA` → `kecewa`,
/// full-width `ｎｕｓａ` → `nusa`. ASCII input takes a fast path without normalisation.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        out.extend(c.to_lowercase());
    }
    out
}

/// True for a character that belongs to a word: letters, digits and `_` (so `@nusapay_id` and
/// `#nusapay_down` stay one word).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The words of an already folded text, in order; everything else separates words.
pub fn words(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_diacritics_and_compatibility_forms() {
        assert_eq!(fold("KÉCEWA"), "kecewa");
        assert_eq!(fold("Çà Ñ"), "ca n");
        assert_eq!(fold("ｎｕｓａ"), "nusa");
        assert_eq!(fold("ASCII Only"), "ascii only");
    }

    #[test]
    fn splits_on_non_word_characters() {
        let w: Vec<&str> = words("top-up gagal!! @nusapay_id #down, 10:30").collect();
        assert_eq!(
            w,
            vec!["top", "up", "gagal", "nusapay_id", "down", "10", "30"]
        );
    }
}
