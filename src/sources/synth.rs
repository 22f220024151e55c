//! `gema synth`: a realistic, deterministic feed of English and Indonesian mentions of three
//! fictional brands, with the patterns a listening tool must handle.
//!
//! Over the span of event time the feed contains:
//! - ordinary chatter, praise and complaints about KopiKita (coffee), NusaPay (e-wallet) and
//!   Arunika Air (airline), on six platforms;
//! - a hashtag that starts trending (`#KopiKitaSenja`, a new menu) at 60 % of the span, bursting
//!   at once and staying in the conversation;
//! - a negative burst: a NusaPay outage (`#NusaPayDown`, lost balances, failed transfers) from
//!   78 % to 90 % of the span;
//! - one spammy account posting the same promo with a link all the time;
//! - optionally, malformed lines (bad JSON, missing fields, bad timestamps) that the enrich stage
//!   must send to the dead-letter topic.

use chrono::{DateTime, Duration, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub seed: u64,
    /// Valid mentions to generate.
    pub count: usize,
    /// Event time of the first mention.
    pub start: DateTime<Utc>,
    /// Length of the feed in event time.
    pub span: Duration,
    /// Malformed lines mixed in (on top of `count`).
    pub malformed: usize,
}

pub(crate) struct Brand {
    pub(crate) name: &'static str,
    pub(crate) handle: &'static str,
    pub(crate) tag: &'static str,
    products: &'static [&'static str],
}

pub(crate) const BRANDS: &[Brand] = &[
    Brand {
        name: "KopiKita",
        handle: "kopikita",
        tag: "KopiKita",
        products: &[
            "es kopi susu",
            "latte",
            "croissant",
            "app",
            "kopi gula aren",
            "outlet",
        ],
    },
    Brand {
        name: "NusaPay",
        handle: "nusapay",
        tag: "NusaPay",
        products: &[
            "app",
            "transfer",
            "top up",
            "cashback",
            "QRIS payment",
            "paylater",
        ],
    },
    Brand {
        name: "Arunika Air",
        handle: "arunikaair",
        tag: "ArunikaAir",
        products: &[
            "flight",
            "check-in",
            "baggage",
            "seat",
            "refund",
            "cabin crew",
        ],
    },
];

const EN_CHATTER: &[&str] = &[
    "Anyone tried the new {p} from {b}?",
    "Using {b} {p} again today {h}",
    "{b} just posted an update about their {p}",
    "Heading out, grabbing my usual from {b}",
    "Does {b} {p} work abroad? asking for a friend",
    "Reading about {b} expanding to more cities {h}",
    "Comparing {b} with the others for {p}, thoughts?",
];
const EN_PRAISE: &[&str] = &[
    "Love the {p} at {b}, great as always {e}",
    "{b} customer service was super helpful today, thanks @{a}!",
    "Honestly the best {p} I've had in a while {h} {e}",
    "Shoutout to {b}, the {p} was fast and smooth",
    "Really impressed with {b} lately. Recommend! {e}",
];
const EN_COMPLAINT: &[&str] = &[
    "Worst experience with {b} {p} today, never again {e}",
    "@{a} my {p} has been broken for 2 days and nobody answers. Terrible service",
    "So disappointed with {b}. The {p} is slow and the app keeps crashing {h}",
    "{b} charged me twice for the {p}, I want a refund now",
    "Why is {b} {p} always late? This is getting ridiculous {e}",
];
const ID_CHATTER: &[&str] = &[
    "Ada yang udah coba {p} baru dari {b}?",
    "Lagi pakai {b} buat {p} hari ini {h}",
    "{b} baru umumin update soal {p}",
    "Otw ke {b} dulu sebelum kerja",
    "{b} {p} bisa dipakai di luar kota gak ya?",
    "Baca berita {b} mau buka di kota lain {h}",
];
const ID_PRAISE: &[&str] = &[
    "{p} di {b} enak banget, mantap {e}",
    "CS {b} ramah dan cepat, makasih @{a}!",
    "Puas banget sama {b}, {p} lancar jaya {h} {e}",
    "{b} emang terbaik, {p} nya mantul",
    "Recommended banget {b}, pelayanannya keren {e}",
];
const ID_COMPLAINT: &[&str] = &[
    "Kecewa banget sama {b}, {p} lemot parah {e}",
    "@{a} {p} saya error dari kemarin, gak ada respon sama sekali",
    "{b} gimana sih, {p} gagal terus. Kapok {h}",
    "Udah bayar {p} di {b} tapi gak masuk, tolong dong {e}",
    "Pelayanan {b} makin buruk, {p} telat mulu",
];
const TREND_TEXTS: &[&str] = &[
    "Cobain menu baru #KopiKitaSenja, kopi gula aren + pandan, enak banget {e}",
    "The new #KopiKitaSenja menu at KopiKita is actually amazing {e}",
    "Sore-sore paling pas ngopi #KopiKitaSenja di KopiKita {e}",
    "Everyone in the office is talking about #KopiKitaSenja today",
    "Antri panjang buat #KopiKitaSenja, worth it sih {e}",
    "Finally tried #KopiKitaSenja, love the pandan latte",
];
const CRISIS_TEXTS: &[&str] = &[
    "Saldo NusaPay saya hilang!! Transfer gagal tapi saldo kepotong #NusaPayDown {e}",
    "@nusapay my balance just disappeared after a failed transfer. Is this a scam? #NusaPayDown",
    "NusaPay down lagi, transfer gagal terus, kecewa berat #NusaPayDown {e}",
    "Tolong @nusapay saldo hilang 500rb, mau lapor ke mana ini? #NusaPayDown",
    "Can't top up or transfer on NusaPay for an hour now, terrible #NusaPayDown {e}",
    "Penipuan ini namanya, uang saya hilang di NusaPay #NusaPayDown",
    "NusaPay app error, refund belum masuk juga, parah #NusaPayDown",
];
const NEWS_TEXTS: &[&str] = &[
    "{b} umumkan ekspansi ke 20 kota baru tahun depan",
    "{b} reports strong quarter as {p} usage grows",
    "Pengguna keluhkan gangguan layanan {b} di media sosial",
    "{b} launches new {p} feature for customers",
];
const CRISIS_NEWS: &[&str] = &[
    "Gangguan NusaPay: ribuan pengguna laporkan saldo hilang dan transfer gagal",
    "NusaPay outage leaves users unable to transfer money, company investigating",
];
const SPAM_TEXT: &str = "PROMO GACOR!!! Cashback 100% top up NusaPay & KopiKita voucher gratis, klik link sekarang {u} #PromoMurah #NusaPay";
pub(crate) const POS_EMOJI: &[&str] = &["😍", "👍", "🔥", "☕", "🙏", "❤️", "😊"];
pub(crate) const NEG_EMOJI: &[&str] = &["😡", "😤", "👎", "😭", "🙄", "🤬"];
const FIRST: &[&str] = &[
    "andi", "sari", "budi", "dewi", "rina", "agus", "maya", "tom", "jess", "alex", "nina", "fajar",
    "putri", "eko", "lisa", "mike", "wulan", "reza",
];
const LAST: &[&str] = &[
    "p", "wijaya", "sk", "_", "88", "id", "dev", "travels", "kopi", "jkt", "bdg", "x",
];
const PLATFORMS: &[(&str, u32)] = &[
    ("x", 30),
    ("mastodon", 15),
    ("bluesky", 18),
    ("reddit", 15),
    ("rss", 8),
    ("hn", 4),
];

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Chatter,
    Praise,
    Complaint,
    Trend,
    Crisis,
    Spam,
}

pub(crate) struct Author {
    pub(crate) id: String,
    pub(crate) handle: String,
    pub(crate) followers: u64,
}

/// The mix of ordinary posts: 55 % chatter, 25 % praise, 20 % complaints.
pub(crate) fn background_kind(rng: &mut ChaCha8Rng) -> Kind {
    let r: f64 = rng.gen();
    if r < 0.55 {
        Kind::Chatter
    } else if r < 0.8 {
        Kind::Praise
    } else {
        Kind::Complaint
    }
}

/// `n` authors with heavy-tailed reach: most are small, a few are big.
pub(crate) fn author_pool(rng: &mut ChaCha8Rng, n: usize) -> Vec<Author> {
    (0..n)
        .map(|i| {
            let handle = format!(
                "{}{}{}",
                FIRST.choose(rng).unwrap(),
                LAST.choose(rng).unwrap(),
                i % 97
            );
            let followers =
                10f64.powf(rng.gen_range(0.7..2.7) + rng.gen::<f64>().powi(8) * 3.5) as u64;
            Author {
                id: format!("u{:06}", i),
                handle,
                followers,
            }
        })
        .collect()
}

/// Generates the feed: one JSON object per line, sorted by `created_at`.
pub fn generate(opts: &SynthOptions) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let n = opts.count;
    let authors = author_pool(&mut rng, (n / 4).max(20));
    let spam = Author {
        id: "u999999".into(),
        handle: "promo_gacor88".into(),
        followers: 12,
    };

    let span_s = opts.span.num_seconds().max(60) as f64;
    let n_trend = n / 10;
    let n_crisis = n * 12 / 100;
    let n_spam = n * 4 / 100;
    let n_background = n - n_trend - n_crisis - n_spam;
    let mut plan: Vec<(f64, Kind)> = Vec::with_capacity(n);
    for _ in 0..n_background {
        let kind = background_kind(&mut rng);
        plan.push((rng.gen::<f64>(), kind));
    }
    for _ in 0..n_trend {
        // A launch: the hashtag appears at 60 % of the span and bursts at once (density ∝ 1/√x
        // after the onset), then stays in the conversation.
        let u: f64 = rng.gen();
        plan.push((0.60 + 0.40 * u * u, Kind::Trend));
    }
    for _ in 0..n_crisis {
        plan.push((rng.gen_range(0.78..0.90), Kind::Crisis));
    }
    for _ in 0..n_spam {
        plan.push((rng.gen::<f64>(), Kind::Spam));
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut lines: Vec<String> = plan
        .iter()
        .enumerate()
        .map(|(seq, (at, kind))| {
            let created_at = opts.start + Duration::milliseconds((at * span_s * 1000.0) as i64);
            mention(&mut rng, seq, created_at, *kind, &authors, &spam).to_string()
        })
        .collect();

    for i in 0..opts.malformed {
        let pos = (i + 1) * lines.len() / (opts.malformed + 1);
        lines.insert(pos.min(lines.len()), malformed(i, opts.start));
    }
    lines
}

fn pick_platform(rng: &mut ChaCha8Rng) -> &'static str {
    let total: u32 = PLATFORMS.iter().map(|p| p.1).sum();
    let mut r = rng.gen_range(0..total);
    for (p, w) in PLATFORMS {
        if r < *w {
            return p;
        }
        r -= w;
    }
    "x"
}

pub(crate) fn fill(template: &str, brand: &Brand, rng: &mut ChaCha8Rng, emoji: &[&str]) -> String {
    template
        .replace("{b}", brand.name)
        .replace("{a}", brand.handle)
        .replace("{h}", &format!("#{}", brand.tag))
        .replace("{p}", brand.products.choose(rng).unwrap())
        .replace("{e}", emoji.choose(rng).unwrap())
}

pub(crate) fn mention(
    rng: &mut ChaCha8Rng,
    seq: usize,
    created_at: DateTime<Utc>,
    kind: Kind,
    authors: &[Author],
    spam: &Author,
) -> serde_json::Value {
    let mut platform = pick_platform(rng);
    let brand = match kind {
        Kind::Trend => &BRANDS[0],
        Kind::Crisis | Kind::Spam => &BRANDS[1],
        _ => BRANDS.choose(rng).unwrap(),
    };
    let indonesian = rng.gen_bool(0.6);
    let text = match kind {
        Kind::Spam => {
            platform = "x";
            SPAM_TEXT.replace("{u}", &format!("https://bit.ly/gacor{}", seq % 13))
        }
        Kind::Trend => fill(TREND_TEXTS.choose(rng).unwrap(), brand, rng, POS_EMOJI),
        Kind::Crisis if platform == "rss" => CRISIS_NEWS.choose(rng).unwrap().to_string(),
        Kind::Crisis => fill(CRISIS_TEXTS.choose(rng).unwrap(), brand, rng, NEG_EMOJI),
        _ if platform == "rss" => fill(NEWS_TEXTS.choose(rng).unwrap(), brand, rng, POS_EMOJI),
        Kind::Chatter => {
            let t = if indonesian { ID_CHATTER } else { EN_CHATTER };
            fill(t.choose(rng).unwrap(), brand, rng, POS_EMOJI)
        }
        Kind::Praise => {
            let t = if indonesian { ID_PRAISE } else { EN_PRAISE };
            fill(t.choose(rng).unwrap(), brand, rng, POS_EMOJI)
        }
        Kind::Complaint => {
            let t = if indonesian {
                ID_COMPLAINT
            } else {
                EN_COMPLAINT
            };
            fill(t.choose(rng).unwrap(), brand, rng, NEG_EMOJI)
        }
    };
    let author = if kind == Kind::Spam {
        spam
    } else if platform == "rss" {
        &authors[seq % 7]
    } else {
        authors.choose(rng).unwrap()
    };
    let id = match platform {
        "x" => format!("{}", 1_860_000_000_000_000_000u64 + seq as u64 * 7919),
        "mastodon" => format!("{}", 113_500_000_000_000_000u64 + seq as u64 * 104_729),
        "bluesky" => format!("3l{:011x}", 0x5ee0_0000_0000u64 + seq as u64 * 31),
        "reddit" => format!("t1_{:x}", 0x8f00_0000u64 + seq as u64),
        "rss" => format!("news-{}-{seq}", created_at.format("%Y%m%d")),
        _ => format!("{}", 42_000_000 + seq),
    };
    let url = match platform {
        "x" => format!("https://x.com/{}/status/{id}", author.handle),
        "mastodon" => format!("https://mastodon.social/@{}/{id}", author.handle),
        "bluesky" => format!(
            "https://bsky.app/profile/{}.bsky.social/post/{id}",
            author.handle
        ),
        "reddit" => format!("https://www.reddit.com/r/indonesia/comments/{id}"),
        "rss" => format!("https://berita.example.id/{id}"),
        _ => format!("https://news.ycombinator.com/item?id={id}"),
    };
    // Most posts get a handful of likes; a few get hundreds.
    let likes = (rng.gen::<f64>().powi(6) * 600.0) as u32;
    let mut m = json!({
        "id": id,
        "platform": platform,
        "text": text,
        "created_at": created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "author": {"id": author.id, "handle": author.handle, "followers": author.followers},
        "url": url,
        "metrics": {"likes": likes, "reposts": likes / 5, "replies": likes / 9},
    });
    if matches!(platform, "mastodon" | "bluesky") {
        m["lang"] = json!(if text.contains(" yang ") || indonesian {
            "id"
        } else {
            "en"
        });
    }
    if matches!(kind, Kind::Complaint | Kind::Crisis) && rng.gen_bool(0.3) {
        let thread = format!(
            "{}-thread-{}",
            brand.handle,
            (created_at.timestamp() / 1800)
        );
        m["parent_id"] = json!(thread);
        m["thread_id"] = json!(thread);
    }
    m
}

/// A line the enrich stage must reject, one of several realistic breakages.
fn malformed(i: usize, start: DateTime<Utc>) -> String {
    let t = start.to_rfc3339();
    match i % 6 {
        0 => format!(
            r#"{{"id":"trunc-{i}","platform":"x","text":"export cut off mid-line","created_at":"{t}","auth"#
        ),
        1 => format!(
            r#"{{"id":"notext-{i}","platform":"reddit","created_at":"{t}","author":{{"id":"u1","handle":"a"}}}}"#
        ),
        2 => format!(
            r#"{{"id":"badtime-{i}","platform":"x","text":"kemarin sore","created_at":"kemarin","author":{{"id":"u1","handle":"a"}}}}"#
        ),
        3 => format!(
            r#"{{"id":"","platform":"bluesky","text":"no id","created_at":"{t}","author":{{"id":"u1","handle":"a"}}}}"#
        ),
        4 => "--- end of export page 3 ---".to_string(),
        _ => format!(
            r#"{{"id":{i},"platform":"hn","text":"id is a number","created_at":"{t}","author":{{"id":"u1","handle":"a"}}}}"#
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mention::Mention;

    fn opts(seed: u64) -> SynthOptions {
        SynthOptions {
            seed,
            count: 2000,
            start: "2026-11-26T00:00:00Z".parse().unwrap(),
            span: Duration::hours(3),
            malformed: 6,
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        assert_eq!(generate(&opts(7)), generate(&opts(7)));
        assert_ne!(generate(&opts(7)), generate(&opts(8)));
    }

    #[test]
    fn feed_has_the_promised_shape() {
        let lines = generate(&opts(1));
        assert_eq!(lines.len(), 2006);
        let parsed: Vec<Mention> = lines
            .iter()
            .filter_map(|l| Mention::parse(l.as_bytes()).ok())
            .collect();
        assert_eq!(
            parsed.len(),
            2000,
            "exactly the malformed lines fail to parse"
        );
        let keys: std::collections::HashSet<String> = parsed.iter().map(|m| m.key()).collect();
        assert_eq!(keys.len(), 2000, "keys are unique");
        assert!(
            parsed
                .windows(2)
                .all(|w| w[0].created_at <= w[1].created_at),
            "sorted by time"
        );
        let crisis = parsed
            .iter()
            .filter(|m| m.text.contains("#NusaPayDown"))
            .count();
        assert!(crisis >= 200, "negative burst present: {crisis}");
        let spam = parsed
            .iter()
            .filter(|m| m.author.handle == "promo_gacor88")
            .count();
        assert_eq!(spam, 80);
        let trend_late = parsed
            .iter()
            .filter(|m| m.text.contains("#KopiKitaSenja"))
            .all(|m| m.created_at >= opts(1).start + Duration::minutes(108));
        assert!(trend_late, "the trending hashtag starts at 60% of the span");
    }
}
