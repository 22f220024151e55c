//! People's sentiment corrections end to end on the real ClickHouse: through the API (token
//! auth, bad input), shown with the mention in the API and the CLI, exported by
//! `gema mentions corrections`, and learnt by `gema train --corrections` with its before/after
//! report.

mod common;
mod serve_harness;

use std::process::Command;

use serde_json::{json, Value};
use serve_harness::*;

fn gema(s: &Server, args: &[&str]) -> std::process::Output {
    let c = &s.env.config.clickhouse;
    Command::new(env!("CARGO_BIN_EXE_gema"))
        .args(args)
        .env("GEMA_CLICKHOUSE_URL", &c.url)
        .env("GEMA_CLICKHOUSE_DATABASE", &c.database)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn mention_by_key<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == key)
        .unwrap_or_else(|| panic!("{key} not in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_are_stored_shown_exported_and_trained_on() {
    let s = Server::start("corrections", false).await;
    let (_, v) = s.get("/api/mentions?since=1d").await;
    let m = mention_by_key(&v, "x:n0");
    assert_eq!(m["sentiment"], "negative");
    assert_eq!(m["corrected_label"], "");

    // Bad input is refused with the reason; an unknown key is 404; no token is 401.
    let path = "/api/mentions/x:n0/sentiment";
    let (st, body) = s.post_json(path, &json!({"label": "unscored"})).await;
    assert_eq!(st, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("label"), "{body}");
    let (st, _) = s
        .post_json(path, &json!({"label": "neutral", "extra": 1}))
        .await;
    assert_eq!(st, 400);
    let (st, body) = s
        .post_json(
            "/api/mentions/x:nope/sentiment",
            &json!({"label": "neutral"}),
        )
        .await;
    assert_eq!(st, 404, "{body}");
    let r = s
        .http
        .post(format!("{}{path}", s.url))
        .header("content-type", "application/json")
        .body(json!({"label": "neutral"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A correction by the API, then a later one by the CLI: the latest wins.
    let (st, c) = s
        .post_json(path, &json!({"label": "positive", "by": "ana"}))
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        (
            c["label"].as_str(),
            c["previous_label"].as_str(),
            c["corrected_by"].as_str()
        ),
        (Some("positive"), Some("negative"), Some("ana"))
    );
    assert!(c["corrected_at"].as_str().unwrap().contains('T'), "{c}");
    let out = gema(
        &s,
        &["mentions", "correct", "x:n0", "neutral", "--by", "budi"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("negative → neutral (by budi"));
    let out = gema(&s, &["mentions", "correct", "x:missing", "neutral"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stored mention has the key"));
    let out = gema(&s, &["mentions", "correct", "x:n0", "unscored"]);
    assert!(!out.status.success());

    let (_, v) = s.get("/api/mentions?since=1d").await;
    let m = mention_by_key(&v, "x:n0");
    assert_eq!(
        (m["corrected_label"].as_str(), m["corrected_by"].as_str()),
        (Some("neutral"), Some("budi"))
    );
    assert_eq!(m["sentiment"], "negative", "gema's own verdict stays");
    let out = gema(&s, &["mentions", "--since", "1d", "--limit", "100"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("→ neutral (budi)"));

    // Export: one row per mention, the latest label, ready for training.
    let export = s.env.dir.path().join("corrections.jsonl");
    let out = gema(
        &s,
        &["mentions", "corrections", "--out", export.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["label"], "neutral");
    assert_eq!(rows[0]["lang"], "id");
    assert_eq!(rows[0]["text"], "NusaPay gagal top up lagi #NusaPayDown");

    // Training on toy data with the corrections: the manifest records them and the scores of
    // the model it replaced next to the new one's.
    let data = s.env.dir.path().join("data");
    toy_data(&data);
    let model = s.env.dir.path().join("m/fast.bin");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--epochs",
            "2",
            "--buckets-log2",
            "12",
        ];
        args.extend_from_slice(extra);
        gema(&s, &args)
    };
    let out = train(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = train(&[
        "--corrections",
        export.to_str().unwrap(),
        "--corrections-weight",
        "5",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 rows, 1 distinct texts in English or Indonesian, each counted 5 times"),
        "{err}"
    );
    assert!(err.contains("Before → after"), "{err}");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(s.env.dir.path().join("m/fast.manifest.json")).unwrap(),
    )
    .unwrap();
    let c = &manifest["corrections"];
    assert_eq!(
        (c["rows"].as_u64(), c["weight"].as_u64()),
        (Some(1), Some(5)),
        "{c}"
    );
    let table = c["before_after"].as_array().unwrap();
    let last = table.last().unwrap();
    assert_eq!(last["file"], "corrections");
    assert!(last["before"]["n"].as_u64() == Some(1) && last["after"]["n"].as_u64() == Some(1));
    s.stop().await;
}

fn toy_data(dir: &std::path::Path) {
    let write = |rel: &str, body: String| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    let row = |t: String, l: &str, lang: &str| {
        json!({"text": t, "label": l, "lang": lang}).to_string() + "\n"
    };
    let mut train = String::new();
    for i in 0..30 {
        train += &row(
            format!("pelayanan bagus sekali, saya puas {i}"),
            "positive",
            "id",
        );
        train += &row(
            format!("aplikasi error terus, kecewa berat {i}"),
            "negative",
            "id",
        );
        train += &row(
            format!("toko buka jam delapan pagi hari ini {i}"),
            "neutral",
            "id",
        );
    }
    write("sentiment/train/id-toy.jsonl", train.clone());
    write("sentiment/dev/id-toy-dev.jsonl", train);
    write("lexicons/vader_lexicon.txt", "good\t1.9\t0.5\t[]\n".into());
    write(
        "lexicons/inset_positive.tsv",
        "word\tweight\nbagus\t3\n".into(),
    );
    write(
        "lexicons/inset_negative.tsv",
        "word\tweight\nkecewa\t-4\n".into(),
    );
    write(
        "lexicons/vader_emoji_utf8_lexicon.txt",
        "😀\tgrinning face\n".into(),
    );
}
