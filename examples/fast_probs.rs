//! Writes the fast tier's class probabilities for every row of the sentiment data, for
//! experiments outside Rust (`scripts/probe_encoder.py`):
//!
//! - `dev-<file>.jsonl`: one `{"probs": [neg, neu, pos], "lang": "en"|"id"|"other"}` per dev
//!   row, from the committed model with the language detected (as `gema eval` does; a row
//!   detected as `other` is unscored there).
//! - `train-<file>.jsonl`: one `[neg, neu, pos]` per training row, out of fold: the model is
//!   retrained five times with the configuration its manifest records, each time without one
//!   fold (row `i` is in fold `i % 5`), exactly as `gema train --tier bert` does for a stacked
//!   head.
//!
//! ```sh
//! cargo run --release --example fast_probs -- ../shared/data /tmp/fast-probs
//! ```

use gema::sentiment::manifest::{retrain_inputs, RetrainInputs};
use gema::sentiment::model::load_model;
use gema::sentiment::train::{out_of_fold, STACK_FOLDS};
use gema::text::lang;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MODEL: &str = "models/sentiment-fast.bin";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, out_dir] = args.as_slice() else {
        anyhow::bail!(
            "usage: fast_probs DATA_DIR OUT_DIR (DATA_DIR holds sentiment/train and sentiment/dev)"
        );
    };
    let (data_dir, out_dir) = (Path::new(data_dir), PathBuf::from(out_dir));
    std::fs::create_dir_all(&out_dir)?;
    let model = Path::new(MODEL);
    let fast = load_model(model)?;
    let RetrainInputs {
        config: cfg,
        train: train_sets,
        dev: dev_sets,
    } = retrain_inputs(data_dir, model)?;
    let create = |name: String| -> anyhow::Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::new(std::fs::File::create(out_dir.join(name))?))
    };

    for (name, rows) in &dev_sets {
        let mut out = create(format!("dev-{name}.jsonl"))?;
        for e in rows {
            let lang = lang::detect(&e.text).0;
            let probs = fast.probabilities(&e.text, lang);
            writeln!(
                out,
                "{}",
                serde_json::json!({"probs": probs, "lang": lang.as_str()})
            )?;
        }
        out.flush()?;
    }
    let oof = out_of_fold(
        fast.featurizer().lexicons(),
        &train_sets,
        &dev_sets,
        &cfg,
        STACK_FOLDS,
        &|_| true,
        &mut |m| eprintln!("{m}"),
    );
    for ((name, _), probs) in train_sets.iter().zip(oof) {
        let mut out = create(format!("train-{name}.jsonl"))?;
        for p in probs {
            let p = p.unwrap_or([1.0 / 3.0; 3]);
            writeln!(out, "{}", serde_json::json!(p))?;
        }
        out.flush()?;
    }
    eprintln!("wrote {}", out_dir.display());
    Ok(())
}
