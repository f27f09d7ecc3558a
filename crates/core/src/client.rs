//! A registered client as the domain sees it: a workload identity with an owner, a purpose, a
//! risk tier, an expiry, a last-used time, and one decision per requested scope.

use std::fmt;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
