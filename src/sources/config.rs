//! `[[sources]]`: the polling connectors `gema run` starts from `gema.toml`, each the same
//! connector as its command (`gema rss`, `gema mastodon`, `gema hn`, `gema bluesky`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::setting::Invalid;

/// Which connector a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// RSS / Atom / JSON Feed URLs (`gema rss`).
    Rss,
    /// Hashtag timelines of one instance (`gema mastodon`; token from `GEMA_MASTODON_TOKEN`).
    Mastodon,
    /// Hacker News search (`gema hn`).
    Hn,
    /// Bluesky post search (`gema bluesky`; token from `GEMA_BLUESKY_TOKEN`).
    Bluesky,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Rss => "rss",
            SourceKind::Mastodon => "mastodon",
            SourceKind::Hn => "hn",
            SourceKind::Bluesky => "bluesky",
        }
    }

    /// The service polled when `api` is not set (none for RSS: the URLs are the feeds).
    pub fn default_api(self) -> &'static str {
        match self {
            SourceKind::Rss => "",
            SourceKind::Mastodon => "https://mastodon.social",
            SourceKind::Hn => "https://hn.algolia.com",
            SourceKind::Bluesky => "https://public.api.bsky.app",
        }
    }

    /// Seconds between polls when `every_s` is not set (as the commands' defaults).
    pub fn default_every_s(self) -> u64 {
        match self {
            SourceKind::Rss | SourceKind::Hn => 300,
            SourceKind::Mastodon | SourceKind::Bluesky => 120,
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A name of your own for logs and the state file (letters, digits, `-`, `_`), unique.
    pub name: String,
    /// `rss`, `mastodon`, `hn` or `bluesky`.
    pub kind: SourceKind,
    /// Feed URLs (rss), hashtags (mastodon) or search queries (hn, bluesky).
    pub follow: Vec<String>,
    /// The instance (mastodon) or API base URL (hn, bluesky); unset: the public service.
    #[serde(default)]
    pub api: Option<String>,
    /// Seconds between polls (at least 10); unset: 300 for rss and hn, 120 for mastodon and
    /// bluesky.
    #[serde(default)]
    pub every_s: Option<u64>,
    /// Where the connector keeps what it already sent; unset: `<state_dir>/source-<name>.json`.
    #[serde(default)]
    pub state: Option<PathBuf>,
}

impl SourceConfig {
    pub fn api(&self) -> &str {
        self.api
            .as_deref()
            .unwrap_or_else(|| self.kind.default_api())
    }

    pub fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.every_s.unwrap_or(self.kind.default_every_s()))
    }

    pub fn state_path(&self, state_dir: &Path) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| state_dir.join(format!("source-{}.json", self.name)))
    }

    /// Checks every value; the key is relative to the entry.
    pub fn validate(&self) -> Result<(), Invalid> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !name_ok {
            return Err(Invalid::new(
                "name",
                &self.name,
                "use only ASCII letters, digits, '-' and '_'",
            ));
        }
        if self.follow.iter().all(|f| f.trim().is_empty()) {
            return Err(Invalid::new(
                "follow",
                format!("{:?}", self.follow),
                "name at least one feed, hashtag or query",
            ));
        }
        let urls: Vec<&str> = match self.kind {
            SourceKind::Rss => self.follow.iter().map(String::as_str).collect(),
            _ => vec![self.api()],
        };
        if let Some(bad) = urls
            .into_iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            let key = if self.kind == SourceKind::Rss {
                "follow"
            } else {
                "api"
            };
            return Err(Invalid::new(
                key,
                bad,
                "must start with http:// or https://",
            ));
        }
        if self.every_s.is_some_and(|s| s < 10) {
            return Err(Invalid::new(
                "every_s",
                self.every_s.unwrap_or_default(),
                "poll at most every 10 s",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_names_a_bad_key() {
        let s: SourceConfig =
            toml::from_str("name = \"brand-news\"\nkind = \"hn\"\nfollow = [\"nusapay\"]\n")
                .unwrap();
        assert_eq!(s.api(), "https://hn.algolia.com");
        assert_eq!(s.every().as_secs(), 300);
        assert_eq!(
            s.state_path(Path::new("/s")),
            PathBuf::from("/s/source-brand-news.json")
        );
        assert!(s.validate().is_ok());
        let bad = SourceConfig {
            every_s: Some(1),
            ..s.clone()
        };
        assert_eq!(bad.validate().unwrap_err().key, "every_s");
        let rss = SourceConfig {
            kind: SourceKind::Rss,
            follow: vec!["feed.xml".into()],
            ..s
        };
        assert_eq!(rss.validate().unwrap_err().key, "follow");
        assert!(
            toml::from_str::<SourceConfig>("name = \"x\"\nkind = \"tiktok\"\nfollow = []").is_err()
        );
        assert!(toml::from_str::<SourceConfig>(
            "name = \"x\"\nkind = \"hn\"\nfollow = []\nurl = 1"
        )
        .is_err());
    }
}
