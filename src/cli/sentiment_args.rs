//! The arguments of `gema train`, `gema eval` and `gema classify` (shared by the fast tier's
//! commands in `sentiment.rs` and the transformer's in `bert.rs`).

use std::path::PathBuf;

use gema::sentiment::classify;
use gema::sentiment::model::DEFAULT_MODEL_PATH;

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
    /// Fast tier: people's corrections (`gema mentions corrections --out FILE`) to train on as
    /// well, each counted `--corrections-weight` times, the latest per text; the model in
    /// `--out` before training and the new one are both scored and compared.
    #[arg(long)]
    pub corrections: Option<PathBuf>,
    /// How many times each correction counts, against once for a training row.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub corrections_weight: u32,
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
    /// Experiments only: learn files labelled only negative/positive over those two classes
    /// alone (`TrainConfig::binary_conditional`).
    #[arg(long, hide = true)]
    pub binary_conditional: bool,
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
    /// Score only each file's held-out slice: the rows `gema train` never trains on (about 1 in
    /// 10 of a training file, chosen by the SHA-256 of the text).
    #[arg(long)]
    pub held_out: bool,
    /// Also print up to this many misclassified rows per file (to stderr).
    #[arg(long, default_value_t = 0)]
    pub show_errors: usize,
}
