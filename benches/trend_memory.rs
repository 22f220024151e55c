//! Trend detector memory with an unbounded vocabulary: feeds 1M distinct terms (plus a steady
//! background) and prints the process RSS and the terms kept (`cargo bench --bench
//! trend_memory`). Prints figures; asserts nothing about speed.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use gema::trends::{Detector, DetectorConfig, TermOccurrence};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn main() {
    let start: DateTime<Utc> = "2026-11-26T00:00:00Z".parse().unwrap();
    let cfg = DetectorConfig::default();
    let max_terms = cfg.max_terms;
    let mut d = Detector::new(cfg).unwrap();
    let before = rss_kib();
    let t0 = Instant::now();
    let total = 1_000_000u64;
    let mut trends = 0;
    for i in 0..total {
        // 1M distinct terms over ~1000 one-minute buckets (1000 new terms a minute), plus a
        // recurring background of 500 common terms.
        let at = start + Duration::milliseconds((i * 60) as i64);
        let author = format!("u{}", i % 50_000);
        d.observe(&TermOccurrence {
            term: format!("rare-term-{i}"),
            author_id: author.clone(),
            event_time: at,
            mention: None,
        });
        if i % 4 == 0 {
            d.observe(&TermOccurrence {
                term: format!("common{}", i % 500),
                author_id: author,
                event_time: at,
                mention: None,
            });
        }
        if i % 1000 == 0 {
            trends += d.advance().trends.len();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = rss_kib();
    println!(
        "trend detector, {} distinct terms ({} occurrences) fed in {:.2}s ({:.0} occurrences/s)",
        total + 500,
        total + total / 4,
        secs,
        (total + total / 4) as f64 / secs
    );
    println!(
        "  terms kept        {} (max_terms {max_terms})",
        d.tracked_terms()
    );
    println!(
        "  approx state      {:.1} MiB",
        d.approx_memory_bytes() as f64 / 1048576.0
    );
    println!(
        "  process RSS       {:.1} MiB (was {:.1} MiB before)",
        after as f64 / 1024.0,
        before as f64 / 1024.0
    );
    println!("  trend events      {trends}");
}
