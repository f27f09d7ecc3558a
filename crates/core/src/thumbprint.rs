//! Certificate thumbprints (RFC 8705 §3.1) and JWK thumbprints (RFC 7638).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `x5t#S256`: base64url (no padding) of SHA-256 over the certificate's DER encoding.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der))
}

/// RFC 7638 SHA-256 thumbprint of a public JWK. Returns `None` when a required member is missing
/// or the key type is unknown.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let required: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    // serde_json's Map is a BTreeMap without the preserve_order feature: members come out
    // sorted, which is exactly RFC 7638's canonical order.
    let mut canonical = Map::new();
    for name in required {
        canonical.insert((*name).to_owned(), Value::String(jwk.get(*name)?.as_str()?.to_owned()));
    }
    let json = serde_json::to_string(&Value::Object(canonical)).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7638_rsa_example() {
        // spec-checklist R.1 (RFC 7638 §3.1); kid/alg must not change the result.
        let jwk = json!({"e":"AQAB","kty":"RSA","kid":"2011-04-29","alg":"RS256","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn rfc8037_ed25519_example() {
        // spec-checklist R.2
        let jwk = json!({"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn rfc9449_p256_example() {
        // spec-checklist R.4
        let jwk = json!({"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"});
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
    }

    #[test]
    fn missing_member_or_unknown_kty_is_none() {
        let jwk = json!({"kty":"EC","crv":"P-256","x":"abc"});
        assert_eq!(jwk_thumbprint(jwk.as_object().unwrap()), None);
        let jwk = json!({"kty":"oct","k":"abc"});
        assert_eq!(jwk_thumbprint(jwk.as_object().unwrap()), None);
    }

    #[test]
    fn x5t_is_43_chars_without_padding() {
        // spec-checklist R.5: always 43 characters, no '='.
        let t = x5t_s256(b"not really a certificate");
        assert_eq!(t.len(), 43);
        assert!(!t.contains('='));
    }
}
