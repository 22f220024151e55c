//! The trained fast classifier: multinomial logistic regression over hashed features, and its
//! file format.
//!
//! File layout (little-endian), version 1:
//!
//! ```text
//! b"GEMASENT" | u32 version | u32 header length | header JSON | buckets × 3 f16 weights
//!             | 3 f32 biases | 32-byte SHA-256 of everything before it
//! ```
//!
//! [`load_model`] checks the magic, version, sizes and checksum, so a truncated, corrupt or
//! foreign file fails at start-up with the path and the reason.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use half::f16;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{FeatureConfig, Featurizer, Lexicons};
use super::langid::LangHead;
use super::{Label, Sentiment, SentimentModel};
use crate::text::lang::{self, Lang};

/// Where `gema train` writes the model and where the enrich stage loads it from by default.
pub const DEFAULT_MODEL_PATH: &str = "models/sentiment-fast.bin";
/// The manifest written next to [`DEFAULT_MODEL_PATH`].
pub const DEFAULT_MANIFEST_PATH: &str = "models/sentiment-fast.manifest.json";

const MAGIC: &[u8; 8] = b"GEMASENT";
/// 2: a language head (`sentiment::langid`) follows the class biases.
const VERSION: u32 = 2;
/// Class order of the weight rows.
pub const CLASSES: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

/// Why a model file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read sentiment model {path}: {source} (run `gema train` to create it)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write sentiment model {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a gema sentiment model (bad magic bytes)")]
    BadMagic { path: PathBuf },
    #[error(
        "sentiment model {path} has format version {found}; this build reads version {VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("sentiment model {path} is truncated or corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "sentiment model {path} fails its checksum: the file is corrupt; retrain or restore it"
    )]
    Checksum { path: PathBuf },
    /// The sentiment model is usable only with the language model that picks its language.
    #[error("{0}")]
    Lang(String),
}

/// Model header, stored as JSON inside the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// Name recorded on each enriched mention, e.g. `fast-lr-v1`.
    pub name: String,
    /// Hashed feature space.
    pub features: FeatureConfig,
    /// Softmax temperature fitted on the dev files (confidence calibration).
    pub temperature: f32,
    /// Lexicons used by the dense features.
    pub lexicons: Lexicons,
}

/// The fast classifier. Immutable once built; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct FastModel {
    name: String,
    temperature: f32,
    featurizer: Featurizer,
    /// `buckets × 3`, row-major by bucket, classes in [`CLASSES`] order.
    weights: Vec<f32>,
    bias: [f32; 3],
    /// English against Indonesian, learnt from the training files (`None`: lid.176 decides).
    lang_head: Option<LangHead>,
}

thread_local! {
    static SCRATCH: RefCell<(String, Vec<(u32, f32)>)> =
        RefCell::new((String::with_capacity(256), Vec::with_capacity(1024)));
}

impl FastModel {
    /// Builds a model from trained parameters. `weights.len()` must be `buckets × 3`.
    pub fn new(header: ModelHeader, weights: Vec<f32>, bias: [f32; 3]) -> Self {
        assert_eq!(
            weights.len(),
            header.features.buckets() * 3,
            "weights do not match buckets"
        );
        FastModel {
            name: header.name,
            temperature: header.temperature,
            featurizer: Featurizer::new(header.features, header.lexicons),
            weights,
            bias,
            lang_head: None,
        }
    }

    /// Sets the language head (training does, before saving).
    pub fn set_lang_head(&mut self, head: LangHead) {
        self.lang_head = Some(head);
    }

    /// The language of `text` as the pipeline decides it: lid.176, with this model's language
    /// head choosing between English and Indonesian (`lang::detect_with`), and a platform's
    /// `hint` when the text has no letters.
    pub fn language(&self, text: &str, hint: Option<&str>) -> (Lang, f32) {
        match &self.lang_head {
            Some(head) => lang::resolve_with(text, hint, Some(&|t: &str| head.p_id(t))),
            None => lang::resolve(text, hint),
        }
    }

    /// The featurizer (normalised text → features).
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// The calibration temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Sets the calibration temperature (used by training after fitting it on dev).
    pub fn set_temperature(&mut self, t: f32) {
        self.temperature = t;
    }

    /// Raw (uncalibrated) class scores for pre-computed features.
    #[inline]
    pub fn logits(&self, features: &[(u32, f32)]) -> [f32; 3] {
        let mut z = self.bias;
        for &(i, v) in features {
            let w = &self.weights[i as usize * 3..i as usize * 3 + 3];
            z[0] += w[0] * v;
            z[1] += w[1] * v;
            z[2] += w[2] * v;
        }
        z
    }

    /// Class probabilities at temperature `t`.
    pub fn probs(logits: [f32; 3], t: f32) -> [f32; 3] {
        let z = logits.map(|x| x / t);
        let m = z[0].max(z[1]).max(z[2]);
        let e = z.map(|x| (x - m).exp());
        let s = e[0] + e[1] + e[2];
        e.map(|x| x / s)
    }

    /// Turns calibrated probabilities into a [`Sentiment`].
    pub fn sentiment(p: [f32; 3]) -> Sentiment {
        let mut best = 0;
        for c in 1..3 {
            if p[c] > p[best] {
                best = c;
            }
        }
        Sentiment {
            label: CLASSES[best],
            score: (p[2] - p[0]).clamp(-1.0, 1.0),
            confidence: p[best].clamp(0.0, 1.0),
        }
    }

    /// Classifies text that is already normalised.
    pub fn classify_normalized(
        &self,
        normalized: &str,
        lang: Lang,
        buf: &mut Vec<(u32, f32)>,
    ) -> Sentiment {
        self.featurizer.features(normalized, lang, buf);
        Self::sentiment(Self::probs(self.logits(buf), self.temperature))
    }

    /// Calibrated class probabilities (in [`CLASSES`] order) of raw `text` in `lang`; even for
    /// a language that is not scored. The transformer tier fuses these with its own.
    pub fn probabilities(&self, text: &str, lang: Lang) -> [f32; 3] {
        if !lang.is_scored() {
            return [1.0 / 3.0; 3];
        }
        SCRATCH.with(|s| {
            let (norm, feats) = &mut *s.borrow_mut();
            self.featurizer.normalize_into(text, norm);
            self.featurizer.features(norm, lang, feats);
            Self::probs(self.logits(feats), self.temperature)
        })
    }

    /// Writes the model to `path` (creating parent folders).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let write_err = |source| ModelError::Write {
            path: path.to_path_buf(),
            source,
        };
        let header = ModelHeader {
            name: self.name.clone(),
            features: *self.featurizer.config(),
            temperature: self.temperature,
            lexicons: self.featurizer.lexicons().clone(),
        };
        let json = serde_json::to_vec(&header).expect("model header serialises");
        let mut bytes = Vec::with_capacity(16 + json.len() + self.weights.len() * 2 + 44);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        for w in &self.weights {
            bytes.extend_from_slice(&f16::from_f32(*w).to_le_bytes());
        }
        for b in &self.bias {
            bytes.extend_from_slice(&b.to_le_bytes());
        }
        match &self.lang_head {
            Some(head) => {
                bytes.extend_from_slice(&head.buckets_log2().to_le_bytes());
                for w in head.weights() {
                    bytes.extend_from_slice(&f16::from_f32(*w).to_le_bytes());
                }
                bytes.extend_from_slice(&head.bias().to_le_bytes());
            }
            None => bytes.extend_from_slice(&0u32.to_le_bytes()),
        }
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        std::fs::write(path, &bytes).map_err(write_err)
    }

    /// Rounds the weights to what [`FastModel::save`] stores (f16), so that in-memory evaluation
    /// during training matches the saved file exactly.
    pub fn quantize(&mut self) {
        for w in &mut self.weights {
            *w = f16::from_f32(*w).to_f32();
        }
        if let Some(head) = &mut self.lang_head {
            let weights = head
                .weights()
                .iter()
                .map(|w| f16::from_f32(*w).to_f32())
                .collect();
            *head = LangHead::new(head.buckets_log2(), weights, head.bias()).expect("same shape");
        }
    }
}

impl SentimentModel for FastModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn language(&self, text: &str, hint: Option<&str>) -> (Lang, f32) {
        FastModel::language(self, text, hint)
    }

    /// Posts with no letters, from the emoji lexicon baked into the model (the valence of each
    /// emoji's name, as VADER does): the sum of the valences of the emoji (repeats collapsed by
    /// the normaliser), VADER's compound normalisation `x / sqrt(x² + 15)` as the score, and
    /// VADER's ±0.05 thresholds for the label. The training files hold too few emoji to learn
    /// from. `None` when the post has letters or no emoji with a valence (`😡` is one: its
    /// name, "pouting face", has none).
    fn classify_symbols(&self, text: &str) -> Option<Sentiment> {
        if text.chars().any(char::is_alphabetic) {
            return None;
        }
        let normalized = self.normalized(text);
        let emoji = &self.featurizer.lexicons().emoji;
        let valences: Vec<f32> = normalized
            .split(' ')
            .filter_map(|t| emoji.get(t).copied())
            .collect();
        if valences.is_empty() {
            return None;
        }
        let x: f32 = valences.iter().sum();
        let score = (x / (x * x + 15.0).sqrt()).clamp(-1.0, 1.0);
        let label = if score >= 0.05 {
            Label::Positive
        } else if score <= -0.05 {
            Label::Negative
        } else {
            Label::Neutral
        };
        Some(Sentiment {
            label,
            score,
            confidence: score.abs().max(0.05),
        })
    }

    fn normalized(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 16);
        self.featurizer.normalize_into(text, &mut out);
        out
    }

    fn classify(&self, text: &str, lang: Lang) -> Sentiment {
        if !lang.is_scored() {
            return Sentiment::UNSCORED;
        }
        SCRATCH.with(|s| {
            let (norm, feats) = &mut *s.borrow_mut();
            self.featurizer.normalize_into(text, norm);
            self.classify_normalized(norm, lang, feats)
        })
    }
}

/// Loads a model written by `gema train`. Fails fast, naming `path` and the reason, on a missing,
/// truncated, corrupt or foreign file, and when the language model
/// ([`crate::text::lang::ensure_loaded`]) is missing.
pub fn load_model(path: &Path) -> Result<FastModel, ModelError> {
    crate::text::lang::ensure_loaded().map_err(|e| ModelError::Lang(format!("{e:#}")))?;
    let p = || path.to_path_buf();
    let corrupt = |reason: String| ModelError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| ModelError::Read { path: p(), source })?;
    if bytes.len() < 16 + 32 || &bytes[..8] != MAGIC {
        return Err(ModelError::BadMagic { path: p() });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(ModelError::Version {
            path: p(),
            found: version,
        });
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(ModelError::Checksum { path: p() });
    }
    let header_len = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes")) as usize;
    let header_end = 16usize
        .checked_add(header_len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| corrupt(format!("header length {header_len} exceeds the file")))?;
    let header: ModelHeader = serde_json::from_slice(&body[16..header_end])
        .map_err(|e| corrupt(format!("bad header JSON: {e}")))?;
    if !(10..=26).contains(&header.features.buckets_log2) {
        return Err(corrupt(format!(
            "implausible buckets_log2 {}",
            header.features.buckets_log2
        )));
    }
    if !(header.temperature.is_finite() && header.temperature > 0.0) {
        return Err(corrupt(format!("bad temperature {}", header.temperature)));
    }
    let n = header.features.buckets() * 3;
    let head_at = header_end + n * 2 + 12;
    let head_log2 = body
        .get(head_at..head_at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| corrupt("the language head is missing".into()))?;
    let head_len = match head_log2 {
        0 => 0,
        10..=24 => (1usize << head_log2) * 2 + 4,
        other => return Err(corrupt(format!("implausible language head size 2^{other}"))),
    };
    let expected = head_at + 4 + head_len;
    if body.len() != expected {
        return Err(corrupt(format!(
            "expected {expected} bytes before the checksum, found {}",
            body.len()
        )));
    }
    let lang_head = if head_log2 == 0 {
        None
    } else {
        let raw = &body[head_at + 4..expected];
        let (w, b) = raw.split_at(raw.len() - 4);
        let weights: Vec<f32> = w
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        let bias = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        if !bias.is_finite() || weights.iter().any(|w| !w.is_finite()) {
            return Err(corrupt("non-finite language head".into()));
        }
        LangHead::new(head_log2, weights, bias)
    };
    let weights: Vec<f32> = body[header_end..header_end + n * 2]
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let mut bias = [0f32; 3];
    for (k, c) in body[header_end + n * 2..head_at]
        .chunks_exact(4)
        .enumerate()
    {
        bias[k] = f32::from_le_bytes(c.try_into().expect("4 bytes"));
    }
    if weights.iter().chain(bias.iter()).any(|w| !w.is_finite()) {
        return Err(corrupt("non-finite weights".into()));
    }
    let mut model = FastModel::new(header, weights, bias);
    model.lang_head = lang_head;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> FastModel {
        let header = ModelHeader {
            name: "test".into(),
            features: FeatureConfig {
                buckets_log2: 10,
                ..FeatureConfig::default()
            },
            temperature: 1.5,
            lexicons: Lexicons::default(),
        };
        let weights = (0..3 * 1024)
            .map(|i| ((i % 7) as f32 - 3.0) / 8.0)
            .collect();
        FastModel::new(header, weights, [0.1, 0.2, -0.3])
    }

    #[test]
    fn save_load_roundtrip_classifies_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        let m = tiny();
        m.save(&path).unwrap();
        let loaded = load_model(&path).unwrap();
        for t in ["great stuff", "jelek banget", "meh"] {
            assert_eq!(m.classify(t, Lang::En), loaded.classify(t, Lang::En));
        }
        assert_eq!(loaded.name(), "test");
        assert_eq!(
            loaded.classify("anything", Lang::Other),
            Sentiment::UNSCORED
        );
    }

    #[test]
    fn missing_and_corrupt_files_fail_with_path_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.bin");
        let err = load_model(&missing).unwrap_err().to_string();
        assert!(
            err.contains("nope.bin") && err.contains("cannot read"),
            "{err}"
        );

        let path = dir.path().join("m.bin");
        tiny().save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = load_model(&path).unwrap_err();
        assert!(matches!(err, ModelError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("m.bin"));

        std::fs::write(&path, b"not a model at all, just some text here......").unwrap();
        assert!(matches!(
            load_model(&path).unwrap_err(),
            ModelError::BadMagic { .. }
        ));
    }

    /// The model committed in `models/` loads and gets obvious posts right end to end.
    #[test]
    fn committed_model_classifies_obvious_posts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = load_model(&path).expect("committed model loads");
        let cases = [
            (
                "worst customer service ever, still no refund after 3 weeks",
                Label::Negative,
            ),
            (
                "love the new update, app is sooo much faster now 😍",
                Label::Positive,
            ),
            ("pelayanannya lambat bgt, kecewa #GakPuas", Label::Negative),
            (
                "mantap, barangnya bagus dan pengiriman cepat 👍",
                Label::Positive,
            ),
            ("tidak mengecewakan, recommended seller", Label::Positive),
            ("not bad at all, pretty happy with it", Label::Positive),
            ("never disappointed by this brand", Label::Positive),
            ("tidak jelek kok, lumayan", Label::Positive),
            ("pelayanan tidak ramah", Label::Negative),
            ("rasanya kurang enak", Label::Negative),
            ("I don't like the new design", Label::Negative),
            // 🔥 is praise; its name ("fire") used to give it a negative valence.
            (
                "Really impressed with NusaPay lately. Recommend! 🔥",
                Label::Positive,
            ),
        ];
        for (text, want) in cases {
            let (lang, _) = model.language(text, None);
            let s = model.classify(text, lang);
            assert_eq!(s.label, want, "{text}: {s:?} ({lang:?})");
            assert!((-1.0..=1.0).contains(&s.score) && (0.0..=1.0).contains(&s.confidence));
        }
        let text = "El servicio fue muy malo y la comida llegó fría, no vuelvo nunca más";
        let (lang, _) = model.language(text, None);
        assert_eq!(model.classify(text, lang), Sentiment::UNSCORED);
    }

    #[test]
    fn sentiment_fields_are_in_range() {
        let s = FastModel::sentiment(FastModel::probs([2.0, 0.0, -1.0], 1.0));
        assert_eq!(s.label, Label::Negative);
        assert!(s.score < 0.0 && s.score >= -1.0);
        assert!(s.confidence > 0.5 && s.confidence <= 1.0);
    }
}
