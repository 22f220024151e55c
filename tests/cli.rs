//! Start-up errors a user sees: they name the input and the problem, and nothing starts.
//! (No services needed: these fail before connecting.)

use std::process::Command;

fn gema(config: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gema.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gema"));
    cmd.arg("--config").arg(&path).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_invalid_tracked_query_stops_start_up_with_its_name_and_position() {
    let (ok, err) = gema(
        "[[tracked]]\nname = \"nusapay-crisis\"\nquery = 'nusapay AND'\n",
        &["run"],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("query \"nusapay-crisis\": at position"),
        "{err}"
    );
}

#[test]
fn a_missing_sentiment_model_stops_the_enrich_stage_with_the_path() {
    let (ok, err) = gema(
        "",
        &["enrich"],
        &[("GEMA_SENTIMENT_MODEL", "/nonexistent/model.bin")],
    );
    assert!(!ok);
    assert!(err.contains("/nonexistent/model.bin"), "{err}");
}

#[test]
fn a_corrupt_sentiment_model_stops_the_enrich_stage_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.bin");
    std::fs::write(&bad, b"GEMASENT not really a model").unwrap();
    let (ok, err) = gema(
        "",
        &["enrich"],
        &[("GEMA_SENTIMENT_MODEL", bad.to_str().unwrap())],
    );
    assert!(!ok);
    assert!(err.contains("model.bin"), "{err}");
}

#[test]
fn unknown_config_keys_and_bad_values_name_the_key() {
    let (ok, err) = gema("[kafka]\nbrokerz = \"x\"\n", &["status"], &[]);
    assert!(!ok);
    assert!(err.contains("brokerz"), "{err}");
    let (ok, err) = gema("[trends]\nbucket_ms = 0\n", &["status"], &[]);
    assert!(!ok);
    assert!(err.contains("bucket_ms"), "{err}");
}

#[test]
fn a_confidence_outside_zero_to_one_is_refused_before_connecting() {
    let (ok, err) = gema("", &["mentions", "--min-confidence", "1.5"], &[]);
    assert!(!ok);
    assert!(
        err.contains("--min-confidence") && err.contains("not a confidence from 0 to 1"),
        "{err}"
    );
}
