use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, PS256};
use tessera_core::KeyId;
use tessera_core::keys::SigningAlg;

use crate::JoseError;

/// A freshly generated signing key: the private JWK (to encrypt and store) and the public JWK
/// (to publish), both carrying `kid`, `alg` and `use: sig`.
pub struct KeyMaterial {
    pub kid: KeyId,
    pub alg: SigningAlg,
    pub private_jwk: Jwk,
    pub public_jwk: Jwk,
}

/// RSA keys are 2048 bits or more (FAPI2 5.4.1-2); 3072 gives margin past 2030.
const RSA_BITS: u32 = 3072;

pub fn generate(alg: SigningAlg, kid: KeyId) -> Result<KeyMaterial, JoseError> {
    let err = |e: josekit::JoseError| JoseError::KeyGeneration(e.to_string());
    let (mut private_jwk, mut public_jwk) = match alg {
        SigningAlg::ES256 => {
            let kp = ES256.generate_key_pair().map_err(err)?;
            (kp.to_jwk_private_key(), kp.to_jwk_public_key())
        }
        SigningAlg::PS256 => {
            let kp = PS256.generate_key_pair(RSA_BITS).map_err(err)?;
            (kp.to_jwk_private_key(), kp.to_jwk_public_key())
        }
        SigningAlg::EdDSA => {
            let kp = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(err)?;
            (kp.to_jwk_private_key(), kp.to_jwk_public_key())
        }
    };
    for jwk in [&mut private_jwk, &mut public_jwk] {
        jwk.set_key_id(kid.as_str());
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
    }
    Ok(KeyMaterial { kid, alg, private_jwk, public_jwk })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_jwks_carry_no_private_members() {
        for alg in SigningAlg::ALL {
            let km = generate(alg, KeyId::new("k")).unwrap();
            let public = km.public_jwk.as_ref();
            for private_member in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(!public.contains_key(private_member), "{alg}: public JWK has {private_member}");
            }
            assert!(km.private_jwk.as_ref().contains_key("d"));
            assert_eq!(public["alg"], alg.as_str());
            assert_eq!(public["use"], "sig");
            assert_eq!(public["kid"], "k");
        }
    }
}
