//! ES256 and EdDSA with aws-lc-rs, for the hot paths: signing every access token and verifying
//! every introspected one (docs/adr/0005-native-signatures.md).
//!
//! Why not josekit here: josekit goes through OpenSSL's EVP layer and sets up a context per call;
//! measured on the project's machine, an ES256 signature through josekit costs 26 µs against
//! 16 µs with aws-lc-rs (which rustls links already), and a verification 67 µs against ~52 µs.
//! josekit stays the JOSE library for everything else (key generation, JWK parsing, JWE at rest,
//! PS256), and the tests verify what this module signs with josekit and the reverse, so the two
//! stay interchangeable.
//!
//! Only the raw signature is done here; the JWS compact serialisation around it is ours
//! (`keyset.rs`, `verify.rs`): base64url of the header and payload joined by `.`, the signature
//! over those bytes, ES256 as the fixed-width `R || S` of RFC 7518 §3.4.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jwk::alg::ed::EdKeyPair;
use josekit::jwk::{Jwk, KeyPair};
use tessera_core::keys::SigningAlg;

use crate::JoseError;

/// A private key ready to sign, for the algorithms aws-lc-rs serves here.
pub(crate) enum NativeSigner {
    Es256 { key: EcdsaKeyPair, rng: SystemRandom },
    EdDsa(Ed25519KeyPair),
}

/// A public key parsed once, verified against many times.
pub(crate) struct NativeVerifier(ParsedPublicKey);

/// A member of a JWK that holds a base64url-encoded byte string.
fn member(jwk: &Jwk, name: &str) -> Result<Vec<u8>, JoseError> {
    let text = jwk
        .parameter(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| JoseError::InvalidKey(format!("JWK member {name:?} is missing")))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| JoseError::InvalidKey(format!("JWK member {name:?} is not base64url")))
}

fn expect_member(jwk: &Jwk, name: &str, value: &str) -> Result<(), JoseError> {
    match jwk.parameter(name).and_then(|v| v.as_str()) {
        Some(v) if v == value => Ok(()),
        other => Err(JoseError::InvalidKey(format!("JWK {name} is {other:?}, expected {value:?}"))),
    }
}

/// The public key bytes aws-lc-rs expects: SEC 1 uncompressed point for P-256, the raw 32 bytes
/// for Ed25519. `x` and `y` must be exactly the field size (RFC 7518 §6.2.1.2).
fn public_bytes(alg: SigningAlg, jwk: &Jwk) -> Result<Vec<u8>, JoseError> {
    match alg {
        SigningAlg::ES256 => {
            expect_member(jwk, "kty", "EC")?;
            expect_member(jwk, "crv", "P-256")?;
            let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(JoseError::InvalidKey("P-256 coordinates must be 32 bytes".into()));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(point)
        }
        SigningAlg::EdDSA => {
            expect_member(jwk, "kty", "OKP")?;
            expect_member(jwk, "crv", "Ed25519")?;
            let x = member(jwk, "x")?;
            if x.len() != 32 {
                return Err(JoseError::InvalidKey("an Ed25519 public key is 32 bytes".into()));
            }
            Ok(x)
        }
        SigningAlg::PS256 => Err(JoseError::InvalidKey("PS256 is not served by the native module".into())),
    }
}

impl NativeSigner {
    /// `None` for algorithms this module does not serve (PS256: josekit signs those).
    /// The private JWK is read by josekit (a stored private JWK carries only `d`, the public
    /// point is derived from it) and handed over as PKCS#8, which aws-lc-rs checks again.
    pub(crate) fn from_jwk(alg: SigningAlg, jwk: &Jwk) -> Result<Option<NativeSigner>, JoseError> {
        let josekit_err = |e: josekit::JoseError| JoseError::InvalidKey(format!("{alg} private key: {e}"));
        let rejected = |e: aws_lc_rs::error::KeyRejected| JoseError::InvalidKey(format!("{alg} private key: {e}"));
        Ok(Some(match alg {
            SigningAlg::ES256 => {
                expect_member(jwk, "crv", "P-256")?;
                let pkcs8 = EcKeyPair::from_jwk(jwk).map_err(josekit_err)?.to_der_private_key();
                let key =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(rejected)?;
                NativeSigner::Es256 { key, rng: SystemRandom::new() }
            }
            SigningAlg::EdDSA => {
                expect_member(jwk, "crv", "Ed25519")?;
                let pkcs8 = EdKeyPair::from_jwk(jwk).map_err(josekit_err)?.to_der_private_key();
                NativeSigner::EdDsa(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(rejected)?)
            }
            SigningAlg::PS256 => return Ok(None),
        }))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            NativeSigner::Es256 { key, rng } => {
                key.sign(rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| "ES256 signing failed".to_owned())
            }
            NativeSigner::EdDsa(key) => {
                key.try_sign(message).map(|s| s.as_ref().to_vec()).map_err(|_| "EdDSA signing failed".to_owned())
            }
        }
    }
}

impl NativeVerifier {
    /// `Ok(None)` for PS256 (josekit verifies those); an error for a key that does not fit `alg`.
    pub(crate) fn from_jwk(alg: SigningAlg, jwk: &Jwk) -> Result<Option<NativeVerifier>, JoseError> {
        let algorithm: &'static dyn VerificationAlgorithm = match alg {
            SigningAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
            SigningAlg::EdDSA => &ED25519,
            SigningAlg::PS256 => return Ok(None),
        };
        let bytes = public_bytes(alg, jwk)?;
        let key = ParsedPublicKey::new(algorithm, bytes)
            .map_err(|e| JoseError::InvalidKey(format!("{alg} public key: {e}")))?;
        Ok(Some(NativeVerifier(key)))
    }

    /// Whether `signature` is valid over `message`. An ES256 signature must be the 64-byte
    /// `R || S` form (RFC 7518 §3.4); a DER-encoded one is refused, as JWS requires.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_sig(message, signature).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::generate;
    use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier};
    use tessera_core::KeyId;

    /// The two implementations must agree both ways, or tokens signed here would not verify at
    /// resource servers that use another JOSE library.
    #[test]
    fn native_and_josekit_agree_both_ways() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
            let km = generate(alg, KeyId::new("k")).unwrap();
            let native_signer = NativeSigner::from_jwk(alg, &km.private_jwk).unwrap().unwrap();
            let native_verifier = NativeVerifier::from_jwk(alg, &km.public_jwk).unwrap().unwrap();
            let (jose_signer, jose_verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match alg {
                SigningAlg::ES256 => (
                    Box::new(ES256.signer_from_jwk(&km.private_jwk).unwrap()),
                    Box::new(ES256.verifier_from_jwk(&km.public_jwk).unwrap()),
                ),
                _ => (
                    Box::new(EdDSA.signer_from_jwk(&km.private_jwk).unwrap()),
                    Box::new(EdDSA.verifier_from_jwk(&km.public_jwk).unwrap()),
                ),
            };
            let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjIn0";
            let native_sig = native_signer.sign(message).unwrap();
            assert_eq!(native_sig.len(), 64, "{alg}: fixed-width signature");
            jose_verifier.verify(message, &native_sig).unwrap();
            let jose_sig = jose_signer.sign(message).unwrap();
            assert!(native_verifier.verify(message, &jose_sig), "{alg}: josekit's signature verifies natively");
            // A changed message or signature does not verify.
            assert!(!native_verifier.verify(b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkIn0", &native_sig));
            let mut bent = native_sig.clone();
            bent[10] ^= 1;
            assert!(!native_verifier.verify(message, &bent));
            assert!(!native_verifier.verify(message, &native_sig[..63]));
        }
    }

    #[test]
    fn keys_that_do_not_fit_the_algorithm_are_refused() {
        let ec = generate(SigningAlg::ES256, KeyId::new("ec")).unwrap();
        let ed = generate(SigningAlg::EdDSA, KeyId::new("ed")).unwrap();
        assert!(NativeVerifier::from_jwk(SigningAlg::EdDSA, &ec.public_jwk).is_err());
        assert!(NativeVerifier::from_jwk(SigningAlg::ES256, &ed.public_jwk).is_err());
        assert!(NativeSigner::from_jwk(SigningAlg::ES256, &ec.public_jwk).is_err(), "no d: cannot sign");
        assert!(NativeSigner::from_jwk(SigningAlg::ES256, &ed.private_jwk).is_err(), "an Ed25519 key is not ES256");
        assert!(NativeSigner::from_jwk(SigningAlg::EdDSA, &ec.private_jwk).is_err(), "a P-256 key is not EdDSA");
        // A point not on the curve is refused when the key is parsed, not at the first token.
        let mut off_curve = ec.public_jwk.clone();
        off_curve.set_parameter("y", Some(serde_json::json!(URL_SAFE_NO_PAD.encode([7u8; 32])))).unwrap();
        assert!(NativeVerifier::from_jwk(SigningAlg::ES256, &off_curve).is_err());
        // PS256 is josekit's.
        let rsa = generate(SigningAlg::PS256, KeyId::new("r")).unwrap();
        assert!(NativeVerifier::from_jwk(SigningAlg::PS256, &rsa.public_jwk).unwrap().is_none());
    }
}
