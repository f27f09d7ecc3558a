//! The key-encryption key (KEK) that protects signing keys at rest.
//!
//! A private JWK is stored as a compact JWE with `alg: dir` and `enc: A256GCM`: a standard,
//! authenticated format, so a changed byte in the database is detected at load instead of
//! producing a wrong key. The JWE `kid` names the KEK (a hash of it, never the key), so a
//! server started with the wrong KEK says so plainly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::{Dir, JweHeader};
use josekit::jwk::Jwk;
use sha2::{Digest, Sha256};

use crate::JoseError;

#[derive(Clone)]
pub struct KeyEncryptionKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("KeyEncryptionKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl KeyEncryptionKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let id = format!("kek-{}", &URL_SAFE_NO_PAD.encode(digest)[..12]);
        KeyEncryptionKey { key, id }
    }

    /// Parses the text form: 32 bytes, base64url without padding (43 characters). Surrounding
    /// whitespace (a trailing newline in a file) is ignored.
    pub fn parse(text: &str) -> Result<Self, JoseError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
            JoseError::InvalidKek("expected 32 bytes as base64url without padding (43 characters)".into())
        })?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| JoseError::InvalidKek(format!("expected 32 bytes, got {}", v.len())))?;
        Ok(Self::from_bytes(key))
    }

    /// The text form of a new random KEK.
    pub fn encode(key: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(key)
    }

    /// A non-secret identifier of this KEK.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn encrypt_jwk(&self, jwk: &Jwk) -> Result<String, JoseError> {
        let encrypter = Dir.encrypter_from_bytes(self.key).map_err(|e| JoseError::InvalidKek(e.to_string()))?;
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_key_id(self.id.clone());
        let plaintext = serde_json::to_vec(jwk.as_ref()).map_err(|e| JoseError::InvalidKey(e.to_string()))?;
        josekit::jwe::serialize_compact(&plaintext, &header, &encrypter).map_err(|e| JoseError::Sign(e.to_string()))
    }

    pub fn decrypt_jwk(&self, jwe: &str) -> Result<Jwk, JoseError> {
        let decrypter = Dir.decrypter_from_bytes(self.key).map_err(|e| JoseError::InvalidKek(e.to_string()))?;
        let (plaintext, header) = josekit::jwe::deserialize_compact(jwe, &decrypter)
            .map_err(|e| JoseError::Decrypt(format!("{e}; this server's key-encryption key is {}", self.id)))?;
        if header.key_id() != Some(self.id.as_str()) {
            return Err(JoseError::Decrypt(format!(
                "the key was encrypted under {:?}, this server's key-encryption key is {}",
                header.key_id(),
                self.id
            )));
        }
        Jwk::from_bytes(&plaintext).map_err(|e| JoseError::Decrypt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate;
    use tessera_core::KeyId;
    use tessera_core::keys::SigningAlg;

    #[test]
    fn round_trip_and_tamper_detection() {
        let kek = KeyEncryptionKey::from_bytes([7u8; 32]);
        let km = generate(SigningAlg::ES256, KeyId::new("k1")).unwrap();
        let jwe = kek.encrypt_jwk(&km.private_jwk).unwrap();
        assert!(!jwe.contains(km.private_jwk.parameter("d").unwrap().as_str().unwrap()));
        let back = kek.decrypt_jwk(&jwe).unwrap();
        assert_eq!(back.as_ref(), km.private_jwk.as_ref());

        // One changed character in the ciphertext is detected (GCM tag).
        let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
        let ct = &mut parts[3];
        let flipped = if ct.starts_with('A') { "B" } else { "A" };
        ct.replace_range(0..1, flipped);
        assert!(kek.decrypt_jwk(&parts.join(".")).is_err());

        // Another KEK cannot read it, and the error names this server's KEK id.
        let other = KeyEncryptionKey::from_bytes([8u8; 32]);
        let err = other.decrypt_jwk(&jwe).unwrap_err().to_string();
        assert!(err.contains(other.id()), "{err}");
    }

    #[test]
    fn parse_rejects_wrong_lengths_and_alphabets() {
        assert!(KeyEncryptionKey::parse(&KeyEncryptionKey::encode(&[1u8; 32])).is_ok());
        assert!(KeyEncryptionKey::parse(&format!("{}\n", KeyEncryptionKey::encode(&[1u8; 32]))).is_ok());
        assert!(KeyEncryptionKey::parse("c2hvcnQ").is_err());
        assert!(KeyEncryptionKey::parse("not base64 !!").is_err());
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let kek = KeyEncryptionKey::from_bytes([0xAB; 32]);
        let dbg = format!("{kek:?}");
        assert!(!dbg.contains("171") && !dbg.contains(&KeyEncryptionKey::encode(&[0xAB; 32])));
    }
}
