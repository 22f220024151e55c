//! Brand chatter: the class of error where a brand's own name, or plain talk about it, is read
//! as negative. The set (`tests/chatter/`) runs through the enrich stage's code path with the
//! brands as tracked queries, so that the names are masked as in the pipeline. What is asserted
//! is what masking guarantees: every brand gets the same language and reading of a template,
//! so the name itself sways nothing. The target for this set (negative precision and recall ≥ 0.90)
//! is printed, not asserted: the fast tier reaches recall 1.00 but precision 0.67 (0.73 with the
//! cascade, `tests/bert.rs`), because a few plain templates ("Heading out, grabbing my usual
//! from {b}", "Pakai {b} lagi hari ini") read as negative whatever the brand; that is open work.

use std::sync::Arc;

use gema::enrich::Enricher;
use gema::sentiment::{load_model, Label};
use gema::tracked::{QuerySet, TrackedQueryConfig};

mod chatter;
use chatter::{cases, mention, queries, Tally, TEMPLATES};

#[test]
fn brand_chatter_is_not_read_as_negative() {
    let model = Arc::new(load_model(std::path::Path::new("models/sentiment-fast.bin")).unwrap());
    let enricher =
        Enricher::new(model.clone()).with_queries(QuerySet::compile(&queries()).unwrap());
    let plain = Enricher::new(model);
    // template → (language, label): the language is read without the names too, so no brand
    // changes either.
    let mut by_template: std::collections::HashMap<usize, (String, Label)> = Default::default();
    let (mut masked, mut unmasked) = (Tally::default(), Tally::default());
    let cases = cases();
    for (i, c) in cases.iter().enumerate() {
        let e = enricher.enrich(mention(i, c.text.clone()));
        assert_eq!(e.queries, vec![c.query.clone()], "{}", c.text);
        let reading = (e.lang.clone(), e.sentiment.label);
        let first = by_template.entry(c.template).or_insert(reading.clone());
        assert_eq!(
            *first, reading,
            "brand {} changed the reading of {}",
            c.query, c.text
        );
        masked.add(e.sentiment.label, c.gold);
        unmasked.add(
            plain.enrich(mention(i, c.text.clone())).sentiment.label,
            c.gold,
        );
    }
    println!(
        "brand chatter: {} posts; masked: negative precision {:.3} recall {:.3}; \
         unmasked: precision {:.3} recall {:.3}",
        cases.len(),
        masked.precision(),
        masked.recall(),
        unmasked.precision(),
        unmasked.recall()
    );
    let scored = by_template
        .values()
        .filter(|(lang, _)| lang == "en" || lang == "id")
        .count();
    assert!(
        scored >= TEMPLATES.len() - 4,
        "most templates are scored: {by_template:?}"
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
