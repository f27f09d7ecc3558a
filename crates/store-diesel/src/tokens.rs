//! `TokenStore`: revoked access tokens, kept until their natural expiry.

use async_trait::async_trait;
use diesel::prelude::*;
use tessera_core::audit::AuditEvent;
use tessera_core::{ClientId, UnixTime};
use tessera_store::{LockStore, StoreError, TokenStore};

use crate::audit::append_in_tx;
use crate::schema::{locks, revoked_tokens};
use crate::{DieselStore, Tx, db_error, transaction};

#[async_trait]
impl TokenStore for DieselStore {
    async fn revoke(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: UnixTime,
        now: UnixTime,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (jti, client, audit) = (jti.to_owned(), client.to_string(), audit.to_vec());
        self.run(move |conn| {
            transaction(conn, Tx::Write, |conn| {
                // Idempotent: a second revocation of the same token adds only its audit record.
                // (A portable "insert if absent": the write transaction serialises writers.)
                let exists: i64 = revoked_tokens::table
                    .filter(revoked_tokens::jti.eq(&jti))
                    .count()
                    .get_result(conn)
                    .map_err(db_error)?;
                if exists == 0 {
                    diesel::insert_into(revoked_tokens::table)
                        .values((
                            revoked_tokens::jti.eq(&jti),
                            revoked_tokens::client_id.eq(&client),
                            revoked_tokens::expires_at.eq(expires_at.0),
                            revoked_tokens::revoked_at.eq(now.0),
                        ))
                        .execute(conn)
                        .map_err(db_error)?;
                }
                append_in_tx(conn, &audit)
            })
        })
        .await
    }

    async fn revoked(&self, now: UnixTime) -> Result<Vec<(String, UnixTime)>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .run(move |conn| {
                revoked_tokens::table
                    .select((revoked_tokens::jti, revoked_tokens::expires_at))
                    .filter(revoked_tokens::expires_at.gt(now.0))
                    .load(conn)
                    .map_err(db_error)
            })
            .await?;
        Ok(rows.into_iter().map(|(j, e)| (j, UnixTime(e))).collect())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let jti = jti.to_owned();
        let n: i64 = self
            .run(move |conn| {
                revoked_tokens::table.filter(revoked_tokens::jti.eq(&jti)).count().get_result(conn).map_err(db_error)
            })
            .await?;
        Ok(n > 0)
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let n = self
            .run(move |conn| {
                diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now.0)))
                    .execute(conn)
                    .map_err(db_error)
            })
            .await?;
        Ok(n as u64)
    }
}

#[async_trait]
impl LockStore for DieselStore {
    async fn try_lock(&self, name: &str, holder: &str, ttl_secs: i64, now: UnixTime) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let result = self
            .run(move |conn| {
                transaction(conn, Tx::Write, |conn| {
                    let current: Option<(String, i64)> = locks::table
                        .select((locks::holder, locks::expires_at))
                        .filter(locks::name.eq(&name))
                        .first(conn)
                        .optional()
                        .map_err(db_error)?;
                    match current {
                        Some((h, until)) if h != holder && until > now.0 => Ok(false),
                        Some(_) => {
                            diesel::update(locks::table.filter(locks::name.eq(&name)))
                                .set((locks::holder.eq(&holder), locks::expires_at.eq(now.0 + ttl_secs)))
                                .execute(conn)
                                .map_err(db_error)?;
                            Ok(true)
                        }
                        None => {
                            diesel::insert_into(locks::table)
                                .values((
                                    locks::name.eq(&name),
                                    locks::holder.eq(&holder),
                                    locks::expires_at.eq(now.0 + ttl_secs),
                                ))
                                .execute(conn)
                                .map_err(db_error)?;
                            Ok(true)
                        }
                    }
                })
            })
            .await;
        match result {
            // Two nodes inserting the first lease at once (PostgreSQL, READ COMMITTED): the
            // unique key lets one win; the other simply does not hold it.
            Err(StoreError::Conflict(_)) => Ok(false),
            other => other,
        }
    }
}
