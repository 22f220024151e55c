//! `gema train`, `gema eval` and `gema classify`: argument structs and their implementations.
//!
//! `main.rs` only wires [`TrainArgs`]/[`EvalArgs`] into its command enum and calls
//! [`run_train`]/[`run_eval`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::data;
use super::explain::{word_effects, WordEffect};
use super::features::FeatureConfig;
use super::lang;
use super::manifest::{file_name, file_stem, manifest_path, sha256_file, unix_now, InputFile};
use super::metrics;
use super::model::{load_model, FastModel, DEFAULT_MODEL_PATH};
use super::train::{self, TrainConfig};
use super::{Label, Lang, Sentiment, SentimentModel};

/// Which sentiment tier a command trains or evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// The fast classifier (hashed n-grams + lexicons), every mention.
    Fast,
    /// The transformer head fused with the fast tier, every English row (needs `--features bert`).
    Bert,
    /// The fast tier, with the transformer on English rows where the fast tier is unsure.
    Cascade,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Bert => "bert",
            Tier::Cascade => "cascade",
        }
    }
}

/// The transformer's folder: `GEMA_BERT_MODEL_DIR`, else where `scripts/bert-deps.sh` puts it.
fn default_bert_dir() -> PathBuf {
    std::env::var_os("GEMA_BERT_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(super::bert::DEFAULT_MODEL_DIR))
}

/// Arguments of `gema train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Data folder holding `sentiment/train/*.jsonl`, `sentiment/dev/*.jsonl` and `lexicons/`.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// `fast` trains the fast model; `bert` trains the transformer's head (needs the fast model
    /// and `--features bert`).
    #[arg(long, default_value = "fast", value_parser = ["fast", "bert"])]
    pub tier: String,
    /// Where to write the model (default `models/sentiment-fast.bin`, or
    /// `models/sentiment-bert.json` for `--tier bert`); the manifest goes next to it as
    /// `<stem>.manifest.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `--tier bert`: the fast model the head is fused with.
    #[arg(long, default_value = DEFAULT_MODEL_PATH)]
    pub fast_model: PathBuf,
    /// `--tier bert`: the transformer's folder (config.json, vocab.txt, model.safetensors).
    #[arg(long, default_value_os_t = default_bert_dir())]
    pub bert_model_dir: PathBuf,
    /// `--tier bert`: libtorch threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// `--tier bert`: cache of computed sentence vectors.
    #[arg(long, default_value = ".gema/bert/cache")]
    pub cache: PathBuf,
    /// `--tier bert`: hidden units of the head (0: logistic regression).
    #[arg(long, default_value_t = 256)]
    pub head_hidden: usize,
    /// `--tier bert`: most epochs of head training (dev picks the best).
    #[arg(long, default_value_t = 20)]
    pub head_epochs: usize,
    /// `--tier bert`: MLP heads trained with consecutive seeds and averaged (fine-tuning
    /// takes 1).
    #[arg(long, default_value_t = 5)]
    pub head_members: usize,
    /// `--tier bert`: dropout on the MLP head's hidden layer while training.
    #[arg(long, default_value_t = 0.1)]
    pub head_dropout: f32,
    /// `--tier bert`: AdamW weight decay of the MLP head.
    #[arg(long, default_value_t = 0.01)]
    pub head_weight_decay: f32,
    /// `--tier bert`: the languages the head learns and decides, comma-separated: `en` (the
    /// default; the checkpoint is English) and/or `id`. Training and dev rows come from the
    /// files' `lang` field. An Indonesian head gains on SmSA's reviews and loses on IndoLEM's
    /// and NusaX's tweets (docs/SENTIMENT.md), so the committed head is English only.
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub head_langs: Vec<String>,
    /// `--tier bert`: stack the head on the fast tier: it reads the fast tier's log-probabilities
    /// after the sentence vector, learnt from out-of-fold fast-tier probabilities of the training
    /// rows (5 fast models, each trained without one fifth of `sentiment/train` with the
    /// configuration in the fast model's manifest). `false`: the sentence vector alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub head_fast_inputs: bool,
    /// `--tier bert`: fine-tune this many top transformer blocks with the MLP head (0: keep
    /// the checkpoint frozen; otherwise 2–5, as the head pools layers 3–5); the blocks go next
    /// to the head as `<stem>.blocks.safetensors`. Five blocks take about 27 min on 2 cores; the
    /// committed head is `--head-members 1 --finetune-blocks 5 --finetune-epochs 3
    /// --finetune-lr 1e-4` (30 min, release build).
    #[arg(long, default_value_t = 0)]
    pub finetune_blocks: usize,
    /// `--tier bert`: epochs of fine-tuning (dev picks the best of 4 checkpoints per epoch).
    #[arg(long, default_value_t = 2)]
    pub finetune_epochs: usize,
    /// `--tier bert`: peak learning rate of the fine-tuned blocks.
    #[arg(long, default_value_t = 5e-5)]
    pub finetune_lr: f64,
    /// Most training epochs per configuration (the best epoch on dev is kept).
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Shuffling seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// log2 of the number of feature hash buckets.
    #[arg(long, default_value_t = 20)]
    pub buckets_log2: u32,
    /// Experiments only: replace the built-in grid by one configuration with this learning rate.
    #[arg(long, hide = true)]
    pub lr: Option<f32>,
    /// Experiments only: L2 penalty.
    #[arg(long, hide = true)]
    pub l2: Option<f32>,
    /// Experiments only: class-weight power.
    #[arg(long, hide = true)]
    pub class_weight_power: Option<f32>,
    /// Experiments only: class-weight power for Indonesian training files.
    #[arg(long, hide = true)]
    pub class_weight_power_id: Option<f32>,
    /// Experiments only: class-weight power for negative/positive-only training files.
    #[arg(long, hide = true)]
    pub class_weight_power_binary: Option<f32>,
    /// Experiments only: hold out every 10th row of each training file and select/report on
    /// those slices instead of the dev files (for fitting knobs without touching dev).
    #[arg(long, hide = true)]
    pub holdout: bool,
    /// Experiments only: visits of each Indonesian training row per epoch.
    #[arg(long, hide = true)]
    pub id_repeat: Option<usize>,
    /// Experiments only: word trigrams on.
    #[arg(long, hide = true)]
    pub word_trigrams: bool,
    /// Experiments only: ensemble size.
    #[arg(long, hide = true)]
    pub ensemble: Option<usize>,
    /// Experiments only: character n-gram weight.
    #[arg(long, hide = true)]
    pub char_weight: Option<f32>,
    /// Experiments only: shortest character n-gram.
    #[arg(long, hide = true)]
    pub char_min: Option<usize>,
    /// Experiments only: longest character n-gram.
    #[arg(long, hide = true)]
    pub char_max: Option<usize>,
}

/// Arguments of `gema classify`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClassifyArgs {
    /// Texts to classify. None: one text per line on stdin.
    pub texts: Vec<String>,
    /// Read stdin as JSON lines with a `text` field and an optional `lang` (`en`/`id`), such as
    /// a replay feed or a labelled file, instead of plain lines.
    #[arg(long)]
    pub jsonl: bool,
    /// The language of every text: `auto` detects it per text, as the enrich stage does (a
    /// `lang` field read with `--jsonl` wins over detection).
    #[arg(long, default_value = "auto", value_parser = ["auto", "en", "id"])]
    pub lang: String,
    /// The sentiment model file, or `builtin` for the built-in lexicon. Default: the
    /// configuration's `enrich.sentiment_model`.
    #[arg(long)]
    pub model: Option<String>,
    /// Which tier decides (`bert` and `cascade` need `--features bert`).
    #[arg(long, value_enum, default_value_t = Tier::Fast)]
    pub tier: Tier,
    /// The transformer head. Default: the configuration's `enrich.cascade.head`.
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// The transformer's folder. Default: the configuration's `enrich.cascade.model_dir`.
    #[arg(long)]
    pub bert_model_dir: Option<PathBuf>,
    /// `--tier cascade`: escalate texts whose fast-tier confidence is below this. Default: the
    /// configuration's `enrich.cascade.confidence_below`.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// libtorch threads for the transformer.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also list the words that moved the polarity score most: each word is left out in turn
    /// and the rest re-scored in the same language.
    #[arg(long)]
    pub explain: bool,
    /// Print one JSON object per text instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gema eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// JSONL files with `text`, `label` and optionally `lang`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The fast model (evaluated alone with `--tier fast`, fused with the transformer otherwise).
    #[arg(long, default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Which tier decides (`bert` and `cascade` need `--features bert`).
    #[arg(long, value_enum, default_value_t = Tier::Fast)]
    pub tier: Tier,
    /// The transformer head made by `gema train --tier bert`.
    #[arg(long, default_value = super::bert::DEFAULT_HEAD_PATH)]
    pub head: PathBuf,
    /// The transformer's folder (config.json, vocab.txt, model.safetensors).
    #[arg(long, default_value_os_t = default_bert_dir())]
    pub bert_model_dir: PathBuf,
    /// `--tier cascade`: escalate rows whose fast-tier confidence is below this (default:
    /// `enrich.cascade.confidence_below`'s default).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// libtorch threads for the transformer.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print one JSON object per file instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Use each row's `lang` field instead of detecting the language.
    #[arg(long)]
    pub gold_lang: bool,
    /// Also print up to this many misclassified rows per file (to stderr).
    #[arg(long, default_value_t = 0)]
    pub show_errors: usize,
}

#[derive(Serialize)]
struct Manifest<'a> {
    model: String,
    file: String,
    bytes: u64,
    sha256: String,
    format_version: u32,
    gema_version: &'static str,
    command: String,
    created_unix_s: u64,
    training_time_s: f64,
    load_time_s: f64,
    train_inputs: Vec<InputFile>,
    dev_inputs: Vec<InputFile>,
    lexicon_inputs: Vec<InputFile>,
    grid: &'a [TrainConfig],
    chosen: TrainConfig,
    best_epoch: usize,
    selection: &'static str,
    calibration: &'a train::Calibration,
    dev_metrics: Vec<serde_json::Value>,
    epochs: &'a [train::EpochLog],
    notes: &'static str,
}

/// The configurations `gema train` tries (one by default; dev is for sanity, not for fitting).
pub fn default_grid(args: &TrainArgs) -> Vec<TrainConfig> {
    let features = FeatureConfig {
        buckets_log2: args.buckets_log2,
        ..FeatureConfig::default()
    };
    let base = TrainConfig {
        features,
        max_epochs: args.epochs,
        seed: args.seed,
        ..TrainConfig::default()
    };
    if args.lr.is_some()
        || args.l2.is_some()
        || args.class_weight_power.is_some()
        || args.class_weight_power_id.is_some()
        || args.class_weight_power_binary.is_some()
        || args.word_trigrams
        || args.id_repeat.is_some()
        || args.char_min.is_some()
        || args.char_max.is_some()
        || args.ensemble.is_some()
        || args.char_weight.is_some()
    {
        let mut c = base;
        c.lr = args.lr.unwrap_or(c.lr);
        c.l2 = args.l2.unwrap_or(c.l2);
        c.class_weight_power = args.class_weight_power.unwrap_or(c.class_weight_power);
        c.class_weight_power_id = args.class_weight_power_id.or(c.class_weight_power_id);
        c.class_weight_power_binary = args
            .class_weight_power_binary
            .or(c.class_weight_power_binary);
        c.id_repeat = args.id_repeat.unwrap_or(c.id_repeat);
        c.features.word_trigrams = args.word_trigrams || c.features.word_trigrams;
        c.features.char_min = args.char_min.unwrap_or(c.features.char_min);
        c.features.char_max = args.char_max.unwrap_or(c.features.char_max);
        c.ensemble = args.ensemble.unwrap_or(c.ensemble);
        c.features.char_weight = args.char_weight.unwrap_or(c.features.char_weight);
        return vec![c];
    }
    // One configuration: balanced class weights (they optimise balanced accuracy, i.e.
    // macro-recall, and keep the minority negative class from being drowned); dev only picks
    // the epoch and the temperature.
    vec![base]
}

/// Runs `gema train`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    if args.tier == "bert" {
        #[cfg(feature = "bert")]
        return super::bert::cli::run_train(args);
        #[cfg(not(feature = "bert"))]
        anyhow::bail!("`gema train --tier bert` needs a build with `--features bert`");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH));
    let start = Instant::now();
    let rel = |p: &Path| {
        p.strip_prefix(&args.data)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let mut train_sets = Vec::new();
    let mut train_inputs = Vec::new();
    for path in data::jsonl_files(&args.data.join("sentiment/train"))? {
        let ex = data::read_jsonl(&path)?;
        train_inputs.push(InputFile::labelled(&path, rel(&path), &ex)?);
        train_sets.push((rel(&path), ex));
    }
    let mut dev_sets = Vec::new();
    let mut dev_inputs = Vec::new();
    for path in data::jsonl_files(&args.data.join("sentiment/dev"))? {
        let ex = data::read_jsonl(&path)?;
        dev_inputs.push(InputFile::labelled(&path, rel(&path), &ex)?);
        let name = file_stem(&path);
        dev_sets.push((name, ex));
    }
    if args.holdout {
        // Every 10th row of each training file becomes a selection/report set; dev is unused.
        dev_sets.clear();
        for (name, ex) in &mut train_sets {
            let (kept, held): (Vec<_>, Vec<_>) = std::mem::take(ex)
                .into_iter()
                .enumerate()
                .partition(|(i, _)| i % 10 != 9);
            *ex = kept.into_iter().map(|(_, e)| e).collect();
            let stem = file_stem(Path::new(name.as_str()));
            dev_sets.push((
                format!("holdout-{stem}"),
                held.into_iter().map(|(_, e)| e).collect(),
            ));
        }
    }
    let (lexicons, lex_files) = data::build_lexicons(&args.data.join("lexicons"))?;
    let lexicon_inputs = lex_files
        .iter()
        .map(|(p, n)| InputFile::hashed(p, rel(p), *n))
        .collect::<Result<Vec<_>, _>>()?;
    for f in &train_inputs {
        eprintln!("Train file {}: {} rows", f.file(), f.rows());
    }
    let grid = default_grid(args);
    let outcome = train::train(
        "fast-lr-v1",
        &lexicons,
        &train_sets,
        &dev_sets,
        &grid,
        &mut |m| eprintln!("{m}"),
    );
    let training_time_s = start.elapsed().as_secs_f64();
    outcome.model.save(&out)?;
    let t = Instant::now();
    let loaded = load_model(&out)?;
    let load_time_s = t.elapsed().as_secs_f64();
    drop(loaded);
    let bytes = std::fs::metadata(&out)?.len();
    let manifest = Manifest {
        model: outcome.model.name().to_string(),
        file: file_name(&out),
        bytes,
        sha256: sha256_file(&out)?,
        format_version: 1,
        gema_version: env!("CARGO_PKG_VERSION"),
        command: format!(
            "gema train --data {} --out {} --epochs {} --seed {} --buckets-log2 {}",
            args.data.display(),
            out.display(),
            args.epochs,
            args.seed,
            args.buckets_log2
        ),
        created_unix_s: unix_now(),
        training_time_s,
        load_time_s,
        train_inputs,
        dev_inputs,
        lexicon_inputs,
        grid: &grid,
        chosen: outcome.config,
        best_epoch: outcome.best_epoch,
        selection: "mean over dev files, weighted by sqrt(rows), of: negative F1 \
                    (negative/positive-only files) or (macro-recall + macro-F1) / 2 (3-class \
                    files); gold language tags",
        calibration: &outcome.calibration,
        dev_metrics: outcome
            .dev
            .iter()
            .map(|r| {
                serde_json::json!({
                    "file": r.file, "n": r.n, "scheme": r.scheme, "accuracy": r.accuracy,
                    "macro_recall": r.macro_recall, "macro_f1": r.macro_f1, "neg_f1": r.neg_f1,
                })
            })
            .collect(),
        epochs: &outcome.epochs,
        notes: "Trained only on sentiment/train; sentiment/dev used for epoch/config selection \
                and temperature calibration. Embeds word valences derived from VADER (MIT) and \
                InSet (Koto & Rahmaningtyas 2017).",
    };
    let mpath = manifest_path(&out);
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    std::fs::write(&mpath, json).with_context(|| format!("writing {}", mpath.display()))?;
    for r in &outcome.dev {
        eprint!("{}", r.to_text());
    }
    eprintln!(
        "Wrote {} ({:.1} MB, loads in {:.2}s) and {} in {:.1}s; temperature {:.2}",
        out.display(),
        bytes as f64 / 1e6,
        load_time_s,
        mpath.display(),
        training_time_s,
        outcome.calibration.temperature
    );
    Ok(())
}

/// Scores `model` on `examples`: predictions, metrics, language-id accuracy (when rows carry
/// `lang` and `gold_lang` is off) and texts/s. The timed pass repeats until `min_timing_s` has
/// passed, so that small files and scheduler hiccups on a shared machine do not decide the figure.
pub fn evaluate(
    model: &FastModel,
    name: &str,
    examples: &[data::Example],
    gold_lang: bool,
    min_timing_s: f64,
) -> (metrics::Report, Vec<Label>, Vec<Lang>) {
    let run = || -> (Vec<Sentiment>, Vec<Lang>) {
        examples
            .iter()
            .map(|e| {
                let lang = match (gold_lang, e.lang) {
                    (true, Some(l)) => l,
                    _ => lang::detect(&e.text).0,
                };
                (model.classify(&e.text, lang), lang)
            })
            .unzip()
    };
    let (verdicts, langs) = run();
    let pred: Vec<Label> = verdicts.iter().map(|v| v.label).collect();
    let start = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || start.elapsed().as_secs_f64() < min_timing_s {
        std::hint::black_box(run());
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9) / passes as f64;
    let gold: Vec<Label> = examples.iter().map(|e| e.label).collect();
    let mut report = metrics::score(name, &gold, &pred, examples.len() as f64 / secs);
    report.negative_alerts = metrics::negative_alerts(&gold, &verdicts);
    let tagged: Vec<(Lang, Lang)> = examples
        .iter()
        .zip(&langs)
        .filter_map(|(e, l)| e.lang.map(|g| (g, *l)))
        .collect();
    if !gold_lang && !tagged.is_empty() {
        let ok = tagged.iter().filter(|(g, l)| g == l).count();
        report.lang_accuracy = Some(ok as f64 / tagged.len() as f64);
    }
    (report, pred, langs)
}

/// Runs `gema eval`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    if args.tier != Tier::Fast {
        #[cfg(feature = "bert")]
        return super::bert::cli::run_eval(args);
        #[cfg(not(feature = "bert"))]
        anyhow::bail!(
            "`gema eval --tier {}` needs a build with `--features bert`",
            args.tier.as_str()
        );
    }
    let model = load_model(&args.model)?;
    for path in &args.files {
        let examples = data::read_jsonl(path)?;
        let (report, pred, langs) = evaluate(
            &model,
            &path.display().to_string(),
            &examples,
            args.gold_lang,
            0.5,
        );
        for ((e, p), l) in examples
            .iter()
            .zip(&pred)
            .zip(&langs)
            .filter(|((e, p), _)| {
                e.label != **p
                    && !(e.label == Label::Positive
                        && **p != Label::Negative
                        && report.scheme == "negative-vs-rest")
            })
            .take(args.show_errors)
        {
            eprintln!(
                "gold={} pred={} lang={} | {}",
                e.label.as_str(),
                p.as_str(),
                l.as_str(),
                e.text
            );
        }
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.to_text());
        }
    }
    Ok(())
}

/// Which texts of a batch a [`Decide`] sends to the transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Those the tier escalates (`--tier cascade`: the unsure ones; `bert`: every one its head
    /// decides).
    Tier,
    /// None: the fast tier decides.
    Fast,
    /// Every one the head decides.
    Transformer,
}

/// A tier's decisions for a batch of `(text, lang)`, each with whether the transformer took part.
pub type Decide<'a> = dyn Fn(&[(&str, Lang)], Route) -> anyhow::Result<Vec<(Sentiment, bool)>> + 'a;

/// Leaves each word of `text` out in turn and re-scores the rest in `lang` with `decide`
/// along `route` (one batch; the route that decided the whole text, so that a word's effect is
/// never a change of tier): [`word_effects`].
pub fn explain(
    decide: &Decide,
    route: Route,
    text: &str,
    lang: Lang,
    score: f32,
) -> anyhow::Result<Vec<WordEffect>> {
    word_effects(
        text,
        score,
        |_| true,
        usize::MAX,
        |variants| {
            let items: Vec<(&str, Lang)> = variants.iter().map(|v| (v.as_str(), lang)).collect();
            Ok(decide(&items, route)?
                .into_iter()
                .map(|(s, _)| s.score)
                .collect())
        },
    )
}

/// The texts `gema classify` reads: its arguments, else stdin (plain lines, or JSON lines with
/// `text` and an optional `lang` hint). Names the line and the problem on bad input.
fn classify_inputs(args: &ClassifyArgs) -> anyhow::Result<Vec<(String, Option<String>)>> {
    if !args.texts.is_empty() {
        return Ok(args.texts.iter().map(|t| (t.clone(), None)).collect());
    }
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        #[serde(default)]
        lang: Option<String>,
    }
    let mut out = Vec::new();
    for (i, line) in std::io::stdin().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        if args.jsonl {
            let row: Line = serde_json::from_str(&line).with_context(|| {
                format!(
                    "stdin line {}: not a JSON object with a string `text` field",
                    i + 1
                )
            })?;
            out.push((row.text, row.lang));
        } else {
            out.push((line, None));
        }
    }
    if out.is_empty() {
        anyhow::bail!("nothing to classify: give texts as arguments or one per line on stdin");
    }
    Ok(out)
}

/// Runs `gema classify`: `enrich` supplies the defaults that `args` leaves open, so the answer is
/// the one the enrich stage would give.
pub fn run_classify(
    args: &ClassifyArgs,
    enrich: &crate::config::EnrichConfig,
) -> anyhow::Result<()> {
    let inputs = classify_inputs(args)?;
    let model_path = args.model.as_deref().unwrap_or(&enrich.sentiment_model);
    let fast: std::sync::Arc<dyn SentimentModel> = if model_path == "builtin" {
        std::sync::Arc::new(super::lexicon::LexiconModel)
    } else {
        std::sync::Arc::new(load_model(Path::new(model_path))?)
    };
    let by_fast = |items: &[(&str, Lang)], _: Route| -> anyhow::Result<Vec<(Sentiment, bool)>> {
        Ok(items
            .iter()
            .map(|&(t, l)| (fast.classify(t, l), false))
            .collect())
    };
    let tiered: Box<Decide> = match args.tier {
        Tier::Fast => Box::new(by_fast),
        #[cfg(feature = "bert")]
        _ => {
            anyhow::ensure!(
                model_path != "builtin",
                "`--tier {}` fuses the transformer with a model file made by `gema train`, not `builtin`",
                args.tier.as_str()
            );
            super::bert::cli::decider(args, &enrich.cascade, Path::new(model_path))?
        }
        #[cfg(not(feature = "bert"))]
        _ => anyhow::bail!(
            "`gema classify --tier {}` needs a build with `--features bert`",
            args.tier.as_str()
        ),
    };
    let langs: Vec<(Lang, f32)> = inputs
        .iter()
        .map(|(text, hint)| match args.lang.as_str() {
            "auto" => lang::resolve(text, hint.as_deref()),
            forced => (Lang::from_hint(forced), 1.0),
        })
        .collect();
    let items: Vec<(&str, Lang)> = inputs
        .iter()
        .zip(&langs)
        .map(|((t, _), (l, _))| (t.as_str(), *l))
        .collect();
    let verdicts = tiered(&items, Route::Tier)?;
    if !args.json {
        println!("label     conf   score  lang   text");
    }
    for ((text, lang), (s, by_transformer)) in items.iter().zip(&verdicts) {
        let words = if args.explain && s.label != Label::Unscored {
            let route = if *by_transformer {
                Route::Transformer
            } else {
                Route::Fast
            };
            Some(explain(tiered.as_ref(), route, text, *lang, s.score)?)
        } else {
            None
        };
        if args.json {
            let mut v = serde_json::json!({
                "text": text,
                "lang": lang.as_str(),
                "label": s.label.as_str(),
                "score": s.score,
                "confidence": s.confidence,
                "tier": args.tier.as_str(),
            });
            let o = v.as_object_mut().expect("an object");
            if args.tier != Tier::Fast {
                o.insert("by_transformer".into(), (*by_transformer).into());
            }
            if let Some(words) = &words {
                o.insert("normalized".into(), super::normalize(text).into());
                o.insert("words".into(), serde_json::to_value(words)?);
            }
            println!("{v}");
            continue;
        }
        let by = if *by_transformer {
            " (transformer)"
        } else {
            ""
        };
        println!(
            "{:<9} {:>4.2} {:>+7.2}  {:<5}  {text}{by}",
            s.label.as_str(),
            s.confidence,
            s.score,
            lang.as_str()
        );
        if let Some(words) = words {
            println!("          read as: {}", super::normalize(text));
            let listed: Vec<String> = words
                .iter()
                .take(6)
                .map(|w| format!("{} {:+.2}", w.word, w.effect))
                .collect();
            println!(
                "          words (effect on the score): {}",
                if listed.is_empty() {
                    "none moves it by 0.01 or more".to_string()
                } else {
                    listed.join(", ")
                }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny data folder: JSONL train/dev files and the four lexicon files.
    fn tiny_data(dir: &Path) {
        let write = |rel: &str, body: String| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let row = |t: &str, l: &str, lang: &str| {
            format!("{{\"text\":\"{t}\",\"label\":\"{l}\",\"lang\":\"{lang}\"}}\n")
        };
        let mut en = String::new();
        let mut id = String::new();
        for i in 0..40 {
            en += &row(&format!("great product, love it {i}"), "positive", "en");
            en += &row(
                &format!("terrible service, never again {i}"),
                "negative",
                "en",
            );
            en += &row(&format!("the store opens at {i} today"), "neutral", "en");
            id += &row(
                &format!("barangnya bagus, puas banget {i}"),
                "positive",
                "id",
            );
            id += &row(
                &format!("pelayanan buruk, kecewa sekali {i}"),
                "negative",
                "id",
            );
        }
        write("sentiment/train/en-toy.jsonl", en.clone());
        write("sentiment/train/id-toy.jsonl", id.clone());
        write("sentiment/dev/en-toy-dev.jsonl", en);
        write("sentiment/dev/id-toy-dev.jsonl", id);
        write(
            "lexicons/vader_lexicon.txt",
            "great\t3.1\t0.5\t[]\nterrible\t-2.1\t0.5\t[]\n".into(),
        );
        write(
            "lexicons/inset_positive.tsv",
            "word\tweight\nbagus\t3\n".into(),
        );
        write(
            "lexicons/inset_negative.tsv",
            "word\tweight\nburuk\t-4\n".into(),
        );
        write(
            "lexicons/vader_emoji_utf8_lexicon.txt",
            "😀\tgreat face\n".into(),
        );
    }

    #[test]
    fn train_writes_a_loadable_model_and_manifest_and_eval_scores_it() {
        let dir = tempfile::tempdir().unwrap();
        tiny_data(dir.path());
        let out = dir.path().join("models/m.bin");
        let args = TrainArgs {
            data: dir.path().to_path_buf(),
            out: Some(out.clone()),
            tier: "fast".into(),
            fast_model: PathBuf::from(DEFAULT_MODEL_PATH),
            bert_model_dir: PathBuf::new(),
            threads: 1,
            cache: PathBuf::new(),
            head_hidden: 0,
            head_epochs: 1,
            head_dropout: 0.0,
            head_members: 1,
            head_weight_decay: 0.0,
            head_langs: vec!["en".into()],
            head_fast_inputs: false,
            finetune_blocks: 0,
            finetune_epochs: 1,
            finetune_lr: 1e-5,
            epochs: 2,
            seed: 1,
            buckets_log2: 12,
            lr: None,
            l2: None,
            class_weight_power: None,
            class_weight_power_id: None,
            class_weight_power_binary: None,
            holdout: false,
            word_trigrams: false,
            id_repeat: None,
            char_min: None,
            char_max: None,
            char_weight: None,
            ensemble: None,
        };
        run_train(&args).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("models/m.manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["train_inputs"][0]["rows"], 120);
        assert_eq!(
            manifest["train_inputs"][1]["file"],
            "sentiment/train/id-toy.jsonl"
        );
        assert!(manifest["training_time_s"].as_f64().unwrap() > 0.0);
        assert_eq!(manifest["dev_metrics"].as_array().unwrap().len(), 2);

        let model = load_model(&out).unwrap();
        let examples =
            data::read_jsonl(&dir.path().join("sentiment/dev/id-toy-dev.jsonl")).unwrap();
        let (report, pred, _) = evaluate(&model, "id-toy-dev", &examples, false, 0.0);
        assert_eq!(pred.len(), 80);
        assert_eq!(report.scheme, "negative-vs-rest");
        assert!(report.neg_f1 > 0.9, "{}", report.to_text());
        assert_eq!(report.lang_accuracy, Some(1.0));
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "file",
            "n",
            "accuracy",
            "macro_recall",
            "macro_f1",
            "neg_f1",
            "texts_per_s",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
