//! Dev mode: everything a newcomer needs to run and call the server on one machine, generated on
//! first start under `./tessera-data/` and reused afterwards. Every certificate carries
//! [`DEV_MARKER`](crate::config::DEV_MARKER) in its subject so production can refuse it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, OsRng, Rng};
use tessera_jose::KeyEncryptionKey;

use crate::config::{DEV_MARKER, RawConfig, RawDatabase, RawDirectory, RawKeys, RawLog, RawRegistration, RawServer};

pub const MANIFEST: &str = "manifest.json";
pub const DEV_DIRECTORY_ISSUER: &str = "tessera-dev-directory";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("dev mode could not write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("dev mode could not generate {what}: {message}")]
    Generate { what: &'static str, message: String },
    #[error("the dev manifest {path} is unreadable: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// A certificate and its private key, as files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub subject: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DirectoryFiles {
    pub issuer: String,
    pub signing_key_jwk: PathBuf,
    pub jwks: PathBuf,
}

/// `tessera-data/dev/manifest.json`: every generated file, so scripts and docs can use them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub tessera_dev: bool,
    pub warning: String,
    pub database: PathBuf,
    pub ca: CertPair,
    pub server: CertPair,
    pub client: CertPair,
    pub gateway: CertPair,
    pub admin: CertPair,
    pub directory: DirectoryFiles,
    pub key_encryption_key: PathBuf,
}

/// True when `dir` holds a dev manifest.
pub fn is_dev_dir(dir: &Path) -> bool {
    fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .is_some_and(|m| m.tessera_dev)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io { path: path.to_owned(), source }
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), DevError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> DevError {
    move |e| DevError::Generate { what, message: e.to_string() }
}

fn dn(cn: &str, org: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "GB");
    dn.push(DnType::OrganizationName, org);
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn rfc4514(cn: &str, org: &str, ou: Option<&str>) -> String {
    // RFC 4514 string: most specific RDN first.
    match ou {
        Some(ou) => format!("CN={cn},OU={ou},O={org},C=GB"),
        None => format!("CN={cn},O={org},C=GB"),
    }
}

/// Creates (or reuses) the dev material under `data_dir` and returns its manifest.
pub fn ensure(data_dir: &Path) -> Result<Manifest, DevError> {
    let dev = data_dir.join("dev");
    fs::create_dir_all(&dev).map_err(io(&dev))?;
    fs::set_permissions(&dev, fs::Permissions::from_mode(0o700)).map_err(io(&dev))?;
    let dev = fs::canonicalize(&dev).map_err(io(&dev))?;
    let data_dir = dev.parent().map(Path::to_path_buf).unwrap_or_else(|| dev.clone());

    // The key-encryption key is generated once and never replaced: the signing keys in the
    // database are encrypted under it.
    let kek_path = dev.join("key-encryption.key");
    if !kek_path.exists() {
        let mut key = [0u8; 32];
        OsRng.fill(&mut key).map_err(|e| DevError::Generate { what: "key-encryption key", message: e.to_string() })?;
        write_file(&kek_path, format!("{}\n", KeyEncryptionKey::encode(&key)).as_bytes(), true)?;
    }

    let manifest_path = dev.join(MANIFEST);
    if let Ok(bytes) = fs::read(&manifest_path) {
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| DevError::Manifest { path: manifest_path.clone(), message: e.to_string() })?;
        let all_there = [&manifest.ca, &manifest.server, &manifest.client, &manifest.gateway, &manifest.admin]
            .iter()
            .all(|p| p.cert.exists() && p.key.exists())
            && manifest.directory.signing_key_jwk.exists()
            && manifest.directory.jwks.exists();
        if all_there {
            return Ok(manifest);
        }
    }
    generate(&data_dir, &dev, kek_path)
}

fn generate(data_dir: &Path, dev: &Path, kek_path: PathBuf) -> Result<Manifest, DevError> {
    let ca_key = KeyPair::generate().map_err(gen_err("the dev CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the dev CA"))?;
    let ca_cn = format!("{DEV_MARKER} CA (not for production)");
    ca_params.distinguished_name = dn(&ca_cn, DEV_MARKER, None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(gen_err("the dev CA"))?;

    let pair = |name: &str| CertPair {
        cert: dev.join(format!("{name}.pem")),
        key: dev.join(format!("{name}.key")),
        subject: String::new(),
    };
    let mut ca_pair = pair("ca");
    ca_pair.subject = rfc4514(&ca_cn, DEV_MARKER, None);
    write_file(&ca_pair.cert, ca.pem().as_bytes(), false)?;
    write_file(&ca_pair.key, ca_key_pem.as_bytes(), true)?;

    let issue = |name: &str,
                 sans: Vec<String>,
                 cn: &str,
                 org: &str,
                 ou: Option<&str>,
                 eku: ExtendedKeyUsagePurpose|
     -> Result<CertPair, DevError> {
        let key = KeyPair::generate().map_err(gen_err("a dev certificate key"))?;
        let mut params = CertificateParams::new(sans).map_err(gen_err("a dev certificate"))?;
        params.distinguished_name = dn(cn, org, ou);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca).map_err(gen_err("a dev certificate"))?;
        let mut p = pair(name);
        p.subject = rfc4514(cn, org, ou);
        write_file(&p.cert, cert.pem().as_bytes(), false)?;
        write_file(&p.key, key.serialize_pem().as_bytes(), true)?;
        Ok(p)
    };
    let server = issue(
        "server",
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        "localhost",
        &format!("{DEV_MARKER} Server"),
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let client = issue(
        "client",
        vec!["client.demo-fintech.example".into()],
        "demo-fintech-client",
        &format!("{DEV_MARKER} Demo Fintech"),
        Some("demo-org-0001"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let gateway = issue(
        "gateway",
        vec!["gateway.tessera-dev.example".into()],
        "demo-gateway",
        &format!("{DEV_MARKER} Gateway"),
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let admin = issue(
        "admin",
        vec![],
        "tessera-admin",
        &format!("{DEV_MARKER} Admin"),
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    let directory_key = tessera_jose::generate(SigningAlg::ES256, KeyId::new("dev-directory-1"))
        .map_err(|e| DevError::Generate { what: "the demo directory key", message: e.to_string() })?;
    let directory = DirectoryFiles {
        issuer: DEV_DIRECTORY_ISSUER.into(),
        signing_key_jwk: dev.join("directory.jwk"),
        jwks: dev.join("directory.jwks.json"),
    };
    let private = serde_json::to_vec_pretty(directory_key.private_jwk.as_ref())
        .map_err(|e| DevError::Generate { what: "the demo directory key", message: e.to_string() })?;
    write_file(&directory.signing_key_jwk, &private, true)?;
    let jwks = serde_json::json!({ "keys": [directory_key.public_jwk.as_ref()] });
    write_file(&directory.jwks, jwks.to_string().as_bytes(), false)?;

    let manifest = Manifest {
        tessera_dev: true,
        warning: "Generated by `tessera serve` in dev mode. Not for production: these keys are unprotected.".into(),
        database: data_dir.join("tessera.db"),
        ca: ca_pair,
        server,
        client,
        gateway,
        admin,
        directory,
        key_encryption_key: kek_path,
    };
    let manifest_path = dev.join(MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| DevError::Manifest { path: manifest_path.clone(), message: e.to_string() })?;
    write_file(&manifest_path, &text, false)?;
    Ok(manifest)
}

/// The client id dev mode provisions for the generated gateway certificate.
pub const DEV_GATEWAY_CLIENT_ID: &str = "dev-gateway";

/// Dev mode's API gateway client: `tls_client_auth` with the generated gateway certificate, and
/// the introspection entitlement granted, so that introspection can be tried at once. (Outside
/// dev mode a gateway registers and a human approves its `introspection` scope.)
pub fn gateway_client(
    manifest: &Manifest,
    scope: &str,
    now: tessera_core::UnixTime,
) -> tessera_core::client::ClientRecord {
    use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
    let mut metadata = serde_json::Map::new();
    metadata.insert("client_name".into(), serde_json::json!("Tessera dev API gateway"));
    metadata.insert("token_endpoint_auth_method".into(), serde_json::json!("tls_client_auth"));
    metadata.insert("tls_client_auth_subject_dn".into(), serde_json::json!(manifest.gateway.subject));
    metadata.insert("grant_types".into(), serde_json::json!(["client_credentials"]));
    metadata.insert("tls_client_certificate_bound_access_tokens".into(), serde_json::json!(true));
    ClientRecord {
        client_id: tessera_core::ClientId::new(DEV_GATEWAY_CLIENT_ID),
        status: ClientStatus::Active,
        status_reason: None,
        org_id: "tessera-dev".into(),
        org_name: "Tessera dev".into(),
        software_id: "dev-gateway".into(),
        directory: "dev-mode-provisioning".into(),
        purpose: "API gateway token introspection (dev mode)".into(),
        risk_tier: "medium".into(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        last_used_at: None,
        tokens_not_before: None,
        registration_token_hash: String::new(),
        ssa_jti: None,
        transport_cert_subject: manifest.gateway.subject.clone(),
        scopes: vec![ScopeGrant {
            scope: scope.to_owned(),
            state: ScopeState::Granted,
            rule: "dev-mode-provisioning".into(),
            decided_at: now,
            reason: Some("provisioned by dev mode for the generated gateway certificate".into()),
        }],
        metadata,
    }
}

/// The configuration dev mode runs with (environment overrides still apply on top).
pub fn raw_config(manifest: &Manifest, issuer: &str, listen: &str) -> RawConfig {
    RawConfig {
        issuer: issuer.to_owned(),
        server: RawServer {
            listen: listen.to_owned(),
            tls_cert_file: manifest.server.cert.clone(),
            tls_key_file: manifest.server.key.clone(),
            client_ca_files: vec![manifest.ca.cert.clone()],
            mtls_alias: None,
            workers: None,
        },
        database: RawDatabase {
            url: format!("sqlite://{}", manifest.database.display()),
            pool_size: 8,
            connect_timeout_secs: 5,
        },
        keys: RawKeys {
            encryption_key_file: Some(manifest.key_encryption_key.clone()),
            encryption_key: None,
            algorithm: "ES256".into(),
            // Short in dev so that rotation can be tried in a minute.
            prepublication_secs: 30,
            max_token_lifetime_secs: 900,
            reload_interval_secs: 2,
        },
        log: RawLog::default(),
        registration: dev_registration(manifest),
        introspection: Default::default(),
        redis: None,
        admin: crate::config::RawAdmin {
            subjects: vec![manifest.admin.subject.clone()],
            client_ca_files: vec![manifest.ca.cert.clone()],
        },
        lifecycle: Default::default(),
        notifications: Default::default(),
        token: crate::config::RawToken {
            default_audience: Some("https://api.tessera-dev.example".into()),
            resources: vec!["https://api.tessera-dev.example/payments".into()],
            ..Default::default()
        },
        dangerous_allow_dev_material: false,
    }
}

/// Dev mode trusts the demo directory and maps the usual Open Banking roles to scopes.
fn dev_registration(manifest: &Manifest) -> RawRegistration {
    let scopes = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    RawRegistration {
        role_scopes: [
            (
                "AISP".to_owned(),
                scopes(&["accounts:read", "balances:read", "transactions:read", "beneficiaries:read", "products:read"]),
            ),
            (
                "PISP".to_owned(),
                scopes(&["payments:write", "payments:read", "domestic-payments", "standing-orders:write"]),
            ),
            ("CBPII".to_owned(), scopes(&["fundsconfirmations:read"])),
            ("GATEWAY".to_owned(), scopes(&["introspection"])),
        ]
        .into_iter()
        .collect(),
        directories: vec![RawDirectory {
            issuer: manifest.directory.issuer.clone(),
            jwks_file: Some(manifest.directory.jwks.clone()),
            jwks_uri: None,
            jwks_ca_files: vec![],
            algorithms: vec!["ES256".into(), "PS256".into(), "EdDSA".into()],
            max_ssa_age_secs: 3600,
            allow_reuse: false,
            org_status_uri: None,
        }],
        ..RawRegistration::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let ca_before = fs::read(&first.ca.cert).unwrap();
        let second = ensure(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(ca_before, fs::read(&second.ca.cert).unwrap(), "second start reuses the CA");
        for key in [
            &first.ca.key,
            &first.server.key,
            &first.client.key,
            &first.key_encryption_key,
            &first.directory.signing_key_jwk,
        ] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        assert!(is_dev_dir(first.ca.cert.parent().unwrap()));
        assert!(!is_dev_dir(dir.path()));
        // The directory JWKS has only public members.
        let jwks = fs::read_to_string(&first.directory.jwks).unwrap();
        assert!(!jwks.contains("\"d\""));
    }

    #[test]
    fn missing_file_regenerates_the_pki_but_keeps_the_kek() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let kek = fs::read(&first.key_encryption_key).unwrap();
        fs::remove_file(&first.gateway.key).unwrap();
        let second = ensure(dir.path()).unwrap();
        assert!(second.gateway.key.exists());
        assert_ne!(fs::read(&first.ca.cert).ok(), None);
        assert_eq!(kek, fs::read(&second.key_encryption_key).unwrap());
    }
}
