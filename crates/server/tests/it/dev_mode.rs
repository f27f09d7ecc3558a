//! Dev mode: discovery, JWKS, health, metrics, TLS versions and suites, client certificates
//! optional, material reused across restarts.

use openssl::ssl::SslVersion;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn discovery_jwks_health_metrics() {
    let dev = Dev::start(&[]);
    let c = dev.client();
    let base = dev.server.base();

    // FAPI2 A.2-8 / RFC 8414 §3: both documents, identical, issuer exact and https.
    let rfc8414 = get_json(&c, &dev.server.url("/.well-known/oauth-authorization-server")).await;
    let oidc = get_json(&c, &dev.server.url("/.well-known/openid-configuration")).await;
    assert_eq!(rfc8414, oidc);
    assert_eq!(rfc8414["issuer"], base);
    assert!(base.starts_with("https://"));
    assert_eq!(rfc8414["jwks_uri"], format!("{base}/jwks"));
    // RFC 8705 §3.3, checklist C.63
    assert_eq!(rfc8414["tls_client_certificate_bound_access_tokens"], true);
    // FAPI2 A.6-44: PS256, ES256, EdDSA only; never none or RS256.
    let algs: Vec<&str> = rfc8414["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(algs, ["PS256", "ES256", "EdDSA"]);
    let methods = rfc8414["token_endpoint_auth_methods_supported"].as_array().unwrap();
    for m in ["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"] {
        assert!(methods.contains(&Value::from(m)), "{m}");
    }
    for bad in ["none", "client_secret_basic", "client_secret_post"] {
        assert!(!methods.contains(&Value::from(bad)), "{bad}");
    }

    // JWKS: public keys only, unique kid, alg and use set (FAPI2 A.6-47).
    let jwks = get_json(&c, &dev.server.url("/jwks")).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    kids.dedup();
    assert_eq!(kids.len(), keys.len());
    for k in keys {
        assert!(k["alg"].is_string() && k["use"] == "sig", "{k}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "JWKS leaks {private}");
        }
    }

    // The keys verify a signature the server made: RFC 8414 §2.1 signed_metadata.
    let signed = rfc8414["signed_metadata"].as_str().unwrap();
    let claims = verify_with_jwks(signed, &jwks);
    assert_eq!(claims["iss"], base);
    assert_eq!(claims["issuer"], base);
    assert_eq!(claims["jwks_uri"], rfc8414["jwks_uri"]);

    let health = get_json(&c, &dev.server.url("/healthz")).await;
    assert_eq!(health["status"], "up");
    let ready = get_json(&c, &dev.server.url("/readyz")).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], "ok");

    let metrics = c.get(dev.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"tessera_http_requests_total{route="/jwks",method="GET",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"route="/.well-known/oauth-authorization-server""#));
    assert!(metrics.contains("tessera_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("tessera_build_info{"));

    // An unknown path is a 404, counted as unmatched, never a 500.
    let resp = c.get(dev.server.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn client_certificate_is_requested_but_optional() {
    let dev = Dev::start(&[]);
    let url = dev.server.url("/.well-known/oauth-authorization-server");
    let without = dev.client().get(&url).send().await.unwrap();
    assert_eq!(without.status(), 200);
    let with = dev.client_as("client").get(&url).send().await.unwrap();
    assert_eq!(with.status(), 200);
    // A self-signed certificate unknown to every CA is accepted at the TLS layer as well
    // (RFC 8705 §2.2 needs it); trusting it is a surface's decision.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["self.test".to_string()]).unwrap().self_signed(&key).unwrap();
    let selfsigned = https_client(&dev.ca, Some((&cert.pem(), &key.serialize_pem())));
    assert_eq!(selfsigned.get(&url).send().await.unwrap().status(), 200);
}

#[test]
fn tls_versions_and_suites() {
    let dev = Dev::start(&[]);
    let base = dev.server.base();
    // FAPI2 A.1-2: TLS 1.0 and 1.1 fail.
    assert!(openssl_handshake(base, SslVersion::TLS1_1, SslVersion::TLS1_1, None).is_err());
    assert!(openssl_handshake(base, SslVersion::TLS1, SslVersion::TLS1, None).is_err());
    // FAPI2 A.1-3: TLS 1.3 preferred when offered.
    assert_eq!(openssl_handshake(base, SslVersion::TLS1_2, SslVersion::TLS1_3, None).unwrap(), "TLSv1.3");
    // FAPI2 A.1-5: TLS 1.2 with an ECDHE AEAD suite works, CBC and non-ECDHE suites do not.
    assert_eq!(
        openssl_handshake(base, SslVersion::TLS1_2, SslVersion::TLS1_2, Some("ECDHE-ECDSA-AES128-GCM-SHA256")).unwrap(),
        "TLSv1.2"
    );
    for refused in ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "AES128-GCM-SHA256"] {
        assert!(
            openssl_handshake(base, SslVersion::TLS1_2, SslVersion::TLS1_2, Some(refused)).is_err(),
            "{refused} must be refused"
        );
    }
}

#[tokio::test]
async fn second_start_reuses_material_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Tessera::start_dev(&bin(), &data, &[]);
    let manifest = read_manifest(&data);
    let ca = std::fs::read(manifest["ca"]["cert"].as_str().unwrap()).unwrap();
    let jwks1 = get_json(&https_client(&ca, None), &first.url("/jwks")).await;
    drop(first);

    let second = Tessera::start_dev(&bin(), &data, &[]);
    assert_eq!(read_manifest(&data), manifest, "manifest unchanged");
    assert_eq!(std::fs::read(manifest["ca"]["cert"].as_str().unwrap()).unwrap(), ca, "CA reused");
    let jwks2 = get_json(&https_client(&ca, None), &second.url("/jwks")).await;
    assert_eq!(jwks1, jwks2, "signing key reused, not regenerated");

    // The manifest names every generated file, and each exists.
    for who in ["ca", "server", "client", "gateway", "admin"] {
        for part in ["cert", "key"] {
            assert!(std::path::Path::new(manifest[who][part].as_str().unwrap()).exists(), "{who}.{part}");
        }
    }
    for f in
        [&manifest["directory"]["signing_key_jwk"], &manifest["directory"]["jwks"], &manifest["key_encryption_key"]]
    {
        assert!(std::path::Path::new(f.as_str().unwrap()).exists(), "{f}");
    }
    // Dev mode says so loudly.
    let out = second.stdout.lock().unwrap().join("\n");
    assert!(out.contains("DEV MODE"), "{out}");
    assert!(out.contains("curl --cacert"), "{out}");
}

#[tokio::test]
async fn json_logs_without_secrets() {
    let dev = Dev::start(&[("TESSERA_LOG__FORMAT", "json")]);
    let _ = get_json(&dev.client(), &dev.server.url("/jwks")).await;
    let stderr = dev.server.stderr();
    let mut lines = 0;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["level"].is_string());
        lines += 1;
    }
    assert!(lines >= 2, "{stderr}");
    // No private key material in logs.
    let kek = std::fs::read_to_string(dev.manifest["key_encryption_key"].as_str().unwrap()).unwrap();
    assert!(!stderr.contains(kek.trim()));
    assert!(!stderr.contains("PRIVATE KEY"));
    assert!(!stderr.contains("\"d\":"));
}
