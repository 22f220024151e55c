//! The transformer tier: all-MiniLM-L6-v2 through rust-bert, with a trained head fused with the
//! fast tier. It is about a thousand times slower than the fast tier, so the enrich stage runs it
//! as a cascade on the mentions where the fast tier is unsure and that matter
//! (`crate::enrich::cascade`).
//!
//! The head and its training are plain Rust and always built; running the transformer needs the
//! `bert` cargo feature (libtorch, see `scripts/bert-deps.sh`).

#[cfg(feature = "bert")]
pub mod cache;
#[cfg(feature = "bert")]
pub mod decide;
#[cfg(feature = "bert")]
pub mod encoder;
#[cfg(feature = "bert")]
pub mod evaluate;
#[cfg(feature = "bert")]
pub mod finetune;
#[cfg(feature = "bert")]
pub mod fit;
pub mod head;
#[cfg(feature = "bert")]
pub mod mlp;
#[cfg(feature = "bert")]
pub mod tier;
pub mod train;

pub use head::{load_head, EncoderSpec, Head, HeadError, TunedBlocks, DEFAULT_HEAD_PATH};

/// Where `scripts/bert-deps.sh` puts the transformer's files; `GEMA_BERT_MODEL_DIR` overrides.
pub const DEFAULT_MODEL_DIR: &str = ".gema/bert/minilm";
/// Where `scripts/bert-deps.sh` puts multilingual-e5-small (`scripts/e5_convert.py`).
pub const E5_MODEL_DIR: &str = ".gema/bert/e5";
/// The committed head on multilingual-e5-small (English and Indonesian), which the cascade uses
/// for Indonesian (`enrich.cascade.indonesian_head`).
pub const E5_HEAD_PATH: &str = "models/sentiment-e5.json";

/// Light clean-up of a raw post for the transformer's word pieces, in the style of the tweet
/// corpora it is trained on: URLs become `http`, handles `@user`, `#` is dropped and whitespace
/// is collapsed. Case, punctuation and emoji are kept (the tokenizer lower-cases).
pub fn prepare(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        let lower = word.to_ascii_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("www.")
        {
            out.push_str("http");
        } else if word.len() > 1 && word.starts_with('@') {
            out.push_str("@user");
        } else if let Some(tag) = word.strip_prefix('#').filter(|t| !t.is_empty()) {
            out.push_str(tag);
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_masks_urls_and_handles() {
        assert_eq!(
            prepare("@NusaPay  app down again https://t.co/x #fail"),
            "@user app down again http fail"
        );
        assert_eq!(prepare("# @ ok"), "# @ ok");
    }
}
