//! Brand chatter: the class of error where a brand's own name, or plain talk about it, is read
//! as negative. A set of my own templates (neutral, positive and negative; English and
//! Indonesian) filled with invented brand names, run through the enrich stage's code path with
//! the brands as tracked queries, so that the names are masked as in the pipeline.
//!
//! The templates were written before the model was retrained with the brand placeholder and
//! were not changed after seeing its answers; they stand for the class of error, not for a score
//! to reach. What is asserted is what masking guarantees: every brand gets the same reading of
//! a template, so the name itself sways nothing. The target for this set (negative
//! precision and recall ≥ 0.90) is printed, not asserted: the fast tier reaches recall 1.00 but
//! precision 0.67, because a few plain templates ("Heading out, grabbing my usual from {b}",
//! "Pakai {b} lagi hari ini") read as negative whatever the brand; that is open work.

use std::sync::Arc;

use gema::enrich::Enricher;
use gema::mention::Mention;
use gema::sentiment::{load_model, Label};
use gema::tracked::{QuerySet, TrackedQueryConfig};

const BRANDS: &[&str] = &[
    "Zorvia", "KopiLuma", "Trakindo", "Pandora", "Velto", "BayarIn", "Senjaku", "Mireo", "Qlinic",
    "Tokoma", "Ruvelo", "Gojeka",
];

/// `{b}` is the brand; `{h}` its handle; `{t}` its hashtag.
const TEMPLATES: &[(&str, Label)] = &[
    // English, neutral: questions, announcements, plain chatter.
    ("Heading out, grabbing my usual from {b}", Label::Neutral),
    ("Using {b} again today", Label::Neutral),
    ("Does anyone know if {b} is open on Sunday?", Label::Neutral),
    (
        "{b} announced a new branch in Bandung next month",
        Label::Neutral,
    ),
    ("Everyone is talking about {b} this week", Label::Neutral),
    ("{h} what time does the store close today?", Label::Neutral),
    (
        "Just saw the news about {b} and their new app",
        Label::Neutral,
    ),
    ("Ordered from {b} for the office lunch {t}", Label::Neutral),
    // English, positive.
    ("Love the new {b} update, so smooth!", Label::Positive),
    (
        "{b} customer service was super helpful today, thank you {h}",
        Label::Positive,
    ),
    ("Best coffee in town is still {b} {t}", Label::Positive),
    // English, negative.
    (
        "{b} app keeps crashing, this is so frustrating",
        Label::Negative,
    ),
    (
        "Worst service ever from {b}, my money is gone and nobody replies {h}",
        Label::Negative,
    ),
    (
        "Really disappointed with {b}, the order arrived broken {t}",
        Label::Negative,
    ),
    ("{h} your app is down again, terrible", Label::Negative),
    // Indonesian, neutral.
    ("Lagi antri di {b} dekat kantor", Label::Neutral),
    ("Pakai {b} lagi hari ini", Label::Neutral),
    ("Ada yang tahu {b} buka jam berapa?", Label::Neutral),
    (
        "{b} umumkan cabang baru di Surabaya bulan depan",
        Label::Neutral,
    ),
    ("{h} min, cara ganti nomor hp gimana ya?", Label::Neutral),
    ("Baru baca berita soal {b} tadi pagi {t}", Label::Neutral),
    // Indonesian, positive.
    ("Pelayanan {b} cepat dan ramah, mantap {t}", Label::Positive),
    ("Suka banget sama promo {b} minggu ini", Label::Positive),
    ("Makasih {h}, masalahku langsung beres", Label::Positive),
    // Indonesian, negative.
    (
        "Kecewa banget sama {b}, saldo hilang belum balik {t}",
        Label::Negative,
    ),
    ("Aplikasi {b} error terus dari pagi, parah", Label::Negative),
    (
        "{h} tolong dong, sudah tiga hari pesanan belum sampai, kecewa",
        Label::Negative,
    ),
    (
        "Pelayanan {b} buruk sekali, tidak akan pakai lagi",
        Label::Negative,
    ),
];

fn mention(i: usize, text: String) -> Mention {
    serde_json::from_value(serde_json::json!({
        "id": format!("chatter-{i}"),
        "platform": "synth",
        "text": text,
        "created_at": "2026-12-01T00:00:00Z",
        "author": {"id": "u1", "handle": "someone"},
    }))
    .unwrap()
}

#[test]
fn brand_chatter_is_not_read_as_negative() {
    let model = Arc::new(load_model(std::path::Path::new("models/sentiment-fast.bin")).unwrap());
    let queries: Vec<TrackedQueryConfig> = BRANDS
        .iter()
        .map(|b| {
            let l = b.to_lowercase();
            TrackedQueryConfig {
                name: l.clone(),
                query: format!("{l} OR @{l} OR #{l}*"),
            }
        })
        .collect();
    let enricher = Enricher::new(model.clone()).with_queries(QuerySet::compile(&queries).unwrap());
    let plain = Enricher::new(model);
    // (template, detected language) → label: the language is detected on the unmasked text, so
    // a name may tip it; within one language the reading must not depend on the brand.
    let mut by_template: std::collections::HashMap<(usize, String), Label> = Default::default();
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    let (mut plain_tp, mut plain_fp, mut plain_fn) = (0, 0, 0);
    let mut n = 0;
    for (bi, b) in BRANDS.iter().enumerate() {
        for (ti, (template, gold)) in TEMPLATES.iter().enumerate() {
            let l = b.to_lowercase();
            let text = template
                .replace("{b}", b)
                .replace("{h}", &format!("@{l}"))
                .replace("{t}", &format!("#{b}"));
            let i = bi * TEMPLATES.len() + ti;
            let e = enricher.enrich(mention(i, text.clone()));
            assert_eq!(e.queries, vec![l.clone()], "{text}");
            if e.lang == "en" || e.lang == "id" {
                let first = by_template
                    .entry((ti, e.lang.clone()))
                    .or_insert(e.sentiment.label);
                assert_eq!(
                    *first, e.sentiment.label,
                    "brand {b} changed the reading of {text}"
                );
            }
            let neg = e.sentiment.label == Label::Negative;
            let gold_neg = *gold == Label::Negative;
            match (neg, gold_neg) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
            let p = plain.enrich(mention(i, text)).sentiment.label == Label::Negative;
            match (p, gold_neg) {
                (true, true) => plain_tp += 1,
                (true, false) => plain_fp += 1,
                (false, true) => plain_fn += 1,
                _ => {}
            }
            n += 1;
        }
    }
    let ratio = |a: i32, b: i32| a as f64 / (a + b).max(1) as f64;
    let (precision, recall) = (ratio(tp, fp), ratio(tp, fneg));
    println!(
        "brand chatter: {n} posts; masked: negative precision {precision:.3} recall {recall:.3}; \
         unmasked: precision {:.3} recall {:.3}",
        ratio(plain_tp, plain_fp),
        ratio(plain_tp, plain_fn)
    );
    let scored: std::collections::HashSet<usize> = by_template.keys().map(|k| k.0).collect();
    assert!(
        scored.len() >= TEMPLATES.len() - 4,
        "most templates are scored: {scored:?}"
    );
}

#[test]
fn masking_replaces_the_matched_brand_only() {
    let queries = QuerySet::compile(&[TrackedQueryConfig {
        name: "nusapay".into(),
        query: "nusapay OR @nusapay OR #nusapay* -promo".into(),
    }])
    .unwrap();
    let m = |t: &str| queries.mask(t, &[0]);
    let mark = gema::text::normalize::BRAND_MARK;
    assert_eq!(
        m("NusaPay's app is down @nusapay #NusaPayDown").unwrap(),
        format!("{mark}'s app is down {mark} {mark} Down")
    );
    assert_eq!(m("nothing here"), None);
    assert_eq!(queries.mask("NusaPay", &[]), None);
    let normalized = gema::text::normalize::normalize(&m("Pakai NusaPay lagi").unwrap());
    assert_eq!(normalized, "pakai <brand> lagi");
}
