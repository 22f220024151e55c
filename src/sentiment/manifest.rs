//! What a trained model's manifest records about its files: SHA-256 digests, the input files of
//! a training run, where the manifest of a model lives, and reading back from a manifest what is
//! needed to retrain the model it describes.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::data::{self, DataError};
use super::train::TrainConfig;

/// Why a file could not be hashed or a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{manifest} does not describe {model} (its sha256 differs)")]
    Mismatch { manifest: PathBuf, model: PathBuf },
    #[error("{path}: no valid `chosen` configuration: {source}")]
    Chosen {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The manifest path that belongs to a model path (`x.bin` → `x.manifest.json`).
pub fn manifest_path(model: &Path) -> PathBuf {
    let stem = file_stem(model);
    model.with_file_name(format!("{stem}.manifest.json"))
}

/// SHA-256 of the file at `path`, lower-case hexadecimal (as manifests record it).
pub fn sha256_file(path: &Path) -> Result<String, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Lower-case hexadecimal of `bytes` (SHA-256 digests in manifests and cache keys).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name of `path` without its extension, lossily as UTF-8 ("" when it has none).
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file name of `path`, lossily as UTF-8 ("" when it has none).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Seconds since the Unix epoch, for manifests.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One input file of a training run, as its manifest lists it.
#[derive(Serialize)]
pub struct InputFile {
    file: String,
    rows: usize,
    sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<std::collections::BTreeMap<&'static str, usize>>,
}

impl InputFile {
    /// `path` (named `file` in the manifest) with `rows` rows, hashed.
    pub fn hashed(path: &Path, file: String, rows: usize) -> Result<InputFile, ManifestError> {
        Ok(InputFile {
            file,
            rows,
            sha256: sha256_file(path)?,
            labels: None,
        })
    }

    /// `path` (named `file` in the manifest) holding `examples`, hashed, with its label counts.
    pub fn labelled(
        path: &Path,
        file: String,
        examples: &[data::Example],
    ) -> Result<InputFile, ManifestError> {
        Ok(InputFile {
            file,
            rows: examples.len(),
            sha256: sha256_file(path)?,
            labels: Some(data::label_counts(examples)),
        })
    }

    /// The file's name as the manifest lists it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Its number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Every labelled file of a data folder (`DIR/*.jsonl`), by file stem, in name order.
pub type LabelledSets = Vec<(String, Vec<data::Example>)>;

/// What [`super::train::out_of_fold`] needs to retrain the fast model at `model` exactly as it
/// was made: the configuration its manifest chose (the manifest must describe that file: its
/// `sha256` is checked) and the `sentiment/train` and `sentiment/dev` files under `data_dir`.
pub struct RetrainInputs {
    pub config: TrainConfig,
    pub train: LabelledSets,
    pub dev: LabelledSets,
}

/// Reads the [`RetrainInputs`] of the fast model at `model` from its manifest and `data_dir`.
pub fn retrain_inputs(data_dir: &Path, model: &Path) -> Result<RetrainInputs, ManifestError> {
    let mpath = manifest_path(model);
    let bytes = std::fs::read(&mpath).map_err(|source| ManifestError::Read {
        path: mpath.clone(),
        source,
    })?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse {
            path: mpath.clone(),
            source,
        })?;
    if manifest["sha256"].as_str() != Some(sha256_file(model)?.as_str()) {
        return Err(ManifestError::Mismatch {
            manifest: mpath,
            model: model.to_path_buf(),
        });
    }
    let config: TrainConfig =
        serde_json::from_value(manifest["chosen"].clone()).map_err(|source| {
            ManifestError::Chosen {
                path: mpath.clone(),
                source,
            }
        })?;
    // The training rows exactly as `gema train` used them (held-out slice out, placeholder in).
    let read_all = |dir: &Path, train: bool| -> Result<LabelledSets, ManifestError> {
        data::jsonl_files(dir)?
            .iter()
            .map(|p| {
                let rows = data::read_jsonl(p)?;
                let rows = if train {
                    data::training_rows(rows).0
                } else {
                    rows
                };
                Ok((file_stem(p), rows))
            })
            .collect()
    };
    Ok(RetrainInputs {
        config,
        train: read_all(&data_dir.join("sentiment/train"), true)?,
        dev: read_all(&data_dir.join("sentiment/dev"), false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_sits_next_to_model() {
        assert_eq!(
            manifest_path(Path::new("models/sentiment-fast.bin")),
            PathBuf::from("models/sentiment-fast.manifest.json")
        );
    }
}
