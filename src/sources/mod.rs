//! Where mentions come from: the synthetic feed generator, the file replayer, and the RSS / Atom,
//! Mastodon and Hacker News connectors (the webhook connector is `POST /api/ingest` in [`crate::server::ingest`]).

pub mod hn;
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

/// A connector's state from the JSON file at `path`; a missing file is the default state.
pub fn load_state<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
) -> Result<T, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a connector's state to `path` as JSON (a temporary file, then a rename, so a crash
/// never leaves half a file).
pub fn save_state<T: serde::Serialize>(path: &std::path::Path, state: &T) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, json).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
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
