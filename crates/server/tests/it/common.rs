use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use serde_json::Value;
pub use tessera_testkit::{Tessera, https_client};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tessera"))
}

/// A dev mode server in a fresh directory.
pub struct Dev {
    pub dir: tempfile::TempDir,
    pub server: Tessera,
    pub manifest: Value,
    pub ca: Vec<u8>,
}

impl Dev {
    pub fn start(env: &[(&str, &str)]) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let server = Tessera::start_dev(&bin(), &dir.path().join("data"), env);
        let manifest = read_manifest(&server.data_dir);
        let ca = std::fs::read(manifest["ca"]["cert"].as_str().unwrap()).unwrap();
        Dev { dir, server, manifest, ca }
    }

    pub fn client(&self) -> reqwest::Client {
        https_client(&self.ca, None)
    }

    /// A client presenting the dev certificate `who` ("client", "gateway", "admin").
    pub fn client_as(&self, who: &str) -> reqwest::Client {
        let cert = std::fs::read_to_string(self.manifest[who]["cert"].as_str().unwrap()).unwrap();
        let key = std::fs::read_to_string(self.manifest[who]["key"].as_str().unwrap()).unwrap();
        https_client(&self.ca, Some((&cert, &key)))
    }
}

pub fn read_manifest(data_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data_dir.join("dev/manifest.json")).unwrap()).unwrap()
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// A raw TLS handshake with OpenSSL, as an independent client: returns the negotiated version.
pub fn openssl_handshake(
    base: &str,
    min: SslVersion,
    max: SslVersion,
    ciphers: Option<&str>,
) -> Result<String, String> {
    let addr = base.trim_start_matches("https://");
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(min)).unwrap();
    b.set_max_proto_version(Some(max)).unwrap();
    // Security level 0 lets this client *offer* TLS 1.0/1.1, so that a refusal is the server's.
    b.set_cipher_list(ciphers.unwrap_or("DEFAULT:@SECLEVEL=0")).unwrap();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let stream = b.build().connect("localhost", tcp).map_err(|e| e.to_string())?;
    Ok(stream.ssl().version_str().to_owned())
}

/// Verifies a compact JWS against a JWKS with josekit directly (not through tessera-jose).
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    use josekit::jwk::Jwk;
    let header: Value = {
        use base64::Engine;
        let h = token.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    let jwk = Jwk::from_map(jwk.as_object().unwrap().clone()).unwrap();
    let (payload, _) = match header["alg"].as_str().unwrap() {
        "ES256" => josekit::jwt::decode_with_verifier(token, &josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
        "PS256" => josekit::jwt::decode_with_verifier(token, &josekit::jws::PS256.verifier_from_jwk(&jwk).unwrap()),
        "EdDSA" => josekit::jwt::decode_with_verifier(token, &josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        other => panic!("unexpected alg {other}"),
    }
    .unwrap();
    Value::Object(payload.claims_set().clone())
}

pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}
