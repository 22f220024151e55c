//! The brand-chatter set shared by `tests/brand_chatter.rs` (the fast tier) and `tests/bert.rs`
//! (the cascade): templates of my own (neutral, positive and negative; English and Indonesian)
//! filled with invented brand names, each brand a tracked query so that its names are masked as
//! in the pipeline. The templates were written before the model was retrained with the brand
//! placeholder and were not changed after seeing its answers; they stand for the class of
//! error, not for a score to reach.

#![allow(dead_code)]

use gema::mention::Mention;
use gema::sentiment::Label;
use gema::tracked::TrackedQueryConfig;

pub const BRANDS: &[&str] = &[
    "Zorvia", "KopiLuma", "Trakindo", "Pandora", "Velto", "BayarIn", "Senjaku", "Mireo", "Qlinic",
    "Tokoma", "Ruvelo", "Gojeka",
];

/// `{b}` is the brand; `{h}` its handle; `{t}` its hashtag.
pub const TEMPLATES: &[(&str, Label)] = &[
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

pub fn mention(i: usize, text: String) -> Mention {
    serde_json::from_value(serde_json::json!({
        "id": format!("chatter-{i}"),
        "platform": "synth",
        "text": text,
        "created_at": "2026-12-01T00:00:00Z",
        "author": {"id": "u1", "handle": "someone"},
    }))
    .unwrap()
}

/// One tracked query per brand: its name, its handle and its hashtags.
pub fn queries() -> Vec<TrackedQueryConfig> {
    BRANDS
        .iter()
        .map(|b| {
            let l = b.to_lowercase();
            TrackedQueryConfig {
                name: l.clone(),
                query: format!("{l} OR @{l} OR #{l}*"),
            }
        })
        .collect()
}

/// One post of the set.
pub struct Case {
    /// Index into [`BRANDS`] and [`TEMPLATES`].
    pub brand: usize,
    pub template: usize,
    /// The brand's tracked query.
    pub query: String,
    pub text: String,
    pub gold: Label,
}

/// Every template filled with every brand (`{b}` the name, `{h}` the handle, `{t}` the hashtag).
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (bi, b) in BRANDS.iter().enumerate() {
        for (ti, (template, gold)) in TEMPLATES.iter().enumerate() {
            let l = b.to_lowercase();
            let text = template
                .replace("{b}", b)
                .replace("{h}", &format!("@{l}"))
                .replace("{t}", &format!("#{b}"));
            out.push(Case {
                brand: bi,
                template: ti,
                query: l,
                text,
                gold: *gold,
            });
        }
    }
    out
}

/// Negative precision and recall over (predicted, gold) pairs.
#[derive(Debug, Default)]
pub struct Tally {
    n: u32,
    tp: u32,
    fp: u32,
    fneg: u32,
}

impl Tally {
    pub fn add(&mut self, predicted: Label, gold: Label) {
        self.n += 1;
        match (predicted == Label::Negative, gold == Label::Negative) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fneg += 1,
            _ => {}
        }
    }

    /// Posts counted.
    pub fn total(&self) -> usize {
        self.n as usize
    }

    pub fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }

    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fneg).max(1) as f64
    }
}
