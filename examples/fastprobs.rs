// Temporary experiment helper (not committed): fast-tier probabilities per row.
use gema::sentiment::{
    data, lang,
    model::load_model,
    train::{out_of_fold, TrainConfig},
};
use std::io::Write;
use std::path::Path;

fn main() {
    let data_dir = Path::new("/work/shared/data");
    let out_dir = Path::new("/tmp/probe/fast");
    std::fs::create_dir_all(out_dir).unwrap();
    let fast = load_model(Path::new("models/sentiment-fast.bin")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read("models/sentiment-fast.manifest.json").unwrap())
            .unwrap();
    let cfg: TrainConfig = serde_json::from_value(manifest["chosen"].clone()).unwrap();
    let read_all = |dir: &Path| -> Vec<(String, Vec<data::Example>)> {
        data::jsonl_files(dir)
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p.file_stem().unwrap().to_string_lossy().into_owned(),
                    data::read_jsonl(p).unwrap(),
                )
            })
            .collect()
    };
    let train_sets = read_all(&data_dir.join("sentiment/train"));
    let dev_sets = read_all(&data_dir.join("sentiment/dev"));
    for (name, ex) in &dev_sets {
        let mut f = std::fs::File::create(out_dir.join(format!("dev-{name}.jsonl"))).unwrap();
        for e in ex {
            let (dl, _) = lang::detect(&e.text);
            let p = fast.probabilities(&e.text, e.lang.unwrap_or(lang::Lang::En));
            let pd = fast.probabilities(&e.text, dl);
            writeln!(
                f,
                "{}",
                serde_json::json!({"gold": p, "det": pd, "detlang": dl.as_str()})
            )
            .unwrap();
        }
    }
    let oof = out_of_fold(
        fast.featurizer().lexicons(),
        &train_sets,
        &dev_sets,
        &cfg,
        5,
        &|_| true,
        &mut |m| eprintln!("{m}"),
    );
    for ((name, _), p) in train_sets.iter().zip(oof) {
        let mut f = std::fs::File::create(out_dir.join(format!("train-{name}.jsonl"))).unwrap();
        for p in p {
            writeln!(f, "{}", serde_json::json!(p.unwrap())).unwrap();
        }
    }
}
