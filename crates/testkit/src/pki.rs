//! A test PKI made with rcgen: a CA, server and client certificates, written to a directory as PEM
//! (private keys mode 0600, as the server requires). Nothing here is dev-mode material.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct TestPki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// An issued certificate as files, with its DER for thumbprint checks.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

fn write(path: &Path, contents: &str, private: bool) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(if private { 0o600 } else { 0o644 })).unwrap();
}

impl TestPki {
    pub fn new(dir: &Path, ca_name: &str) -> TestPki {
        fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Tessera Test");
        dn.push(DnType::CommonName, ca_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(params, key).unwrap();
        let ca_cert = dir.join(format!("{ca_name}.pem"));
        write(&ca_cert, &ca.pem(), false);
        TestPki { dir: dir.to_owned(), ca_cert, ca }
    }

    fn issue(&self, name: &str, sans: Vec<String>, dn: DistinguishedName, eku: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = dn;
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let issued = Issued {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        };
        write(&issued.cert, &issued.cert_pem, false);
        write(&issued.key, &issued.key_pem, true);
        issued
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, name: &str) -> Issued {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        self.issue(name, vec!["localhost".into(), "127.0.0.1".into()], dn, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject `CN=<cn>,OU=<ou>,O=<org>` (the OU names the
    /// organisation for Tessera's transport-certificate binding).
    pub fn client_with_ou(&self, name: &str, cn: &str, ou: &str, org: &str) -> Issued {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::OrganizationalUnitName, ou);
        dn.push(DnType::CommonName, cn);
        self.issue(name, vec![format!("{name}.clients.test")], dn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client certificate with subject `CN=<cn>,O=<org>`.
    pub fn client(&self, name: &str, cn: &str, org: &str) -> Issued {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, cn);
        self.issue(name, vec![format!("{name}.clients.test")], dn, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A client certificate (PEM certificate, PEM PKCS#8 key) signed by an existing CA, for
/// certificates that CA's owner would never issue, such as an expired one.
///
/// `ca_subject` is the CA's subject as a simple RFC 4514 string (`CN=..,OU=..,O=..,C=..`, most
/// specific first, no escaped characters), e.g. the `subject` the dev manifest records; it is
/// rebuilt attribute by attribute, so the issuer name matches the CA's certificate exactly when
/// the CA was made with rcgen in the same order. `subject` is given the same way. Validity runs
/// from `not_before` to `not_after`, each `(year, month, day)`.
pub fn client_signed_by(
    ca_subject: &str,
    ca_key_pem: &str,
    subject: &str,
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> (String, String) {
    let ca_key = KeyPair::from_pem(ca_key_pem).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = parse_simple_dn(ca_subject);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = parse_simple_dn(subject);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.signed_by(&key, &ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// `CN=a,OU=b,O=c,C=d` (RFC 4514 order) as an rcgen name in certificate order (C first).
fn parse_simple_dn(s: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for rdn in s.split(',').rev() {
        let (kind, value) = rdn.split_once('=').unwrap_or_else(|| panic!("not a simple RFC 4514 name: {s}"));
        let kind = match kind.trim() {
            "CN" => DnType::CommonName,
            "OU" => DnType::OrganizationalUnitName,
            "O" => DnType::OrganizationName,
            "C" => DnType::CountryName,
            other => panic!("attribute {other} is not supported here"),
        };
        dn.push(kind, value);
    }
    dn
}

/// A self-signed client certificate that no CA vouches for (RFC 8705 §2.2,
/// `self_signed_tls_client_auth`): `(certificate PEM, PKCS#8 key PEM, certificate DER)`. The key
/// is ECDSA P-256, so `rcgen::KeyPair::from_pem(key).public_key_raw()` is the uncompressed point
/// `04 || x || y` for building the matching public JWK.
pub fn self_signed_client(cn: &str) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["client.self-signed.test".to_string()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}
