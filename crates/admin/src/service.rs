//! The governance logic, without HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, BrokenLink, GENESIS_HASH, verify_chain};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeState};
use tessera_core::{ClientId, Clock, UnixTime};
use tessera_store::{AuditLog, ClientCache, ClientStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("client {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Per-tier thresholds of the automatic lifecycle.
#[derive(Clone, Debug)]
pub struct LifecyclePolicy {
    /// Tier -> seconds without use after which a client is suspended.
    pub dormancy_secs: BTreeMap<String, i64>,
    pub default_dormancy_secs: i64,
    /// Seconds a dormancy suspension lasts before the client is offboarded.
    pub offboard_grace_secs: i64,
}

impl LifecyclePolicy {
    fn dormancy_for(&self, tier: &str) -> i64 {
        self.dormancy_secs.get(tier).copied().unwrap_or(self.default_dormancy_secs)
    }
}

/// Filters of `clients list`.
#[derive(Clone, Debug, Default)]
pub struct ClientFilter {
    pub status: Option<ClientStatus>,
    pub tier: Option<String>,
    /// Matches the organisation id or (case-insensitively) a part of its name.
    pub owner: Option<String>,
    /// Unused (or never used) for at least this many seconds.
    pub dormant_for: Option<i64>,
    /// Expiring within this many seconds (or already expired).
    pub expiring_within: Option<i64>,
}

/// What the sweeper did to one client, and the rule that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SweepAction {
    pub client_id: String,
    pub action: &'static str,
    pub rule: String,
}

pub type ChangeHook = Arc<dyn Fn(&ClientId) + Send + Sync>;

/// The directory's current view of an organisation, where the directory offers one
/// (`Some("Active")`, `Some("Revoked")`, …); `None` when it cannot say (no status service, or it
/// did not answer: the sweeper then leaves the client alone).
#[async_trait::async_trait]
pub trait OrgStatusSource: Send + Sync {
    async fn status(&self, directory: &str, org_id: &str) -> Option<String>;
}

/// Receives each lifecycle event after it is durable (outbound notifications).
pub type EventHook = Arc<dyn Fn(Map<String, Value>) + Send + Sync>;

pub struct Admin {
    clients: Arc<dyn ClientStore>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    lifecycle: LifecyclePolicy,
    cache: Option<Arc<ClientCache>>,
    on_change: Option<ChangeHook>,
    on_event: Option<EventHook>,
    org_status: Option<Arc<dyn OrgStatusSource>>,
}

/// The marker the sweeper puts in `status_reason`, so that it can tell its own dormancy
/// suspensions (which it may escalate to offboarding) from an administrator's.
const DORMANT_PREFIX: &str = "dormant:";

impl Admin {
    pub fn new(
        clients: Arc<dyn ClientStore>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        lifecycle: LifecyclePolicy,
    ) -> Admin {
        Admin { clients, audit, clock, lifecycle, cache: None, on_change: None, on_event: None, org_status: None }
    }

    /// The sweeper suspends active clients whose organisation the directory no longer lists as
    /// Active.
    pub fn with_org_status(mut self, source: Arc<dyn OrgStatusSource>) -> Admin {
        self.org_status = Some(source);
        self
    }

    pub fn with_events(mut self, hook: EventHook) -> Admin {
        self.on_event = Some(hook);
        self
    }

    /// In a server: keep this node's cache current and tell the other nodes.
    pub fn with_cache(mut self, cache: Arc<ClientCache>, on_change: Option<ChangeHook>) -> Admin {
        self.cache = Some(cache);
        self.on_change = on_change;
        self
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    async fn load(&self, id: &str) -> Result<ClientRecord, AdminError> {
        self.clients.get_client(&ClientId::new(id)).await?.ok_or_else(|| AdminError::NotFound(id.to_owned()))
    }

    async fn save(&self, client: ClientRecord, events: Vec<AuditEvent>) -> Result<ClientRecord, AdminError> {
        self.clients.update_client(&client, &events).await?;
        if let Some(hook) = &self.on_event {
            for e in &events {
                let mut n = Map::new();
                n.insert("type".into(), json!(e.kind.as_str()));
                n.insert("client_id".into(), json!(client.client_id));
                n.insert("owner_org_id".into(), json!(client.org_id));
                n.insert("status".into(), json!(client.status.as_str()));
                n.insert("actor".into(), json!(e.actor));
                n.insert("at".into(), json!(e.at.0));
                n.insert("details".into(), Value::Object(e.data.clone()));
                hook(n);
            }
        }
        if let Some(cache) = &self.cache {
            cache.put(client.clone());
        }
        if let Some(hook) = &self.on_change {
            hook(&client.client_id);
        }
        Ok(client)
    }

    fn event(&self, kind: AuditKind, actor: &str, client: &ClientId, data: Value) -> AuditEvent {
        AuditEvent {
            at: self.clock.now(),
            kind,
            actor: actor.to_owned(),
            client_id: Some(client.clone()),
            data: data.as_object().cloned().unwrap_or_default(),
        }
    }

    pub async fn list(&self, filter: &ClientFilter) -> Result<Vec<ClientRecord>, AdminError> {
        let now = self.clock.now();
        let mut clients: Vec<ClientRecord> = self
            .clients
            .list_clients()
            .await?
            .into_iter()
            .filter(|c| filter.status.is_none_or(|s| c.status == s))
            .filter(|c| filter.tier.as_ref().is_none_or(|t| &c.risk_tier == t))
            .filter(|c| {
                filter
                    .owner
                    .as_ref()
                    .is_none_or(|o| c.org_id == *o || c.org_name.to_lowercase().contains(&o.to_lowercase()))
            })
            .filter(|c| filter.dormant_for.is_none_or(|d| c.last_used_at.unwrap_or(c.created_at).0 <= now.0 - d))
            .filter(|c| filter.expiring_within.is_none_or(|w| c.expires_at.is_some_and(|e| e.0 <= now.0 + w)))
            .collect();
        clients.sort_by(|a, b| {
            (a.org_name.as_str(), a.client_id.as_str()).cmp(&(b.org_name.as_str(), b.client_id.as_str()))
        });
        Ok(clients)
    }

    pub async fn show(&self, id: &str) -> Result<ClientRecord, AdminError> {
        self.load(id).await
    }

    /// Suspension: reversible; every token issued so far becomes inactive at once.
    pub async fn suspend(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        match c.status {
            ClientStatus::Offboarded => {
                return Err(AdminError::Conflict(format!("client {id} is offboarded; it cannot be suspended")));
            }
            ClientStatus::Suspended => return Err(AdminError::Conflict(format!("client {id} is already suspended"))),
            ClientStatus::Active => {}
        }
        let now = self.clock.now();
        c.status = ClientStatus::Suspended;
        c.status_reason = Some(reason.to_owned());
        // Tokens issued in this very second are covered too.
        c.tokens_not_before = Some(now.plus(1));
        c.updated_at = now;
        let ev = self.event(AuditKind::ClientSuspended, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    /// Resumption: new tokens may be issued; tokens from before the suspension stay inactive.
    pub async fn resume(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        if c.status != ClientStatus::Suspended {
            return Err(AdminError::Conflict(format!("client {id} is {}, not suspended", c.status)));
        }
        c.status = ClientStatus::Active;
        c.status_reason = None;
        c.updated_at = self.clock.now();
        let ev = self.event(AuditKind::ClientResumed, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    /// Offboarding: irreversible; every token ends at once.
    pub async fn offboard(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        if c.status == ClientStatus::Offboarded {
            return Err(AdminError::Conflict(format!("client {id} is already offboarded")));
        }
        let now = self.clock.now();
        c.status = ClientStatus::Offboarded;
        c.status_reason = Some(reason.to_owned());
        c.tokens_not_before = Some(now.plus(1));
        c.updated_at = now;
        let ev = self.event(AuditKind::ClientOffboarded, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    pub async fn extend(&self, id: &str, until: UnixTime, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        let now = self.clock.now();
        if until <= now {
            return Err(AdminError::Invalid("the new expiry must be in the future".into()));
        }
        if c.status == ClientStatus::Offboarded {
            return Err(AdminError::Conflict(format!("client {id} is offboarded")));
        }
        let previous = c.expires_at.map(|t| t.0);
        c.expires_at = Some(until);
        c.updated_at = now;
        let ev = self.event(
            AuditKind::ClientExtended,
            actor,
            &c.client_id,
            json!({"previous_expires_at": previous, "expires_at": until.0}),
        );
        self.save(c, vec![ev]).await
    }

    /// Pending scope decisions: (client, scope, decided_at of the pending state).
    pub async fn reviews(&self) -> Result<Vec<(ClientRecord, String)>, AdminError> {
        let mut out = Vec::new();
        for c in self.clients.list_clients().await? {
            if c.status == ClientStatus::Offboarded {
                continue;
            }
            for g in c.scopes.iter().filter(|g| g.state == ScopeState::PendingReview) {
                out.push((c.clone(), g.scope.clone()));
            }
        }
        Ok(out)
    }

    /// The human tier of the onboarding policy: a pending scope becomes granted (grantable at
    /// once on every node) or denied.
    pub async fn review(
        &self,
        id: &str,
        scope: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        if c.status == ClientStatus::Offboarded {
            return Err(AdminError::Conflict(format!("client {id} is offboarded")));
        }
        let now = self.clock.now();
        let grant = c
            .scopes
            .iter_mut()
            .find(|g| g.scope == scope)
            .ok_or_else(|| AdminError::Invalid(format!("client {id} never requested scope {scope:?}")))?;
        if grant.state != ScopeState::PendingReview {
            return Err(AdminError::Conflict(format!(
                "scope {scope:?} of client {id} is {}, not pending review",
                grant.state.as_str()
            )));
        }
        grant.state = if approve { ScopeState::Granted } else { ScopeState::Denied };
        grant.rule = format!("review:{actor}");
        grant.reason = Some(reason.to_owned());
        grant.decided_at = now;
        c.updated_at = now;
        let ev = self.event(
            AuditKind::ScopeReviewed,
            actor,
            &c.client_id,
            json!({"scope": scope, "state": if approve { "granted" } else { "denied" }, "reason": reason}),
        );
        self.save(c, vec![ev]).await
    }

    /// The automatic lifecycle at `now`: expiry and dormancy suspend, a dormancy suspension that
    /// outlived its grace period offboards. Every action is audited with the rule that fired.
    pub async fn sweep(&self, now: UnixTime) -> Result<Vec<SweepAction>, AdminError> {
        let mut actions = Vec::new();
        let mut org_statuses: std::collections::HashMap<(String, String), Option<String>> = Default::default();
        for c in self.clients.list_clients().await? {
            let id = c.client_id.to_string();
            let action = match c.status {
                ClientStatus::Active if c.expires_at.is_some_and(|e| e <= now) => {
                    Some(("suspend", "expired".to_owned()))
                }
                ClientStatus::Active => {
                    let days = self.lifecycle.dormancy_for(&c.risk_tier);
                    // The last use, or the last change (a resumption above all) if later: a
                    // client an administrator has just resumed gets a full dormancy period again
                    // instead of being suspended by the next sweep.
                    let last = c.last_used_at.unwrap_or(c.created_at).max(c.updated_at);
                    (now.0 - last.0 >= days).then(|| {
                        (
                            "suspend",
                            format!(
                                "{DORMANT_PREFIX}unused for {} days (tier {} limit {} days)",
                                (now.0 - last.0) / 86_400,
                                c.risk_tier,
                                days / 86_400
                            ),
                        )
                    })
                }
                ClientStatus::Suspended
                    if c.status_reason.as_deref().is_some_and(|r| r.starts_with(DORMANT_PREFIX))
                        && now.0 - c.updated_at.0 >= self.lifecycle.offboard_grace_secs =>
                {
                    Some((
                        "offboard",
                        format!(
                            "dormant-grace: suspended for dormancy more than {} days ago",
                            self.lifecycle.offboard_grace_secs / 86_400
                        ),
                    ))
                }
                _ => None,
            };
            // The directory's status check, where it offers one: an organisation it no longer
            // lists as Active loses access (checked once per organisation per sweep).
            let action = match (action, &self.org_status) {
                (None, Some(source)) if c.status == ClientStatus::Active => {
                    let key = (c.directory.clone(), c.org_id.clone());
                    let status = match org_statuses.get(&key) {
                        Some(s) => s.clone(),
                        None => {
                            let s = source.status(&c.directory, &c.org_id).await;
                            org_statuses.insert(key, s.clone());
                            s
                        }
                    };
                    status.filter(|s| !s.eq_ignore_ascii_case("active")).map(|s| {
                        (
                            "suspend",
                            format!("org-status: directory {} lists organisation {} as {s}", c.directory, c.org_id),
                        )
                    })
                }
                (action, _) => action,
            };
            let Some((action, rule)) = action else { continue };
            // The sweeper acts at `now`, which tests may move: the records carry that time. The
            // token cut-off is the real time, though: no token can have been issued later, and a
            // cut-off in the future would make the tokens of a resumed client inactive.
            let mut c = c;
            let kind = if action == "suspend" { AuditKind::ClientSuspended } else { AuditKind::ClientOffboarded };
            c.status = if action == "suspend" { ClientStatus::Suspended } else { ClientStatus::Offboarded };
            c.status_reason = Some(rule.clone());
            c.tokens_not_before = Some(self.clock.now().plus(1));
            c.updated_at = now;
            let mut data = Map::new();
            data.insert("rule".into(), json!(rule));
            let ev = AuditEvent { at: now, kind, actor: "sweeper".into(), client_id: Some(c.client_id.clone()), data };
            self.save(c, vec![ev]).await?;
            tracing::info!(client_id = %id, action, rule = %rule, "lifecycle sweeper");
            actions.push(SweepAction { client_id: id, action, rule });
        }
        Ok(actions)
    }

    /// Walks the whole audit chain; the first broken link, if any.
    pub async fn audit_verify(&self) -> Result<Result<(i64, String), BrokenLink>, AdminError> {
        let (mut seq, mut hash) = (0i64, GENESIS_HASH.to_owned());
        loop {
            let page = self.audit.read(seq, 10_000).await?;
            if page.is_empty() {
                return Ok(Ok((seq, hash)));
            }
            match verify_chain(&page, seq, hash.clone()) {
                Ok((s, h)) => {
                    seq = s;
                    hash = h;
                }
                Err(broken) => return Ok(Err(broken)),
            }
        }
    }

    /// Audit records at or after `since`, in order, for a SIEM.
    pub async fn audit_export(&self, since: UnixTime) -> Result<Vec<AuditRecord>, AdminError> {
        let mut out = Vec::new();
        let mut seq = 0;
        loop {
            let page = self.audit.read(seq, 10_000).await?;
            let Some(last) = page.last() else { return Ok(out) };
            seq = last.seq;
            out.extend(page.into_iter().filter(|r| r.event.at >= since));
        }
    }
}

/// One inventory row: who holds access, for what, since when, last used when, and its state.
pub fn inventory_row(c: &ClientRecord) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.metadata.get("client_name").cloned().unwrap_or(Value::Null),
        "owner_org_id": c.org_id,
        "owner_org_name": c.org_name,
        "software_id": c.software_id,
        "directory": c.directory,
        "purpose": c.purpose,
        "risk_tier": c.risk_tier,
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "granted_scopes": c.scopes_in(ScopeState::Granted).collect::<Vec<_>>(),
        "pending_scopes": c.scopes_in(ScopeState::PendingReview).collect::<Vec<_>>(),
        "denied_scopes": c.scopes_in(ScopeState::Denied).collect::<Vec<_>>(),
        "scope_decisions": c.scopes.iter().map(|g| json!({"scope": g.scope, "state": g.state.as_str(), "rule": g.rule, "decided_at": g.decided_at.0, "reason": g.reason})).collect::<Vec<_>>(),
        "auth_method": c.metadata.get("token_endpoint_auth_method").cloned().unwrap_or(Value::Null),
        "certificate_subject": c.transport_cert_subject,
        "created_at": c.created_at.0,
        "expires_at": c.expires_at.map(|t| t.0),
        "last_used_at": c.last_used_at.map(|t| t.0),
        "updated_at": c.updated_at.0,
    })
}

pub const INVENTORY_COLUMNS: [&str; 17] = [
    "client_id",
    "client_name",
    "owner_org_id",
    "owner_org_name",
    "software_id",
    "directory",
    "purpose",
    "risk_tier",
    "status",
    "status_reason",
    "granted_scopes",
    "pending_scopes",
    "auth_method",
    "certificate_subject",
    "created_at",
    "expires_at",
    "last_used_at",
];

/// RFC 4180 CSV of the inventory (lists joined with spaces, times as Unix seconds).
pub fn inventory_csv(clients: &[ClientRecord]) -> String {
    fn field(v: &Value) -> String {
        let s = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        // Cells starting with = + - @ (or a tab or carriage return before one) are neutralised:
        // spreadsheets would run them as formulas.
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s };
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
    }
    let mut out = INVENTORY_COLUMNS.join(",");
    out.push_str("\r\n");
    for c in clients {
        let row = inventory_row(c);
        let cells: Vec<String> = INVENTORY_COLUMNS.iter().map(|k| field(&row[*k])).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The lifecycle rules on the in-memory store with a hand-set clock.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use tessera_core::FixedClock;
    use tessera_core::client::ScopeGrant;
    use tessera_store::MemoryStore;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const ADMIN: &str = "CN=tessera-admin,O=Bank,C=GB";

    /// high: 30 days, low: 180 days, anything else: 90 days; offboarding 30 days after a
    /// dormancy suspension.
    fn policy() -> LifecyclePolicy {
        LifecyclePolicy {
            dormancy_secs: [("high".to_owned(), 30 * DAY), ("low".to_owned(), 180 * DAY)].into_iter().collect(),
            default_dormancy_secs: 90 * DAY,
            offboard_grace_secs: 30 * DAY,
        }
    }

    fn grant(scope: &str, state: ScopeState, rule: &str) -> ScopeGrant {
        ScopeGrant {
            scope: scope.into(),
            state,
            rule: rule.into(),
            decided_at: UnixTime(NOW - 365 * DAY),
            reason: None,
        }
    }

    /// An active client: accounts:read granted, payments:write pending, fx:read denied.
    fn client(id: &str, tier: &str, created: i64, last_used: Option<i64>) -> ClientRecord {
        let mut metadata = Map::new();
        metadata.insert("client_name".into(), json!(format!("{id} app")));
        metadata.insert("token_endpoint_auth_method".into(), json!("tls_client_auth"));
        ClientRecord {
            client_id: ClientId::new(id),
            status: ClientStatus::Active,
            status_reason: None,
            org_id: "org-1".into(),
            org_name: "Org One".into(),
            software_id: format!("{id}-software"),
            directory: "https://directory.example".into(),
            purpose: "account aggregation".into(),
            risk_tier: tier.into(),
            created_at: UnixTime(created),
            updated_at: UnixTime(created),
            expires_at: None,
            last_used_at: last_used.map(UnixTime),
            tokens_not_before: None,
            registration_token_hash: "hash".into(),
            ssa_jti: None,
            transport_cert_subject: format!("CN={id}-software,OU=org-1,O=Org One,C=GB"),
            scopes: vec![
                grant("accounts:read", ScopeState::Granted, "read-only-for-active-orgs"),
                grant("payments:write", ScopeState::PendingReview, "payments-need-review"),
                grant("fx:read", ScopeState::Denied, "default-deny"),
            ],
            metadata,
        }
    }

    struct Fixture {
        store: Arc<MemoryStore>,
        clock: FixedClock,
        admin: Admin,
    }

    impl Fixture {
        async fn new(clients: Vec<ClientRecord>) -> Fixture {
            let store = Arc::new(MemoryStore::new());
            for c in &clients {
                store.insert_client(c, &[]).await.unwrap();
            }
            let clock = FixedClock::new(NOW);
            let admin = Admin::new(store.clone(), store.clone(), Arc::new(clock.clone()), policy());
            Fixture { store, clock, admin }
        }

        async fn stored(&self, id: &str) -> ClientRecord {
            self.store.get_client(&ClientId::new(id)).await.unwrap().unwrap()
        }

        async fn audit(&self) -> Vec<AuditRecord> {
            self.store.read(0, usize::MAX).await.unwrap()
        }

        fn now(&self) -> i64 {
            self.clock.now().0
        }
    }

    fn conflict<T: std::fmt::Debug>(r: Result<T, AdminError>, contains: &str) {
        match r {
            Err(AdminError::Conflict(m)) => assert!(m.contains(contains), "{m:?} should mention {contains:?}"),
            other => panic!("expected a conflict ({contains}), got {other:?}"),
        }
    }

    // --- suspend, resume, offboard, extend -----------------------------------------------------

    #[tokio::test]
    async fn suspension_cuts_every_token_so_far_and_a_second_one_is_a_conflict() {
        let f = Fixture::new(vec![client("c1", "low", NOW - 10 * DAY, Some(NOW - DAY))]).await;
        let c = f.admin.suspend("c1", "incident 42", ADMIN).await.unwrap();
        assert_eq!(c.status, ClientStatus::Suspended);
        assert_eq!(c.status_reason.as_deref(), Some("incident 42"));
        // Tokens issued in this very second are covered too.
        assert_eq!(c.tokens_not_before, Some(UnixTime(NOW + 1)));
        assert_eq!(c.updated_at, UnixTime(NOW));
        assert_eq!(f.stored("c1").await, c, "the store holds what was returned");

        f.clock.advance(60);
        conflict(f.admin.suspend("c1", "again", ADMIN).await, "already suspended");
        assert_eq!(f.stored("c1").await, c, "a refused suspension changes nothing");
    }

    #[tokio::test]
    async fn resumption_only_from_suspended_and_old_tokens_stay_cut() {
        let f = Fixture::new(vec![client("c1", "low", NOW - 10 * DAY, None)]).await;
        conflict(f.admin.resume("c1", "", ADMIN).await, "not suspended");

        f.admin.suspend("c1", "incident", ADMIN).await.unwrap();
        f.clock.advance(3600);
        let c = f.admin.resume("c1", "incident closed", ADMIN).await.unwrap();
        assert_eq!(c.status, ClientStatus::Active);
        assert_eq!(c.status_reason, None);
        assert_eq!(c.updated_at, UnixTime(NOW + 3600));
        assert_eq!(
            c.tokens_not_before,
            Some(UnixTime(NOW + 1)),
            "tokens from before the suspension must stay inactive after resumption"
        );
        assert_eq!(f.stored("c1").await, c);
        conflict(f.admin.resume("c1", "", ADMIN).await, "not suspended");
    }

    #[tokio::test]
    async fn offboarding_is_final() {
        let f = Fixture::new(vec![
            client("active", "low", NOW - 10 * DAY, None),
            client("suspended", "low", NOW - 10 * DAY, None),
        ])
        .await;
        let a = f.admin.offboard("active", "contract ended", ADMIN).await.unwrap();
        assert_eq!(a.status, ClientStatus::Offboarded);
        assert_eq!(a.status_reason.as_deref(), Some("contract ended"));
        assert_eq!(a.tokens_not_before, Some(UnixTime(NOW + 1)));

        f.admin.suspend("suspended", "incident", ADMIN).await.unwrap();
        f.clock.advance(DAY);
        let s = f.admin.offboard("suspended", "fraud confirmed", ADMIN).await.unwrap();
        assert_eq!(s.status, ClientStatus::Offboarded);
        assert_eq!(s.tokens_not_before, Some(UnixTime(NOW + DAY + 1)), "the cut-off moves to the offboarding");

        let records = f.audit().await.len();
        for id in ["active", "suspended"] {
            let before = f.stored(id).await;
            conflict(f.admin.resume(id, "please", ADMIN).await, "offboarded");
            conflict(f.admin.suspend(id, "again", ADMIN).await, "offboarded");
            conflict(f.admin.offboard(id, "again", ADMIN).await, "already offboarded");
            conflict(f.admin.extend(id, UnixTime(f.now() + 365 * DAY), ADMIN).await, "offboarded");
            conflict(f.admin.review(id, "payments:write", true, "ok", ADMIN).await, "offboarded");
            assert_eq!(f.stored(id).await, before, "{id}: nothing changes an offboarded client");
        }
        assert_eq!(f.audit().await.len(), records, "refused actions are not audited as changes");
    }

    #[tokio::test]
    async fn extension_must_be_into_the_future() {
        let f = Fixture::new(vec![client("c1", "low", NOW - 10 * DAY, None)]).await;
        for until in [NOW - DAY, NOW - 1, NOW] {
            match f.admin.extend("c1", UnixTime(until), ADMIN).await {
                Err(AdminError::Invalid(m)) => assert!(m.contains("future"), "{m}"),
                other => panic!("extend to {until} (now {NOW}): {other:?}"),
            }
        }
        assert_eq!(f.stored("c1").await.expires_at, None);
        assert!(f.audit().await.is_empty());

        let c = f.admin.extend("c1", UnixTime(NOW + 1), ADMIN).await.unwrap();
        assert_eq!(c.expires_at, Some(UnixTime(NOW + 1)));
        let c = f.admin.extend("c1", UnixTime(NOW + 365 * DAY), ADMIN).await.unwrap();
        assert_eq!(c.expires_at, Some(UnixTime(NOW + 365 * DAY)));
        assert_eq!(c.status, ClientStatus::Active);
        let log = f.audit().await;
        assert_eq!(
            log[0].event.data,
            *json!({"previous_expires_at": null, "expires_at": NOW + 1}).as_object().unwrap()
        );
        assert_eq!(
            log[1].event.data,
            *json!({"previous_expires_at": NOW + 1, "expires_at": NOW + 365 * DAY}).as_object().unwrap()
        );

        // A suspended client may be extended; it stays suspended.
        f.admin.suspend("c1", "incident", ADMIN).await.unwrap();
        let c = f.admin.extend("c1", UnixTime(NOW + 400 * DAY), ADMIN).await.unwrap();
        assert_eq!((c.status, c.expires_at), (ClientStatus::Suspended, Some(UnixTime(NOW + 400 * DAY))));
    }

    #[tokio::test]
    async fn unknown_clients_are_not_found() {
        let f = Fixture::new(vec![]).await;
        let results = [
            f.admin.show("nope").await.err(),
            f.admin.suspend("nope", "r", ADMIN).await.err(),
            f.admin.resume("nope", "r", ADMIN).await.err(),
            f.admin.offboard("nope", "r", ADMIN).await.err(),
            f.admin.extend("nope", UnixTime(NOW + DAY), ADMIN).await.err(),
            f.admin.review("nope", "payments:write", true, "r", ADMIN).await.err(),
        ];
        for r in results {
            assert!(matches!(&r, Some(AdminError::NotFound(id)) if id == "nope"), "{r:?}");
        }
        assert!(f.audit().await.is_empty());
    }

    #[tokio::test]
    async fn changes_reach_the_cache_and_the_other_nodes() {
        let f = Fixture::new(vec![client("c1", "low", NOW - 10 * DAY, None)]).await;
        let cache = Arc::new(ClientCache::new());
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        let admin = Admin::new(f.store.clone(), f.store.clone(), Arc::new(f.clock.clone()), policy())
            .with_cache(cache.clone(), Some(Arc::new(move |id: &ClientId| sink.lock().unwrap().push(id.to_string()))));
        admin.suspend("c1", "incident", ADMIN).await.unwrap();
        assert_eq!(cache.get(&ClientId::new("c1")).unwrap().status, ClientStatus::Suspended);
        assert_eq!(*told.lock().unwrap(), ["c1"]);
        // A refused action tells nobody.
        assert!(admin.suspend("c1", "again", ADMIN).await.is_err());
        assert_eq!(told.lock().unwrap().len(), 1);
    }

    // --- the review queue ----------------------------------------------------------------------

    #[tokio::test]
    async fn only_pending_scopes_can_be_approved_or_denied() {
        let f = Fixture::new(vec![
            client("c1", "high", NOW - 10 * DAY, None),
            client("c2", "high", NOW - 10 * DAY, None),
            client("gone", "high", NOW - 10 * DAY, None),
        ])
        .await;
        f.admin.offboard("gone", "ended", ADMIN).await.unwrap();
        let queue: Vec<(String, String)> =
            f.admin.reviews().await.unwrap().into_iter().map(|(c, s)| (c.client_id.to_string(), s)).collect();
        assert_eq!(
            queue,
            [("c1".into(), "payments:write".into()), ("c2".into(), "payments:write".into())],
            "an offboarded client's pending scopes are not in the queue"
        );

        f.clock.advance(60);
        let c = f.admin.review("c1", "payments:write", true, "PISP licence checked", ADMIN).await.unwrap();
        let g = c.scopes.iter().find(|g| g.scope == "payments:write").unwrap();
        assert_eq!(g.state, ScopeState::Granted);
        assert_eq!(g.rule, format!("review:{ADMIN}"));
        assert_eq!(g.reason.as_deref(), Some("PISP licence checked"));
        assert_eq!(g.decided_at, UnixTime(NOW + 60));
        assert_eq!(c.scopes_in(ScopeState::Granted).collect::<Vec<_>>(), ["accounts:read", "payments:write"]);
        assert_eq!(f.stored("c1").await, c);

        let c = f.admin.review("c2", "payments:write", false, "no licence", ADMIN).await.unwrap();
        assert_eq!(c.scopes_in(ScopeState::Denied).collect::<Vec<_>>(), ["payments:write", "fx:read"]);
        assert!(f.admin.reviews().await.unwrap().is_empty());

        let records = f.audit().await.len();
        conflict(f.admin.review("c1", "payments:write", true, "again", ADMIN).await, "granted");
        conflict(f.admin.review("c1", "payments:write", false, "take back", ADMIN).await, "granted");
        conflict(f.admin.review("c1", "accounts:read", false, "x", ADMIN).await, "not pending review");
        conflict(f.admin.review("c2", "payments:write", true, "changed my mind", ADMIN).await, "denied");
        conflict(f.admin.review("c1", "fx:read", true, "x", ADMIN).await, "denied");
        match f.admin.review("c1", "never:asked", true, "x", ADMIN).await {
            Err(AdminError::Invalid(m)) => assert!(m.contains("never requested"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.audit().await.len(), records, "refused decisions are not audited");
    }

    // --- the audit trail of every action -------------------------------------------------------

    #[tokio::test]
    async fn every_action_appends_exactly_one_event_with_actor_and_reason() {
        let f = Fixture::new(vec![client("c1", "high", NOW - 10 * DAY, None)]).await;
        let cid = Some(ClientId::new("c1"));
        let mut expected = 0;
        let mut check = |log: Vec<AuditRecord>, kind: AuditKind, actor: &str, data: Value| {
            expected += 1;
            assert_eq!(log.len(), expected, "exactly one event per action ({kind:?})");
            let e = &log[expected - 1].event;
            assert_eq!((e.kind, e.actor.as_str(), &e.client_id), (kind, actor, &cid));
            assert_eq!(e.at, f.clock.now());
            assert_eq!(Value::Object(e.data.clone()), data);
        };

        f.admin.suspend("c1", "incident 42", ADMIN).await.unwrap();
        check(f.audit().await, AuditKind::ClientSuspended, ADMIN, json!({"reason": "incident 42"}));
        f.clock.advance(10);
        f.admin.resume("c1", "incident closed", "cli:alice").await.unwrap();
        check(f.audit().await, AuditKind::ClientResumed, "cli:alice", json!({"reason": "incident closed"}));
        f.clock.advance(10);
        f.admin.extend("c1", UnixTime(NOW + 100 * DAY), ADMIN).await.unwrap();
        check(
            f.audit().await,
            AuditKind::ClientExtended,
            ADMIN,
            json!({"previous_expires_at": null, "expires_at": NOW + 100 * DAY}),
        );
        f.clock.advance(10);
        f.admin.review("c1", "payments:write", true, "licence checked", ADMIN).await.unwrap();
        check(
            f.audit().await,
            AuditKind::ScopeReviewed,
            ADMIN,
            json!({"scope": "payments:write", "state": "granted", "reason": "licence checked"}),
        );
        f.clock.advance(10);
        f.admin.offboard("c1", "contract ended", "cli:bob").await.unwrap();
        check(f.audit().await, AuditKind::ClientOffboarded, "cli:bob", json!({"reason": "contract ended"}));

        // Reads are not changes.
        f.admin.show("c1").await.unwrap();
        f.admin.list(&ClientFilter::default()).await.unwrap();
        f.admin.reviews().await.unwrap();
        assert_eq!(f.audit().await.len(), 5);
    }

    // --- the sweeper ---------------------------------------------------------------------------

    #[tokio::test]
    async fn sweep_suspends_dormant_clients_by_tier_and_leaves_used_ones_alone() {
        let f = Fixture::new(vec![
            client("high-40d", "high", NOW - 400 * DAY, Some(NOW - 40 * DAY)),
            client("high-exactly-30d", "high", NOW - 400 * DAY, Some(NOW - 30 * DAY)),
            client("high-almost-30d", "high", NOW - 400 * DAY, Some(NOW - 30 * DAY + 1)),
            client("high-recent", "high", NOW - 400 * DAY, Some(NOW - 3600)),
            client("low-40d", "low", NOW - 400 * DAY, Some(NOW - 40 * DAY)),
            client("low-200d", "low", NOW - 400 * DAY, Some(NOW - 200 * DAY)),
            client("medium-40d", "medium", NOW - 400 * DAY, Some(NOW - 40 * DAY)),
            client("medium-never-used", "medium", NOW - 100 * DAY, None),
            client("medium-new", "medium", NOW - DAY, None),
        ])
        .await;
        let before = f.store.list_clients().await.unwrap();
        let actions = f.admin.sweep(UnixTime(NOW)).await.unwrap();
        let acted: Vec<(&str, &str, &str)> =
            actions.iter().map(|a| (a.client_id.as_str(), a.action, a.rule.as_str())).collect();
        assert_eq!(
            acted,
            [
                ("high-40d", "suspend", "dormant:unused for 40 days (tier high limit 30 days)"),
                ("high-exactly-30d", "suspend", "dormant:unused for 30 days (tier high limit 30 days)"),
                ("low-200d", "suspend", "dormant:unused for 200 days (tier low limit 180 days)"),
                ("medium-never-used", "suspend", "dormant:unused for 100 days (tier medium limit 90 days)"),
            ]
        );
        for a in &actions {
            let c = f.stored(&a.client_id).await;
            assert_eq!(c.status, ClientStatus::Suspended);
            assert_eq!(c.status_reason.as_deref(), Some(a.rule.as_str()));
            assert!(a.rule.starts_with(DORMANT_PREFIX));
            assert_eq!(c.tokens_not_before, Some(UnixTime(NOW + 1)));
            assert_eq!(c.updated_at, UnixTime(NOW));
        }
        for c in before.iter().filter(|c| !actions.iter().any(|a| a.client_id == c.client_id.as_str())) {
            assert_eq!(&f.stored(c.client_id.as_str()).await, c, "{} must be untouched", c.client_id);
        }
        let log = f.audit().await;
        assert_eq!(log.len(), actions.len(), "one event per action");
        for (r, a) in log.iter().zip(&actions) {
            assert_eq!(r.event.kind, AuditKind::ClientSuspended);
            assert_eq!(r.event.actor, "sweeper");
            assert_eq!(r.event.client_id.as_ref().map(ClientId::as_str), Some(a.client_id.as_str()));
            assert_eq!(r.event.data.get("rule"), Some(&json!(a.rule)));
        }
        assert!(f.admin.sweep(UnixTime(NOW)).await.unwrap().is_empty(), "a second sweep has nothing to do");
    }

    #[tokio::test]
    async fn sweep_suspends_an_expired_client_even_if_it_is_used() {
        let mut expired = client("expired", "low", NOW - 10 * DAY, Some(NOW - 60));
        expired.expires_at = Some(UnixTime(NOW));
        let mut valid = client("valid", "low", NOW - 10 * DAY, Some(NOW - 60));
        valid.expires_at = Some(UnixTime(NOW + 1));
        let f = Fixture::new(vec![expired, valid]).await;
        let actions = f.admin.sweep(UnixTime(NOW)).await.unwrap();
        assert_eq!(actions, [SweepAction { client_id: "expired".into(), action: "suspend", rule: "expired".into() }]);
        let c = f.stored("expired").await;
        assert_eq!((c.status, c.status_reason.as_deref()), (ClientStatus::Suspended, Some("expired")));
        assert_eq!(f.stored("valid").await.status, ClientStatus::Active);
        // An expiry suspension is not a dormancy suspension: never escalated.
        f.clock.advance(365 * DAY);
        let later = f.admin.sweep(f.clock.now()).await.unwrap();
        assert!(later.iter().all(|a| a.client_id != "expired"), "{later:?}");
    }

    struct Directory(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl OrgStatusSource for Directory {
        async fn status(&self, _directory: &str, org_id: &str) -> Option<String> {
            self.0.lock().unwrap().push(org_id.to_owned());
            match org_id {
                "org-revoked" => Some("Revoked".into()),
                "org-active" => Some("Active".into()),
                _ => None,
            }
        }
    }

    #[tokio::test]
    async fn sweep_suspends_clients_of_an_organisation_the_directory_revoked() {
        let mut revoked_a = client("revoked-a", "low", NOW - DAY, Some(NOW - 60));
        revoked_a.org_id = "org-revoked".into();
        let mut revoked_b = client("revoked-b", "low", NOW - DAY, Some(NOW - 60));
        revoked_b.org_id = "org-revoked".into();
        let mut fine = client("fine", "low", NOW - DAY, Some(NOW - 60));
        fine.org_id = "org-active".into();
        let mut unknown = client("unknown", "low", NOW - DAY, Some(NOW - 60));
        unknown.org_id = "org-the-directory-cannot-say".into();
        let mut f = Fixture::new(vec![revoked_a, revoked_b, fine, unknown]).await;
        let directory = Arc::new(Directory(Default::default()));
        f.admin = Admin::new(f.store.clone(), f.store.clone(), Arc::new(f.clock.clone()), policy())
            .with_org_status(directory.clone());
        let mut actions = f.admin.sweep(UnixTime(NOW)).await.unwrap();
        actions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        assert_eq!(actions.iter().map(|a| a.client_id.as_str()).collect::<Vec<_>>(), ["revoked-a", "revoked-b"]);
        assert!(
            actions
                .iter()
                .all(|a| a.action == "suspend" && a.rule.starts_with("org-status:") && a.rule.contains("Revoked"))
        );
        assert_eq!(f.stored("fine").await.status, ClientStatus::Active);
        assert_eq!(
            f.stored("unknown").await.status,
            ClientStatus::Active,
            "no answer from the directory is no reason to act"
        );
        let mut asked = directory.0.lock().unwrap().clone();
        asked.sort();
        asked.dedup();
        assert_eq!(directory.0.lock().unwrap().len(), asked.len(), "one question per organisation per sweep");
    }

    #[tokio::test]
    async fn a_dormancy_suspension_is_offboarded_after_the_grace_period() {
        let f = Fixture::new(vec![client("c1", "high", NOW - 400 * DAY, Some(NOW - 40 * DAY))]).await;
        assert_eq!(f.admin.sweep(UnixTime(NOW)).await.unwrap().len(), 1);
        f.clock.advance(30 * DAY - 1);
        assert!(f.admin.sweep(f.clock.now()).await.unwrap().is_empty(), "still within the grace period");
        f.clock.advance(1);
        let actions = f.admin.sweep(f.clock.now()).await.unwrap();
        assert_eq!(
            actions,
            [SweepAction {
                client_id: "c1".into(),
                action: "offboard",
                rule: "dormant-grace: suspended for dormancy more than 30 days ago".into()
            }]
        );
        let c = f.stored("c1").await;
        assert_eq!(c.status, ClientStatus::Offboarded);
        assert_eq!(c.tokens_not_before, Some(f.clock.now().plus(1)));
        let log = f.audit().await;
        assert_eq!(log.len(), 2);
        assert_eq!((log[1].event.kind, log[1].event.actor.as_str()), (AuditKind::ClientOffboarded, "sweeper"));
        assert!(f.admin.sweep(f.clock.now().plus(365 * DAY)).await.unwrap().is_empty(), "offboarded is final");
    }

    #[tokio::test]
    async fn an_administrators_suspension_is_never_escalated_by_the_sweeper() {
        let f = Fixture::new(vec![client("c1", "high", NOW - 400 * DAY, Some(NOW - 400 * DAY))]).await;
        f.admin.suspend("c1", "fraud investigation", ADMIN).await.unwrap();
        for days in [31, 365, 3650] {
            let actions = f.admin.sweep(UnixTime(NOW + days * DAY)).await.unwrap();
            assert!(actions.is_empty(), "{days} days later: {actions:?}");
        }
        let c = f.stored("c1").await;
        assert_eq!((c.status, c.status_reason.as_deref()), (ClientStatus::Suspended, Some("fraud investigation")));
        assert_eq!(f.audit().await.len(), 1, "only the administrator's suspension");
    }

    #[tokio::test]
    async fn a_resumed_dormant_client_gets_a_full_dormancy_period_again() {
        let f = Fixture::new(vec![client("c1", "high", NOW - 400 * DAY, Some(NOW - 40 * DAY))]).await;
        f.admin.sweep(UnixTime(NOW)).await.unwrap();
        f.clock.advance(DAY);
        f.admin.resume("c1", "owner confirmed it is still needed", ADMIN).await.unwrap();
        f.clock.advance(60);
        assert!(
            f.admin.sweep(f.clock.now()).await.unwrap().is_empty(),
            "the next sweep must not undo the administrator's resumption"
        );
        f.clock.advance(30 * DAY);
        let actions = f.admin.sweep(f.clock.now()).await.unwrap();
        assert_eq!(actions.len(), 1, "still unused a full period after the resumption");
        assert!(actions[0].rule.starts_with(DORMANT_PREFIX));
    }

    #[tokio::test]
    async fn a_sweep_as_of_a_later_time_cuts_tokens_at_the_real_time() {
        // `tessera sweep --as-of` in the future: the rules and the records use that time, but the
        // token cut-off must not lie in the future, or the client's tokens after a resumption
        // would be inactive until then.
        let f = Fixture::new(vec![client("c1", "high", NOW - DAY, Some(NOW - 60))]).await;
        let later = UnixTime(NOW + 100 * DAY);
        let actions = f.admin.sweep(later).await.unwrap();
        assert_eq!(actions.len(), 1);
        let c = f.stored("c1").await;
        assert_eq!(c.updated_at, later);
        assert_eq!(f.audit().await[0].event.at, later);
        assert_eq!(c.tokens_not_before, Some(UnixTime(NOW + 1)));
        f.clock.advance(5);
        let c = f.admin.resume("c1", "it was a preview", ADMIN).await.unwrap();
        assert!(c.tokens_not_before.unwrap() <= f.clock.now(), "a token issued now is not cut off");
    }

    // --- listing, inventory, audit verification ------------------------------------------------

    #[tokio::test]
    async fn list_filters_by_status_tier_owner_dormancy_and_expiry() {
        let mut b = client("b", "high", NOW - 100 * DAY, Some(NOW - 50 * DAY));
        b.org_id = "org-2".into();
        b.org_name = "Acme Payments".into();
        b.expires_at = Some(UnixTime(NOW + 10 * DAY));
        let a = client("a", "low", NOW - 100 * DAY, Some(NOW - DAY));
        let mut c = client("c", "low", NOW - 100 * DAY, None);
        c.org_name = "Org One".into();
        c.expires_at = Some(UnixTime(NOW + 100 * DAY));
        let f = Fixture::new(vec![c, b, a]).await;
        f.admin.suspend("c", "incident", ADMIN).await.unwrap();
        let ids = |cs: Vec<ClientRecord>| cs.into_iter().map(|c| c.client_id.to_string()).collect::<Vec<_>>();
        let admin = &f.admin;
        let list = |filter: ClientFilter| async move { ids(admin.list(&filter).await.unwrap()) };
        // Sorted by owner name, then client id.
        assert_eq!(list(ClientFilter::default()).await, ["b", "a", "c"]);
        assert_eq!(list(ClientFilter { status: Some(ClientStatus::Suspended), ..Default::default() }).await, ["c"]);
        assert_eq!(list(ClientFilter { status: Some(ClientStatus::Offboarded), ..Default::default() }).await.len(), 0);
        assert_eq!(list(ClientFilter { tier: Some("low".into()), ..Default::default() }).await, ["a", "c"]);
        assert_eq!(list(ClientFilter { owner: Some("org-2".into()), ..Default::default() }).await, ["b"]);
        assert_eq!(list(ClientFilter { owner: Some("acme".into()), ..Default::default() }).await, ["b"]);
        assert_eq!(list(ClientFilter { owner: Some("ORG ONE".into()), ..Default::default() }).await, ["a", "c"]);
        assert_eq!(list(ClientFilter { dormant_for: Some(30 * DAY), ..Default::default() }).await, ["b", "c"]);
        assert_eq!(list(ClientFilter { expiring_within: Some(14 * DAY), ..Default::default() }).await, ["b"]);
    }

    #[test]
    fn the_inventory_row_has_every_lifecycle_field() {
        let mut c = client("c1", "high", NOW - 100 * DAY, Some(NOW - DAY));
        c.expires_at = Some(UnixTime(NOW + DAY));
        let row = inventory_row(&c);
        assert_eq!(row["client_id"], "c1");
        assert_eq!(row["client_name"], "c1 app");
        assert_eq!((row["owner_org_id"].clone(), row["owner_org_name"].clone()), (json!("org-1"), json!("Org One")));
        assert_eq!(row["purpose"], "account aggregation");
        assert_eq!(row["risk_tier"], "high");
        assert_eq!(row["status"], "active");
        assert_eq!(row["status_reason"], Value::Null);
        assert_eq!(row["granted_scopes"], json!(["accounts:read"]));
        assert_eq!(row["pending_scopes"], json!(["payments:write"]));
        assert_eq!(row["denied_scopes"], json!(["fx:read"]));
        assert_eq!(row["scope_decisions"][1]["rule"], "payments-need-review");
        assert_eq!(row["auth_method"], "tls_client_auth");
        assert_eq!(row["certificate_subject"], "CN=c1-software,OU=org-1,O=Org One,C=GB");
        assert_eq!(row["created_at"], NOW - 100 * DAY);
        assert_eq!(row["expires_at"], NOW + DAY);
        assert_eq!(row["last_used_at"], NOW - DAY);
        for column in INVENTORY_COLUMNS {
            assert!(row.get(column).is_some(), "the row lacks the CSV column {column}");
        }
    }

    #[test]
    fn inventory_csv_escapes_and_neutralises_formulas() {
        let mut c = client("c1", "high", 1_700_000_000, None);
        c.org_name = "Acme, \"Holdings\" Ltd".into();
        c.purpose = "=HYPERLINK(\"https://evil.example\",\"click\")".into();
        c.metadata.insert("client_name".into(), json!("+SUM(A1:A9)"));
        c.software_id = "@cmd".into();
        c.directory = "-2+3".into();
        c.status_reason = Some("\t=1+1".into());
        c.transport_cert_subject = "CN=a\nb".into();
        let plain = client("c2", "low", 1_700_000_000, Some(1_700_000_100));
        let csv = inventory_csv(&[c, plain]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "header, two rows, and the final CRLF: {csv:?}");
        assert_eq!(lines[0], INVENTORY_COLUMNS.join(","));
        assert_eq!(lines[3], "");
        let expected = [
            "c1",
            "'+SUM(A1:A9)",
            "org-1",
            "\"Acme, \"\"Holdings\"\" Ltd\"",
            "'@cmd",
            "'-2+3",
            "\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"click\"\")\"",
            "high",
            "active",
            "'\t=1+1",
            "accounts:read",
            "payments:write",
            "tls_client_auth",
            "\"CN=a\nb\"",
            "1700000000",
            "",
            "",
        ]
        .join(",");
        // The quoted newline splits the row when cutting at bare CRLFs only; it does not here.
        assert_eq!(lines[1], expected);
        assert_eq!(
            lines[2],
            "c2,c2 app,org-1,Org One,c2-software,https://directory.example,account aggregation,low,active,,\
             accounts:read,payments:write,tls_client_auth,\"CN=c2-software,OU=org-1,O=Org One,C=GB\",\
             1700000000,,1700000100"
        );
    }

    /// An audit log whose records were edited behind the chain's back.
    struct Edited(Vec<AuditRecord>);

    #[async_trait]
    impl AuditLog for Edited {
        async fn append(&self, _: &[AuditEvent]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn read(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
            Ok(self.0.iter().filter(|r| r.seq > after).take(limit).cloned().collect())
        }
    }

    #[tokio::test]
    async fn audit_verify_finds_an_intact_chain_and_the_first_edited_record() {
        let f = Fixture::new(vec![client("c1", "high", NOW - 10 * DAY, None)]).await;
        assert_eq!(f.admin.audit_verify().await.unwrap(), Ok((0, GENESIS_HASH.to_owned())), "an empty log is intact");
        f.admin.suspend("c1", "incident", ADMIN).await.unwrap();
        f.admin.resume("c1", "", ADMIN).await.unwrap();
        f.admin.review("c1", "payments:write", true, "ok", ADMIN).await.unwrap();
        let log = f.audit().await;
        assert_eq!(f.admin.audit_verify().await.unwrap(), Ok((3, log[2].hash.clone())));

        let mut edited = log.clone();
        edited[1].event.actor = "mallory".into();
        let admin = Admin::new(f.store.clone(), Arc::new(Edited(edited)), Arc::new(f.clock.clone()), policy());
        let broken = admin.audit_verify().await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 2, "{broken:?}");
    }

    #[tokio::test]
    async fn audit_verify_and_export_span_several_pages() {
        let f = Fixture::new(vec![]).await;
        let events: Vec<AuditEvent> = (0..10_005)
            .map(|i| AuditEvent {
                at: UnixTime(NOW + i),
                kind: AuditKind::TokenIssued,
                actor: "c1".into(),
                client_id: Some(ClientId::new("c1")),
                data: Map::new(),
            })
            .collect();
        f.store.append(&events).await.unwrap();
        let log = f.audit().await;
        assert_eq!(f.admin.audit_verify().await.unwrap(), Ok((10_005, log[10_004].hash.clone())));

        let mut edited = log.clone();
        edited[10_002].event.data.insert("scope".into(), json!("payments:write"));
        let admin = Admin::new(f.store.clone(), Arc::new(Edited(edited)), Arc::new(f.clock.clone()), policy());
        assert_eq!(admin.audit_verify().await.unwrap().unwrap_err().seq, 10_003, "found on the second page");

        let all = f.admin.audit_export(UnixTime(0)).await.unwrap();
        assert_eq!(all.len(), 10_005);
        let since = f.admin.audit_export(UnixTime(NOW + 10_000)).await.unwrap();
        assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), [10_001, 10_002, 10_003, 10_004, 10_005]);
    }
}
