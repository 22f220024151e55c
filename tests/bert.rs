//! The transformer tier end to end (only with `--features bert`, after `scripts/bert-deps.sh`):
//! the committed head loads with the real all-MiniLM-L6-v2, gets obvious posts right, and the
//! cascade worker answers through its bounded queue.
#![cfg(feature = "bert")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gema::enrich::cascade::{Cascade, CascadeConfig, Offer};
use gema::enrich::Enricher;
use gema::mention::Mention;
use gema::sentiment::bert::tier::BertTier;
use gema::sentiment::bert::DEFAULT_HEAD_PATH;
use gema::sentiment::{load_model, Label, Lang, DEFAULT_MODEL_PATH};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    std::env::var_os("GEMA_BERT_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(gema::sentiment::bert::DEFAULT_MODEL_DIR))
}

fn fast() -> Arc<gema::sentiment::FastModel> {
    Arc::new(load_model(&root().join(DEFAULT_MODEL_PATH)).unwrap())
}

#[test]
fn committed_head_with_the_transformer_gets_obvious_posts_right() {
    let tier = BertTier::load(&model_dir(), &root().join(DEFAULT_HEAD_PATH), fast()).unwrap();
    let items = [
        (
            "worst customer service ever, still no refund after 3 weeks",
            Lang::En,
        ),
        (
            "love the new update, the app is so much faster now",
            Lang::En,
        ),
        ("the store opens at 9am on monday", Lang::En),
        ("pelayanannya lambat banget, kecewa", Lang::Id),
    ];
    let v = tier.classify_batch(&items).unwrap();
    let labels: Vec<Label> = v.iter().map(|v| v.sentiment.label).collect();
    assert_eq!(
        labels,
        [
            Label::Negative,
            Label::Positive,
            Label::Neutral,
            Label::Negative
        ]
    );
    // English goes through the transformer; Indonesian keeps the fast tier's verdict.
    assert!(v[0].by_transformer && v[1].by_transformer && !v[3].by_transformer);
    assert_eq!(v[3].sentiment, v[3].fast);
    for x in &v {
        assert!((0.0..=1.0).contains(&x.sentiment.confidence));
        assert!((-1.0..=1.0).contains(&x.sentiment.score));
    }
    // A batch gives the same verdicts as one text at a time (padding does not leak).
    let one = tier.classify_batch(&items[..1]).unwrap();
    assert_eq!(one[0].sentiment.label, v[0].sentiment.label);
    assert!((one[0].sentiment.confidence - v[0].sentiment.confidence).abs() < 1e-3);
}

#[test]
fn missing_transformer_files_fail_with_the_path() {
    let err = BertTier::load(
        Path::new("/nonexistent/minilm"),
        &root().join(DEFAULT_HEAD_PATH),
        fast(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("/nonexistent/minilm") && err.contains("bert-deps.sh"),
        "{err}"
    );
}

fn mention(text: &str, followers: u64) -> Mention {
    serde_json::from_value(serde_json::json!({
        "id": "1", "platform": "x", "text": text, "created_at": "2026-11-26T10:00:00Z",
        "author": {"id": "a", "handle": "ann", "followers": followers},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_decides_queued_mentions_and_a_full_queue_keeps_the_fast_label() {
    let config = CascadeConfig {
        enabled: true,
        // Everything unsure matters; escalate everything the fast tier is below 1.0 on.
        confidence_below: 1.0,
        on_query_match: false,
        min_followers: 0,
        head: root().join(DEFAULT_HEAD_PATH).display().to_string(),
        model_dir: model_dir().display().to_string(),
        queue_capacity: 2,
        batch_size: 2,
        max_wait_ms: 30_000,
        ..CascadeConfig::default()
    };
    let fast = fast();
    let cascade = Cascade::start(&config, fast.clone()).unwrap();
    let enricher = Enricher::new(fast);
    let e = enricher.enrich(mention(
        "not sure what to think about the new app, kinda meh",
        5,
    ));
    let mut queued = Vec::new();
    let mut full = 0;
    // More offers than the queue holds, without awaiting: some must be refused, none block.
    for _ in 0..20 {
        match cascade.offer(&e) {
            Offer::Queued(p) => queued.push(p),
            Offer::QueueFull => full += 1,
            Offer::NotNeeded => panic!("an unsure English mention is wanted"),
        }
    }
    assert!(
        queued.len() >= 2 && full >= 1,
        "queued {} full {full}",
        queued.len()
    );
    for p in queued {
        let s = p
            .verdict()
            .await
            .expect("the transformer answers within 30 s");
        assert!((0.0..=1.0).contains(&s.confidence));
    }
    // Indonesian stays with the fast tier.
    let id = enricher.enrich(mention(
        "pelayanannya biasa saja sih, entah bagus entah tidak",
        5,
    ));
    assert!(matches!(cascade.offer(&id), Offer::NotNeeded));
}
