//! Training a one-hidden-layer head with tch (libtorch's autograd and AdamW on CPU). The result is
//! an ordinary [`Head`] with a [`Hidden`] layer, run in plain Rust at inference.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::head::{EncoderSpec, Head, Hidden, Member};
use super::train::{
    class_weights, finish, head_inputs, score_fused, standardizer, DevVectors, HeadLog,
    HeadOutcome, HeadTrainConfig,
};
use crate::sentiment::model::CLASSES;
use crate::sentiment::train::mean_objective;
use crate::sentiment::Label;
use crate::text::lang::Lang;

/// The values of a float tensor, flattened.
pub(super) fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.detach().to_kind(Kind::Float).contiguous().view([-1]))
        .expect("a float tensor converts")
}

/// Trains a ReLU MLP head (`cfg.hidden` units, dropout `cfg.dropout`) on `x`; dev picks the
/// epoch, then the fusion weight and the temperature (see [`finish`]). With `train_fast` (the
/// fast tier's out-of-fold probabilities of each training row) the head is stacked.
#[allow(clippy::too_many_arguments)]
pub fn train_mlp_head(
    name: &str,
    encoder: &EncoderSpec,
    langs: Vec<Lang>,
    x: &[Vec<f32>],
    train_fast: Option<&[[f32; 3]]>,
    y: &[Label],
    dev: &[DevVectors],
    cfg: &HeadTrainConfig,
    log: &mut dyn FnMut(String),
) -> anyhow::Result<HeadOutcome> {
    let x = head_inputs(x, train_fast);
    let d = encoder.head_inputs(train_fast.is_some());
    let n = x.len();
    anyhow::ensure!(
        n > 0 && x.iter().all(|r| r.len() == d),
        "vectors of {d} dims"
    );
    let yi: Vec<usize> = y
        .iter()
        .map(|&l| CLASSES.iter().position(|&c| c == l).expect("3-class label"))
        .collect();
    let (mean, scale) = standardizer(&x, d);
    let standardize = |rows: &[Vec<f32>]| -> Tensor {
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| (0..d).map(|j| (r[j] - mean[j]) * scale[j]))
            .collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, d as i64])
    };
    let xs = standardize(&x);
    let ys = Tensor::from_slice(&yi.iter().map(|&c| c as i64).collect::<Vec<_>>());
    let cw = Tensor::from_slice(&class_weights(&yi));
    let dev_x: Vec<Tensor> = dev
        .iter()
        .map(|dv| standardize(&head_inputs(&dv.x, train_fast.map(|_| dv.fast.as_slice()))))
        .collect();

    let mut head = Head {
        name: name.to_string(),
        encoder: encoder.clone(),
        langs,
        fast_inputs: train_fast.is_some(),
        mean: mean.clone(),
        scale: scale.clone(),
        hidden: None,
        weights: Vec::new(),
        bias: [0.0; 3],
        more: Vec::new(),
        fast_weight: 0.0,
        temperature: 1.0,
    };
    let mut logs = Vec::new();
    let mut epochs = Vec::new();
    for member in 0..cfg.members.max(1) {
        let seed = cfg.seed + member as u64;
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let l1 = nn::linear(
            &root / "l1",
            d as i64,
            cfg.hidden as i64,
            Default::default(),
        );
        let l2 = nn::linear(&root / "l2", cfg.hidden as i64, 3, Default::default());
        let mut opt = nn::AdamW::default()
            .wd(cfg.l2 as f64)
            .build(&vs, cfg.lr as f64)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<i64> = (0..n as i64).collect();
        let mut best: Option<(f64, usize, Member)> = None;
        for epoch in 1..=cfg.max_epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0f64;
            for chunk in order.chunks(cfg.batch) {
                let idx = Tensor::from_slice(chunk);
                let xb = xs.index_select(0, &idx);
                let yb = ys.index_select(0, &idx);
                let logits = l2.forward(&l1.forward(&xb).relu().dropout(cfg.dropout as f64, true));
                let loss =
                    logits.cross_entropy_loss(&yb, Some(&cw), tch::Reduction::Mean, -100, 0.0);
                opt.backward_step(&loss);
                loss_sum += loss.double_value(&[]) * chunk.len() as f64;
            }
            // Dev: this member alone (fusion weight 0), one forward pass per file.
            let lps: Vec<Vec<[f32; 3]>> = tch::no_grad(|| {
                dev_x
                    .iter()
                    .map(|t| {
                        let lp = to_vec(
                            &l2.forward(&l1.forward(t).relu())
                                .log_softmax(-1, Kind::Float),
                        );
                        lp.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
                    })
                    .collect()
            });
            let objective = mean_objective(&score_fused(&head, dev, &lps));
            let train_loss = loss_sum / n as f64;
            log(format!(
                "Head member {member} epoch {epoch}: train loss {train_loss:.4}, dev objective \
                 {objective:.4}"
            ));
            logs.push(HeadLog {
                step: format!("member {member} epoch {epoch}"),
                objective,
                train_loss,
            });
            if best.as_ref().is_none_or(|b| objective > b.0) {
                let b = to_vec(l2.bs.as_ref().expect("bias"));
                let m = Member {
                    hidden: Some(Hidden {
                        weights: to_vec(&l1.ws),
                        bias: to_vec(l1.bs.as_ref().expect("bias")),
                    }),
                    weights: to_vec(&l2.ws),
                    bias: [b[0], b[1], b[2]],
                };
                best = Some((objective, epoch, m));
            }
        }
        let (_, epoch, m) = best.ok_or_else(|| anyhow::anyhow!("max_epochs is 0"))?;
        epochs.push(epoch);
        if member == 0 {
            head.hidden = m.hidden;
            head.weights = m.weights;
            head.bias = m.bias;
        } else {
            head.more.push(m);
        }
    }
    let best_epoch = epochs[0];
    head.validate(std::path::Path::new(name))?;
    Ok(finish(head, best_epoch, logs, dev, cfg, log))
}
