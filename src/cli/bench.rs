//! `gema bench`: mentions at a fixed rate through every stage on the real services; reports the
//! achieved rate, ingest → alert latency percentiles and the time to drain.

use std::time::{Duration, Instant};

use chrono::Utc;
use gema::alerts::{Alert, AlertKind};
use gema::config::Config;
use gema::kafka;
use gema::mention::Mention;
use gema::pipeline::{self, Namespace, Stage};
use gema::sources::synth::{generate, SynthOptions};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Mentions per second to send.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What this machine is, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let profile = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    format!("{cores} cores, {cpu}, {profile}")
}

pub async fn run(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.tracked.is_empty(),
        "no tracked queries configured (gema.toml)"
    );
    let mut ns = Namespace::fresh(config, "bench")?;
    // Every negative comment is measured: no rate limit, no digest.
    ns.config.alerts.router.max_per_minute = u32::MAX;
    let config = ns.config.clone();
    let running = pipeline::start(&config, &Stage::ALL).await?;
    let store = running.store.clone().expect("sink");
    let topics = config.kafka.topics();

    // Latency probe: every delivered negative-comment alert, as it arrives.
    let probe = kafka::consumer(
        &config.kafka,
        &format!("{}-bench-probe", config.kafka.topic_prefix),
    )?;
    probe.subscribe(&[&topics.alerts])?;
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let stop = probe_stop.clone();
    let latencies = tokio::spawn(async move {
        let mut out = Vec::new();
        loop {
            let m = tokio::select! {
                _ = stop.cancelled() => break,
                m = probe.recv() => m,
            };
            if let Ok(m) = m {
                if let Ok(a) = serde_json::from_slice::<Alert>(m.payload().unwrap_or(&[])) {
                    if a.kind == AlertKind::NegativeComment {
                        if let Some(s) = a.samples.first() {
                            out.push(
                                (Utc::now() - s.created_at).num_microseconds().unwrap_or(0) as f64
                                    / 1000.0,
                            );
                        }
                    }
                }
            }
        }
        out
    });

    let n = (args.rate * args.seconds) as usize;
    let pool: Vec<Mention> = generate(&SynthOptions {
        seed: 9,
        count: n.min(200_000),
        start: Utc::now(),
        span: chrono::Duration::hours(3),
        malformed: 0,
    })
    .iter()
    .map(|l| Mention::parse(l.as_bytes()).expect("synth lines are valid"))
    .collect();
    // Give the consumer groups a moment to join before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let producer = kafka::producer(&config.kafka)?;
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..n {
        let due = Duration::from_secs_f64(i as f64 / args.rate as f64);
        let elapsed = started.elapsed();
        if due > elapsed + Duration::from_millis(2) {
            tokio::time::sleep(due - elapsed).await;
        }
        let mut m = pool[i % pool.len()].clone();
        m.id = format!("{}-{i}", m.id);
        let now = Utc::now();
        m.created_at = now;
        m.ingested_at = Some(now);
        let key = m.key();
        let payload = serde_json::to_vec(&m)?;
        loop {
            match producer.send_result(FutureRecord::to(&topics.raw).key(&key).payload(&payload)) {
                Ok(d) => {
                    in_flight.push_back(d);
                    break;
                }
                Err(_) => {
                    if let Some(d) = in_flight.pop_front() {
                        let _ = d.await;
                    }
                }
            }
        }
        while in_flight.len() > 20_000 {
            let _ = in_flight.pop_front().expect("non-empty").await;
        }
    }
    for d in in_flight {
        let _ = d.await;
    }
    let send_s = started.elapsed().as_secs_f64();
    running
        .wait_for_drain(Duration::from_secs(600), Duration::from_secs(3))
        .await
        .map_err(anyhow::Error::msg)?;
    let total_s = started.elapsed().as_secs_f64() - 3.0;
    probe_stop.cancel();
    let mut lat = latencies.await?;
    lat.sort_by(f64::total_cmp);
    let metrics = running.stop().await?;
    let stored = store.count_mentions().await?;

    println!("gema bench — {}", machine());
    println!(
        "  sent              {n} mentions in {send_s:.1}s ({:.0}/s; target {}/s)",
        n as f64 / send_s,
        args.rate
    );
    println!(
        "  all stages done   {total_s:.1}s after the first mention ({:.0} mentions/s end to end)",
        n as f64 / total_s
    );
    println!("  stored            {stored} distinct mentions in ClickHouse");
    if config.enrich.cascade.enabled {
        let m = &metrics;
        let c = &config.enrich.cascade;
        println!(
            "  sentiment cascade confidence < {}, queue {}, batch {}, max wait {} ms: {} of {} \
             mentions escalated, {} decided by the transformer, {} timed out, {} kept the fast \
             label because the queue was full",
            c.confidence_below,
            c.queue_capacity,
            c.batch_size,
            c.max_wait_ms,
            m.cascade_escalated.get(),
            m.enrich_enriched.get(),
            m.cascade_decided.get(),
            m.cascade_timed_out.get(),
            m.cascade_queue_full.get()
        );
    } else {
        println!("  sentiment cascade off (fast tier only)");
    }
    println!(
        "  ingest → alert    {} negative-comment alerts: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    ns.cleanup().await;
    Ok(())
}
