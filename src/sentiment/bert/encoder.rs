//! The transformer: all-MiniLM-L6-v2 (a 6-layer BERT) run by rust-bert on libtorch, turning
//! texts into fixed-size sentence vectors for the head in [`super::head`].
//!
//! Nothing is downloaded: the model folder (from `scripts/bert-deps.sh`) must hold
//! `config.json`, `vocab.txt` and `model.safetensors`.

use std::path::{Path, PathBuf};

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer, TruncationStrategy};
use tch::{nn, Device, Kind, Tensor};

use super::head::EncoderSpec;
use super::prepare;

/// Why the transformer could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(
        "transformer model folder {dir} lacks {file} (run scripts/bert-deps.sh and point \
         GEMA_BERT_MODEL_DIR or enrich.cascade.model_dir at its minilm folder)"
    )]
    Missing { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("transformer forward pass failed: {0}")]
    Forward(String),
}

/// A loaded sentence encoder. Not `Sync` in spirit: run it from one thread (libtorch uses its
/// own intra-op threads, see [`set_threads`]).
pub struct Encoder {
    tokenizer: BertTokenizer,
    model: BertModel<BertEmbeddings>,
    _vs: nn::VarStore,
    spec: EncoderSpec,
}

/// Sets libtorch's intra-op thread count (process-wide).
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

impl Encoder {
    /// Loads the model in `dir` for `spec` (the layers and length the head was trained with).
    pub fn load(dir: &Path, spec: &EncoderSpec) -> Result<Encoder, EncoderError> {
        for file in ["config.json", "vocab.txt", "model.safetensors"] {
            if !dir.join(file).is_file() {
                return Err(EncoderError::Missing {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
        let load_err = |path: PathBuf, reason: String| EncoderError::Load { path, reason };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| load_err(config_path.clone(), e.to_string()))?;
        let mut config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| load_err(config_path.clone(), e.to_string()))?;
        config.output_hidden_states = Some(true);
        let vocab = dir.join("vocab.txt");
        // all-MiniLM-L6-v2 is uncased: lower-case and strip accents like its HF tokenizer.
        let tokenizer = BertTokenizer::from_file(&vocab, true, true)
            .map_err(|e| load_err(vocab.clone(), e.to_string()))?;
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = BertModel::<BertEmbeddings>::new(vs.root(), &config);
        let weights = dir.join("model.safetensors");
        vs.load(&weights)
            .map_err(|e| load_err(weights.clone(), e.to_string()))?;
        vs.freeze();
        Ok(Encoder {
            tokenizer,
            model,
            _vs: vs,
            spec: spec.clone(),
        })
    }

    /// The vector length [`Encoder::embed`] returns per text.
    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    /// Sentence vectors of `texts` (raw post text; prepared with [`prepare`]), each
    /// [`Encoder::dim`] long: the mask-weighted mean of every layer in `spec.layers`, each
    /// L2-normalised, concatenated. Texts are run in length-sorted chunks of `batch` to keep
    /// padding small.
    pub fn embed(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>, EncoderError> {
        let prepared: Vec<String> = texts.iter().map(|t| prepare(t)).collect();
        let encoded = self.tokenizer.encode_list(
            &prepared,
            self.spec.max_tokens,
            &TruncationStrategy::LongestFirst,
            0,
        );
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encoded[i].token_ids.len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch.max(1)) {
            let len = chunk
                .iter()
                .map(|&i| encoded[i].token_ids.len())
                .max()
                .unwrap_or(1)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * len);
            let mut mask = Vec::with_capacity(chunk.len() * len);
            for &i in chunk {
                let t = &encoded[i].token_ids;
                ids.extend(t.iter().copied());
                mask.extend(std::iter::repeat_n(1i64, t.len()));
                ids.extend(std::iter::repeat_n(0i64, len - t.len()));
                mask.extend(std::iter::repeat_n(0i64, len - t.len()));
            }
            let rows = chunk.len() as i64;
            let ids = Tensor::from_slice(&ids).view([rows, len as i64]);
            let mask = Tensor::from_slice(&mask).view([rows, len as i64]);
            let vectors = tch::no_grad(|| self.forward(&ids, &mask))?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = vectors[k].clone();
            }
        }
        Ok(out)
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Vec<Vec<f32>>, EncoderError> {
        let output = self
            .model
            .forward_t(Some(ids), Some(mask), None, None, None, None, None, false)
            .map_err(|e| EncoderError::Forward(e.to_string()))?;
        let layers = output
            .all_hidden_states
            .ok_or_else(|| EncoderError::Forward("no hidden states".into()))?;
        let m = mask.to_kind(Kind::Float).unsqueeze(-1);
        let count = m
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .clamp_min(1.0);
        let mut parts = Vec::new();
        for &layer in &self.spec.layers {
            let h = layers.get(layer).ok_or_else(|| {
                EncoderError::Forward(format!("layer {layer} of {} requested", layers.len()))
            })?;
            let mean = (h * &m).sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / &count;
            let norm = mean
                .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
                .clamp_min(1e-9);
            parts.push(mean / norm);
        }
        let all = Tensor::cat(&parts, 1).to_kind(Kind::Float).contiguous();
        let rows = all.size()[0] as usize;
        let dim = all.size()[1] as usize;
        let flat: Vec<f32> = Vec::<f32>::try_from(all.view([-1]))
            .map_err(|e| EncoderError::Forward(e.to_string()))?;
        Ok((0..rows)
            .map(|r| flat[r * dim..(r + 1) * dim].to_vec())
            .collect())
    }
}
