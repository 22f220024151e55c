//! The report as one self-contained HTML page: inline CSS, no scripts, no external requests;
//! the chart is a PNG in the page (a `data:` URI) or, in an email, a `cid:` reference to the
//! message's inline image part. Every value from a post or an alert is escaped; only http(s)
//! addresses become links.

use std::fmt::Write;

use base64::Engine;

use super::chart::Chart;
use super::data::{show_width, Report};
use super::text::{alert_link, group_title, incident_when, kpi_cells, web_link, KPI_COLUMNS};

/// Where the page's chart image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSrc {
    /// In the page, as a `data:image/png;base64,` URI.
    Embedded,
    /// A MIME part of the same message with this Content-ID.
    Cid(String),
}

const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
color:#1d2330;max-width:960px;margin:24px auto;padding:0 16px;line-height:1.45}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #dde1e7}\
h3{font-size:15px;margin:14px 0 4px}table{border-collapse:collapse;font-size:14px}\
th,td{padding:4px 8px;border-bottom:1px solid #e6e9ee;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.up{color:#b42318}.down{color:#067647}\
.muted{color:#667085;font-size:13px}blockquote{margin:4px 0 12px;padding:4px 10px;\
border-left:3px solid #d63031;background:#fbf3f3;white-space:pre-wrap}\
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}";

/// `s` with `& < > " '` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn link(url: &str, label: &str) -> String {
    match web_link(url) {
        Some(u) => format!("<a href=\"{}\">{}</a>", escape(u), escape(label)),
        None if url.is_empty() => String::new(),
        None => escape(url),
    }
}

/// Colours a change by what it means: more negative share is bad (`up`, red), more net
/// sentiment is good.
fn change_class(column: usize, cell: &str) -> &'static str {
    let value: f64 = cell.trim_end_matches(" pp").parse().unwrap_or(0.0);
    match column {
        3 if value > 0.0 => " up",
        3 if value < 0.0 => " down",
        7 if value < 0.0 => " up",
        7 if value > 0.0 => " down",
        _ => "",
    }
}

/// The report as an HTML page with `chart` shown from `src`.
pub fn page(r: &Report, chart: &Chart, src: &ChartSrc) -> String {
    let title = format!(
        "gema report: {} – {}",
        r.show_time(r.since),
        r.show_time(r.until)
    );
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p class=\"muted\">Compared with the previous period, {} – {}. Generated {}.</p>\n",
        escape(&r.show_time(r.previous_since)),
        escape(&r.show_time(r.since)),
        escape(&r.show_time(r.generated_at)),
        t = escape(&title),
    );

    s.push_str("<h2>KPIs per tracked query</h2>\n");
    if r.kpis.is_empty() {
        s.push_str("<p>No tracked queries and no mentions of any.</p>\n");
    } else {
        s.push_str("<table class=\"kpis\"><tr><th>Query</th>");
        for c in KPI_COLUMNS {
            let _ = write!(s, "<th>{}</th>", escape(c));
        }
        s.push_str("</tr>\n");
        for k in &r.kpis {
            let _ = write!(s, "<tr><td>{}</td>", escape(&k.query));
            for (i, cell) in kpi_cells(k).iter().enumerate() {
                let _ = write!(
                    s,
                    "<td class=\"n{}\">{}</td>",
                    change_class(i, cell),
                    escape(cell)
                );
            }
            s.push_str("</tr>\n");
        }
        s.push_str(
            "</table>\n<p class=\"muted\">Negative: share of scored mentions. Reach: the \
             authors' followers summed. Net sentiment: (positive − negative) / scored.</p>\n",
        );
    }

    let _ = writeln!(
        s,
        "<h2>Negative / all mentions per {}</h2>",
        escape(&show_width(r.chart.bucket_s))
    );
    let img_src = match src {
        ChartSrc::Embedded => format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&chart.png)
        ),
        ChartSrc::Cid(id) => format!("cid:{}", escape(id)),
    };
    let _ = write!(
        s,
        "<p class=\"legend muted\">Panels top to bottom: {}.<span style=\"background:#aab2bd\">\
         </span>all mentions<span style=\"background:#d63031\"></span>negative</p>\n\
         <img src=\"{img_src}\" width=\"{}\" height=\"{}\" alt=\"Mentions per bucket, negative in \
         red, one panel per tracked query\">\n<p class=\"muted\">From {} (left) to {} (right); \
         each panel's full height is its busiest bucket.</p>\n",
        if chart.panels.is_empty() {
            "none (no tracked queries)".to_string()
        } else {
            chart
                .panels
                .iter()
                .map(|(q, max)| format!("<b>{}</b> (max {max})", escape(q)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        chart.width,
        chart.height,
        escape(&r.show_time(r.since)),
        escape(&r.show_time(r.until)),
    );

    s.push_str("<h2>Incidents</h2>\n");
    if r.incidents.is_empty() {
        s.push_str("<p>No incidents in this period.</p>\n");
    }
    for i in &r.incidents {
        let _ = writeln!(
            s,
            "<p><b>{}</b> {} — {}<br>{}</p>",
            escape(&i.severity.to_uppercase()),
            escape(&i.query),
            escape(&incident_when(r, i)),
            escape(&i.summary)
        );
        if let Some(p) = i.top_post() {
            let _ = writeln!(
                s,
                "<blockquote>@{} ({} followers): {} {}</blockquote>",
                escape(&p.author_handle),
                p.author_followers,
                escape(&p.text),
                link(&p.url, "link")
            );
        }
    }

    s.push_str("<h2>Alerts</h2>\n");
    if r.alerts.is_empty() {
        s.push_str("<p>No alerts in this period.</p>\n");
    }
    for g in &r.alerts {
        let _ = write!(
            s,
            "<h3>{}</h3>\n<table class=\"alerts\">",
            escape(&group_title(&g.query, &g.kind, g.alerts.len()))
        );
        for a in &g.alerts {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b><br>{}</td><td>{}</td></tr>",
                escape(&r.show_time(a.detected_at)),
                escape(&a.severity),
                escape(&a.status),
                escape(&a.title),
                escape(&a.why),
                link(&alert_link(a).unwrap_or_default(), "link")
            );
        }
        s.push_str("</table>\n");
    }

    s.push_str("<h2>Top negative posts</h2>\n");
    if r.negative_posts.is_empty() {
        s.push_str("<p>No negative posts in this period.</p>\n");
    }
    for (i, p) in r.negative_posts.iter().enumerate() {
        let _ = write!(
            s,
            "<p>{}. <b>@{}</b> ({} followers) on {}, {}, confidence {:.2}, {} {}</p>\n\
             <blockquote>{}</blockquote>\n",
            i + 1,
            escape(&p.author_handle),
            p.author_followers,
            escape(&p.platform),
            escape(&r.show_time(p.created_at)),
            p.sentiment_confidence,
            escape(&p.queries.join(", ")),
            link(&p.url, "link"),
            escape(&p.text)
        );
    }

    s.push_str("<h2>Rising terms</h2>\n");
    if r.rising.is_empty() {
        s.push_str("<p>Nothing crossed the burst threshold.</p>\n");
    } else {
        s.push_str(
            "<table class=\"rising\"><tr><th>Term</th><th>Score</th><th>Authors</th>\
             <th>Count</th><th>Baseline</th><th>Bucket</th></tr>\n",
        );
        for t in &r.rising {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td>{}</td></tr>",
                escape(&t.term),
                t.score,
                t.authors,
                t.count,
                t.baseline_mean,
                escape(&r.show_time(t.bucket_start))
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_links_only_the_web() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            link("https://e.example/?a=1&b=\"", "link"),
            "<a href=\"https://e.example/?a=1&amp;b=&quot;\">link</a>"
        );
        assert_eq!(link("javascript:alert(1)", "link"), "javascript:alert(1)");
    }

    #[test]
    fn changes_are_coloured_by_meaning() {
        assert_eq!(change_class(3, "+12.0 pp"), " up");
        assert_eq!(change_class(3, "-3.0 pp"), " down");
        assert_eq!(change_class(7, "-0.20"), " up");
        assert_eq!(change_class(7, "+0.20"), " down");
        assert_eq!(change_class(1, "+50.0%"), "");
    }
}
