//! Several ClickHouse URLs (`[clickhouse] url = "http://a:8123,http://b:8123"`), on the real
//! Kafka and ClickHouse (`scripts/services.sh up`): with the first URL refusing connections,
//! as a stopped replica does, gema migrates, stores and reads through the next one; with none
//! answering, the error names each. (The fault suite's scale-out run stops a replica of a real
//! two-replica cluster; this test needs only the one server.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestEnv;
use gema::enrich::Enricher;
use gema::kafka::Group;
use gema::mention::Mention;
use gema::pipeline::Stage;
use gema::sentiment::lexicon::LexiconModel;

/// A local address nothing listens on.
fn refusing_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_refuses_is_passed_over() {
    let mut env = TestEnv::new("failover");
    let live = env.config.clickhouse.url.clone();
    let dead = refusing_url();
    env.config.clickhouse.url = format!("{dead},{live}");
    env.config.clickhouse.validate().unwrap();
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let sink = common::start_builtin(&env, Some(&store), &[Stage::Sink]);
    let enricher = Enricher::new(Arc::new(LexiconModel));
    let mentions: Vec<_> = (0..20)
        .map(|i| {
            let raw = serde_json::json!({
                "id": i.to_string(), "platform": "x", "text": format!("post {i} about nusapay"),
                "created_at": "2026-12-07T10:00:00Z", "author": {"id": "a", "handle": "ann"},
            });
            enricher.enrich(Mention::parse(raw.to_string().as_bytes()).unwrap())
        })
        .collect();
    env.send_enriched(&mentions).await;
    env.wait_lag(Group::SinkMentions, Duration::from_secs(60))
        .await;
    sink.stop().await.unwrap();
    assert_eq!(store.count_mentions().await.unwrap(), 20);
    env.cleanup(&store).await;

    // No replica answers: the error says so and names each URL.
    let mut none = env.config.clickhouse.clone();
    let other = refusing_url();
    none.url = format!("{dead},{other}");
    let err = gema::store::connect(&none).await.err().unwrap();
    // The error with its causes, as `gema` prints it.
    let mut e = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        e.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        e.contains("no ClickHouse replica accepts a connection")
            && e.contains(&dead)
            && e.contains(&other),
        "{e}"
    );
}
