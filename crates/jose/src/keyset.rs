//! The server's key set at one moment: what `/jwks` publishes and which key signs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsSigner, PS256};
use serde_json::{Map, Value, json};
use tessera_core::keys::{
    KeyState, KeyTimeline, RotationPolicy, SignError, SignedJwt, SigningAlg, TokenSigner, classify,
};
use tessera_core::{KeyId, UnixTime};

use crate::native::NativeSigner;
use crate::verify::Verifier;
use crate::{JoseError, KeyEncryptionKey};

/// A stored key as the key set needs it: its timeline, its public JWK text and its encrypted
/// private JWK. Only the active key is ever decrypted.
pub struct LoadedKey {
    pub timeline: KeyTimeline,
    pub public_jwk: String,
    pub private_jwe: String,
}

struct ActiveKey {
    kid: KeyId,
    alg: SigningAlg,
    signer: Signer,
    /// The encoded JOSE header, the same for every token of a given `typ`: built once.
    headers: std::sync::RwLock<Vec<(String, String)>>,
}

/// The active private key: aws-lc-rs for ES256 and EdDSA (every token is signed here, see
/// `native.rs`), josekit for PS256.
pub(crate) enum Signer {
    Native(NativeSigner),
    Jose(Box<dyn JwsSigner>),
}

impl Signer {
    pub(crate) fn for_jwk(alg: SigningAlg, jwk: &Jwk) -> Result<Signer, JoseError> {
        Ok(match NativeSigner::from_jwk(alg, jwk)? {
            Some(native) => Signer::Native(native),
            None => Signer::Jose(signer_for(alg, jwk)?),
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Signer::Native(s) => s.sign(message).map_err(SignError::Crypto),
            Signer::Jose(s) => s.sign(message).map_err(|e| SignError::Crypto(e.to_string())),
        }
    }
}

/// An immutable snapshot; the server swaps in a new one when keys change or a key activates.
pub struct KeySet {
    active: Option<ActiveKey>,
    published: Vec<Jwk>,
    /// One ready verifier per published key: verification on the hot path (introspection,
    /// revocation) must not rebuild key objects per request.
    verifiers: Vec<(String, SigningAlg, Verifier)>,
    jwks_json: String,
    states: Vec<(KeyTimeline, KeyState)>,
}

pub(crate) fn signer_for(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, JoseError> {
    let err = |e: josekit::JoseError| JoseError::InvalidKey(e.to_string());
    Ok(match alg {
        SigningAlg::ES256 => Box::new(ES256.signer_from_jwk(jwk).map_err(err)?),
        SigningAlg::PS256 => Box::new(PS256.signer_from_jwk(jwk).map_err(err)?),
        SigningAlg::EdDSA => Box::new(EdDSA.signer_from_jwk(jwk).map_err(err)?),
    })
}

impl KeySet {
    pub fn build(
        keys: impl IntoIterator<Item = LoadedKey>,
        kek: &KeyEncryptionKey,
        now: UnixTime,
        policy: RotationPolicy,
    ) -> Result<KeySet, JoseError> {
        let keys: Vec<LoadedKey> = keys.into_iter().collect();
        let timelines: Vec<KeyTimeline> = keys.iter().map(|k| k.timeline.clone()).collect();
        let states = classify(&timelines, now, policy);
        let mut published = Vec::new();
        let mut verifiers = Vec::new();
        let mut active = None;
        for (timeline, state) in &states {
            let Some(key) = keys.iter().find(|k| k.timeline.kid == timeline.kid) else {
                continue;
            };
            if state.is_published() {
                let jwk = Jwk::from_bytes(key.public_jwk.as_bytes())
                    .map_err(|e| JoseError::InvalidKey(format!("public key {}: {e}", timeline.kid)))?;
                // A public JWK with private members would leak the key through /jwks.
                if jwk.as_ref().contains_key("d") {
                    return Err(JoseError::InvalidKey(format!(
                        "stored public key {} contains private members",
                        timeline.kid
                    )));
                }
                if let Some(v) = crate::verify::verifier_for(timeline.alg, &jwk) {
                    verifiers.push((timeline.kid.as_str().to_owned(), timeline.alg, v));
                }
                published.push(jwk);
            }
            if *state == KeyState::Active {
                let private = kek.decrypt_jwk(&key.private_jwe)?;
                active = Some(ActiveKey {
                    kid: timeline.kid.clone(),
                    alg: timeline.alg,
                    signer: Signer::for_jwk(timeline.alg, &private)?,
                    headers: std::sync::RwLock::new(Vec::new()),
                });
            }
        }
        let jwks_json =
            json!({ "keys": published.iter().map(|k| Value::Object(k.as_ref().clone())).collect::<Vec<_>>() })
                .to_string();
        Ok(KeySet { active, published, verifiers, jwks_json, states })
    }

    /// `{"keys":[...]}`: public keys only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    pub fn published(&self) -> &[Jwk] {
        &self.published
    }

    /// Verifies a JWT this server signed (any published key, chosen by `kid`), with the
    /// expected `typ`. Claims are not checked here.
    pub fn verify(&self, token: &str, typ: &str) -> Result<crate::VerifiedJwt, crate::VerifyError> {
        crate::verify::verify_with(token, Some(typ), |kid, alg| {
            self.verifiers.iter().find(|(k, a, _)| Some(k.as_str()) == kid && *a == alg).map(|(_, _, v)| v)
        })
    }

    /// Whether the key `kid` is published (and so verifies) in this set.
    pub fn publishes(&self, kid: &str) -> bool {
        self.verifiers.iter().any(|(k, _, _)| k == kid)
    }

    pub fn active_kid(&self) -> Option<&KeyId> {
        self.active.as_ref().map(|a| &a.kid)
    }

    pub fn states(&self) -> &[(KeyTimeline, KeyState)] {
        &self.states
    }

    /// The next moment the set must be rebuilt because a key changes state by time alone.
    pub fn next_transition(&self, now: UnixTime, policy: RotationPolicy) -> Option<UnixTime> {
        self.states
            .iter()
            .filter_map(|(t, s)| match s {
                KeyState::Pending => Some(t.activates_at),
                KeyState::Retired { since } => Some(since.plus(policy.retention_secs)),
                _ => None,
            })
            .filter(|t| *t > now)
            .min()
    }
}

/// Signs `claims` with a private JWK (`kid` taken from the key): for tools and tests that act as
/// a directory or a client, not for the server's own tokens.
pub fn sign_with_jwk(
    alg: SigningAlg,
    private_jwk: &Jwk,
    typ: &str,
    claims: &Map<String, Value>,
) -> Result<String, JoseError> {
    let signer = Signer::for_jwk(alg, private_jwk)?;
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), json!(alg.as_str()));
    header.insert("typ".into(), json!(typ));
    if let Some(kid) = private_jwk.key_id() {
        header.insert("kid".into(), json!(kid));
    }
    let header = serde_json::to_vec(&Value::Object(header)).map_err(|e| JoseError::Sign(e.to_string()))?;
    compact(&signer, &URL_SAFE_NO_PAD.encode(header), claims).map_err(|e| JoseError::Sign(e.to_string()))
}

/// `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)` (RFC 7515 §7.1), the header
/// already encoded.
fn compact(signer: &Signer, encoded_header: &str, claims: &Map<String, Value>) -> Result<String, SignError> {
    let payload = serde_json::to_vec(claims).map_err(|e| SignError::Crypto(e.to_string()))?;
    let mut out = String::with_capacity(encoded_header.len() + payload.len() * 4 / 3 + 100);
    out.push_str(encoded_header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let signature = signer.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

impl ActiveKey {
    /// The encoded header for `typ`, built on first use. Only a handful of `typ`s exist
    /// (`at+jwt`, `token-introspection+jwt`, `JWT`), so the list stays tiny.
    fn encoded_header(&self, typ: &str) -> Result<String, SignError> {
        let cached = |headers: &Vec<(String, String)>| headers.iter().find(|(t, _)| t == typ).map(|(_, h)| h.clone());
        if let Some(h) = self.headers.read().ok().and_then(|g| cached(&g)) {
            return Ok(h);
        }
        let header = json!({ "alg": self.alg.as_str(), "typ": typ, "kid": self.kid.as_str() });
        let header = serde_json::to_vec(&header).map_err(|e| SignError::Crypto(e.to_string()))?;
        let encoded = URL_SAFE_NO_PAD.encode(header);
        if let Ok(mut g) = self.headers.write()
            && g.len() < 16
            && cached(&g).is_none()
        {
            g.push((typ.to_owned(), encoded.clone()));
        }
        Ok(encoded)
    }
}

impl TokenSigner for KeySet {
    fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<SignedJwt, SignError> {
        let active = self.active.as_ref().ok_or(SignError::NoActiveKey)?;
        let compact = compact(&active.signer, &active.encoded_header(typ)?, claims)?;
        Ok(SignedJwt { compact, kid: active.kid.clone(), alg: active.alg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, verify_with_jwks};
    use base64::Engine;

    const POLICY: RotationPolicy = RotationPolicy { prepublication_secs: 60, retention_secs: 600 };

    fn loaded(kek: &KeyEncryptionKey, alg: SigningAlg, kid: &str, activates: i64) -> LoadedKey {
        let km = generate(alg, KeyId::new(kid)).unwrap();
        LoadedKey {
            timeline: KeyTimeline {
                kid: KeyId::new(kid),
                alg,
                created_at: UnixTime(0),
                activates_at: UnixTime(activates),
            },
            public_jwk: serde_json::to_string(km.public_jwk.as_ref()).unwrap(),
            private_jwe: kek.encrypt_jwk(&km.private_jwk).unwrap(),
        }
    }

    #[test]
    fn every_alg_signs_and_verifies_against_the_published_jwks() {
        let kek = KeyEncryptionKey::from_bytes([1; 32]);
        for alg in SigningAlg::ALL {
            let set = KeySet::build([loaded(&kek, alg, "k1", 0)], &kek, UnixTime(10), POLICY).unwrap();
            let mut claims = Map::new();
            claims.insert("sub".into(), json!("client-1"));
            let jwt = set.sign("at+jwt", &claims).unwrap();
            assert_eq!(jwt.alg, alg);
            let verified = verify_with_jwks(&jwt.compact, set.published(), Some("at+jwt")).unwrap();
            // The cached verifiers agree, refuse another typ, and refuse a changed payload.
            assert_eq!(set.verify(&jwt.compact, "at+jwt").unwrap().claims["sub"], "client-1");
            assert!(set.verify(&jwt.compact, "JWT").is_err());
            let mut parts: Vec<&str> = jwt.compact.split('.').collect();
            let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"client-2"}"#);
            parts[1] = &forged;
            assert!(set.verify(&parts.join("."), "at+jwt").is_err());
            assert_eq!(verified.claims["sub"], "client-1");
            assert_eq!(verified.header["kid"], "k1");
            // The JWKS text carries no private member.
            assert!(!set.jwks_json().contains("\"d\""));
        }
    }

    #[test]
    fn pending_key_is_published_but_does_not_sign() {
        let kek = KeyEncryptionKey::from_bytes([1; 32]);
        let set = KeySet::build(
            [loaded(&kek, SigningAlg::ES256, "old", 0), loaded(&kek, SigningAlg::EdDSA, "new", 100)],
            &kek,
            UnixTime(50),
            POLICY,
        )
        .unwrap();
        assert_eq!(set.published().len(), 2);
        assert_eq!(set.active_kid().unwrap().as_str(), "old");
        assert_eq!(set.sign("JWT", &Map::new()).unwrap().kid.as_str(), "old");
        assert_eq!(set.next_transition(UnixTime(50), POLICY), Some(UnixTime(100)));
    }

    #[test]
    fn no_active_key_cannot_sign() {
        let kek = KeyEncryptionKey::from_bytes([1; 32]);
        let set = KeySet::build([loaded(&kek, SigningAlg::ES256, "k", 100)], &kek, UnixTime(50), POLICY).unwrap();
        assert!(matches!(set.sign("JWT", &Map::new()), Err(SignError::NoActiveKey)));
    }

    #[test]
    fn wrong_kek_fails_to_build() {
        let kek = KeyEncryptionKey::from_bytes([1; 32]);
        let other = KeyEncryptionKey::from_bytes([2; 32]);
        let key = loaded(&kek, SigningAlg::ES256, "k", 0);
        assert!(KeySet::build([key], &other, UnixTime(5), POLICY).is_err());
    }
}
