//! Property tests on arbitrary input: the mention parser, the enricher behind it, the text
//! normaliser, language id and the tracked-query parser never panic; each gives a value or an
//! error that says why.

use std::sync::Arc;

use gema::enrich::Enricher;
use gema::mention::Mention;
use gema::sentiment::lexicon::LexiconModel;
use gema::tracked::{QueryError, QuerySet, TrackedQueryConfig};
use proptest::prelude::*;

const REASONS: [&str; 7] = [
    "not_utf8",
    "invalid_json",
    "schema",
    "empty_field",
    "too_long",
    "out_of_range",
    "too_deep",
];

/// A mention-shaped JSON object with arbitrary strings in its fields (quoted as JSON).
fn mention_json() -> impl Strategy<Value = String> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(id, platform, text, author, lang)| {
            let q = |s: &str| serde_json::to_string(s).unwrap();
            let lang = lang.map(|l| format!(r#","lang":{}"#, q(&l))).unwrap_or_default();
            format!(
                r#"{{"id":{},"platform":{},"text":{},"created_at":"2026-11-26T00:00:00Z","author":{{"id":{},"handle":"h"}}{lang}}}"#,
                q(&id),
                q(&platform),
                q(&text),
                q(&author)
            )
        })
}

fn enricher() -> Enricher {
    let queries = QuerySet::compile(&[TrackedQueryConfig {
        name: "nusapay".into(),
        query: "nusapay OR #nusapay* OR \"saldo hilang\"".into(),
    }])
    .unwrap();
    Enricher::new(Arc::new(LexiconModel)).with_queries(queries)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_to_a_mention_or_a_reasoned_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Mention::parse(&bytes) {
            prop_assert!(REASONS.contains(&e.reason()), "{}: {e}", e.reason());
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn any_mention_shaped_json_is_enriched_or_refused_with_a_reason(json in mention_json()) {
        match Mention::parse(json.as_bytes()) {
            Ok(m) => {
                let e = enricher().enrich(m);
                // What enrich writes, the sink reads back.
                let out = serde_json::to_vec(&e).unwrap();
                let back: gema::mention::EnrichedMention = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(back.key, e.key);
                prop_assert!((-1.0..=1.0).contains(&e.sentiment.score));
            }
            Err(e) => prop_assert!(REASONS.contains(&e.reason()), "{}: {e}", e.reason()),
        }
    }

    #[test]
    fn any_text_normalises_and_gets_a_language(text in any::<String>()) {
        let n = gema::text::normalize::normalize(&text);
        let _ = gema::text::lang::detect(&n);
        let (_, confidence) = gema::text::lang::resolve(&text, None);
        prop_assert!((0.0..=1.0).contains(&confidence), "{confidence}");
    }

    #[test]
    fn any_query_text_compiles_or_names_the_position(query in any::<String>()) {
        let chars = query.chars().count();
        match QuerySet::compile(&[TrackedQueryConfig { name: "q".into(), query }]) {
            Ok(_) => {}
            Err(QueryError::Syntax { position, message, .. }) => {
                prop_assert!(position >= 1 && position <= chars + 1, "{position} of {chars}");
                prop_assert!(!message.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error: {e}"),
        }
    }

    #[test]
    fn query_like_text_compiles_or_names_the_position(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "nusapay", "AND", "OR", "NOT", "-", "(", ")", "\"", "#kopi", "@nusapay", "lang:id",
                "platform:x", "NEAR/3", "NEAR/0", "saldo*", "a*", "top-up", " ",
            ]),
            0..24,
        )
    ) {
        let query = parts.join(" ");
        let chars = query.chars().count();
        match QuerySet::compile(&[TrackedQueryConfig { name: "q".into(), query }]) {
            Ok(_) => {}
            Err(QueryError::Syntax { position, message, .. }) => {
                prop_assert!(position >= 1 && position <= chars + 1, "{position} of {chars}");
                prop_assert!(!message.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error: {e}"),
        }
    }
}
