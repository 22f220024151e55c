//! `gema train`, `gema eval` and `gema classify`: their arguments, and what they print. The
//! work is the library's (`gema::sentiment`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use gema::config::EnrichConfig;
use gema::sentiment::classify::{self, Decide, Route};
use gema::sentiment::data;
use gema::sentiment::evaluate::evaluate;
use gema::sentiment::fit::{train_fast, FastTrainOptions, GridOverrides};
use gema::sentiment::lexicon::LexiconModel;
use gema::sentiment::model::{load_model, DEFAULT_MODEL_PATH};
use gema::sentiment::{Label, SentimentModel};
use gema::text::lang::{self, Lang};
use gema::text::normalize::normalize;

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
    /// The library's name for the tier.
    pub fn tier(self) -> classify::Tier {
        match self {
            Tier::Fast => classify::Tier::Fast,
            Tier::Bert => classify::Tier::Bert,
            Tier::Cascade => classify::Tier::Cascade,
        }
    }

    /// The tier's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        self.tier().as_str()
    }
}

/// The transformer's folder: `GEMA_BERT_MODEL_DIR`, else where `scripts/bert-deps.sh` puts it.
fn default_bert_dir() -> PathBuf {
    std::env::var_os("GEMA_BERT_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(gema::sentiment::bert::DEFAULT_MODEL_DIR))
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
    #[arg(long, default_value = gema::sentiment::bert::DEFAULT_HEAD_PATH)]
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

/// Runs `gema train`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    if args.tier == "bert" {
        #[cfg(feature = "bert")]
        return super::bert::run_train(args);
        #[cfg(not(feature = "bert"))]
        anyhow::bail!("`gema train --tier bert` needs a build with `--features bert`");
    }
    let options = FastTrainOptions {
        data: args.data.clone(),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH)),
        epochs: args.epochs,
        seed: args.seed,
        buckets_log2: args.buckets_log2,
        holdout: args.holdout,
        overrides: GridOverrides {
            lr: args.lr,
            l2: args.l2,
            class_weight_power: args.class_weight_power,
            class_weight_power_id: args.class_weight_power_id,
            class_weight_power_binary: args.class_weight_power_binary,
            id_repeat: args.id_repeat,
            word_trigrams: args.word_trigrams,
            ensemble: args.ensemble,
            char_weight: args.char_weight,
            char_min: args.char_min,
            char_max: args.char_max,
        },
    };
    let report = train_fast(&options, &mut |m| eprintln!("{m}"))?;
    for r in &report.dev {
        eprint!("{}", r.to_text());
    }
    eprintln!(
        "Wrote {} ({:.1} MB, loads in {:.2}s) and {} in {:.1}s; temperature {:.2}",
        report.out.display(),
        report.bytes as f64 / 1e6,
        report.load_time_s,
        report.manifest.display(),
        report.training_time_s,
        report.temperature
    );
    Ok(())
}

/// Runs `gema eval`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    if args.tier != Tier::Fast {
        #[cfg(feature = "bert")]
        return super::bert::run_eval(args);
        #[cfg(not(feature = "bert"))]
        anyhow::bail!(
            "`gema eval --tier {}` needs a build with `--features bert`",
            args.tier.as_str()
        );
    }
    let model = load_model(&args.model)?;
    for path in &args.files {
        let examples = data::read_jsonl(path)?;
        let evaluation = evaluate(
            &model,
            &path.display().to_string(),
            &examples,
            args.gold_lang,
            0.5,
        );
        for (e, p, l) in evaluation.errors(&examples).take(args.show_errors) {
            eprintln!(
                "gold={} pred={} lang={} | {}",
                e.label.as_str(),
                p.as_str(),
                l.as_str(),
                e.text
            );
        }
        if args.json {
            println!("{}", serde_json::to_string(&evaluation.report)?);
        } else {
            print!("{}", evaluation.report.to_text());
        }
    }
    Ok(())
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
pub fn run_classify(args: &ClassifyArgs, enrich: &EnrichConfig) -> anyhow::Result<()> {
    let inputs = classify_inputs(args)?;
    let model_path = args.model.as_deref().unwrap_or(&enrich.sentiment_model);
    let fast: Arc<dyn SentimentModel> = if model_path == "builtin" {
        Arc::new(LexiconModel)
    } else {
        Arc::new(load_model(Path::new(model_path))?)
    };
    let tiered: Box<Decide> = match args.tier {
        Tier::Fast => classify::fast_decider(fast),
        #[cfg(feature = "bert")]
        _ => {
            anyhow::ensure!(
                model_path != "builtin",
                "`--tier {}` fuses the transformer with a model file made by `gema train`, not `builtin`",
                args.tier.as_str()
            );
            super::bert::decider(args, &enrich.cascade, Path::new(model_path))?
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
            Some(classify::explain(
                tiered.as_ref(),
                route,
                text,
                *lang,
                s.score,
            )?)
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
                o.insert("normalized".into(), normalize(text).into());
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
            println!("          read as: {}", normalize(text));
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
