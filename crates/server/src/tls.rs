//! The TLS server configuration: TLS 1.3 and 1.2 only, TLS 1.2 restricted to the BCP 195 ECDHE
//! AEAD suites (FAPI2 §5.2.2-1), and a client certificate *requested* on every connection.
//!
//! The client-certificate verifier checks proof of possession (the CertificateVerify signature)
//! but trusts nothing: whether the presented chain means anything is decided per request by the
//! surface that reads it (`tls_client_auth` validates it against the trust anchors,
//! `self_signed_tls_client_auth` compares it with the registered key).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// The provider with only the suites FAPI 2.0 allows. TLS 1.3 suites are all AEAD; for TLS 1.2
/// only ECDHE with AES-GCM remains (the OIDF allow-list), so no CBC, no RSA key exchange, no DHE.
pub fn provider() -> CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    provider
}

/// Requests a client certificate, verifies the handshake signature made with its key, and
/// records it; chain trust is the application's decision.
#[derive(Debug)]
struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: self-signed client certificates (RFC 8705 §2.2) must be offered too.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_cert_mandatory`: false on the main listener (discovery and JWKS work without a
/// certificate), true on the mTLS alias listener.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cert_mandatory: bool,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(provider());
    let verifier = Arc::new(RequestClientCertificate {
        algorithms: provider.signature_verification_algorithms,
        mandatory: client_cert_mandatory,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // Prefer our order (strongest first) over the client's.
    config.ignore_client_order = true;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aead_ecdhe_suites() {
        for suite in provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(name.contains("GCM") || name.contains("CHACHA20_POLY1305"), "{name}");
            if suite.version() == &rustls::version::TLS12 {
                assert!(name.starts_with("TLS_ECDHE_"), "{name}");
            }
        }
    }
}
