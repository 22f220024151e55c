//! The transformer tier's sentiment head and its file (`models/sentiment-bert.json`).
//!
//! The head is a multinomial logistic regression or a small MLP over standardised sentence
//! vectors from the encoder, optionally followed by the fast tier's log-probabilities as three
//! more inputs (`fast_inputs`, a stacked head), fused with the fast tier: the decision is
//! `softmax((log p_head + fast_weight · log p_fast) / temperature)`, where `p_fast` are the fast
//! tier's calibrated probabilities. Pure Rust and libtorch-free, so it loads, validates and is
//! tested in the default build; only producing the sentence vectors needs the `bert` feature.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sentiment::model::{FastModel, CLASSES};
use crate::sentiment::Sentiment;
use crate::text::lang::Lang;

/// Where `gema train --tier bert` writes the head and where the cascade loads it from.
pub const DEFAULT_HEAD_PATH: &str = "models/sentiment-bert.json";

/// Which transformer and which of its outputs the head was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// The checkpoint, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub model: String,
    /// Hidden size of one layer's output.
    pub hidden: usize,
    /// Layers (0-based over the encoder's blocks) whose mean-pooled, L2-normalised outputs are
    /// concatenated.
    pub layers: Vec<usize>,
    /// Longest input in word pieces, including `[CLS]` and `[SEP]`.
    pub max_tokens: usize,
    /// Top blocks fine-tuned with the head; absent: the checkpoint as published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned: Option<TunedBlocks>,
    /// Put before every text (multilingual-e5 wants `query: `); empty for MiniLM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// The multilingual transformer's checkpoint name.
pub const E5_MODEL: &str = "intfloat/multilingual-e5-small";

/// Fine-tuned transformer blocks stored next to the head (`gema train --tier bert
/// --finetune-blocks N`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunedBlocks {
    /// The first fine-tuned block (0-based); it and every block above it are in `file`.
    pub from_block: usize,
    /// Safetensors file (float16) in the head's folder, named by checkpoint weight.
    pub file: String,
    /// SHA-256 of `file`, checked at load.
    pub sha256: String,
}

impl EncoderSpec {
    /// Length of one sentence vector.
    pub fn dim(&self) -> usize {
        self.hidden * self.layers.len()
    }

    /// The number of inputs of a head on this encoder: the sentence vector, followed by the
    /// fast tier's 3 log-probabilities for a stacked head ([`stack_fast`]).
    pub fn head_inputs(&self, fast_inputs: bool) -> usize {
        self.dim() + if fast_inputs { 3 } else { 0 }
    }
}

impl Default for EncoderSpec {
    fn default() -> Self {
        EncoderSpec {
            model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            hidden: 384,
            layers: vec![3, 4, 5],
            max_tokens: 128,
            tuned: None,
            prefix: String::new(),
        }
    }
}

impl EncoderSpec {
    /// The spec a new head gets for the checkpoint in `dir`: MiniLM's (a `vocab.txt`), or, for a
    /// folder with a `tokenizer.json` (`scripts/e5_convert.py`), multilingual-e5-small's: its
    /// top three blocks (9–11, as MiniLM's recipe pools its top three) and the `query: ` prefix
    /// its model card asks for in classification.
    pub fn for_model_dir(dir: &std::path::Path) -> EncoderSpec {
        if dir.join("tokenizer.json").is_file() && !dir.join("vocab.txt").is_file() {
            EncoderSpec {
                model: E5_MODEL.into(),
                hidden: 384,
                layers: vec![9, 10, 11],
                max_tokens: 128,
                tuned: None,
                prefix: "query: ".into(),
            }
        } else {
            EncoderSpec::default()
        }
    }
}

/// Why a head file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("cannot read transformer head {path}: {source} (run `gema train --tier bert`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write transformer head {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("transformer head {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The trained head. Immutable once loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Name recorded on each mention the transformer decided, e.g. `bert-minilm-v1`.
    pub name: String,
    pub encoder: EncoderSpec,
    /// Languages the transformer decides; others keep the fast tier's label.
    pub langs: Vec<Lang>,
    /// Whether the head's inputs end with the fast tier's log-probabilities (`ln max(p, 1e-6)`
    /// in [`CLASSES`] order) after the sentence vector. Such a head is trained on out-of-fold
    /// fast-tier probabilities of its training rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fast_inputs: bool,
    /// Per-input mean subtracted before the weights (the sentence vector's dimensions, then the
    /// fast tier's three with `fast_inputs`).
    pub mean: Vec<f32>,
    /// Per-dimension factor applied after subtracting `mean`.
    pub scale: Vec<f32>,
    /// An optional hidden layer (ReLU) between the standardised vector and the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
    /// `3 × inputs` output weights, one row per class in [`CLASSES`] order; `inputs` is the
    /// hidden layer's size, or `dim` without one.
    pub weights: Vec<f32>,
    pub bias: [f32; 3],
    /// Further ensemble members of the same shape (trained with other seeds); the head's
    /// log-probabilities are the mean of every member's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Member>,
    /// Weight of the fast tier's log-probabilities in the fused decision (0: head alone).
    pub fast_weight: f32,
    /// Softmax temperature of the fused decision (confidence calibration).
    pub temperature: f32,
}

/// One more ensemble member: an optional hidden layer and the output layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
    pub weights: Vec<f32>,
    pub bias: [f32; 3],
}

/// A fully connected ReLU layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hidden {
    /// `size × dim` weights, row-major by unit.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Head {
    /// The number of inputs this head reads ([`EncoderSpec::head_inputs`]).
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The head's input for a sentence vector `x` and the fast tier's probabilities.
    pub fn input<'a>(&self, x: &'a [f32], fast_probs: [f32; 3]) -> std::borrow::Cow<'a, [f32]> {
        if self.fast_inputs {
            std::borrow::Cow::Owned(stack_fast(x, fast_probs))
        } else {
            std::borrow::Cow::Borrowed(x)
        }
    }

    /// Whether the transformer decides texts in `lang`.
    pub fn decides(&self, lang: Lang) -> bool {
        self.langs.contains(&lang)
    }

    /// Log-probabilities of the head alone for one sentence vector and the fast tier's
    /// probabilities (read only with `fast_inputs`): the mean over the ensemble members'
    /// log-probabilities.
    pub fn log_probs(&self, x: &[f32], fast_probs: [f32; 3]) -> [f32; 3] {
        let x = self.input(x, fast_probs);
        let d = self.dim();
        let s: Vec<f32> = (0..d)
            .map(|j| (x.get(j).copied().unwrap_or(0.0) - self.mean[j]) * self.scale[j])
            .collect();
        let mut sum = member_log_probs(self.hidden.as_ref(), &self.weights, self.bias, &s);
        for m in &self.more {
            let lp = member_log_probs(m.hidden.as_ref(), &m.weights, m.bias, &s);
            for c in 0..3 {
                sum[c] += lp[c];
            }
        }
        let k = (1 + self.more.len()) as f32;
        sum.map(|v| v / k)
    }

    /// Fused class probabilities from the head's log-probabilities and the fast tier's
    /// calibrated probabilities.
    pub fn fuse(&self, head_log_probs: [f32; 3], fast_probs: [f32; 3]) -> [f32; 3] {
        let mut z = [0f32; 3];
        for c in 0..3 {
            z[c] = (head_log_probs[c] + self.fast_weight * fast_probs[c].max(1e-6).ln())
                / self.temperature;
        }
        let l = log_softmax(z);
        l.map(f32::exp)
    }

    /// The decision for one text: its sentence vector and the fast tier's probabilities.
    pub fn decide(&self, x: &[f32], fast_probs: [f32; 3]) -> Sentiment {
        FastModel::sentiment(self.fuse(self.log_probs(x, fast_probs), fast_probs))
    }

    /// Checks shapes and values; `path` is named in the error.
    pub fn validate(&self, path: &Path) -> Result<(), HeadError> {
        let corrupt = |reason: String| HeadError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let d = self.encoder.head_inputs(self.fast_inputs);
        if self.mean.len() != d || self.scale.len() != d {
            return Err(corrupt(format!(
                "sizes {} / {} do not match the {d} inputs (the encoder's {}-dimensional \
                 vectors{})",
                self.mean.len(),
                self.scale.len(),
                self.encoder.dim(),
                if self.fast_inputs {
                    " and the fast tier's 3 log-probabilities"
                } else {
                    ""
                }
            )));
        }
        check_member(self.hidden.as_ref(), &self.weights, d).map_err(corrupt)?;
        for m in &self.more {
            check_member(m.hidden.as_ref(), &m.weights, d).map_err(corrupt)?;
        }
        let finite = self
            .mean
            .iter()
            .chain(&self.scale)
            .chain(&self.weights)
            .chain(
                self.hidden
                    .iter()
                    .flat_map(|h| h.weights.iter().chain(&h.bias)),
            )
            .chain(&self.bias)
            .chain(self.more.iter().flat_map(|m| {
                m.weights.iter().chain(&m.bias).chain(
                    m.hidden
                        .iter()
                        .flat_map(|h| h.weights.iter().chain(&h.bias)),
                )
            }))
            .chain([&self.fast_weight, &self.temperature])
            .all(|v| v.is_finite());
        if !finite || self.temperature <= 0.0 {
            return Err(corrupt("non-finite weights or temperature ≤ 0".into()));
        }
        if self.encoder.layers.is_empty() || self.encoder.max_tokens < 8 {
            return Err(corrupt("no encoder layers or max_tokens < 8".into()));
        }
        if let Some(t) = &self.encoder.tuned {
            let plain = Path::new(&t.file)
                .file_name()
                .is_some_and(|f| f == std::ffi::OsStr::new(&t.file));
            if !plain || t.sha256.len() != 64 {
                return Err(corrupt(format!(
                    "fine-tuned blocks file {:?} must be a plain file name with a 64-digit SHA-256",
                    t.file
                )));
            }
        }
        Ok(())
    }

    /// Writes the head as JSON (creating parent folders).
    pub fn save(&self, path: &Path) -> Result<(), HeadError> {
        let write_err = |source| HeadError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let mut json = serde_json::to_string(self).expect("a head serialises");
        json.push('\n');
        std::fs::write(path, json).map_err(write_err)
    }
}

/// Loads and validates a head written by `gema train --tier bert`.
pub fn load_head(path: &Path) -> Result<Head, HeadError> {
    let bytes = std::fs::read(path).map_err(|source| HeadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let head: Head = serde_json::from_slice(&bytes).map_err(|e| HeadError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    head.validate(path)?;
    Ok(head)
}

/// Log-probabilities of one member for a standardised vector `s`.
fn member_log_probs(
    hidden: Option<&Hidden>,
    weights: &[f32],
    bias: [f32; 3],
    s: &[f32],
) -> [f32; 3] {
    let owned;
    let h: &[f32] = match hidden {
        None => s,
        Some(layer) => {
            owned = layer
                .weights
                .chunks_exact(s.len())
                .zip(&layer.bias)
                .map(|(w, b)| (b + w.iter().zip(s).map(|(a, v)| a * v).sum::<f32>()).max(0.0))
                .collect::<Vec<f32>>();
            &owned
        }
    };
    let k = h.len();
    let mut z = bias;
    for (c, zc) in z.iter_mut().enumerate() {
        *zc += weights[c * k..(c + 1) * k]
            .iter()
            .zip(h)
            .map(|(a, v)| a * v)
            .sum::<f32>();
    }
    log_softmax(z)
}

/// Checks one member's shapes for `d` inputs.
fn check_member(hidden: Option<&Hidden>, weights: &[f32], d: usize) -> Result<(), String> {
    let inputs = match hidden {
        Some(h) => {
            if h.bias.is_empty() || h.weights.len() != h.bias.len() * d {
                return Err(format!(
                    "hidden layer of {} units has {} weights for {d} inputs",
                    h.bias.len(),
                    h.weights.len()
                ));
            }
            h.bias.len()
        }
        None => d,
    };
    if weights.len() != 3 * inputs {
        return Err(format!(
            "sizes: {} output weights for {inputs} inputs",
            weights.len()
        ));
    }
    Ok(())
}

/// A sentence vector followed by the fast tier's log-probabilities: a stacked head's input.
pub fn stack_fast(x: &[f32], fast_probs: [f32; 3]) -> Vec<f32> {
    let mut v = Vec::with_capacity(x.len() + 3);
    v.extend_from_slice(x);
    v.extend(fast_probs.map(|p| p.max(1e-6).ln()));
    v
}

/// Numerically stable log-softmax of three logits.
pub fn log_softmax(z: [f32; 3]) -> [f32; 3] {
    let m = z[0].max(z[1]).max(z[2]);
    let lse = m + ((z[0] - m).exp() + (z[1] - m).exp() + (z[2] - m).exp()).ln();
    z.map(|v| v - lse)
}

/// The class index of a label in [`CLASSES`] order (`None` for unscored).
pub fn class_index(label: crate::sentiment::Label) -> Option<usize> {
    CLASSES.iter().position(|&c| c == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny() -> Head {
        let encoder = EncoderSpec {
            hidden: 2,
            layers: vec![0],
            ..EncoderSpec::default()
        };
        Head {
            name: "test-head".into(),
            encoder,
            langs: vec![Lang::En],
            fast_inputs: false,
            mean: vec![0.0, 0.0],
            scale: vec![1.0, 1.0],
            hidden: None,
            // negative ← x0, positive ← x1
            weights: vec![2.0, 0.0, 0.0, 0.0, 0.0, 2.0],
            bias: [0.0, 0.5, 0.0],
            more: vec![],
            fast_weight: 0.5,
            temperature: 1.0,
        }
    }

    #[test]
    fn decides_from_the_vector_and_the_fast_tier() {
        let h = tiny();
        let even = [1.0 / 3.0; 3];
        assert_eq!(
            h.decide(&[3.0, 0.0], even).label,
            crate::sentiment::Label::Negative
        );
        assert_eq!(
            h.decide(&[0.0, 3.0], even).label,
            crate::sentiment::Label::Positive
        );
        // With no evidence in the vector, a confident fast tier decides.
        let s = h.decide(&[0.0, 0.0], [0.01, 0.01, 0.98]);
        assert_eq!(s.label, crate::sentiment::Label::Positive);
        assert!((0.0..=1.0).contains(&s.confidence) && (-1.0..=1.0).contains(&s.score));
        let p = h.fuse(h.log_probs(&[1.0, 1.0], even), even);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn an_ensemble_averages_its_members_log_probabilities() {
        let h = tiny();
        let mut twice = tiny();
        twice.more.push(Member {
            hidden: None,
            weights: h.weights.clone(),
            bias: h.bias,
        });
        let x = [0.7, -0.2];
        let even = [1.0 / 3.0; 3];
        assert_eq!(h.log_probs(&x, even), twice.log_probs(&x, even));
        let mut other = tiny();
        other.more.push(Member {
            hidden: None,
            weights: vec![0.0; 6],
            bias: [0.0; 3],
        });
        let (a, b) = (h.log_probs(&x, even), other.log_probs(&x, even));
        let uniform = (1.0f32 / 3.0).ln();
        for c in 0..3 {
            assert!((b[c] - (a[c] + uniform) / 2.0).abs() < 1e-6);
        }
        other.more[0].weights.pop();
        assert!(other.validate(Path::new("e.json")).is_err());
    }

    #[test]
    fn a_stacked_head_reads_the_fast_tiers_log_probabilities() {
        let mut h = tiny();
        h.fast_inputs = true;
        h.fast_weight = 0.0;
        // Sized for the vector alone: refused, naming the fast tier's inputs.
        let err = h.validate(Path::new("s.json")).unwrap_err().to_string();
        assert!(err.contains("s.json") && err.contains("fast tier"), "{err}");
        h.mean = vec![0.0; 5];
        h.scale = vec![1.0; 5];
        // negative ← x0 + ln p_neg, neutral ← ln p_neu, positive ← x1 + ln p_pos
        h.weights = vec![
            2.0, 0.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 1.0, 0.0, //
            0.0, 2.0, 0.0, 0.0, 1.0,
        ];
        h.bias = [0.0; 3];
        h.validate(Path::new("s.json")).unwrap();
        let x = [0.0, 0.0];
        let sure_neg = [0.98, 0.01, 0.01];
        assert_eq!(h.input(&x, sure_neg).len(), 5);
        assert_eq!(h.input(&x, sure_neg)[2], 0.98f32.ln());
        // Same vector, different fast-tier view: the stacked head's own answer changes.
        let a = h.log_probs(&x, sure_neg);
        let b = h.log_probs(&x, [0.01, 0.01, 0.98]);
        assert!(a[0] > a[2] && b[2] > b[0], "{a:?} {b:?}");
        assert_eq!(
            h.decide(&x, sure_neg).label,
            crate::sentiment::Label::Negative
        );
        // A plain head ignores the fast tier in its own log-probabilities.
        let t = tiny();
        assert_eq!(
            t.log_probs(&x, sure_neg),
            t.log_probs(&x, [0.01, 0.01, 0.98])
        );
    }

    #[test]
    fn save_load_roundtrip_and_corrupt_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        let h = tiny();
        h.save(&path).unwrap();
        assert_eq!(load_head(&path).unwrap(), h);

        let mut bad = tiny();
        bad.weights.pop();
        bad.save(&path).unwrap();
        let err = load_head(&path).unwrap_err().to_string();
        assert!(err.contains("h.json") && err.contains("sizes"), "{err}");

        let err = load_head(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.json") && err.contains("gema train --tier bert"));
    }
}
