//! Tokens whose signature this server has already checked, so that a gateway introspecting the
//! same access token again and again pays for the signature once.
//!
//! What is cached is only the outcome of the signature and `typ` check: "these exact bytes were
//! signed by key `kid`, and these are their claims". Everything that can change while a token
//! lives (revocation, the client's suspension, expiry) is still decided on every call by the
//! caller. The key is SHA-256 over the `typ` and the whole token, so a token differing in any
//! byte (another payload under a cached signature) is a different entry and is verified. An
//! entry is served only while its key is still published (a key withdrawn from the JWKS takes
//! its tokens with it at once) and only until the token's `exp`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tessera_core::UnixTime;

struct Entry {
    kid: Box<str>,
    exp: i64,
    claims: Arc<Map<String, Value>>,
}

/// A bounded map from token digest to verified claims. `capacity` 0 disables it.
pub struct VerifiedTokenCache {
    capacity: usize,
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn digest(token: &str, typ: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(typ.as_bytes());
    // A separator that cannot occur in a `typ`, so ("a", "b.c") and ("a.b", "c") differ.
    h.update([0u8]);
    h.update(token.as_bytes());
    h.finalize().into()
}

impl VerifiedTokenCache {
    pub fn new(capacity: usize) -> VerifiedTokenCache {
        VerifiedTokenCache { capacity, map: Mutex::new(HashMap::new()) }
    }

    /// The claims of `token` if it was verified with header `typ` by a key that
    /// `still_published(kid)` confirms, and it has not expired at `now`.
    pub fn get(
        &self,
        token: &str,
        typ: &str,
        now: UnixTime,
        still_published: impl Fn(&str) -> bool,
    ) -> Option<Map<String, Value>> {
        if self.capacity == 0 {
            return None;
        }
        let key = digest(token, typ);
        let claims = {
            let map = self.map.lock().ok()?;
            let entry = map.get(&key)?;
            if entry.exp <= now.0 || !still_published(&entry.kid) {
                return None;
            }
            entry.claims.clone()
        };
        // Cloned outside the lock: the map is shared by every worker.
        Some(claims.as_ref().clone())
    }

    /// Records a successful verification. Tokens without an integer `exp` or a `kid`, or already
    /// expired, are not kept. When full, expired entries go first; if none has expired the map
    /// is emptied (an entry is only a saved signature check, so losing it costs one verification).
    pub fn insert(&self, token: &str, typ: &str, kid: &str, claims: &Map<String, Value>, now: UnixTime) {
        if self.capacity == 0 {
            return;
        }
        let Some(exp) = claims.get("exp").and_then(Value::as_i64) else { return };
        if exp <= now.0 {
            return;
        }
        let key = digest(token, typ);
        let entry = Entry { kid: kid.into(), exp, claims: Arc::new(claims.clone()) };
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.exp > now.0);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, entry);
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: i64) -> Map<String, Value> {
        json!({ "sub": "c", "exp": exp }).as_object().unwrap().clone()
    }

    #[test]
    fn serves_the_same_token_until_exp_while_its_key_is_published() {
        let cache = VerifiedTokenCache::new(10);
        cache.insert("h.p.s", "at+jwt", "k1", &claims(100), UnixTime(10));
        assert_eq!(cache.get("h.p.s", "at+jwt", UnixTime(50), |k| k == "k1").unwrap()["sub"], "c");
        // Another typ, another byte, an expired token, a withdrawn key: not served.
        assert!(cache.get("h.p.s", "JWT", UnixTime(50), |_| true).is_none());
        assert!(cache.get("h.p.t", "at+jwt", UnixTime(50), |_| true).is_none());
        assert!(cache.get("h.p.s", "at+jwt", UnixTime(100), |_| true).is_none());
        assert!(cache.get("h.p.s", "at+jwt", UnixTime(50), |k| k == "k2").is_none());
    }

    #[test]
    fn typ_and_token_are_separated_in_the_digest() {
        assert_ne!(digest("b.c", "a"), digest("c", "a.b"));
    }

    #[test]
    fn bounded_expired_first_and_disabled_at_zero() {
        let cache = VerifiedTokenCache::new(3);
        cache.insert("a", "t", "k", &claims(20), UnixTime(10));
        cache.insert("b", "t", "k", &claims(100), UnixTime(10));
        cache.insert("c", "t", "k", &claims(100), UnixTime(10));
        // Full: at 30 "a" has expired and makes room.
        cache.insert("d", "t", "k", &claims(100), UnixTime(30));
        assert_eq!(cache.len(), 3);
        assert!(cache.get("b", "t", UnixTime(30), |_| true).is_some());
        // Full with nothing expired: emptied, then the new entry.
        cache.insert("e", "t", "k", &claims(100), UnixTime(30));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("e", "t", UnixTime(30), |_| true).is_some());
        // No exp, or already expired: not kept.
        cache.insert("f", "t", "k", &json!({"sub": "x"}).as_object().unwrap().clone(), UnixTime(30));
        cache.insert("g", "t", "k", &claims(30), UnixTime(30));
        assert_eq!(cache.len(), 1);

        let off = VerifiedTokenCache::new(0);
        off.insert("a", "t", "k", &claims(100), UnixTime(10));
        assert!(off.get("a", "t", UnixTime(10), |_| true).is_none());
        assert!(off.is_empty());
    }
}
