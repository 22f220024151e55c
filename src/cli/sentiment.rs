//! `gema train`, `gema eval` and `gema classify`: their arguments, and what they print. The
//! work is the library's (`gema::sentiment`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use gema::config::EnrichConfig;
use gema::sentiment::classify::{self, Decide, Route};
use gema::sentiment::data;
use gema::sentiment::evaluate::evaluate;
use gema::sentiment::fit::{train_fast, CorrectionSet, FastTrainOptions, GridOverrides};
use gema::sentiment::lexicon::LexiconModel;
use gema::sentiment::model::{load_model, DEFAULT_MODEL_PATH};
use gema::sentiment::{Label, SentimentModel};
use gema::text::lang::Lang;

pub use super::sentiment_args::{ClassifyArgs, EvalArgs, Tier, TrainArgs};

/// Runs `gema train`.
pub fn run_train(args: &TrainArgs, config: &gema::config::Config) -> anyhow::Result<()> {
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
        corrections: match &args.corrections {
            // Brand names are masked as the enrich stage masks them, with the tracked queries.
            Some(path) => {
                let queries = gema::tracked::QuerySet::compile(&config.tracked)?;
                Some(CorrectionSet::read(path, |text, lang| {
                    gema::enrich::enricher::masked_for_scoring(&queries, text, lang.as_str())
                })?)
            }
            None => None,
        },
        corrections_weight: args.corrections_weight as usize,
        overrides: GridOverrides {
            lr: args.lr,
            l2: args.l2,
            class_weight_power: args.class_weight_power,
            class_weight_power_id: args.class_weight_power_id,
            class_weight_power_binary: args.class_weight_power_binary,
            binary_conditional: args.binary_conditional,
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
        let examples = data::read_for_eval(path, args.held_out)?;
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
        Tier::Fast => classify::fast_decider(fast.clone()),
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
            "auto" => fast.language(text, hint.as_deref()),
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
                o.insert("normalized".into(), fast.normalized(text).into());
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
            println!("          read as: {}", fast.normalized(text));
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
