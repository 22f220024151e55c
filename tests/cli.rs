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
fn a_missing_sentiment_model_stops_serve_with_the_path() {
    let (ok, err) = gema(
        "",
        &["serve", "--insecure-no-auth", "--listen", "127.0.0.1:0"],
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

/// `gema classify` with the committed model and the default configuration; returns success,
/// stdout and stderr.
fn classify(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("classify")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn classify_gives_the_enrich_stage_verdict_and_never_guesses_other_languages() {
    let (ok, out, err) = classify(
        &[
            "--json",
            "Pelayanannya sangat lambat, gak puas",
            "awful customer service",
            "Das ist ein schönes Haus",
        ],
        "",
    );
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (&rows[0]["lang"], &rows[0]["label"]),
        (&"id".into(), &"negative".into())
    );
    assert_eq!(
        (&rows[1]["lang"], &rows[1]["label"]),
        (&"en".into(), &"negative".into())
    );
    assert_eq!(
        (&rows[2]["lang"], &rows[2]["label"]),
        (&"other".into(), &"unscored".into())
    );
    assert_eq!(rows[2]["confidence"], 0.0);
}

#[test]
fn classify_explain_names_the_word_that_drove_the_label() {
    let (ok, out, err) = classify(
        &["--json", "--explain"],
        "awful customer service\nlove it\n",
    );
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 2);
    for (row, word, negative) in [(&rows[0], "awful", true), (&rows[1], "love", false)] {
        let words = row["words"].as_array().unwrap();
        let top = &words[0];
        assert_eq!(top["word"], word, "{row}");
        let effect = top["effect"].as_f64().unwrap();
        assert_eq!(effect < 0.0, negative, "{row}");
        let sizes: Vec<f64> = words
            .iter()
            .map(|w| w["effect"].as_f64().unwrap().abs())
            .collect();
        assert!(sizes.windows(2).all(|p| p[0] >= p[1]), "{row}");
    }
    assert_eq!(rows[0]["normalized"], "awful customer service");
}

#[test]
fn classify_names_the_stdin_line_that_is_not_a_mention() {
    let (ok, _, err) = classify(&["--jsonl"], "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
    assert!(!ok);
    assert!(err.contains("stdin line 2"), "{err}");
    assert!(err.contains("`text`"), "{err}");
}

#[test]
fn a_log_written_to_a_pipe_or_file_has_no_terminal_colours() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gema"))
        .args(["serve", "--insecure-no-auth", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("WARN"), "{line:?}");
    assert!(
        !line.contains('\u{1b}'),
        "ANSI escapes in a piped log: {line:?}"
    );
}
