//! Sentiment hot path on short social posts: normalise, language id, classify, and all three
//! together (what the enrich stage does per mention). One thread.
//!
//! Needs the trained model: `cargo run --release -- train --data ../shared/data` first.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gema::sentiment::{load_model, SentimentModel, DEFAULT_MODEL_PATH};
use gema::text::normalize::normalize;

/// Short posts in the style of brand mentions (written for this bench, not taken from any data set).
const POSTS: &[&str] = &[
    "@AcmeAir worst flight ever, 3 hours late and no info!!! #NotHappy",
    "Love the new update, app is sooo much faster now 😍",
    "pelayanan @tokoku lambat bgt, udh 2 minggu blm sampe #GakPuas",
    "mantap, barangnya bagus dan pengiriman cepat 👍👍",
    "Anyone else's internet down in Jakarta right now?",
    "gak nyesel beli di sini, recommended banget kak",
    "Customer service was helpful but the refund still hasn't arrived :(",
    "kecewa sama kualitasnya, gak sesuai foto 😡",
    "Just got my order, packaging was ok I guess",
    "terima kasih min, masalahnya sudah beres 🙏",
    "This is not what I paid for. Never again. https://t.co/abc123",
    "hari ini promo apa aja ya? ada diskon ongkir gak?",
    "honestly the best coffee in town, staff are super friendly",
    "aplikasinya error terus pas mau bayar, gimana sih",
    "meh. it's fine.",
    "wkwkwk iklannya lucu bangettt",
];

fn bench(c: &mut Criterion) {
    let model = load_model(Path::new(DEFAULT_MODEL_PATH))
        .unwrap_or_else(|e| panic!("{e}; train it with `gema train --data ../shared/data` first"));
    let mut g = c.benchmark_group("sentiment");
    g.throughput(Throughput::Elements(POSTS.len() as u64));
    g.bench_function("normalize", |b| {
        let mut out = String::new();
        b.iter(|| {
            for p in POSTS {
                gema::text::normalize::normalize_into(black_box(p), &mut out);
                black_box(&out);
            }
        })
    });
    g.bench_function("lang_detect", |b| {
        b.iter(|| {
            for p in POSTS {
                black_box(model.language(black_box(p), None));
            }
        })
    });
    let langs: Vec<_> = POSTS.iter().map(|p| model.language(p, None).0).collect();
    g.bench_function("classify", |b| {
        b.iter(|| {
            for (p, l) in POSTS.iter().zip(&langs) {
                black_box(model.classify(black_box(p), *l));
            }
        })
    });
    g.bench_function("pipeline", |b| {
        b.iter(|| {
            for p in POSTS {
                let (l, _) = model.language(black_box(p), None);
                black_box(model.classify(p, l));
            }
        })
    });
    g.finish();
    // Keep `normalize` (the allocating wrapper) exercised so its signature stays benchmarked code.
    black_box(normalize(POSTS[0]));
}

criterion_group!(benches, bench);
criterion_main!(benches);
