//! A stage's state per input partition in the compacted state topic (`runner::changelog`), on
//! the real broker: what is read back is the last state written for each partition, whole, even
//! when it spans many records, and a later state replaces an earlier one.

mod common;

use common::TestEnv;
use gema::kafka::client::producer;
use gema::kafka::topics::ensure_topics;
use gema::runner::changelog::Changelog;
use gema::runner::Output;

/// `n` bytes that differ from one state to the next.
fn state(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn the_last_state_of_each_partition_is_read_back_whole() {
    let env = TestEnv::new("changelog");
    ensure_topics(&env.config.kafka, &env.topics).await.unwrap();
    let topic = &env.topics.trend_state;
    // A 64 KiB record limit: a 1 MB state takes 17 records.
    let mut out = Output::new(producer(&env.config.kafka).unwrap(), 64 * 1024);
    let mut writer = Changelog::new(&env.config.kafka, topic);

    let mut fresh = Changelog::new(&env.config.kafka, topic);
    assert!(
        fresh.read(&[0, 1]).await.unwrap().is_empty(),
        "no state yet"
    );

    let (first, second, other) = (state(1, 1_000_000), state(2, 700_000), state(3, 10));
    writer.write(&mut out, 0, &first).await.unwrap();
    out.acknowledged().await.unwrap();
    let read = fresh.read(&[0, 1]).await.unwrap();
    assert_eq!(read.len(), 1, "partition 1 has none");
    assert!(read[&0] == first, "the state of partition 0, whole");

    // A smaller state replaces it (the first one's pieces are removed); another partition's
    // state is kept apart.
    writer.write(&mut out, 0, &second).await.unwrap();
    writer.write(&mut out, 1, &other).await.unwrap();
    out.acknowledged().await.unwrap();
    let mut taker = Changelog::new(&env.config.kafka, topic);
    let read = taker.read(&[0, 1, 2]).await.unwrap();
    assert_eq!(read.len(), 2);
    assert!(read[&0] == second, "the newer state of partition 0");
    assert_eq!(read[&1], other);

    // A process that took a partition up removes the state it read when it writes the next.
    taker.write(&mut out, 1, &state(4, 5)).await.unwrap();
    out.acknowledged().await.unwrap();
    let records = env.read_topic(topic);
    let tombstones = records.iter().filter(|(_, v)| v.is_empty()).count();
    // first: 16 pieces (1,000,000 bytes in 63.5 KiB pieces), second: 11, other: 1.
    assert_eq!(
        tombstones,
        16 + 1,
        "the replaced generations' pieces are tombstoned"
    );
    let read = Changelog::new(&env.config.kafka, topic)
        .read(&[1])
        .await
        .unwrap();
    assert_eq!(read[&1], state(4, 5));
}
