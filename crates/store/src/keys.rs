use async_trait::async_trait;
use tessera_core::keys::{KeyTimeline, SigningAlg};
use tessera_core::{KeyId, UnixTime};

use crate::StoreError;

/// A signing key as stored: the public JWK in clear, the private JWK only as a JWE encrypted with
/// the key-encryption key from configuration (the store never sees the private key in clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: KeyId,
    pub alg: SigningAlg,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
    /// The public JWK as JSON text, with `kid`, `alg` and `use` set.
    pub public_jwk: String,
    /// The private JWK, encrypted (compact JWE, `dir` + `A256GCM`).
    pub private_jwe: String,
}

impl StoredKey {
    pub fn timeline(&self) -> KeyTimeline {
        KeyTimeline {
            kid: self.kid.clone(),
            alg: self.alg,
            created_at: self.created_at,
            activates_at: self.activates_at,
        }
    }
}

/// Durable signing keys.
///
/// Contract (checked by `contract::key_store`):
/// - `insert` of a `kid` that exists fails with [`StoreError::Conflict`] and changes nothing;
/// - keys are never updated or deleted: rotation only adds keys, and a key's state is derived
///   from its timestamps, so every node agrees on it without coordination;
/// - `list` returns every key ever inserted, in any order.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
}
