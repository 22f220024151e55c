//! The transformer: all-MiniLM-L6-v2 (a 6-layer English BERT) or multilingual-e5-small (a
//! 12-layer BERT over XLM-R's 250k pieces, ~100 languages) run by rust-bert on libtorch, turning
//! texts into fixed-size sentence vectors for the head in [`super::head`].
//!
//! Nothing is downloaded: the model folder (from `scripts/bert-deps.sh`) must hold
//! `config.json`, `model.safetensors` and the tokenizer: `vocab.txt` (MiniLM's word pieces) or
//! `tokenizer.json` (e5's unigram pieces, read by the `tokenizers` crate).

use std::path::{Path, PathBuf};

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer, TruncationStrategy};
use sha2::{Digest, Sha256};
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
    tokenizer: Pieces,
    model: BertModel<BertEmbeddings>,
    vs: nn::VarStore,
    spec: EncoderSpec,
}

/// The two tokenizers: MiniLM's uncased word pieces, e5's `tokenizer.json`.
enum Pieces {
    WordPiece(Box<BertTokenizer>),
    Json(Box<tokenizers::Tokenizer>),
}

/// Sets libtorch's intra-op thread count (process-wide).
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

impl Encoder {
    /// Loads the model in `dir` for `spec` (the layers and length the head was trained with).
    /// When `spec.tuned` names fine-tuned top layers, their weights are read from that file in
    /// `head_dir` (the head's folder) over the checkpoint's.
    pub fn load(dir: &Path, spec: &EncoderSpec, head_dir: &Path) -> Result<Encoder, EncoderError> {
        let mut config = bert_config(dir)?;
        // Sentence vectors pool several layers' outputs.
        config.output_hidden_states = Some(true);
        let mut enc = Encoder::load_blocks(dir, spec, config)?;
        if let Some(tuned) = &spec.tuned {
            enc.load_tuned(&head_dir.join(&tuned.file), &tuned.sha256)?;
        }
        Ok(enc)
    }

    /// Loads the checkpoint with only its first `blocks` transformer blocks: the frozen part
    /// whose outputs fine-tuning starts from ([`Encoder::last_states`]).
    pub fn load_frozen(
        dir: &Path,
        spec: &EncoderSpec,
        blocks: usize,
    ) -> Result<Encoder, EncoderError> {
        let mut config = bert_config(dir)?;
        config.num_hidden_layers = blocks as i64;
        Encoder::load_blocks(dir, spec, config)
    }

    fn load_blocks(
        dir: &Path,
        spec: &EncoderSpec,
        config: BertConfig,
    ) -> Result<Encoder, EncoderError> {
        let load_err = |path: PathBuf, reason: String| EncoderError::Load { path, reason };
        let found = EncoderSpec::for_model_dir(dir).model;
        if found != spec.model {
            return Err(load_err(
                dir.to_path_buf(),
                format!(
                    "the head was trained on {}, this folder holds {found} (point \
                     --bert-model-dir / enrich.cascade.model_dir at the head's checkpoint)",
                    spec.model
                ),
            ));
        }
        let vocab = dir.join("vocab.txt");
        let tokenizer = if vocab.is_file() {
            // all-MiniLM-L6-v2 is uncased: lower-case and strip accents like its HF tokenizer.
            Pieces::WordPiece(Box::new(
                BertTokenizer::from_file(&vocab, true, true)
                    .map_err(|e| load_err(vocab.clone(), e.to_string()))?,
            ))
        } else {
            let path = dir.join("tokenizer.json");
            Pieces::Json(Box::new(
                tokenizers::Tokenizer::from_file(&path)
                    .map_err(|e| load_err(path.clone(), e.to_string()))?,
            ))
        };
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = BertModel::<BertEmbeddings>::new(vs.root(), &config);
        let weights = dir.join("model.safetensors");
        vs.load(&weights)
            .map_err(|e| load_err(weights.clone(), e.to_string()))?;
        vs.freeze();
        Ok(Encoder {
            tokenizer,
            model,
            vs,
            spec: spec.clone(),
        })
    }

    /// Overwrites checkpoint weights with the fine-tuned ones in `path` (safetensors, any float
    /// kind), after checking its SHA-256 and that every tensor names a weight of the same shape.
    fn load_tuned(&mut self, path: &Path, sha256: &str) -> Result<(), EncoderError> {
        let load_err = |reason: String| EncoderError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            load_err(format!(
                "{e} (the fine-tuned layers belong next to the head file)"
            ))
        })?;
        let digest = crate::sentiment::manifest::hex(&Sha256::digest(&bytes));
        if digest != sha256 {
            return Err(load_err(format!(
                "SHA-256 {digest} does not match the head's {sha256}"
            )));
        }
        let tensors = Tensor::read_safetensors(path).map_err(|e| load_err(e.to_string()))?;
        if tensors.is_empty() {
            return Err(load_err("no tensors".into()));
        }
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for (name, t) in &tensors {
                let mut var = vars
                    .get(name)
                    .ok_or_else(|| load_err(format!("{name} is not a weight of the encoder")))?
                    .shallow_clone();
                if var.size() != t.size() {
                    return Err(load_err(format!(
                        "{name} has shape {:?}, the encoder's {:?}",
                        t.size(),
                        var.size()
                    )));
                }
                var.f_copy_(&t.to_kind(Kind::Float))
                    .map_err(|e| load_err(e.to_string()))?;
            }
            Ok(())
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
        let encoded = self.tokenize(texts);
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in length_sorted_chunks(&encoded, batch) {
            let (ids, mask) = pad_ids(chunk.iter().map(|&i| encoded[i].as_slice()));
            let vectors = tch::no_grad(|| self.forward(&ids, &mask))?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = vectors[k].clone();
            }
        }
        Ok(out)
    }

    /// Word-piece ids of `texts` (raw post text; prepared with [`prepare`]), `[CLS]` and
    /// `[SEP]` included, at most `spec.max_tokens` long.
    pub fn tokenize(&self, texts: &[&str]) -> Vec<Vec<i64>> {
        let prepared: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{}", self.spec.prefix, prepare(t)))
            .collect();
        match &self.tokenizer {
            Pieces::WordPiece(t) => t
                .encode_list(
                    &prepared,
                    self.spec.max_tokens,
                    &TruncationStrategy::LongestFirst,
                    0,
                )
                .into_iter()
                .map(|e| e.token_ids)
                .collect(),
            Pieces::Json(t) => prepared
                .iter()
                .map(|text| {
                    let ids: Vec<i64> = match t.encode(text.as_str(), true) {
                        Ok(e) => e.get_ids().iter().map(|&i| i as i64).collect(),
                        // The unigram model covers every character (unknown ones map to
                        // `<unk>`); an error here would be a broken tokenizer file.
                        Err(e) => panic!("tokenizer.json failed on a text: {e}"),
                    };
                    truncate_keeping_end(ids, self.spec.max_tokens)
                })
                .collect(),
        }
    }

    /// The last block's output for each text, without padding (`[tokens, hidden]`, float):
    /// with [`Encoder::load_frozen`], the input of the first fine-tuned block.
    pub fn last_states(&self, texts: &[&str], batch: usize) -> Result<Vec<Tensor>, EncoderError> {
        let encoded = self.tokenize(texts);
        let mut out: Vec<Option<Tensor>> = (0..texts.len()).map(|_| None).collect();
        for chunk in length_sorted_chunks(&encoded, batch) {
            let (ids, mask) = pad_ids(chunk.iter().map(|&i| encoded[i].as_slice()));
            let h = tch::no_grad(|| {
                self.model
                    .forward_t(Some(&ids), Some(&mask), None, None, None, None, None, false)
                    .map(|o| o.hidden_state)
                    .map_err(|e| EncoderError::Forward(e.to_string()))
            })?;
            for (k, &i) in chunk.iter().enumerate() {
                let len = encoded[i].len() as i64;
                out[i] = Some(h.get(k as i64).narrow(0, 0, len).contiguous());
            }
        }
        Ok(out.into_iter().map(|t| t.expect("every row run")).collect())
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Vec<Vec<f32>>, EncoderError> {
        let output = self
            .model
            .forward_t(Some(ids), Some(mask), None, None, None, None, None, false)
            .map_err(|e| EncoderError::Forward(e.to_string()))?;
        let layers = output
            .all_hidden_states
            .ok_or_else(|| EncoderError::Forward("no hidden states".into()))?;
        let mut parts = Vec::new();
        for &layer in &self.spec.layers {
            let h = layers.get(layer).ok_or_else(|| {
                EncoderError::Forward(format!("layer {layer} of {} requested", layers.len()))
            })?;
            parts.push(pool(h, mask));
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

/// At most `max` ids, the last one (`</s>`) kept at the end.
fn truncate_keeping_end(mut ids: Vec<i64>, max: usize) -> Vec<i64> {
    if ids.len() > max && max >= 2 {
        let last = *ids.last().expect("non-empty");
        ids.truncate(max - 1);
        ids.push(last);
    }
    ids
}

/// The BERT configuration in `dir/config.json`.
pub fn bert_config(dir: &Path) -> Result<BertConfig, EncoderError> {
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        "tokenizer.json"
    } else {
        "vocab.txt"
    };
    for file in ["config.json", tokenizer, "model.safetensors"] {
        if !dir.join(file).is_file() {
            return Err(EncoderError::Missing {
                dir: dir.to_path_buf(),
                file,
            });
        }
    }
    let path = dir.join("config.json");
    let load_err = |reason: String| EncoderError::Load {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| load_err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| load_err(e.to_string()))
}

/// Row indices in chunks of at most `batch`, sorted by length to keep padding small.
pub fn length_sorted_chunks(rows: &[Vec<i64>], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].len());
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// Right-padded `[rows, longest]` ids and their attention mask (1 = token, 0 = padding).
pub fn pad_ids<'a>(rows: impl Iterator<Item = &'a [i64]> + Clone) -> (Tensor, Tensor) {
    let len = rows.clone().map(<[i64]>::len).max().unwrap_or(1).max(1);
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    let mut n = 0i64;
    for t in rows {
        ids.extend(t.iter().copied());
        mask.extend(std::iter::repeat_n(1i64, t.len()));
        ids.extend(std::iter::repeat_n(0i64, len - t.len()));
        mask.extend(std::iter::repeat_n(0i64, len - t.len()));
        n += 1;
    }
    let ids = Tensor::from_slice(&ids).view([n, len as i64]);
    let mask = Tensor::from_slice(&mask).view([n, len as i64]);
    (ids, mask)
}

/// The mask-weighted mean over tokens of `h` (`[rows, tokens, hidden]`), L2-normalised:
/// one layer's part of a sentence vector.
pub fn pool(h: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    let count = m
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .clamp_min(1.0);
    let mean = (h * &m).sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / &count;
    let norm = mean
        .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
        .clamp_min(1e-9);
    mean / norm
}
