//! Training the transformer tier's head on pre-computed sentence vectors (pure Rust).
//!
//! Multinomial logistic regression with balanced class weights (they optimise macro-recall),
//! Adam on shuffled mini-batches with a fixed seed; the dev files pick the epoch, then the fusion
//! weight of the fast tier and the temperature. Nothing is fitted on dev rows.

use std::borrow::Cow;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::head::{stack_fast, EncoderSpec, Head};
use crate::sentiment::metrics::{self, Report};
use crate::sentiment::model::{FastModel, CLASSES};
use crate::sentiment::train::mean_objective;
use crate::sentiment::Label;
use crate::text::lang::Lang;

/// Knobs of head training (recorded in the manifest).
#[derive(Debug, Clone, Serialize)]
pub struct HeadTrainConfig {
    pub max_epochs: usize,
    pub lr: f32,
    pub l2: f32,
    pub batch: usize,
    pub seed: u64,
    /// Fusion weights of the fast tier tried on dev.
    pub fast_weights: Vec<f32>,
    /// Hidden units of an MLP head (0: logistic regression).
    pub hidden: usize,
    /// Dropout on the hidden layer while training.
    pub dropout: f32,
    /// MLP ensemble members (seeds `seed`, `seed + 1`, ...), each with its own best epoch.
    pub members: usize,
}

impl Default for HeadTrainConfig {
    fn default() -> Self {
        HeadTrainConfig {
            max_epochs: 20,
            lr: 1e-3,
            l2: 1e-4,
            batch: 256,
            seed: 42,
            fast_weights: vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0],
            hidden: 0,
            dropout: 0.0,
            members: 1,
        }
    }
}

/// A dev file with its sentence vectors and the fast tier's probabilities.
pub struct DevVectors {
    pub name: String,
    pub gold: Vec<Label>,
    pub x: Vec<Vec<f32>>,
    pub fast: Vec<[f32; 3]>,
}

/// Per-epoch (and per fusion weight) records for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct HeadLog {
    pub step: String,
    pub objective: f64,
    pub train_loss: f64,
}

/// The trained head and what the manifest reports about it.
pub struct HeadOutcome {
    pub head: Head,
    pub best_epoch: usize,
    pub log: Vec<HeadLog>,
    /// Dev reports of the head alone (fast weight 0) and of the fused decision.
    pub dev_head_only: Vec<Report>,
    pub dev_fused: Vec<Report>,
}

/// The head's input rows: the sentence vectors `x`, each followed by the fast tier's
/// log-probabilities when `fast` (one per row) is given (a stacked head, [`stack_fast`]).
pub fn head_inputs<'a>(x: &'a [Vec<f32>], fast: Option<&[[f32; 3]]>) -> Cow<'a, [Vec<f32>]> {
    match fast {
        None => Cow::Borrowed(x),
        Some(f) => {
            assert_eq!(f.len(), x.len(), "one fast-tier view per row");
            Cow::Owned(x.iter().zip(f).map(|(r, &p)| stack_fast(r, p)).collect())
        }
    }
}

/// Trains a head on `x` (sentence vectors) with gold `y`; `dev` chooses the epoch, the fast
/// tier's fusion weight and the temperature. With `train_fast` (the fast tier's out-of-fold
/// probabilities of each training row) the head is stacked: it reads them as inputs too.
#[allow(clippy::too_many_arguments)]
pub fn train_head(
    name: &str,
    encoder: &EncoderSpec,
    langs: Vec<Lang>,
    x: &[Vec<f32>],
    train_fast: Option<&[[f32; 3]]>,
    y: &[Label],
    dev: &[DevVectors],
    cfg: &HeadTrainConfig,
    log: &mut dyn FnMut(String),
) -> HeadOutcome {
    let x = head_inputs(x, train_fast);
    let d = encoder.head_inputs(train_fast.is_some());
    let n = x.len();
    assert!(
        n > 0 && x.iter().all(|r| r.len() == d),
        "vectors of {d} dims"
    );
    let yi: Vec<usize> = y
        .iter()
        .map(|&l| CLASSES.iter().position(|&c| c == l).expect("3-class label"))
        .collect();
    let (mean, scale) = standardizer(&x, d);
    let xs: Vec<f32> = x
        .iter()
        .flat_map(|r| {
            (0..d)
                .map(|j| (r[j] - mean[j]) * scale[j])
                .collect::<Vec<_>>()
        })
        .collect();
    let cw = class_weights(&yi);

    let mut head = Head {
        name: name.to_string(),
        encoder: encoder.clone(),
        langs,
        fast_inputs: train_fast.is_some(),
        mean,
        scale,
        hidden: None,
        weights: vec![0.0; 3 * d],
        bias: [0.0; 3],
        more: Vec::new(),
        fast_weight: 0.0,
        temperature: 1.0,
    };
    let np = 3 * d + 3;
    let (mut m1, mut m2) = (vec![0f32; np], vec![0f32; np]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut t = 0i32;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut best = (f64::NEG_INFINITY, 0usize, head.clone());
    let mut logs = Vec::new();
    let mut grad = vec![0f32; np];
    for epoch in 1..=cfg.max_epochs {
        order.shuffle(&mut rng);
        let mut loss = 0f64;
        for chunk in order.chunks(cfg.batch) {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for &i in chunk {
                let row = &xs[i * d..(i + 1) * d];
                let mut z = head.bias;
                for (zc, w) in z.iter_mut().zip(head.weights.chunks_exact(d)) {
                    *zc += w.iter().zip(row).map(|(a, b)| a * b).sum::<f32>();
                }
                let lp = super::head::log_softmax(z);
                let wgt = cw[yi[i]];
                loss -= (wgt * lp[yi[i]]) as f64;
                for c in 0..3 {
                    let g = wgt * (lp[c].exp() - if c == yi[i] { 1.0 } else { 0.0 });
                    let gw = &mut grad[c * d..(c + 1) * d];
                    gw.iter_mut().zip(row).for_each(|(a, b)| *a += g * b);
                    grad[3 * d + c] += g;
                }
            }
            let inv = 1.0 / chunk.len() as f32;
            t += 1;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for k in 0..np {
                let p = if k < 3 * d {
                    &mut head.weights[k]
                } else {
                    &mut head.bias[k - 3 * d]
                };
                let g = grad[k] * inv + if k < 3 * d { cfg.l2 * *p } else { 0.0 };
                m1[k] = b1 * m1[k] + (1.0 - b1) * g;
                m2[k] = b2 * m2[k] + (1.0 - b2) * g * g;
                *p -= cfg.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + eps);
            }
        }
        let reports = score_dev(&head, dev);
        let objective = mean_objective(&reports);
        let train_loss = loss / n as f64;
        log(format!(
            "Head epoch {epoch}: train loss {train_loss:.4}, dev objective {objective:.4}"
        ));
        logs.push(HeadLog {
            step: format!("epoch {epoch}"),
            objective,
            train_loss,
        });
        if objective > best.0 {
            best = (objective, epoch, head.clone());
        }
    }
    let (_, best_epoch, head) = best;
    finish(head, best_epoch, logs, dev, cfg, log)
}

/// Picks the fast tier's fusion weight, then the temperature, on dev for a trained head.
pub fn finish(
    mut head: Head,
    best_epoch: usize,
    mut logs: Vec<HeadLog>,
    dev: &[DevVectors],
    cfg: &HeadTrainConfig,
    log: &mut dyn FnMut(String),
) -> HeadOutcome {
    // The head's own log-probabilities do not depend on the fusion: compute them once.
    let lps: Vec<Vec<[f32; 3]>> = dev
        .iter()
        .map(|d| {
            d.x.iter()
                .zip(&d.fast)
                .map(|(x, &f)| head.log_probs(x, f))
                .collect()
        })
        .collect();
    head.fast_weight = 0.0;
    head.temperature = 1.0;
    let dev_head_only = score_fused(&head, dev, &lps);
    let mut best_w = (f64::NEG_INFINITY, 0.0f32);
    for &w in &cfg.fast_weights {
        head.fast_weight = w;
        let objective = mean_objective(&score_fused(&head, dev, &lps));
        log(format!(
            "Fast-tier fusion weight {w}: dev objective {objective:.4}"
        ));
        logs.push(HeadLog {
            step: format!("fast_weight {w}"),
            objective,
            train_loss: f64::NAN,
        });
        if objective > best_w.0 + 1e-9 {
            best_w = (objective, w);
        }
    }
    head.fast_weight = best_w.1;
    head.temperature = fit_temperature(&head, dev, &lps);
    let dev_fused = score_fused(&head, dev, &lps);
    HeadOutcome {
        head,
        best_epoch,
        log: logs,
        dev_head_only,
        dev_fused,
    }
}

/// Scores the fused decision on every dev file from pre-computed head log-probabilities.
pub fn score_fused(head: &Head, dev: &[DevVectors], lps: &[Vec<[f32; 3]>]) -> Vec<Report> {
    dev.iter()
        .zip(lps)
        .map(|(d, lp)| {
            let pred: Vec<Label> = lp
                .iter()
                .zip(&d.fast)
                .map(|(&l, &f)| FastModel::sentiment(head.fuse(l, f)).label)
                .collect();
            metrics::score(&d.name, &d.gold, &pred, 0.0)
        })
        .collect()
}

/// Per-dimension mean and inverse standard deviation of the training vectors.
pub fn standardizer(x: &[Vec<f32>], d: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len().max(1) as f64;
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    for r in x {
        for j in 0..d {
            mean[j] += r[j] as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    for r in x {
        for j in 0..d {
            var[j] += (r[j] as f64 - mean[j]).powi(2);
        }
    }
    let scale = var
        .iter()
        .map(|&v| 1.0 / ((v / n).sqrt() as f32).max(1e-6))
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), scale)
}

/// Balanced class weights `n / (3 · n_c)` (they optimise macro-recall).
pub fn class_weights(y: &[usize]) -> Vec<f32> {
    let mut counts = [0usize; 3];
    y.iter().for_each(|&c| counts[c] += 1);
    counts
        .iter()
        .map(|&k| y.len() as f32 / (3.0 * k.max(1) as f32))
        .collect()
}

/// Scores `head` (fused with the fast tier as configured) on every dev file.
pub fn score_dev(head: &Head, dev: &[DevVectors]) -> Vec<Report> {
    dev.iter()
        .map(|d| {
            let pred: Vec<Label> =
                d.x.iter()
                    .zip(&d.fast)
                    .map(|(x, &f)| head.decide(x, f).label)
                    .collect();
            metrics::score(&d.name, &d.gold, &pred, 0.0)
        })
        .collect()
}

/// The temperature minimising the fused decision's negative log-likelihood on dev.
fn fit_temperature(head: &Head, dev: &[DevVectors], lps: &[Vec<[f32; 3]>]) -> f32 {
    let rows: Vec<([f32; 3], [f32; 3], usize)> = dev
        .iter()
        .zip(lps)
        .flat_map(|(d, lp)| {
            lp.iter()
                .zip(&d.fast)
                .zip(&d.gold)
                .filter_map(|((&l, &f), &g)| {
                    let c = CLASSES.iter().position(|&k| k == g)?;
                    Some((l, f, c))
                })
        })
        .collect();
    let nll = |t: f32| {
        let mut h = head.clone();
        h.temperature = t;
        rows.iter()
            .map(|(lp, f, c)| -(h.fuse(*lp, *f)[*c].max(1e-9).ln() as f64))
            .sum::<f64>()
    };
    (10..=120)
        .map(|k| k as f32 * 0.05)
        .min_by(|a, b| nll(*a).total_cmp(&nll(*b)))
        .unwrap_or(1.0)
}

/// The fast tier's calibrated probabilities for raw `text` in `lang`.
pub fn fast_probs(fast: &FastModel, text: &str, lang: Lang) -> [f32; 3] {
    fast.probabilities(text, lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_toy_problem_and_picks_a_fusion_weight() {
        let encoder = EncoderSpec {
            hidden: 3,
            layers: vec![0],
            ..EncoderSpec::default()
        };
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            let mut v = vec![0.1 * (i % 7) as f32; 3];
            v[c] += 1.0;
            x.push(v);
            y.push(CLASSES[c]);
        }
        let dev = vec![DevVectors {
            name: "toy".into(),
            gold: y.clone(),
            x: x.clone(),
            fast: vec![[1.0 / 3.0; 3]; x.len()],
        }];
        let cfg = HeadTrainConfig {
            max_epochs: 5,
            batch: 32,
            lr: 0.05,
            ..HeadTrainConfig::default()
        };
        let out = train_head(
            "toy",
            &encoder,
            vec![Lang::En],
            &x,
            None,
            &y,
            &dev,
            &cfg,
            &mut |_| {},
        );
        assert!(
            out.dev_fused[0].accuracy > 0.95,
            "{}",
            out.dev_fused[0].to_text()
        );
        assert!(out.best_epoch >= 1 && out.head.temperature > 0.0);
        out.head.validate(std::path::Path::new("toy")).unwrap();
    }
}
