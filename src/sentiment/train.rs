//! Training the fast model: Adagrad logistic regression, model selection on the dev files and
//! temperature calibration. Data loading lives in [`super::data`].
//!
//! Deterministic: the same data, configuration and seed give the same model bytes.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use super::data::Example;

use super::features::{FeatureConfig, Featurizer, Lexicons};
use super::metrics::{self, Report};
use super::model::{FastModel, ModelHeader, CLASSES};
use super::Label;
use crate::text::lang::Lang;

/// Training hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub features: FeatureConfig,
    /// Most passes over the training data; the best epoch on dev is kept.
    pub max_epochs: usize,
    /// Adagrad learning rate.
    pub lr: f32,
    /// L2 penalty applied to the weights a sample touches.
    pub l2: f32,
    /// Class weights `(n / (k · n_class))^power` per training file: 0 = none, 1 = balanced.
    pub class_weight_power: f32,
    /// The class-weight power for Indonesian training files, when it differs from
    /// `class_weight_power`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weight_power_id: Option<f32>,
    /// The class-weight power for training files labelled only negative/positive (scored on
    /// negative F1, not macro-recall), when it differs from the per-language power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weight_power_binary: Option<f32>,
    /// When set (an experiment, off by default), rows of files labelled only negative/positive
    /// are learnt as "negative or positive, which one", not as "not neutral": their loss is
    /// over those two classes alone, so it leaves the neutral score alone. Such a file
    /// (IndoLEM: the only Indonesian tweets) was collected without neutral posts; learnt
    /// three-way, it teaches that a text of its kind is never neutral. Measured on the tuning
    /// slice it costs IndoLEM a tenth of its negative F1 (docs/SENTIMENT.md, Limitations).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary_conditional: bool,
    /// How many times each Indonesian training row is visited per epoch (0 or 1: once).
    #[serde(default, skip_serializing_if = "is_at_most_one")]
    pub id_repeat: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// Number of runs with different shuffles whose weights are averaged.
    pub ensemble: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            features: FeatureConfig::default(),
            max_epochs: 8,
            lr: 0.1,
            l2: 1e-6,
            class_weight_power: 1.0,
            class_weight_power_id: None,
            class_weight_power_binary: None,
            binary_conditional: false,
            id_repeat: 1,
            seed: 42,
            ensemble: 1,
        }
    }
}

/// The class-weight powers that shape encoded sample weights: (all, Indonesian, binary files).
type ClassWeightPowers = (f32, Option<f32>, Option<f32>);

fn is_at_most_one(n: &usize) -> bool {
    *n <= 1
}

impl TrainConfig {
    fn class_weight_powers(&self) -> ClassWeightPowers {
        (
            self.class_weight_power,
            self.class_weight_power_id,
            self.class_weight_power_binary,
        )
    }

    /// The class-weight power for a training file whose rows are in `lang` (`binary`: it has
    /// no neutral rows).
    pub fn class_weight_power_for(&self, lang: Option<Lang>, binary: bool) -> f32 {
        let by_lang = match lang {
            Some(Lang::Id) => self
                .class_weight_power_id
                .unwrap_or(self.class_weight_power),
            _ => self.class_weight_power,
        };
        match self.class_weight_power_binary {
            Some(p) if binary => p,
            _ => by_lang,
        }
    }
}

/// Examples turned into feature vectors once.
pub struct Encoded {
    idx: Vec<u32>,
    val: Vec<f32>,
    offsets: Vec<usize>,
    labels: Vec<u8>,
    weights: Vec<f32>,
    /// Per row: learnt over negative and positive alone (`TrainConfig::binary_conditional`).
    two_way: Vec<bool>,
}

impl Encoded {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.offsets[i]..self.offsets[i + 1];
        (&self.idx[r.clone()], &self.val[r])
    }
}

fn class_index(l: Label) -> u8 {
    match l {
        Label::Negative => 0,
        Label::Neutral => 1,
        _ => 2,
    }
}

/// Encodes `examples` (language from the file, else `default_lang`) with sample weights.
pub fn encode(f: &Featurizer, examples: &[Example], default_lang: Lang, cw_power: f32) -> Encoded {
    let mut counts = [0usize; 3];
    for e in examples {
        counts[class_index(e.label) as usize] += 1;
    }
    let k = counts.iter().filter(|&&c| c > 0).count().max(1) as f32;
    let n = examples.len() as f32;
    let cw = counts.map(|c| {
        if c == 0 {
            0.0
        } else {
            (n / (k * c as f32)).powf(cw_power)
        }
    });
    let mut enc = Encoded {
        idx: vec![],
        val: vec![],
        offsets: vec![0],
        labels: vec![],
        weights: vec![],
        two_way: vec![],
    };
    let mut norm = String::new();
    let mut feats = Vec::new();
    for e in examples {
        f.normalize_into(&e.text, &mut norm);
        f.features(&norm, e.lang.unwrap_or(default_lang), &mut feats);
        for &(i, v) in &feats {
            enc.idx.push(i);
            enc.val.push(v);
        }
        enc.offsets.push(enc.idx.len());
        let c = class_index(e.label);
        enc.labels.push(c);
        enc.weights.push(cw[c as usize]);
        enc.two_way.push(false);
    }
    enc
}

/// Adagrad multinomial logistic regression state.
struct Trainer {
    w: Vec<f32>,
    g: Vec<f32>,
    b: [f32; 3],
    gb: [f32; 3],
}

impl Trainer {
    fn new(buckets: usize) -> Self {
        Trainer {
            w: vec![0.0; buckets * 3],
            g: vec![0.0; buckets * 3],
            b: [0.0; 3],
            gb: [0.0; 3],
        }
    }

    fn epoch(&mut self, data: &Encoded, order: &[usize], cfg: &TrainConfig) {
        const EPS: f32 = 1e-8;
        for &i in order {
            let (idx, val) = data.row(i);
            let mut z = self.b;
            for (&j, &v) in idx.iter().zip(val) {
                let w = &self.w[j as usize * 3..j as usize * 3 + 3];
                z[0] += w[0] * v;
                z[1] += w[1] * v;
                z[2] += w[2] * v;
            }
            let y = data.labels[i] as usize;
            let sw = data.weights[i];
            let mut d = if data.two_way[i] {
                // Softmax over negative and positive alone: no gradient on neutral.
                let p_neg = 1.0 / (1.0 + (z[2] - z[0]).exp());
                [p_neg, 0.0, 1.0 - p_neg]
            } else {
                FastModel::probs(z, 1.0)
            };
            d[y] -= 1.0;
            let d = d.map(|x| x * sw);
            for ((b, gb), dc) in self.b.iter_mut().zip(&mut self.gb).zip(d) {
                *gb += dc * dc;
                *b -= cfg.lr * dc / (*gb + EPS).sqrt();
            }
            for (&j, &v) in idx.iter().zip(val) {
                for (c, dc) in d.iter().enumerate() {
                    let k = j as usize * 3 + c;
                    let grad = dc * v + cfg.l2 * self.w[k];
                    self.g[k] += grad * grad;
                    self.w[k] -= cfg.lr * grad / (self.g[k] + EPS).sqrt();
                }
            }
        }
    }
}

/// A labelled dev file, encoded.
pub struct DevSet {
    pub name: String,
    pub gold: Vec<Label>,
    pub encoded: Encoded,
}

/// The selection score of a dev report: negative F1 for negative/positive files, else the mean
/// of macro-recall and macro-F1.
pub fn selection_score(r: &Report) -> f64 {
    if r.scheme == "negative-vs-rest" {
        r.neg_f1
    } else {
        0.5 * (r.macro_recall + r.macro_f1)
    }
}

fn predict_all(model: &FastModel, data: &Encoded, t: f32) -> Vec<[f32; 3]> {
    (0..data.len())
        .map(|i| {
            let (idx, val) = data.row(i);
            let feats: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
            FastModel::probs(model.logits(&feats), t)
        })
        .collect()
}

/// Scores `model` on every dev set.
pub fn evaluate_dev(model: &FastModel, dev: &[DevSet]) -> Vec<Report> {
    dev.iter()
        .map(|d| {
            let pred: Vec<Label> = predict_all(model, &d.encoded, 1.0)
                .into_iter()
                .map(|p| FastModel::sentiment(p).label)
                .collect();
            metrics::score(&d.name, &d.gold, &pred, 0.0)
        })
        .collect()
}

/// Per-epoch record for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub config: usize,
    pub epoch: usize,
    pub objective: f64,
    pub per_file: BTreeMap<String, f64>,
}

/// Calibration summary for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub temperature: f32,
    /// Negative log-likelihood on the dev files at temperature 1 and at `temperature`.
    pub nll_before: f64,
    pub nll_after: f64,
    /// Expected calibration error (10 bins) of the confidence on the odd dev rows, with the
    /// temperature fitted on the even rows only (an honest held-out estimate).
    pub ece_heldout_before: f64,
    pub ece_heldout_after: f64,
}

/// The trained model and everything the manifest reports about it.
pub struct Outcome {
    pub model: FastModel,
    pub config: TrainConfig,
    pub epochs: Vec<EpochLog>,
    pub best_epoch: usize,
    pub dev: Vec<Report>,
    pub calibration: Calibration,
}

/// Mean selection score over the dev files, weighted by √n so that 100-row files count without
/// dominating through their noise.
pub fn mean_objective(reports: &[Report]) -> f64 {
    let w: f64 = reports.iter().map(|r| (r.n as f64).sqrt()).sum();
    reports
        .iter()
        .map(|r| (r.n as f64).sqrt() * selection_score(r))
        .sum::<f64>()
        / w.max(1e-9)
}

/// Folds of the fast tier's out-of-fold probabilities for a stacked head (`gema train --tier
/// bert`, `examples/fast_probs.rs`).
pub const STACK_FOLDS: usize = 5;

/// Out-of-fold probabilities of the training rows: row `i` of each training file is in fold
/// `i % folds`; for each fold, `cfg` is trained (as [`train`] does, dev picking the epoch and
/// the temperature) on the other folds' rows and scores this fold's rows for which `wanted`
/// holds, in their tagged language (English when untagged). One entry per training file and
/// row, `None` where not wanted. Such probabilities are what the fast tier says of a text it
/// never saw, which is what a model stacked on it meets at inference.
pub fn out_of_fold(
    lexicons: &Lexicons,
    train_sets: &[(String, Vec<Example>)],
    dev: &[(String, Vec<Example>)],
    cfg: &TrainConfig,
    folds: usize,
    wanted: &dyn Fn(&Example) -> bool,
    log: &mut dyn FnMut(&str),
) -> Vec<Vec<Option<[f32; 3]>>> {
    assert!(folds >= 2, "at least two folds");
    let mut out: Vec<Vec<Option<[f32; 3]>>> = train_sets
        .iter()
        .map(|(_, ex)| vec![None; ex.len()])
        .collect();
    for fold in 0..folds {
        let rest: Vec<(String, Vec<Example>)> = train_sets
            .iter()
            .map(|(name, ex)| {
                let kept = ex
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % folds != fold)
                    .map(|(_, e)| e.clone())
                    .collect();
                (name.clone(), kept)
            })
            .collect();
        let outcome = train("out-of-fold", lexicons, &rest, dev, &[*cfg], &mut |m| {
            log(&format!("fold {}/{folds}: {m}", fold + 1))
        });
        for ((_, ex), probs) in train_sets.iter().zip(&mut out) {
            for (i, e) in ex.iter().enumerate() {
                if i % folds == fold && wanted(e) {
                    let lang = e.lang.unwrap_or(Lang::En);
                    probs[i] = Some(outcome.model.probabilities(&e.text, lang));
                }
            }
        }
    }
    out
}

/// Trains one model per configuration in `grid`, keeps the (configuration, epoch) with the best
/// mean dev selection score, then fits the temperature on dev.
pub fn train(
    name: &str,
    lexicons: &Lexicons,
    train: &[(String, Vec<Example>)],
    dev: &[(String, Vec<Example>)],
    grid: &[TrainConfig],
    log: &mut dyn FnMut(&str),
) -> Outcome {
    let mut best: Option<(f64, FastModel, TrainConfig, usize, Vec<Report>)> = None;
    let mut epochs = Vec::new();
    let mut cache: Option<(FeatureConfig, ClassWeightPowers, bool, Encoded, Vec<DevSet>)> = None;
    let mut id_rows: Vec<usize> = Vec::new();
    for (ci, cfg) in grid.iter().enumerate() {
        let stale = cache.as_ref().is_none_or(|(f, p, b, _, _)| {
            *f != cfg.features || *p != cfg.class_weight_powers() || *b != cfg.binary_conditional
        });
        if stale {
            let start = Instant::now();
            let featurizer = Featurizer::new(cfg.features, lexicons.clone());
            let mut all = Encoded {
                idx: vec![],
                val: vec![],
                offsets: vec![0],
                labels: vec![],
                weights: vec![],
                two_way: vec![],
            };
            id_rows.clear();
            for (_, ex) in train {
                let file_lang = ex.first().and_then(|e| e.lang);
                let binary = ex.iter().all(|e| e.label != Label::Neutral);
                let e = encode(
                    &featurizer,
                    ex,
                    Lang::En,
                    cfg.class_weight_power_for(file_lang, binary),
                );
                if file_lang == Some(Lang::Id) {
                    id_rows.extend(all.len()..all.len() + e.len());
                }
                let base = all.idx.len();
                all.idx.extend_from_slice(&e.idx);
                all.val.extend_from_slice(&e.val);
                all.offsets.extend(e.offsets[1..].iter().map(|o| o + base));
                all.labels.extend_from_slice(&e.labels);
                all.weights.extend_from_slice(&e.weights);
                all.two_way.extend(std::iter::repeat_n(
                    binary && cfg.binary_conditional,
                    e.len(),
                ));
            }
            let devsets = dev
                .iter()
                .map(|(n, ex)| DevSet {
                    name: n.clone(),
                    gold: ex.iter().map(|e| e.label).collect(),
                    encoded: encode(&featurizer, ex, Lang::En, 0.0),
                })
                .collect();
            log(&format!(
                "Encoded {} training texts ({} features) in {:.1}s",
                all.len(),
                all.idx.len(),
                start.elapsed().as_secs_f64()
            ));
            cache = Some((
                cfg.features,
                cfg.class_weight_powers(),
                cfg.binary_conditional,
                all,
                devsets,
            ));
        }
        let (_, _, _, data, devsets) = cache.as_ref().expect("cache filled above");
        // An ensemble of `cfg.ensemble` runs with different shuffles, averaged after every epoch
        // (the model is linear, so averaging weights averages logits).
        let k = cfg.ensemble.max(1);
        let mut members: Vec<(Trainer, Vec<usize>, rand_chacha::ChaCha8Rng)> = (0..k)
            .map(|m| {
                let rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(m as u64));
                (
                    Trainer::new(cfg.features.buckets()),
                    (0..data.len())
                        .chain((1..cfg.id_repeat.max(1)).flat_map(|_| id_rows.iter().copied()))
                        .collect(),
                    rng,
                )
            })
            .collect();
        for epoch in 1..=cfg.max_epochs {
            std::thread::scope(|scope| {
                let chunk = members.len().div_ceil(2);
                for group in members.chunks_mut(chunk) {
                    scope.spawn(move || {
                        for (trainer, order, rng) in group {
                            order.shuffle(rng);
                            trainer.epoch(data, order, cfg);
                        }
                    });
                }
            });
            let header = ModelHeader {
                name: name.to_string(),
                features: cfg.features,
                temperature: 1.0,
                lexicons: lexicons.clone(),
            };
            let mut w = vec![0f32; members[0].0.w.len()];
            let mut b = [0f32; 3];
            for (t, _, _) in &members {
                for (a, x) in w.iter_mut().zip(&t.w) {
                    *a += *x / k as f32;
                }
                for (bc, tc) in b.iter_mut().zip(t.b) {
                    *bc += tc / k as f32;
                }
            }
            let mut model = FastModel::new(header, w, b);
            model.quantize();
            let reports = evaluate_dev(&model, devsets);
            let objective = mean_objective(&reports);
            let per_file = reports
                .iter()
                .map(|r| (r.file.clone(), selection_score(r)))
                .collect();
            log(&format!(
                "config {ci} epoch {epoch}: dev objective {objective:.4} {per_file:?}"
            ));
            epochs.push(EpochLog {
                config: ci,
                epoch,
                objective,
                per_file,
            });
            if best.as_ref().is_none_or(|b| objective > b.0) {
                best = Some((objective, model, *cfg, epoch, reports));
            }
        }
    }
    let (_, mut model, config, best_epoch, dev_reports) = best.expect("grid is not empty");
    let (_, _, _, _, devsets) = cache.as_ref().expect("cache filled above");
    // Devsets were encoded with the last configuration's features; re-encode if it differs.
    let reencoded;
    let devsets = if cache.as_ref().is_some_and(|c| c.0 == config.features) {
        devsets
    } else {
        reencoded = dev
            .iter()
            .map(|(n, ex)| DevSet {
                name: n.clone(),
                gold: ex.iter().map(|e| e.label).collect(),
                encoded: encode(model.featurizer(), ex, Lang::En, 0.0),
            })
            .collect::<Vec<_>>();
        &reencoded
    };
    let calibration = calibrate(&model, devsets);
    model.set_temperature(calibration.temperature);
    Outcome {
        model,
        config,
        epochs,
        best_epoch,
        dev: dev_reports,
        calibration,
    }
}

/// (logits, gold class) of every dev row.
fn dev_logits(model: &FastModel, dev: &[DevSet]) -> Vec<([f32; 3], usize)> {
    let mut out = Vec::new();
    for d in dev {
        for i in 0..d.encoded.len() {
            let (idx, val) = d.encoded.row(i);
            let feats: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
            out.push((model.logits(&feats), d.encoded.labels[i] as usize));
        }
    }
    out
}

fn nll(rows: &[&([f32; 3], usize)], t: f32) -> f64 {
    let s: f64 = rows
        .iter()
        .map(|(z, y)| -(FastModel::probs(*z, t)[*y].max(1e-12) as f64).ln())
        .sum();
    s / rows.len().max(1) as f64
}

fn fit_temperature(rows: &[&([f32; 3], usize)]) -> f32 {
    let mut best = (f64::INFINITY, 1.0f32);
    let mut t = 0.25f32;
    while t <= 5.0 {
        let v = nll(rows, t);
        if v < best.0 {
            best = (v, t);
        }
        t += 0.01;
    }
    best.1
}

/// Expected calibration error of the top-class confidence, 10 equal-width bins.
fn ece(rows: &[&([f32; 3], usize)], t: f32) -> f64 {
    let mut bins = [(0f64, 0f64, 0usize); 10];
    for (z, y) in rows {
        let s = FastModel::sentiment(FastModel::probs(*z, t));
        let b = ((s.confidence * 10.0) as usize).min(9);
        bins[b].0 += s.confidence as f64;
        bins[b].1 += f64::from(u8::from(CLASSES[*y] == s.label));
        bins[b].2 += 1;
    }
    let n = rows.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(c, a, k)| (*k as f64 / n) * ((c - a) / *k as f64).abs())
        .sum()
}

/// Fits the softmax temperature on dev (see [`Calibration`]).
pub fn calibrate(model: &FastModel, dev: &[DevSet]) -> Calibration {
    let rows = dev_logits(model, dev);
    let all: Vec<_> = rows.iter().collect();
    let even: Vec<_> = rows.iter().step_by(2).collect();
    let odd: Vec<_> = rows.iter().skip(1).step_by(2).collect();
    let t_even = fit_temperature(&even);
    let t = fit_temperature(&all);
    Calibration {
        temperature: t,
        nll_before: nll(&all, 1.0),
        nll_after: nll(&all, t),
        ece_heldout_before: ece(&odd, 1.0),
        ece_heldout_after: ece(&odd, t_even),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, label: Label) -> Example {
        Example {
            text: text.into(),
            label,
            lang: Some(Lang::En),
        }
    }

    #[test]
    fn two_way_rows_leave_the_neutral_score_alone() {
        // Features 0 and 1 occur only in negative/positive-only rows, feature 2 in a neutral row.
        let data = Encoded {
            idx: vec![0, 1, 2],
            val: vec![1.0, 1.0, 1.0],
            offsets: vec![0, 1, 2, 3],
            labels: vec![0, 2, 1],
            weights: vec![1.0; 3],
            two_way: vec![true, true, false],
        };
        let cfg = TrainConfig::default();
        let mut t = Trainer::new(3);
        for _ in 0..5 {
            t.epoch(&data, &[0, 1, 2], &cfg);
        }
        // Learnt negative against positive...
        assert!(t.w[0] > t.w[2] && t.w[3 + 2] > t.w[3]);
        // ...with no neutral weight at all; the three-way row moves all three.
        assert_eq!((t.w[1], t.w[3 + 1]), (0.0, 0.0));
        assert!(t.w[6 + 1] > 0.0 && t.w[6] < 0.0);
        // Learnt three-way, the same rows push neutral down.
        let three_way = Encoded {
            two_way: vec![false; 3],
            ..data
        };
        let mut t = Trainer::new(3);
        t.epoch(&three_way, &[0, 1, 2], &cfg);
        assert!(t.w[1] < 0.0 && t.w[3 + 1] < 0.0);
    }

    #[test]
    fn learns_a_separable_toy_problem() {
        let data: Vec<Example> = (0..60)
            .flat_map(|i| {
                [
                    ex(&format!("great lovely day {i}"), Label::Positive),
                    ex(&format!("awful terrible day {i}"), Label::Negative),
                    ex(&format!("the bus leaves at {i}"), Label::Neutral),
                ]
            })
            .collect();
        let cfg = TrainConfig {
            features: FeatureConfig {
                buckets_log2: 14,
                ..FeatureConfig::default()
            },
            max_epochs: 3,
            ..TrainConfig::default()
        };
        let train_sets = vec![("toy".to_string(), data.clone())];
        let dev_sets = vec![("toy-dev".to_string(), data)];
        let out = train(
            "toy",
            &Lexicons::default(),
            &train_sets,
            &dev_sets,
            &[cfg],
            &mut |_| {},
        );
        assert!(out.dev[0].accuracy > 0.95, "{}", out.dev[0].to_text());
        assert!(out.calibration.temperature > 0.0);
        use crate::sentiment::SentimentModel;
        assert_eq!(
            out.model
                .classify("what a great lovely thing", Lang::En)
                .label,
            Label::Positive
        );
    }

    #[test]
    fn out_of_fold_rows_are_scored_by_models_that_never_saw_them() {
        let labels = [Label::Negative, Label::Neutral, Label::Positive];
        // Each English row's label is carried only by a made-up word of its own: a model
        // that saw the row can remember it, one that did not cannot.
        let en: Vec<Example> = (0..90)
            .map(|i| ex(&format!("zq{i}x hello"), labels[i % 3]))
            .collect();
        let mut id: Vec<Example> = (0..9)
            .map(|i| ex(&format!("kata{i} halo"), labels[i % 3]))
            .collect();
        id.iter_mut().for_each(|e| e.lang = Some(Lang::Id));
        let cfg = TrainConfig {
            features: FeatureConfig {
                buckets_log2: 16,
                ..FeatureConfig::default()
            },
            max_epochs: 4,
            ..TrainConfig::default()
        };
        let sets = vec![("en".to_string(), en.clone()), ("id".to_string(), id)];
        let dev = vec![("dev".to_string(), en.clone())];
        let wanted = |e: &Example| e.lang == Some(Lang::En);
        let oof = out_of_fold(
            &Lexicons::default(),
            &sets,
            &dev,
            &cfg,
            3,
            &wanted,
            &mut |_| {},
        );
        assert_eq!(oof.len(), 2);
        assert!(
            oof[1].iter().all(Option::is_none),
            "Indonesian rows not wanted"
        );
        let probs: Vec<[f32; 3]> = oof[0]
            .iter()
            .map(|p| p.expect("every English row"))
            .collect();
        assert!(probs
            .iter()
            .all(|p| (p.iter().sum::<f32>() - 1.0).abs() < 1e-4));
        // The model trained on every row (and picked on them) remembers them; out of fold,
        // the gold class gets much less.
        let seen = train(
            "all",
            &Lexicons::default(),
            &sets,
            &dev,
            &[cfg],
            &mut |_| {},
        )
        .model;
        let gold = |i: usize| i % 3;
        let mean = |f: &dyn Fn(usize) -> f32| (0..90).map(f).sum::<f32>() / 90.0;
        let in_sample = mean(&|i| seen.probabilities(&en[i].text, Lang::En)[gold(i)]);
        let out_of_fold = mean(&|i| probs[i][gold(i)]);
        assert!(
            in_sample > out_of_fold + 0.2,
            "in sample {in_sample}, out of fold {out_of_fold}"
        );
    }
}
