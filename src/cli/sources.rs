//! `gema sources`: every `[[sources]]` connector of the config with its state, as the process
//! running it (`gema run`, `gema serve --sources`) last wrote it.

use chrono::{DateTime, Utc};
use gema::config::Config;
use gema::query::table;
use gema::sources::health::{views, SourceView};

#[derive(Debug, clap::Args)]
pub struct SourcesArgs {
    /// Print JSON (one object per source, with every health field) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `t` as the time since it, e.g. `42s ago`, `5m ago`, `3h ago`; `-` when unset.
fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else { return "-".into() };
    let s = (now - t).num_seconds();
    match s {
        i64::MIN..=-1 => format!("in {}", ago(Some(now), t).trim_end_matches(" ago")),
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// The table `gema sources` prints.
pub fn sources_table(views: &[SourceView], now: DateTime<Utc>) -> String {
    if views.is_empty() {
        return "No [[sources]] in the config.\n".into();
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let h = v.health.clone().unwrap_or_default();
            let error = match (&h.last_error, h.last_error_at) {
                (Some(e), at) => format!("{} ({})", e, ago(at, now)),
                _ => String::new(),
            };
            vec![
                v.name.clone(),
                v.kind.clone(),
                v.state().to_string(),
                ago(h.last_poll, now),
                ago(h.last_ok, now),
                h.sent.to_string(),
                h.errors.to_string(),
                h.cursor.unwrap_or_default(),
                if v.running {
                    ago(h.next_at, now)
                } else {
                    "-".into()
                },
                error,
            ]
        })
        .collect();
    table::render(
        &[
            "source",
            "kind",
            "state",
            "last poll",
            "last ok",
            "sent",
            "errors",
            "cursor",
            "next",
            "last error",
        ],
        &rows,
        70,
    )
}

pub fn sources(config: &Config, args: &SourcesArgs) -> anyhow::Result<()> {
    let v = views(&config.sources, &config.state_dir);
    if args.json {
        for s in &v {
            println!("{}", serde_json::to_string(s)?);
        }
    } else {
        print!("{}", sources_table(&v, Utc::now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gema::sources::health::{Health, SourceState};

    #[test]
    fn the_table_shows_state_times_and_the_last_error() {
        let now = Utc::now();
        let v = SourceView {
            name: "yt".into(),
            kind: "youtube".into(),
            follow: vec!["UCabc".into()],
            health: Some(Health {
                state: SourceState::RateLimited,
                last_poll: Some(now - chrono::Duration::seconds(30)),
                last_ok: Some(now - chrono::Duration::minutes(10)),
                last_error: Some("HTTP 429".into()),
                last_error_at: Some(now - chrono::Duration::seconds(30)),
                sent: 12,
                errors: 1,
                cursor: Some("2 videos".into()),
                next_at: Some(now + chrono::Duration::seconds(300)),
                ..Health::default()
            }),
            running: true,
        };
        let t = sources_table(std::slice::from_ref(&v), now);
        assert!(t.contains("rate_limited"), "{t}");
        assert!(
            t.contains("30s ago") && t.contains("10m ago") && t.contains("in 5m"),
            "{t}"
        );
        assert!(t.contains("HTTP 429 (30s ago)"), "{t}");
        let gone = SourceView {
            running: false,
            ..v.clone()
        };
        assert!(sources_table(&[gone], now).contains("not running"));
        let never = SourceView { health: None, ..v };
        assert!(sources_table(&[never], now).contains("never run"));
    }
}
