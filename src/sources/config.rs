//! `[[sources]]`: the connectors `gema run` (and `gema serve --sources`) start from
//! `gema.toml`: which kind, what it follows, where its API and state are, and the checks that
//! name a bad key. Polling kinds are also the connector commands (`gema rss`, `gema mastodon`,
//! `gema hn`, `gema bluesky`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::setting::Invalid;

/// Which connector a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// RSS / Atom / JSON Feed URLs, or a `preset` list of news portals (`gema rss`).
    Rss,
    /// Hashtag timelines of one instance, polled (`gema mastodon`; token from
    /// `GEMA_MASTODON_TOKEN`).
    Mastodon,
    /// Hashtag and public timelines of one instance, streamed (server-sent events; token from
    /// `GEMA_MASTODON_TOKEN`).
    MastodonStream,
    /// Hacker News search (`gema hn`).
    Hn,
    /// Bluesky post search (`gema bluesky`; token from `GEMA_BLUESKY_TOKEN`).
    Bluesky,
    /// The whole Bluesky network's new posts from a Jetstream WebSocket, kept when a tracked
    /// query matches.
    Jetstream,
    /// YouTube Data API v3 comment threads of channels and videos (key from
    /// `GEMA_YOUTUBE_API_KEY`).
    Youtube,
    /// Reddit posts and comments of searches and subreddits (app-only OAuth from
    /// `GEMA_REDDIT_CLIENT_ID` and `GEMA_REDDIT_CLIENT_SECRET`).
    Reddit,
    /// X API v2 filtered stream, its rules synced from the tracked queries, recent search as
    /// backfill (bearer token from `GEMA_X_BEARER_TOKEN`).
    X,
    /// Meta webhooks: Instagram and Facebook comments and mentions on the brand's own accounts,
    /// received on `listen` (app secret from `GEMA_META_APP_SECRET`, verify token from
    /// `GEMA_META_VERIFY_TOKEN`; Instagram mentions, which come as ids, are fetched from the
    /// Graph API with `GEMA_META_ACCESS_TOKEN`).
    Meta,
}

/// Every kind, in the order `gema sources` and the README list them.
pub const KINDS: [SourceKind; 10] = [
    SourceKind::Rss,
    SourceKind::Mastodon,
    SourceKind::MastodonStream,
    SourceKind::Hn,
    SourceKind::Bluesky,
    SourceKind::Jetstream,
    SourceKind::Youtube,
    SourceKind::Reddit,
    SourceKind::X,
    SourceKind::Meta,
];

/// How a kind of connector gets its mentions, which decides how it is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Asks every `every_s` seconds.
    Poll,
    /// Holds a connection open and reconnects after a drop.
    Stream,
    /// Listens for the platform's HTTP calls.
    Listen,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Rss => "rss",
            SourceKind::Mastodon => "mastodon",
            SourceKind::MastodonStream => "mastodon-stream",
            SourceKind::Hn => "hn",
            SourceKind::Bluesky => "bluesky",
            SourceKind::Jetstream => "jetstream",
            SourceKind::Youtube => "youtube",
            SourceKind::Reddit => "reddit",
            SourceKind::X => "x",
            SourceKind::Meta => "meta",
        }
    }

    pub fn mode(self) -> Mode {
        match self {
            SourceKind::MastodonStream | SourceKind::Jetstream | SourceKind::X => Mode::Stream,
            SourceKind::Meta => Mode::Listen,
            _ => Mode::Poll,
        }
    }

    /// The service used when `api` is not set (none for RSS, whose URLs are the feeds; for
    /// Meta, which calls us, the Graph API it fetches mentioned comments from).
    pub fn default_api(self) -> &'static str {
        match self {
            SourceKind::Rss => "",
            SourceKind::Meta => "https://graph.facebook.com/v21.0",
            SourceKind::Mastodon | SourceKind::MastodonStream => "https://mastodon.social",
            SourceKind::Hn => "https://hn.algolia.com",
            SourceKind::Bluesky => "https://public.api.bsky.app",
            SourceKind::Jetstream => "wss://jetstream2.us-east.bsky.network",
            SourceKind::Youtube => "https://www.googleapis.com/youtube/v3",
            SourceKind::Reddit => "https://oauth.reddit.com",
            SourceKind::X => "https://api.x.com",
        }
    }

    /// Seconds between polls when `every_s` is not set (as the commands' defaults); for a
    /// stream, the longest wait between reconnection attempts.
    pub fn default_every_s(self) -> u64 {
        match self {
            SourceKind::Rss | SourceKind::Hn | SourceKind::Youtube => 300,
            SourceKind::Mastodon | SourceKind::Bluesky | SourceKind::Reddit => 120,
            SourceKind::MastodonStream | SourceKind::Jetstream | SourceKind::X => 300,
            SourceKind::Meta => 60,
        }
    }

    /// The environment variables holding its credentials (named when the platform refuses
    /// them).
    pub fn credential_envs(self) -> &'static [&'static str] {
        match self {
            SourceKind::Mastodon | SourceKind::MastodonStream => &[super::env::MASTODON_TOKEN],
            SourceKind::Bluesky => &[super::env::BLUESKY_TOKEN],
            SourceKind::Youtube => &[super::env::YOUTUBE_API_KEY],
            SourceKind::Reddit => &[
                super::env::REDDIT_CLIENT_ID,
                super::env::REDDIT_CLIENT_SECRET,
            ],
            SourceKind::X => &[super::env::X_BEARER_TOKEN],
            // Meta's calls are checked with the app secret; a refusal names it.
            SourceKind::Meta => &[super::env::META_APP_SECRET, super::env::META_VERIFY_TOKEN],
            SourceKind::Rss | SourceKind::Hn | SourceKind::Jetstream => &[],
        }
    }

    /// Whether `follow` may be empty: the X stream's rules and Jetstream's filter come from the
    /// tracked queries, Meta calls us, and an RSS source may name a `preset` instead.
    fn follow_optional(self) -> bool {
        matches!(
            self,
            SourceKind::X | SourceKind::Jetstream | SourceKind::Meta | SourceKind::Rss
        )
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A name of your own for logs and the state file (letters, digits, `-`, `_`), unique.
    pub name: String,
    /// `rss`, `mastodon`, `mastodon-stream`, `hn`, `bluesky`, `jetstream`, `youtube`, `reddit`,
    /// `x` or `meta`.
    pub kind: SourceKind,
    /// What to follow: feed URLs (rss), hashtags (mastodon; `public` or `public:local` too for
    /// mastodon-stream), search queries (hn, bluesky; reddit, with `r/<name>` for a
    /// subreddit), channel ids `UC…` and video ids (youtube), extra rules (x). Jetstream and X
    /// follow the tracked queries; meta needs nothing here.
    #[serde(default)]
    pub follow: Vec<String>,
    /// The instance (mastodon) or API base URL; unset: the public service.
    #[serde(default)]
    pub api: Option<String>,
    /// Seconds between polls (at least 10); for a stream, the longest wait between
    /// reconnection attempts. Unset: see [`SourceKind::default_every_s`].
    #[serde(default)]
    pub every_s: Option<u64>,
    /// Where the connector keeps what it already sent; unset: `<state_dir>/source-<name>.json`.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// rss: a maintained list of feeds (`id-news`, `en-news`, or `google-news`: a Google News
    /// search feed per tracked query), polled with the `follow` URLs.
    #[serde(default)]
    pub preset: Option<String>,
    /// meta: the address the webhook endpoint listens on, e.g. `0.0.0.0:8090`.
    #[serde(default)]
    pub listen: Option<String>,
    /// youtube: quota units the source may spend per day (Pacific time, as Google counts;
    /// default 10000, the API's default quota).
    #[serde(default)]
    pub quota_per_day: Option<u64>,
}

impl SourceConfig {
    /// A source of `kind` named after it, following `follow`, every other setting unset.
    pub fn new(kind: SourceKind, follow: &[String]) -> SourceConfig {
        SourceConfig {
            name: kind.name().into(),
            kind,
            follow: follow.to_vec(),
            api: None,
            every_s: None,
            state: None,
            preset: None,
            listen: None,
            quota_per_day: None,
        }
    }

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
        let no_follow = self.follow.iter().all(|f| f.trim().is_empty());
        let preset_named = self.kind == SourceKind::Rss && self.preset.is_some();
        if no_follow
            && !(self.kind.follow_optional() && (self.kind != SourceKind::Rss || preset_named))
        {
            return Err(Invalid::new(
                "follow",
                format!("{:?}", self.follow),
                if self.kind == SourceKind::Rss {
                    "name at least one feed URL, or a preset"
                } else {
                    "name at least one feed, hashtag, query, channel or video"
                },
            ));
        }
        if let Some(p) = &self.preset {
            if self.kind != SourceKind::Rss {
                return Err(Invalid::new("preset", p, "only rss sources take a preset"));
            }
            if !super::presets::NAMES.contains(&p.as_str()) {
                return Err(Invalid::new(
                    "preset",
                    p,
                    &format!("use one of {}", super::presets::NAMES.join(", ")),
                ));
            }
        }
        let schemes: &[&str] = match self.kind {
            SourceKind::Jetstream => &["ws://", "wss://"],
            _ => &["http://", "https://"],
        };
        let urls: Vec<&str> = match self.kind {
            SourceKind::Rss => self.follow.iter().map(String::as_str).collect(),
            _ => vec![self.api()],
        };
        if let Some(bad) = urls
            .into_iter()
            .find(|u| !schemes.iter().any(|s| u.starts_with(s)))
        {
            let key = if self.kind == SourceKind::Rss {
                "follow"
            } else {
                "api"
            };
            return Err(Invalid::new(
                key,
                bad,
                &format!("must start with {}", schemes.join(" or ")),
            ));
        }
        match (&self.listen, self.kind) {
            (None, SourceKind::Meta) => {
                return Err(Invalid::new(
                    "listen",
                    "",
                    "a meta source needs the address its webhook listens on, e.g. 0.0.0.0:8090",
                ))
            }
            (Some(l), SourceKind::Meta) if l.parse::<std::net::SocketAddr>().is_err() => {
                return Err(Invalid::new(
                    "listen",
                    l,
                    "use host:port, e.g. 0.0.0.0:8090",
                ))
            }
            (Some(l), kind) if kind != SourceKind::Meta => {
                return Err(Invalid::new("listen", l, "only meta sources listen"))
            }
            _ => {}
        }
        if self.quota_per_day.is_some() && self.kind != SourceKind::Youtube {
            return Err(Invalid::new(
                "quota_per_day",
                self.quota_per_day.unwrap_or_default(),
                "only youtube sources count quota units",
            ));
        }
        if self.kind == SourceKind::Youtube {
            for f in &self.follow {
                super::youtube::Target::parse(f)
                    .map_err(|reason| Invalid::new("follow", f, &reason))?;
            }
        }
        if self.quota_per_day == Some(0) {
            return Err(Invalid::new(
                "quota_per_day",
                0,
                "allow at least 1 unit a day (each list call costs 1)",
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
            ..s.clone()
        };
        assert_eq!(rss.validate().unwrap_err().key, "follow");
        let preset = SourceConfig {
            kind: SourceKind::Rss,
            follow: vec![],
            preset: Some("id-news".into()),
            ..s.clone()
        };
        assert!(preset.validate().is_ok());
        let unknown = SourceConfig {
            preset: Some("tv".into()),
            ..preset
        };
        assert!(unknown.validate().unwrap_err().reason.contains("id-news"));
        let meta = SourceConfig {
            kind: SourceKind::Meta,
            follow: vec![],
            ..s.clone()
        };
        assert_eq!(meta.validate().unwrap_err().key, "listen");
        let jet = SourceConfig {
            kind: SourceKind::Jetstream,
            follow: vec![],
            api: Some("https://x".into()),
            ..s.clone()
        };
        assert_eq!(jet.validate().unwrap_err().key, "api");
        let yt: SourceConfig = toml::from_str(
            "name = \"yt\"\nkind = \"youtube\"\nfollow = [\"UC_x5XG1OV2P6uZZ5FSM9Ttw\"]\nquota_per_day = 500\n",
        )
        .unwrap();
        assert!(yt.validate().is_ok());
        let yt_bad = SourceConfig {
            follow: vec!["nusapay".into()],
            ..yt.clone()
        };
        let e = yt_bad.validate().unwrap_err();
        assert!(
            e.key == "follow" && e.reason.contains("channel id"),
            "{e:?}"
        );
        let ms: SourceConfig =
            toml::from_str("name = \"m\"\nkind = \"mastodon-stream\"\nfollow = [\"public\"]\n")
                .unwrap();
        assert_eq!(ms.kind.mode(), Mode::Stream);
        assert!(
            toml::from_str::<SourceConfig>("name = \"x\"\nkind = \"tiktok\"\nfollow = []").is_err()
        );
        assert!(toml::from_str::<SourceConfig>(
            "name = \"x\"\nkind = \"hn\"\nfollow = []\nurl = 1"
        )
        .is_err());
    }
}
