//! The JSON Schemas in `schemas/` agree with the Rust types and the bundled demo feed.

use std::sync::Arc;

use gema::enrich::Enricher;
use gema::mention::Mention;
use gema::sentiment::lexicon::LexiconModel;
use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn validator(name: &str) -> jsonschema::Validator {
    let mention = schema("mention.schema.json");
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource(
            "https://gema.dev/schemas/mention.schema.json",
            jsonschema::Resource::from_contents(mention).unwrap(),
        )
        .build(&schema(name))
        .unwrap()
}

fn demo_feed() -> Vec<String> {
    let path = format!("{}/tests/data/demo-feed.jsonl", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bundled_feed_lines_pass_the_schema_exactly_when_gema_accepts_them() {
    let v = validator("mention.schema.json");
    let (mut valid, mut invalid) = (0, 0);
    for (i, line) in demo_feed().iter().enumerate() {
        let parsed = Mention::parse(line.as_bytes());
        let json: Option<Value> = serde_json::from_str(line).ok();
        let schema_ok = json.as_ref().is_some_and(|j| v.is_valid(j));
        assert_eq!(
            parsed.is_ok(),
            schema_ok,
            "line {}: gema says {:?}, the schema says {schema_ok}: {line}",
            i + 1,
            parsed.err().map(|e| e.to_string())
        );
        if schema_ok {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert_eq!(
        (valid, invalid),
        (3000, 6),
        "the demo feed has 3000 valid and 6 malformed lines"
    );
}

#[test]
fn enriched_mentions_match_their_schema() {
    let v = validator("enriched-mention.schema.json");
    let enricher = Enricher::new(Arc::new(LexiconModel));
    for line in demo_feed().iter().take(500) {
        if let Ok(m) = Mention::parse(line.as_bytes()) {
            let e = serde_json::to_value(enricher.enrich(m)).unwrap();
            let errors: Vec<String> = v.iter_errors(&e).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?} in {e}");
        }
    }
}
