//! Signing algorithms, the key-rotation timeline, and the signing seam.
//!
//! Rotation is decided by timestamps alone, so every node reaches the same answer without
//! talking to the others: a key signs from its `activates_at` until the next key activates; it is
//! published from its creation (pre-publication: resource servers have fetched it before the
//! first token signed with it arrives) until every token it signed has expired.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{KeyId, UnixTime};

/// The JWS algorithms FAPI 2.0 allows (5.4.1-1). RS256 and `none` are not representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    PS256,
    EdDSA,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm {0:?}: only PS256, ES256 and EdDSA are allowed (FAPI 2.0 §5.4.1)")]
pub struct UnsupportedAlg(pub String);

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::PS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnsupportedAlg> {
        match s {
            "ES256" => Ok(SigningAlg::ES256),
            "PS256" => Ok(SigningAlg::PS256),
            "EdDSA" => Ok(SigningAlg::EdDSA),
            other => Err(UnsupportedAlg(other.to_owned())),
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public, timing part of a stored signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTimeline {
    pub kid: KeyId,
    pub alg: SigningAlg,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// The key new tokens are signed with.
    Active,
    /// No longer signing since `since`; still published while tokens it signed may be alive.
    Retired { since: UnixTime },
    /// Every token it signed has expired: no longer published.
    Expired { since: UnixTime },
}

impl KeyState {
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired { .. } => "retired",
            KeyState::Expired { .. } => "expired",
        }
    }

    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Expired { .. })
    }
}

/// How long a key is announced before it signs, and how long it stays published after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    pub prepublication_secs: i64,
    /// The longest a token may live, plus the time nodes may take to notice an activation.
    pub retention_secs: i64,
}

/// Orders keys by activation and gives each its state at `now`.
pub fn classify(keys: &[KeyTimeline], now: UnixTime, policy: RotationPolicy) -> Vec<(KeyTimeline, KeyState)> {
    let mut sorted: Vec<KeyTimeline> = keys.to_vec();
    sorted.sort_by(|a, b| {
        (a.activates_at, a.created_at, a.kid.as_str()).cmp(&(b.activates_at, b.created_at, b.kid.as_str()))
    });
    let active_idx = sorted.iter().rposition(|k| k.activates_at <= now);
    sorted
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let state = match active_idx {
                Some(a) if i == a => KeyState::Active,
                Some(a) if i < a => {
                    // Retired when the following key took over.
                    let since = sorted[i + 1].activates_at;
                    if since.plus(policy.retention_secs) <= now {
                        KeyState::Expired { since: since.plus(policy.retention_secs) }
                    } else {
                        KeyState::Retired { since }
                    }
                }
                _ => KeyState::Pending,
            };
            (k.clone(), state)
        })
        .collect()
}

/// When a key created now should start signing: after the pre-publication period, and after any
/// key already waiting, so that two quick rotations still activate in order.
pub fn next_activation(keys: &[KeyTimeline], now: UnixTime, policy: RotationPolicy) -> UnixTime {
    let earliest = now.plus(policy.prepublication_secs);
    keys.iter().map(|k| k.activates_at.plus(1)).filter(|t| *t > earliest).max().unwrap_or(earliest)
}

/// A compact JWS produced by a [`TokenSigner`], with the key that made it.
#[derive(Clone, Debug)]
pub struct SignedJwt {
    pub compact: String,
    pub kid: KeyId,
    pub alg: SigningAlg,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("signing failed: {0}")]
    Crypto(String),
}

/// Verifies JWTs this server signed, with any published key. Implemented by the key service.
pub trait AccessTokenVerifier: Send + Sync {
    /// The claims of `token` if its signature verifies and its header `typ` is `typ`.
    fn verify(&self, token: &str, typ: &str) -> Option<Map<String, Value>>;
}

/// Gives the signer in force now (the key set changes on rotation).
pub trait SignerSource: Send + Sync {
    fn current(&self) -> std::sync::Arc<dyn TokenSigner>;
}

/// Signs JWT claims with the server's current key. Implemented in `tessera-jose`.
pub trait TokenSigner: Send + Sync {
    /// Signs `claims` with header `typ` (e.g. `at+jwt`) and the active key's `kid` and `alg`.
    fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<SignedJwt, SignError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy { prepublication_secs: 100, retention_secs: 50 };

    fn key(kid: &str, created: i64, activates: i64) -> KeyTimeline {
        KeyTimeline {
            kid: KeyId::new(kid),
            alg: SigningAlg::ES256,
            created_at: UnixTime(created),
            activates_at: UnixTime(activates),
        }
    }

    fn states(keys: &[KeyTimeline], now: i64) -> Vec<(String, &'static str)> {
        classify(keys, UnixTime(now), POLICY).into_iter().map(|(k, s)| (k.kid.as_str().to_owned(), s.label())).collect()
    }

    #[test]
    fn alg_parse_refuses_rs256_and_none() {
        // FAPI2 A.6-44
        assert_eq!(SigningAlg::parse("ES256"), Ok(SigningAlg::ES256));
        assert!(SigningAlg::parse("RS256").is_err());
        assert!(SigningAlg::parse("none").is_err());
        assert!(SigningAlg::parse("es256").is_err());
    }

    #[test]
    fn rotation_walks_pending_active_retired_expired() {
        let keys = vec![key("a", 0, 0), key("b", 1000, 1100)];
        assert_eq!(states(&keys, 1050), vec![("a".into(), "active"), ("b".into(), "pending")]);
        assert_eq!(states(&keys, 1100), vec![("a".into(), "retired"), ("b".into(), "active")]);
        assert_eq!(states(&keys, 1149), vec![("a".into(), "retired"), ("b".into(), "active")]);
        assert_eq!(states(&keys, 1150), vec![("a".into(), "expired"), ("b".into(), "active")]);
    }

    #[test]
    fn only_pending_keys_means_nothing_signs() {
        let keys = vec![key("a", 0, 10)];
        assert_eq!(states(&keys, 5), vec![("a".into(), "pending")]);
    }

    #[test]
    fn next_activation_respects_prepublication_and_queue() {
        let keys = vec![key("a", 0, 0)];
        assert_eq!(next_activation(&keys, UnixTime(1000), POLICY), UnixTime(1100));
        let keys = vec![key("a", 0, 0), key("b", 1000, 1100)];
        assert_eq!(next_activation(&keys, UnixTime(1010), POLICY), UnixTime(1110));
        assert_eq!(next_activation(&keys, UnixTime(1000), POLICY), UnixTime(1101));
    }

    #[test]
    fn published_set_excludes_expired() {
        let keys = vec![key("a", 0, 0), key("b", 10, 20), key("c", 200, 300)];
        let published: Vec<_> = classify(&keys, UnixTime(250), POLICY)
            .into_iter()
            .filter(|(_, s)| s.is_published())
            .map(|(k, _)| k.kid.as_str().to_owned())
            .collect();
        assert_eq!(published, vec!["b", "c"]);
    }
}
