use async_trait::async_trait;
use tessera_core::audit::{AuditEvent, AuditRecord};
use tessera_core::client::ClientRecord;
use tessera_core::{ClientId, UnixTime};

use crate::StoreError;

/// Registered clients. Every write carries the audit events that explain it, and the store
/// commits both in one transaction: there is no client change the audit log does not know, and
/// no audit record of a change that did not happen.
///
/// Contract (checked by `contract::client_store`):
/// - `insert_client` of an existing `client_id` fails with [`StoreError::Conflict`]; so does a
///   second client with the same non-null `ssa_jti` (the message then contains `ssa_jti`); on
///   any failure nothing of the client or its audit events is stored;
/// - `update_client` replaces the whole record (metadata, scopes, status, dates) and fails with
///   [`StoreError::NotFound`] for an unknown id;
/// - `get_client` returns exactly what was last written, scopes in insertion order;
/// - `list_clients_page` returns at most `limit` clients whose `client_id` sorts after `after`
///   (from the first when `None`), in `client_id` order, each exactly as `get_client` would;
///   following the last id of each page visits every client once;
/// - `versions_since` lists exactly the ids and `updated_at` of the clients `changed_since`
///   returns; `get_clients` returns the known clients among `ids`, whole;
/// - `touch_last_used` only ever moves `last_used_at` forward, ignores unknown ids, and does not
///   touch `updated_at` (it is usage, not a change).
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn insert_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError>;
    async fn update_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError>;
    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// One page of clients in `client_id` order, after `after` (keyset paging): how a node loads
    /// its cache without holding every full record at once.
    async fn list_clients_page(&self, after: Option<&ClientId>, limit: usize) -> Result<Vec<ClientRecord>, StoreError>;
    async fn touch_last_used(&self, uses: &[(ClientId, UnixTime)]) -> Result<(), StoreError>;
    /// Clients whose `updated_at` is at or after `since` (how a node picks up changes made by
    /// another process, e.g. the admin command line, without a restart).
    async fn changed_since(&self, since: UnixTime) -> Result<Vec<ClientRecord>, StoreError>;
    /// `(client_id, updated_at)` of the clients `changed_since(since)` would return: what the
    /// change poller reads every half second, a few bytes per client, so that it reads whole
    /// only the clients it does not hold yet (see `ClientCache::poll_changes`).
    async fn versions_since(&self, since: UnixTime) -> Result<Vec<(ClientId, UnixTime)>, StoreError>;
    /// The clients with these ids, each as `get_client` returns it, in no particular order;
    /// unknown ids are left out.
    async fn get_clients(&self, ids: &[ClientId]) -> Result<Vec<ClientRecord>, StoreError>;
}

/// A named lease, so that one node at a time runs a job (the lifecycle sweeper).
///
/// Contract: `try_lock` returns true when `holder` now holds `name` until `now + ttl` — because
/// nobody held it, the lease expired, or `holder` already held it (renewal) — and false while
/// another holder's lease runs.
#[async_trait]
pub trait LockStore: Send + Sync {
    async fn try_lock(&self, name: &str, holder: &str, ttl_secs: i64, now: UnixTime) -> Result<bool, StoreError>;
}

/// The append-only, hash-chained audit log.
///
/// Contract (checked by `contract::audit_log`):
/// - `append` assigns consecutive sequence numbers starting at 1 and chains each record to the
///   previous one with [`tessera_core::audit::chain_hash`], atomically for the whole batch, even
///   when called concurrently;
/// - records are never updated or deleted;
/// - `read` returns records with `seq > after` in sequence order, at most `limit`.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    async fn read(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
}

/// One-time identifiers (`jti` of client assertions and software statements).
///
/// Contract: `first_use` returns true the first time a `(namespace, id)` pair is seen and false
/// every later time until `expires_at` has passed; it is atomic under concurrency (exactly one
/// of many simultaneous callers gets true).
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    async fn first_use(
        &self,
        namespace: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// Revoked access tokens (RFC 7009).
///
/// Contract (checked by `contract::token_store`):
/// - `revoke` records the `jti` with the token's expiry and appends `audit` in one transaction;
///   revoking the same `jti` twice is not an error (the second call changes nothing but the
///   audit trail);
/// - `revoked` lists every revoked `jti` whose token has not yet expired at `now`;
/// - `purge_expired` deletes entries whose token expired before `now` (they can no longer be
///   presented as valid, so there is nothing left to refuse).
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn revoke(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: UnixTime,
        now: UnixTime,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn revoked(&self, now: UnixTime) -> Result<Vec<(String, UnixTime)>, StoreError>;
    /// Whether `jti` is recorded as revoked (the SQL check a node falls back to when it may have
    /// missed change notices).
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError>;
}
