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

    /// A client certificate with subject `CN=<cn>,O=<org>`.
    pub fn client(&self, name: &str, cn: &str, org: &str) -> Issued {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, cn);
        self.issue(name, vec![format!("{name}.clients.test")], dn, ExtendedKeyUsagePurpose::ClientAuth)
    }
}
