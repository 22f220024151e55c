//! Where mentions come from: the synthetic feed generator, the file replayer, and the
//! connectors: RSS / Atom (with news presets, [`presets`]), Mastodon (polled and streamed),
//! Bluesky (search and the Jetstream firehose, [`jetstream`]), Hacker News, YouTube
//! ([`youtube`]), Reddit ([`reddit`]), the X filtered stream and Meta's Instagram / Facebook
//! webhooks ([`meta`]); the generic webhook connector is `POST /api/ingest` in
//! [`crate::server::ingest`]. [`config`] is `[[sources]]`; [`run`] runs a configured one (polling
//! through [`poll`]) and [`health`] keeps what `gema sources` shows.

pub mod bluesky;
pub mod config;
pub mod cursor;
pub mod env;
pub mod health;
pub mod hn;
pub mod http;
pub mod jetstream;
pub mod mastodon;
pub mod mastodon_stream;
pub mod meta;
pub mod poll;
pub mod presets;
pub mod reddit;
pub mod replay;
pub mod rss;
pub mod run;
pub mod scenario;
pub mod stationary;
pub mod stream;
pub mod synth;
pub mod x;
pub mod youtube;

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

/// `s` cut to at most `max` bytes at a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A connector's state from the JSON file at `path`; a missing file is the default state.
pub fn load_state<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
) -> Result<T, ConnectorError> {
    let read = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e.to_string()),
    };
    read.map_err(|reason| ConnectorError::State {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes a connector's state to `path` as JSON (a temporary file, then a rename, so a crash
/// never leaves half a file).
pub fn save_state<T: serde::Serialize>(
    path: &std::path::Path,
    state: &T,
) -> Result<(), ConnectorError> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| ConnectorError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// What one poll did with one source of a connector (a hashtag timeline, a search query).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    /// The source: its URL or query.
    pub source: String,
    /// New mentions sent to Kafka.
    pub sent: usize,
    /// Why the source, or some of its items, could not be taken.
    pub error: Option<http::Failure>,
}

impl SourceReport {
    pub fn new(source: String) -> SourceReport {
        SourceReport {
            source,
            sent: 0,
            error: None,
        }
    }
}

/// Why a connector could not start or run at all (Kafka, its state file, its config, the HTTP
/// client); a single feed's, tag's or query's failure is a [`http::Failure`] in its report
/// instead.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("Kafka producer for {brokers}: {source}")]
    Kafka {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Topics(#[from] crate::kafka::topics::TopicError),
    #[error("state file {path}: {reason}")]
    State {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Where a polling connector's mentions go: the raw topic (created when missing), and the HTTP
/// client it fetches with (20 s per request, a `gema/<version> (<name>)` user agent).
pub struct Outlet {
    pub http: reqwest::Client,
    producer: rdkafka::producer::FutureProducer,
    topic: String,
}

impl Outlet {
    pub async fn new(
        config: &crate::kafka::KafkaConfig,
        topics: &crate::kafka::Topics,
        name: &str,
    ) -> Result<Outlet, ConnectorError> {
        crate::kafka::topics::ensure_topics(config, topics).await?;
        let producer = crate::kafka::producer(config).map_err(|source| ConnectorError::Kafka {
            brokers: config.brokers.clone(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .user_agent(format!("gema/{} ({name})", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outlet {
            http,
            producer,
            topic: topics.raw.clone(),
        })
    }

    /// Sends `m` keyed `<platform>:<id>` and waits until Kafka stored it; the error names it.
    /// A text longer than a mention may be ([`crate::mention::MAX_TEXT_BYTES`]: a long Reddit
    /// post, an article) is cut at a character boundary, so the enrich stage takes it.
    pub async fn send(&self, m: &crate::mention::Mention) -> Result<(), http::Failure> {
        let shortened;
        let m = if m.text.len() > crate::mention::MAX_TEXT_BYTES {
            shortened = crate::mention::Mention {
                text: cut(&m.text, crate::mention::MAX_TEXT_BYTES).to_string(),
                ..m.clone()
            };
            &shortened
        } else {
            m
        };
        let payload = serde_json::to_vec(m).expect("a mention serialises");
        let key = m.key();
        let record = rdkafka::producer::FutureRecord::to(&self.topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        self.produce(record, &key).await
    }

    /// Sends `record` and waits until Kafka stored it; the error names `what`.
    async fn produce(
        &self,
        record: rdkafka::producer::FutureRecord<'_, str, [u8]>,
        what: &str,
    ) -> Result<(), http::Failure> {
        self.producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                http::Failure::new(
                    http::FailureKind::Kafka,
                    format!("Kafka did not store {what}: {e}"),
                )
            })
    }

    /// Sends `original` to the dead-letter topic `dlq` keyed `key`, with `dead`'s reason in
    /// its headers (cut to `limit` bytes as [`DeadLetter::fit`](crate::kafka::dlq::DeadLetter::fit)
    /// cuts), and waits until Kafka stored it; the error names the key.
    pub async fn dead_letter(
        &self,
        dlq: &str,
        limit: usize,
        key: &str,
        original: &[u8],
        mut dead: crate::kafka::dlq::DeadLetter,
    ) -> Result<(), http::Failure> {
        let payload = dead.fit(Some(key.as_bytes()), original, limit);
        let record = rdkafka::producer::FutureRecord::to(dlq)
            .key(key)
            .payload(payload)
            .headers(dead.headers());
        self.produce(record, &format!("the dead letter {key}"))
            .await
    }

    /// Sends `req` and returns a 2xx or 304 answer; any other status is a [`http::Failure`] of
    /// its kind (401/403 denied, 429 rate limited with the wait its headers ask for, the rest
    /// transient), as is a request that could not be sent or read.
    pub async fn request(&self, req: reqwest::RequestBuilder) -> Result<Answer, http::Failure> {
        let resp = req
            .send()
            .await
            .map_err(|e| http::Failure::transient(format!("fetching: {}", e.without_url())))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !(status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED) {
            return Err(http::Failure::from_status(status, &headers));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| http::Failure::transient(format!("reading: {}", e.without_url())))?
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends `req` and returns the body of a 2xx answer (see [`Outlet::request`]).
    pub async fn fetch(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, http::Failure> {
        Ok(self.request(req).await?.body)
    }

    /// Sends `req` and parses the 2xx answer's body as JSON of type `T`; a body that is not is
    /// a malformed failure naming `what` (e.g. "YouTube commentThreads").
    pub async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, http::Failure> {
        let body = self.fetch(req).await?;
        serde_json::from_slice(&body)
            .map_err(|e| http::Failure::malformed(format!("not a {what} answer: {e}")))
    }
}

/// A 2xx or 304 answer (see [`Outlet::request`]).
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
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
