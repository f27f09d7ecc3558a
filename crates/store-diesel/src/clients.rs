//! `ClientStore` on SQL: a `clients` row, one `client_scopes` row per requested scope, and the
//! audit events of each change, written in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use diesel::prelude::*;
use serde_json::{Map, Value};
use tessera_core::audit::AuditEvent;
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
use tessera_core::{ClientId, UnixTime};
use tessera_store::{ClientStore, StoreError};

use crate::audit::ROWS_PER_INSERT;
use crate::conn::AnyConnection;
use crate::group::{self, Write};
use crate::schema::{client_scopes, clients};
use crate::{DieselStore, Tx, db_error, transaction};

/// A `clients` row exactly as stored. Decoding into [`ClientRecord`] is a separate, fallible step
/// (an unknown status or unreadable metadata is corrupt data).
///
/// `None` must mean NULL both when inserting (diesel would otherwise write the column DEFAULT)
/// and when updating (diesel would otherwise leave the column unchanged, and clearing
/// `status_reason` or `expires_at` would silently not happen). The primary key is left out of
/// the changeset: an update never renames a client.
#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = clients, primary_key(client_id))]
#[diesel(treat_none_as_default_value = false, treat_none_as_null = true)]
struct ClientRow {
    client_id: String,
    status: String,
    status_reason: Option<String>,
    org_id: String,
    org_name: String,
    software_id: String,
    directory: String,
    purpose: String,
    risk_tier: String,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    registration_token_hash: String,
    ssa_jti: Option<String>,
    transport_cert_subject: String,
    metadata: String,
    tokens_not_before: Option<i64>,
}

/// A `client_scopes` row exactly as stored.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = client_scopes)]
#[diesel(treat_none_as_default_value = false)]
struct ScopeRow {
    client_id: String,
    position: i32,
    scope: String,
    state: String,
    rule: String,
    decided_at: i64,
    reason: Option<String>,
}

/// The rows that store `client`.
fn encode(client: &ClientRecord) -> Result<(ClientRow, Vec<ScopeRow>), StoreError> {
    let id = client.client_id.as_str();
    let metadata = serde_json::to_string(&client.metadata)
        .map_err(|e| StoreError::Internal(format!("client {id}: encoding metadata: {e}")))?;
    let row = ClientRow {
        client_id: id.to_owned(),
        status: client.status.as_str().to_owned(),
        status_reason: client.status_reason.clone(),
        org_id: client.org_id.clone(),
        org_name: client.org_name.clone(),
        software_id: client.software_id.clone(),
        directory: client.directory.clone(),
        purpose: client.purpose.clone(),
        risk_tier: client.risk_tier.clone(),
        created_at: client.created_at.seconds(),
        updated_at: client.updated_at.seconds(),
        expires_at: client.expires_at.map(UnixTime::seconds),
        last_used_at: client.last_used_at.map(UnixTime::seconds),
        registration_token_hash: client.registration_token_hash.clone(),
        ssa_jti: client.ssa_jti.clone(),
        transport_cert_subject: client.transport_cert_subject.clone(),
        metadata,
        tokens_not_before: client.tokens_not_before.map(UnixTime::seconds),
    };
    let scopes = client
        .scopes
        .iter()
        .enumerate()
        .map(|(i, grant)| {
            let position =
                i32::try_from(i).map_err(|_| StoreError::Internal(format!("client {id}: too many scopes")))?;
            Ok(ScopeRow {
                client_id: id.to_owned(),
                position,
                scope: grant.scope.clone(),
                state: grant.state.as_str().to_owned(),
                rule: grant.rule.clone(),
                decided_at: grant.decided_at.seconds(),
                reason: grant.reason.clone(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((row, scopes))
}

/// The client stored in `row` and `scopes` (already in `position` order). Every decoding failure
/// names the client, so an operator can find the row.
fn decode(row: ClientRow, scopes: Vec<ScopeRow>) -> Result<ClientRecord, StoreError> {
    let id = row.client_id;
    let corrupt = |what: String| StoreError::Corrupt(format!("client {id}: {what}"));
    let status = ClientStatus::parse(&row.status).ok_or_else(|| corrupt(format!("unknown status {:?}", row.status)))?;
    let metadata = serde_json::from_str::<Map<String, Value>>(&row.metadata)
        .map_err(|e| corrupt(format!("metadata is not a JSON object: {e}")))?;
    let scopes = scopes
        .into_iter()
        .map(|s| {
            let state = ScopeState::parse(&s.state)
                .ok_or_else(|| corrupt(format!("scope {:?}: unknown state {:?}", s.scope, s.state)))?;
            Ok(ScopeGrant { scope: s.scope, state, rule: s.rule, decided_at: UnixTime(s.decided_at), reason: s.reason })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(ClientRecord {
        client_id: ClientId::new(id),
        status,
        status_reason: row.status_reason,
        org_id: row.org_id,
        org_name: row.org_name,
        software_id: row.software_id,
        directory: row.directory,
        purpose: row.purpose,
        risk_tier: row.risk_tier,
        created_at: UnixTime(row.created_at),
        updated_at: UnixTime(row.updated_at),
        expires_at: row.expires_at.map(UnixTime),
        last_used_at: row.last_used_at.map(UnixTime),
        tokens_not_before: row.tokens_not_before.map(UnixTime),
        registration_token_hash: row.registration_token_hash,
        ssa_jti: row.ssa_jti,
        transport_cert_subject: row.transport_cert_subject,
        scopes,
        metadata,
    })
}

fn insert_scopes(conn: &mut AnyConnection, scopes: &[ScopeRow]) -> Result<(), StoreError> {
    for chunk in scopes.chunks(ROWS_PER_INSERT) {
        insert_rows!(conn, client_scopes::table, chunk).map_err(db_error)?;
    }
    Ok(())
}

/// The write that stores a new `client` with its `audit` events (for the group writer).
pub(crate) fn insert_write(client: &ClientRecord, audit: &[AuditEvent]) -> Result<Write, StoreError> {
    let (row, scopes) = encode(client)?;
    Ok(Write {
        rows: Box::new(move |conn| {
            // A plain INSERT: the primary key and the ssa_jti constraint turn duplicates into
            // unique violations (`Conflict`, see `db_error`), with no read-then-write race. The
            // write is then rolled back, so neither the scopes nor the audit events of a refused
            // client are stored.
            diesel::insert_into(clients::table).values(&row).execute(conn).map_err(db_error)?;
            insert_scopes(conn, &scopes)
        }),
        audit: audit.to_vec(),
    })
}

/// The write that replaces the stored `client` with its `audit` events (for the group writer).
pub(crate) fn update_write(client: &ClientRecord, audit: &[AuditEvent]) -> Result<Write, StoreError> {
    let (row, scopes) = encode(client)?;
    Ok(Write {
        rows: Box::new(move |conn| {
            let updated =
                diesel::update(clients::table.find(&row.client_id)).set(&row).execute(conn).map_err(db_error)?;
            if updated == 0 {
                return Err(StoreError::NotFound(format!("client {}", row.client_id)));
            }
            // The scope list is replaced whole: scopes may have been added, removed or
            // reordered, and rewriting a handful of rows is simpler than diffing them.
            diesel::delete(client_scopes::table.filter(client_scopes::client_id.eq(&row.client_id)))
                .execute(conn)
                .map_err(db_error)?;
            insert_scopes(conn, &scopes)
        }),
        audit: audit.to_vec(),
    })
}

impl DieselStore {
    /// `insert_client` in a transaction (and a commit) of its own, as before group commit. Not
    /// part of the store's interface: kept so that the benchmark can compare the two.
    #[doc(hidden)]
    pub async fn insert_client_in_own_transaction(
        &self,
        client: &ClientRecord,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let write = insert_write(client, audit)?;
        self.run(move |conn| group::alone(conn, &write)).await
    }
}

/// The scope rows of `rows`' clients, in one query (one per client would be 100,000 round trips
/// at bank scale); run it in the same transaction as the rows, so that both agree.
fn scopes_of(conn: &mut AnyConnection, rows: &[ClientRow]) -> Result<Vec<ScopeRow>, StoreError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
    client_scopes::table
        .select(ScopeRow::as_select())
        .filter(client_scopes::client_id.eq_any(ids))
        .load(conn)
        .map_err(db_error)
}

/// Client records from their rows and all their scope rows (in any order).
fn assemble(rows: Vec<ClientRow>, scopes: Vec<ScopeRow>) -> Result<Vec<ClientRecord>, StoreError> {
    let mut by_client: HashMap<String, Vec<ScopeRow>> = HashMap::with_capacity(rows.len());
    for scope in scopes {
        by_client.entry(scope.client_id.clone()).or_default().push(scope);
    }
    rows.into_iter()
        .map(|row| {
            let mut scopes = by_client.remove(&row.client_id).unwrap_or_default();
            scopes.sort_by_key(|s| s.position);
            decode(row, scopes)
        })
        .collect()
}

#[async_trait]
impl ClientStore for DieselStore {
    // Both writes are committed in groups with whatever other client writes are waiting; each
    // caller still gets its own error and hears of success only after the commit (see `group`).
    async fn insert_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError> {
        self.writer.write(insert_write(client, audit)?).await
    }

    async fn update_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError> {
        self.writer.write(update_write(client, audit)?).await
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        let id = id.as_str().to_owned();
        let found = self
            .run(move |conn| {
                // One snapshot for both queries, so a concurrent update cannot pair the old row
                // with the new scopes.
                transaction(conn, Tx::Read, |conn| {
                    let Some(row) = clients::table
                        .find(&id)
                        .select(ClientRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(db_error)?
                    else {
                        return Ok(None);
                    };
                    let scopes = client_scopes::table
                        .filter(client_scopes::client_id.eq(&id))
                        .order(client_scopes::position.asc())
                        .select(ScopeRow::as_select())
                        .load(conn)
                        .map_err(db_error)?;
                    Ok(Some((row, scopes)))
                })
            })
            .await?;
        found.map(|(row, scopes)| decode(row, scopes)).transpose()
    }

    async fn changed_since(&self, since: UnixTime) -> Result<Vec<ClientRecord>, StoreError> {
        let since = since.0;
        let (rows, scopes) = self
            .run(move |conn| {
                transaction(conn, Tx::Read, |conn| {
                    let rows = clients::table
                        .select(ClientRow::as_select())
                        .filter(clients::updated_at.ge(since))
                        .load(conn)
                        .map_err(db_error)?;
                    let scopes = scopes_of(conn, &rows)?;
                    Ok((rows, scopes))
                })
            })
            .await?;
        assemble(rows, scopes)
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        // Two queries whatever the number of clients (one per client would be 100,000 round
        // trips at bank scale), in one snapshot so that rows and scopes agree.
        let (rows, scopes) = self
            .run(|conn| {
                transaction(conn, Tx::Read, |conn| {
                    let rows = clients::table
                        .select(ClientRow::as_select())
                        .order(clients::client_id.asc())
                        .load(conn)
                        .map_err(db_error)?;
                    let scopes = client_scopes::table.select(ScopeRow::as_select()).load(conn).map_err(db_error)?;
                    Ok((rows, scopes))
                })
            })
            .await?;
        // Grouped and ordered here rather than by an ORDER BY over the whole scopes table: the
        // per-client lists are short, so sorting them is cheaper than a database-wide sort.
        assemble(rows, scopes)
    }

    async fn touch_last_used(&self, uses: &[(ClientId, UnixTime)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut uses: Vec<(String, i64)> = uses.iter().map(|(id, at)| (id.as_str().to_owned(), at.seconds())).collect();
        // Rows are locked in one global order (by id), so two concurrent batches touching the
        // same clients cannot deadlock on PostgreSQL.
        uses.sort();
        self.run(move |conn| {
            transaction(conn, Tx::Write, |conn| {
                for (id, at) in &uses {
                    // The condition makes the move forward-only in the database itself, so a late
                    // batch with older times never wins. `updated_at` is left alone: usage is
                    // not a change of the client. Unknown ids match no row and are ignored.
                    diesel::update(
                        clients::table
                            .filter(clients::client_id.eq(id))
                            .filter(clients::last_used_at.is_null().or(clients::last_used_at.lt(*at))),
                    )
                    .set(clients::last_used_at.eq(*at))
                    .execute(conn)
                    .map_err(db_error)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_clients_page(&self, after: Option<&ClientId>, limit: usize) -> Result<Vec<ClientRecord>, StoreError> {
        let after = after.map(|a| a.as_str().to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (rows, scopes) = self
            .run(move |conn| {
                // One snapshot for both queries, so that the page's rows and scopes agree. Keyset
                // paging (`client_id > after`) over the primary key: each page is an index range,
                // however deep, and the comparison uses the same collation as the ORDER BY.
                transaction(conn, Tx::Read, |conn| {
                    let rows = match &after {
                        Some(after) => clients::table
                            .select(ClientRow::as_select())
                            .filter(clients::client_id.gt(after))
                            .order(clients::client_id.asc())
                            .limit(limit)
                            .load(conn),
                        None => clients::table
                            .select(ClientRow::as_select())
                            .order(clients::client_id.asc())
                            .limit(limit)
                            .load(conn),
                    }
                    .map_err(db_error)?;
                    let scopes = scopes_of(conn, &rows)?;
                    Ok((rows, scopes))
                })
            })
            .await?;
        assemble(rows, scopes)
    }

    async fn versions_since(&self, since: UnixTime) -> Result<Vec<(ClientId, UnixTime)>, StoreError> {
        let since = since.0;
        // Two narrow columns through the `updated_at` index: the change poller runs this every
        // half second, and reading whole rows (metadata with the software statement) there was
        // most of a node's memory during registration bursts.
        let rows: Vec<(String, i64)> = self
            .run(move |conn| {
                clients::table
                    .select((clients::client_id, clients::updated_at))
                    .filter(clients::updated_at.ge(since))
                    .load(conn)
                    .map_err(db_error)
            })
            .await?;
        Ok(rows.into_iter().map(|(id, at)| (ClientId::new(id), UnixTime(at))).collect())
    }

    async fn get_clients(&self, ids: &[ClientId]) -> Result<Vec<ClientRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        let (rows, scopes) = self
            .run(move |conn| {
                // One snapshot for both queries, so that rows and scopes agree.
                transaction(conn, Tx::Read, |conn| {
                    let rows = clients::table
                        .select(ClientRow::as_select())
                        .filter(clients::client_id.eq_any(ids.clone()))
                        .load(conn)
                        .map_err(db_error)?;
                    let scopes = client_scopes::table
                        .select(ScopeRow::as_select())
                        .filter(client_scopes::client_id.eq_any(ids))
                        .load(conn)
                        .map_err(db_error)?;
                    Ok((rows, scopes))
                })
            })
            .await?;
        assemble(rows, scopes)
    }
}
