//! A registered client as the domain sees it: a workload identity with an owner, a purpose, a
//! risk tier, an expiry, a last-used time, and one decision per requested scope.
//!
//! Two shapes: [`ClientRecord`] is the whole stored client (SQL, RFC 7592 reads, the admin API);
//! [`CachedClient`] is the compact, immutable view of it that every node keeps in memory for the
//! hot paths (token endpoint authentication and issuing, introspection).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cert::{CertFacts, SubjectRule};
use crate::{ClientId, UnixTime};

/// Where a requested scope ended up after the onboarding policy (or a reviewer) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeState {
    /// Grantable now.
    Granted,
    /// Waits for a human decision; not grantable.
    PendingReview,
    /// Refused; not grantable.
    Denied,
}

impl ScopeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeState::Granted => "granted",
            ScopeState::PendingReview => "pending_review",
            ScopeState::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "granted" => Some(ScopeState::Granted),
            "pending_review" => Some(ScopeState::PendingReview),
            "denied" => Some(ScopeState::Denied),
            _ => None,
        }
    }
}

/// One requested scope and the decision about it, with the rule (policy id, or the reviewer)
/// that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeGrant {
    pub scope: String,
    pub state: ScopeState,
    /// The policy id that decided, e.g. `read-only-for-active-orgs`, or `review:<admin subject>`.
    pub rule: String,
    pub decided_at: UnixTime,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    Active,
    /// Reversible: tokens refused, existing tokens inactive.
    Suspended,
    /// Irreversible end of the client.
    Offboarded,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::Suspended => "suspended",
            ClientStatus::Offboarded => "offboarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ClientStatus::Active),
            "suspended" => Some(ClientStatus::Suspended),
            "offboarded" => Some(ClientStatus::Offboarded),
            _ => None,
        }
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored client. `metadata` holds every registered RFC 7591 value exactly as returned to
/// the client (including server-chosen ones); the typed fields are what the server acts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: ClientId,
    pub status: ClientStatus,
    pub status_reason: Option<String>,
    /// Owner: the organisation named by the software statement.
    pub org_id: String,
    pub org_name: String,
    pub software_id: String,
    /// The directory (SSA issuer) that vouched for the software.
    pub directory: String,
    pub purpose: String,
    pub risk_tier: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    pub last_used_at: Option<UnixTime>,
    /// Tokens issued before this time are inactive (set by suspension and offboarding).
    pub tokens_not_before: Option<UnixTime>,
    /// SHA-256 (base64url) of the registration access token; the token itself is never stored.
    pub registration_token_hash: String,
    /// The SSA `jti`, unique when the directory forbids registering one statement twice.
    pub ssa_jti: Option<String>,
    /// Subject DN of the transport certificate used at registration (RFC 4514).
    pub transport_cert_subject: String,
    pub scopes: Vec<ScopeGrant>,
    /// The registered metadata (JSON object), as returned by RFC 7591/7592 responses.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ClientRecord {
    pub fn scopes_in(&self, state: ScopeState) -> impl Iterator<Item = &str> {
        self.scopes.iter().filter(move |g| g.state == state).map(|g| g.scope.as_str())
    }

    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// The part of a client that the hot paths read: token endpoint authentication and issuing,
/// and introspection's "is this token's client still good?".
///
/// It exists because the whole [`ClientRecord`] is large (the registered metadata as a JSON map
/// with the ~1 KB software statement, every scope decision with its rule, owner strings): with
/// 100,000 clients the cache of full records was 5.4 KB per client, over 500 MB resident. This
/// view keeps only what those paths read, in boxed slices and shared strings: about 350 bytes
/// per cached client (`cargo bench -p tessera-store --bench cache_memory`).
///
/// It is immutable: a change to the client is a new view built from the new stored record
/// ([`CachedClient::from`] or [`CachedClient::new`]) and swapped in whole, and the cache hands
/// out `Arc<CachedClient>`, which nobody can change. The plain fields are public, to read like
/// [`ClientRecord`]'s; the compactly stored ones are private behind accessors, so a view can
/// only be built from a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedClient {
    pub client_id: ClientId,
    pub status: ClientStatus,
    /// The stored record's `updated_at`: which version of the client this view shows.
    pub updated_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    /// Tokens issued before this time are inactive (set by suspension and offboarding).
    pub tokens_not_before: Option<UnixTime>,
    /// Rare (suspended and offboarded clients only).
    status_reason: Option<Box<str>>,
    risk_tier: Arc<str>,
    scopes: Box<[CachedScope]>,
    auth: TokenEndpointAuth,
}

/// One requested scope and where it ended up; the rule and the date stay in the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedScope {
    pub scope: Arc<str>,
    pub state: ScopeState,
}

/// How the client authenticates at the token endpoint: its registered
/// `token_endpoint_auth_method` with what that method needs, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenEndpointAuth {
    /// `tls_client_auth` (RFC 8705 §2.1), also when no method is registered. `None` when no
    /// valid subject value is registered: authentication then fails.
    TlsClientAuth(Option<RegisteredSubject>),
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): the certificate must be in the client's keys.
    SelfSignedTlsClientAuth(Option<RegisteredKeys>),
    /// `private_key_jwt`: keys, and `token_endpoint_auth_signing_alg` when registered.
    PrivateKeyJwt { keys: Option<RegisteredKeys>, signing_alg: Option<Box<str>> },
    /// Any other registered method: nothing this server accepts at the token endpoint. Kept so
    /// the log can say what the client registered.
    Other(Box<str>),
}

/// Where a client's public keys are: `jwks` by value, or `jwks_uri`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisteredKeys {
    /// The registered `jwks` member as compact JSON text: far smaller than a JSON tree, and the
    /// key cache parses it once per client version anyway.
    Jwks(Box<str>),
    /// The registered `jwks_uri`.
    JwksUri(Box<str>),
}

/// The one registered RFC 8705 §2.1.2 subject value a `tls_client_auth` client is matched by,
/// already known to parse.
///
/// It keeps the registered text and parses it again for each match instead of keeping the
/// parsed [`SubjectRule`]: a parsed four-RDN DN is a tree of small allocations, 1,216 bytes
/// resident against 97 for its text (the `cache_memory` bench), which would triple the cache;
/// parsing and matching costs about 1.3 µs (`cargo bench -p tessera-core`), next to a chain
/// validation and a signature per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredSubject {
    /// Index into [`SubjectRule::FIELDS`].
    field: u8,
    value: Box<str>,
}

impl RegisteredSubject {
    /// The first field of [`SubjectRule::FIELDS`] whose value is a string that parses, in RFC
    /// 8705 order (registration allows only one; this is what the token endpoint always did).
    fn from_metadata(metadata: &serde_json::Map<String, Value>) -> Option<Self> {
        SubjectRule::FIELDS.iter().enumerate().find_map(|(i, field)| {
            let value = metadata.get(*field).and_then(Value::as_str)?;
            SubjectRule::from_metadata(field, value).ok()?;
            Some(RegisteredSubject { field: u8::try_from(i).ok()?, value: value.into() })
        })
    }

    /// The metadata field the value came from, e.g. `tls_client_auth_subject_dn`.
    pub fn field(&self) -> &'static str {
        SubjectRule::FIELDS.get(usize::from(self.field)).copied().unwrap_or(SubjectRule::FIELDS[0])
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The parsed rule. `None` cannot happen for a value built by [`CachedClient::new`], which
    /// keeps only values that parse; a caller treats it as "no rule registered".
    pub fn rule(&self) -> Option<SubjectRule> {
        SubjectRule::from_metadata(self.field(), &self.value).ok()
    }

    /// Does the certificate carry the registered subject (RFC 8705 §2.1.2 matching)?
    pub fn matches(&self, facts: &CertFacts) -> bool {
        self.rule().is_some_and(|r| r.matches(facts))
    }
}

impl RegisteredKeys {
    /// `jwks` wins when both are present, as it always did (registration refuses both).
    fn from_metadata(metadata: &serde_json::Map<String, Value>) -> Option<Self> {
        if let Some(jwks) = metadata.get("jwks") {
            return Some(RegisteredKeys::Jwks(jwks.to_string().into()));
        }
        metadata.get("jwks_uri").and_then(Value::as_str).map(|u| RegisteredKeys::JwksUri(u.into()))
    }
}

impl TokenEndpointAuth {
    /// The method's registered name; `tls_client_auth` when none is registered.
    pub fn method(&self) -> &str {
        match self {
            TokenEndpointAuth::TlsClientAuth(_) => "tls_client_auth",
            TokenEndpointAuth::SelfSignedTlsClientAuth(_) => "self_signed_tls_client_auth",
            TokenEndpointAuth::PrivateKeyJwt { .. } => "private_key_jwt",
            TokenEndpointAuth::Other(m) => m,
        }
    }

    /// The client's registered keys, for the methods that use them.
    pub fn keys(&self) -> Option<&RegisteredKeys> {
        match self {
            TokenEndpointAuth::SelfSignedTlsClientAuth(keys) | TokenEndpointAuth::PrivateKeyJwt { keys, .. } => {
                keys.as_ref()
            }
            TokenEndpointAuth::TlsClientAuth(_) | TokenEndpointAuth::Other(_) => None,
        }
    }

    fn from_metadata(metadata: &serde_json::Map<String, Value>) -> Self {
        // A missing (or non-string) method is tls_client_auth, the method this server defaults to.
        match metadata.get("token_endpoint_auth_method").and_then(Value::as_str).unwrap_or("tls_client_auth") {
            "tls_client_auth" => TokenEndpointAuth::TlsClientAuth(RegisteredSubject::from_metadata(metadata)),
            "self_signed_tls_client_auth" => {
                TokenEndpointAuth::SelfSignedTlsClientAuth(RegisteredKeys::from_metadata(metadata))
            }
            "private_key_jwt" => TokenEndpointAuth::PrivateKeyJwt {
                keys: RegisteredKeys::from_metadata(metadata),
                signing_alg: metadata.get("token_endpoint_auth_signing_alg").and_then(Value::as_str).map(Into::into),
            },
            other => TokenEndpointAuth::Other(other.into()),
        }
    }
}

/// Shares the strings that repeat across clients (risk tiers, scope names): one allocation per
/// distinct value instead of one per client, which saves about 80 bytes per client with one
/// scope (`cache_memory`: 347 against 426). A cache keeps one and starts a fresh one on a full
/// reload, so names no client uses any more do not accumulate.
#[derive(Debug, Default)]
pub struct SharedNames(HashSet<Arc<str>>);

impl SharedNames {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.0.insert(shared.clone());
        shared
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl CachedClient {
    /// The view of `record`, with its repeated strings shared through `names`.
    pub fn new(record: &ClientRecord, names: &mut SharedNames) -> Self {
        CachedClient {
            client_id: record.client_id.clone(),
            status: record.status,
            updated_at: record.updated_at,
            expires_at: record.expires_at,
            tokens_not_before: record.tokens_not_before,
            status_reason: record.status_reason.as_deref().map(Into::into),
            risk_tier: names.get(&record.risk_tier),
            scopes: record.scopes.iter().map(|g| CachedScope { scope: names.get(&g.scope), state: g.state }).collect(),
            auth: TokenEndpointAuth::from_metadata(&record.metadata),
        }
    }

    pub fn status_reason(&self) -> Option<&str> {
        self.status_reason.as_deref()
    }

    pub fn risk_tier(&self) -> &str {
        &self.risk_tier
    }

    /// Every requested scope with its state, in the record's order.
    pub fn scopes(&self) -> &[CachedScope] {
        &self.scopes
    }

    pub fn auth(&self) -> &TokenEndpointAuth {
        &self.auth
    }

    pub fn scopes_in(&self, state: ScopeState) -> impl Iterator<Item = &str> {
        self.scopes.iter().filter(move |g| g.state == state).map(|g| &*g.scope)
    }

    /// The decision about `scope`, or `None` when the client never requested it.
    pub fn scope_state(&self, scope: &str) -> Option<ScopeState> {
        self.scopes.iter().find(|g| &*g.scope == scope).map(|g| g.state)
    }

    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

impl From<&ClientRecord> for CachedClient {
    /// The view of one record, sharing nothing with other views (a cache uses
    /// [`CachedClient::new`] with its [`SharedNames`]).
    fn from(record: &ClientRecord) -> Self {
        CachedClient::new(record, &mut SharedNames::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    const STATEMENT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzb2Z0d2FyZV9pZCI6InMxIn0.c2lnbmF0dXJl";

    fn grant(scope: &str, state: ScopeState) -> ScopeGrant {
        ScopeGrant {
            scope: scope.into(),
            state,
            rule: "read-only-for-active-orgs".into(),
            decided_at: UnixTime(10),
            reason: Some("policy".into()),
        }
    }

    fn record(metadata: Value) -> ClientRecord {
        let mut metadata = metadata.as_object().cloned().unwrap();
        metadata.insert("software_statement".into(), json!(STATEMENT));
        metadata.insert("client_name".into(), json!("Demo Fintech"));
        ClientRecord {
            client_id: ClientId::new("c1"),
            status: ClientStatus::Suspended,
            status_reason: Some("certificate compromised".into()),
            org_id: "org-1".into(),
            org_name: "Org One".into(),
            software_id: "software-1".into(),
            directory: "directory".into(),
            purpose: "tests".into(),
            risk_tier: "high".into(),
            created_at: UnixTime(1),
            updated_at: UnixTime(2),
            expires_at: Some(UnixTime(3)),
            last_used_at: Some(UnixTime(4)),
            tokens_not_before: Some(UnixTime(5)),
            registration_token_hash: "hash".into(),
            ssa_jti: Some("jti-1".into()),
            transport_cert_subject: "CN=transport".into(),
            scopes: vec![
                grant("accounts:read", ScopeState::Granted),
                grant("payments:write", ScopeState::PendingReview),
                grant("admin", ScopeState::Denied),
                grant("balances:read", ScopeState::Granted),
            ],
            metadata,
        }
    }

    #[test]
    fn cached_view_keeps_state_dates_and_scope_decisions() {
        let v = CachedClient::from(&record(json!({})));
        assert_eq!(v.client_id.as_str(), "c1");
        assert_eq!((v.status, v.status_reason()), (ClientStatus::Suspended, Some("certificate compromised")));
        assert_eq!(
            (v.updated_at, v.expires_at, v.tokens_not_before),
            (UnixTime(2), Some(UnixTime(3)), Some(UnixTime(5)))
        );
        assert_eq!(v.risk_tier(), "high");
        let scopes: Vec<(&str, ScopeState)> = v.scopes().iter().map(|s| (&*s.scope, s.state)).collect();
        assert_eq!(
            scopes,
            [
                ("accounts:read", ScopeState::Granted),
                ("payments:write", ScopeState::PendingReview),
                ("admin", ScopeState::Denied),
                ("balances:read", ScopeState::Granted),
            ],
            "every scope, in order, with its state"
        );
        assert_eq!(v.scopes_in(ScopeState::Granted).collect::<Vec<_>>(), ["accounts:read", "balances:read"]);
        assert_eq!(v.scope_state("admin"), Some(ScopeState::Denied));
        assert_eq!(v.scope_state("other"), None);
        assert!(v.is_expired(UnixTime(3)) && !v.is_expired(UnixTime(2)));
    }

    #[test]
    fn cached_view_drops_what_the_hot_paths_never_read() {
        let r =
            record(json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example" }));
        let shown = format!("{:?}", CachedClient::from(&r));
        for gone in [STATEMENT, "Demo Fintech", "read-only-for-active-orgs", "Org One", "jti-1", "CN=transport", "hash"]
        {
            assert!(!shown.contains(gone), "{gone:?} is not cached: {shown}");
        }
    }

    #[test]
    fn auth_method_defaults_to_tls_client_auth() {
        for md in [json!({}), json!({ "token_endpoint_auth_method": null }), json!({ "token_endpoint_auth_method": 7 })]
        {
            let v = CachedClient::from(&record(md.clone()));
            assert_eq!(v.auth(), &TokenEndpointAuth::TlsClientAuth(None), "{md}");
            assert_eq!(v.auth().method(), "tls_client_auth");
        }
        let v = CachedClient::from(&record(json!({ "token_endpoint_auth_method": "client_secret_basic" })));
        assert_eq!(v.auth(), &TokenEndpointAuth::Other("client_secret_basic".into()));
        assert_eq!(v.auth().method(), "client_secret_basic");
        assert_eq!(v.auth().keys(), None);
    }

    #[test]
    fn subject_rule_is_picked_from_each_field() {
        let values = [
            ("tls_client_auth_subject_dn", "CN=fintech-1,O=Org One"),
            ("tls_client_auth_san_dns", "fintech.example"),
            ("tls_client_auth_san_uri", "https://fintech.example/software"),
            ("tls_client_auth_san_ip", "192.0.2.10"),
            ("tls_client_auth_san_email", "ops@fintech.example"),
        ];
        for (field, value) in values {
            let mut md = json!({ "token_endpoint_auth_method": "tls_client_auth" });
            md[field] = json!(value);
            let v = CachedClient::from(&record(md));
            let TokenEndpointAuth::TlsClientAuth(Some(subject)) = v.auth() else { panic!("{field}: {:?}", v.auth()) };
            assert_eq!((subject.field(), subject.value()), (field, value));
            let rule = subject.rule().unwrap();
            assert_eq!(rule, SubjectRule::from_metadata(field, value).unwrap());
            assert_eq!(rule.field(), field);
        }
        // RFC 8705 order decides; a value that does not parse is skipped, as it always was.
        let md = json!({
            "tls_client_auth_subject_dn": "not a DN",
            "tls_client_auth_san_ip": "192.0.2.10",
            "tls_client_auth_san_dns": "fintech.example",
        });
        let TokenEndpointAuth::TlsClientAuth(Some(subject)) = CachedClient::from(&record(md)).auth().clone() else {
            panic!()
        };
        assert_eq!(subject.field(), "tls_client_auth_san_dns");
        let md = json!({ "tls_client_auth_subject_dn": "not a DN", "tls_client_auth_san_ip": 7 });
        assert_eq!(CachedClient::from(&record(md)).auth(), &TokenEndpointAuth::TlsClientAuth(None));
    }

    #[test]
    fn keys_and_signing_alg_are_kept_for_the_methods_that_use_them() {
        let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": "x", "y": "y", "x5c": ["MIIB"] }] });
        let md = json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwks.clone() });
        let v = CachedClient::from(&record(md));
        let Some(RegisteredKeys::Jwks(text)) = v.auth().keys() else { panic!("{:?}", v.auth()) };
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), jwks, "the JWKS survives as JSON text");

        let md = json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://fintech.example/jwks",
            "token_endpoint_auth_signing_alg": "PS256",
        });
        assert_eq!(
            CachedClient::from(&record(md)).auth(),
            &TokenEndpointAuth::PrivateKeyJwt {
                keys: Some(RegisteredKeys::JwksUri("https://fintech.example/jwks".into())),
                signing_alg: Some("PS256".into()),
            }
        );
        // jwks wins over jwks_uri; a tls_client_auth client keeps neither.
        let md = json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://x" });
        assert!(matches!(CachedClient::from(&record(md)).auth().keys(), Some(RegisteredKeys::Jwks(_))));
        let md = json!({ "tls_client_auth_san_dns": "a.example", "jwks_uri": "https://x" });
        assert_eq!(CachedClient::from(&record(md)).auth().keys(), None);
    }

    #[test]
    fn shared_names_are_one_allocation_per_value() {
        let mut names = SharedNames::new();
        let a = CachedClient::new(&record(json!({})), &mut names);
        let b = CachedClient::new(&record(json!({})), &mut names);
        assert!(Arc::ptr_eq(&a.risk_tier, &b.risk_tier));
        assert!(Arc::ptr_eq(&a.scopes[0].scope, &b.scopes[0].scope));
        assert_eq!(names.len(), 5, "one tier and four scope names");
        assert_eq!(a, b);
    }

    #[test]
    fn state_strings_round_trip() {
        for s in [ScopeState::Granted, ScopeState::PendingReview, ScopeState::Denied] {
            assert_eq!(ScopeState::parse(s.as_str()), Some(s));
        }
        for s in [ClientStatus::Active, ClientStatus::Suspended, ClientStatus::Offboarded] {
            assert_eq!(ClientStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ScopeState::parse("GRANTED"), None);
    }
}
