//! `KeyStore` on SQL.

use async_trait::async_trait;
use diesel::prelude::*;
use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, UnixTime};
use tessera_store::{KeyStore, StoreError, StoredKey};

use crate::schema::signing_keys;
use crate::{DieselStore, db_error};

/// A `signing_keys` row exactly as stored. Decoding into [`StoredKey`] is a separate, fallible
/// step: an `alg` we do not know is corrupt data, not a reason to fail the whole query.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
struct KeyRow {
    kid: String,
    alg: String,
    created_at: i64,
    activates_at: i64,
    public_jwk: String,
    private_jwe: String,
}

impl From<&StoredKey> for KeyRow {
    fn from(k: &StoredKey) -> Self {
        KeyRow {
            kid: k.kid.as_str().to_owned(),
            alg: k.alg.as_str().to_owned(),
            created_at: k.created_at.seconds(),
            activates_at: k.activates_at.seconds(),
            public_jwk: k.public_jwk.clone(),
            private_jwe: k.private_jwe.clone(),
        }
    }
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let alg =
            SigningAlg::parse(&row.alg).map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", row.kid)))?;
        Ok(StoredKey {
            kid: KeyId::new(row.kid),
            alg,
            created_at: UnixTime(row.created_at),
            activates_at: UnixTime(row.activates_at),
            public_jwk: row.public_jwk,
            private_jwe: row.private_jwe,
        })
    }
}

#[async_trait]
impl KeyStore for DieselStore {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let row = KeyRow::from(key);
        // A plain INSERT: the primary key turns a duplicate `kid` into a unique violation
        // (mapped to `Conflict`) and the existing row stays as it was. No read-then-write race.
        self.run(move |conn| {
            diesel::insert_into(signing_keys::table).values(&row).execute(conn).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = self
            .run(|conn| {
                signing_keys::table.select(KeyRow::as_select()).order(signing_keys::kid).load(conn).map_err(db_error)
            })
            .await?;
        rows.into_iter().map(StoredKey::try_from).collect()
    }
}
