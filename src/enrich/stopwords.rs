//! English and Indonesian stop words, so that keywords and trends are about content.

use std::collections::HashSet;
use std::sync::LazyLock;

const EN: &str = "a about above after again against all also am an and any are aren't as at be because been \
before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't \
down during each few for from further get got had hadn't has hasn't have haven't having he her here hers herself \
him himself his how i i'm i've if in into is isn't it it's its itself just let's me more most my myself no nor not \
now of off on once only or other our ours ourselves out over own same she should so some such than that that's the \
their theirs them themselves then there these they this those through to too under until up very was wasn't we \
were what when where which while who whom why will with won't would you you're your yours yourself yourselves \
really still even much many one two via amp rt lol im dont cant wont ive youre thats gonna wanna \
today tonight tomorrow yesterday morning everyone everybody everything something anything thing things";

const ID: &str = "ada adalah agar akan aku anda apa apakah atau bagi bahwa banget bgt belum bisa buat bukan dalam \
dan dari dengan dgn di dia dong deh ga gak gue gua gw hanya harus ini itu jadi jangan juga kalau kalo kami kamu \
karena krn ke kita kok lagi lah mau masih mereka nya nggak enggak ngga oleh pada para saja saya sama sampai \
sangat sdh sekali setelah sih sudah supaya tapi tak telah tdk tentang tidak toh udah untuk utk yang yg ya aja \
kan pun si sy tuh mah nih loh lho kah pula hari \
besok kemarin sekarang tadi nanti pagi siang sore malam";

static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| EN.split_whitespace().chain(ID.split_whitespace()).collect());

/// True for a lower-case English or Indonesian function word.
pub fn is_stop_word(word: &str) -> bool {
    STOP.contains(word)
}

/// `word` as written in a post, without the punctuation that ends its clause (`lambat,` → `lambat`).
pub fn without_trailing_punctuation(word: &str) -> &str {
    word.trim_end_matches([',', '.', '!', '?', ';', ':'])
}

/// Whether `word` (as written in a post) can name a reason: not empty after trailing
/// punctuation, and not a function word unless it negates (`not`, `gak`, `don't`, `tdk`...,
/// after normalisation).
pub fn names_a_reason(word: &str) -> bool {
    let w = without_trailing_punctuation(word);
    !w.is_empty()
        && (!is_stop_word(&w.to_lowercase())
            || crate::text::normalize::normalize(w)
                .split(' ')
                .any(|t| crate::sentiment::features::NEGATORS.contains(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_words_and_negations_name_reasons() {
        for w in [
            "hilang",
            "Terrible",
            "error,",
            "gak",
            "don't",
            "tdk",
            "#NusaPayDown",
            "😭",
        ] {
            assert!(names_a_reason(w), "{w}");
        }
        for w in ["ini?", "With", "the", "yang", "...", ""] {
            assert!(!names_a_reason(w), "{w}");
        }
    }
}
