//! Trusting a presented client certificate: chain validation against the configured trust
//! anchors (RFC 8705 §2.1, PKI method) with rustls-webpki, never by hand (RFC 8705 §7.5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime as PkiTime};
use tessera_core::UnixTime;
use tessera_core::cert::CertFacts;

use crate::PeerCertificates;

/// The CA certificates that anchor `tls_client_auth` chains.
#[derive(Clone)]
pub struct TrustAnchors {
    anchors: Arc<Vec<TrustAnchor<'static>>>,
    /// Chains already validated, by SHA-256 of the presented chain: a keep-alive client sends
    /// the same chain on every request, and the signature checks are the largest cost of a token
    /// request. An entry lives until the leaf expires, at most `CACHE_TTL_SECS`.
    verified: Arc<Mutex<VerifiedChains>>,
}

/// Chain hash -> (facts of the leaf, Unix time until which the result may be reused).
type VerifiedChains = HashMap<[u8; 32], (CertFacts, i64)>;

/// Longest a validation result is reused (bounds the effect of a CA change without restart).
const CACHE_TTL_SECS: i64 = 600;
/// Most cached chains; the cache is emptied when full (cheap, and it refills from live traffic).
const CACHE_MAX: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no TLS client certificate was presented")]
    Missing,
    #[error("the TLS client certificate could not be parsed: {0}")]
    Malformed(String),
    #[error("the TLS client certificate does not chain to a trusted CA: {0}")]
    Untrusted(String),
}

impl TrustAnchors {
    pub fn from_ders(ders: &[CertificateDer<'_>]) -> Result<TrustAnchors, ChainError> {
        let anchors = ders
            .iter()
            .map(|d| {
                webpki::anchor_from_trusted_cert(d)
                    .map(|a| a.to_owned())
                    .map_err(|e| ChainError::Malformed(format!("trust anchor: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustAnchors { anchors: Arc::new(anchors), verified: Arc::new(Mutex::new(HashMap::new())) })
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Validates the presented chain (leaf + intermediates) at `now` for client authentication
    /// and returns the leaf's facts.
    pub fn verify(&self, peer: &PeerCertificates, now: UnixTime) -> Result<CertFacts, ChainError> {
        let leaf = peer.leaf().ok_or(ChainError::Missing)?;
        let key = chain_key(leaf.as_ref(), peer.intermediates());
        if let Ok(cache) = self.verified.lock()
            && let Some((facts, until)) = cache.get(&key)
            && now.0 < *until
            && now.0 >= facts.not_before.0
        {
            return Ok(facts.clone());
        }
        let facts = self.verify_uncached(peer, now)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            let until = facts.not_after.0.min(now.0 + CACHE_TTL_SECS);
            cache.insert(key, (facts.clone(), until));
        }
        Ok(facts)
    }

    fn verify_uncached(&self, peer: &PeerCertificates, now: UnixTime) -> Result<CertFacts, ChainError> {
        let leaf = peer.leaf().ok_or(ChainError::Missing)?;
        let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| ChainError::Malformed(e.to_string()))?;
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all;
        let time = PkiTime::since_unix_epoch(std::time::Duration::from_secs(now.0.max(0) as u64));
        end_entity
            .verify_for_usage(
                algs,
                &self.anchors,
                peer.intermediates(),
                time,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| ChainError::Untrusted(describe(&e)))?;
        CertFacts::from_der(leaf.as_ref()).map_err(|e| ChainError::Malformed(e.to_string()))
    }
}

fn chain_key(leaf: &[u8], intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in std::iter::once(leaf).chain(intermediates.iter().map(|c| c.as_ref())) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// A sentence a developer can act on, for the errors that happen in practice.
fn describe(e: &webpki::Error) -> String {
    match e {
        // A CA with a trusted CA's name but another key shows up as a bad signature.
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            "issued by a CA this server does not trust".into()
        }
        webpki::Error::CertExpired { .. } => "the certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate's extended key usage does not allow client authentication".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, eku: ExtendedKeyUsagePurpose) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["client.test".to_string()]).unwrap();
        p.extended_key_usages = vec![eku];
        p.signed_by(&KeyPair::generate().unwrap(), ca).unwrap().der().clone()
    }

    const NOW: UnixTime = UnixTime(1_900_000_000);

    #[test]
    fn accepts_a_chain_to_a_trusted_ca() {
        // RFC 8705 §2.1, checklist C.57
        let ca = ca();
        let anchors = TrustAnchors::from_ders(&[ca.der().clone()]).unwrap();
        let peer = PeerCertificates::from_chain(vec![leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth)]);
        let facts = anchors.verify(&peer, NOW).unwrap();
        assert_eq!(facts.san_dns, vec!["client.test".to_string()]);
    }

    #[test]
    fn refuses_missing_untrusted_wrong_usage_and_expired() {
        let ca = ca();
        let other = self::ca();
        let anchors = TrustAnchors::from_ders(&[ca.der().clone()]).unwrap();
        assert_eq!(anchors.verify(&PeerCertificates::default(), NOW), Err(ChainError::Missing));
        let stranger = PeerCertificates::from_chain(vec![leaf(&other, ExtendedKeyUsagePurpose::ClientAuth)]);
        let r = anchors.verify(&stranger, NOW);
        assert!(matches!(&r, Err(ChainError::Untrusted(m)) if m.contains("does not trust")), "{r:?}");
        let server_only = PeerCertificates::from_chain(vec![leaf(&ca, ExtendedKeyUsagePurpose::ServerAuth)]);
        assert!(matches!(anchors.verify(&server_only, NOW), Err(ChainError::Untrusted(m)) if m.contains("key usage")));
        let good = PeerCertificates::from_chain(vec![leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth)]);
        // rcgen's default validity ends in 4096; far past that the certificate has expired.
        assert!(anchors.verify(&good, NOW).is_ok());
        // A cached success is not reused past the certificate's expiry.
        assert!(
            matches!(anchors.verify(&good, UnixTime(70_000_000_000)), Err(ChainError::Untrusted(m)) if m.contains("expired"))
        );
        // Nor before the certificate's notBefore (rcgen's default is 1975).
        assert!(
            matches!(anchors.verify(&good, UnixTime(100_000_000)), Err(ChainError::Untrusted(m)) if m.contains("not valid yet"))
        );
        // Nor is it shared with another set of anchors.
        let other_anchors = TrustAnchors::from_ders(&[other.der().clone()]).unwrap();
        assert!(other_anchors.verify(&good, NOW).is_err());
        let garbage = PeerCertificates::from_chain(vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])]);
        assert!(matches!(anchors.verify(&garbage, NOW), Err(ChainError::Malformed(_))));
    }
}
