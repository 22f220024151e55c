//! `gema synth --scenario`: a long feed with labelled events injected into a steady background,
//! and the ground truth beside it, for `gema eval-trends`.
//!
//! Injected, at distinct times after a 30-minute warm-up:
//! - `trend`: a new brand hashtag launching (80 mentions by distinct authors over 20 minutes,
//!   front-loaded);
//! - `crisis`: a negative burst about one brand (150 negative mentions over 15 minutes,
//!   front-loaded) with its own hashtag;
//! - `spam`: one account posting the same promo hundreds of times over the whole feed (must
//!   never trend);
//! - `slow_rise`: a hashtag whose use grows linearly over the whole feed (must not alert).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::synth::{
    author_pool, background_kind, fill, mention, Kind, BRANDS, NEG_EMOJI, POS_EMOJI,
};
use crate::enrich::extract::{extract, keywords};
use crate::trends::bigrams;

#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Background mentions per minute.
    pub per_minute: usize,
    pub trends: usize,
    pub crises: usize,
}

/// One injected event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthEvent {
    /// `trend`, `crisis`, `spam` or `slow_rise`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's hashtag term (`#x`).
    pub term: String,
    /// The tracked query (brand) the event is about.
    pub query: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Terms only this event's mentions use (its hashtag, keywords and bigrams): an alert on
    /// any of them, in its window, is about this event.
    pub terms: Vec<String>,
    pub mentions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub background_per_minute: usize,
    pub events: Vec<TruthEvent>,
}

const TREND_WORDS: &[&str] = &[
    "Matcha",
    "Gajian",
    "Harbolnas",
    "Mudik",
    "Senja",
    "Ramadan",
    "Merdeka",
    "Payday",
    "Festival",
    "Lebaran",
    "Akhirtahun",
    "Weekend",
];
const TREND_TEXTS: &[&str] = &[
    "Just tried {t} and wow {e}",
    "{t} is everywhere on my timeline today",
    "Antri panjang buat {t} hari ini {e}",
    "Udah cobain {t} belum? seru banget {e}",
    "Everyone at the office is talking about {t}",
    "Ikutan {t} dong, worth it {e}",
];
const CRISIS_TEXTS: &[&str] = &[
    "{b} down lagi, gak bisa dipakai sama sekali {t} {e}",
    "@{a} my account is locked and support is not answering {t} {e}",
    "Tolong @{a} uang saya hilang, gimana ini {t}",
    "{b} outage again, this is unacceptable {t} {e}",
    "Kecewa berat sama {b}, error terus dari pagi {t} {e}",
    "Is {b} down for everyone? cannot login at all {t}",
];
const SLOW_TEXTS: &[&str] = &[
    "Join the {t} meetup this weekend",
    "Komunitas {t} makin rame aja",
    "Proud to be part of {t}",
];

fn terms_of(text: &str) -> Vec<String> {
    let e = extract(text);
    let kw = keywords(&e.normalized, 12);
    let mut t: Vec<String> = e.hashtags.iter().map(|h| format!("#{h}")).collect();
    t.extend(bigrams(&kw));
    t.extend(kw);
    t
}

/// Front-loaded offsets in [0, 1): density ∝ 1/√x.
fn front_loaded(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen();
    u * u
}

/// Generates the feed (sorted by time) and its ground truth.
pub fn scenario(opts: &ScenarioOptions) -> (Vec<String>, Truth) {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let minutes = opts.span.num_minutes().max(60) as usize;
    let background = opts.per_minute * minutes;
    let authors = author_pool(&mut rng, (background / 4).max(500));
    let spammer = super::synth::Author {
        id: "u999998".into(),
        handle: "promo_gacor_id".into(),
        followers: 15,
    };
    let at = |m: f64| opts.start + Duration::milliseconds((m * 60_000.0) as i64);
    let mut plan: Vec<(DateTime<Utc>, serde_json::Value)> = Vec::new();
    let mut background_terms: BTreeSet<String> = BTreeSet::new();
    let mut seq = 0usize;
    let mut next_seq = || {
        seq += 1;
        seq
    };

    for _ in 0..background {
        let kind = background_kind(&mut rng);
        let t = at(rng.gen::<f64>() * minutes as f64);
        let m = mention(&mut rng, next_seq(), t, kind, &authors, &spammer);
        background_terms.extend(terms_of(m["text"].as_str().unwrap_or_default()));
        plan.push((t, m));
    }

    let mut events = Vec::new();
    let slots = opts.trends + opts.crises;
    let gap = (minutes as f64 - 40.0) / slots.max(1) as f64;
    let mut words: Vec<&str> = TREND_WORDS.to_vec();
    words.shuffle(&mut rng);
    for i in 0..slots {
        let is_trend = i % 2 == 0
            && events
                .iter()
                .filter(|e: &&TruthEvent| e.kind == "trend")
                .count()
                < opts.trends
            || events
                .iter()
                .filter(|e: &&TruthEvent| e.kind == "crisis")
                .count()
                >= opts.crises;
        let brand = &BRANDS[i % BRANDS.len()];
        let start_min = 30.0 + gap * i as f64 + rng.gen_range(0.0..gap * 0.3);
        let (kind, tag, n, len_min, texts, emoji) = if is_trend {
            let w = words[events.iter().filter(|e| e.kind == "trend").count() % words.len()];
            (
                "trend",
                format!("#{}{}", brand.tag, w),
                80,
                20.0,
                TREND_TEXTS,
                POS_EMOJI,
            )
        } else {
            (
                "crisis",
                format!("#{}Down{}", brand.tag, i),
                150,
                15.0,
                CRISIS_TEXTS,
                NEG_EMOJI,
            )
        };
        let mut terms: BTreeSet<String> = BTreeSet::new();
        let mut used: Vec<usize> = (0..authors.len()).collect();
        used.shuffle(&mut rng);
        for j in 0..n {
            let t = at(start_min + front_loaded(&mut rng) * len_min);
            let template = texts.choose(&mut rng).unwrap().replace("{t}", &tag);
            let text = fill(&template, brand, &mut rng, emoji);
            terms.extend(terms_of(&text));
            let k = if kind == "trend" {
                Kind::Praise
            } else {
                Kind::Complaint
            };
            let mut m = mention(&mut rng, next_seq(), t, k, &authors, &spammer);
            m["text"] = text.into();
            let a = &authors[used[j % used.len()]];
            m["author"] =
                serde_json::json!({"id": a.id, "handle": a.handle, "followers": a.followers});
            plan.push((t, m));
        }
        let terms: Vec<String> = terms.difference(&background_terms).cloned().collect();
        events.push(TruthEvent {
            kind: kind.into(),
            term: tag.to_lowercase(),
            query: brand.handle.replace("arunikaair", "arunika-air"),
            start: at(start_min),
            end: at(start_min + len_min),
            terms,
            mentions: n,
        });
    }

    // The spammer: one author, the same promo, all day.
    let spam_n = (minutes * 2).max(300);
    for _ in 0..spam_n {
        let t = at(rng.gen::<f64>() * minutes as f64);
        let mut m = mention(&mut rng, next_seq(), t, Kind::Spam, &authors, &spammer);
        m["text"] = "PROMO GACOR!!! Top up sekarang dapat cashback 100%, klik link https://bit.ly/gacor-promo #PromoGacorHariIni".into();
        plan.push((t, m));
    }
    events.push(TruthEvent {
        kind: "spam".into(),
        term: "#promogacorhariini".into(),
        query: String::new(),
        start: opts.start,
        end: at(minutes as f64),
        terms: vec![
            "#promogacorhariini".into(),
            "gacor".into(),
            "promo gacor".into(),
        ],
        mentions: spam_n,
    });

    // A community hashtag growing linearly from nothing to ~4 authors a minute.
    let slow_tag = "#NusaPayKomunitas";
    let slow_n = minutes * 2;
    for _ in 0..slow_n {
        let x = rng.gen::<f64>().sqrt();
        let t = at(x * minutes as f64);
        let text = SLOW_TEXTS
            .choose(&mut rng)
            .unwrap()
            .replace("{t}", slow_tag);
        let mut m = mention(&mut rng, next_seq(), t, Kind::Chatter, &authors, &spammer);
        m["text"] = text.into();
        plan.push((t, m));
    }
    events.push(TruthEvent {
        kind: "slow_rise".into(),
        term: slow_tag.to_lowercase(),
        query: "nusapay".into(),
        start: opts.start,
        end: at(minutes as f64),
        terms: vec![slow_tag.to_lowercase()],
        mentions: slow_n,
    });

    plan.sort_by_key(|p| p.0);
    let lines = plan.into_iter().map(|(_, m)| m.to_string()).collect();
    let truth = Truth {
        start: opts.start,
        end: at(minutes as f64),
        background_per_minute: opts.per_minute,
        events,
    };
    (lines, truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mention::Mention;

    #[test]
    fn scenario_is_deterministic_and_labels_what_it_injects() {
        let opts = ScenarioOptions {
            seed: 3,
            start: "2026-11-26T00:00:00Z".parse().unwrap(),
            span: Duration::hours(2),
            per_minute: 30,
            trends: 2,
            crises: 2,
        };
        let (lines, truth) = scenario(&opts);
        assert_eq!(scenario(&opts).0, lines);
        assert_eq!(truth.events.iter().filter(|e| e.kind == "trend").count(), 2);
        assert_eq!(
            truth.events.iter().filter(|e| e.kind == "crisis").count(),
            2
        );
        let parsed: Vec<Mention> = lines
            .iter()
            .map(|l| Mention::parse(l.as_bytes()).unwrap())
            .collect();
        assert!(parsed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at));
        for e in truth
            .events
            .iter()
            .filter(|e| e.kind == "trend" || e.kind == "crisis")
        {
            assert!(e.terms.contains(&e.term), "{e:?}");
            let inside = parsed
                .iter()
                .filter(|m| {
                    m.text.to_lowercase().contains(&e.term)
                        && m.created_at >= e.start
                        && m.created_at <= e.end
                })
                .count();
            assert_eq!(inside, e.mentions, "{}", e.term);
        }
        let spam = parsed
            .iter()
            .filter(|m| m.author.handle == "promo_gacor_id")
            .count();
        assert!(spam >= 240);
    }
}
