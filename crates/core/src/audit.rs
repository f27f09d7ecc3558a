//! The tamper-evident audit log's domain: events, and the hash chain that links them.
//!
//! Each record's hash covers its sequence number, its content and the previous record's hash, so
//! changing, removing or reordering any record breaks every link after it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{ClientId, UnixTime};

/// The hash that precedes the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Kinds of audited facts. Wire strings are stable: SIEM rules match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    RegistrationAccepted,
    RegistrationRefused,
    RegistrationUpdated,
    RegistrationDeleted,
    ScopeDecision,
    ScopeReviewed,
    TokenIssued,
    TokenRevoked,
    ClientSuspended,
    ClientResumed,
    ClientOffboarded,
    ClientExtended,
    KeyRotated,
    AdminAction,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::RegistrationAccepted => "registration_accepted",
            AuditKind::RegistrationRefused => "registration_refused",
            AuditKind::RegistrationUpdated => "registration_updated",
            AuditKind::RegistrationDeleted => "registration_deleted",
            AuditKind::ScopeDecision => "scope_decision",
            AuditKind::ScopeReviewed => "scope_reviewed",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::ClientSuspended => "client_suspended",
            AuditKind::ClientResumed => "client_resumed",
            AuditKind::ClientOffboarded => "client_offboarded",
            AuditKind::ClientExtended => "client_extended",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::AdminAction => "admin_action",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// A fact to append. `actor` is who caused it: a client id, an admin certificate subject,
/// `policy`, or `sweeper`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub kind: AuditKind,
    pub actor: String,
    pub client_id: Option<ClientId>,
    pub data: Map<String, Value>,
}

/// An appended event with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// SHA-256 (hex) over a canonical JSON of the record (object members sorted at every level,
/// which serde_json's default map guarantees).
pub fn chain_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    /// The hashed form: these members in this order, compact JSON. Serialised straight from
    /// borrows (no copy of `data`, the old `json!` form cost a clone of it per event); the
    /// bytes are those the `json!` object with insertion order gave, so existing chains verify.
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: i64,
        at: i64,
        kind: &'a str,
        actor: &'a str,
        client_id: Option<&'a str>,
        data: &'a Map<String, Value>,
        prev: &'a str,
    }
    let canonical = Canonical {
        seq,
        at: event.at.0,
        kind: event.kind.as_str(),
        actor: &event.actor,
        client_id: event.client_id.as_ref().map(ClientId::as_str),
        data: &event.data,
        prev: prev_hash,
    };
    let mut hasher = Sha256::new();
    // Writing into the hasher cannot fail, and serialising these types cannot either; an error
    // here would still give a hash that no verifier reproduces, so it is not hidden.
    if let Err(e) = serde_json::to_writer(HashWriter(&mut hasher), &canonical) {
        return format!("unhashable: {e}");
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in hasher.finalize() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// `io::Write` into a SHA-256 state, so the canonical form is never materialised.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a chain stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// Checks records (in sequence order, starting after `prev_seq` whose hash is `prev_hash`).
/// Returns the last valid (seq, hash) or the first broken link.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    mut prev_seq: i64,
    mut prev_hash: String,
) -> Result<(i64, String), BrokenLink> {
    for r in records {
        if r.seq != prev_seq + 1 {
            return Err(BrokenLink { seq: r.seq, reason: format!("sequence jumps from {prev_seq} to {}", r.seq) });
        }
        if r.prev_hash != prev_hash {
            return Err(BrokenLink { seq: r.seq, reason: "prev_hash does not match the previous record".into() });
        }
        let expected = chain_hash(&prev_hash, r.seq, &r.event);
        if r.hash != expected {
            return Err(BrokenLink { seq: r.seq, reason: "content does not match its hash (record altered)".into() });
        }
        prev_seq = r.seq;
        prev_hash = r.hash.clone();
    }
    Ok((prev_seq, prev_hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hashed bytes are fixed, member by member: records written by earlier versions (which
    /// hashed a `json!` object in insertion order) keep verifying.
    #[test]
    fn chain_hash_covers_this_exact_canonical_form() {
        let mut data = Map::new();
        data.insert("jti".into(), json!("j1"));
        let e = AuditEvent {
            at: UnixTime(1001),
            kind: AuditKind::TokenIssued,
            actor: "c1".into(),
            client_id: Some(ClientId::new("c1")),
            data,
        };
        let text = format!(
            r#"{{"seq":7,"at":1001,"kind":"token_issued","actor":"c1","client_id":"c1","data":{{"jti":"j1"}},"prev":"{GENESIS_HASH}"}}"#
        );
        let expected: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(chain_hash(GENESIS_HASH, 7, &e), expected);
        let mut anonymous = e.clone();
        anonymous.client_id = None;
        let text = text.replace(r#""client_id":"c1""#, r#""client_id":null"#);
        let expected: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(chain_hash(GENESIS_HASH, 7, &anonymous), expected);
    }

    fn event(i: i64) -> AuditEvent {
        let mut data = Map::new();
        data.insert("n".into(), json!(i));
        AuditEvent {
            at: UnixTime(1000 + i),
            kind: AuditKind::TokenIssued,
            actor: "c1".into(),
            client_id: Some(ClientId::new("c1")),
            data,
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let e = event(seq);
                let hash = chain_hash(&prev, seq, &e);
                let r = AuditRecord { seq, event: e, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let (seq, hash) = verify_chain(&c, 0, GENESIS_HASH.into()).unwrap();
        assert_eq!(seq, 5);
        assert_eq!(hash, c[4].hash);
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_its_record() {
        let mut altered = chain(5);
        altered[2].event.actor = "mallory".into();
        assert_eq!(verify_chain(&altered, 0, GENESIS_HASH.into()).unwrap_err().seq, 3);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify_chain(&removed, 0, GENESIS_HASH.into()).unwrap_err().seq, 3);

        let mut rehashed = chain(5);
        // Recomputing the altered record's own hash still breaks the next link.
        rehashed[1].event.data.insert("n".into(), json!(99));
        rehashed[1].hash = chain_hash(&rehashed[1].prev_hash, 2, &rehashed[1].event);
        assert_eq!(verify_chain(&rehashed, 0, GENESIS_HASH.into()).unwrap_err().seq, 3);
    }

    #[test]
    fn kinds_round_trip() {
        assert_eq!(AuditKind::parse("token_issued"), Some(AuditKind::TokenIssued));
        assert_eq!(AuditKind::parse(AuditKind::ScopeReviewed.as_str()), Some(AuditKind::ScopeReviewed));
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
