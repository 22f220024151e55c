//! The cache of computed sentence vectors under `gema train --tier bert --cache`: embedding the
//! training tweets takes minutes on two cores; re-runs read them back in seconds.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::encoder::Encoder;
use super::head::EncoderSpec;
use crate::sentiment::manifest::hex;

/// A cache file stem for `texts` under `parts` (e.g. the encoder spec): the first 32 hex digits of
/// the SHA-256 of the parts, a probe of [`super::prepare`] (so a change to it misses the cache)
/// and the texts.
pub fn cache_key(parts: &[&[u8]], texts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.update(super::prepare("v1 #probe @probe http://probe").as_bytes());
    for t in texts {
        h.update(t.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..16])
}

/// Sentence vectors of `texts`, cached under `cache` by a hash of the texts and the encoder
/// spec. Also says whether they came from the cache. `log` hears where they came from and how
/// embedding progresses; `what` names the texts there.
pub fn embed_cached(
    encoder: &Encoder,
    spec: &EncoderSpec,
    texts: &[&str],
    cache: &Path,
    what: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(Vec<Vec<f32>>, bool)> {
    let key = cache_key(&[&serde_json::to_vec(spec)?], texts);
    let path = cache.join(format!("{key}.f32"));
    let d = spec.dim();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == texts.len() * d * 4 {
            log(&format!(
                "Sentence vectors of {what}: {} rows from {}",
                texts.len(),
                path.display()
            ));
            let flat: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok((flat.chunks_exact(d).map(<[f32]>::to_vec).collect(), true));
        }
    }
    let start = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(4096) {
        out.extend(encoder.embed(chunk, 32)?);
        let s = start.elapsed().as_secs_f64();
        log(&format!(
            "Embedding {what}: {}/{} rows, {:.0} texts/s",
            out.len(),
            texts.len(),
            out.len() as f64 / s
        ));
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let bytes: Vec<u8> = out.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok((out, false))
}
