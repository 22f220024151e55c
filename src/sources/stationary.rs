//! `gema synth --stationary`: a long feed of steady background, hundreds of hashtags and keywords
//! at constant rates, with optional launches injected and the ground truth beside it, for
//! `gema eval-trends` to count the trends raised by chance.
//!
//! The background is stationary by construction: mentions fall uniformly over the span (so each
//! term's count per minute is Poisson, its rate fixed), and each mention draws its words
//! independently:
//! - 1 hashtag (60 %), 2 (20 %) or none, from 300 made-up hashtags whose rates follow Zipf's law
//!   (exponent 1.1): the most popular about 20 % of hashtag uses, the rarest a few an hour;
//! - 3 keywords from 400 made-up words (Zipf, exponent 1.0), whose neighbours make bigrams;
//! - a tracked brand (KopiKita, NusaPay or Arunika Air) in 45 % of mentions, with a complaint in
//!   a quarter of those and praise in another third, so the tracked-query and negative volumes
//!   are steady too;
//! - an author drawn from 40,000 (5 % of posts from 200 regulars).
//!
//! Launches (`trend` in the truth) start after two hours, at distinct times, each lasting 20
//! minutes, front-loaded (density ∝ 1/√t, about a fifth of its mentions in the first minute),
//! every mention by a different author: even ones a new hashtag (60–120 mentions), odd ones a
//! quiet background hashtag (0.3–1 a minute) used 10–40× as often (at least 60 mentions).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scenario::{Truth, TruthEvent};
use super::synth::{author_pool, mention, Kind, BRANDS};
use crate::enrich::extract::{extract, keywords};
use crate::trends::bigrams;

/// What to generate.
#[derive(Debug, Clone)]
pub struct StationaryOptions {
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Background mentions per minute.
    pub per_minute: usize,
    /// Launches to inject (after the first two hours, 0 for none).
    pub launches: usize,
}

const HASHTAGS: usize = 300;
const KEYWORDS: usize = 400;
const LAUNCH_MINUTES: f64 = 20.0;
const COMPLAINTS: &[&str] = &[
    "kecewa banget",
    "lemot parah",
    "terrible service",
    "gagal terus",
    "worst experience",
];
const PRAISE: &[&str] = &["mantap sekali", "love it", "keren banget", "super helpful"];

/// A made-up word of three syllables (never an English or Indonesian stop word).
fn word(rng: &mut ChaCha8Rng) -> String {
    const C: &[u8] = b"bdgjklmnprstvz";
    const V: &[u8] = b"aeiou";
    (0..3)
        .flat_map(|_| {
            [
                C[rng.gen_range(0..C.len())] as char,
                V[rng.gen_range(0..V.len())] as char,
            ]
        })
        .collect()
}

/// `n` distinct made-up words not in `taken` (which they join).
fn words(rng: &mut ChaCha8Rng, n: usize, taken: &mut BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let w = word(rng);
        if taken.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// Cumulative Zipf weights over `n` ranks.
fn zipf(n: usize, exponent: f64) -> Vec<f64> {
    let mut acc = 0.0;
    (0..n)
        .map(|i| {
            acc += 1.0 / ((i + 1) as f64).powf(exponent);
            acc
        })
        .collect()
}

fn draw(rng: &mut ChaCha8Rng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let u = rng.gen::<f64>() * total;
    cumulative
        .partition_point(|c| *c <= u)
        .min(cumulative.len() - 1)
}

fn terms_of(text: &str) -> Vec<String> {
    let e = extract(text);
    let kw = keywords(&e.normalized, 12);
    let mut t: Vec<String> = e.hashtags.iter().map(|h| format!("#{h}")).collect();
    t.extend(bigrams(&kw));
    t.extend(kw);
    t
}

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Generates the feed (sorted by time) and its ground truth.
pub fn stationary(opts: &StationaryOptions) -> (Vec<String>, Truth) {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let minutes = opts.span.num_minutes().max(60) as usize;
    let background = opts.per_minute * minutes;
    let authors = author_pool(&mut rng, 40_000);
    let regulars = 200;
    let nobody = super::synth::Author {
        id: "u999997".into(),
        handle: "nobody".into(),
        followers: 1,
    };
    let mut taken = BTreeSet::new();
    let tags: Vec<String> = words(&mut rng, HASHTAGS, &mut taken)
        .iter()
        .map(|w| format!("#{}", capitalised(w)))
        .collect();
    let kws = words(&mut rng, KEYWORDS, &mut taken);
    let tag_cdf = zipf(HASHTAGS, 1.1);
    let kw_cdf = zipf(KEYWORDS, 1.0);
    let at = |m: f64| opts.start + Duration::milliseconds((m * 60_000.0) as i64);
    let mut plan: Vec<(DateTime<Utc>, serde_json::Value)> = Vec::with_capacity(background);
    let mut seq = 0usize;

    for _ in 0..background {
        let t = at(rng.gen::<f64>() * minutes as f64);
        let mut parts: Vec<String> = (0..3)
            .map(|_| kws[draw(&mut rng, &kw_cdf)].clone())
            .collect();
        if rng.gen_bool(0.45) {
            let b = &BRANDS[rng.gen_range(0..BRANDS.len())];
            parts.push(b.name.to_string());
            let r: f64 = rng.gen();
            if r < 0.25 {
                parts.push(COMPLAINTS.choose(&mut rng).unwrap().to_string());
            } else if r < 0.58 {
                parts.push(PRAISE.choose(&mut rng).unwrap().to_string());
            }
        }
        let r: f64 = rng.gen();
        let n_tags = if r < 0.6 {
            1
        } else if r < 0.8 {
            2
        } else {
            0
        };
        for _ in 0..n_tags {
            parts.push(tags[draw(&mut rng, &tag_cdf)].clone());
        }
        let text = parts.join(" ");
        let author = if rng.gen_bool(0.05) {
            &authors[rng.gen_range(0..regulars)]
        } else {
            &authors[rng.gen_range(regulars..authors.len())]
        };
        seq += 1;
        let mut m = mention(&mut rng, seq, t, Kind::Chatter, &authors, &nobody);
        m["text"] = text.into();
        m["author"] = serde_json::json!({"id": author.id, "handle": author.handle, "followers": author.followers});
        plan.push((t, m));
    }

    let mut events = Vec::new();
    let first = 120.0;
    let gap = (minutes as f64 - first - LAUNCH_MINUTES - 10.0) / opts.launches.max(1) as f64;
    // Quiet hashtags: expected uses a minute between 0.3 and 1.
    let hashtag_uses = opts.per_minute as f64 * (0.6 + 2.0 * 0.2);
    let total = tag_cdf[HASHTAGS - 1];
    let quiet: Vec<(usize, f64)> = (0..HASHTAGS)
        .map(|i| {
            let w = tag_cdf[i] - if i == 0 { 0.0 } else { tag_cdf[i - 1] };
            (i, hashtag_uses * w / total)
        })
        .filter(|(_, rate)| (0.3..=1.0).contains(rate))
        .collect();
    for i in 0..opts.launches {
        if gap < 1.0 {
            break;
        }
        let start_min = first + gap * i as f64 + rng.gen_range(0.0..gap * 0.5);
        let companions = words(&mut rng, 2, &mut taken);
        let (tag, n) = if i % 2 == 1 && !quiet.is_empty() {
            let (k, rate) = quiet[rng.gen_range(0..quiet.len())];
            let mult: f64 = rng.gen_range(10.0..40.0);
            let n = ((mult * rate * LAUNCH_MINUTES).round() as usize).max(60);
            (tags[k].clone(), n)
        } else {
            let w = words(&mut rng, 1, &mut taken).remove(0);
            (format!("#{}", capitalised(&w)), rng.gen_range(60..=120))
        };
        let mut used: Vec<usize> = (regulars..authors.len()).collect();
        used.shuffle(&mut rng);
        let mut terms: BTreeSet<String> = BTreeSet::new();
        for (j, &who) in used.iter().take(n).enumerate() {
            let u: f64 = rng.gen();
            let t = at(start_min + u * u * LAUNCH_MINUTES);
            let text = if j % 2 == 0 {
                format!("{tag} {} {}", companions[0], companions[1])
            } else {
                format!("{} {tag}", companions[1])
            };
            terms.extend(terms_of(&text));
            seq += 1;
            let mut m = mention(&mut rng, seq, t, Kind::Chatter, &authors, &nobody);
            m["text"] = text.into();
            let a = &authors[who];
            m["author"] =
                serde_json::json!({"id": a.id, "handle": a.handle, "followers": a.followers});
            plan.push((t, m));
        }
        let tag_lc = tag.to_lowercase();
        // Every term of a launch's mentions is its own: the hashtag, its word, or one holding a
        // companion word that no background mention uses.
        let own: Vec<String> = terms.into_iter().collect();
        events.push(TruthEvent {
            kind: "trend".into(),
            term: tag_lc,
            query: String::new(),
            start: at(start_min),
            end: at(start_min + LAUNCH_MINUTES),
            terms: own,
            mentions: n,
        });
    }

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
    use std::collections::HashMap;

    fn opts(seed: u64) -> StationaryOptions {
        StationaryOptions {
            seed,
            start: "2026-11-26T00:00:00Z".parse().unwrap(),
            span: Duration::hours(4),
            per_minute: 150,
            launches: 4,
        }
    }

    #[test]
    fn deterministic_stationary_and_labelled() {
        let (lines, truth) = stationary(&opts(1));
        assert_eq!(stationary(&opts(1)).0, lines);
        assert_ne!(stationary(&opts(2)).0, lines);
        let parsed: Vec<Mention> = lines
            .iter()
            .map(|l| Mention::parse(l.as_bytes()).unwrap())
            .collect();
        assert!(parsed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at));
        assert_eq!(truth.events.len(), 4);
        let launched: usize = truth.events.iter().map(|e| e.mentions).sum();
        assert_eq!(parsed.len(), 150 * 240 + launched);
        // Hundreds of distinct hashtags, heavy-tailed: the top one far above the median.
        let mut uses: HashMap<String, usize> = HashMap::new();
        for m in &parsed {
            for h in extract(&m.text).hashtags {
                *uses.entry(h).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = uses.values().copied().collect();
        counts.sort_unstable();
        assert!(counts.len() >= 250, "{}", counts.len());
        assert!(counts[counts.len() - 1] > 50 * counts[counts.len() / 2]);
        // Steady: the busiest hashtag's first and second halves are within 10 %.
        let top = uses.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
        let half = truth.start + Duration::hours(2);
        let (a, b) = parsed
            .iter()
            .filter(|m| extract(&m.text).hashtags.contains(&top))
            .fold((0f64, 0f64), |(a, b), m| {
                if m.created_at < half {
                    (a + 1.0, b)
                } else {
                    (a, b + 1.0)
                }
            });
        assert!((a / b - 1.0).abs() < 0.1, "{top}: {a} {b}");
        for e in &truth.events {
            assert_eq!(e.kind, "trend");
            assert!(e.terms.contains(&e.term), "{e:?}");
            assert!(e.start >= truth.start + Duration::hours(2));
            let inside = parsed
                .iter()
                .filter(|m| {
                    m.created_at >= e.start
                        && m.created_at <= e.end
                        && m.text.split(' ').count() <= 3
                        && m.text.to_lowercase().contains(&e.term)
                })
                .count();
            assert_eq!(inside, e.mentions, "{}", e.term);
        }
    }
}
