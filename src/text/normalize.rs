//! Normalisation of social text before language identification and classification.
//!
//! [`normalize`] turns a raw post into lowercase tokens separated by single spaces:
//!
//! - URLs become `<url>`, @mentions `<user>`, digit runs `<num>`, and [`BRAND_MARK`] (what the
//!   enrich stage puts where a tracked brand's name was) `<brand>`;
//! - hashtags are segmented on case and digit changes (`#GakPuas` → `tidak puas`,
//!   `#NotHappy` → `not happy`), and, with a model's word counts ([`normalize_into_with`]),
//!   lower-case ones by the most likely split into known words (`#nothappy` → `not happy`);
//! - elongations are collapsed (`sooo` → `so`, `bangettt` → `banget`, `goooood` → `good`) and a
//!   `<elong>` marker is added; laughter (`wkwkwk`, `hahaha`) is folded to one form;
//! - emoticons (`:)`, `:'(`, `<3`...) become the matching emoji; repeated emoji collapse to one;
//!   skin tones, variation selectors and joiners are dropped;
//! - words of three or more capital letters get a `<caps>` marker;
//! - runs of `!`/`?` become `!`, `!!`, `?`, `??` or `?!`; `..`+ becomes `…`;
//! - English contractions (`don't` → `do not`) and Indonesian slang and abbreviations
//!   (`gak`/`ga`/`nggak`/`enggak` → `tidak`, `bgt` → `banget`, `yg` → `yang`, `hati2` → `hati hati`)
//!   are expanded from the tables below.
//!
//! Everything is table-driven and allocation-light: [`normalize_into`] reuses the caller's buffer.

use std::sync::LazyLock;

use crate::text::hash::FastMap;

/// The character the enrich stage writes in place of a tracked query's words before scoring
/// (`QuerySet::mask`) and training writes in place of names: normalised to the token `<brand>`,
/// which gets no character n-grams, so no brand name sways the score. A private-use code point.
pub const BRAND_MARK: char = '\u{E000}';

/// Indonesian and English slang, abbreviations and spelling variants → standard form.
///
/// Keys are lowercase, after elongation collapsing. Values may hold several words.
pub const SLANG: &[(&str, &str)] = &[
    // Indonesian negation
    ("gak", "tidak"),
    ("ga", "tidak"),
    ("gk", "tidak"),
    ("nggak", "tidak"),
    ("ngga", "tidak"),
    ("nggk", "tidak"),
    ("ngak", "tidak"),
    ("enggak", "tidak"),
    ("engga", "tidak"),
    ("kagak", "tidak"),
    ("gag", "tidak"),
    ("tdk", "tidak"),
    ("tak", "tidak"),
    ("ndak", "tidak"),
    ("bkn", "bukan"),
    ("blm", "belum"),
    ("blum", "belum"),
    ("jgn", "jangan"),
    ("gausah", "tidak usah"),
    ("gamau", "tidak mau"),
    ("gabisa", "tidak bisa"),
    ("gaada", "tidak ada"),
    ("gpp", "tidak apa apa"),
    ("gapapa", "tidak apa apa"),
    // Indonesian abbreviations and colloquial forms
    ("bgt", "banget"),
    ("bngt", "banget"),
    ("bgd", "banget"),
    ("yg", "yang"),
    ("dgn", "dengan"),
    ("dg", "dengan"),
    ("krn", "karena"),
    ("karna", "karena"),
    ("krna", "karena"),
    ("udh", "sudah"),
    ("udah", "sudah"),
    ("sdh", "sudah"),
    ("dah", "sudah"),
    ("jg", "juga"),
    ("tp", "tapi"),
    ("tpi", "tapi"),
    ("dr", "dari"),
    ("utk", "untuk"),
    ("sm", "sama"),
    ("lg", "lagi"),
    ("bs", "bisa"),
    ("bsa", "bisa"),
    ("klo", "kalau"),
    ("kalo", "kalau"),
    ("kl", "kalau"),
    ("org", "orang"),
    ("trs", "terus"),
    ("jd", "jadi"),
    ("jdi", "jadi"),
    ("byk", "banyak"),
    ("bnyk", "banyak"),
    ("dlm", "dalam"),
    ("pd", "pada"),
    ("dpt", "dapat"),
    ("sy", "saya"),
    ("aq", "aku"),
    ("ak", "aku"),
    ("gw", "gue"),
    ("gua", "gue"),
    ("km", "kamu"),
    ("kmu", "kamu"),
    ("lu", "lo"),
    ("elo", "lo"),
    ("aja", "saja"),
    ("aj", "saja"),
    ("sja", "saja"),
    ("emg", "memang"),
    ("emang", "memang"),
    ("mmg", "memang"),
    ("bener", "benar"),
    ("bnr", "benar"),
    ("knp", "kenapa"),
    ("gmn", "bagaimana"),
    ("gimana", "bagaimana"),
    ("gmna", "bagaimana"),
    ("kyk", "kayak"),
    ("kyak", "kayak"),
    ("kek", "kayak"),
    ("skrg", "sekarang"),
    ("skg", "sekarang"),
    ("sbg", "sebagai"),
    ("spt", "seperti"),
    ("hrs", "harus"),
    ("msh", "masih"),
    ("masi", "masih"),
    ("ato", "atau"),
    ("atw", "atau"),
    ("ama", "sama"),
    ("mksh", "terima kasih"),
    ("makasih", "terima kasih"),
    ("makasi", "terima kasih"),
    ("trims", "terima kasih"),
    ("trmksh", "terima kasih"),
    ("tks", "terima kasih"),
    ("oke", "ok"),
    ("okey", "ok"),
    ("okay", "ok"),
    ("okeh", "ok"),
    ("mantab", "mantap"),
    ("mantep", "mantap"),
    ("bngst", "bangsat"),
    ("anjir", "anjing"),
    ("anjay", "anjing"),
    ("njir", "anjing"),
    ("anjrit", "anjing"),
    ("cape", "capek"),
    ("cpk", "capek"),
    ("sbr", "sabar"),
    ("tlg", "tolong"),
    ("mo", "mau"),
    ("pengen", "ingin"),
    ("pingin", "ingin"),
    ("pgn", "ingin"),
    ("gimana2", "bagaimana"),
    // English
    ("u", "you"),
    ("ur", "your"),
    ("pls", "please"),
    ("plz", "please"),
    ("plis", "please"),
    ("thx", "thanks"),
    ("thnx", "thanks"),
    ("ty", "thank you"),
    ("luv", "love"),
    ("gr8", "great"),
    ("b4", "before"),
    ("im", "i am"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("didnt", "did not"),
    ("isnt", "is not"),
    ("wasnt", "was not"),
    ("arent", "are not"),
    ("werent", "were not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("wont", "will not"),
    ("couldnt", "could not"),
    ("shouldnt", "should not"),
    ("wouldnt", "would not"),
    ("havent", "have not"),
    ("hasnt", "has not"),
    ("aint", "is not"),
    ("nothin", "nothing"),
    ("gonna", "going to"),
    ("wanna", "want to"),
    ("gotta", "got to"),
    ("kinda", "kind of"),
    ("sux", "sucks"),
    ("wtf", "what the fuck"),
    ("smh", "shaking my head"),
    ("tbh", "to be honest"),
    ("fav", "favourite"),
    ("fave", "favourite"),
    ("favorite", "favourite"),
];

/// Words that an elongation may collapse to with single letters (`sooo` → `so`); other elongated
/// words keep double letters (`goooood` → `good`).
const SHORT_FORMS: &[&str] = &[
    "so", "no", "yes", "ya", "hi", "oh", "wow", "please", "omg", "lol", "yay", "yeah", "hey",
    "why", "love", "hate", "nice", "cute", "fun", "sad", "mad", "bad", "hot", "cool", "ok", "yah",
    "sih", "dong", "deh", "kok", "nih", "tuh", "ah", "eh", "uh", "ugh", "huh", "duh", "yup",
    "nope", "banget", "sekali", "keren", "mantap", "bagus", "enak", "parah", "lama", "kecewa",
    "sedih", "senang", "kesal", "kesel", "capek", "lucu", "cantik", "gila", "anjir", "makasih",
    "kasih", "sayang", "rindu", "kangen", "mau", "juga", "lagi", "aja", "gak", "ga", "nggak",
    "enggak", "tidak", "iya", "ayo", "yuk", "asik", "asyik", "seru", "gemes", "hadeh", "aduh",
    "amin", "huhu", "hehe", "hihi", "bgt", "mantul", "top", "best", "great", "damn", "shit",
    "omfg", "yuck", "ew", "bye",
];

/// Emoticons → the emoji with the same meaning, longest first where prefixes overlap.
const EMOTICONS: &[(&str, &str)] = &[
    (":'-(", "😢"),
    (":'(", "😢"),
    (":-))", "😄"),
    (":))", "😄"),
    (":-)", "🙂"),
    (":)", "🙂"),
    ("=)", "🙂"),
    (":]", "🙂"),
    ("(:", "🙂"),
    (":-D", "😀"),
    (":D", "😀"),
    ("=D", "😀"),
    ("xD", "😆"),
    ("XD", "😆"),
    (":-((", "😞"),
    (":((", "😞"),
    (":-(", "🙁"),
    (":(", "🙁"),
    ("=(", "🙁"),
    (":[", "🙁"),
    ("):", "🙁"),
    (";-)", "😉"),
    (";)", "😉"),
    (":-P", "😛"),
    (":P", "😛"),
    (":p", "😛"),
    (":-p", "😛"),
    ("<3", "❤"),
    ("</3", "💔"),
    (":-/", "😕"),
    (":/", "😕"),
    (":-|", "😐"),
    (":|", "😐"),
    ("-_-", "😑"),
    ("^_^", "😊"),
    ("^^", "😊"),
    (":o", "😮"),
    (":O", "😮"),
    (":*", "😘"),
];

/// Normalises `text`; see the module docs. Allocates the returned string.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    normalize_into(text, &mut out);
    out
}

/// Normalises `text` into `out` (cleared first), reusing its allocation.
pub fn normalize_into(text: &str, out: &mut String) {
    normalize_into_with(text, out, None)
}

/// Word counts from a model's training text, for splitting lower-case hashtags into words
/// (`#nothappy` → `not happy`, `#gakpuas` → `tidak puas`).
#[derive(Debug, Clone, Default)]
pub struct SegmentVocab {
    counts: FastMap<String, u32>,
    ln_total: f32,
}

/// Hashtag parts shorter than this are never split; longer pieces are not looked up.
const SEGMENT_MIN: usize = 6;
const PIECE_MAX: usize = 20;

impl SegmentVocab {
    pub fn new(counts: FastMap<String, u32>) -> Self {
        let total: u64 = counts.values().map(|&c| c as u64).sum();
        SegmentVocab {
            counts,
            ln_total: (total.max(1) as f32).ln(),
        }
    }

    /// The most likely split of a lower-case ASCII `part` into two or more known words of two or
    /// more letters (a unigram model: the product of the words' frequencies), or `None` when
    /// `part` is itself a known word, short, or cannot be covered.
    pub fn split<'a>(&self, part: &'a str) -> Option<Vec<&'a str>> {
        let n = part.len();
        if n < SEGMENT_MIN
            || !part.bytes().all(|b| b.is_ascii_lowercase())
            || self.counts.contains_key(part)
        {
            return None;
        }
        // best[i]: (log probability, start of the last piece) of the best cover of part[..i].
        let mut best: Vec<Option<(f32, usize)>> = vec![None; n + 1];
        best[0] = Some((0.0, 0));
        for i in 2..=n {
            for j in i.saturating_sub(PIECE_MAX)..=i - 2 {
                let Some((lp, _)) = best[j] else { continue };
                let Some(&c) = self.counts.get(&part[j..i]) else {
                    continue;
                };
                let score = lp + (c as f32).ln() - self.ln_total;
                if best[i].is_none_or(|(b, _)| score > b) {
                    best[i] = Some((score, j));
                }
            }
        }
        best[n]?;
        let mut pieces = Vec::new();
        let mut i = n;
        while i > 0 {
            let (_, j) = best[i].expect("a covered prefix");
            pieces.push(&part[j..i]);
            i = j;
        }
        pieces.reverse();
        (pieces.len() >= 2).then_some(pieces)
    }
}

/// [`normalize_into`], splitting lower-case hashtags with `vocab` (a model's training words).
pub fn normalize_into_with(text: &str, out: &mut String, vocab: Option<&SegmentVocab>) {
    out.clear();
    let mut word = String::with_capacity(32);
    let mut last_emoji: Option<char> = None;
    let mut i = 0;
    let mut prev_space = true;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("i is on a char boundary");
        if c.is_whitespace() {
            i += c.len_utf8();
            prev_space = true;
            continue;
        }
        let boundary_before = prev_space;
        prev_space = false;
        if c == BRAND_MARK {
            push(out, "<brand>");
            last_emoji = None;
            i += c.len_utf8();
            continue;
        }
        if is_url_start(rest) {
            push(out, "<url>");
            last_emoji = None;
            i += rest.find(char::is_whitespace).unwrap_or(rest.len());
            continue;
        }
        if c == '@' && rest[1..].starts_with(is_word_char) {
            push(out, "<user>");
            last_emoji = None;
            i += 1 + word_len(&rest[1..], |ch| is_word_char(ch) || ch == '.');
            continue;
        }
        if c == '#' && rest[1..].starts_with(is_word_char) {
            let len = word_len(&rest[1..], is_word_char);
            for part in split_hashtag(&rest[1..1 + len]) {
                match vocab.and_then(|v| v.split(part)) {
                    Some(pieces) => {
                        for piece in pieces {
                            push_word(out, piece, &mut word);
                        }
                    }
                    None => push_word(out, part, &mut word),
                }
            }
            last_emoji = None;
            i += 1 + len;
            continue;
        }
        if !c.is_alphanumeric() && boundary_before {
            if let Some((len, emoji)) = match_emoticon(rest) {
                if last_emoji != emoji.chars().next() {
                    push(out, emoji);
                }
                last_emoji = emoji.chars().next();
                i += len;
                continue;
            }
        }
        if c.is_alphanumeric() {
            let len = word_len(rest, |ch| ch.is_alphanumeric() || ch == '\'' || ch == '’');
            push_word(out, rest[..len].trim_end_matches(['\'', '’']), &mut word);
            last_emoji = None;
            i += len;
            continue;
        }
        match c {
            '!' | '?' => {
                let len = rest.find(|ch| ch != '!' && ch != '?').unwrap_or(rest.len());
                let run = &rest[..len];
                let tok = match (run.contains('!'), run.contains('?'), len > 1) {
                    (true, true, _) => "?!",
                    (true, false, false) => "!",
                    (true, false, true) => "!!",
                    (false, true, false) => "?",
                    _ => "??",
                };
                push(out, tok);
                last_emoji = None;
                i += len;
            }
            '.' | '…' => {
                let len = rest.find(|ch| ch != '.' && ch != '…').unwrap_or(rest.len());
                push(out, if len > 1 || c == '…' { "…" } else { "." });
                last_emoji = None;
                i += len;
            }
            ',' | ';' | ':' => {
                push(out, ",");
                last_emoji = None;
                i += 1;
            }
            _ => {
                if is_emoji(c) {
                    if last_emoji != Some(c) {
                        let mut buf = [0u8; 4];
                        push(out, c.encode_utf8(&mut buf));
                    }
                    last_emoji = Some(c);
                }
                i += c.len_utf8();
            }
        }
    }
}

fn push(out: &mut String, token: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(token);
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Length in bytes of the prefix of `s` whose chars satisfy `f`.
fn word_len(s: &str, f: impl Fn(char) -> bool) -> usize {
    s.find(|c: char| !f(c)).unwrap_or(s.len())
}

fn is_url_start(s: &str) -> bool {
    let b = s.as_bytes();
    let starts = |p: &str| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("http://") || starts("https://") || starts("www.")
}

fn match_emoticon(s: &str) -> Option<(usize, &'static str)> {
    EMOTICONS.iter().find_map(|(e, emoji)| {
        let after = s.strip_prefix(e)?;
        // An emoticon must stand alone: `:D` yes, `:Doctor` no.
        match after.chars().next() {
            None => Some((e.len(), *emoji)),
            Some(n) if n.is_whitespace() || (!n.is_alphanumeric() && n != '_') => {
                Some((e.len(), *emoji))
            }
            _ => None,
        }
    })
}

/// True for pictographs and symbols worth keeping as tokens; false for modifiers and joiners.
fn is_emoji(c: char) -> bool {
    let u = c as u32;
    if (0x1F3FB..=0x1F3FF).contains(&u) || u == 0x200D || (0xFE00..=0xFE0F).contains(&u) {
        return false;
    }
    (0x1F000..=0x1FAFF).contains(&u)
        || (0x2600..=0x27BF).contains(&u)
        || (0x2190..=0x21FF).contains(&u)
        || (0x2B00..=0x2BFF).contains(&u)
        || u == 0x2764
}

/// Splits a hashtag body on lower→upper case changes and letter↔digit changes.
fn split_hashtag(tag: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (idx, c) in tag.char_indices() {
        if let Some(p) = prev {
            let case_break = p.is_lowercase() && c.is_uppercase();
            let digit_break = p.is_ascii_digit() != c.is_ascii_digit();
            if c == '_' || case_break || digit_break {
                if idx > start {
                    parts.push(&tag[start..idx]);
                }
                start = if c == '_' { idx + 1 } else { idx };
            }
        }
        prev = Some(c);
    }
    if start < tag.len() {
        parts.push(&tag[start..]);
    }
    parts
}

/// Normalises one word (letters, digits and inner apostrophes) and appends its tokens to `out`.
fn push_word(out: &mut String, raw: &str, buf: &mut String) {
    if raw.is_empty() {
        return;
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        push(out, "<num>");
        return;
    }
    let letters = raw.chars().filter(|c| c.is_alphabetic()).count();
    if letters >= 3 && raw.chars().all(|c| !c.is_lowercase()) {
        push(out, "<caps>");
    }
    buf.clear();
    if raw.is_ascii() {
        buf.push_str(raw);
        buf.make_ascii_lowercase();
    } else {
        for c in raw.chars() {
            if c == '’' {
                buf.push('\'');
            } else {
                buf.extend(c.to_lowercase());
            }
        }
    }
    // Indonesian reduplication: `hati2` → `hati hati`.
    if buf.len() > 2 && buf.ends_with('2') && buf[..buf.len() - 1].chars().all(char::is_alphabetic)
    {
        buf.pop();
        let base = buf.clone();
        push_word(out, &base, &mut String::new());
        push_word(out, &base, &mut String::new());
        return;
    }
    if let Some(laugh) = laughter(buf) {
        push(out, laugh);
        return;
    }
    let elongated = collapse_elongation(buf);
    if let Some(stem) = contraction_stem(buf) {
        push(out, stem);
        push(out, "not");
    } else {
        if buf.contains('\'') {
            buf.retain(|c| c != '\'');
        }
        match lookup_slang(buf) {
            Some(expansion) => push(out, expansion),
            None => push(out, buf),
        }
    }
    if elongated {
        push(out, "<elong>");
    }
}

fn lookup_slang(word: &str) -> Option<&'static str> {
    static MAP: LazyLock<FastMap<&'static str, &'static str>> =
        LazyLock::new(|| SLANG.iter().copied().collect());
    MAP.get(word).copied()
}

/// English `n't` contractions: `don't` → `do`, `can't` → `can`, `won't` → `will`.
fn contraction_stem(word: &str) -> Option<&str> {
    let stem = word.strip_suffix("n't")?;
    Some(match stem {
        "ca" => "can",
        "wo" => "will",
        "ai" => "is",
        "sha" => "shall",
        s => s,
    })
}

/// Folds laughter (`wkwkwk`, `hahaha`, `hehehe`, `xixixi`) to one token.
fn laughter(word: &str) -> Option<&'static str> {
    let b = word.as_bytes();
    if b.len() >= 4 && b.iter().all(|&c| c == b'w' || c == b'k') && b.contains(&b'k') {
        return Some("wkwk");
    }
    if b.len() >= 4 && b.chunks(2).all(|p| p[0] == b'h') {
        let vowels: Vec<u8> = b.chunks(2).filter_map(|p| p.get(1).copied()).collect();
        if !vowels.is_empty() && vowels.iter().all(|&v| v == vowels[0]) {
            return match vowels[0] {
                b'a' => Some("haha"),
                b'e' => Some("hehe"),
                b'i' => Some("hihi"),
                _ => None,
            };
        }
    }
    None
}

/// Collapses runs of three or more equal letters in place. Returns whether anything changed.
fn collapse_elongation(word: &mut String) -> bool {
    // Cheap scan first: almost no word is elongated.
    let mut run = 0;
    let mut prev = None;
    let mut has_run = false;
    for c in word.chars() {
        run = if Some(c) == prev { run + 1 } else { 1 };
        prev = Some(c);
        if run >= 3 && c.is_alphabetic() {
            has_run = true;
            break;
        }
    }
    if !has_run {
        return false;
    }
    let chars: Vec<char> = word.chars().collect();
    let collapse = |max: usize| -> String {
        let mut s = String::with_capacity(word.len());
        let mut run = 0;
        let mut prev = None;
        for &c in &chars {
            run = if Some(c) == prev { run + 1 } else { 1 };
            prev = Some(c);
            if run <= max || !c.is_alphabetic() {
                s.push(c);
            }
        }
        s
    };
    let single = collapse(1);
    static SHORT: LazyLock<FastMap<&'static str, ()>> =
        LazyLock::new(|| SHORT_FORMS.iter().map(|w| (*w, ())).collect());
    let known = SHORT.contains_key(single.as_str()) || lookup_slang(&single).is_some();
    *word = if known { single } else { collapse(2) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_cases() {
        let cases: &[(&str, &str)] = &[
            ("#GakPuas sama layanannya", "tidak puas sama layanannya"),
            ("#NotHappy with @united", "not happy with <user>"),
            ("sooo good", "so <elong> good"),
            ("enak bangettt", "enak banget <elong>"),
            ("goooood morning", "good <elong> morning"),
            ("see https://t.co/abc now", "see <url> now"),
            ("www.example.com/x is down", "<url> is down"),
            ("I don't like it", "i do not like it"),
            ("can't wait", "can not wait"),
            ("gak ga nggak enggak tdk", "tidak tidak tidak tidak tidak"),
            ("yg dgn krn bgt", "yang dengan karena banget"),
            ("hati2 ya", "hati hati ya"),
            ("wkwkwkwk lucu", "wkwk lucu"),
            ("hahahaha", "haha"),
            ("WHAT!!!", "<caps> what !!"),
            ("really?!?", "really ?!"),
            ("wait...", "wait …"),
            ("nice :) <3", "nice 🙂 ❤"),
            ("sad :'(", "sad 😢"),
            ("😂😂😂 lol", "😂 lol"),
            ("👍🏽 ok", "👍 ok"),
            ("harga 800000 rupiah", "harga <num> rupiah"),
            ("#iPhone15", "i phone <num>"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn emoticon_needs_boundaries() {
        // `:D` inside a word or followed by letters is not an emoticon.
        assert_eq!(normalize("x:Doctor"), "x , doctor");
        assert_eq!(normalize("ok :D"), "ok 😀");
    }

    #[test]
    fn buffer_is_reused() {
        let mut out = String::from("stale");
        normalize_into("Fresh", &mut out);
        assert_eq!(out, "fresh");
    }

    #[test]
    fn lower_case_hashtags_split_with_a_vocabulary() {
        let counts: FastMap<String, u32> = [
            ("not", 50),
            ("happy", 20),
            ("gak", 30),
            ("puas", 9),
            ("no", 40),
            ("thappy", 1),
        ]
        .into_iter()
        .map(|(w, c)| (w.to_string(), c))
        .collect();
        let vocab = SegmentVocab::new(counts);
        assert_eq!(vocab.split("nothappy"), Some(vec!["not", "happy"]));
        assert_eq!(vocab.split("happy"), None, "short, and a known word");
        assert_eq!(vocab.split("zzzzzzzz"), None, "cannot be covered");
        let mut out = String::new();
        normalize_into_with("#gakpuas #NotHappy", &mut out, Some(&vocab));
        assert_eq!(out, "tidak puas not happy");
        normalize_into("#gakpuas", &mut out);
        assert_eq!(out, "gakpuas", "without a vocabulary nothing is split");
    }
}
