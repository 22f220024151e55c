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
    /// Rollup minutes written since the last recomputation, and when that was.
    dirty: BTreeSet<u32>,
    /// The key versions written since the last INSERT ended (tables with one row per key).
    written: Written,
    rollup_period: Duration,
    last_rollup: Instant,
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
            dirty: BTreeSet::new(),
            written: Written::default(),
            rollup_period: Duration::from_millis(config.rollup_period_ms),
            last_rollup: Instant::now(),
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
        if !self.dirty.is_empty() && self.last_rollup.elapsed() >= self.rollup_period {
            self.refresh_rollups().await?;
            self.last_rollup = Instant::now();
        }
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
            self.dirty.extend(minutes);
        }
        Ok(())
    }

    /// Recomputes the rollups of the dirty minutes and empties the set.
    async fn refresh_rollups(&mut self) -> Result<(), StageError> {
        rollup::refresh(&self.store, &self.dirty)
            .await
            .map_err(StageError::store("recompute rollups"))?;
        self.dirty.clear();
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
        self.dirty.extend(T::minute(&row));
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
        // The INSERT's time limit, or the next rollup once nothing is buffered.
        let wait = self
            .inserter
            .time_left()
            .unwrap_or(self.period)
            .max(Duration::from_millis(1));
        Some(tokio::time::Instant::now() + wait)
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
        self.refresh_rollups().await?;
        tracing::info!(table = T::TABLE, "Sink stage ended its last INSERT");
        Ok(())
    }
}
