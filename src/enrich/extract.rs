//! Entity extraction and text normalisation with regexes: URLs, @handles, #hashtags, emoji.

use std::sync::LazyLock;

use regex::Regex;

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"']+"#).unwrap());
static HANDLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\w@])@([A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)").unwrap()
});
static HASHTAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\w#&])#(\w*[\p{L}_]\w*)").unwrap());
static EMOJI: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{Extended_Pictographic}").unwrap());
/// Three or more of the same letter (`sooo`, `bangettt`) squeeze to two.
static ELONGATION: LazyLock<Regex> = LazyLock::new(|| {
    // The regex crate has no backreferences; list the letters.
    let alts: Vec<String> = ('a'..='z').map(|c| format!("{c}{{3,}}")).collect();
    Regex::new(&alts.join("|")).unwrap()
});
static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{L}\p{N}][\p{L}\p{N}'_-]*").unwrap());

/// What was pulled out of one text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Extracted {
    pub urls: Vec<String>,
    pub handles: Vec<String>,
    pub hashtags: Vec<String>,
    pub emojis: Vec<String>,
    /// Lower case, URLs → ` URL `, handles → ` @USER `, `#` dropped, elongations squeezed.
    pub normalized: String,
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Extracts entities from `text` and returns them with the normalised text.
pub fn extract(text: &str) -> Extracted {
    let mut out = Extracted::default();
    for m in URL.find_iter(text) {
        let url = m
            .as_str()
            .trim_end_matches(['.', ',', ')', '!', '?', ';', ':']);
        push_unique(&mut out.urls, url.to_string());
    }
    let no_urls = URL.replace_all(text, " URL ");
    for c in HANDLE.captures_iter(&no_urls) {
        push_unique(&mut out.handles, c[1].to_lowercase());
    }
    for c in HASHTAG.captures_iter(&no_urls) {
        push_unique(&mut out.hashtags, c[1].to_lowercase());
    }
    for m in EMOJI.find_iter(text) {
        push_unique(&mut out.emojis, m.as_str().to_string());
    }
    let no_handles = HANDLE.replace_all(&no_urls, " @USER ");
    let lower = no_handles.replace('#', " ").to_lowercase();
    let squeezed = ELONGATION.replace_all(&lower, |c: &regex::Captures| c[0][..2].to_string());
    out.normalized = squeezed.split_whitespace().collect::<Vec<_>>().join(" ");
    out
}

/// Content words of a normalised text: words of 3+ characters that are not stop words,
/// placeholders or numbers, in order of first appearance.
pub fn keywords(normalized: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for m in WORD.find_iter(normalized) {
        let w = m
            .as_str()
            .trim_matches(|c| c == '\'' || c == '-' || c == '_');
        if w.chars().count() < 3
            || w.chars().all(|c| c.is_numeric())
            || w == "url"
            || w == "user"
            || super::stopwords::is_stop_word(w)
        {
            continue;
        }
        push_unique(&mut out, w.to_string());
        if out.len() == max {
            break;
        }
    }
    out
}

/// `keywords` with each run of words that spells one of `phrases` (a tracked brand name such
/// as `arunika air`) joined into one keyword, so a brand is one term, not its words.
pub fn merge_phrases(keywords: Vec<String>, phrases: &[Vec<String>]) -> Vec<String> {
    if phrases.is_empty() {
        return keywords;
    }
    let mut out = Vec::with_capacity(keywords.len());
    let mut i = 0;
    while i < keywords.len() {
        let hit = phrases.iter().find(|p| {
            keywords.len() - i >= p.len() && p.iter().zip(&keywords[i..]).all(|(w, k)| w == k)
        });
        match hit {
            Some(p) => {
                push_unique(&mut out, p.join(" "));
                i += p.len();
            }
            None => {
                push_unique(&mut out, keywords[i].clone());
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_entities_and_normalises() {
        let e = extract(
            "Sooo slow!!! @NusaPay_ID transfer gagal lagi #NusaPayError #GakPuas 😡 https://x.co/a?b=1. cc me@mail.com",
        );
        assert_eq!(e.urls, vec!["https://x.co/a?b=1"]);
        assert_eq!(e.handles, vec!["nusapay_id"]);
        assert_eq!(e.hashtags, vec!["nusapayerror", "gakpuas"]);
        assert_eq!(e.emojis, vec!["😡"]);
        assert!(
            e.normalized
                .starts_with("soo slow!!! @user transfer gagal lagi nusapayerror"),
            "{}",
            e.normalized
        );
        assert!(!e.normalized.contains("http"));
    }

    #[test]
    fn hashtags_need_a_letter_and_skip_html_entities() {
        let e = extract("order #123 and &#39; then #2024Rocks");
        assert_eq!(e.hashtags, vec!["2024rocks"]);
    }

    #[test]
    fn tracked_phrases_stay_one_keyword() {
        let kw: Vec<String> = ["terbang", "arunika", "air", "delay", "air"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let phrases = vec![vec!["arunika".to_string(), "air".to_string()]];
        assert_eq!(
            merge_phrases(kw.clone(), &phrases),
            vec!["terbang", "arunika air", "delay", "air"]
        );
        assert_eq!(merge_phrases(kw.clone(), &[]), kw);
    }

    #[test]
    fn keywords_drop_stop_words_in_both_languages() {
        let k = keywords(
            "the coffee at kopikita is really good but yang ini tidak enak url 2026",
            10,
        );
        assert_eq!(k, vec!["coffee", "kopikita", "good", "enak"]);
    }
}
