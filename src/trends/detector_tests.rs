//! Scenario tests for the detector, with explicit event times.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;

const MIN: i64 = 60_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
}

fn at(bucket: i64, offset_ms: i64) -> DateTime<Utc> {
    t0() + Duration::milliseconds(bucket * MIN + offset_ms)
}

fn occ(term: &str, author: &str, time: DateTime<Utc>) -> TermOccurrence {
    TermOccurrence {
        term: term.into(),
        author_id: author.into(),
        event_time: time,
        mention: None,
    }
}

/// Steady background for one bucket: a few terms with a deterministic, bounded wobble.
fn background(b: i64) -> Vec<TermOccurrence> {
    let mut v = Vec::new();
    for (k, term) in ["kopi", "#kopikitasenja", "nusapay", "@nusapay_id", "enak"]
        .iter()
        .enumerate()
    {
        let n = 6 + ((b * 7 + k as i64 * 3) % 5); // 6..=10 authors
        for a in 0..n {
            let author = format!("bg{k}-{}", (b * 13 + a) % 40);
            v.push(occ(term, &author, at(b, a * 1_000)));
            v.push(occ(term, &author, at(b, a * 1_000 + 500))); // posts twice: counts once
        }
    }
    v
}

/// Feeds `occs`, advancing after each, and returns every trend.
fn feed(d: &mut Detector, occs: &[TermOccurrence]) -> Vec<TrendEvent> {
    let mut out = Vec::new();
    for o in occs {
        d.observe(o);
        out.extend(d.advance().trends);
    }
    out
}

fn detector() -> Detector {
    Detector::new(DetectorConfig::default()).unwrap()
}

#[test]
fn steady_background_never_trends() {
    let mut d = detector();
    let all: Vec<_> = (0..240).flat_map(background).collect();
    let trends = feed(&mut d, &all);
    assert!(trends.is_empty(), "{:?}", trends.first());
    assert_eq!(d.stats().late, 0);
    assert!(d.stats().buckets_closed >= 237);
}

#[test]
fn new_hashtag_from_many_authors_trends_within_two_buckets() {
    let mut d = detector();
    let mut all: Vec<_> = (0..60).flat_map(background).collect();
    // Bucket 60 and 61: background plus #nusapaydown from 40 distinct authors.
    for b in 60..64 {
        let mut v = background(b);
        if b < 62 {
            for a in 0..20 {
                v.push(occ(
                    "#nusapaydown",
                    &format!("angry{}", (b - 60) * 20 + a),
                    at(b, a * 2_000 + 700),
                ));
            }
        }
        v.sort_by_key(|o| o.event_time);
        all.extend(v);
    }
    let trends = feed(&mut d, &all);
    assert_eq!(trends.len(), 1, "{trends:?}");
    let t = &trends[0];
    assert_eq!(t.term, "#nusapaydown");
    assert!(t.bucket_start <= at(61, 0), "{}", t.bucket_start);
    assert_eq!((t.authors, t.count), (20, 20));
    assert_eq!(t.baseline_mean, 0.0);
    assert!(t.score >= 4.0);
    assert_eq!(t.sparkline, vec![20]);
    assert_eq!(
        t.id(),
        format!("#nusapaydown@{}", at(60, 0).timestamp_millis())
    );
}

#[test]
fn one_author_posting_500_times_never_trends() {
    let mut d = detector();
    let mut all: Vec<_> = (0..30).flat_map(background).collect();
    for b in 30..34 {
        let mut v = background(b);
        if b == 30 {
            for i in 0..500 {
                v.push(occ("#promo", "spammer", at(b, i * 100)));
            }
        }
        v.sort_by_key(|o| o.event_time);
        all.extend(v);
    }
    let trends = feed(&mut d, &all);
    assert!(trends.is_empty(), "{trends:?}");
}

#[test]
fn slow_organic_rise_does_not_trend_at_default_sensitivity() {
    // Its score peaks below 2 (measured), so not even `high` (3.0) fires.
    for sensitivity in [Sensitivity::Medium, Sensitivity::High] {
        let cfg = DetectorConfig {
            sensitivity,
            ..Default::default()
        };
        slow_rise(Detector::new(cfg).unwrap());
    }
}

fn slow_rise(mut d: Detector) {
    let mut all = Vec::new();
    for b in 0..110 {
        let mut v = background(b);
        // After warm-up, +1 author per bucket over 60 buckets, then flat.
        for a in 0..(b - 19).clamp(0, 60) {
            v.push(occ("kopi susu", &format!("fan{a}"), at(b, a * 900)));
        }
        v.sort_by_key(|o| o.event_time);
        all.extend(v);
    }
    let trends = feed(&mut d, &all);
    assert!(trends.is_empty(), "{trends:?}");
}

#[test]
fn a_mention_counts_once_in_its_bucket_however_often_it_arrives() {
    let mut d = detector();
    let of = |author: &str, mention: u64, time| TermOccurrence {
        mention: Some(mention),
        ..occ("a", author, time)
    };
    assert_eq!(d.observe(&of("u1", 1, at(0, 0))), Observed::Counted);
    assert_eq!(d.observe(&of("u2", 2, at(0, 10))), Observed::Counted);
    // The enrich stage sent the record again: the same mentions.
    assert_eq!(d.observe(&of("u1", 1, at(0, 0))), Observed::Repeat);
    assert_eq!(d.observe(&of("u2", 2, at(0, 10))), Observed::Repeat);
    // Another post of the same author counts.
    assert_eq!(d.observe(&of("u1", 3, at(0, 20))), Observed::Counted);
    let s = d.stats();
    assert_eq!((s.counted, s.repeats), (3, 2));
    d.observe(&occ("a", "u9", at(10, 0)));
    let closed = d.advance().buckets;
    let first = closed.iter().find(|b| b.bucket_start == at(0, 0)).unwrap();
    let a = first.top.iter().find(|t| t.term == "a").unwrap();
    assert_eq!((a.count, a.authors), (3, 2));
}

#[test]
fn late_occurrences_are_counted_not_dropped() {
    let mut d = detector();
    assert_eq!(d.observe(&occ("a", "u1", at(0, 0))), Observed::Counted);
    d.observe(&occ("a", "u2", at(5, 0)));
    d.advance();
    // Watermark is 5 − 2 = bucket 3: buckets 0..=2 closed, 3 still open.
    assert_eq!(d.observe(&occ("a", "u3", at(3, 10))), Observed::Counted);
    let late = d.observe(&occ("a", "u4", at(2, 59_999)));
    assert_eq!(
        late,
        Observed::Late {
            bucket_start: at(2, 0),
            watermark: at(3, 0)
        }
    );
    assert_eq!((d.stats().late, d.stats().counted), (1, 3));
}

#[test]
fn cold_start_waits_for_warm_up_then_detects_new_terms() {
    let cfg = DetectorConfig {
        warmup_buckets: 5,
        ..Default::default()
    };
    let mut d = Detector::new(cfg).unwrap();
    // A replayed feed: the busy term appears in the very first bucket, from 30 authors.
    let mut all = Vec::new();
    for b in 0..14 {
        for a in 0..30 {
            all.push(occ("busy", &format!("u{a}"), at(b, a * 1_000)));
        }
        if b == 2 {
            for a in 0..25 {
                all.push(occ("#early", &format!("e{a}"), at(b, a * 1_000 + 1)));
            }
        }
        if b == 9 {
            for a in 0..25 {
                all.push(occ("#baru", &format!("n{a}"), at(b, a * 1_000 + 1)));
            }
        }
    }
    all.sort_by_key(|o| o.event_time);
    let trends = feed(&mut d, &all);
    let terms: Vec<&str> = trends.iter().map(|t| t.term.as_str()).collect();
    assert_eq!(terms, vec!["#baru"], "{trends:?}");
}

#[test]
fn memory_stays_bounded_with_a_million_distinct_terms() {
    let cfg = DetectorConfig {
        max_terms: 10_000,
        ..Default::default()
    };
    let mut d = Detector::new(cfg).unwrap();
    for i in 0..1_000_000i64 {
        // 10,000 new terms per bucket, and a steady popular term.
        let b = i / 10_000;
        d.observe(&occ(&format!("junk{i}"), "x", at(b, i % 10_000)));
        if i % 100 == 0 {
            d.observe(&occ("popular", &format!("p{}", i % 7), at(b, i % 10_000)));
            d.advance();
        }
        assert!(d.tracked_terms() <= 10_000);
    }
    assert!(d.tracked_terms() <= 10_000);
    assert!(d.stats().evicted_capacity + d.stats().evicted_idle >= 990_000);
    assert!(
        d.approx_memory_bytes() < 64 << 20,
        "{}",
        d.approx_memory_bytes()
    );
    let snap = d.snapshot();
    assert!(
        snap_has(&snap, "popular"),
        "heavy hitter survives the churn"
    );
}

fn snap_has(s: &DetectorSnapshot, term: &str) -> bool {
    serde_json::to_value(s).unwrap()["terms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e[0] == term)
}

#[test]
fn snapshot_restore_continues_without_false_trends() {
    let mut d = detector();
    let before: Vec<_> = (0..40).flat_map(background).collect();
    assert!(feed(&mut d, &before).is_empty());
    let json = serde_json::to_string(&d.snapshot()).unwrap();
    let snap: DetectorSnapshot = serde_json::from_str(&json).unwrap();
    let mut r = Detector::restore(DetectorConfig::default(), snap).unwrap();
    assert_eq!(r.tracked_terms(), d.tracked_terms());
    assert_eq!(r.stats(), d.stats());
    // The next normal buckets (and a resumption after an outage gap) do not trend.
    let mut after: Vec<_> = (40..45).chain(200..205).flat_map(background).collect();
    // A term the snapshot never saw, right after the restore: held back by the warm-up rule.
    after.extend((0..30).map(|a| occ("#fresh", &format!("f{a}"), at(41, 59_000))));
    after.sort_by_key(|o| o.event_time);
    assert!(feed(&mut r, &after).is_empty());
    // A real burst on a restored term still trends right away.
    let mut burst = background(205);
    for a in 0..40 {
        burst.push(occ("kopi", &format!("new{a}"), at(205, a * 1_000)));
    }
    burst.extend(background(206));
    burst.extend(background(207));
    burst.extend(background(208));
    let trends = feed(&mut r, &burst);
    assert_eq!(trends.len(), 1, "{trends:?}");
    assert_eq!(trends[0].term, "kopi");
    // A snapshot of a detector is stable.
    assert_eq!(
        serde_json::to_string(&r.snapshot()).unwrap(),
        serde_json::to_string(&r.clone().snapshot()).unwrap()
    );
}

#[test]
fn restore_rejects_a_different_bucket_width() {
    let snap = detector().snapshot();
    let cfg = DetectorConfig {
        bucket_ms: 30_000,
        ..Default::default()
    };
    let e = Detector::restore(cfg, snap).unwrap_err();
    assert!(e.to_string().contains("bucket_ms = 60000"), "{e}");
}

#[test]
fn idle_terms_are_evicted_and_buckets_summarised() {
    let cfg = DetectorConfig {
        idle_evict_buckets: 5,
        top_terms: 2,
        ..Default::default()
    };
    let mut d = Detector::new(cfg).unwrap();
    d.observe(&occ("once", "u", at(0, 0)));
    let mut summaries = Vec::new();
    for b in 0..12 {
        for a in 0..3 {
            d.observe(&occ("kopi", &format!("u{a}"), at(b, 10)));
        }
        d.observe(&occ("teh", "u", at(b, 20)));
        d.observe(&occ("teh", "u", at(b, 30)));
        summaries.extend(d.advance().buckets);
    }
    assert_eq!(d.tracked_terms(), 2, "`once` was evicted as idle");
    assert_eq!(d.stats().evicted_idle, 1);
    let s = &summaries[0];
    assert_eq!((s.bucket_start, s.bucket_end), (at(0, 0), at(1, 0)));
    assert_eq!(s.active_terms, 3);
    let top: Vec<(&str, u64, u32)> = s
        .top
        .iter()
        .map(|v| (v.term.as_str(), v.count, v.authors))
        .collect();
    assert_eq!(top, vec![("kopi", 3, 3), ("teh", 2, 1)]);
}

#[test]
fn advance_to_closes_buckets_on_an_idle_stream() {
    let cfg = DetectorConfig {
        warmup_buckets: 0,
        ..Default::default()
    };
    let mut d = Detector::new(cfg).unwrap();
    for a in 0..8 {
        d.observe(&occ("#sepi", &format!("u{a}"), at(0, a * 1_000)));
    }
    assert!(d.advance().trends.is_empty(), "bucket 0 is still open");
    let closed = d.advance_to(at(3, 0));
    assert_eq!(closed.trends.len(), 1);
    assert_eq!(closed.trends[0].term, "#sepi");
    assert_eq!(closed.buckets.len(), 1, "empty buckets are skipped");
    assert_eq!(d.watermark(), Some(at(1, 0)));
    assert!(
        d.advance_to(at(2, 0)).trends.is_empty(),
        "time never moves back"
    );
    assert_eq!(d.watermark(), Some(at(1, 0)));
}

#[test]
fn sensitivity_sets_threshold_and_support() {
    // A new term from 7 authors: enough for medium (≥ 5) and high, not for low (≥ 10).
    for (sensitivity, fires) in [
        (Sensitivity::Low, false),
        (Sensitivity::Medium, true),
        (Sensitivity::High, true),
    ] {
        let cfg = DetectorConfig {
            sensitivity,
            warmup_buckets: 0,
            ..Default::default()
        };
        let mut d = Detector::new(cfg).unwrap();
        for a in 0..7 {
            d.observe(&occ("#x", &format!("u{a}"), at(0, a)));
        }
        let n = d.advance_to(at(5, 0)).trends.len();
        assert_eq!(n == 1, fires, "{sensitivity:?}");
    }
}

#[test]
fn a_snapshot_from_before_the_count_test_still_loads() {
    let mut d = detector();
    let before: Vec<_> = (0..40).flat_map(background).collect();
    assert!(feed(&mut d, &before).is_empty());
    // Every bucket closed, so none closes after the restore to fill the new fields.
    assert!(d.advance_until(at(40, 0)).trends.is_empty());
    assert!(!d.has_open());
    // What a snapshot written before the count test looked like: no `elevated`, `recent` or
    // `prev` per term.
    let mut json = serde_json::to_value(d.snapshot()).unwrap();
    for t in json["terms"].as_array_mut().unwrap() {
        let state = t[1].as_object_mut().unwrap();
        for k in ["elevated", "recent", "prev"] {
            assert!(state.remove(k).is_some(), "{k}");
        }
    }
    let snap: DetectorSnapshot = serde_json::from_value(json).unwrap();
    let mut r = Detector::restore(DetectorConfig::default(), snap).unwrap();
    assert_eq!(r.tracked_terms(), d.tracked_terms());
    // Its terms' recent authors are unknown, so a burst right away must persist: two buckets.
    let mut burst = Vec::new();
    for b in 40..46 {
        burst.extend(background(b));
        if b < 42 {
            burst.extend((0..40).map(|a| occ("kopi", &format!("n{b}-{a}"), at(b, a * 1_000))));
        }
    }
    burst.sort_by_key(|o| o.event_time);
    let trends = feed(&mut r, &burst);
    assert_eq!(trends.len(), 1, "{trends:?}");
    assert_eq!(
        (trends[0].term.as_str(), trends[0].bucket_start),
        ("kopi", at(41, 0))
    );
}

/// A bucket of a stationary background of `terms` terms at Zipf-distributed rates (Poisson
/// counts drawn by a fixed generator), every author new.
fn zipf_background(b: i64, terms: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<TermOccurrence> {
    use rand::Rng;
    let mut v = Vec::new();
    for k in 0..terms {
        let rate = 40.0 / (k + 1) as f64;
        // Poisson by inversion.
        let (mut n, mut p, u) = (0u32, (-rate).exp(), rng.gen::<f64>());
        let mut cdf = p;
        while u > cdf && n < 1_000 {
            n += 1;
            p *= rate / f64::from(n);
            cdf += p;
        }
        for a in 0..n {
            v.push(occ(
                &format!("t{k}"),
                &format!("b{b}-{k}-{a}"),
                at(b, i64::from(a) * 50),
            ));
        }
    }
    v
}

#[test]
fn hundreds_of_steady_terms_raise_no_trend_where_the_score_rule_raises_many() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut all: Vec<_> = (0..400)
        .flat_map(|b| zipf_background(b, 300, &mut rng))
        .collect();
    all.sort_by_key(|o| o.event_time);
    let mut count = detector();
    let mut zscore = Detector::new(DetectorConfig {
        burst_test: BurstTest::Zscore,
        ..Default::default()
    })
    .unwrap();
    let (c, z) = (feed(&mut count, &all), feed(&mut zscore, &all));
    assert!(c.is_empty(), "{:?}", c.first());
    assert!(
        z.len() >= 5,
        "the earlier rule fires by chance: {}",
        z.len()
    );
}
