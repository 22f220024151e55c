//! The ClickHouse sink stages: a Kafka topic → a table, one consumer group per table
//! (`<prefix>-sink-ch` for mentions, `<prefix>-sink-trends`, `<prefix>-sink-alerts`,
//! `<prefix>-sink-incidents`). The Kafka
//! loop is the runner's ([`crate::runner`]); this is what a sink does with each message.
//!
//! Rows stream into one INSERT through the crate's inserter until it reaches its row, byte or
//! time limit; the batches whose rows it holds settle (their offsets are stored) only when an
//! INSERT has ended (committed by the server) and the rollups of their minutes are recomputed. A
//! crash aborts the open INSERT and the rows are consumed again. A message that is not a row goes
//! to the dead-letter topic (only a foreign producer could write one).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::inserter::Inserter;
use rdkafka::message::{BorrowedMessage, Message};

use super::config::SinkConfig;
use crate::kafka::Group;
use crate::mention::EnrichedMention;
use crate::metrics::Metrics;
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Reject, Settled, StageError};

use super::keys::{self, KeyRow, Written};
use super::row::{AlertRow, IncidentRow, MentionRow, TrendRow};
use super::{rollup, Store};

/// One table fed from one topic.
pub trait SinkTable {
    type Row: clickhouse::RowOwned + clickhouse::RowWrite + serde::Serialize + Send + Sync;
    /// The table name.
    const TABLE: &'static str;
    /// The consumer group (and so the topic) the table is fed from.
    const GROUP: Group;
    /// The row for one message, or why it is not one.
    fn parse(payload: &[u8]) -> Result<Self::Row, String>;
    /// The rollup minute a row falls in, for tables with rollups (see [`super::rollup`]).
    fn minute(_row: &Self::Row) -> Option<u32> {
        None
    }
    /// The row's key version, for tables with one row per key whatever its sorting key
    /// (see [`super::keys`]).
    fn key(_row: &Self::Row) -> Option<KeyRow> {
        None
    }
}

/// Enriched mentions → `mentions`.
pub struct Mentions;
impl SinkTable for Mentions {
    type Row = MentionRow;
    const TABLE: &'static str = "mentions";
    const GROUP: Group = Group::SinkMentions;
    fn parse(payload: &[u8]) -> Result<MentionRow, String> {
        serde_json::from_slice::<EnrichedMention>(payload)
            .map(|e| MentionRow::from(&e))
            .map_err(|e| format!("invalid enriched mention: {e}"))
    }
    fn minute(row: &MentionRow) -> Option<u32> {
        Some(rollup::minute_of(row.created_at))
    }
    fn key(row: &MentionRow) -> Option<KeyRow> {
        Some(KeyRow::new(
            &row.platform,
            &row.id,
            row.created_at,
            row.version,
        ))
    }
}

/// Trend events → `trends`.
pub struct Trends;
impl SinkTable for Trends {
    type Row = TrendRow;
    const TABLE: &'static str = "trends";
    const GROUP: Group = Group::SinkTrends;
    fn parse(payload: &[u8]) -> Result<TrendRow, String> {
        TrendRow::from_json(payload)
    }
}

/// Delivered alerts → `alerts`.
pub struct Alerts;
impl SinkTable for Alerts {
    type Row = AlertRow;
    const TABLE: &'static str = "alerts";
    const GROUP: Group = Group::SinkAlerts;
    fn parse(payload: &[u8]) -> Result<AlertRow, String> {
        serde_json::from_slice::<crate::alerts::Alert>(payload)
            .map(|a| AlertRow::from(&a))
            .map_err(|e| format!("invalid alert: {e}"))
    }
}

/// Incident versions from the router → `incidents`.
pub struct Incidents;
impl SinkTable for Incidents {
    type Row = IncidentRow;
    const TABLE: &'static str = "incidents";
    const GROUP: Group = Group::SinkIncidents;
    fn parse(payload: &[u8]) -> Result<IncidentRow, String> {
        serde_json::from_slice::<crate::alerts::Incident>(payload)
            .map(|i| IncidentRow::from(&i))
            .map_err(|e| format!("invalid incident: {e}"))
    }
}

/// The sink of table `T`: the runner's handler.
pub struct SinkStage<T: SinkTable> {
    store: Store,
    inserter: Inserter<T::Row>,
    metrics: Arc<Metrics>,
    period: Duration,
    /// Rollup minutes written since the last recomputation of the query rollups, and of the
    /// term rollups.
    dirty: Dirty,
    /// The key versions written since the last INSERT ended (tables with one row per key).
    written: Written,
    /// When the last row arrived: the term rollups are recomputed once the input is quiet.
    last_row: Instant,
}

/// How long the input must be quiet before the term rollups are recomputed ahead of their
/// period.
const QUIET: Duration = Duration::from_secs(1);

/// The minutes each rollup still has to recompute, and when it last did.
struct Dirty {
    queries: BTreeSet<u32>,
    terms: BTreeSet<u32>,
    queries_period: Duration,
    terms_period: Duration,
    queries_done: Instant,
    terms_done: Instant,
}

impl Dirty {
    fn add(&mut self, minutes: impl IntoIterator<Item = u32>) {
        for m in minutes {
            self.queries.insert(m);
            self.terms.insert(m);
        }
    }

    fn is_empty(&self) -> bool {
        self.queries.is_empty() && self.terms.is_empty()
    }

    /// Recomputes the query rollups when their period has passed, and the term rollups when
    /// theirs has or the input is `quiet` (both, when `all`).
    async fn refresh(&mut self, store: &Store, quiet: bool, all: bool) -> Result<(), StageError> {
        use rollup::Which;
        let due = |set: &BTreeSet<u32>, done: Instant, period: Duration| {
            !set.is_empty() && (all || done.elapsed() >= period)
        };
        if due(&self.queries, self.queries_done, self.queries_period) {
            rollup::refresh(store, Which::Queries, &self.queries)
                .await
                .map_err(StageError::store("recompute the query rollups"))?;
            self.queries.clear();
            self.queries_done = Instant::now();
        }
        if due(&self.terms, self.terms_done, self.terms_period) || (quiet && !self.terms.is_empty())
        {
            rollup::refresh(store, Which::Terms, &self.terms)
                .await
                .map_err(StageError::store("recompute the term rollups"))?;
            self.terms.clear();
            self.terms_done = Instant::now();
        }
        Ok(())
    }
}

impl<T: SinkTable> SinkStage<T> {
    pub fn new(config: &SinkConfig, store: &Store, metrics: Arc<Metrics>) -> SinkStage<T> {
        let period = Duration::from_millis(config.period_ms);
        let inserter = store
            .writer
            .inserter::<T::Row>(T::TABLE)
            .with_max_rows(config.max_rows)
            .with_max_bytes(config.max_bytes)
            .with_period(Some(period));
        SinkStage {
            store: store.clone(),
            inserter,
            metrics,
            period,
            dirty: Dirty {
                queries: BTreeSet::new(),
                terms: BTreeSet::new(),
                queries_period: Duration::from_millis(config.rollup_period_ms),
                terms_period: Duration::from_millis(config.term_rollup_period_ms),
                queries_done: Instant::now(),
                terms_done: Instant::now(),
            },
            written: Written::default(),
            last_row: Instant::now(),
        }
    }

    /// Ends the INSERT if it reached a limit; settled once nothing is buffered and the rollups of
    /// the minutes written are recomputed.
    async fn commit(&mut self) -> Result<Settled, StageError> {
        let q = self
            .inserter
            .commit()
            .await
            .map_err(StageError::store("insert rows"))?;
        if q.rows > 0 {
            self.metrics.sink_rows.add(q.rows);
            self.metrics.sink_inserts.inc();
        }
        // Nothing buffered: every handled row is in a committed INSERT (or in the DLQ). Their
        // offsets are stored once the rollups of their minutes are recomputed too.
        if self.inserter.pending().rows > 0 {
            return Ok(Settled::Oldest(0));
        }
        self.settle_keys().await?;
        let quiet = self.last_row.elapsed() >= QUIET;
        self.dirty.refresh(&self.store, quiet, false).await?;
        Ok(if self.dirty.is_empty() {
            Settled::All
        } else {
            Settled::Oldest(0)
        })
    }

    /// Tombstones the rows that newer versions of their keys replaced, once the INSERT that
    /// wrote those versions has ended; their minutes are recomputed with the rest.
    async fn settle_keys(&mut self) -> Result<(), StageError> {
        if !self.written.is_empty() {
            let minutes = keys::settle(&self.store, &mut self.written)
                .await
                .map_err(StageError::store("replace re-sent mentions"))?;
            self.dirty.add(minutes);
        }
        Ok(())
    }
}

impl<T: SinkTable + Send> Handler for SinkStage<T> {
    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: T::GROUP,
            max: 10_000,
            linger: Duration::from_millis(20),
            partition_eof: false,
            pipelined: false,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        _io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        let row = T::parse(msg.payload().unwrap_or(&[])).map_err(|error| Reject {
            reason: "schema".into(),
            error,
        })?;
        self.dirty.add(T::minute(&row));
        self.last_row = Instant::now();
        if let Some(k) = T::key(&row) {
            self.written.add(k);
        }
        self.inserter
            .write(&row)
            .await
            .map_err(StageError::store("write a row"))?;
        Ok(())
    }

    async fn end_batch(&mut self, _io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.commit().await
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        // The INSERT's time limit, or the next rollup once nothing is buffered; the term
        // rollups once the input has been quiet for a second.
        let mut wait = self.inserter.time_left().unwrap_or(self.period);
        if !self.dirty.terms.is_empty() && self.inserter.pending().rows == 0 {
            wait = wait.min(QUIET.saturating_sub(self.last_row.elapsed()));
        }
        Some(tokio::time::Instant::now() + wait.max(Duration::from_millis(1)))
    }

    async fn wake(&mut self, _io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.commit().await
    }

    async fn drain(&mut self, _io: &mut Io<'_>) -> Result<(), StageError> {
        let inserter = std::mem::replace(
            &mut self.inserter,
            self.store.writer.inserter::<T::Row>(T::TABLE),
        );
        let q = inserter
            .end()
            .await
            .map_err(StageError::store("insert rows"))?;
        self.metrics.sink_rows.add(q.rows);
        self.settle_keys().await?;
        self.dirty.refresh(&self.store, true, true).await?;
        tracing::info!(table = T::TABLE, "Sink stage ended its last INSERT");
        Ok(())
    }
}
