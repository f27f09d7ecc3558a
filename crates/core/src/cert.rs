//! Facts about a presented client certificate, and the RFC 8705 §2.1.2 subject rules that
//! `tls_client_auth` matches against them (spec-checklist C.57, C.58, P.139).
//!
//! Nothing here validates a chain or a signature: the TLS layer does that with a proven X.509
//! library (checklist C.57, C.66 / RFC 8705 §7.5). This module only reads a certificate that
//! layer has already accepted and answers "is this the registered subject?".

use std::net::IpAddr;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::UnixTime;
use crate::dn::{DistinguishedName, DnError};
use crate::thumbprint::x5t_s256;

/// What client authentication and token binding need to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: DistinguishedName,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_ip: Vec<IpAddr>,
    pub san_email: Vec<String>,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// RFC 8705 §3.1 `x5t#S256` of the DER bytes (checklist C.61).
    pub x5t_s256: String,
    /// Subject and issuer names are equal. Says nothing about the signature.
    pub is_self_signed: bool,
}

/// Why a certificate could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("not a DER-encoded X.509 certificate: {0}")]
    Malformed(String),
    #[error("{0} bytes follow the certificate")]
    TrailingData(usize),
    #[error("certificate subject: {0}")]
    Subject(DnError),
    #[error("invalid subjectAltName: {0}")]
    SubjectAltName(String),
}

impl CertFacts {
    /// Reads one DER certificate (exactly: trailing bytes are an error, so the thumbprint covers
    /// what was parsed).
    pub fn from_der(der: &[u8]) -> Result<CertFacts, CertError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::TrailingData(rest.len()));
        }
        let subject = DistinguishedName::from_der_name(cert.subject()).map_err(CertError::Subject)?;
        let is_self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
            || DistinguishedName::from_der_name(cert.issuer()).is_ok_and(|issuer| issuer.matches(&subject));
        let validity = cert.validity();
        let mut facts = CertFacts {
            subject,
            san_dns: Vec::new(),
            san_uri: Vec::new(),
            san_ip: Vec::new(),
            san_email: Vec::new(),
            not_before: UnixTime(validity.not_before.timestamp()),
            not_after: UnixTime(validity.not_after.timestamp()),
            x5t_s256: x5t_s256(der),
            is_self_signed,
        };
        let san = cert.subject_alternative_name().map_err(|e| CertError::SubjectAltName(e.to_string()))?;
        for name in san.iter().flat_map(|ext| &ext.value.general_names) {
            match name {
                GeneralName::DNSName(s) => facts.san_dns.push((*s).to_owned()),
                GeneralName::URI(s) => facts.san_uri.push((*s).to_owned()),
                GeneralName::RFC822Name(s) => facts.san_email.push((*s).to_owned()),
                GeneralName::IPAddress(b) => facts.san_ip.push(san_ip(b)?),
                GeneralName::Invalid(tag, _) => {
                    return Err(CertError::SubjectAltName(format!("undecodable entry with tag {tag}")));
                }
                // otherName, directoryName, registeredID, ...: not RFC 8705 subject fields.
                _ => {}
            }
        }
        Ok(facts)
    }
}

/// An iPAddress SAN is 4 (IPv4) or 16 (IPv6) bytes in network order (RFC 5280 §4.2.1.6).
fn san_ip(b: &[u8]) -> Result<IpAddr, CertError> {
    match <[u8; 4]>::try_from(b) {
        Ok(v4) => Ok(IpAddr::from(v4)),
        Err(_) => <[u8; 16]>::try_from(b)
            .map(IpAddr::from)
            .map_err(|_| CertError::SubjectAltName(format!("iPAddress of {} bytes, expected 4 or 16", b.len()))),
    }
}

/// The one registered subject value a `tls_client_auth` client is matched by (RFC 8705 §2.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectRule {
    /// `tls_client_auth_subject_dn`: RFC 4517 distinguishedNameMatch against the subject.
    Dn(DistinguishedName),
    /// `tls_client_auth_san_dns`: ASCII case-insensitive, no wildcard expansion.
    SanDns(String),
    /// `tls_client_auth_san_uri`: exact.
    SanUri(String),
    /// `tls_client_auth_san_ip`: address equality (`::1` equals `0:0:0:0:0:0:0:1`).
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`: local part exact, domain ASCII case-insensitive.
    SanEmail(String),
}

/// Why a registered subject value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectRuleError {
    #[error(
        "`{0}` is not an RFC 8705 subject field (expected tls_client_auth_subject_dn, tls_client_auth_san_dns, \
         tls_client_auth_san_uri, tls_client_auth_san_ip or tls_client_auth_san_email)"
    )]
    UnknownField(String),
    #[error("tls_client_auth_subject_dn: {0}")]
    Dn(#[from] DnError),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SubjectRule {
    /// The client metadata field names, in RFC 8705 §2.1.2 order.
    pub const FIELDS: [&'static str; 5] = [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ];

    /// Parses one registered value. Choosing exactly one field per client (checklist C.58) is
    /// the caller's job.
    pub fn from_metadata(field: &str, value: &str) -> Result<Self, SubjectRuleError> {
        let name = Self::FIELDS.iter().copied().find(|f| *f == field);
        let Some(name) = name else { return Err(SubjectRuleError::UnknownField(field.to_owned())) };
        let invalid = |reason: &str| SubjectRuleError::Invalid { field: name, reason: reason.to_owned() };
        if name == Self::FIELDS[0] {
            return Ok(SubjectRule::Dn(DistinguishedName::parse_rfc4514(value)?));
        }
        if value.is_empty() || value.trim() != value {
            return Err(invalid("must be non-empty, without leading or trailing whitespace"));
        }
        Ok(match name {
            "tls_client_auth_san_dns" => SubjectRule::SanDns(value.to_owned()),
            "tls_client_auth_san_uri" => SubjectRule::SanUri(value.to_owned()),
            "tls_client_auth_san_ip" => SubjectRule::SanIp(
                value
                    .parse()
                    .map_err(|_| invalid("expected an IPv4 dotted-decimal or IPv6 address, without brackets"))?,
            ),
            _ => match value.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                    SubjectRule::SanEmail(value.to_owned())
                }
                _ => return Err(invalid("expected an address of the form local@domain")),
            },
        })
    }

    /// The metadata field this rule came from.
    pub fn field(&self) -> &'static str {
        let i = match self {
            SubjectRule::Dn(_) => 0,
            SubjectRule::SanDns(_) => 1,
            SubjectRule::SanUri(_) => 2,
            SubjectRule::SanIp(_) => 3,
            SubjectRule::SanEmail(_) => 4,
        };
        Self::FIELDS[i]
    }

    /// Does the certificate carry the registered subject? A SAN rule matches if any SAN of its
    /// kind does.
    pub fn matches(&self, facts: &CertFacts) -> bool {
        match self {
            SubjectRule::Dn(dn) => dn.matches(&facts.subject),
            SubjectRule::SanDns(name) => facts.san_dns.iter().any(|s| s.eq_ignore_ascii_case(name)),
            SubjectRule::SanUri(uri) => facts.san_uri.iter().any(|s| s == uri),
            SubjectRule::SanIp(ip) => facts.san_ip.contains(ip),
            SubjectRule::SanEmail(email) => facts.san_email.iter().any(|s| email_eq(s, email)),
        }
    }
}

/// RFC 5321 §2.4: the local part is case-sensitive, the domain is not.
fn email_eq(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
    use rcgen::{CertificateParams, DnType, DnValue, IsCa, Issuer, KeyPair, SanType};
    use sha2::{Digest, Sha256};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const ORG_ID: &str = "OFBBR-67c57882-043b-11ec-9a03-0242ac130003"; // test vector R.8
    /// The leaf subject written by hand in RFC 4514 order (most specific first). Brazil form for
    /// 2.5.4.97 (checklist P.139, R.8).
    const LEAF_DN: &str = "emailAddress=ops@tpp.example,\
        2.5.4.97=#132A4F464242522D36376335373838322D303433622D313165632D396130332D303234326163313330303033,\
        UID=software-123,CN=client.tpp.example,OU=org-1,L=Zagreb,ST=Grad Zagreb,O=TPP Ltd,C=BR";

    fn leaf_params() -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2026, 1, 1);
        p.distinguished_name = rcgen::DistinguishedName::new(); // drop rcgen's default CN
        let dn = &mut p.distinguished_name;
        // One of each ASN.1 string type rcgen can write; DER order is least specific first.
        dn.push(DnType::CountryName, DnValue::PrintableString(PrintableString::try_from("BR").unwrap()));
        dn.push(DnType::OrganizationName, "TPP Ltd"); // UTF8String
        dn.push(DnType::StateOrProvinceName, DnValue::TeletexString(TeletexString::try_from("Grad Zagreb").unwrap()));
        dn.push(DnType::LocalityName, DnValue::UniversalString(UniversalString::try_from("Zagreb").unwrap()));
        dn.push(DnType::OrganizationalUnitName, "org-1");
        dn.push(DnType::CommonName, DnValue::BmpString(BmpString::try_from("client.tpp.example").unwrap()));
        dn.push(DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]), "software-123");
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 97]),
            DnValue::PrintableString(PrintableString::try_from(ORG_ID).unwrap()),
        );
        dn.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            DnValue::Ia5String(Ia5String::try_from("ops@tpp.example").unwrap()),
        );
        p.subject_alt_names = vec![
            SanType::DnsName(Ia5String::try_from("client.tpp.example").unwrap()),
            SanType::DnsName(Ia5String::try_from("alt.tpp.example").unwrap()),
            SanType::URI(Ia5String::try_from("https://tpp.example/software/123").unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            SanType::Rfc822Name(Ia5String::try_from("Ops@TPP.example").unwrap()),
        ];
        p
    }

    /// (CA certificate DER, leaf DER signed by that CA)
    fn pki() -> (Vec<u8>, Vec<u8>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::OrganizationName, "Test Directory");
        ca.distinguished_name.push(DnType::CommonName, "Test Issuing CA");
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params().signed_by(&leaf_key, &Issuer::new(ca, ca_key)).unwrap();
        (ca_der, leaf.der().to_vec())
    }

    #[test]
    fn facts_from_a_ca_signed_certificate() {
        let (ca_der, der) = pki();
        let facts = CertFacts::from_der(&der).unwrap();
        // checklist C.57: the DN read from the cert matches the hand-written RFC 4514 string.
        let by_hand = DistinguishedName::parse_rfc4514(LEAF_DN).unwrap();
        assert!(facts.subject.matches(&by_hand), "{}", facts.subject);
        assert_eq!(facts.subject.to_string(), by_hand.to_string());
        assert_eq!(facts.subject.values("2.5.4.97").next().and_then(|v| v.as_text()), Some(ORG_ID));
        assert_eq!(facts.san_dns, ["client.tpp.example", "alt.tpp.example"]);
        assert_eq!(facts.san_uri, ["https://tpp.example/software/123"]);
        assert_eq!(facts.san_ip, [IpAddr::from([192, 0, 2, 10]), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(facts.san_email, ["Ops@TPP.example"]);
        assert_eq!((facts.not_before, facts.not_after), (UnixTime(1_735_689_600), UnixTime(1_767_225_600)));
        assert!(!facts.is_self_signed);
        // RFC 8705 §3.1, checklist C.61 / R.5: base64url(SHA-256(DER)), 43 characters.
        assert_eq!(facts.x5t_s256, URL_SAFE_NO_PAD.encode(Sha256::digest(&der)));
        assert_eq!(facts.x5t_s256.len(), 43);

        let ca = CertFacts::from_der(&ca_der).unwrap();
        assert!(ca.is_self_signed);
        assert!(ca.subject.matches(&DistinguishedName::parse_rfc4514("CN=Test Issuing CA,O=Test Directory").unwrap()));
        assert!(ca.san_dns.is_empty() && ca.san_ip.is_empty());
    }

    #[test]
    fn not_a_certificate() {
        let (_, der) = pki();
        assert!(matches!(CertFacts::from_der(b"not a certificate"), Err(CertError::Malformed(_))));
        assert!(matches!(CertFacts::from_der(&der[..der.len() - 1]), Err(CertError::Malformed(_))));
        let trailing = [der.as_slice(), &[0]].concat();
        assert_eq!(CertFacts::from_der(&trailing), Err(CertError::TrailingData(1)));
    }

    #[test]
    fn subject_rules() {
        // RFC 8705 §2.1.2, checklist C.57 (match exactly the registered value) and C.58 (fields).
        let (_, der) = pki();
        let facts = CertFacts::from_der(&der).unwrap();
        let dn = "tls_client_auth_subject_dn";
        let cases: &[(&str, &str, bool)] = &[
            (dn, LEAF_DN, true),
            (
                dn,
                "E=OPS@tpp.example, organizationIdentifier=ofbbr-67C57882-043b-11ec-9a03-0242ac130003, \
                 uid=software-123, cn=CLIENT.tpp.example, ou=org-1, l=zagreb, st=grad  zagreb, o=tpp ltd, c=br",
                true,
            ),
            (dn, "CN=client.tpp.example,OU=org-1,O=TPP Ltd,C=BR", false), // RDNs missing
            (
                dn,
                &LEAF_DN.replace("UID=software-123,CN=client.tpp.example", "CN=client.tpp.example,UID=software-123"),
                false,
            ),
            (dn, &LEAF_DN.replace("software-123", "software-124"), false),
            ("tls_client_auth_san_dns", "client.tpp.example", true),
            ("tls_client_auth_san_dns", "ALT.TPP.Example", true),
            ("tls_client_auth_san_dns", "*.tpp.example", false), // no wildcard expansion
            ("tls_client_auth_san_dns", "tpp.example", false),
            ("tls_client_auth_san_uri", "https://tpp.example/software/123", true),
            ("tls_client_auth_san_uri", "https://TPP.example/software/123", false), // exact
            ("tls_client_auth_san_uri", "https://tpp.example/software/123/", false),
            ("tls_client_auth_san_ip", "192.0.2.10", true),
            ("tls_client_auth_san_ip", "::1", true),
            ("tls_client_auth_san_ip", "0:0:0:0:0:0:0:1", true),
            ("tls_client_auth_san_ip", "192.0.2.11", false),
            ("tls_client_auth_san_ip", "::ffff:192.0.2.10", false),
            ("tls_client_auth_san_email", "Ops@tpp.EXAMPLE", true), // domain case-insensitive
            ("tls_client_auth_san_email", "ops@TPP.example", false), // local part exact
        ];
        for (field, value, expected) in cases {
            let rule = SubjectRule::from_metadata(field, value).unwrap_or_else(|e| panic!("{field} {value:?}: {e}"));
            assert_eq!(rule.field(), *field);
            assert_eq!(rule.matches(&facts), *expected, "{field} = {value:?}");
        }
    }

    #[test]
    fn bad_subject_metadata() {
        let cases: &[(&str, &str, &str)] = &[
            ("tls_client_auth_subject", "CN=a", "not an RFC 8705 subject field"),
            ("tls_client_auth_subject_dn", "", "empty DN"),
            ("tls_client_auth_subject_dn", "CN=a;O=b", "unescaped `;`"),
            ("tls_client_auth_san_dns", "", "non-empty"),
            ("tls_client_auth_san_uri", " https://a.example", "whitespace"),
            ("tls_client_auth_san_ip", "192.0.2", "IPv4"),
            ("tls_client_auth_san_ip", "[::1]", "without brackets"),
            ("tls_client_auth_san_ip", "example.com", "IPv4"),
            ("tls_client_auth_san_email", "ops.example", "local@domain"),
            ("tls_client_auth_san_email", "ops@", "local@domain"),
        ];
        for (field, value, needle) in cases {
            match SubjectRule::from_metadata(field, value) {
                Ok(rule) => panic!("{field} {value:?} accepted as {rule:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{field} {value:?}: {e}"),
            }
        }
    }
}
