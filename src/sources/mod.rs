//! Where mentions come from: the synthetic feed generator, the file replayer, and the RSS / Atom
//! and Mastodon connectors (the webhook connector is `POST /api/ingest` in [`crate::server::ingest`]).

pub mod mastodon;
pub mod replay;
pub mod rss;
pub mod scenario;
pub mod synth;

/// Text without HTML tags, with the common entities decoded and whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_is_removed_and_entities_decoded() {
        assert_eq!(
            super::html_to_text("<p>A &amp; B&nbsp;<br/>c&#39;s</p>"),
            "A & B c's"
        );
    }
}
