//! Language identification from a model: fastText's lid.176 (176 languages), read by
//! [`crate::text::fasttext`], decides between English, Indonesian, the regional languages next to
//! it (Malay, Javanese, Sundanese) and everything else. No word list takes part.
//!
//! The model file is fetched by `scripts/lid-model.sh` into `.gema/lid/lid.176.ftz` (the
//! Makefile's `make demo` and `make test` do it); `GEMA_LID_MODEL` names another path.
//!
//! The decision rule's constants were chosen on one tenth of the *training* rows (the SHA-256 of
//! the text, unsalted, ≡ 0 mod 10), never on dev nor on the held-out slice
//! (`sentiment::data::is_held_out`, a differently chosen tenth); the figures are in the README.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::text::fasttext::FastText;

/// The languages gema tells apart. Only `En` and `Id` are given a sentiment: the regional
/// languages (`Ms`, `Jv`, `Su`) and `Other` stay unscored rather than being guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Id,
    /// Malay.
    Ms,
    /// Javanese.
    Jv,
    /// Sundanese.
    Su,
    Other,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Id => "id",
            Lang::Ms => "ms",
            Lang::Jv => "jv",
            Lang::Su => "su",
            Lang::Other => "other",
        }
    }

    /// Maps an ISO 639-1/-3 hint (`en`, `id`, `in`, `ms`, `jv`...) to a [`Lang`].
    pub fn from_hint(hint: &str) -> Lang {
        match hint.trim().to_ascii_lowercase().as_str() {
            "en" | "eng" => Lang::En,
            "id" | "in" | "ind" => Lang::Id,
            "ms" | "msa" | "zsm" => Lang::Ms,
            "jv" | "jav" => Lang::Jv,
            "su" | "sun" => Lang::Su,
            _ => Lang::Other,
        }
    }

    /// Whether the sentiment models score this language (English and Indonesian).
    pub fn is_scored(self) -> bool {
        matches!(self, Lang::En | Lang::Id)
    }
}

/// Where the lid.176 model is read from: `GEMA_LID_MODEL`, else `.gema/lid/lid.176.ftz` in the
/// working directory, else the same path in the source tree gema was built from.
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GEMA_LID_MODEL") {
        return PathBuf::from(p);
    }
    let local = Path::new(".gema/lid/lid.176.ftz");
    if local.exists() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(local)
}

struct Model {
    ft: FastText,
    regional: [(usize, Lang); 3],
    /// Label indices of en, id, ms, jv, su.
    targets: [usize; 5],
}

static MODEL: LazyLock<Result<Model, String>> = LazyLock::new(|| {
    let path = model_path();
    let ft = FastText::load(&path).map_err(|e| {
        format!("{e:#} (the language-identification model: run scripts/lid-model.sh to fetch it)")
    })?;
    let find = |name: &str| {
        ft.labels()
            .iter()
            .position(|l| l == name)
            .ok_or_else(|| format!("{}: the model has no label `{name}`", path.display()))
    };
    let regional = [
        (find("ms")?, Lang::Ms),
        (find("jv")?, Lang::Jv),
        (find("su")?, Lang::Su),
    ];
    Ok(Model {
        targets: [
            find("en")?,
            find("id")?,
            regional[0].0,
            regional[1].0,
            regional[2].0,
        ],
        regional,
        ft,
    })
});

/// Loads the language model now, so that a command can fail at start with a clear error
/// instead of at its first text.
pub fn ensure_loaded() -> anyhow::Result<()> {
    match &*MODEL {
        Ok(_) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

fn model() -> &'static Model {
    match &*MODEL {
        Ok(m) => m,
        // Every command that classifies calls `ensure_loaded` first.
        Err(e) => panic!("{e}"),
    }
}

/// The language the enrich stage scores `text` in: [`detect`]'s answer, except that a
/// platform's `hint` decides when the text has no letters to detect from (confidence 0.5 then).
pub fn resolve(text: &str, hint: Option<&str>) -> (Lang, f32) {
    resolve_with(text, hint, None)
}

/// [`resolve`] with the English/Indonesian decision of [`detect_with`].
pub fn resolve_with(
    text: &str,
    hint: Option<&str>,
    p_id: Option<&dyn Fn(&str) -> f32>,
) -> (Lang, f32) {
    let (detected, confidence) = detect_with(text, p_id);
    match (hint, detected) {
        (Some(hint), Lang::Other) if confidence == 0.0 => (Lang::from_hint(hint), 0.5),
        _ => (detected, confidence),
    }
}

/// Below this much probability on English or on the Indonesian family, a text is `Other`.
const MIN_MASS: f32 = 0.1;
/// Another language wins when its probability is at least this many times the larger of
/// English and the Indonesian family.
const OTHER_LEADS: f32 = 2.0;
/// A regional language is named only when it has at least this probability and at least
/// [`REGIONAL_LEADS`] times Indonesian's (lid.176 often calls short Indonesian posts Malay).
const REGIONAL_MIN: f32 = 0.5;
const REGIONAL_LEADS: f32 = 2.0;

/// What language identification reads: URLs, @handles and #hashtags removed (names and tags
/// carry no language), lower-cased. A post of hashtags alone keeps their words (`#gakpuas` →
/// `gakpuas`), so that it still has a language.
pub fn prepare(text: &str, out: &mut String) {
    prepare_keeping_tags(text, out, false);
    if !out.chars().any(char::is_alphabetic) {
        prepare_keeping_tags(text, out, true);
    }
}

/// [`prepare`] without the fallback to hashtag words: what the language head of the fast model
/// was trained on (`sentiment::langid`).
pub fn prepare_without_tags(text: &str, out: &mut String) {
    prepare_keeping_tags(text, out, false);
}

fn prepare_keeping_tags(text: &str, out: &mut String, keep_tags: bool) {
    out.clear();
    for word in text.split_whitespace() {
        let w = word.trim_start_matches(|c: char| c.is_ascii_punctuation() && c != '@' && c != '#');
        let lw = w.to_ascii_lowercase();
        if w.starts_with('@') || lw.starts_with("http") || lw.starts_with("www.") {
            continue;
        }
        let word = match w.strip_prefix('#') {
            Some(tag) if keep_tags => tag,
            Some(_) => continue,
            None => word,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Detects the language of `text` with lid.176 alone; see [`detect_with`].
pub fn detect(text: &str) -> (Lang, f32) {
    detect_with(text, None)
}

/// Detects the language of `text`, with a confidence in [0, 1]: the probability of the answer.
///
/// 1. Text with no letters (once URLs, handles and hashtags are removed) is `Other` with
///    confidence 0.
/// 2. `Other` when lid.176 finds English and the Indonesian family (Indonesian, Malay, Javanese,
///    Sundanese) together unlikely, or another single language clearly more likely than either.
/// 3. English against Indonesian: with `p_id` (the sentiment model's own language head, learnt
///    from its training files: `sentiment::langid`), the product of the two experts (the sum
///    of the head's and lid.176's log-odds of the family against English); without it, lid.176's
///    English against the family. Either way code-mixed posts are scored.
/// 4. Within the family, Malay, Javanese or Sundanese only when lid.176 is sure and clearly
///    prefers it to Indonesian.
///
/// `p_id` receives the text as [`prepare`] leaves it.
pub fn detect_with(text: &str, p_id: Option<&dyn Fn(&str) -> f32>) -> (Lang, f32) {
    let mut prepared = String::with_capacity(text.len());
    prepare(text, &mut prepared);
    if !prepared.chars().any(char::is_alphabetic) {
        return (Lang::Other, 0.0);
    }
    let m = model();
    // en, id, then the regional languages; and the likeliest other language.
    let (p, other) = m.ft.predict_some(&prepared, &m.targets);
    let (en, id) = (p[0], p[1]);
    let regional = [p[2], p[3], p[4]];
    let family = id + regional.iter().sum::<f32>();
    let lead = en.max(family);
    if lead < MIN_MASS || other >= OTHER_LEADS * lead {
        return (Lang::Other, (1.0 - lead).clamp(0.0, 1.0));
    }
    let (english, confidence) = match p_id {
        Some(head) => {
            // A product of the two experts: the head's log-odds plus lid.176's.
            let q = sigmoid(logit(head(&prepared)) + logit(family / (family + en).max(1e-6)));
            (q < 0.5, if q < 0.5 { 1.0 - q } else { q })
        }
        None => (en >= family, lead),
    };
    if english {
        return (Lang::En, confidence.clamp(0.0, 1.0));
    }
    let (rp, regional) = m
        .regional
        .iter()
        .zip(regional)
        .map(|(&(_, l), p)| (p, l))
        .fold((0.0, Lang::Id), |a, b| if b.0 > a.0 { b } else { a });
    if rp >= REGIONAL_MIN && rp >= REGIONAL_LEADS * id {
        return (regional, rp.min(1.0));
    }
    (Lang::Id, confidence.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_map_to_languages() {
        assert_eq!(Lang::from_hint("IN"), Lang::Id);
        assert_eq!(Lang::from_hint("zsm"), Lang::Ms);
        assert_eq!(Lang::from_hint("jv"), Lang::Jv);
        assert_eq!(Lang::from_hint("de"), Lang::Other);
        assert!(Lang::En.is_scored() && Lang::Id.is_scored());
        assert!(!Lang::Ms.is_scored() && !Lang::Other.is_scored());
    }

    #[test]
    fn prepare_drops_links_handles_and_tags() {
        let mut out = String::new();
        prepare(
            "@Budi Saldo HILANG (https://t.co/x) #NusaPayDown!",
            &mut out,
        );
        assert_eq!(out, "saldo hilang");
        prepare("#GakPuas #kecewa @budi", &mut out);
        assert_eq!(out, "gakpuas kecewa");
    }

    #[test]
    fn detects_english_and_indonesian() {
        assert_eq!(detect("this is not what I paid for").0, Lang::En);
        assert_eq!(
            detect("aku kecewa banget sama pelayanan yang ini").0,
            Lang::Id
        );
        assert_eq!(
            detect("Tim Duncan and Gregg Popovich. Two legends.").0,
            Lang::En
        );
        assert_eq!(detect("🙂🙂").0, Lang::Other);
        assert_eq!(detect("🙂🙂").1, 0.0);
        assert_eq!(detect("@budi https://t.co/x").0, Lang::Other);
        // Hashtags alone still have a language.
        assert_eq!(detect("#NotHappy #worstservice").0, Lang::En);
        // Code-mixed English/Indonesian is scored, not dropped.
        assert!(detect("Antri panjang buat #KopiKitaSenja, worth it sih")
            .0
            .is_scored());
    }

    #[test]
    fn other_languages_are_not_guessed() {
        for t in [
            "Ich bin sehr enttäuscht von diesem Produkt, es ist nach zwei Tagen kaputt gegangen",
            "Je suis très déçu par le service client, personne ne répond à mes messages",
            "Это было ужасно, никогда больше не закажу здесь",
            "このアプリは本当に使いやすいです",
            "Bu ürün gerçekten çok kötü, iki gün sonra bozuldu",
        ] {
            let (lang, conf) = detect(t);
            assert_eq!(lang, Lang::Other, "{t}");
            assert!((0.0..=1.0).contains(&conf));
        }
    }
}
