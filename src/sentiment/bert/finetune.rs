//! Fine-tuning the transformer's top blocks together with the MLP head (tch on CPU).
//!
//! The blocks below `from_block` stay frozen: their output for every training and dev text is
//! computed once ([`Encoder::last_states`], cached on disk) and only the top blocks, the
//! pooling and the head run in training, so an epoch costs a fraction of a full fine-tune. The
//! head starts from the one trained on frozen vectors ([`super::mlp::train_mlp_head`]) and keeps
//! its standardiser; AdamW with linear warm-up and decay; the dev files pick the checkpoint
//! (the same objective as head training, head alone). The blocks are stored as float16 and the
//! chosen checkpoint is scored on dev again after that rounding.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_bert::bert::{BertConfig, BertLayer};
use serde::Serialize;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::encoder::{pool, Encoder};
use super::head::{stack_fast, EncoderSpec, Head, Hidden};
use super::mlp::to_vec;
use super::train::{class_weights, score_fused, DevVectors, HeadLog};
use crate::sentiment::model::CLASSES;
use crate::sentiment::train::mean_objective;
use crate::sentiment::Label;

/// Knobs of fine-tuning (recorded in the manifest).
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneConfig {
    /// The first trained block (0-based); blocks below it stay frozen.
    pub from_block: usize,
    pub epochs: usize,
    /// Peak learning rate of the blocks.
    pub lr: f64,
    /// Peak learning rate of the head.
    pub head_lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    /// Dev checkpoints per epoch.
    pub evals_per_epoch: usize,
    /// Share of the steps spent warming the learning rates up (then linear decay to 0).
    pub warmup_share: f64,
    /// Dropout on the head's hidden layer (the blocks use the checkpoint's own dropout).
    pub head_dropout: f64,
    pub seed: u64,
}

/// The fine-tuned head and blocks.
pub struct FinetuneOutcome {
    /// The head with its new weights (standardiser, fusion weight and temperature as given).
    pub head: Head,
    /// The trained blocks' weights as float16, by checkpoint name, sorted by name.
    pub blocks: Vec<(String, Tensor)>,
    /// Which checkpoint dev chose, e.g. `epoch 2 step 1/4`.
    pub best_step: String,
    pub log: Vec<HeadLog>,
    /// Dev sentence vectors from the stored (float16) blocks, one list per dev file.
    pub dev_x: Vec<Vec<Vec<f32>>>,
}

/// Frozen-block outputs of `texts`, read from the cache file `path` when it holds them, else
/// computed and written there (the caller keys `path` by the texts, the encoder spec and the
/// number of frozen blocks). The cache is float32, so a run that reads it trains on exactly
/// what a run that computed the states did (a float16 cache made reruns diverge from the first
/// run); an older float16 file is recomputed. `log` hears where the states came from and how
/// computing them progresses; `what` names the texts there.
pub fn frozen_states_cached(
    encoder: &Encoder,
    texts: &[&str],
    path: &Path,
    what: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Tensor>> {
    if let Ok(named) = Tensor::read_safetensors(path) {
        let get = |n: &str| named.iter().find(|(k, _)| k == n).map(|(_, t)| t);
        if let (Some(all), Some(lens)) = (get("states"), get("lengths")) {
            let lens = Vec::<i64>::try_from(lens)?;
            if all.kind() == Kind::Float
                && lens.len() == texts.len()
                && lens.iter().sum::<i64>() == all.size()[0]
            {
                log(&format!(
                    "Frozen states of {what}: {} rows from {}",
                    texts.len(),
                    path.display()
                ));
                return Ok(all.split_with_sizes(lens.as_slice(), 0));
            }
        }
    }
    let start = std::time::Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(2048) {
        out.extend(encoder.last_states(chunk, 32)?);
        log(&format!(
            "Frozen states of {what}: {}/{} rows, {:.0} texts/s",
            out.len(),
            texts.len(),
            out.len() as f64 / start.elapsed().as_secs_f64()
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let lens: Vec<i64> = out.iter().map(|t| t.size()[0]).collect();
    let all = Tensor::cat(&out, 0);
    Tensor::write_safetensors(
        &[("states", all), ("lengths", Tensor::from_slice(&lens))],
        path,
    )?;
    Ok(out)
}

/// Checks that `start` can be fine-tuned from block `from_block` of `total`: a single MLP head,
/// and [`check_blocks`].
pub fn check_start(start: &Head, from_block: usize, total: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        start.hidden.is_some(),
        "fine-tuning needs an MLP head (--head-hidden > 0)"
    );
    anyhow::ensure!(
        start.more.is_empty(),
        "fine-tuning takes a single head (--head-members 1)"
    );
    check_blocks(&start.encoder, from_block, total)
}

/// Checks that blocks `from_block..total` can be fine-tuned for a head pooling `spec.layers`:
/// the frozen part keeps at least one block, and every pooled layer is the frozen part's
/// output or above it.
fn check_blocks(spec: &EncoderSpec, from_block: usize, total: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        from_block >= 1 && from_block < total,
        "fine-tuned blocks must start in 1..{total}"
    );
    anyhow::ensure!(
        spec.layers
            .iter()
            .all(|&l| l + 1 >= from_block && l < total),
        "the head pools layers {:?}; fine-tuning from block {from_block} can only pool layers \
         >= {}: fine-tune at least {} blocks",
        spec.layers,
        from_block - 1,
        total - spec.layers.iter().min().copied().unwrap_or(0) - 1
    );
    Ok(())
}

/// The trainable top of the encoder plus the head.
struct Model {
    vs: nn::VarStore,
    blocks: Vec<BertLayer>,
    l1: nn::Linear,
    l2: nn::Linear,
    mean: Tensor,
    scale: Tensor,
    from_block: usize,
    layers: Vec<usize>,
}

impl Model {
    /// Sentence vectors (`[rows, dim]`, before the head's standardiser) from the frozen
    /// states `x` (`[rows, tokens, hidden]`) and their mask.
    fn pooled(&self, x: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let additive = ((mask.to_kind(Kind::Float) * -1.0 + 1.0) * -10000.0)
            .unsqueeze(1)
            .unsqueeze(1);
        // outs[k] is the output of block from_block - 1 + k.
        let mut outs = vec![x.shallow_clone()];
        for b in &self.blocks {
            let h = b
                .forward_t(
                    outs.last().expect("input"),
                    Some(&additive),
                    None,
                    None,
                    train,
                )
                .hidden_state;
            outs.push(h);
        }
        let parts: Vec<Tensor> = self
            .layers
            .iter()
            .map(|&l| pool(&outs[l + 1 - self.from_block], mask))
            .collect();
        Tensor::cat(&parts, 1)
    }

    /// The head's logits for sentence vectors, followed by the fast tier's log-probabilities
    /// (`[rows, 3]`) for a stacked head.
    fn logits(&self, pooled: &Tensor, fast: Option<&Tensor>, train: bool, dropout: f64) -> Tensor {
        let input = match fast {
            Some(f) => Tensor::cat(&[pooled, f], 1),
            None => pooled.shallow_clone(),
        };
        let s = (input - &self.mean) * &self.scale;
        self.l2
            .forward(&self.l1.forward(&s).relu().dropout(dropout, train))
    }
}

/// Pads the frozen states of rows `idx` into `[rows, longest, hidden]` with a mask.
fn batch(states: &[Tensor], idx: &[usize]) -> (Tensor, Tensor) {
    let rows: Vec<&Tensor> = idx.iter().map(|&i| &states[i]).collect();
    let x = Tensor::pad_sequence(&rows, true, 0.0);
    let len = x.size()[1];
    let mut mask = Vec::with_capacity(idx.len() * len as usize);
    for r in &rows {
        let n = r.size()[0];
        mask.extend((0..len).map(|k| i64::from(k < n)));
    }
    let mask = Tensor::from_slice(&mask).view([idx.len() as i64, len]);
    (x, mask)
}

/// Dev sentence vectors of every dev file (no dropout), as rows.
fn dev_vectors(model: &Model, dev_states: &[Vec<Tensor>]) -> Vec<Vec<Vec<f32>>> {
    tch::no_grad(|| {
        dev_states
            .iter()
            .map(|states| {
                let mut out = vec![Vec::new(); states.len()];
                let mut order: Vec<usize> = (0..states.len()).collect();
                order.sort_by_key(|&i| states[i].size()[0]);
                for chunk in order.chunks(64) {
                    let (x, mask) = batch(states, chunk);
                    let p = model.pooled(&x, &mask, false);
                    let d = p.size()[1] as usize;
                    let flat = to_vec(&p);
                    for (k, &i) in chunk.iter().enumerate() {
                        out[i] = flat[k * d..(k + 1) * d].to_vec();
                    }
                }
                out
            })
            .collect()
    })
}

/// Fine-tunes blocks `cfg.from_block..` of the checkpoint in `model_dir` with `start`'s MLP
/// head on the frozen states of the training rows (`y` their labels; `train_fast` the fast
/// tier's out-of-fold probabilities of each, needed by a stacked head); `dev_states` are the dev
/// files' frozen states in `dev`'s order.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    model_dir: &Path,
    config: &BertConfig,
    start: &Head,
    states: &[Tensor],
    train_fast: Option<&[[f32; 3]]>,
    y: &[Label],
    dev: &[DevVectors],
    dev_states: &[Vec<Tensor>],
    cfg: &FinetuneConfig,
    log: &mut dyn FnMut(String),
) -> anyhow::Result<FinetuneOutcome> {
    let blocks_total = config.num_hidden_layers as usize;
    check_start(start, cfg.from_block, blocks_total)?;
    let hidden = start.hidden.as_ref().expect("checked by check_start");
    anyhow::ensure!(
        states.len() == y.len() && !y.is_empty(),
        "one label per row"
    );
    let train_fast = match (start.fast_inputs, train_fast) {
        (true, Some(f)) if f.len() == y.len() => Some(f),
        (false, None) => None,
        _ => anyhow::bail!("a stacked head needs one fast-tier view per training row, no other"),
    };
    let fast_rows = |idx: &[usize]| -> Option<Tensor> {
        train_fast.map(|f| {
            let flat: Vec<f32> = idx.iter().flat_map(|&i| stack_fast(&[], f[i])).collect();
            Tensor::from_slice(&flat).view([idx.len() as i64, 3])
        })
    };
    tch::manual_seed(cfg.seed as i64);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let blocks: Vec<BertLayer> = (cfg.from_block..blocks_total)
        .map(|i| BertLayer::new(&root / "encoder" / "layer" / i, config))
        .collect();
    let head_root = root.set_group(1) / "head";
    let d = start.dim() as i64;
    let units = hidden.bias.len() as i64;
    let l1 = nn::linear(&head_root / "l1", d, units, Default::default());
    let l2 = nn::linear(&head_root / "l2", units, 3, Default::default());
    let weights = model_dir.join("model.safetensors");
    let missing = vs.load_partial(&weights)?;
    anyhow::ensure!(
        missing.iter().all(|m| m.starts_with("head.")),
        "{} lacks {:?}",
        weights.display(),
        missing
    );
    tch::no_grad(|| {
        let set = |t: &Tensor, v: &[f32]| {
            let mut t = t.shallow_clone();
            t.copy_(&Tensor::from_slice(v).view(t.size().as_slice()));
        };
        set(&l1.ws, &hidden.weights);
        set(l1.bs.as_ref().expect("bias"), &hidden.bias);
        set(&l2.ws, &start.weights);
        set(l2.bs.as_ref().expect("bias"), &start.bias);
    });
    let model = Model {
        vs,
        blocks,
        l1,
        l2,
        mean: Tensor::from_slice(&start.mean).view([1, d]),
        scale: Tensor::from_slice(&start.scale).view([1, d]),
        from_block: cfg.from_block,
        layers: start.encoder.layers.clone(),
    };
    let mut opt = nn::AdamW::default()
        .wd(cfg.weight_decay)
        .build(&model.vs, cfg.lr)?;

    let yi: Vec<usize> = y
        .iter()
        .map(|&l| CLASSES.iter().position(|&c| c == l).expect("3-class label"))
        .collect();
    let cw = Tensor::from_slice(&class_weights(&yi));
    let n = states.len();
    let per_epoch = n.div_ceil(cfg.batch.max(1));
    let total = per_epoch * cfg.epochs.max(1);
    let warmup = ((total as f64 * cfg.warmup_share) as usize).max(1);
    let eval_every = per_epoch.div_ceil(cfg.evals_per_epoch.max(1));
    let mut judge = start.clone();
    judge.fast_weight = 0.0;
    judge.temperature = 1.0;
    let evaluate = |model: &Model| -> f64 {
        let vecs = dev_vectors(model, dev_states);
        let lps: Vec<Vec<[f32; 3]>> = tch::no_grad(|| {
            vecs.iter()
                .zip(dev)
                .map(|(rows, dv)| {
                    if rows.is_empty() {
                        return Vec::new();
                    }
                    let flat: Vec<f32> = rows
                        .iter()
                        .zip(&dv.fast)
                        .flat_map(|(x, &f)| start.input(x, f).into_owned())
                        .collect();
                    let p = Tensor::from_slice(&flat).view([rows.len() as i64, d]);
                    let lp = to_vec(
                        &model
                            .logits(&p, None, false, 0.0)
                            .log_softmax(-1, Kind::Float),
                    );
                    lp.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
                })
                .collect()
        });
        mean_objective(&score_fused(&judge, dev, &lps))
    };
    let snapshot = |model: &Model| -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = model
            .vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.detach().copy()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let mut logs = Vec::new();
    let objective = evaluate(&model);
    log(format!("Fine-tuning: dev objective before {objective:.4}"));
    logs.push(HeadLog {
        step: "start".into(),
        objective,
        train_loss: f64::NAN,
    });
    let mut best = (objective, "start".to_string(), snapshot(&model));
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut step = 0usize;
    let began = std::time::Instant::now();
    for epoch in 1..=cfg.epochs {
        // Shuffle, then sort windows of 32 batches by length so padding stays small, then
        // shuffle the batches.
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for window in order.chunks(cfg.batch * 32) {
            let mut w = window.to_vec();
            w.sort_by_key(|&i| states[i].size()[0]);
            batches.extend(w.chunks(cfg.batch).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng);
        let (mut loss_sum, mut rows) = (0f64, 0usize);
        for (k, idx) in batches.iter().enumerate() {
            let f = if step < warmup {
                (step + 1) as f64 / warmup as f64
            } else {
                (total - step) as f64 / (total - warmup).max(1) as f64
            };
            opt.set_lr_group(0, cfg.lr * f);
            opt.set_lr_group(1, cfg.head_lr * f);
            let (x, mask) = batch(states, idx);
            let yb = Tensor::from_slice(&idx.iter().map(|&i| yi[i] as i64).collect::<Vec<_>>());
            let logits = model.logits(
                &model.pooled(&x, &mask, true),
                fast_rows(idx).as_ref(),
                true,
                cfg.head_dropout,
            );
            let loss = logits.cross_entropy_loss(&yb, Some(&cw), tch::Reduction::Mean, -100, 0.0);
            opt.backward_step_clip_norm(&loss, 1.0);
            loss_sum += loss.double_value(&[]) * idx.len() as f64;
            rows += idx.len();
            step += 1;
            if (k + 1) % eval_every == 0 || k + 1 == batches.len() {
                let part = (k + 1).div_ceil(eval_every);
                let parts = batches.len().div_ceil(eval_every);
                let name = format!("epoch {epoch} step {part}/{parts}");
                let objective = evaluate(&model);
                let train_loss = loss_sum / rows.max(1) as f64;
                log(format!(
                    "Fine-tuning {name}: train loss {train_loss:.4}, dev objective \
                     {objective:.4} ({:.0} s)",
                    began.elapsed().as_secs_f64()
                ));
                logs.push(HeadLog {
                    step: name.clone(),
                    objective,
                    train_loss,
                });
                if objective > best.0 {
                    best = (objective, name, snapshot(&model));
                }
                (loss_sum, rows) = (0.0, 0);
            }
        }
    }
    let (_, best_step, weights) = best;
    // Restore the chosen checkpoint, with the blocks rounded to float16 as stored.
    let vars = model.vs.variables();
    let mut stored = Vec::new();
    tch::no_grad(|| {
        for (name, t) in &weights {
            let mut v = vars[name].shallow_clone();
            if name.starts_with("head.") {
                v.copy_(t);
            } else {
                let half = t.to_kind(Kind::Half);
                v.copy_(&half.to_kind(Kind::Float));
                stored.push((name.clone(), half));
            }
        }
    });
    let mut head = start.clone();
    head.hidden = Some(Hidden {
        weights: to_vec(&model.l1.ws),
        bias: to_vec(model.l1.bs.as_ref().expect("bias")),
    });
    head.weights = to_vec(&model.l2.ws);
    let b = to_vec(model.l2.bs.as_ref().expect("bias"));
    head.bias = [b[0], b[1], b[2]];
    let dev_x = dev_vectors(&model, dev_states);
    Ok(FinetuneOutcome {
        head,
        blocks: stored,
        best_step,
        log: logs,
        dev_x,
    })
}
