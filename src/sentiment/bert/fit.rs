//! Training the transformer's head from a data folder, as `gema train --tier bert` does: embeds
//! the labelled rows, trains the head (optionally stacked on the fast tier and with the top
//! transformer blocks fine-tuned), and writes it with its manifest next to it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::cache::{cache_key, embed_cached};
use super::encoder::{bert_config, set_threads, Encoder};
use super::finetune::{check_start, finetune, frozen_states_cached, FinetuneConfig};
use super::head::{EncoderSpec, Head, TunedBlocks};
use super::mlp::train_mlp_head;
use super::train::{finish, train_head, DevVectors, HeadLog, HeadTrainConfig};
use crate::sentiment::data::{self, Example};
use crate::sentiment::manifest::{
    file_name, file_stem, manifest_path, retrain_inputs, sha256_file, unix_now, InputFile,
    RetrainInputs,
};
use crate::sentiment::metrics::{self, Report};
use crate::sentiment::model::{load_model, FastModel};
use crate::sentiment::train::{out_of_fold, STACK_FOLDS};
use crate::sentiment::Label;
use crate::text::lang::Lang;

/// What [`train_bert`] trains on, how, and where it writes.
#[derive(Debug, Clone)]
pub struct BertTrainOptions {
    /// Data folder holding `sentiment/train/*.jsonl` and `sentiment/dev/*.jsonl`.
    pub data: PathBuf,
    /// Where the head goes; the manifest goes next to it as `<stem>.manifest.json`.
    pub out: PathBuf,
    /// The fast model the head is fused with.
    pub fast_model: PathBuf,
    /// The transformer's folder (config.json, vocab.txt, model.safetensors).
    pub bert_model_dir: PathBuf,
    /// libtorch threads.
    pub threads: usize,
    /// Cache of computed sentence vectors.
    pub cache: PathBuf,
    /// Hidden units of the head (0: logistic regression).
    pub head_hidden: usize,
    /// Most epochs of head training (dev picks the best).
    pub head_epochs: usize,
    /// MLP heads trained with consecutive seeds and averaged.
    pub head_members: usize,
    /// Dropout on the MLP head's hidden layer while training.
    pub head_dropout: f32,
    /// AdamW weight decay of the MLP head.
    pub head_weight_decay: f32,
    /// The languages the head learns and decides (`en` and/or `id`, as given).
    pub head_langs: Vec<String>,
    /// Stack the head on the fast tier's out-of-fold log-probabilities.
    pub head_fast_inputs: bool,
    /// Top transformer blocks fine-tuned with the MLP head (0: the checkpoint stays frozen).
    pub finetune_blocks: usize,
    /// Epochs of fine-tuning.
    pub finetune_epochs: usize,
    /// Peak learning rate of the fine-tuned blocks.
    pub finetune_lr: f64,
    /// Shuffling and initialisation seed.
    pub seed: u64,
}

/// What [`train_bert`] made.
#[derive(Debug)]
pub struct BertTrainReport {
    /// The head file written.
    pub out: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The manifest written next to it.
    pub manifest: PathBuf,
    /// Seconds from the start to the trained head.
    pub training_time_s: f64,
}

#[derive(Serialize)]
struct CascadePoint {
    confidence_below: f32,
    file: String,
    escalated_fraction: f64,
    macro_recall: f64,
    macro_f1: f64,
}

#[derive(Serialize)]
struct Manifest<'a> {
    model: &'a str,
    file: String,
    bytes: u64,
    sha256: String,
    gema_version: &'static str,
    command: String,
    created_unix_s: u64,
    training_time_s: f64,
    /// True when the training rows' sentence vectors were read from `--cache` (then
    /// `training_time_s` excludes embedding them).
    training_vectors_from_cache: bool,
    embedding_texts_per_s: Option<f64>,
    threads: usize,
    encoder: &'a EncoderSpec,
    fast_model: String,
    fast_model_sha256: String,
    train_inputs: Vec<InputFile>,
    dev_inputs: Vec<InputFile>,
    config: &'a HeadTrainConfig,
    best_epoch: usize,
    fast_weight: f32,
    temperature: f32,
    selection: &'static str,
    dev_metrics_head_only: Vec<serde_json::Value>,
    dev_metrics_fused: Vec<serde_json::Value>,
    dev_metrics_fast: Vec<serde_json::Value>,
    cascade_curve: Vec<CascadePoint>,
    /// With `--head-fast-inputs true`: how the fast tier's out-of-fold probabilities of the
    /// training rows were made.
    #[serde(skip_serializing_if = "Option::is_none")]
    stacking: Option<serde_json::Value>,
    /// With `--finetune-blocks`: what fine-tuning did (the head-training fields above then
    /// describe the fine-tuned head; `frozen_*` the head it started from).
    #[serde(skip_serializing_if = "Option::is_none")]
    finetune: Option<serde_json::Value>,
    log: &'a [HeadLog],
    notes: &'static str,
}

/// `--head-langs`: English and/or Indonesian, each once.
fn head_langs(values: &[String]) -> anyhow::Result<Vec<Lang>> {
    let mut langs = Vec::new();
    for v in values {
        let lang = Lang::from_hint(v);
        anyhow::ensure!(
            lang.is_scored(),
            "--head-langs: `{v}` is not a language the head can learn (use en and/or id)"
        );
        if !langs.contains(&lang) {
            langs.push(lang);
        }
    }
    anyhow::ensure!(!langs.is_empty(), "--head-langs: name en and/or id");
    Ok(langs)
}

/// The labelled files in `dir` with their rows in `langs` (files with none left out).
fn files_in(dir: &Path, langs: &[Lang]) -> anyhow::Result<Vec<(PathBuf, Vec<Example>)>> {
    let mut out = Vec::new();
    for path in data::jsonl_files(dir)? {
        let ex: Vec<Example> = data::read_jsonl(&path)?
            .into_iter()
            .filter(|e| e.lang.is_some_and(|l| langs.contains(&l)))
            .collect();
        if !ex.is_empty() {
            out.push((path, ex));
        }
    }
    Ok(out)
}

/// The fast tier's out-of-fold probabilities of the training rows in `langs` (in
/// [`files_in`]'s order), for a stacked head: the fast model at `fast_path` is retrained
/// [`STACK_FOLDS`] times with the configuration its manifest records, each time without one
/// fold of every file in `sentiment/train`. Also says what was done, for the manifest.
fn out_of_fold_fast(
    data_dir: &Path,
    fast: &FastModel,
    fast_path: &Path,
    langs: &[Lang],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(Vec<[f32; 3]>, serde_json::Value)> {
    let start = Instant::now();
    let RetrainInputs {
        config: cfg,
        train: train_sets,
        dev: dev_sets,
    } = retrain_inputs(data_dir, fast_path).context(
        "a stacked head retrains the fast model with the configuration its manifest records \
         (or pass --head-fast-inputs false)",
    )?;
    let wanted = |e: &Example| e.lang.is_some_and(|l| langs.contains(&l));
    let oof = out_of_fold(
        fast.featurizer().lexicons(),
        &train_sets,
        &dev_sets,
        &cfg,
        STACK_FOLDS,
        &wanted,
        &mut |m| log(&format!("Fast tier out of fold, {m}")),
    );
    let (mut probs, mut gold) = (Vec::new(), Vec::new());
    for ((_, ex), p) in train_sets.iter().zip(oof) {
        for (e, p) in ex.iter().zip(p) {
            if let Some(p) = p {
                probs.push(p);
                gold.push(e.label);
            }
        }
    }
    let pred: Vec<Label> = probs
        .iter()
        .map(|&p| FastModel::sentiment(p).label)
        .collect();
    let report = metrics::score("training rows, out of fold", &gold, &pred, 0.0);
    let seconds = start.elapsed().as_secs_f64();
    log(&format!(
        "Fast tier out of fold: {} rows in {seconds:.1}s, macro-recall {:.4}",
        probs.len(),
        report.macro_recall
    ));
    Ok((
        probs,
        serde_json::json!({
            "folds": STACK_FOLDS,
            "fold_of_row": "row index in its training file modulo folds",
            "fast_config": cfg,
            "rows": gold.len(),
            "seconds": seconds,
            "out_of_fold_fast_metrics": report.brief(),
        }),
    ))
}

/// Trains the transformer's head as `gema train --tier bert` does: embeds the training and dev
/// rows in `options.head_langs`, trains the head (and fine-tunes the top blocks when asked), writes
/// it and its manifest. `log` hears the training files, the progress, and the fused dev scores
/// (a report's lines) as soon as the head is written.
pub fn train_bert(
    options: &BertTrainOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<BertTrainReport> {
    let start = Instant::now();
    let out = options.out.clone();
    set_threads(options.threads);
    let fast_path = options.fast_model.clone();
    let fast = load_model(&fast_path)?;
    // MiniLM or multilingual-e5-small, by what the model folder holds.
    let spec = EncoderSpec::for_model_dir(&options.bert_model_dir);
    // The head's name, recorded on each mention it decides, says which checkpoint it reads.
    let family = if spec.model == super::head::E5_MODEL {
        "e5"
    } else {
        "minilm"
    };
    let encoder = Encoder::load(&options.bert_model_dir, &spec, Path::new("."))?;
    log(&format!(
        "Transformer: {} (layers {:?} pooled{})",
        spec.model,
        spec.layers,
        if spec.prefix.is_empty() {
            String::new()
        } else {
            format!(", prefix {:?}", spec.prefix)
        }
    ));
    let rel = |p: &Path| {
        p.strip_prefix(&options.data)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    // The transformer is English: by default Indonesian stays with the fast tier (see
    // docs/SENTIMENT.md, "Indonesian"); `--head-langs id` trains a head for it anyway.
    let langs = head_langs(&options.head_langs)?;
    let langs_csv = langs
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut train_rows: Vec<Example> = Vec::new();
    let mut train_inputs = Vec::new();
    for (path, ex) in files_in(&options.data.join("sentiment/train"), &langs)? {
        let rows = ex.len();
        // As the fast tier trains: the held-out slice out, the brand placeholder in.
        let (kept, held) = data::training_rows(ex);
        log(&format!(
            "Train file {}: {rows} rows in {langs:?} ({} held out, never trained on)",
            rel(&path),
            held.len(),
        ));
        train_inputs.push(InputFile::hashed(&path, rel(&path), rows)?);
        train_rows.extend(kept);
    }
    let mut dev = Vec::new();
    let mut dev_texts: Vec<Vec<String>> = Vec::new();
    let mut dev_inputs = Vec::new();
    let mut dev_fast_reports = Vec::new();
    for (path, ex) in files_in(&options.data.join("sentiment/dev"), &langs)? {
        dev_inputs.push(InputFile::hashed(&path, rel(&path), ex.len())?);
        let name = file_stem(&path);
        let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
        let (x, _) = embed_cached(&encoder, &spec, &texts, &options.cache, &name, log)?;
        let fast_probs: Vec<[f32; 3]> = ex
            .iter()
            .map(|e| fast.probabilities(&e.text, e.lang.unwrap_or(Lang::En)))
            .collect();
        let gold: Vec<Label> = ex.iter().map(|e| e.label).collect();
        let fast_pred: Vec<Label> = fast_probs
            .iter()
            .map(|&p| FastModel::sentiment(p).label)
            .collect();
        dev_fast_reports.push(metrics::score(&name, &gold, &fast_pred, 0.0));
        dev_texts.push(ex.iter().map(|e| e.text.clone()).collect());
        dev.push(DevVectors {
            name,
            gold,
            x,
            fast: fast_probs,
        });
    }
    let (train_fast, stacking) = if options.head_fast_inputs {
        let (p, report) = out_of_fold_fast(&options.data, &fast, &fast_path, &langs, log)?;
        anyhow::ensure!(
            p.len() == train_rows.len(),
            "out-of-fold rows {} != training rows {}",
            p.len(),
            train_rows.len()
        );
        (Some(p), Some(report))
    } else {
        (None, None)
    };
    let texts: Vec<&str> = train_rows.iter().map(|e| e.text.as_str()).collect();
    let t_embed = Instant::now();
    let (x, from_cache) = embed_cached(
        &encoder,
        &spec,
        &texts,
        &options.cache,
        "training rows",
        log,
    )?;
    let embed_s = t_embed.elapsed().as_secs_f64();
    let y: Vec<Label> = train_rows.iter().map(|e| e.label).collect();
    let outcome = if options.head_hidden > 0 {
        let cfg = HeadTrainConfig {
            seed: options.seed,
            max_epochs: options.head_epochs,
            hidden: options.head_hidden,
            dropout: options.head_dropout,
            members: options.head_members,
            lr: 1e-3,
            l2: options.head_weight_decay,
            batch: 128,
            ..HeadTrainConfig::default()
        };
        let o = train_mlp_head(
            &format!("bert-{family}-mlp-v1"),
            &spec,
            langs,
            &x,
            train_fast.as_deref(),
            &y,
            &dev,
            &cfg,
            &mut |m| log(&m),
        )?;
        (o, cfg)
    } else {
        let cfg = HeadTrainConfig {
            seed: options.seed,
            max_epochs: options.head_epochs,
            ..HeadTrainConfig::default()
        };
        let o = train_head(
            &format!("bert-{family}-lr-v1"),
            &spec,
            langs,
            &x,
            train_fast.as_deref(),
            &y,
            &dev,
            &cfg,
            &mut |m| log(&m),
        );
        (o, cfg)
    };
    let (mut outcome, cfg) = outcome;
    let mut finetune_report = None;
    if options.finetune_blocks > 0 {
        let config = bert_config(&options.bert_model_dir)?;
        let total = config.num_hidden_layers as usize;
        anyhow::ensure!(
            options.finetune_blocks < total,
            "--finetune-blocks must be fewer than the checkpoint's {total} blocks"
        );
        let from_block = total - options.finetune_blocks;
        check_start(&outcome.head, from_block, total)?;
        drop(encoder);
        let frozen = Encoder::load_frozen(&options.bert_model_dir, &spec, from_block)?;
        let spec_key = serde_json::to_vec(&spec)?;
        let block_key = format!("frozen blocks {from_block} v1");
        let mut states_cached = |texts: &[&str], what: &str| {
            let key = cache_key(&[&spec_key, block_key.as_bytes()], texts);
            frozen_states_cached(
                &frozen,
                texts,
                &options.cache.join(format!("{key}.states.safetensors")),
                what,
                &mut *log,
            )
        };
        let states = states_cached(&texts, "training rows")?;
        let mut dev_states = Vec::new();
        for (d, t) in dev.iter().zip(&dev_texts) {
            let t: Vec<&str> = t.iter().map(String::as_str).collect();
            dev_states.push(states_cached(&t, &d.name)?);
        }
        drop(frozen);
        let fcfg = FinetuneConfig {
            from_block,
            epochs: options.finetune_epochs,
            lr: options.finetune_lr,
            head_lr: 2.0 * options.finetune_lr,
            weight_decay: 0.01,
            batch: 32,
            evals_per_epoch: 4,
            warmup_share: 0.06,
            head_dropout: options.head_dropout as f64,
            seed: options.seed,
        };
        let ft = finetune(
            &options.bert_model_dir,
            &config,
            &outcome.head,
            &states,
            train_fast.as_deref(),
            &y,
            &dev,
            &dev_states,
            &fcfg,
            &mut |m| log(&m),
        )?;
        let blocks_path = out.with_file_name(format!("{}.blocks.safetensors", file_stem(&out)));
        if let Some(dir) = blocks_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        tch::Tensor::write_safetensors(&ft.blocks, &blocks_path)
            .with_context(|| format!("writing {}", blocks_path.display()))?;
        let blocks_sha256 = sha256_file(&blocks_path)?;
        let mut head = ft.head;
        head.name = format!("bert-{family}-ft-v1");
        head.encoder.tuned = Some(TunedBlocks {
            from_block,
            file: file_name(&blocks_path),
            sha256: blocks_sha256.clone(),
        });
        for (d, x) in dev.iter_mut().zip(ft.dev_x) {
            d.x = x;
        }
        let frozen_outcome = outcome;
        let mut logs = frozen_outcome.log.clone();
        logs.extend(ft.log.iter().cloned());
        outcome = finish(
            head,
            frozen_outcome.best_epoch,
            logs,
            &dev,
            &cfg,
            &mut |m| log(&m),
        );
        finetune_report = Some(serde_json::json!({
            "config": fcfg,
            "best_checkpoint": ft.best_step,
            "blocks_file": file_name(&blocks_path),
            "blocks_bytes": std::fs::metadata(&blocks_path)?.len(),
            "blocks_sha256": blocks_sha256,
            "frozen_dev_metrics_head_only": frozen_outcome.dev_head_only.iter().map(Report::brief).collect::<Vec<_>>(),
            "frozen_dev_metrics_fused": frozen_outcome.dev_fused.iter().map(Report::brief).collect::<Vec<_>>(),
            "frozen_fast_weight": frozen_outcome.head.fast_weight,
        }));
    }
    let training_time_s = start.elapsed().as_secs_f64();
    outcome.head.save(&out)?;
    let cascade_curve = cascade_curve(&outcome.head, &dev);
    for r in &outcome.dev_fused {
        let text = r.to_text();
        log(text.strip_suffix('\n').unwrap_or(&text));
    }
    let bytes = std::fs::metadata(&out)?.len();
    let manifest = Manifest {
        model: &outcome.head.name,
        file: file_name(&out),
        bytes,
        sha256: sha256_file(&out)?,
        gema_version: env!("CARGO_PKG_VERSION"),
        command: format!(
            "gema train --tier bert --data {} --out {} --seed {} --fast-model {} \
             --bert-model-dir {} --threads {} --head-hidden {} --head-epochs {} --head-dropout {} \
             --head-weight-decay {} --head-members {} --head-fast-inputs {} --head-langs {}{}",
            options.data.display(),
            out.display(),
            options.seed,
            fast_path.display(),
            options.bert_model_dir.display(),
            options.threads,
            options.head_hidden,
            options.head_epochs,
            options.head_dropout,
            options.head_weight_decay,
            options.head_members,
            options.head_fast_inputs,
            langs_csv,
            if options.finetune_blocks > 0 {
                format!(
                    " --finetune-blocks {} --finetune-epochs {} --finetune-lr {}",
                    options.finetune_blocks, options.finetune_epochs, options.finetune_lr
                )
            } else {
                String::new()
            }
        ),
        created_unix_s: unix_now(),
        training_time_s,
        training_vectors_from_cache: from_cache,
        // Only meaningful when the vectors were computed, not read from the cache.
        embedding_texts_per_s: (!from_cache).then(|| texts.len() as f64 / embed_s),
        threads: options.threads,
        encoder: &spec,
        fast_model: fast_path.display().to_string(),
        fast_model_sha256: sha256_file(&fast_path)?,
        train_inputs,
        dev_inputs,
        config: &cfg,
        best_epoch: outcome.best_epoch,
        fast_weight: outcome.head.fast_weight,
        temperature: outcome.head.temperature,
        selection: "mean over the English dev files, weighted by sqrt(rows), of (macro-recall + \
                    macro-F1) / 2; picks the epoch, then the fast-tier fusion weight; the \
                    temperature minimises dev NLL",
        dev_metrics_head_only: outcome.dev_head_only.iter().map(Report::brief).collect(),
        dev_metrics_fused: outcome.dev_fused.iter().map(Report::brief).collect(),
        dev_metrics_fast: dev_fast_reports.iter().map(Report::brief).collect(),
        cascade_curve,
        stacking,
        finetune: finetune_report,
        log: &outcome.log,
        notes: "Head: logistic regression (--head-hidden 0) or a one-hidden-layer ReLU MLP over \
                the transformer's sentence vectors (encoder.model: the mean-pooled layers in \
                encoder.layers; the checkpoint frozen, or its top blocks fine-tuned with the head when `finetune` is present), followed, when \
                `stacking` is present, by the fast tier's log-probabilities (out of fold for the \
                training rows), and fused with the fast tier's calibrated log-probabilities. \
                Trained on the rows of sentiment/train in the head's `langs` (English by default); \
                the other languages keep the fast tier.",
    };
    let mpath = manifest_path(&out);
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    std::fs::write(&mpath, json).with_context(|| format!("writing {}", mpath.display()))?;
    Ok(BertTrainReport {
        out,
        bytes,
        manifest: mpath,
        training_time_s,
    })
}

/// Macro-recall and escalated share of the cascade on each dev file for a range of thresholds.
fn cascade_curve(head: &Head, dev: &[DevVectors]) -> Vec<CascadePoint> {
    // Each row's fast-tier verdict and transformer verdict, computed once for every threshold.
    let verdicts: Vec<Vec<(f32, Label, Label)>> = dev
        .iter()
        .map(|d| {
            d.x.iter()
                .zip(&d.fast)
                .map(|(x, &f)| {
                    let s = FastModel::sentiment(f);
                    (s.confidence, s.label, head.decide(x, f).label)
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for k in 8..=16 {
        let thr = k as f32 * 0.05;
        for (d, v) in dev.iter().zip(&verdicts) {
            let mut escalated = 0usize;
            let pred: Vec<Label> = v
                .iter()
                .map(|&(confidence, fast, bert)| {
                    if confidence < thr {
                        escalated += 1;
                        bert
                    } else {
                        fast
                    }
                })
                .collect();
            let r = metrics::score(&d.name, &d.gold, &pred, 0.0);
            out.push(CascadePoint {
                confidence_below: thr,
                file: d.name.clone(),
                escalated_fraction: escalated as f64 / d.x.len().max(1) as f64,
                macro_recall: r.macro_recall,
                macro_f1: r.macro_f1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_langs_are_english_and_or_indonesian() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(head_langs(&v(&["en"])).unwrap(), vec![Lang::En]);
        assert_eq!(
            head_langs(&v(&["id", "en", "id"])).unwrap(),
            vec![Lang::Id, Lang::En]
        );
        let err = head_langs(&v(&["en", "fr"])).unwrap_err().to_string();
        assert!(
            err.contains("`fr`") && err.contains("--head-langs"),
            "{err}"
        );
    }
}
