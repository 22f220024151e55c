//! `gema bench`: mentions at a fixed rate through every stage on the real services; reports the
//! achieved rate, the time to drain, ingest → ClickHouse-visible and ingest → alert latency
//! percentiles, CPU per mention (this process, and the local broker and ClickHouse when
//! `scripts/services.sh` runs them), the process's peak memory and the bytes per mention each
//! topic holds on the local broker's disk, and beside them the box's ceiling with the same bytes
//! (one producer into Kafka, one consumer out, one RowBinary insert into ClickHouse); as text or
//! one JSON object.

use std::path::{Path, PathBuf};
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
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Mentions to send in all, at --rate (instead of rate × seconds), e.g. 1000000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Where scripts/services.sh keeps the local Kafka and ClickHouse (their pid files and
    /// Kafka's log directory): their CPU and the topics' bytes on disk are measured from there
    /// when it holds them.
    #[arg(long, default_value = ".gema")]
    pub services_dir: PathBuf,
    /// Measure the enrich stage alone instead: --messages mentions (default 300000) are written
    /// to a fresh raw topic first, then the enrich stage runs on that backlog with `[enrich]
    /// workers` (GEMA_ENRICH_WORKERS); prints its rate and CPU.
    #[arg(long)]
    pub enrich_backlog: bool,
}

/// CPU seconds (user + system) of process `pid` so far (`None`: no such process).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / if hz > 0 { hz as f64 } else { 100.0 })
}

/// This process's peak resident memory in bytes (VmHWM).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The pid of a local service (`<services_dir>/<name>/pid`) that is running.
fn service_pid(dir: &Path, name: &str) -> Option<String> {
    let pid = std::fs::read_to_string(dir.join(name).join("pid")).ok()?;
    let pid = pid.trim().to_string();
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Bytes of `topic`'s log segments in Kafka's log directory (every partition).
fn topic_bytes(data: &Path, topic: &str) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(data).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(partition) = name.strip_prefix(topic).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        if partition.parse::<u32>().is_err() {
            continue;
        }
        for f in std::fs::read_dir(entry.path()).ok()?.flatten() {
            if f.path().extension().is_some_and(|e| e == "log") {
                total += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// p50 / p95 / p99 / max of `sorted` (milliseconds) as JSON.
fn quantiles(sorted: &[f64]) -> serde_json::Value {
    let q = |p| {
        let v = percentile(sorted, p);
        if v.is_finite() {
            serde_json::json!((v * 10.0).round() / 10.0)
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({
        "count": sorted.len(), "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99),
        "max_ms": q(1.0),
    })
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

/// Queues one record, waiting for the oldest delivery while the producer's queue is full.
async fn queue(
    producer: &rdkafka::producer::FutureProducer,
    in_flight: &mut std::collections::VecDeque<rdkafka::producer::DeliveryFuture>,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    loop {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(d) => {
                in_flight.push_back(d);
                return;
            }
            Err(_) => match in_flight.pop_front() {
                Some(d) => {
                    let _ = d.await;
                }
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// What this box does with the same bytes without gema: mentions/s one producer gets into Kafka
/// and one consumer gets back out, and rows/s ClickHouse takes in one RowBinary insert.
struct Ceiling {
    produce: f64,
    consume: f64,
    insert: f64,
}

/// Measures [`Ceiling`] with `n` mentions of the bench feed (topics `<prefix>-ceiling.*`, deleted
/// after) and the rows `store` holds (copied into `mentions_ceiling` of its database).
async fn ceiling(config: &Config, store: &gema::store::Store, n: usize) -> anyhow::Result<Ceiling> {
    use rdkafka::consumer::BaseConsumer;
    let mut kc = config.kafka.clone();
    kc.topic_prefix = format!("{}-ceiling", config.kafka.topic_prefix);
    let topics = kc.topics();
    kafka::topics::ensure_topics(&kc, &topics).await?;
    let payloads: Vec<(String, Vec<u8>)> = feed(n).collect();
    let producer = kafka::producer(&kc)?;
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for (key, payload) in &payloads {
        queue(&producer, &mut in_flight, &topics.raw, key, payload).await;
    }
    for d in in_flight {
        let _ = d.await;
    }
    let produce = n as f64 / started.elapsed().as_secs_f64();
    let consumer: BaseConsumer = kafka::client::base_config(&kc)
        .set("group.id", format!("{}-reader", kc.topic_prefix))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topics.raw])?;
    let (mut got, mut first) = (0usize, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < n && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            got += 1;
        }
    }
    let consume = got as f64 / first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    drop(consumer);
    let _ = kafka::topics::delete_topics(&kc, &topics).await;

    let columns: Vec<String> = store
        .client
        .query(
            "SELECT name FROM system.columns WHERE database = ? AND table = 'mentions' \
             AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
        )
        .bind(store.database.as_str())
        .fetch_all()
        .await?;
    let names = columns.join(", ");
    store
        .client
        .query("CREATE TABLE IF NOT EXISTS mentions_ceiling AS mentions")
        .execute()
        .await?;
    let rows = store
        .client
        .query(&format!("SELECT {names} FROM mentions"))
        .fetch_bytes("RowBinary")?
        .collect()
        .await?;
    let count: u64 = store
        .client
        .query("SELECT count() FROM mentions")
        .fetch_one()
        .await?;
    let started = Instant::now();
    let mut insert = store.client.insert_formatted_with(format!(
        "INSERT INTO mentions_ceiling ({names}) FORMAT RowBinary"
    ));
    insert.send(rows).await?;
    insert.end().await?;
    let insert = count as f64 / started.elapsed().as_secs_f64();
    Ok(Ceiling {
        produce,
        consume,
        insert,
    })
}

/// The bench feed's mentions (synthetic, seed 9), up to 200,000, created now.
fn pool(n: usize) -> Vec<Mention> {
    generate(&SynthOptions {
        seed: 9,
        count: n.clamp(1, 200_000),
        start: Utc::now(),
        span: chrono::Duration::hours(3),
        malformed: 0,
    })
    .iter()
    .map(|l| Mention::parse(l.as_bytes()).expect("synth lines are valid"))
    .collect()
}

/// Unique copies of the synthetic feed (seed 9), `n` of them, created now.
fn feed(n: usize) -> impl Iterator<Item = (String, Vec<u8>)> {
    let pool = pool(n);
    (0..n).map(move |i| {
        let mut m = pool[i % pool.len()].clone();
        m.id = format!("{}-{i}", m.id);
        let key = m.key();
        (key, serde_json::to_vec(&m).expect("a mention serialises"))
    })
}

/// `gema bench --enrich-backlog`: the enrich stage alone on a backlog, timed from its first
/// enriched mention to its last (so joining the consumer group is not counted).
async fn enrich_backlog(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let n = args.messages.unwrap_or(300_000) as usize;
    let ns = Namespace::fresh(config, "bench-enrich")?;
    let config = ns.config.clone();
    let topics = config.kafka.topics();
    kafka::topics::ensure_topics(&config.kafka, &topics).await?;
    let producer = kafka::producer(&config.kafka)?;
    let mut in_flight = std::collections::VecDeque::new();
    for (key, payload) in feed(n) {
        queue(&producer, &mut in_flight, &topics.raw, &key, &payload).await;
    }
    for d in in_flight {
        d.await
            .map_err(|_| anyhow::anyhow!("the backlog was not delivered"))?
            .map_err(|(e, _)| anyhow::anyhow!("the backlog was not delivered: {e}"))?;
    }
    let running = pipeline::start(&config, &[Stage::Enrich]).await?;
    let done = || running.metrics.enrich_enriched.get() as usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while done() == 0 {
        anyhow::ensure!(Instant::now() < deadline, "the enrich stage never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (first, t0, cpu0) = (done(), Instant::now(), cpu_secs("self"));
    anyhow::ensure!(
        first < n,
        "the whole backlog ({n} mentions) was enriched in the first batch, too few to time: \
         give --messages at least ten times [enrich] batch_max ({})",
        config.enrich.batch_max
    );
    while done() < n {
        anyhow::ensure!(Instant::now() < deadline, "the enrich stage did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (secs, cpu1) = (t0.elapsed().as_secs_f64(), cpu_secs("self"));
    running.stop().await?;
    ns.cleanup().await;
    let workers = gema::enrich::config::workers_or_cores(config.enrich.workers);
    let rate = (n - first) as f64 / secs;
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    if args.json {
        let report = serde_json::json!({
            "machine": machine(), "mode": "enrich_backlog", "messages": n,
            "enrich_workers": workers, "rate": rate, "seconds": secs, "cpu_s": cpu,
            "cores_used": cpu.map(|c| c / secs),
            "cpu_us_per_mention": cpu.map(|c| c / (n - first) as f64 * 1e6),
        });
        println!("{report}");
    } else {
        println!("gema bench --enrich-backlog — {}", machine());
        println!(
            "  enrich stage alone, {workers} workers: {} mentions in {secs:.2}s ({rate:.0}/s){}",
            n - first,
            cpu.map_or(String::new(), |c| format!(
                ", {c:.1} CPU s ({:.0} % of one core, {:.1} µs a mention)",
                100.0 * c / secs,
                c / (n - first) as f64 * 1e6
            ))
        );
    }
    Ok(())
}

pub async fn run(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    if args.enrich_backlog {
        return enrich_backlog(config, args).await;
    }
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

    // Ingest → ClickHouse-visible: the mentions table's row count, polled; when it reaches k at
    // time t, the k-th mention sent (at sent_at[k - 1]) took t - sent_at[k - 1] to be visible.
    let visible_probe = {
        let store = store.clone();
        let stop = probe_stop.clone();
        tokio::spawn(async move {
            let mut out: Vec<(Instant, u64)> = Vec::new();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                let count = store
                    .client
                    .query("SELECT count() FROM mentions")
                    .fetch_one::<u64>()
                    .await;
                if let Ok(c) = count {
                    out.push((Instant::now(), c));
                }
            }
            out
        })
    };

    let n = args.messages.unwrap_or(args.rate * args.seconds) as usize;
    let pool = pool(n);
    // Give the consumer groups a moment to join before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let producer = kafka::producer(&config.kafka)?;
    let kafka_pid = service_pid(&args.services_dir, "kafka");
    let clickhouse_pid = service_pid(&args.services_dir, "clickhouse");
    let cpu = || {
        [
            cpu_secs("self"),
            kafka_pid.as_deref().and_then(cpu_secs),
            clickhouse_pid.as_deref().and_then(cpu_secs),
        ]
    };
    let cpu_before = cpu();
    let mut sent_at: Vec<Instant> = Vec::with_capacity(n);
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
        queue(&producer, &mut in_flight, &topics.raw, &key, &payload).await;
        sent_at.push(Instant::now());
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
    let cpu_after = cpu();
    probe_stop.cancel();
    let mut lat = latencies.await?;
    lat.sort_by(f64::total_cmp);
    // One sample each time the count grows (a flat count between two inserts, or after the
    // last one, says nothing new about latency), up to the n-th row.
    let mut visible: Vec<f64> = Vec::new();
    let mut last = 0u64;
    for (t, c) in visible_probe.await? {
        if c <= last || last as usize >= sent_at.len() {
            continue;
        }
        last = c;
        let k = (c as usize).min(sent_at.len()) - 1;
        visible.push(t.saturating_duration_since(sent_at[k]).as_secs_f64() * 1000.0);
    }
    visible.sort_by(f64::total_cmp);
    let metrics = running.stop().await?;
    let stored = store.count_mentions().await?;
    let peak_rss = peak_rss_bytes();
    let ceiling = ceiling(&config, &store, n).await?;
    let e2e = n as f64 / total_s;
    let share = |c: f64| 100.0 * e2e / c;
    // CPU per mention in microseconds: this process (every stage and the sender), the broker,
    // ClickHouse.
    let per_mention = |i: usize| match (cpu_before[i], cpu_after[i]) {
        (Some(a), Some(b)) => Some((b - a) / n as f64 * 1e6),
        _ => None,
    };
    let cpu_us = [per_mention(0), per_mention(1), per_mention(2)];
    let data = args.services_dir.join("kafka").join("data");
    let topic_names = [
        ("raw", topics.raw.as_str()),
        ("enriched", topics.enriched.as_str()),
        ("terms", topics.terms.as_str()),
        ("trends", topics.trends.as_str()),
        ("alerts_raw", topics.alerts_raw.as_str()),
        ("alerts", topics.alerts.as_str()),
        ("incidents", topics.incidents.as_str()),
        ("dlq", topics.dlq.as_str()),
        ("trend_state", topics.trend_state.as_str()),
    ];
    let bytes: Vec<(&str, Option<u64>)> = topic_names
        .iter()
        .map(|(label, t)| {
            (
                *label,
                data.is_dir().then(|| topic_bytes(&data, t)).flatten(),
            )
        })
        .collect();
    let workers = gema::enrich::config::workers_or_cores(config.enrich.workers);
    if args.json {
        let report = serde_json::json!({
            "machine": machine(),
            "messages": n,
            "target_rate": args.rate,
            "send_s": send_s,
            "send_rate": n as f64 / send_s,
            "end_to_end_s": total_s,
            "end_to_end_rate": e2e,
            "stored": stored,
            "enrich_workers": workers,
            "ingest_to_visible": quantiles(&visible),
            "ingest_to_alert": quantiles(&lat),
            "cpu_us_per_mention": {
                "gema": cpu_us[0], "kafka": cpu_us[1], "clickhouse": cpu_us[2],
            },
            "peak_rss_bytes": peak_rss,
            "topic_bytes_per_mention": bytes
                .iter()
                .map(|(l, b)| (l.to_string(), serde_json::json!(b.map(|b| b as f64 / n as f64))))
                .collect::<serde_json::Map<_, _>>(),
            "ceiling": {
                "kafka_produce_per_s": ceiling.produce,
                "kafka_consume_per_s": ceiling.consume,
                "clickhouse_insert_rows_per_s": ceiling.insert,
            },
            "cascade": config.enrich.cascade.enabled.then(|| serde_json::json!({
                "escalated": metrics.cascade_escalated.get(),
                "decided": metrics.cascade_decided.get(),
                "timed_out": metrics.cascade_timed_out.get(),
                "queue_full": metrics.cascade_queue_full.get(),
            })),
        });
        println!("{report}");
        ns.cleanup().await;
        return Ok(());
    }

    println!("gema bench — {}", machine());
    println!(
        "  sent              {n} mentions in {send_s:.1}s ({:.0}/s; target {}/s)",
        n as f64 / send_s,
        args.rate
    );
    println!(
        "  all stages done   {total_s:.1}s after the first mention ({e2e:.0} mentions/s end to end)"
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
        "  ingest → visible  {} samples of the mentions table: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        visible.len(),
        percentile(&visible, 0.5),
        percentile(&visible, 0.95),
        percentile(&visible, 0.99),
        visible.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  ingest → alert    {} negative-comment alerts: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    let show = |v: Option<f64>| v.map_or("not measured".to_string(), |v| format!("{v:.1} µs"));
    println!(
        "  CPU per mention   gema {} (every stage and the sender, {} enrich workers), Kafka {}, ClickHouse {}",
        show(cpu_us[0]),
        workers,
        show(cpu_us[1]),
        show(cpu_us[2])
    );
    println!(
        "  peak memory       {} (one process runs every stage)",
        peak_rss.map_or("not measured".into(), |b| format!(
            "{:.0} MiB",
            b as f64 / 1048576.0
        ))
    );
    println!(
        "  ceiling, same bytes without gema: Kafka takes {:.0}/s from one producer ({:.0} % used by gema end to end) and gives {:.0}/s to one consumer ({:.0} %); ClickHouse takes {:.0} rows/s in one RowBinary insert ({:.0} %)",
        ceiling.produce,
        share(ceiling.produce),
        ceiling.consume,
        share(ceiling.consume),
        ceiling.insert,
        share(ceiling.insert)
    );
    if bytes.iter().any(|(_, b)| b.is_some()) {
        let list: Vec<String> = bytes
            .iter()
            .filter_map(|(l, b)| b.map(|b| format!("{l} {:.0}", b as f64 / n as f64)))
            .collect();
        println!(
            "  bytes per mention on the broker's disk: {}",
            list.join(", ")
        );
    } else {
        println!(
            "  bytes per mention not measured ({} has no Kafka log directory)",
            data.display()
        );
    }
    ns.cleanup().await;
    Ok(())
}
