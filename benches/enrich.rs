//! The enrich stage's pure path on short tweets: extraction, language id, sentiment and
//! tracked-query matching, per mention (`cargo bench --bench enrich`).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gema::enrich::Enricher;
use gema::mention::Mention;
use gema::sentiment::lexicon::LexiconModel;
use gema::sources::synth::{generate, SynthOptions};
use gema::tracked::{QuerySet, TrackedQueryConfig};

fn mentions() -> Vec<Mention> {
    generate(&SynthOptions {
        seed: 1,
        count: 2000,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: chrono::Duration::hours(3),
        malformed: 0,
    })
    .iter()
    .map(|l| Mention::parse(l.as_bytes()).unwrap())
    .collect()
}

fn queries() -> QuerySet {
    let q = |name: &str, query: &str| TrackedQueryConfig {
        name: name.into(),
        query: query.into(),
    };
    QuerySet::compile(&[
        q(
            "kopikita",
            r#"kopikita OR "kopi kita" OR @kopikita OR #kopikita*"#,
        ),
        q("nusapay", "nusapay OR @nusapay OR #nusapay*"),
        q(
            "arunika-air",
            r#""arunika air" OR @arunikaair OR #arunikaair*"#,
        ),
        q(
            "refunds",
            "(refund* NEAR/4 nusapay OR \"uang kembali\") -promo",
        ),
    ])
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let ms = mentions();
    let enricher = Enricher::new(Arc::new(LexiconModel)).with_queries(queries());
    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(ms.len() as u64));
    g.bench_function("parse_enrich_serialize", |b| {
        let lines: Vec<Vec<u8>> = ms.iter().map(|m| serde_json::to_vec(m).unwrap()).collect();
        b.iter(|| {
            for l in &lines {
                let e = enricher.enrich(Mention::parse(l).unwrap());
                std::hint::black_box(serde_json::to_vec(&e).unwrap());
            }
        })
    });
    g.bench_function("enrich_only", |b| {
        b.iter_batched(
            || ms.clone(),
            |ms| {
                ms.into_iter()
                    .map(|m| std::hint::black_box(enricher.enrich(m)).keywords.len())
                    .sum::<usize>()
            },
            BatchSize::LargeInput,
        )
    });
    let trained =
        gema::sentiment::load_model(std::path::Path::new(gema::sentiment::DEFAULT_MODEL_PATH))
            .expect(
                "run from the repository root: the committed model is models/sentiment-fast.bin",
            );
    let enricher = Enricher::new(Arc::new(trained)).with_queries(queries());
    g.bench_function("enrich_only_trained_model", |b| {
        b.iter_batched(
            || ms.clone(),
            |ms| {
                ms.into_iter()
                    .map(|m| std::hint::black_box(enricher.enrich(m)).keywords.len())
                    .sum::<usize>()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
