//! The sentiment cascade: the fast tier scores every mention; the transformer tier re-scores the
//! ones where the fast tier is unsure and that matter, in batches on its own thread, off the hot
//! path.
//!
//! The stage hands an escalated mention to a bounded queue with `try_send`: when the queue is
//! full the fast label stands (counted as `queue_full`), so a slow transformer never blocks the
//! stream. The stage waits for a queued mention's verdict at most `max_wait_ms` from when it
//! queued it; a later verdict is dropped and the fast label stands (`timed_out`). The worker
//! skips jobs whose wait is already over. The stage reads the next batch while a batch's
//! escalated mentions are with the transformer, so that wait overlaps with reading.

use std::sync::Arc;

use serde::Deserialize;

use crate::mention::{CascadeRecord, EnrichedMention, Escalation};
use crate::sentiment::Sentiment;
use crate::text::lang::Lang;

/// `[enrich.cascade]`: when the transformer tier gets a second look.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CascadeConfig {
    /// Run the transformer tier on uncertain mentions that matter. Needs a build with
    /// `--features bert` and the files from `scripts/bert-deps.sh`.
    pub enabled: bool,
    /// The fast tier is unsure below this confidence (in (0, 1]).
    pub confidence_below: f32,
    /// Every mention that matches a tracked query goes to the transformer, sure or not: these
    /// are the brand's own mentions, the ones a manager answers.
    pub on_query_match: bool,
    /// Unsure mentions whose author has at least this many followers go too (0: followers
    /// never make one matter). With `on_query_match = false` and `min_followers = 0`, every
    /// unsure mention goes.
    pub min_followers: u64,
    /// The head made by `gema train --tier bert`.
    pub head: String,
    /// The transformer's folder (config.json, vocab.txt, model.safetensors). Env:
    /// `GEMA_BERT_MODEL_DIR`.
    pub model_dir: String,
    /// A second head that decides Indonesian (and, when it reads a multilingual checkpoint,
    /// Malay, Javanese and Sundanese) in place of `head`: the head made by `gema train --tier
    /// bert --bert-model-dir .gema/bert/e5 --head-langs en,id`, which measures better than the
    /// English checkpoint on Indonesian. Empty: `head` decides every language it was trained on.
    pub indonesian_head: String,
    /// Its transformer's folder. Env: `GEMA_E5_MODEL_DIR`.
    pub indonesian_model_dir: String,
    /// Most mentions per transformer forward pass.
    pub batch_size: usize,
    /// Mentions waiting for the transformer; when it is full the fast label stands.
    pub queue_capacity: usize,
    /// Longest a queued mention waits for its verdict before the fast label stands.
    pub max_wait_ms: u64,
    /// libtorch threads of the transformer.
    pub threads: usize,
    /// Most of its time the transformer thread may compute, in (0, 1]: after a batch that took
    /// `t` it rests `t · (1 / share − 1)`. Caps what the transformer takes from the fast path
    /// under load (its queue then fills and the fast label stands).
    pub max_busy_share: f32,
    /// The transformer thread's nice value (0 to 19; Linux): above the stages' 0, it computes
    /// with the CPU the stages leave idle, and under load its queue fills and the fast label
    /// stands instead of the stream slowing down.
    pub nice: i32,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            enabled: false,
            confidence_below: 0.55,
            on_query_match: true,
            min_followers: 10_000,
            head: crate::sentiment::bert::DEFAULT_HEAD_PATH.into(),
            model_dir: crate::sentiment::bert::DEFAULT_MODEL_DIR.into(),
            indonesian_head: crate::sentiment::bert::E5_HEAD_PATH.into(),
            indonesian_model_dir: crate::sentiment::bert::E5_MODEL_DIR.into(),
            batch_size: 16,
            queue_capacity: 32,
            max_wait_ms: 250,
            threads: 1,
            max_busy_share: 1.0,
            nice: 19,
        }
    }
}

impl CascadeConfig {
    /// Checks the values; the error names the key.
    /// Checks every value; the key is relative to `[enrich.cascade]`.
    pub fn validate(&self) -> Result<(), crate::setting::Invalid> {
        let bad = |k: &str, v: String, r: &str| Err(crate::setting::Invalid::new(k, v, r));
        if !(self.confidence_below > 0.0 && self.confidence_below <= 1.0) {
            return bad(
                "confidence_below",
                self.confidence_below.to_string(),
                "must be in (0, 1]",
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "0".into(), "must be ≥ 1");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "0".into(), "must be ≥ 1");
        }
        if !(self.max_busy_share > 0.0 && self.max_busy_share <= 1.0) {
            return bad(
                "max_busy_share",
                self.max_busy_share.to_string(),
                "must be in (0, 1]",
            );
        }
        if !(0..=19).contains(&self.nice) {
            return bad("nice", self.nice.to_string(), "must be in 0..=19");
        }
        if self.threads == 0 {
            return bad("threads", "0".into(), "must be ≥ 1");
        }
        if self.enabled && !cfg!(feature = "bert") {
            return bad(
                "enabled",
                "true".into(),
                "this gema was built without the transformer tier: build with `--features bert` \
                 (see scripts/bert-deps.sh) or set it to false",
            );
        }
        Ok(())
    }

    /// Whether `e` goes to the transformer (`transformer_langs`: the languages the head
    /// decides): every scored mention of a tracked query, and unsure ones from authors with
    /// reach.
    ///
    /// Malay, Javanese and Sundanese mentions, which the fast tier leaves unscored, count as
    /// unsure; they reach a multilingual head whose `transformer_langs` include them.
    pub fn wants(&self, e: &EnrichedMention, transformer_langs: &[Lang]) -> bool {
        let lang = Lang::from_hint(&e.lang);
        if !transformer_langs.contains(&lang)
            || (lang.is_scored() && e.sentiment.label == crate::sentiment::Label::Unscored)
        {
            return false;
        }
        if self.on_query_match && !e.queries.is_empty() {
            return true;
        }
        let followers = e.mention.author.followers.unwrap_or(0);
        let by_reach = self.min_followers > 0 && followers >= self.min_followers;
        let unsure = !lang.is_scored() || self.unsure(e.sentiment);
        unsure && (by_reach || (!self.on_query_match && self.min_followers == 0))
    }

    /// Whether a fast-tier verdict is below the confidence threshold (unscored never is).
    pub fn unsure(&self, s: Sentiment) -> bool {
        s.label != crate::sentiment::Label::Unscored && s.confidence < self.confidence_below
    }
}

/// Records the cascade's outcome on `e`: its sentiment becomes the transformer's when it decided.
pub fn record(e: &mut EnrichedMention, escalation: Escalation, bert: Option<(Sentiment, &str)>) {
    let fast = e.sentiment;
    let decided_by_bert = bert.is_some();
    if let Some((s, name)) = bert {
        e.sentiment = s;
        e.sentiment_model = name.to_string();
    }
    e.cascade = Some(CascadeRecord {
        tier: if decided_by_bert { "bert" } else { "fast" }.into(),
        escalation,
        fast,
        bert: bert.map(|(s, _)| s),
    });
}

/// A running transformer tier: a bounded queue and the thread that drains it, with one or two
/// heads (English, and Indonesian with its neighbours).
pub struct Cascade {
    config: CascadeConfig,
    /// Per head, in the worker's order: the languages it decides and its name.
    routes: Vec<(Vec<Lang>, String)>,
    /// Every language some head decides.
    langs: Vec<Lang>,
    #[cfg_attr(not(feature = "bert"), allow(dead_code))]
    tx: tokio::sync::mpsc::Sender<Job>,
}

/// One escalated mention on its way to the transformer.
#[cfg_attr(not(feature = "bert"), allow(dead_code))]
pub struct Job {
    text: String,
    lang: Lang,
    /// Which head (index into the routes).
    route: usize,
    deadline: std::time::Instant,
    reply: tokio::sync::oneshot::Sender<Option<Sentiment>>,
}

/// A queued mention's verdict to come.
pub struct Pending {
    rx: tokio::sync::oneshot::Receiver<Option<Sentiment>>,
    route: usize,
    deadline: tokio::time::Instant,
    /// The answer, once [`Pending::is_ready`] has seen it.
    got: Option<Option<Sentiment>>,
}

impl Pending {
    /// When the stage stops waiting for this verdict.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Which head was asked ([`Cascade::head_name`] names it).
    pub fn route(&self) -> usize {
        self.route
    }

    /// Whether the verdict is in (or will never come, or its wait is over), without waiting.
    pub fn is_ready(&mut self) -> bool {
        if self.got.is_some() {
            return true;
        }
        match self.rx.try_recv() {
            Ok(v) => self.got = Some(v),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => self.got = Some(None),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                if tokio::time::Instant::now() >= self.deadline {
                    self.got = Some(None);
                }
            }
        }
        self.got.is_some()
    }

    /// The transformer's verdict, or `None` when it did not come in time (or failed).
    pub async fn verdict(self) -> Option<Sentiment> {
        if let Some(v) = self.got {
            return v;
        }
        match tokio::time::timeout_at(self.deadline, self.rx).await {
            Ok(Ok(v)) => v,
            _ => None,
        }
    }
}

/// What [`Cascade::offer`] did with a mention.
pub enum Offer {
    /// The fast tier is sure enough, or the mention does not matter.
    NotNeeded,
    /// Queued; await [`Pending::verdict`].
    Queued(Pending),
    /// The queue is full: the fast label stands.
    QueueFull,
}

impl Cascade {
    /// Loads the transformer tier and starts its thread. Fails with the path and the reason when
    /// a file is missing or corrupt, or when this build lacks the `bert` feature.
    pub fn start(
        config: &CascadeConfig,
        fast: Arc<crate::sentiment::FastModel>,
    ) -> anyhow::Result<Cascade> {
        #[cfg(feature = "bert")]
        {
            use crate::sentiment::bert::tier::BertTier;
            // The languages a head decides: those it was trained on, and for a multilingual
            // head that reads Indonesian, its regional neighbours too.
            let decides = |tier: &BertTier| {
                let mut langs = tier.head().langs.clone();
                if tier.head().encoder.model == crate::sentiment::bert::head::E5_MODEL
                    && langs.contains(&Lang::Id)
                {
                    langs.extend([Lang::Ms, Lang::Jv, Lang::Su]);
                }
                langs
            };
            let main = BertTier::load(
                std::path::Path::new(&config.model_dir),
                std::path::Path::new(&config.head),
                fast.clone(),
            )?;
            let mut routes = vec![(decides(&main), main.name().to_string())];
            let mut tiers = vec![main];
            if !config.indonesian_head.is_empty() {
                let id = BertTier::load(
                    std::path::Path::new(&config.indonesian_model_dir),
                    std::path::Path::new(&config.indonesian_head),
                    fast,
                )?;
                let langs: Vec<Lang> = decides(&id)
                    .into_iter()
                    .filter(|&l| l != Lang::En)
                    .collect();
                anyhow::ensure!(
                    langs.contains(&Lang::Id),
                    "enrich.cascade.indonesian_head: {} was not trained on Indonesian",
                    config.indonesian_head
                );
                routes[0].0.retain(|l| !langs.contains(l));
                routes.push((langs, id.name().to_string()));
                tiers.push(id);
            }
            let mut langs: Vec<Lang> = routes.iter().flat_map(|(l, _)| l.clone()).collect();
            langs.dedup();
            let (tx, rx) = tokio::sync::mpsc::channel(config.queue_capacity);
            let (batch, threads) = (config.batch_size, config.threads);
            let (share, nice) = (config.max_busy_share, config.nice);
            std::thread::Builder::new()
                .name("gema-bert".into())
                .spawn(move || {
                    lower_priority(nice);
                    worker(tiers, rx, batch, threads, share)
                })?;
            tracing::info!(
                heads = ?routes, queue = config.queue_capacity, batch = config.batch_size,
                threshold = config.confidence_below, "Transformer tier started"
            );
            Ok(Cascade {
                config: config.clone(),
                routes,
                langs,
                tx,
            })
        }
        #[cfg(not(feature = "bert"))]
        {
            let _ = fast;
            anyhow::bail!(
                "enrich.cascade.enabled is true but this gema was built without the transformer \
                 tier (build with `--features bert`); head {:?}",
                config.head
            )
        }
    }

    /// The name of the head a [`Pending`] went to (recorded as `sentiment_model` when it
    /// decides).
    pub fn head_name(&self, route: usize) -> &str {
        &self.routes[route].1
    }

    /// Queues `e` for the transformer when the policy wants it and there is room; `text` gives
    /// what it reads (`Enricher::scored_text`: brand names masked), `e`'s own text when `None`,
    /// and is called only for a mention the policy wants.
    pub fn offer(&self, e: &EnrichedMention, text: impl FnOnce() -> Option<String>) -> Offer {
        if !self.config.wants(e, &self.langs) {
            return Offer::NotNeeded;
        }
        // The head (and the fast tier's inputs to it) read the Indonesian family as Indonesian.
        let lang = if e.lang == "en" { Lang::En } else { Lang::Id };
        let detected = Lang::from_hint(&e.lang);
        let route = self
            .routes
            .iter()
            .position(|(langs, _)| langs.contains(&detected))
            .expect("wants() accepts only a language some head decides");
        let wait = std::time::Duration::from_millis(self.config.max_wait_ms);
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            text: text().unwrap_or_else(|| e.mention.text.clone()),
            lang,
            route,
            deadline: std::time::Instant::now() + wait,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => Offer::Queued(Pending {
                rx,
                route,
                deadline: tokio::time::Instant::now() + wait,
                got: None,
            }),
            Err(_) => Offer::QueueFull,
        }
    }
}

/// Gives the calling thread (and the libtorch threads it starts) the nice value `nice`.
#[cfg(feature = "bert")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if rc != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "Could not lower the transformer thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "enrich.cascade.nice is applied on Linux only");
}

/// Drains the queue in batches until every sender is gone.
#[cfg(feature = "bert")]
fn worker(
    tiers: Vec<crate::sentiment::bert::tier::BertTier>,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    batch: usize,
    threads: usize,
    busy_share: f32,
) {
    crate::sentiment::bert::encoder::set_threads(threads);
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let now = std::time::Instant::now();
        let (mut live, late): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| j.deadline > now && !j.reply.is_closed());
        for j in late {
            let _ = j.reply.send(None);
        }
        if live.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        // One forward pass per head asked in this batch.
        for (route, tier) in tiers.iter().enumerate() {
            let (mine, rest): (Vec<Job>, Vec<Job>) =
                live.into_iter().partition(|j| j.route == route);
            live = rest;
            if mine.is_empty() {
                continue;
            }
            let items: Vec<(&str, Lang)> = mine.iter().map(|j| (j.text.as_str(), j.lang)).collect();
            match tier.classify_batch(&items) {
                Ok(verdicts) => {
                    for (j, v) in mine.into_iter().zip(verdicts) {
                        let _ = j.reply.send(v.by_transformer.then_some(v.sentiment));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, rows = mine.len(), head = tier.name(), "Transformer tier failed on a batch; the fast labels stand");
                    for j in mine {
                        let _ = j.reply.send(None);
                    }
                }
            }
        }
        if busy_share < 1.0 {
            std::thread::sleep(started.elapsed().mul_f32(1.0 / busy_share - 1.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::Label;

    fn enriched(
        conf: f32,
        lang: &str,
        queries: &[&str],
        followers: Option<u64>,
    ) -> EnrichedMention {
        let json = serde_json::json!({
            "id": "1", "platform": "x", "text": "meh",
            "created_at": "2026-11-26T10:00:00Z",
            "author": {"id": "a", "handle": "ann", "followers": followers},
        });
        let mention: crate::mention::Mention = serde_json::from_value(json).unwrap();
        EnrichedMention {
            key: mention.key(),
            mention,
            lang: lang.into(),
            lang_confidence: 1.0,
            sentiment: Sentiment {
                label: Label::Neutral,
                score: 0.0,
                confidence: conf,
            },
            sentiment_model: "fast".into(),
            normalized_text: "meh".into(),
            hashtags: vec![],
            mentions: vec![],
            urls: vec![],
            emojis: vec![],
            keywords: vec![],
            queries: queries.iter().map(|s| s.to_string()).collect(),
            enriched_at: chrono::Utc::now(),
            cascade: None,
        }
    }

    #[test]
    fn policy_escalates_brand_mentions_and_unsure_ones_with_reach() {
        let c = CascadeConfig::default();
        let en = [Lang::En];
        // Every mention of a tracked query, sure or not.
        assert!(c.wants(&enriched(0.5, "en", &["brand"], None), &en));
        assert!(c.wants(&enriched(0.9, "en", &["brand"], None), &en));
        // Unsure ones from an author with reach.
        assert!(c.wants(&enriched(0.5, "en", &[], Some(50_000)), &en));
        // Sure and not a brand's, no reach, or a language the head does not decide: fast stands.
        assert!(!c.wants(&enriched(0.9, "en", &[], Some(50_000)), &en));
        assert!(!c.wants(&enriched(0.5, "en", &[], Some(10)), &en));
        assert!(c.wants(
            &enriched(0.5, "id", &["brand"], None),
            &[Lang::En, Lang::Id]
        ));
        assert!(!c.wants(&enriched(0.5, "id", &["brand"], None), &en));
        // Malay is unscored by the fast tier: a multilingual head takes it when it matters.
        let mut ms = enriched(0.0, "ms", &["brand"], None);
        ms.sentiment = Sentiment::UNSCORED;
        assert!(c.wants(&ms, &[Lang::Id, Lang::Ms]));
        assert!(!c.wants(&ms, &[Lang::En, Lang::Id]));
        assert!(!c.wants(&enriched(0.5, "other", &["brand"], None), &en));
        let everything = CascadeConfig {
            on_query_match: false,
            min_followers: 0,
            ..CascadeConfig::default()
        };
        assert!(everything.wants(&enriched(0.5, "en", &[], None), &en));
    }

    #[test]
    fn record_keeps_both_scores_and_names_the_decider() {
        let mut e = enriched(0.4, "en", &["brand"], None);
        let bert = Sentiment {
            label: Label::Negative,
            score: -0.7,
            confidence: 0.8,
        };
        record(&mut e, Escalation::Decided, Some((bert, "bert-x")));
        assert_eq!(e.sentiment, bert);
        assert_eq!(e.sentiment_model, "bert-x");
        let r = e.cascade.as_ref().unwrap();
        assert_eq!((r.tier.as_str(), r.fast.confidence), ("bert", 0.4));
        let mut e = enriched(0.4, "en", &["brand"], None);
        record(&mut e, Escalation::QueueFull, None);
        assert_eq!(e.sentiment.label, Label::Neutral);
        assert_eq!(e.cascade.unwrap().tier, "fast");
    }

    #[test]
    fn validation_names_the_key() {
        let c = CascadeConfig {
            confidence_below: 1.5,
            ..CascadeConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.key, "confidence_below");
        // The full key (enrich.cascade.confidence_below) is checked where [enrich] is composed:
        // config::tests::nested_sections_name_the_full_key.
    }
}
