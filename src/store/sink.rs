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
    /// When the last batch ended: the term rollups are recomputed once the input is quiet.
    last_batch: Instant,
}

/// How long the input must be quiet before the term rollups are recomputed ahead of their
/// period.
const QUIET: Duration = Duration::from_secs(1);

/// The minutes one rollup still has to recompute, and when it last did.
struct Pending {
    which: rollup::Which,
    minutes: BTreeSet<u32>,
    period: Duration,
    /// Whether a quiet input recomputes it before its period has passed.
    early_when_quiet: bool,
    done: Instant,
}

impl Pending {
    fn new(which: rollup::Which, period_ms: u64, early_when_quiet: bool) -> Pending {
        Pending {
            which,
            minutes: BTreeSet::new(),
            period: Duration::from_millis(period_ms),
            early_when_quiet,
            done: Instant::now(),
        }
    }

    /// Recomputes the rollup when its period has passed, or the input is `quiet` and it may go
    /// early (whatever the period, when `all`).
    async fn refresh(&mut self, store: &Store, quiet: bool, all: bool) -> Result<(), StageError> {
        let due = all || self.done.elapsed() >= self.period || (quiet && self.early_when_quiet);
        if self.minutes.is_empty() || !due {
            return Ok(());
        }
        let what = match self.which {
            rollup::Which::Queries => "recompute the query rollups",
            rollup::Which::Terms => "recompute the term rollups",
        };
        rollup::refresh(store, self.which, &self.minutes)
            .await
            .map_err(StageError::store(what))?;
        self.minutes.clear();
        self.done = Instant::now();
        Ok(())
    }
}

/// The query rollups (every `rollup_period_ms`) and the term rollups (every
/// `term_rollup_period_ms`, or once the input is quiet).
struct Dirty {
    queries: Pending,
    terms: Pending,
}

impl Dirty {
    fn add(&mut self, minutes: impl IntoIterator<Item = u32>) {
        for m in minutes {
            self.queries.minutes.insert(m);
            self.terms.minutes.insert(m);
        }
    }

    fn is_empty(&self) -> bool {
        self.queries.minutes.is_empty() && self.terms.minutes.is_empty()
    }

    async fn refresh(&mut self, store: &Store, quiet: bool, all: bool) -> Result<(), StageError> {
        self.queries.refresh(store, quiet, all).await?;
        self.terms.refresh(store, quiet, all).await
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
                queries: Pending::new(rollup::Which::Queries, config.rollup_period_ms, false),
                terms: Pending::new(rollup::Which::Terms, config.term_rollup_period_ms, true),
            },
            written: Written::default(),
            last_batch: Instant::now(),
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
        let quiet = self.last_batch.elapsed() >= QUIET;
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
            partition_state: false,
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
        // Once a batch, not once a row: the clock is read per batch.
        self.last_batch = Instant::now();
        self.commit().await
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        // The INSERT's time limit, or the next rollup once nothing is buffered; the term
        // rollups once the input has been quiet for a second.
        let mut wait = self.inserter.time_left().unwrap_or(self.period);
        if !self.dirty.terms.minutes.is_empty() && self.inserter.pending().rows == 0 {
            wait = wait.min(QUIET.saturating_sub(self.last_batch.elapsed()));
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
