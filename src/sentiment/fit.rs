//! Training the fast model from a data folder, as `gema train` does: reads the labelled and
//! lexicon files, trains, and writes the model with its manifest next to it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::data;
use super::evaluate::evaluate;
use super::features::FeatureConfig;
use super::langid::LangHead;
use super::manifest::{file_name, file_stem, manifest_path, sha256_file, unix_now, InputFile};
use super::metrics::Report;
use super::model::load_model;
use super::train::{self, TrainConfig};
use super::SentimentModel;
use crate::text::lang::Lang;

/// Experiment knobs: any of them set replaces the built-in grid by one configuration with
/// these values (the rest as in the built-in one).
#[derive(Debug, Clone, Default)]
pub struct GridOverrides {
    /// Learning rate.
    pub lr: Option<f32>,
    /// L2 penalty.
    pub l2: Option<f32>,
    /// Class-weight power.
    pub class_weight_power: Option<f32>,
    /// Class-weight power for Indonesian training files.
    pub class_weight_power_id: Option<f32>,
    /// Class-weight power for negative/positive-only training files.
    pub class_weight_power_binary: Option<f32>,
    /// Negative/positive-only files learnt over those two classes alone.
    pub binary_conditional: bool,
    /// Visits of each Indonesian training row per epoch.
    pub id_repeat: Option<usize>,
    /// Word trigrams on.
    pub word_trigrams: bool,
    /// Ensemble size.
    pub ensemble: Option<usize>,
    /// Character n-gram weight.
    pub char_weight: Option<f32>,
    /// Shortest character n-gram.
    pub char_min: Option<usize>,
    /// Longest character n-gram.
    pub char_max: Option<usize>,
}

impl GridOverrides {
    /// Whether any knob is set.
    fn any(&self) -> bool {
        self.lr.is_some()
            || self.l2.is_some()
            || self.class_weight_power.is_some()
            || self.class_weight_power_id.is_some()
            || self.class_weight_power_binary.is_some()
            || self.binary_conditional
            || self.word_trigrams
            || self.id_repeat.is_some()
            || self.char_min.is_some()
            || self.char_max.is_some()
            || self.ensemble.is_some()
            || self.char_weight.is_some()
    }
}

/// What [`train_fast`] trains on and where it writes.
#[derive(Debug, Clone)]
pub struct FastTrainOptions {
    /// Data folder holding `sentiment/train/*.jsonl`, `sentiment/dev/*.jsonl` and `lexicons/`.
    pub data: PathBuf,
    /// Where the model goes; the manifest goes next to it as `<stem>.manifest.json`.
    pub out: PathBuf,
    /// Most training epochs per configuration (the best epoch on dev is kept).
    pub epochs: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// log2 of the number of feature hash buckets.
    pub buckets_log2: u32,
    /// Hold out every 10th row of each training file and select/report on those slices instead
    /// of the dev files (for fitting knobs without touching dev).
    pub holdout: bool,
    /// People's corrections to train on too.
    pub corrections: Option<CorrectionSet>,
    /// How many times each correction counts.
    pub corrections_weight: usize,
    /// Experiment knobs replacing the built-in grid.
    pub overrides: GridOverrides,
}

/// People's corrections for [`train_fast`]: read from `path` (`gema mentions corrections`),
/// the latest per text kept, brand names already masked as the enrich stage masks them.
#[derive(Debug, Clone)]
pub struct CorrectionSet {
    pub path: PathBuf,
    pub rows: Vec<data::Example>,
    /// Rows in the file before deduplication.
    pub read: usize,
}

impl CorrectionSet {
    /// Reads `path`, keeps the last row of each text and the English and Indonesian ones, and
    /// passes each text through `mask`.
    pub fn read(
        path: &Path,
        mask: impl Fn(&str, Lang) -> Option<String>,
    ) -> anyhow::Result<CorrectionSet> {
        let all = data::read_jsonl(path)?;
        let read = all.len();
        let mut latest: Vec<data::Example> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = Default::default();
        for e in all {
            if !e.lang.is_some_and(Lang::is_scored) {
                continue;
            }
            match at.get(&e.text) {
                Some(&i) => latest[i] = e,
                None => {
                    at.insert(e.text.clone(), latest.len());
                    latest.push(e);
                }
            }
        }
        for e in &mut latest {
            if let Some(m) = mask(&e.text, e.lang.expect("tagged")) {
                e.text = m;
            }
        }
        Ok(CorrectionSet {
            path: path.to_path_buf(),
            rows: latest,
            read,
        })
    }
}

/// What [`train_fast`] made.
#[derive(Debug)]
pub struct FastTrainReport {
    /// The model file written.
    pub out: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Seconds it takes to load.
    pub load_time_s: f64,
    /// The manifest written next to it.
    pub manifest: PathBuf,
    /// Seconds from the start to the trained model.
    pub training_time_s: f64,
    /// The calibrated softmax temperature.
    pub temperature: f32,
    /// The chosen model's scores on the dev (or holdout) files.
    pub dev: Vec<Report>,
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
    /// Scores on the slice held out of each training file (`data::is_held_out`).
    heldout_metrics: Vec<serde_json::Value>,
    /// `--corrections`: the file, its rows and the before/after scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    corrections: Option<serde_json::Value>,
    epochs: &'a [train::EpochLog],
    notes: &'static str,
}

/// The configurations `gema train` tries (one by default; dev is for sanity, not for fitting).
pub fn default_grid(options: &FastTrainOptions) -> Vec<TrainConfig> {
    let features = FeatureConfig {
        buckets_log2: options.buckets_log2,
        ..FeatureConfig::default()
    };
    let base = TrainConfig {
        features,
        max_epochs: options.epochs,
        seed: options.seed,
        ..TrainConfig::default()
    };
    let o = &options.overrides;
    if o.any() {
        let mut c = base;
        c.lr = o.lr.unwrap_or(c.lr);
        c.l2 = o.l2.unwrap_or(c.l2);
        c.class_weight_power = o.class_weight_power.unwrap_or(c.class_weight_power);
        c.class_weight_power_id = o.class_weight_power_id.or(c.class_weight_power_id);
        c.class_weight_power_binary = o.class_weight_power_binary.or(c.class_weight_power_binary);
        c.binary_conditional = o.binary_conditional || c.binary_conditional;
        c.id_repeat = o.id_repeat.unwrap_or(c.id_repeat);
        c.features.word_trigrams = o.word_trigrams || c.features.word_trigrams;
        c.features.char_min = o.char_min.unwrap_or(c.features.char_min);
        c.features.char_max = o.char_max.unwrap_or(c.features.char_max);
        c.ensemble = o.ensemble.unwrap_or(c.ensemble);
        c.features.char_weight = o.char_weight.unwrap_or(c.features.char_weight);
        return vec![c];
    }
    // One configuration: balanced class weights (they optimise balanced accuracy, i.e.
    // macro-recall, and keep the minority negative class from being drowned); dev only picks
    // the epoch and the temperature.
    vec![base]
}

/// Trains the fast model on `options.data` and writes it and its manifest. `log` receives the
/// training files' sizes and the training progress, one line at a time.
pub fn train_fast(
    options: &FastTrainOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<FastTrainReport> {
    let out = &options.out;
    let start = Instant::now();
    let rel = |p: &Path| {
        p.strip_prefix(&options.data)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let mut train_sets = Vec::new();
    let mut train_inputs = Vec::new();
    let mut held_sets = Vec::new();
    for path in data::jsonl_files(&options.data.join("sentiment/train"))? {
        let ex = data::read_jsonl(&path)?;
        train_inputs.push(InputFile::labelled(&path, rel(&path), &ex)?);
        let (kept, held) = data::training_rows(ex);
        held_sets.push((format!("held-out-{}", file_stem(&path)), held));
        train_sets.push((rel(&path), kept));
    }
    let mut dev_sets = Vec::new();
    let mut dev_inputs = Vec::new();
    for path in data::jsonl_files(&options.data.join("sentiment/dev"))? {
        let ex = data::read_jsonl(&path)?;
        dev_inputs.push(InputFile::labelled(&path, rel(&path), &ex)?);
        let name = file_stem(&path);
        dev_sets.push((name, ex));
    }
    if options.holdout {
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
                format!("tuning-{stem}"),
                held.into_iter().map(|(_, e)| e).collect(),
            ));
        }
    }
    let (mut lexicons, lex_files) = data::build_lexicons(&options.data.join("lexicons"))?;
    lexicons.segment = data::segment_vocab(train_sets.iter().flat_map(|(_, ex)| ex));
    log(&format!(
        "Hashtag words: {} words seen three or more times in the training rows",
        lexicons.segment.len()
    ));
    let lexicon_inputs = lex_files
        .iter()
        .map(|(p, n)| InputFile::hashed(p, rel(p), *n))
        .collect::<Result<Vec<_>, _>>()?;
    for (f, (_, held)) in train_inputs.iter().zip(&held_sets) {
        log(&format!(
            "Train file {}: {} rows ({} held out, never trained on)",
            f.file(),
            f.rows(),
            held.len()
        ));
    }
    // People's corrections: the model being replaced is scored first, to compare.
    let mut before: Vec<Report> = Vec::new();
    if let Some(c) = &options.corrections {
        train_inputs.push(InputFile::labelled(
            &c.path,
            c.path.display().to_string(),
            &c.rows,
        )?);
        match load_model(out) {
            Ok(old) => {
                before = compare_sets(&dev_sets, &held_sets, &c.rows)
                    .map(|(name, rows)| evaluate(&old, &name, rows, false, 0.0).report)
                    .collect();
            }
            Err(e) => log(&format!("No model to compare with: {e}")),
        }
        let repeated: Vec<data::Example> = (0..options.corrections_weight)
            .flat_map(|_| c.rows.iter().cloned())
            .collect();
        log(&format!(
            "Corrections {}: {} rows, {} distinct texts in English or Indonesian, each counted {} times",
            c.path.display(),
            c.read,
            c.rows.len(),
            options.corrections_weight
        ));
        train_sets.push(("corrections".to_string(), repeated));
    }
    let grid = default_grid(options);
    let mut outcome = train::train("fast-lr-v1", &lexicons, &train_sets, &dev_sets, &grid, log);
    // The language head learns English against Indonesian from the same rows' `lang` tags.
    let lang_rows: Vec<(&str, Lang)> = train_sets
        .iter()
        .flat_map(|(_, ex)| {
            ex.iter()
                .filter_map(|e| e.lang.map(|l| (e.text.as_str(), l)))
        })
        .collect();
    log(&format!("Language head: {} tagged rows", lang_rows.len()));
    outcome
        .model
        .set_lang_head(LangHead::train(&lang_rows, options.seed));
    outcome.model.quantize();
    let training_time_s = start.elapsed().as_secs_f64();
    outcome.model.save(out)?;
    let t = Instant::now();
    let loaded = load_model(out)?;
    let load_time_s = t.elapsed().as_secs_f64();
    // The held-out slices, scored once the model is final (nothing is chosen on them): with the
    // detected language, as in the pipeline, and with the gold tags.
    let mut heldout_metrics = Vec::new();
    for (name, held) in &held_sets {
        if held.is_empty() {
            continue;
        }
        for gold_lang in [false, true] {
            let r = evaluate(&loaded, name, held, gold_lang, 0.0).report;
            log(&format!(
                "{name} ({} language): {}",
                if gold_lang { "gold" } else { "detected" },
                r.to_text().lines().next().unwrap_or_default()
            ));
            let mut m = r.brief();
            m["lang"] = serde_json::json!(if gold_lang { "gold" } else { "detected" });
            m["lang_accuracy"] = serde_json::json!(r.lang_accuracy);
            heldout_metrics.push(m);
        }
    }
    let corrections = options.corrections.as_ref().map(|c| {
        let after: Vec<Report> = compare_sets(&dev_sets, &held_sets, &c.rows)
            .map(|(name, rows)| evaluate(&loaded, &name, rows, false, 0.0).report)
            .collect();
        log(
            "Before → after training with the corrections (language detected; the corrections \
             themselves were trained on, so their row is a fit, not a test):",
        );
        let mut table = Vec::new();
        for (i, a) in after.iter().enumerate() {
            let b = before.get(i);
            log(&format!(
                "  {:<32} macro-F1 {} → {:.3}   negative F1 {} → {:.3}",
                a.file,
                b.map_or("  -  ".to_string(), |b| format!("{:.3}", b.macro_f1)),
                a.macro_f1,
                b.map_or("  -  ".to_string(), |b| format!("{:.3}", b.neg_f1)),
                a.neg_f1
            ));
            table.push(serde_json::json!({
                "file": a.file, "before": b.map(Report::brief), "after": a.brief(),
            }));
        }
        serde_json::json!({
            "file": c.path.display().to_string(), "rows": c.read, "distinct": c.rows.len(),
            "weight": options.corrections_weight, "before_after": table,
        })
    });
    drop(loaded);
    let bytes = std::fs::metadata(out)?.len();
    let manifest = Manifest {
        model: outcome.model.name().to_string(),
        file: file_name(out),
        bytes,
        sha256: sha256_file(out)?,
        format_version: 1,
        gema_version: env!("CARGO_PKG_VERSION"),
        command: format!(
            "gema train --data {} --out {} --epochs {} --seed {} --buckets-log2 {}{}",
            options.data.display(),
            out.display(),
            options.epochs,
            options.seed,
            options.buckets_log2,
            options
                .corrections
                .as_ref()
                .map_or(String::new(), |c| format!(
                    " --corrections {} --corrections-weight {}",
                    c.path.display(),
                    options.corrections_weight
                ))
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
        dev_metrics: outcome.dev.iter().map(Report::brief).collect(),
        heldout_metrics,
        corrections,
        epochs: &outcome.epochs,
        notes: "Trained only on sentiment/train less its held-out slice (about 1 row in 10, by \
                the SHA-256 of the text; scored in heldout_metrics, never used for a choice); \
                sentiment/dev used for epoch/config selection \
                and temperature calibration. Embeds word valences derived from VADER (MIT) and \
                InSet (Koto & Rahmaningtyas 2017).",
    };
    let mpath = manifest_path(out);
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    std::fs::write(&mpath, json).with_context(|| format!("writing {}", mpath.display()))?;
    Ok(FastTrainReport {
        out: out.clone(),
        bytes,
        load_time_s,
        manifest: mpath,
        training_time_s,
        temperature: outcome.calibration.temperature,
        dev: outcome.dev,
    })
}

/// The sets a training run with corrections is compared on: dev, the held-out slices, and the
/// corrections themselves.
fn compare_sets<'a>(
    dev: &'a [(String, Vec<data::Example>)],
    held: &'a [(String, Vec<data::Example>)],
    corrections: &'a [data::Example],
) -> impl Iterator<Item = (String, &'a [data::Example])> + 'a {
    dev.iter()
        .chain(held.iter())
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(n, rows)| (n.clone(), rows.as_slice()))
        .chain(std::iter::once(("corrections".to_string(), corrections)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::evaluate::{evaluate, Evaluation};

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
                &format!("barangnya bagus sekali dan pengirimannya cepat, saya puas banget {i}"),
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
        let options = FastTrainOptions {
            data: dir.path().to_path_buf(),
            out: out.clone(),
            epochs: 2,
            seed: 1,
            buckets_log2: 12,
            holdout: false,
            corrections: None,
            corrections_weight: 3,
            overrides: GridOverrides::default(),
        };
        train_fast(&options, &mut |_| {}).unwrap();
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
        let Evaluation { report, pred, .. } = evaluate(&model, "id-toy-dev", &examples, false, 0.0);
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
