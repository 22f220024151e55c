//! Labelled data and lexicon files: reading, validation and the lexicons baked into a model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::features::Lexicons;
use super::Label;
use crate::text::hash::FastMap;
use crate::text::lang::Lang;

/// Why a data or lexicon file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a JSON object with `text` and `label`: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}:{line}: label {label:?} is not negative, neutral or positive")]
    Label {
        path: PathBuf,
        line: usize,
        label: String,
    },
    #[error("{path}:{line}: expected `word<TAB>weight`, found {text:?}")]
    Lexicon {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("no files matching {pattern} in {dir}")]
    NoFiles { dir: PathBuf, pattern: String },
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text: String,
    pub label: Label,
    /// Language from the file's `lang` field; `None` when absent.
    pub lang: Option<Lang>,
}

/// Whether a training row belongs to the held-out slice: about one row in ten, chosen by the
/// salted SHA-256 of its text (so that a text repeated in a file, or in two files, is always on
/// the same side). Training never sees it and no choice is made on it: `gema train` reports on
/// it and `gema eval --held-out` scores it. (The language rule in `text::lang` was chosen on a
/// different, unsalted tenth of the training rows, which are trained on.)
pub fn is_held_out(text: &str) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"gema held-out v1\n")
        .chain_update(text.as_bytes())
        .finalize();
    let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    first.is_multiple_of(10)
}

/// What `gema train` does to about one training row in four (chosen by the text's hash, so the
/// same rows every run) to teach the model the enrich stage's brand placeholder
/// ([`crate::text::normalize::BRAND_MARK`]): the first capitalised word after the first word (a
/// likely name: `Tim Duncan`, `Samsung`) becomes the placeholder; a row without one gets it
/// inserted before a word chosen by the hash. Every label gets it alike, so it learns no
/// sentiment. `None`: the row is left as it is.
pub fn with_brand_placeholder(text: &str) -> Option<String> {
    use crate::text::hash::{fnv1a, mix, FNV_OFFSET};
    use crate::text::normalize::BRAND_MARK;
    let h = mix(fnv1a(fnv1a(FNV_OFFSET, b"brand:"), text.as_bytes()));
    if !h.is_multiple_of(4) {
        return None;
    }
    let words: Vec<(usize, &str)> = text
        .split(' ')
        .scan(0usize, |at, w| {
            let start = *at;
            *at += w.len() + 1;
            Some((start, w))
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    let name = words.iter().skip(1).find(|(_, w)| {
        let mut chars = w.chars();
        chars.next().is_some_and(char::is_uppercase)
            && w.chars().filter(|c| c.is_alphabetic()).count() >= 3
            && chars.any(char::is_lowercase)
            && w.chars().all(|c| c.is_alphanumeric() || c == '\'')
    });
    let mut out = String::with_capacity(text.len() + 4);
    match name {
        Some(&(at, w)) => {
            out.push_str(&text[..at]);
            out.push(BRAND_MARK);
            out.push_str(&text[at + w.len()..]);
        }
        None => {
            let (at, _) = words[(h / 4 % words.len() as u64) as usize];
            out.push_str(&text[..at]);
            out.push(BRAND_MARK);
            out.push(' ');
            out.push_str(&text[at..]);
        }
    }
    Some(out)
}

/// The lower-case words of `rows` (ASCII letters, two or more; not in @handles, #hashtags or
/// URLs) seen at least three times, with their counts: the word list the model splits
/// lower-case hashtags with (`text::normalize::SegmentVocab`).
pub fn segment_vocab<'a>(rows: impl IntoIterator<Item = &'a Example>) -> FastMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for e in rows {
        for token in e.text.split_whitespace() {
            if token.starts_with(['@', '#']) || token.to_ascii_lowercase().starts_with("http") {
                continue;
            }
            for w in token.split(|c: char| !c.is_ascii_alphabetic()) {
                if w.len() >= 2 {
                    *counts.entry(w.to_ascii_lowercase()).or_default() += 1;
                }
            }
        }
    }
    counts.into_iter().filter(|&(_, c)| c >= 3).collect()
}

/// The rows of a labelled file that `gema eval` scores: all, or only the held-out slice.
pub fn read_for_eval(path: &Path, held_out: bool) -> Result<Vec<Example>, DataError> {
    let rows = read_jsonl(path)?;
    Ok(if held_out {
        split_held_out(rows).1
    } else {
        rows
    })
}

/// What `gema train` trains on from one training file, and its held-out slice: the rows that are
/// not held out, with the brand placeholder put in ([`with_brand_placeholder`]).
pub fn training_rows(examples: Vec<Example>) -> (Vec<Example>, Vec<Example>) {
    let (mut kept, held) = split_held_out(examples);
    for e in &mut kept {
        if let Some(t) = with_brand_placeholder(&e.text) {
            e.text = t;
        }
    }
    (kept, held)
}

/// Splits training rows into (kept for training, held out); see [`is_held_out`].
pub fn split_held_out(examples: Vec<Example>) -> (Vec<Example>, Vec<Example>) {
    let (held, kept): (Vec<_>, Vec<_>) = examples.into_iter().partition(|e| is_held_out(&e.text));
    (kept, held)
}

#[derive(Deserialize)]
struct Row {
    text: String,
    label: String,
    #[serde(default)]
    lang: Option<String>,
}

fn read_to_string(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })
}

/// Reads a JSONL file of `{"text", "label", "lang"?}` objects. Blank lines are skipped.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>, DataError> {
    let content = read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|source| DataError::Json {
            path: path.into(),
            line: i + 1,
            source,
        })?;
        let label = match row.label.as_str() {
            "negative" => Label::Negative,
            "neutral" => Label::Neutral,
            "positive" => Label::Positive,
            _ => {
                return Err(DataError::Label {
                    path: path.into(),
                    line: i + 1,
                    label: row.label,
                })
            }
        };
        out.push(Example {
            text: row.text,
            label,
            lang: row.lang.as_deref().map(Lang::from_hint),
        });
    }
    Ok(out)
}

/// Sorted `*.jsonl` files in `dir`.
pub fn jsonl_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.into(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoFiles {
            dir: dir.into(),
            pattern: "*.jsonl".into(),
        });
    }
    Ok(files)
}

/// Builds the model's lexicons from the VADER and InSet files in `dir`. Returns the lexicons
/// and `(file, entries)` for the manifest.
pub fn build_lexicons(dir: &Path) -> Result<(Lexicons, Vec<(PathBuf, usize)>), DataError> {
    let mut lex = Lexicons::default();
    let mut inputs = Vec::new();
    let vader_path = dir.join("vader_lexicon.txt");
    for (i, line) in read_to_string(&vader_path)?.lines().enumerate() {
        let mut parts = line.split('\t');
        let (Some(word), Some(v)) = (
            parts.next(),
            parts.next().and_then(|v| v.parse::<f32>().ok()),
        ) else {
            return Err(DataError::Lexicon {
                path: vader_path,
                line: i + 1,
                text: line.into(),
            });
        };
        lex.vader.insert(word.to_lowercase(), v);
    }
    inputs.push((vader_path, lex.vader.len()));
    for (file, map) in [
        ("inset_positive.tsv", &mut lex.inset_pos),
        ("inset_negative.tsv", &mut lex.inset_neg),
    ] {
        let path = dir.join(file);
        for (i, line) in read_to_string(&path)?.lines().enumerate().skip(1) {
            let mut parts = line.split('\t');
            let (Some(word), Some(v)) = (
                parts.next(),
                parts.next().and_then(|v| v.trim().parse().ok()),
            ) else {
                return Err(DataError::Lexicon {
                    path,
                    line: i + 1,
                    text: line.into(),
                });
            };
            // Multi-word and annotated entries never match a single token.
            if word.contains(' ') || word.contains('(') {
                continue;
            }
            map.insert(word.to_lowercase(), v);
        }
        inputs.push((path, map.len()));
    }
    // Emoji polarity: VADER's own approach, the valence of the emoji's English name, but only
    // for emoji that show a feeling (see `names_a_feeling`).
    let emoji_path = dir.join("vader_emoji_utf8_lexicon.txt");
    for line in read_to_string(&emoji_path)?.lines() {
        let Some((emoji, name)) = line.split_once('\t') else {
            continue;
        };
        let key: String = emoji
            .chars()
            .filter(|c| !matches!(*c as u32, 0xFE00..=0xFE0F | 0x200D | 0x1F3FB..=0x1F3FF))
            .collect();
        if key.chars().count() != 1 || !names_a_feeling(&key) {
            continue;
        }
        let v: f32 = name
            .split_whitespace()
            .filter_map(|w| lex.vader.get(w))
            .sum();
        if v != 0.0 {
            lex.emoji.insert(key, v);
        }
    }
    inputs.push((emoji_path, lex.emoji.len()));
    Ok((lex, inputs))
}

/// Whether an emoji's name describes a feeling: faces, hearts and other emotion symbols, and
/// gestures (Unicode's "Smileys & Emotion" and "People & Body" groups). Elsewhere a name
/// describes a thing, and its words mislead a lexicon: 🔥 "fire" (praise online), 🎲 "game
/// die", 💳 "credit card" or 🚏 "bus stop" say nothing about the writer's mood.
fn names_a_feeling(emoji: &str) -> bool {
    emojis::get(emoji).is_some_and(|e| {
        matches!(
            e.group(),
            emojis::Group::SmileysAndEmotion | emojis::Group::PeopleAndBody
        )
    })
}

/// Counts of each label, for the manifest.
pub fn label_counts(examples: &[Example]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for e in examples {
        *m.entry(e.label.as_str()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(
            &p,
            "{\"text\":\"a\",\"label\":\"positive\"}\n{\"text\":\"b\",\"label\":\"meh\"}\n",
        )
        .unwrap();
        let err = read_jsonl(&p).unwrap_err().to_string();
        assert!(err.contains("d.jsonl:2") && err.contains("meh"), "{err}");
    }

    #[test]
    fn emoji_polarity_only_for_emoji_that_show_a_feeling() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("vader_lexicon.txt"),
            "angry\t-2.3\t0.6\t[]\nheart\t2.2\t0.6\t[]\nfire\t-1.4\t1.5\t[]\n\
             die\t-2.9\t0.8\t[]\ncredit\t1.6\t0.5\t[]\n",
        )
        .unwrap();
        for f in ["inset_positive.tsv", "inset_negative.tsv"] {
            std::fs::write(d.join(f), "word\tweight\n").unwrap();
        }
        std::fs::write(
            d.join("vader_emoji_utf8_lexicon.txt"),
            "😠\tangry face\n❤️\tred heart\n🔥\tfire\n🎲\tgame die\n💳\tcredit card\n",
        )
        .unwrap();
        let (lex, _) = build_lexicons(d).unwrap();
        assert_eq!(lex.emoji.get("😠"), Some(&-2.3));
        assert_eq!(lex.emoji.get("❤"), Some(&2.2), "VS16 dropped from the key");
        // Objects, places and activities: their names are no feeling.
        for thing in ["🔥", "🎲", "💳"] {
            assert_eq!(lex.emoji.get(thing), None, "{thing}");
        }
    }
}
