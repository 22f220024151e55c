//! The transformer tier as a classifier: encoder + head, fused with the fast tier; texts in
//! languages the head does not decide keep the fast tier's label.

use std::path::Path;
use std::sync::Arc;

use super::encoder::{Encoder, EncoderError};
use super::head::{load_head, Head, HeadError};
use crate::sentiment::model::FastModel;
use crate::sentiment::{Sentiment, SentimentModel};
use crate::text::lang::Lang;

/// Why the transformer tier could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
}

/// What the transformer tier says about one text, with the fast tier's view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The fused decision (or the fast tier's, for a language the head does not decide).
    pub sentiment: Sentiment,
    /// The fast tier's own decision.
    pub fast: Sentiment,
    /// Whether the transformer took part.
    pub by_transformer: bool,
}

/// Encoder, head and the fast tier they are fused with.
pub struct BertTier {
    fast: Arc<FastModel>,
    encoder: Encoder,
    head: Head,
}

impl BertTier {
    /// Loads the head at `head_path` and the transformer in `model_dir`.
    pub fn load(
        model_dir: &Path,
        head_path: &Path,
        fast: Arc<FastModel>,
    ) -> Result<Self, TierError> {
        let head = load_head(head_path)?;
        let head_dir = head_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let encoder = Encoder::load(model_dir, &head.encoder, head_dir)?;
        Ok(BertTier {
            fast,
            encoder,
            head,
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn name(&self) -> &str {
        &self.head.name
    }

    /// Classifies a batch of `(text, lang)`; one forward pass for the texts the head decides.
    pub fn classify_batch(&self, items: &[(&str, Lang)]) -> Result<Vec<Verdict>, EncoderError> {
        let fast: Vec<[f32; 3]> = items
            .iter()
            .map(|&(t, l)| self.fast.probabilities(t, l))
            .collect();
        let chosen: Vec<usize> = (0..items.len())
            .filter(|&i| self.head.decides(items[i].1))
            .collect();
        let texts: Vec<&str> = chosen.iter().map(|&i| items[i].0).collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            self.encoder.embed(&texts, 32)?
        };
        let mut out: Vec<Verdict> = items
            .iter()
            .zip(&fast)
            .map(|(&(t, l), _)| {
                let s = self.fast.classify(t, l);
                Verdict {
                    sentiment: s,
                    fast: s,
                    by_transformer: false,
                }
            })
            .collect();
        for (k, &i) in chosen.iter().enumerate() {
            out[i].sentiment = self.head.decide(&vectors[k], fast[i]);
            out[i].by_transformer = true;
        }
        Ok(out)
    }
}
