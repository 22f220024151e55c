//! `gema train --tier bert`, `gema eval --tier bert|cascade` and `gema classify --tier
//! bert|cascade` (only with the `bert` feature): what they print. The work is the library's
//! (`gema::sentiment::bert`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gema::enrich::cascade::CascadeConfig;
use gema::sentiment::bert::decide::{self, DeciderOptions};
use gema::sentiment::bert::encoder::set_threads;
use gema::sentiment::bert::evaluate::evaluate;
use gema::sentiment::bert::fit::{train_bert, BertTrainOptions};
use gema::sentiment::bert::tier::BertTier;
use gema::sentiment::bert::DEFAULT_HEAD_PATH;
use gema::sentiment::classify::Decide;
use gema::sentiment::data;
use gema::sentiment::model::load_model;

use super::sentiment_args::{ClassifyArgs, EvalArgs, Tier, TrainArgs};

/// Runs `gema train --tier bert`: embeds the training and dev rows in `--head-langs`, trains the
/// head, writes it and its manifest.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let options = BertTrainOptions {
        data: args.data.clone(),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HEAD_PATH)),
        fast_model: args.fast_model.clone(),
        bert_model_dir: args.bert_model_dir.clone(),
        threads: args.threads,
        cache: args.cache.clone(),
        head_hidden: args.head_hidden,
        head_epochs: args.head_epochs,
        head_members: args.head_members,
        head_dropout: args.head_dropout,
        head_weight_decay: args.head_weight_decay,
        head_langs: args.head_langs.clone(),
        head_fast_inputs: args.head_fast_inputs,
        finetune_blocks: args.finetune_blocks,
        finetune_epochs: args.finetune_epochs,
        finetune_lr: args.finetune_lr,
        seed: args.seed,
    };
    let report = train_bert(&options, &mut |m| eprintln!("{m}"))?;
    eprintln!(
        "Wrote {} ({:.0} kB) and {} in {:.1}s",
        report.out.display(),
        report.bytes as f64 / 1e3,
        report.manifest.display(),
        report.training_time_s
    );
    Ok(())
}

/// The [`Decide`] of `gema classify --tier bert|cascade`: the fast model at `model` decides, and
/// the transformer re-decides the texts the tier escalates. `cascade` supplies the head, the
/// transformer's folder and the threshold that `args` leaves open.
pub fn decider(
    args: &ClassifyArgs,
    cascade: &CascadeConfig,
    model: &Path,
) -> anyhow::Result<Box<Decide<'static>>> {
    let head = args
        .head
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cascade.head));
    let dir = args
        .bert_model_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cascade.model_dir));
    decide::decider(&DeciderOptions {
        tier: args.tier.tier(),
        model,
        head: &head,
        model_dir: &dir,
        threshold: args.threshold.unwrap_or(cascade.confidence_below),
        threads: args.threads,
    })
}

/// Runs `gema eval --tier bert|cascade`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    set_threads(args.threads);
    let fast = Arc::new(load_model(&args.model)?);
    let tier = BertTier::load(&args.bert_model_dir, &args.head, fast.clone())?;
    let threshold = args
        .threshold
        .unwrap_or(CascadeConfig::default().confidence_below);
    for path in &args.files {
        let examples = data::read_for_eval(path, args.held_out)?;
        let e = evaluate(
            &tier,
            &fast,
            args.tier.tier(),
            threshold,
            &path.display().to_string(),
            &examples,
            args.gold_lang,
        )?;
        if args.json {
            let mut v = serde_json::to_value(&e.report)?;
            let o = v.as_object_mut().expect("a report is an object");
            o.insert("tier".into(), args.tier.as_str().into());
            o.insert("transformer_rows".into(), e.transformer_rows.into());
            o.insert(
                "transformer_fraction_of_eligible".into(),
                e.transformer_fraction.into(),
            );
            o.insert("gain_over_fast".into(), serde_json::to_value(&e.gains)?);
            if args.tier == Tier::Cascade {
                o.insert("confidence_below".into(), threshold.into());
            }
            println!("{}", serde_json::to_string(&v)?);
        } else {
            print!("{}", e.report.to_text());
            println!(
                "  tier {}: transformer decided {} of {} rows in {} ({:.1} %){}",
                args.tier.as_str(),
                e.transformer_rows,
                e.eligible,
                tier.head()
                    .langs
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                100.0 * e.transformer_fraction,
                if args.tier == Tier::Cascade {
                    format!(", fast-tier confidence below {threshold}")
                } else {
                    String::new()
                }
            );
            print!("{}", e.gains.to_text("fast tier"));
        }
    }
    Ok(())
}
