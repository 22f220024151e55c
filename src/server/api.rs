//! JSON API handlers. Each one checks its parameters with [`Params`] (400 on anything
//! unexpected) and calls the read-side queries in [`crate::query`], which bind every value.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::params::Params;
use super::AppState;
use crate::display::json_rows;
use crate::query::{alerts, corrections, headline, incidents, mentions, timeline, trends};
use crate::sentiment::explain::model_word_effects;
use crate::sentiment::Label;

/// Deepest `offset` of a mention search: pages are fetched as `offset + limit` rows.
pub const MAX_OFFSET: u64 = 10_000;
/// Most buckets in one timeline.
pub const MAX_BUCKETS: i64 = 2_000;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(q: QueryMap, allowed: &[&str]) -> Result<Params, ApiError> {
    let Query(map) = q.map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
    Params::new(map, allowed)
}

/// `{"items": [...]}` plus the window it covers, and the display zone with the window in it.
#[derive(Serialize)]
struct Page<T: Serialize> {
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    /// The `[display]` zone every `*_local` field is in.
    time_zone: &'static str,
    since_local: String,
    until_local: String,
    items: Vec<T>,
}

impl<T: Serialize> Page<T> {
    fn new(
        st: &AppState,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        items: Vec<T>,
    ) -> Page<T> {
        Page {
            since,
            until,
            time_zone: st.display.zone_name(),
            since_local: st.display.rfc3339(since),
            until_local: st.display.rfc3339(until),
            items,
        }
    }
}

/// `GET /healthz`: the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /api/sources`: every `[[sources]]` connector with its health (see `gema sources`).
pub async fn sources(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let items = crate::sources::health::views(&st.sources, &st.state_dir);
    Json(json!({ "items": items }))
}

/// `GET /readyz`: ClickHouse answers and the live feeds (alerts, mentions, incidents) are
/// reading Kafka (503 otherwise).
/// The body also gives each connector's state; a failing or stopped source is reported there
/// (and in `sources_ok`) but does not make the server unready, since the API still serves.
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let clickhouse = st
        .store
        .client
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .is_ok();
    let feed = [&st.feed, &st.mention_feed, &st.incident_feed]
        .iter()
        .all(|f| f.ready.load(std::sync::atomic::Ordering::Relaxed));
    let status = if clickhouse && feed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let sources: Vec<serde_json::Value> = crate::sources::health::views(&st.sources, &st.state_dir)
        .iter()
        .map(|v| json!({ "name": v.name, "kind": v.kind, "state": v.state() }))
        .collect();
    let sources_ok = sources
        .iter()
        .all(|s| !matches!(s["state"].as_str(), Some("failing" | "stopped")));
    let body = json!({
        "ready": clickhouse && feed, "clickhouse": clickhouse, "feed": feed,
        "sources": sources, "sources_ok": sources_ok,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: every stage's counters in this process plus the server's own.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let feeds = [
        ("alert", &*st.feed),
        ("mention", &*st.mention_feed),
        ("incident", &*st.incident_feed),
    ];
    let body = st.metrics.render() + &st.counters.render(&feeds);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Case-insensitive substring filter on a term.
fn term_matches(term: &str, q: Option<&str>) -> bool {
    q.is_none_or(|q| term.to_lowercase().contains(&q.to_lowercase()))
}

/// `GET /api/trends/top`: top terms by mentions with their sentiment mix.
pub async fn trends_top(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until", "limit", "kind", "q"])?;
    let (since, until) = p.range("1h", &st.config)?;
    let limit = p.limit(20, &st.config)?;
    let kind = match p.choice("kind", &["all", "hashtags", "keywords", "handles"])? {
        None | Some("all") => trends::TermKind::All,
        Some("hashtags") => trends::TermKind::Hashtags,
        Some("keywords") => trends::TermKind::Keywords,
        _ => trends::TermKind::Handles,
    };
    let filter = p.text("q")?;
    // With a filter, rank a wider set and keep the matching terms.
    let fetch = if filter.is_some() { 5_000 } else { limit };
    let mut items = trends::top_terms(&st.store, kind, since, until, fetch).await?;
    items.retain(|t| term_matches(&t.term, filter.as_deref()));
    items.truncate(limit as usize);
    Ok(Json(Page::new(&st, since, until, items)))
}

/// `GET /api/trends/rising`: terms bursting in the window, strongest first, each with its line of
/// distinct authors over the whole window (after the burst too).
pub async fn trends_rising(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until", "limit", "q"])?;
    let (since, until) = p.range("1h", &st.config)?;
    let limit = p.limit(20, &st.config)?;
    let filter = p.text("q")?;
    let fetch = if filter.is_some() { 5_000 } else { limit };
    let mut items = trends::rising(&st.store, since, until, fetch).await?;
    items.retain(|t| term_matches(&t.term, filter.as_deref()));
    items.truncate(limit as usize);
    let items = trends::with_lines(&st.store, items, since, until, st.trend_bucket_secs).await?;
    let items = json_rows(items, &st.display);
    Ok(Json(Page::new(&st, since, until, items)))
}

/// `GET /api/mentions`: mention search, newest first, `offset`/`limit` pages.
pub async fn mentions(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(
        q,
        &[
            "since",
            "until",
            "sentiment",
            "lang",
            "platform",
            "q",
            "min_confidence",
            "limit",
            "offset",
        ],
    )?;
    let (since, until) = p.range("1h", &st.config)?;
    let limit = p.limit(50, &st.config)?;
    let min_confidence = p.fraction("min_confidence")?;
    let offset = p.int("offset", 0, 0, MAX_OFFSET)?;
    let sentiment = p
        .choice(
            "sentiment",
            &["negative", "neutral", "positive", "unscored"],
        )?
        .map(|s| s.parse::<Label>().expect("listed labels parse"));
    let filter = mentions::MentionFilter {
        since,
        until,
        sentiment,
        lang: p.text("lang")?,
        platform: p.text("platform")?,
        text: p.text("q")?,
        min_confidence,
        limit: offset + limit,
    };
    let hits = mentions::search(&st.store, &filter).await?;
    let items = json_rows(
        hits.into_iter().skip(offset as usize).collect(),
        &st.display,
    );
    let next_offset = (items.len() as u64 == limit).then_some(offset + limit);
    Ok(Json(json!({
        "since": since, "until": until, "time_zone": st.display.zone_name(),
        "offset": offset, "limit": limit, "next_offset": next_offset, "items": items,
    })))
}

/// Bucket width from `1m`, `15m`, `1h`, `1d` (or any duration the CLI accepts), 60 s – 7 d.
fn bucket_seconds(p: &Params) -> Result<u32, ApiError> {
    let Some(b) = p.text("bucket")? else {
        return Ok(3_600);
    };
    let secs = (b.len() <= 8)
        .then(|| crate::query::time::parse_duration(&b).ok())
        .flatten()
        .map(|d| d.num_seconds())
        .filter(|s| (60..=7 * 86_400).contains(s))
        .ok_or_else(|| {
            ApiError::BadRequest("bucket must be a duration from 1m to 7d, e.g. 15m or 1h".into())
        })?;
    Ok(secs as u32)
}

/// `GET /api/timeline`: bucketed sentiment counts and net sentiment of one tracked query.
pub async fn timeline(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["query", "since", "until", "bucket"])?;
    let query = p
        .text("query")?
        .ok_or_else(|| ApiError::BadRequest("query (a tracked query's name) is required".into()))?;
    let (since, until) = p.range("24h", &st.config)?;
    let bucket = bucket_seconds(&p)?;
    if (until - since).num_seconds() / i64::from(bucket) > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "more than {MAX_BUCKETS} buckets: widen bucket or narrow the range"
        )));
    }
    let items = timeline::sentiment_timeline(&st.store, &query, since, until, bucket).await?;
    // A name that is neither tracked now nor has any mention in the window is a typo, not a
    // quiet query (a query removed from the config keeps its history).
    if !st.tracked.iter().any(|t| t.name == query) && items.iter().all(|b| b.total == 0) {
        let names: Vec<&str> = st.tracked.iter().map(|t| t.name.as_str()).collect();
        return Err(ApiError::NotFound(format!(
            "no tracked query by that name, and no mentions of one in the window; tracked: {}",
            names.join(", ")
        )));
    }
    let items = json_rows(items, &st.display);
    Ok(Json(json!({
        "query": query, "since": since, "until": until, "time_zone": st.display.zone_name(),
        "bucket_seconds": bucket, "items": items,
    })))
}

/// `GET /api/share-of-voice`: each tracked query's share of the mentions in the window.
pub async fn share_of_voice(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until"])?;
    let (since, until) = p.range("24h", &st.config)?;
    let items = timeline::share_of_voice(&st.store, since, until).await?;
    Ok(Json(Page::new(&st, since, until, items)))
}

/// `GET /api/display`: the zone the dashboard shows times in (`[display] time_zone`), with
/// its abbreviation and offset now.
pub async fn display(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let now = chrono::Utc::now();
    Json(json!({
        "time_zone": st.display.zone_name(),
        "abbreviation": st.display.abbreviation(now),
        "offset_seconds": st.display.offset_seconds(now),
        "now": now,
        "now_local": st.display.rfc3339(now),
    }))
}

/// `GET /api/headline`: each tracked query's mentions, negative share and reach in the window,
/// with the change against the window of the same length before it.
pub async fn headline(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until"])?;
    let (since, until) = p.range("24h", &st.config)?;
    let names: Vec<String> = st.tracked.iter().map(|t| t.name.clone()).collect();
    let items = headline::headline(&st.store, &names, since, until).await?;
    let previous_since = since - (until - since);
    Ok(Json(json!({
        "since": since, "until": until, "previous_since": previous_since,
        "time_zone": st.display.zone_name(),
        "since_local": st.display.rfc3339(since), "until_local": st.display.rfc3339(until),
        "items": items,
    })))
}

/// `GET /api/authors/top`: the authors with the most followers among the window's mentions
/// (of one tracked query with `query`).
pub async fn top_authors(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until", "query", "limit"])?;
    let (since, until) = p.range("24h", &st.config)?;
    let limit = p.limit(10, &st.config)?;
    let query = p.text("query")?;
    let items = headline::top_authors(&st.store, since, until, query.as_deref(), limit).await?;
    Ok(Json(Page::new(&st, since, until, items)))
}

/// `GET /api/queries`: the tracked queries this server was configured with.
pub async fn queries(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let items: Vec<_> = st
        .tracked
        .iter()
        .map(|t| json!({ "name": t.name, "query": t.query }))
        .collect();
    Json(json!({ "items": items }))
}

/// `GET /api/alerts`: alert history, newest first, by kind and status.
pub async fn alerts_list(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until", "kind", "status", "limit"])?;
    let (since, until) = p.range("24h", &st.config)?;
    let limit = p.limit(50, &st.config)?;
    let kind = p.choice(
        "kind",
        &[
            "negative_comment",
            "negative_spike",
            "emerging_trend",
            "digest",
        ],
    )?;
    let status = p.choice("status", &alerts::STATUSES)?;
    let items = json_rows(
        alerts::list(&st.store, since, until, kind, status, limit).await?,
        &st.display,
    );
    Ok(Json(Page::new(&st, since, until, items)))
}

/// An alert id as gema makes them: short, ASCII letters, digits, `-` and `_` only.
fn valid_alert_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The id and the status an `{id}/{acknowledge|resolve|reopen}` path asks for (`reopened`: what
/// reopen sets); a bad id is 400, an unknown action 404. `what` names the thing in errors.
fn status_action(
    path: Result<Path<(String, String)>, PathRejection>,
    what: &str,
    reopened: &'static str,
) -> Result<(String, &'static str), ApiError> {
    let Path((id, action)) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let status = match action.as_str() {
        "acknowledge" => "acknowledged",
        "resolve" => "resolved",
        "reopen" => reopened,
        _ => {
            return Err(ApiError::NotFound(
                "unknown action: use acknowledge, resolve or reopen".into(),
            ))
        }
    };
    if !valid_alert_id(&id) {
        return Err(ApiError::BadRequest(format!(
            "{what} id: 1 to 64 ASCII letters, digits, '-' or '_'"
        )));
    }
    Ok((id, status))
}

/// `POST /api/alerts/{id}/{acknowledge|resolve|reopen}`.
pub async fn alert_action(
    State(st): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (id, status) = status_action(path, "alert", "new")?;
    if !alerts::set_status(&st.store, &id, status).await? {
        return Err(ApiError::NotFound(format!("no alert with id {id}")));
    }
    tracing::info!(alert_id = %id, status, "Alert status changed");
    Ok(Json(json!({ "id": id, "status": status })))
}

/// `GET /api/incidents`: incidents active in the range (their newest alert in it), open ones
/// first, then by severity, by status.
pub async fn incidents_list(
    State(st): State<Arc<AppState>>,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["since", "until", "status", "limit"])?;
    let (since, until) = p.range("24h", &st.config)?;
    let limit = p.limit(50, &st.config)?;
    let status = p.choice("status", &incidents::STATUSES)?;
    let items = json_rows(
        incidents::list(&st.store, since, until, status, limit).await?,
        &st.display,
    );
    Ok(Json(Page::new(&st, since, until, items)))
}

/// `GET /api/incidents/{id}`: one incident and the alerts it holds, newest first.
pub async fn incident_get(
    State(st): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !valid_alert_id(&id) {
        return Err(ApiError::BadRequest(
            "incident id: 1 to 64 ASCII letters, digits, '-' or '_'".into(),
        ));
    }
    let Some(incident) = incidents::get(&st.store, &id).await? else {
        return Err(ApiError::NotFound(format!("no incident with id {id}")));
    };
    let alerts = json_rows(
        alerts::by_ids(&st.store, &incident.alert_ids).await?,
        &st.display,
    );
    let mut body = json_rows(vec![incident], &st.display).remove(0);
    body["alerts"] = json!(alerts);
    Ok(Json(body))
}

/// `POST /api/incidents/{id}/{acknowledge|resolve|reopen}`.
pub async fn incident_action(
    State(st): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (id, status) = status_action(path, "incident", "open")?;
    if !incidents::set_status(&st.store, &id, status).await? {
        return Err(ApiError::NotFound(format!("no incident with id {id}")));
    }
    tracing::info!(incident_id = %id, status, "Incident status changed");
    Ok(Json(json!({ "id": id, "status": status })))
}

/// A JSON body, or why not: 413 for a body over the limit (a chunked one is cut while it is
/// read, and surfaces here), 400 naming the problem otherwise.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(t)) => Ok(t),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge),
        Err(e) => Err(ApiError::BadRequest(format!("body: {}", e.body_text()))),
    }
}

/// The body of `POST /api/mentions/{key}/sentiment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// negative, neutral or positive.
    label: String,
    /// Who corrects (shown with the mention); `api` when absent.
    #[serde(default)]
    by: Option<String>,
}

/// `POST /api/mentions/{key}/sentiment`: a person's correction of a stored mention's sentiment.
/// The latest correction is shown with the mention and exported for `gema train --corrections`.
pub async fn correct_sentiment(
    State(st): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CorrectionRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(key) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let req = json_body(body)?;
    let label = corrections::parse_label(&req.label)
        .map_err(|e| ApiError::BadRequest(format!("label: {e}")))?;
    if key.is_empty() || key.len() > 512 {
        return Err(ApiError::BadRequest("key: 1 to 512 characters".into()));
    }
    let by = req.by.unwrap_or_else(|| "api".into());
    let by = corrections::check_by(&by).map_err(|e| ApiError::BadRequest(format!("by: {e}")))?;
    match corrections::correct(&st.store, &key, label, by).await? {
        Some(c) => {
            tracing::info!(key = %key, label = %c.label, by = %c.corrected_by, "Sentiment corrected");
            Ok(Json(json_rows(vec![c], &st.display).remove(0)))
        }
        None => Err(ApiError::NotFound(format!(
            "no stored mention with key {key}"
        ))),
    }
}

/// Most texts in one `POST /api/classify`.
pub const MAX_CLASSIFY_TEXTS: usize = 100;
/// Longest text `POST /api/classify` takes, in characters.
pub const MAX_CLASSIFY_CHARS: usize = 2_000;
/// Most words of one text `POST /api/classify` leaves out in turn (each costs one more
/// classification), so that one request stays cheap.
pub const MAX_EXPLAINED_WORDS: usize = 64;

/// The body of `POST /api/classify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    texts: Vec<String>,
    /// Also return each word's effect on the score (left out in turn, the rest re-scored).
    #[serde(default)]
    explain: bool,
    /// A language hint for every text, as a connector gives one: it decides only when language
    /// detection has no evidence either way.
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /api/classify`: what the enrich stage's sentiment model says about each text (language,
/// label, score, confidence) and, with `explain`, which words moved the score.
pub async fn classify(
    State(st): State<Arc<AppState>>,
    body: Result<Json<ClassifyRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = json_body(body)?;
    if req.texts.is_empty() || req.texts.len() > MAX_CLASSIFY_TEXTS {
        return Err(ApiError::BadRequest(format!(
            "texts: 1 to {MAX_CLASSIFY_TEXTS} strings, got {}",
            req.texts.len()
        )));
    }
    if let Some(i) = req
        .texts
        .iter()
        .position(|t| t.chars().count() > MAX_CLASSIFY_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "texts[{i}]: longer than {MAX_CLASSIFY_CHARS} characters"
        )));
    }
    let model = st.classifier.clone();
    let items = tokio::task::spawn_blocking(move || {
        req.texts
            .iter()
            .map(|text| {
                let (lang, lang_confidence) = model.language(text, req.lang.as_deref());
                let s = model.classify(text, lang);
                let mut item = json!({
                    "text": text,
                    "lang": lang.as_str(),
                    "lang_confidence": lang_confidence,
                    "label": s.label.as_str(),
                    "score": s.score,
                    "confidence": s.confidence,
                });
                if req.explain && s.label != Label::Unscored {
                    let words = model_word_effects(
                        model.as_ref(),
                        text,
                        lang,
                        s.score,
                        |_| true,
                        MAX_EXPLAINED_WORDS,
                    );
                    item["words"] = json!(words);
                }
                item
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::BadRequest(format!("classification failed: {e}")))?;
    Ok(Json(
        json!({ "model": st.classifier.name(), "items": items }),
    ))
}

/// `GET /api/feed`: the live alert feed (Server-Sent Events, event `alert`, data = alert JSON).
/// Resumes after the `Last-Event-ID` header (or `?last_event_id=`).
pub async fn feed(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    sse(st.feed.clone(), &headers, q)
}

/// `GET /api/feed/incidents`: incident versions as the router delivers them (event
/// `incident`; a later version of an incident keeps its `id`), with the same resume rules as
/// [`feed`].
pub async fn incident_feed(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    sse(st.incident_feed.clone(), &headers, q)
}

/// `GET /api/feed/mentions`: new negative mentions of tracked queries (event `mention`), with
/// the same resume rules as [`feed`].
pub async fn mention_feed(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    sse(st.mention_feed.clone(), &headers, q)
}

fn sse(
    feed: Arc<super::sse::Feed>,
    headers: &HeaderMap,
    q: QueryMap,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q, &["last_event_id"])?;
    let last = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID is not ASCII".into()))?
                .to_string(),
        ),
        None => p.text("last_event_id")?,
    };
    if let Some(id) = &last {
        let ok = id.len() <= 40
            && id
                .split_once('-')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok());
        if !ok {
            return Err(ApiError::BadRequest(
                "Last-Event-ID must look like <partition>-<offset>".into(),
            ));
        }
    }
    Ok(Sse::new(feed.stream(last)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::Display;

    #[test]
    fn alert_ids_and_terms() {
        assert!(valid_alert_id("3f2a9c0d11aa22bb33cc"));
        assert!(!valid_alert_id("x' OR 1=1 --"));
        assert!(!valid_alert_id(""));
        assert!(!valid_alert_id(&"a".repeat(65)));
        assert!(term_matches("#NusaPayDown", Some("nusapay")));
        assert!(!term_matches("kopikita", Some("nusa")));
        let jakarta = Display::new(chrono_tz::Tz::Asia__Jakarta);
        let rows = json_rows(
            vec![
                json!({"created_at": 0, "detected_at": "2026-11-26T20:30:00Z",
                "resolved_at": 0, "samples": "[{\"k\":1}]"}),
            ],
            &jakarta,
        );
        assert_eq!(rows[0]["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(rows[0]["created_at_local"], "1970-01-01T07:00:00+07:00");
        assert_eq!(rows[0]["detected_at"], "2026-11-26T20:30:00Z");
        assert_eq!(rows[0]["detected_at_local"], "2026-11-27T03:30:00+07:00");
        assert_eq!(rows[0]["samples"][0]["k"], 1);
        // An incident not resolved yet.
        assert_eq!(rows[0]["resolved_at"], serde_json::Value::Null);
        assert_eq!(rows[0]["resolved_at_local"], serde_json::Value::Null);
    }
}
