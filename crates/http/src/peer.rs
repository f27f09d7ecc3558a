//! The certificate chain a client presented in the TLS handshake.
//!
//! The server *requests* a certificate on every connection and accepts any (or none): whether it
//! is trusted is for the surface to decide (`tls_client_auth` validates the chain,
//! `self_signed_tls_client_auth` compares it to the registered one). Nothing here trusts it.

use std::any::Any;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::{Extensions, Payload};
use actix_web::rt::net::TcpStream;
use actix_web::{FromRequest, HttpRequest};
use rustls_pki_types::CertificateDer;
use tessera_core::thumbprint::x5t_s256;

/// The presented chain (leaf first) or nothing, as extracted from the connection.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificates(Option<Arc<[CertificateDer<'static>]>>);

impl PeerCertificates {
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Self {
        if chain.is_empty() { PeerCertificates(None) } else { PeerCertificates(Some(chain.into())) }
    }

    /// The client's own certificate (the first of the chain).
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.0.as_ref().and_then(|c| c.first())
    }

    /// The intermediates the client sent after its leaf.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        self.0.as_ref().map(|c| c.get(1..).unwrap_or(&[])).unwrap_or(&[])
    }

    pub fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// RFC 8705 §3.1 `x5t#S256` of the leaf.
    pub fn leaf_x5t_s256(&self) -> Option<String> {
        self.leaf().map(|c| x5t_s256(c.as_ref()))
    }
}

/// For `HttpServer::on_connect`: keeps the peer's chain with the connection, so every request on
/// it (HTTP/1.1 keep-alive or HTTP/2 streams) sees the certificate of its handshake.
pub fn capture_peer_certificates(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>() {
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        ext.insert(PeerCertificates::from_chain(chain));
    }
}

impl FromRequest for PeerCertificates {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req.conn_data::<PeerCertificates>().cloned().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_chain_is_absent() {
        let p = PeerCertificates::from_chain(vec![]);
        assert!(!p.is_present());
        assert!(p.leaf().is_none());
        assert!(p.intermediates().is_empty());
        assert!(p.leaf_x5t_s256().is_none());
    }

    #[test]
    fn leaf_and_intermediates() {
        let p = PeerCertificates::from_chain(vec![CertificateDer::from(vec![1u8]), CertificateDer::from(vec![2u8])]);
        assert_eq!(p.leaf().unwrap().as_ref(), &[1u8]);
        assert_eq!(p.intermediates().len(), 1);
        assert_eq!(p.leaf_x5t_s256().unwrap(), x5t_s256(&[1u8]));
    }

    #[actix_web::test]
    async fn extractor_without_tls_gives_absent() {
        let req = actix_web::test::TestRequest::default().to_http_request();
        let p = PeerCertificates::extract(&req).await.unwrap();
        assert!(!p.is_present());
    }
}
