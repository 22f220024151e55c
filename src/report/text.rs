//! The report as Markdown (for reading and for the email's plain-text part) and as CSV.
//!
//! The CSV is one long table, `section,query,item,field,value`, one value per row, so every
//! section fits one header and a spreadsheet pivot rebuilds any table:
//!
//! | section | query | item | fields |
//! |---|---|---|---|
//! | `window` | | | `since`, `until`, `previous_since` (RFC 3339 UTC) |
//! | `kpi` | tracked query | | `mentions`, `negative_share` (0–1), `reach`, `net_sentiment` (−1–1), each also as `<field>_previous`; `mentions_change_pct`, `reach_change_pct` (empty when the previous value is 0), `negative_share_change_pp`, `net_sentiment_change` |
//! | `incident` | tracked query | incident id | `severity`, `status`, `movement`, `opened_at`, `last_event_at`, `resolved_at` (empty while not resolved), `negative_posts`, `peak_per_minute`, `alert_count`, `driving_terms` (`;`-separated), `summary`, `top_post` (its URL) |
//! | `alert` | tracked query (empty: none) | alert id | `kind`, `severity`, `status`, `detected_at`, `title`, `why`, `link` |
//! | `negative_post` | the post's tracked queries, `;`-separated | mention key | `rank`, `created_at`, `platform`, `author`, `followers`, `confidence`, `url`, `text` |
//! | `rising` | | term | `rank`, `score`, `authors`, `count`, `baseline_mean`, `bucket_start` |
//! | `chart` | tracked query | bucket start (RFC 3339) | `negative`, `total` |
//!
//! Text cells starting with `=`, `+`, `-`, `@`, tab or carriage return get a leading `'` so a
//! spreadsheet shows them instead of running them as formulas (numbers are left alone).

use std::fmt::Write;

use super::data::{show_width, QueryKpis, Report};

/// A signed relative change (`+50.0%`), `new` from nothing, `–` from nothing to nothing.
pub fn show_change_pct(change: Option<f64>, current: u64) -> String {
    match change {
        Some(c) => format!("{c:+.1}%"),
        None if current > 0 => "new".into(),
        None => "–".into(),
    }
}

/// The KPI table's cells of one query: mentions, change, negative share, change, reach, change,
/// net sentiment, change.
pub fn kpi_cells(k: &QueryKpis) -> [String; 8] {
    [
        k.current.mentions.to_string(),
        show_change_pct(k.mentions_change_pct(), k.current.mentions),
        format!("{:.1}%", k.current.negative_share() * 100.0),
        format!("{:+.1} pp", k.negative_share_change_pp()),
        k.current.reach.to_string(),
        show_change_pct(k.reach_change_pct(), k.current.reach),
        format!("{:+.2}", k.current.net_sentiment()),
        format!("{:+.2}", k.net_sentiment_change()),
    ]
}

/// The KPI table's column names, after the query's.
pub const KPI_COLUMNS: [&str; 8] = [
    "Mentions",
    "vs prev.",
    "Negative",
    "vs prev.",
    "Reach",
    "vs prev.",
    "Net sentiment",
    "vs prev.",
];

/// The first sample link of an alert, if any.
pub fn alert_link(a: &crate::query::alerts::StoredAlert) -> Option<String> {
    serde_json::from_str::<Vec<crate::alerts::Sample>>(&a.samples)
        .ok()
        .and_then(|s| s.into_iter().map(|s| s.url).find(|u| !u.is_empty()))
}

/// `url` when it is an http(s) link (anything else is not made clickable).
pub fn web_link(url: &str) -> Option<&str> {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some(url)
}

/// An incident's status, movement and times in the report's zone: "acknowledged, fading;
/// opened 12-07 06:26 UTC, last alert 12-07 07:13 UTC".
pub fn incident_when(r: &Report, i: &crate::query::incidents::StoredIncident) -> String {
    let mut s = format!(
        "{}, {}; opened {}, last alert {}",
        i.status,
        i.movement,
        r.show_time(i.opened_at),
        r.show_time(i.last_event_at)
    );
    // A person may have reopened one the router resolved: its fading out is then history.
    if let Some(t) = i.resolved().filter(|_| i.status == "resolved") {
        s.push_str(&format!(", faded out {}", r.show_time(t)));
    }
    s
}

/// The heading of an alert group.
pub fn group_title(query: &str, kind: &str, n: usize) -> String {
    let query = if query.is_empty() {
        "(no tracked query)"
    } else {
        query
    };
    format!("{query} — {kind} ({n})")
}

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn md_link(url: &str) -> String {
    match web_link(url) {
        // Angle brackets keep parentheses and spaces in the address from ending the link.
        Some(u) => format!("[link](<{}>)", u.replace(['<', '>', ' '], "")),
        None if url.is_empty() => "no link".into(),
        None => md_cell(url),
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# gema report: {} – {}\n\nCompared with the previous period, {} – {}. Generated {}.\n",
        r.show_time(r.since),
        r.show_time(r.until),
        r.show_time(r.previous_since),
        r.show_time(r.since),
        r.show_time(r.generated_at)
    );

    s.push_str("## KPIs per tracked query\n\n");
    if r.kpis.is_empty() {
        s.push_str("No tracked queries and no mentions of any.\n\n");
    } else {
        let _ = writeln!(s, "| Query | {} |", KPI_COLUMNS.join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(KPI_COLUMNS.len()));
        for k in &r.kpis {
            let _ = writeln!(
                s,
                "| {} | {} |",
                md_cell(&k.query),
                kpi_cells(k).join(" | ")
            );
        }
        s.push_str(
            "\nNegative: share of scored mentions. Reach: the authors' followers summed. Net \
             sentiment: (positive − negative) / scored.\n\n",
        );
    }

    s.push_str("## Incidents\n\n");
    if r.incidents.is_empty() {
        s.push_str("No incidents in this period.\n\n");
    }
    for i in &r.incidents {
        let _ = writeln!(
            s,
            "- **{}** {} — {}",
            i.severity.to_uppercase(),
            md_cell(&i.query),
            md_cell(&incident_when(r, i))
        );
        let _ = writeln!(s, "  {}", md_cell(&i.summary));
        if let Some(p) = i.top_post() {
            let _ = writeln!(
                s,
                "  top post: @{} ({} followers): {} {}",
                md_cell(&p.author_handle),
                p.author_followers,
                md_cell(&p.text),
                md_link(&p.url)
            );
        }
    }
    if !r.incidents.is_empty() {
        s.push('\n');
    }

    s.push_str("## Alerts\n\n");
    if r.alerts.is_empty() {
        s.push_str("No alerts in this period.\n\n");
    }
    for g in &r.alerts {
        let _ = writeln!(
            s,
            "### {}\n",
            md_cell(&group_title(&g.query, &g.kind, g.alerts.len()))
        );
        for a in &g.alerts {
            let _ = writeln!(
                s,
                "- {} · {} · {} · {} — {} · {}",
                r.show_time(a.detected_at),
                a.severity,
                a.status,
                md_cell(&a.title),
                md_cell(&a.why),
                md_link(&alert_link(a).unwrap_or_default())
            );
        }
        s.push('\n');
    }

    s.push_str("## Top negative posts\n\n");
    if r.negative_posts.is_empty() {
        s.push_str("No negative posts in this period.\n\n");
    }
    for (i, p) in r.negative_posts.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. **@{}** ({} followers) on {}, {}, confidence {:.2}, {} — {}",
            i + 1,
            md_cell(&p.author_handle),
            p.author_followers,
            md_cell(&p.platform),
            r.show_time(p.created_at),
            p.sentiment_confidence,
            md_cell(&p.queries.join(", ")),
            md_link(&p.url)
        );
        for line in p.text.lines() {
            let _ = writeln!(s, "   > {line}");
        }
        s.push('\n');
    }

    s.push_str("## Rising terms\n\n");
    if r.rising.is_empty() {
        s.push_str("Nothing crossed the burst threshold.\n\n");
    } else {
        s.push_str("| Term | Score | Authors | Count | Baseline | Bucket |\n|---|---:|---:|---:|---:|---|\n");
        for t in &r.rising {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {} | {} | {:.1} | {} |",
                md_cell(&t.term),
                t.score,
                t.authors,
                t.count,
                t.baseline_mean,
                r.show_time(t.bucket_start)
            );
        }
        s.push('\n');
    }

    let _ = writeln!(
        s,
        "## Negative / all mentions per {}\n",
        show_width(r.chart.bucket_s)
    );
    if r.chart.series.is_empty() {
        s.push_str("No tracked queries.\n");
    } else {
        let names: Vec<String> = r.chart.series.iter().map(|x| md_cell(&x.query)).collect();
        let _ = writeln!(s, "| Bucket | {} |", names.join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(names.len()));
        for (i, start) in r.chart.starts.iter().enumerate() {
            let cells: Vec<String> = r
                .chart
                .series
                .iter()
                .map(|x| format!("{}/{}", x.negative[i], x.total[i]))
                .collect();
            let _ = writeln!(s, "| {} | {} |", r.show_time(*start), cells.join(" | "));
        }
    }
    s
}

/// One CSV cell (RFC 4180 quoting; formula-looking text defused).
fn csv_cell(s: &str) -> String {
    let defused = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

/// The report as CSV (see the module documentation for the columns).
pub fn csv(r: &Report) -> String {
    let mut s = String::from("section,query,item,field,value\n");
    let mut row = |section: &str, query: &str, item: &str, field: &str, value: &str| {
        let _ = writeln!(
            s,
            "{section},{},{},{field},{}",
            csv_cell(query),
            csv_cell(item),
            csv_cell(value)
        );
    };
    for (field, t) in [
        ("since", r.since),
        ("until", r.until),
        ("previous_since", r.previous_since),
    ] {
        row("window", "", "", field, &t.to_rfc3339());
    }
    for k in &r.kpis {
        let (c, p) = (&k.current, &k.previous);
        let q = k.query.as_str();
        for (field, value) in [
            ("mentions", c.mentions.to_string()),
            ("mentions_previous", p.mentions.to_string()),
            ("mentions_change_pct", opt(k.mentions_change_pct())),
            ("negative_share", format!("{:.4}", c.negative_share())),
            (
                "negative_share_previous",
                format!("{:.4}", p.negative_share()),
            ),
            (
                "negative_share_change_pp",
                format!("{:.4}", k.negative_share_change_pp()),
            ),
            ("reach", c.reach.to_string()),
            ("reach_previous", p.reach.to_string()),
            ("reach_change_pct", opt(k.reach_change_pct())),
            ("net_sentiment", format!("{:.4}", c.net_sentiment())),
            (
                "net_sentiment_previous",
                format!("{:.4}", p.net_sentiment()),
            ),
            (
                "net_sentiment_change",
                format!("{:.4}", k.net_sentiment_change()),
            ),
        ] {
            row("kpi", q, "", field, &value);
        }
    }
    for i in &r.incidents {
        for (field, value) in [
            ("severity", i.severity.clone()),
            ("status", i.status.clone()),
            ("movement", i.movement.clone()),
            ("opened_at", i.opened_at.to_rfc3339()),
            ("last_event_at", i.last_event_at.to_rfc3339()),
            (
                "resolved_at",
                i.resolved().map(|t| t.to_rfc3339()).unwrap_or_default(),
            ),
            ("negative_posts", i.negative_posts.to_string()),
            ("peak_per_minute", i.peak_per_minute.to_string()),
            ("alert_count", i.alert_count.to_string()),
            ("driving_terms", i.driving_terms.join(";")),
            ("summary", i.summary.clone()),
            ("top_post", i.top_post().map(|p| p.url).unwrap_or_default()),
        ] {
            row("incident", &i.query, &i.id, field, &value);
        }
    }
    for g in &r.alerts {
        for a in &g.alerts {
            for (field, value) in [
                ("kind", a.kind.clone()),
                ("severity", a.severity.clone()),
                ("status", a.status.clone()),
                ("detected_at", a.detected_at.to_rfc3339()),
                ("title", a.title.clone()),
                ("why", a.why.clone()),
                ("link", alert_link(a).unwrap_or_default()),
            ] {
                row("alert", &g.query, &a.id, field, &value);
            }
        }
    }
    for (i, p) in r.negative_posts.iter().enumerate() {
        let q = p.queries.join(";");
        for (field, value) in [
            ("rank", (i + 1).to_string()),
            ("created_at", p.created_at.to_rfc3339()),
            ("platform", p.platform.clone()),
            ("author", p.author_handle.clone()),
            ("followers", p.author_followers.to_string()),
            ("confidence", format!("{:.4}", p.sentiment_confidence)),
            ("url", p.url.clone()),
            ("text", p.text.clone()),
        ] {
            row("negative_post", &q, &p.key, field, &value);
        }
    }
    for (i, t) in r.rising.iter().enumerate() {
        for (field, value) in [
            ("rank", (i + 1).to_string()),
            ("score", format!("{:.4}", t.score)),
            ("authors", t.authors.to_string()),
            ("count", t.count.to_string()),
            ("baseline_mean", format!("{:.4}", t.baseline_mean)),
            ("bucket_start", t.bucket_start.to_rfc3339()),
        ] {
            row("rising", "", &t.term, field, &value);
        }
    }
    for x in &r.chart.series {
        for (i, start) in r.chart.starts.iter().enumerate() {
            let at = start.to_rfc3339();
            row(
                "chart",
                &x.query,
                &at,
                "negative",
                &x.negative[i].to_string(),
            );
            row("chart", &x.query, &at, "total", &x.total[i].to_string());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\"\nbye"), "\"say \"\"hi\"\"\nbye\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("@handle"), "'@handle");
        assert_eq!(csv_cell("-0.2500"), "-0.2500", "numbers stay numbers");
    }

    #[test]
    fn markdown_cells_and_links_stay_inside_their_table_and_link() {
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            md_link("https://x.example/a (b)"),
            "[link](<https://x.example/a(b)>)"
        );
        assert_eq!(md_link("javascript:alert(1)"), "javascript:alert(1)");
        assert_eq!(show_change_pct(None, 3), "new");
        assert_eq!(show_change_pct(None, 0), "–");
        assert_eq!(show_change_pct(Some(-12.345), 1), "-12.3%");
    }
}
