//! `gema train --tier bert` and `gema eval --tier bert|cascade` (needs the `bert` feature).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encoder::{bert_config, set_threads, Encoder};
use super::finetune::{check_start, finetune, frozen_states_cached, FinetuneConfig};
use super::head::{EncoderSpec, Head, TunedBlocks};
use super::mlp::train_mlp_head;
use super::tier::BertTier;
use super::train::{finish, train_head, DevVectors, HeadLog, HeadTrainConfig};
use crate::sentiment::cli::{ClassifyArgs, Decide, EvalArgs, Route, Tier, TrainArgs};
use crate::sentiment::data::{self, Example};
use crate::sentiment::manifest::{
    file_name, file_stem, hex, manifest_path, retrain_inputs, sha256_file, unix_now, InputFile,
    RetrainInputs,
};
use crate::sentiment::metrics::{self, Report};
use crate::sentiment::model::{load_model, FastModel, DEFAULT_MODEL_PATH};
use crate::sentiment::train::{out_of_fold, STACK_FOLDS};
use crate::sentiment::{lang, Label, Lang, Sentiment, SentimentModel};

/// A cache file stem for `texts` under `parts` (e.g. the encoder spec): the first 32 hex digits of
/// the SHA-256 of the parts, a probe of [`super::prepare`] (so a change to it misses the cache)
/// and the texts.
fn cache_key(parts: &[&[u8]], texts: &[&str]) -> String {
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
/// spec (embedding the training tweets takes minutes on two cores; re-runs take seconds).
/// Also says whether they came from the cache.
fn embed_cached(
    encoder: &Encoder,
    spec: &EncoderSpec,
    texts: &[&str],
    cache: &Path,
    what: &str,
) -> anyhow::Result<(Vec<Vec<f32>>, bool)> {
    let key = cache_key(&[&serde_json::to_vec(spec)?], texts);
    let path = cache.join(format!("{key}.f32"));
    let d = spec.dim();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == texts.len() * d * 4 {
            eprintln!(
                "Sentence vectors of {what}: {} rows from {}",
                texts.len(),
                path.display()
            );
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
        eprintln!(
            "Embedding {what}: {}/{} rows, {:.0} texts/s",
            out.len(),
            texts.len(),
            out.len() as f64 / s
        );
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let bytes: Vec<u8> = out.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok((out, false))
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
            lang != Lang::Other,
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

fn brief(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "file": r.file, "n": r.n, "scheme": r.scheme, "accuracy": r.accuracy,
        "macro_recall": r.macro_recall, "macro_f1": r.macro_f1, "neg_f1": r.neg_f1,
    })
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
        &mut |m| eprintln!("Fast tier out of fold, {m}"),
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
    eprintln!(
        "Fast tier out of fold: {} rows in {seconds:.1}s, macro-recall {:.4}",
        probs.len(),
        report.macro_recall
    );
    Ok((
        probs,
        serde_json::json!({
            "folds": STACK_FOLDS,
            "fold_of_row": "row index in its training file modulo folds",
            "fast_config": cfg,
            "rows": gold.len(),
            "seconds": seconds,
            "out_of_fold_fast_metrics": brief(&report),
        }),
    ))
}

/// Runs `gema train --tier bert`: embeds the training and dev rows in `--head-langs`, trains the
/// head, writes it and its manifest.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::DEFAULT_HEAD_PATH));
    set_threads(args.threads);
    let fast_path = args.fast_model.clone();
    let fast = load_model(&fast_path)?;
    let spec = EncoderSpec::default();
    let encoder = Encoder::load(&args.bert_model_dir, &spec, Path::new("."))?;
    let rel = |p: &Path| {
        p.strip_prefix(&args.data)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    // The transformer is English: by default Indonesian stays with the fast tier (see
    // docs/SENTIMENT.md, "Indonesian"); `--head-langs id` trains a head for it anyway.
    let langs = head_langs(&args.head_langs)?;
    let langs_csv = langs
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut train_rows: Vec<Example> = Vec::new();
    let mut train_inputs = Vec::new();
    for (path, ex) in files_in(&args.data.join("sentiment/train"), &langs)? {
        eprintln!(
            "Train file {}: {} rows in {:?}",
            rel(&path),
            ex.len(),
            langs
        );
        train_inputs.push(InputFile::hashed(&path, rel(&path), ex.len())?);
        train_rows.extend(ex);
    }
    let mut dev = Vec::new();
    let mut dev_texts: Vec<Vec<String>> = Vec::new();
    let mut dev_inputs = Vec::new();
    let mut dev_fast_reports = Vec::new();
    for (path, ex) in files_in(&args.data.join("sentiment/dev"), &langs)? {
        dev_inputs.push(InputFile::hashed(&path, rel(&path), ex.len())?);
        let name = file_stem(&path);
        let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
        let (x, _) = embed_cached(&encoder, &spec, &texts, &args.cache, &name)?;
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
    let (train_fast, stacking) = if args.head_fast_inputs {
        let (p, report) = out_of_fold_fast(&args.data, &fast, &fast_path, &langs)?;
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
    let (x, from_cache) = embed_cached(&encoder, &spec, &texts, &args.cache, "training rows")?;
    let embed_s = t_embed.elapsed().as_secs_f64();
    let y: Vec<Label> = train_rows.iter().map(|e| e.label).collect();
    let outcome = if args.head_hidden > 0 {
        let cfg = HeadTrainConfig {
            seed: args.seed,
            max_epochs: args.head_epochs,
            hidden: args.head_hidden,
            dropout: args.head_dropout,
            members: args.head_members,
            lr: 1e-3,
            l2: args.head_weight_decay,
            batch: 128,
            ..HeadTrainConfig::default()
        };
        let o = train_mlp_head(
            "bert-minilm-mlp-v1",
            &spec,
            langs,
            &x,
            train_fast.as_deref(),
            &y,
            &dev,
            &cfg,
            &mut |m| eprintln!("{m}"),
        )?;
        (o, cfg)
    } else {
        let cfg = HeadTrainConfig {
            seed: args.seed,
            max_epochs: args.head_epochs,
            ..HeadTrainConfig::default()
        };
        let o = train_head(
            "bert-minilm-lr-v1",
            &spec,
            langs,
            &x,
            train_fast.as_deref(),
            &y,
            &dev,
            &cfg,
            &mut |m| eprintln!("{m}"),
        );
        (o, cfg)
    };
    let (mut outcome, cfg) = outcome;
    let mut finetune_report = None;
    if args.finetune_blocks > 0 {
        let config = bert_config(&args.bert_model_dir)?;
        let total = config.num_hidden_layers as usize;
        anyhow::ensure!(
            args.finetune_blocks < total,
            "--finetune-blocks must be fewer than the checkpoint's {total} blocks"
        );
        let from_block = total - args.finetune_blocks;
        check_start(&outcome.head, from_block, total)?;
        drop(encoder);
        let frozen = Encoder::load_frozen(&args.bert_model_dir, &spec, from_block)?;
        let spec_key = serde_json::to_vec(&spec)?;
        let block_key = format!("frozen blocks {from_block} v1");
        let states_cached = |texts: &[&str], what: &str| {
            let key = cache_key(&[&spec_key, block_key.as_bytes()], texts);
            frozen_states_cached(
                &frozen,
                texts,
                &args.cache.join(format!("{key}.states.safetensors")),
                what,
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
            epochs: args.finetune_epochs,
            lr: args.finetune_lr,
            head_lr: 2.0 * args.finetune_lr,
            weight_decay: 0.01,
            batch: 32,
            evals_per_epoch: 4,
            warmup_share: 0.06,
            head_dropout: args.head_dropout as f64,
            seed: args.seed,
        };
        let ft = finetune(
            &args.bert_model_dir,
            &config,
            &outcome.head,
            &states,
            train_fast.as_deref(),
            &y,
            &dev,
            &dev_states,
            &fcfg,
            &mut |m| eprintln!("{m}"),
        )?;
        let blocks_path = out.with_file_name(format!("{}.blocks.safetensors", file_stem(&out)));
        if let Some(dir) = blocks_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        tch::Tensor::write_safetensors(&ft.blocks, &blocks_path)
            .with_context(|| format!("writing {}", blocks_path.display()))?;
        let blocks_sha256 = sha256_file(&blocks_path)?;
        let mut head = ft.head;
        head.name = "bert-minilm-ft-v1".into();
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
            &mut |m| eprintln!("{m}"),
        );
        finetune_report = Some(serde_json::json!({
            "config": fcfg,
            "best_checkpoint": ft.best_step,
            "blocks_file": file_name(&blocks_path),
            "blocks_bytes": std::fs::metadata(&blocks_path)?.len(),
            "blocks_sha256": blocks_sha256,
            "frozen_dev_metrics_head_only": frozen_outcome.dev_head_only.iter().map(brief).collect::<Vec<_>>(),
            "frozen_dev_metrics_fused": frozen_outcome.dev_fused.iter().map(brief).collect::<Vec<_>>(),
            "frozen_fast_weight": frozen_outcome.head.fast_weight,
        }));
    }
    let training_time_s = start.elapsed().as_secs_f64();
    outcome.head.save(&out)?;
    let cascade_curve = cascade_curve(&outcome.head, &dev);
    for r in &outcome.dev_fused {
        eprint!("{}", r.to_text());
    }
    let bytes = std::fs::metadata(&out)?.len();
    let manifest = Manifest {
        model: &outcome.head.name,
        file: file_name(&out),
        bytes,
        sha256: sha256_file(&out)?,
        gema_version: env!("CARGO_PKG_VERSION"),
        command: format!(
            "gema train --tier bert --data {} --out {} --seed {} --fast-model {} --threads {} \
             --head-hidden {} --head-epochs {} --head-dropout {} --head-weight-decay {} --head-members {} \
             --head-fast-inputs {} --head-langs {}{}",
            args.data.display(),
            out.display(),
            args.seed,
            fast_path.display(),
            args.threads,
            args.head_hidden,
            args.head_epochs,
            args.head_dropout,
            args.head_weight_decay,
            args.head_members,
            args.head_fast_inputs,
            langs_csv,
            if args.finetune_blocks > 0 {
                format!(
                    " --finetune-blocks {} --finetune-epochs {} --finetune-lr {}",
                    args.finetune_blocks, args.finetune_epochs, args.finetune_lr
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
        threads: args.threads,
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
        dev_metrics_head_only: outcome.dev_head_only.iter().map(brief).collect(),
        dev_metrics_fused: outcome.dev_fused.iter().map(brief).collect(),
        dev_metrics_fast: dev_fast_reports.iter().map(brief).collect(),
        cascade_curve,
        stacking,
        finetune: finetune_report,
        log: &outcome.log,
        notes: "Head: logistic regression (--head-hidden 0) or a one-hidden-layer ReLU MLP over \
                all-MiniLM-L6-v2 sentence vectors (mean of layers 4-6; the checkpoint frozen, or its top \
                blocks fine-tuned with the head when `finetune` is present), followed, when \
                `stacking` is present, by the fast tier's log-probabilities (out of fold for the \
                training rows), and fused with the fast tier's calibrated log-probabilities. \
                Trained on the rows of sentiment/train in the head's `langs` (English by default); \
                the other languages keep the fast tier.",
    };
    let mpath = manifest_path(&out);
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    std::fs::write(&mpath, json).with_context(|| format!("writing {}", mpath.display()))?;
    eprintln!(
        "Wrote {} ({:.0} kB) and {} in {:.1}s",
        out.display(),
        bytes as f64 / 1e3,
        mpath.display(),
        training_time_s
    );
    Ok(())
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

/// Resamples of the paired bootstrap behind `gema eval`'s gain over the fast tier.
const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The rows `tier` (bert: every row the head decides; cascade: those whose fast-tier
/// confidence is below `threshold`) sends to the transformer.
fn escalated(
    tier: &BertTier,
    kind: Tier,
    threshold: f32,
    langs: &[Lang],
    fast: &[Sentiment],
) -> Vec<usize> {
    (0..langs.len())
        .filter(|&i| tier.head().decides(langs[i]))
        .filter(|&i| kind == Tier::Bert || fast[i].confidence < threshold)
        .collect()
}

/// `gema classify --tier bert|cascade`: the fast model at `model` decides, and the transformer
/// re-decides the texts the tier escalates. Every text counts as one that matters (the
/// cascade's query and follower rules need a mention). `cascade` supplies the head, the
/// transformer's folder and the threshold that `args` leaves open.
pub fn decider(
    args: &ClassifyArgs,
    cascade: &crate::enrich::cascade::CascadeConfig,
    model: &Path,
) -> anyhow::Result<Box<Decide<'static>>> {
    set_threads(args.threads);
    let fast = std::sync::Arc::new(load_model(model)?);
    let head = args
        .head
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cascade.head));
    let dir = args
        .bert_model_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cascade.model_dir));
    let tier = BertTier::load(&dir, &head, fast.clone())?;
    let threshold = args.threshold.unwrap_or(cascade.confidence_below);
    let kind = args.tier;
    Ok(Box::new(move |items: &[(&str, Lang)], route: Route| {
        let fast_s: Vec<Sentiment> = items.iter().map(|&(t, l)| fast.classify(t, l)).collect();
        let langs: Vec<Lang> = items.iter().map(|&(_, l)| l).collect();
        let chosen = match route {
            Route::Tier => escalated(&tier, kind, threshold, &langs, &fast_s),
            Route::Fast => Vec::new(),
            Route::Transformer => escalated(&tier, Tier::Bert, threshold, &langs, &fast_s),
        };
        let batch: Vec<(&str, Lang)> = chosen.iter().map(|&i| items[i]).collect();
        let verdicts = if batch.is_empty() {
            Vec::new()
        } else {
            tier.classify_batch(&batch)?
        };
        let mut out: Vec<(Sentiment, bool)> = fast_s.into_iter().map(|s| (s, false)).collect();
        for (&i, v) in chosen.iter().zip(&verdicts) {
            out[i] = (v.sentiment, v.by_transformer);
        }
        Ok(out)
    }))
}

/// Runs `gema eval --tier bert|cascade`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    set_threads(args.threads);
    let fast = std::sync::Arc::new(load_model(&args.model)?);
    let tier = BertTier::load(&args.bert_model_dir, &args.head, fast.clone())?;
    let threshold = args
        .threshold
        .unwrap_or(crate::enrich::cascade::CascadeConfig::default().confidence_below);
    for path in &args.files {
        let examples = data::read_jsonl(path)?;
        let start = Instant::now();
        let langs: Vec<Lang> = examples
            .iter()
            .map(|e| match (args.gold_lang, e.lang) {
                (true, Some(l)) => l,
                _ => lang::detect(&e.text).0,
            })
            .collect();
        let fast_s: Vec<_> = examples
            .iter()
            .zip(&langs)
            .map(|(e, &l)| fast.classify(&e.text, l))
            .collect();
        let decided = escalated(&tier, args.tier, threshold, &langs, &fast_s);
        let items: Vec<(&str, Lang)> = decided
            .iter()
            .map(|&i| (examples[i].text.as_str(), langs[i]))
            .collect();
        let verdicts = tier.classify_batch(&items)?;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let fast_pred: Vec<Label> = fast_s.iter().map(|s| s.label).collect();
        let mut decisions = fast_s.clone();
        for (k, &i) in decided.iter().enumerate() {
            decisions[i] = verdicts[k].sentiment;
        }
        let pred: Vec<Label> = decisions.iter().map(|s| s.label).collect();
        let gold: Vec<Label> = examples.iter().map(|e| e.label).collect();
        let name = path.display().to_string();
        let mut report = metrics::score(&name, &gold, &pred, examples.len() as f64 / secs);
        report.negative_alerts = metrics::negative_alerts(&gold, &decisions);
        let tagged: Vec<(Lang, Lang)> = examples
            .iter()
            .zip(&langs)
            .filter_map(|(e, l)| e.lang.map(|g| (g, *l)))
            .collect();
        if !args.gold_lang && !tagged.is_empty() {
            let ok = tagged.iter().filter(|(g, l)| g == l).count();
            report.lang_accuracy = Some(ok as f64 / tagged.len() as f64);
        }
        let eligible = (0..examples.len())
            .filter(|&i| tier.head().decides(langs[i]))
            .count();
        let escalated_fraction = decided.len() as f64 / eligible.max(1) as f64;
        let gains = metrics::paired_bootstrap(&gold, &fast_pred, &pred, BOOTSTRAP_RESAMPLES, 42);
        if args.json {
            let mut v = serde_json::to_value(&report)?;
            let o = v.as_object_mut().expect("a report is an object");
            o.insert("tier".into(), args.tier.as_str().into());
            o.insert("transformer_rows".into(), decided.len().into());
            o.insert(
                "transformer_fraction_of_eligible".into(),
                escalated_fraction.into(),
            );
            o.insert("gain_over_fast".into(), serde_json::to_value(&gains)?);
            if args.tier == Tier::Cascade {
                o.insert("confidence_below".into(), threshold.into());
            }
            println!("{}", serde_json::to_string(&v)?);
        } else {
            print!("{}", report.to_text());
            println!(
                "  tier {}: transformer decided {} of {} rows in {} ({:.1} %){}",
                args.tier.as_str(),
                decided.len(),
                eligible,
                tier.head()
                    .langs
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                100.0 * escalated_fraction,
                if args.tier == Tier::Cascade {
                    format!(", fast-tier confidence below {threshold}")
                } else {
                    String::new()
                }
            );
            print!("{}", gains.to_text("fast tier"));
        }
    }
    let _ = DEFAULT_MODEL_PATH;
    Ok(())
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
