//! `AuditLog` on SQL: the hash chain is extended inside the writer's transaction, under a lock
//! that every appender on every node takes, so the chain never forks.

use async_trait::async_trait;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{Map, Value};
use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, GENESIS_HASH, chain_hash};
use tessera_core::{ClientId, UnixTime};
use tessera_store::{AuditLog, StoreError};

use crate::conn::AnyConnection;
use crate::schema::audit_log;
use crate::{DieselStore, Tx, db_error, transaction};

/// Key of the PostgreSQL advisory lock that serialises audit appends across all nodes. Any fixed
/// number distinct from the migration lock works; this one is "TESSAUD" in ASCII.
const AUDIT_LOCK: i64 = 0x54_45_53_53_41_55_44;

/// Rows per INSERT statement. A 1,000-event batch is still one transaction; splitting only keeps
/// each statement well below the bind-parameter limits (65,535 on PostgreSQL, 32,766 in SQLite's
/// default build) at 8 parameters per row.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// An `audit_log` row exactly as stored. A `None` client_id is written as NULL (diesel would
/// otherwise write the column's DEFAULT), hence `treat_none_as_default_value = false`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
struct AuditRow {
    seq: i64,
    at: i64,
    kind: String,
    actor: String,
    client_id: Option<String>,
    data: String,
    prev_hash: String,
    hash: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    /// Decodes without checking the hash: verifying the chain is the reader's job
    /// (`verify_chain`), and a tampered record must be readable to be reported.
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("audit record {}: {what}", row.seq));
        let kind = AuditKind::parse(&row.kind).ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?;
        let data = serde_json::from_str::<Map<String, Value>>(&row.data)
            .map_err(|e| corrupt(format!("data is not a JSON object: {e}")))?;
        Ok(AuditRecord {
            seq: row.seq,
            event: AuditEvent {
                at: UnixTime(row.at),
                kind,
                actor: row.actor,
                client_id: row.client_id.map(ClientId::new),
                data,
            },
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

/// Appends `events` to the chain inside the caller's transaction, which must have been opened
/// with [`Tx::Write`]. The one place that assigns `seq` and hashes: used by [`AuditLog::append`]
/// and by every client write, so a client change and its audit commit or fail together.
///
/// Correct under concurrent appenders in other processes because no two transactions can hold
/// the last record at once: on SQLite the `IMMEDIATE` transaction already owns the database's
/// write lock; on PostgreSQL the advisory lock below is held until commit or rollback, and under
/// READ COMMITTED the SELECT that follows it sees every append committed before the lock was
/// granted. The lock is taken last in client writes (after the client rows), so it is held only
/// for the audit inserts, and no transaction holding it ever waits on a client row: no deadlock.
pub(crate) fn append_in_tx(conn: &mut AnyConnection, events: &[AuditEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    if let AnyConnection::Postgresql(pg) = conn {
        pg.batch_execute(&format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK})")).map_err(db_error)?;
    }
    let last: Option<(i64, String)> = audit_log::table
        .select((audit_log::seq, audit_log::hash))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()
        .map_err(db_error)?;
    let (mut seq, mut prev_hash) = last.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));

    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let hash = chain_hash(&prev_hash, seq, event);
        let data = serde_json::to_string(&event.data)
            .map_err(|e| StoreError::Internal(format!("encoding audit data: {e}")))?;
        rows.push(AuditRow {
            seq,
            at: event.at.seconds(),
            kind: event.kind.as_str().to_owned(),
            actor: event.actor.clone(),
            client_id: event.client_id.as_ref().map(|c| c.as_str().to_owned()),
            data,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        insert_rows!(conn, audit_log::table, chunk).map_err(db_error)?;
    }
    Ok(())
}

#[async_trait]
impl AuditLog for DieselStore {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        // The whole batch in one transaction: one commit (one fsync) however many events, and
        // no other appender can interleave with it.
        self.run(move |conn| transaction(conn, Tx::Write, |conn| append_in_tx(conn, &events))).await
    }

    async fn read(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        // Beyond i64::MAX means "no limit" anyway.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .run(move |conn| {
                audit_log::table
                    .select(AuditRow::as_select())
                    .filter(audit_log::seq.gt(after))
                    .order(audit_log::seq.asc())
                    .limit(limit)
                    .load(conn)
                    .map_err(db_error)
            })
            .await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }
}
