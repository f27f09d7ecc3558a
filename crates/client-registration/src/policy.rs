//! Onboarding policy as code: which requested scopes a self-registering client gets.
//!
//! The policy is a file of [Cedar](https://www.cedarpolicy.com/) policies (the shipped default is
//! `deploy/onboarding.cedar`, explained in `docs/onboarding-policy.md`). The caller reads the file
//! and hands the text to [`OnboardingPolicy::from_source`], once, at start: the text is parsed,
//! every policy is renamed to its `@id("...")` annotation, and the set is validated strictly
//! against the schema embedded here ([`SCHEMA`]), so a misspelt attribute, entity type or action
//! is a start-up error, never a silent allow or deny.
//!
//! [`OnboardingPolicy::decide`] then puts every requested scope into exactly one
//! [`ScopeState`], and records the rule (policy id) that decided it:
//!
//! 1. `Tessera::Action::"grant"`: Allow means [`ScopeState::Granted`];
//! 2. otherwise `Tessera::Action::"review"`: Allow means [`ScopeState::PendingReview`];
//! 3. otherwise [`ScopeState::Denied`], by the first forbid policy that applied, or by
//!    [`DEFAULT_DENY_RULE`] when no permit policy covers the scope.
//!
//! Fail closed: Cedar skips a policy whose condition fails to evaluate (integer overflow, say)
//! and decides without it. That could turn a forbid into a silent allow, so `decide` refuses to
//! answer at all when any policy reported an error and returns [`PolicyError::Evaluation`]
//! naming the policy.
//!
//! No I/O and no clock here: the caller passes the file text and the time.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, Response, RestrictedExpression, Schema, ValidationMode, ValidationWarning, Validator,
};
use serde::Serialize;
use tessera_core::client::ScopeState;

/// The Cedar schema every onboarding policy is validated against (Cedar schema syntax).
///
/// Entity types, attributes, actions and the request context are documented in
/// `docs/onboarding-policy.md`; keep the two in step.
pub const SCHEMA: &str = r#"
namespace Tessera {
    // The registering software, as vouched for by the directory's software statement (SSA),
    // plus facts about the TLS client certificate it registered with.
    entity Software = {
        org_id: String,
        org_name: String,
        org_status: String,
        roles: Set<String>,
        software_mode: String,
        directory: String,
        auth_method: String,
        cert_subject: String,
        cert_issuer: String
    };

    // One requested OAuth scope; the entity id is the scope string, and so is `name`.
    entity Scope = {
        name: String
    };

    // `grant`: may the scope be granted without a human? `review`: may it wait for one?
    action grant, review appliesTo {
        principal: [Software],
        resource: [Scope],
        context: {
            grant_types: Set<String>,
            requested_scopes: Set<String>,
            now: Long
        }
    };
}
"#;

/// The rule recorded for a scope that no permit policy covers (and no forbid policy named).
pub const DEFAULT_DENY_RULE: &str = "default-deny";

const SOFTWARE_TYPE: &str = "Tessera::Software";
const SCOPE_TYPE: &str = "Tessera::Scope";
const ACTION_TYPE: &str = "Tessera::Action";
const GRANT_ACTION: &str = "grant";
const REVIEW_ACTION: &str = "review";
const ID_ANNOTATION: &str = "id";
const TIER_ANNOTATION: &str = "tier";

/// Why the onboarding policy could not be loaded or could not decide.
///
/// Messages are for operators (logs, `tessera check-config`), not for registering clients: they
/// name the policy id and, where Cedar reports one, the line and column in the policy file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy text is not valid Cedar syntax.
    #[error("onboarding policy does not parse: {message}")]
    Parse { message: String },
    /// The text parses but breaks a rule: schema validation (unknown attribute, entity type or
    /// action; type errors), a missing or duplicate `@id`, a permit without a valid `@tier`, a
    /// template, an empty file.
    #[error("onboarding policy is invalid: {message}")]
    Validation { message: String },
    /// A decision could not be made: a policy failed to evaluate, or the input could not be
    /// turned into a Cedar request. Fail closed: no scope is decided.
    #[error("onboarding policy could not decide: {message}")]
    Evaluation { message: String },
}

/// A client's risk tier as a permit policy declares it with `@tier("...")`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Low,
    Medium,
    High,
}

impl Tier {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Tier::Low),
            "medium" => Some(Tier::Medium),
            "high" => Some(Tier::High),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
        }
    }
}

/// What the engine knows about one policy besides its Cedar body.
#[derive(Clone, Debug)]
struct Rule {
    /// Position in the file, used to pick "the first" among several policies that applied.
    order: usize,
    tier: Option<Tier>,
}

/// A loaded, validated onboarding policy. Immutable and cheap to share (`Send + Sync`): build it
/// once at start and keep it behind an `Arc`.
pub struct OnboardingPolicy {
    policies: PolicySet,
    schema: Schema,
    /// Every policy id with its file position and tier.
    rules: HashMap<PolicyId, Rule>,
    /// Policy ids in file order.
    rule_ids: Vec<String>,
    software_type: EntityTypeName,
    scope_type: EntityTypeName,
    grant_action: EntityUid,
    review_action: EntityUid,
}

impl fmt::Debug for OnboardingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnboardingPolicy").field("rules", &self.rule_ids).finish_non_exhaustive()
    }
}

/// Everything the policy may look at for one registration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyInput {
    /// SSA `software_id`; the entity id of the principal.
    pub software_id: String,
    pub org_id: String,
    pub org_name: String,
    /// The organisation's status in the directory: `"Active"`, `"Revoked"`, ...
    pub org_status: String,
    /// SSA software roles, e.g. `AISP`, `PISP`, `CBPII`.
    pub roles: Vec<String>,
    /// `"Live"` or `"Test"`.
    pub software_mode: String,
    /// The directory that signed the SSA (its `iss`).
    pub directory: String,
    /// `token_endpoint_auth_method`, e.g. `private_key_jwt`, `tls_client_auth`.
    pub auth_method: String,
    pub grant_types: Vec<String>,
    /// As requested; duplicates are decided once.
    pub requested_scopes: Vec<String>,
    /// Transport certificate subject DN (RFC 4514).
    pub cert_subject: String,
    /// Transport certificate issuer DN (RFC 4514).
    pub cert_issuer: String,
    /// Epoch seconds, from the injected clock.
    pub now: i64,
}

/// The decision about one requested scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeDecision {
    pub scope: String,
    pub state: ScopeState,
    /// The `@id` of the policy that decided, or [`DEFAULT_DENY_RULE`].
    pub rule: String,
    /// The `@tier` of the deciding permit policy; `None` when denied.
    pub tier: Option<String>,
}

/// The decision about a whole registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnboardingDecision {
    /// One entry per distinct requested scope, in the order first requested.
    pub scopes: Vec<ScopeDecision>,
    /// The client's risk tier: the highest tier among granted and pending scopes (`low` <
    /// `medium` < `high`); `"low"` when there are none.
    pub tier: String,
}

impl OnboardingDecision {
    /// True when at least one scope was requested and every one was denied: the registration
    /// must fail, naming [`denial_rules`](Self::denial_rules).
    pub fn all_denied(&self) -> bool {
        !self.scopes.is_empty() && self.scopes.iter().all(|s| s.state == ScopeState::Denied)
    }

    /// The distinct rules that denied scopes, in the order of the scopes they denied.
    pub fn denial_rules(&self) -> Vec<&str> {
        let mut rules: Vec<&str> = Vec::new();
        for s in self.scopes.iter().filter(|s| s.state == ScopeState::Denied) {
            if !rules.contains(&s.rule.as_str()) {
                rules.push(&s.rule);
            }
        }
        rules
    }
}

impl OnboardingPolicy {
    /// Parses and validates a policy file. Every failure here is meant to stop the server from
    /// starting.
    ///
    /// Rules beyond Cedar's own: the file holds at least one policy and no templates; every
    /// policy carries a unique `@id("...")` made of ASCII letters, digits, `-`, `_` and `.` (not
    /// [`DEFAULT_DENY_RULE`]); every permit carries `@tier("low" | "medium" | "high")` and no
    /// forbid carries a tier; strict validation against [`SCHEMA`] reports no error and no warning
    /// other than mixed scripts inside a string literal.
    pub fn from_source(text: &str) -> Result<Self, PolicyError> {
        let schema = embedded_schema()?;
        let parsed = PolicySet::from_str(text).map_err(|e| PolicyError::Parse { message: describe_all(text, &e) })?;

        if let Some(template) = parsed.templates().next() {
            let at = locate_from(text, 0, &template.to_string()).map(|(p, _)| p);
            return Err(PolicyError::Validation {
                message: format!(
                    "{}: templates (policies with `?principal` or `?resource` slots) are not supported",
                    at.map_or_else(|| "a policy".to_owned(), |p| format!("policy at {p}"))
                ),
            });
        }
        if parsed.is_empty() {
            return Err(PolicyError::Validation { message: "the file contains no policy".to_owned() });
        }

        let mut renamed = PolicySet::new();
        let mut rules = HashMap::new();
        let mut rule_ids = Vec::new();
        let mut first_seen: HashMap<String, String> = HashMap::new();
        let mut cursor = 0;
        for (order, policy) in parsed.policies().enumerate() {
            let found = locate_from(text, cursor, &policy.to_string());
            if let Some((_, end)) = found {
                cursor = end;
            }
            let here = found.map_or_else(|| format!("policy #{}", order + 1), |(p, _)| format!("policy at {p}"));

            let id = policy.annotation(ID_ANNOTATION).ok_or_else(|| PolicyError::Validation {
                message: format!("{here} has no @{ID_ANNOTATION}(\"...\") annotation; every policy needs a unique one"),
            })?;
            check_rule_id(id).map_err(|why| PolicyError::Validation {
                message: format!("{here}: @{ID_ANNOTATION}(\"{id}\") {why}"),
            })?;
            if let Some(before) = first_seen.get(id) {
                return Err(PolicyError::Validation {
                    message: format!("duplicate @{ID_ANNOTATION}(\"{id}\"): {here} reuses the id of the {before}"),
                });
            }
            first_seen.insert(id.to_owned(), here.clone());

            let tier = match (policy.effect(), policy.annotation(TIER_ANNOTATION)) {
                (Effect::Permit, None) => {
                    return Err(PolicyError::Validation {
                        message: format!(
                            "permit policy `{id}` ({here}) has no @{TIER_ANNOTATION}(\"low\" | \"medium\" | \"high\")"
                        ),
                    });
                }
                (Effect::Permit, Some(t)) => Some(Tier::parse(t).ok_or_else(|| PolicyError::Validation {
                    message: format!(
                        "permit policy `{id}` ({here}) has @{TIER_ANNOTATION}(\"{t}\"); expected \"low\", \"medium\" or \"high\""
                    ),
                })?),
                (Effect::Forbid, Some(_)) => {
                    return Err(PolicyError::Validation {
                        message: format!(
                            "forbid policy `{id}` ({here}) has a @{TIER_ANNOTATION}; only permit policies carry a tier"
                        ),
                    });
                }
                (Effect::Forbid, None) => None,
            };

            let policy_id = PolicyId::new(id);
            renamed
                .add(policy.new_id(policy_id.clone()))
                .map_err(|e| PolicyError::Validation { message: format!("policy `{id}` ({here}): {e}") })?;
            rules.insert(policy_id, Rule { order, tier });
            rule_ids.push(id.to_owned());
        }

        let validator = Validator::new(schema);
        let result = validator.validate(&renamed, ValidationMode::Strict);
        let mut problems: Vec<String> = result
            .validation_errors()
            .map(|e| describe_in_policy(text, e.policy_id(), &DetailedError::from(e)))
            .collect();
        // Warnings are errors too (a policy that can never apply is a mistake), but only
        // reported when there is nothing worse: an unknown action also makes its policy
        // "impossible", and saying so again is noise.
        if problems.is_empty() {
            problems.extend(
                result
                    .validation_warnings()
                    .filter(|w| !matches!(w, ValidationWarning::MixedScriptString(_)))
                    .map(|w| describe_in_policy(text, w.policy_id(), &DetailedError::from(w))),
            );
        }
        if !problems.is_empty() {
            return Err(PolicyError::Validation { message: problems.join("; ") });
        }

        Ok(OnboardingPolicy {
            policies: renamed,
            schema: validator.schema().clone(),
            rules,
            rule_ids,
            software_type: type_name(SOFTWARE_TYPE)?,
            scope_type: type_name(SCOPE_TYPE)?,
            grant_action: EntityUid::from_type_name_and_id(type_name(ACTION_TYPE)?, EntityId::new(GRANT_ACTION)),
            review_action: EntityUid::from_type_name_and_id(type_name(ACTION_TYPE)?, EntityId::new(REVIEW_ACTION)),
        })
    }

    /// The policy ids, in file order (for the start-up log).
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rule_ids.iter().map(String::as_str)
    }

    /// Decides every requested scope. Pure: same input, same answer.
    ///
    /// Fails (and decides nothing) when any policy fails to evaluate for any scope: see the
    /// module docs.
    pub fn decide(&self, input: &PolicyInput) -> Result<OnboardingDecision, PolicyError> {
        let mut scopes: Vec<&str> = Vec::new();
        for s in &input.requested_scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }

        let principal = EntityUid::from_type_name_and_id(self.software_type.clone(), EntityId::new(&input.software_id));
        let principal_entity = Entity::new(principal.clone(), software_attributes(input), HashSet::new())
            .map_err(|e| evaluation(format!("software `{}`: {e}", input.software_id)))?;
        let mut entities = vec![principal_entity];
        let mut resources = Vec::with_capacity(scopes.len());
        for scope in &scopes {
            let uid = EntityUid::from_type_name_and_id(self.scope_type.clone(), EntityId::new(scope));
            let attrs = HashMap::from([("name".to_owned(), RestrictedExpression::new_string((*scope).to_owned()))]);
            let entity = Entity::new(uid.clone(), attrs, HashSet::new())
                .map_err(|e| evaluation(format!("scope `{scope}`: {e}")))?;
            entities.push(entity);
            resources.push(uid);
        }
        let entities = Entities::from_entities(entities, Some(&self.schema))
            .map_err(|e| evaluation(format!("entities for software `{}`: {e}", input.software_id)))?;
        let context = Context::from_pairs([
            ("grant_types".to_owned(), string_set(&input.grant_types)),
            ("requested_scopes".to_owned(), string_set(&scopes)),
            ("now".to_owned(), RestrictedExpression::new_long(input.now)),
        ])
        .map_err(|e| evaluation(format!("request context: {e}")))?;

        let authorizer = Authorizer::new();
        let mut decisions = Vec::with_capacity(scopes.len());
        for (scope, resource) in scopes.iter().zip(resources) {
            let ask = |action: &EntityUid| -> Result<Response, PolicyError> {
                let request = Request::new(
                    principal.clone(),
                    action.clone(),
                    resource.clone(),
                    context.clone(),
                    Some(&self.schema),
                )
                .map_err(|e| evaluation(format!("request for scope `{scope}`: {e}")))?;
                let response = authorizer.is_authorized(&request, &self.policies, &entities);
                fail_closed(&response, scope, action)?;
                Ok(response)
            };

            let grant = ask(&self.grant_action)?;
            if grant.decision() == Decision::Allow {
                decisions.push(self.allowed(scope, ScopeState::Granted, &grant)?);
                continue;
            }
            let review = ask(&self.review_action)?;
            if review.decision() == Decision::Allow {
                decisions.push(self.allowed(scope, ScopeState::PendingReview, &review)?);
                continue;
            }
            // On Deny, the reasons are the forbid policies that applied (none: no permit did).
            let forbid = self.first_in_file_order(grant.diagnostics().reason().chain(review.diagnostics().reason()));
            decisions.push(ScopeDecision {
                scope: (*scope).to_owned(),
                state: ScopeState::Denied,
                rule: forbid.map_or_else(|| DEFAULT_DENY_RULE.to_owned(), |id| id.to_string()),
                tier: None,
            });
        }

        let tier = decisions
            .iter()
            .filter(|d| d.state != ScopeState::Denied)
            .filter_map(|d| d.tier.as_deref().and_then(Tier::parse))
            .max()
            .unwrap_or(Tier::Low);
        Ok(OnboardingDecision { scopes: decisions, tier: tier.as_str().to_owned() })
    }

    /// The decision for an Allow response: the first determining permit policy in file order.
    fn allowed(&self, scope: &str, state: ScopeState, response: &Response) -> Result<ScopeDecision, PolicyError> {
        let id = self
            .first_in_file_order(response.diagnostics().reason())
            .ok_or_else(|| evaluation(format!("scope `{scope}` was allowed but Cedar named no policy")))?;
        let tier = self
            .rules
            .get(id)
            .and_then(|r| r.tier)
            .ok_or_else(|| evaluation(format!("policy `{id}` allowed scope `{scope}` but has no tier")))?;
        Ok(ScopeDecision { scope: scope.to_owned(), state, rule: id.to_string(), tier: Some(tier.as_str().to_owned()) })
    }

    fn first_in_file_order<'a>(&self, ids: impl Iterator<Item = &'a PolicyId>) -> Option<&'a PolicyId> {
        ids.min_by_key(|id| self.rules.get(*id).map_or(usize::MAX, |r| r.order))
    }
}

/// Cedar leaves a policy that fails to evaluate out of the decision. Refuse to decide instead.
fn fail_closed(response: &Response, scope: &str, action: &EntityUid) -> Result<(), PolicyError> {
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|e| match e {
            AuthorizationError::PolicyEvaluationError(inner) => {
                format!("policy `{}` failed to evaluate: {}", inner.policy_id(), inner.inner())
            }
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(evaluation(format!("scope `{scope}`, action `{}`: {}", action.id().unescaped(), errors.join("; "))))
}

fn evaluation(message: String) -> PolicyError {
    PolicyError::Evaluation { message }
}

fn software_attributes(input: &PolicyInput) -> HashMap<String, RestrictedExpression> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    HashMap::from([
        ("org_id".to_owned(), string(&input.org_id)),
        ("org_name".to_owned(), string(&input.org_name)),
        ("org_status".to_owned(), string(&input.org_status)),
        ("roles".to_owned(), string_set(&input.roles)),
        ("software_mode".to_owned(), string(&input.software_mode)),
        ("directory".to_owned(), string(&input.directory)),
        ("auth_method".to_owned(), string(&input.auth_method)),
        ("cert_subject".to_owned(), string(&input.cert_subject)),
        ("cert_issuer".to_owned(), string(&input.cert_issuer)),
    ])
}

fn string_set<S: AsRef<str>>(items: &[S]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().map(|s| RestrictedExpression::new_string(s.as_ref().to_owned())))
}

fn embedded_schema() -> Result<Schema, PolicyError> {
    // The schema is a constant: a failure here is a bug caught by the tests, reported like any
    // other validation failure rather than with a panic.
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Validation { message: format!("embedded schema: {}", describe_all(SCHEMA, &e)) })
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    EntityTypeName::from_str(name)
        .map_err(|e| PolicyError::Validation { message: format!("entity type `{name}`: {e}") })
}

fn check_rule_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("is empty");
    }
    if id == DEFAULT_DENY_RULE {
        return Err("is reserved for scopes no policy permits");
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("may only contain ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// A 1-based line and column in the policy text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn at(text: &str, offset: usize) -> Option<Self> {
        let before = text.get(..offset)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Finds `snippet` in `text` at or after byte `from`: its start position and end offset.
fn locate_from(text: &str, from: usize, snippet: &str) -> Option<(Position, usize)> {
    let start = from + text.get(from..)?.find(snippet)?;
    Some((Position::at(text, start)?, start + snippet.len()))
}

/// One diagnostic as "message at line L, column C (help)".
fn describe(text: &str, err: &DetailedError) -> String {
    let mut s = err.message.clone();
    if let Some(at) = err.source_locations.first().and_then(|l| Position::at(text, l.loc.start)) {
        s.push_str(&format!(" at {at}"));
    }
    if let Some(help) = &err.help {
        s.push_str(&format!(" (help: {help})"));
    }
    s
}

/// A diagnostic and its related ones (Cedar reports several parse errors that way).
fn describe_all<'a, E>(text: &str, err: &'a E) -> String
where
    DetailedError: From<&'a E>,
{
    let top = DetailedError::from(err);
    std::iter::once(&top).chain(top.related.iter()).map(|e| describe(text, e)).collect::<Vec<_>>().join("; ")
}

/// A validator diagnostic, prefixed with the policy id unless Cedar's message already names it.
fn describe_in_policy(text: &str, id: &PolicyId, err: &DetailedError) -> String {
    let message = describe(text, err);
    if err.message.contains(&format!("`{id}`")) { message } else { format!("policy `{id}`: {message}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../deploy/onboarding.cedar");

    fn shipped() -> OnboardingPolicy {
        OnboardingPolicy::from_source(SHIPPED).unwrap()
    }

    fn input(org_status: &str, roles: &[&str], scopes: &[&str]) -> PolicyInput {
        PolicyInput {
            software_id: "sw-1".to_owned(),
            org_id: "org-1".to_owned(),
            org_name: "Example Fintech Ltd".to_owned(),
            org_status: org_status.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            software_mode: "Live".to_owned(),
            directory: "https://directory.example".to_owned(),
            auth_method: "private_key_jwt".to_owned(),
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            requested_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            cert_subject: "CN=sw-1,O=Example Fintech Ltd,C=GB".to_owned(),
            cert_issuer: "CN=Directory Issuing CA,O=Directory,C=GB".to_owned(),
            now: 1_700_000_000,
        }
    }

    /// (scope, state, rule, tier) per decided scope.
    fn summary(d: &OnboardingDecision) -> Vec<(&str, ScopeState, &str, Option<&str>)> {
        d.scopes.iter().map(|s| (s.scope.as_str(), s.state, s.rule.as_str(), s.tier.as_deref())).collect()
    }

    use ScopeState::{Denied, Granted, PendingReview};

    #[test]
    fn policy_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OnboardingPolicy>();
    }

    #[test]
    fn shipped_policy_loads_with_its_rules_in_file_order() {
        let policy = shipped();
        assert_eq!(
            policy.rule_ids().collect::<Vec<_>>(),
            ["read-only-for-active-orgs", "payments-need-review", "introspection-for-gateways", "revoked-org"]
        );
    }

    /// One row of the shipped-policy table.
    struct Case {
        name: &'static str,
        org_status: &'static str,
        roles: &'static [&'static str],
        scopes: &'static [&'static str],
        expected: &'static [(&'static str, ScopeState, &'static str, Option<&'static str>)],
        tier: &'static str,
    }

    #[test]
    fn shipped_policy_decisions() {
        const READ: &str = "read-only-for-active-orgs";
        const PAY: &str = "payments-need-review";
        const INTRO: &str = "introspection-for-gateways";
        const DENY: &str = DEFAULT_DENY_RULE;
        const REVOKED: &str = "revoked-org";
        let table = [
            Case {
                name: "the issue's example",
                org_status: "Active",
                roles: &["AISP", "PISP"],
                scopes: &["accounts:read", "payments:write", "unknown:scope"],
                expected: &[
                    ("accounts:read", Granted, READ, Some("low")),
                    ("payments:write", PendingReview, PAY, Some("high")),
                    ("unknown:scope", Denied, DENY, None),
                ],
                tier: "high",
            },
            Case {
                name: "every read-only scope for an AISP",
                org_status: "Active",
                roles: &["AISP"],
                scopes: &["accounts:read", "balances:read", "transactions:read", "beneficiaries:read", "products:read"],
                expected: &[
                    ("accounts:read", Granted, READ, Some("low")),
                    ("balances:read", Granted, READ, Some("low")),
                    ("transactions:read", Granted, READ, Some("low")),
                    ("beneficiaries:read", Granted, READ, Some("low")),
                    ("products:read", Granted, READ, Some("low")),
                ],
                tier: "low",
            },
            Case {
                name: "funds confirmation is for a CBPII",
                org_status: "Active",
                roles: &["CBPII"],
                scopes: &["fundsconfirmations:read", "accounts:read"],
                expected: &[
                    ("fundsconfirmations:read", Granted, READ, Some("low")),
                    ("accounts:read", Denied, DENY, None),
                ],
                tier: "low",
            },
            Case {
                name: "an AISP may not even ask for payments",
                org_status: "Active",
                roles: &["AISP"],
                scopes: &["payments:write", "fundsconfirmations:read"],
                expected: &[("payments:write", Denied, DENY, None), ("fundsconfirmations:read", Denied, DENY, None)],
                tier: "low",
            },
            Case {
                name: "every payment scope goes to review",
                org_status: "Active",
                roles: &["PISP"],
                scopes: &["payments:write", "payments:read", "domestic-payments", "standing-orders:write"],
                expected: &[
                    ("payments:write", PendingReview, PAY, Some("high")),
                    ("payments:read", PendingReview, PAY, Some("high")),
                    ("domestic-payments", PendingReview, PAY, Some("high")),
                    ("standing-orders:write", PendingReview, PAY, Some("high")),
                ],
                tier: "high",
            },
            Case {
                name: "introspection waits for a human",
                org_status: "Active",
                roles: &[],
                scopes: &["introspection", "accounts:read"],
                expected: &[
                    ("introspection", PendingReview, INTRO, Some("medium")),
                    ("accounts:read", Denied, DENY, None),
                ],
                tier: "medium",
            },
            Case {
                name: "a revoked organisation gets nothing",
                org_status: "Revoked",
                roles: &["AISP", "PISP"],
                scopes: &["accounts:read", "payments:write", "introspection", "unknown:scope"],
                expected: &[
                    ("accounts:read", Denied, REVOKED, None),
                    ("payments:write", Denied, REVOKED, None),
                    ("introspection", Denied, REVOKED, None),
                    ("unknown:scope", Denied, REVOKED, None),
                ],
                tier: "low",
            },
            Case {
                name: "org status is compared exactly",
                org_status: "active",
                roles: &["AISP"],
                scopes: &["accounts:read"],
                expected: &[("accounts:read", Denied, REVOKED, None)],
                tier: "low",
            },
            Case {
                name: "order kept, duplicates decided once",
                org_status: "Active",
                roles: &["AISP", "PISP"],
                scopes: &["payments:write", "accounts:read", "payments:write", "nope", "accounts:read", "nope"],
                expected: &[
                    ("payments:write", PendingReview, PAY, Some("high")),
                    ("accounts:read", Granted, READ, Some("low")),
                    ("nope", Denied, DENY, None),
                ],
                tier: "high",
            },
            Case {
                name: "no scopes requested",
                org_status: "Active",
                roles: &["AISP"],
                scopes: &[],
                expected: &[],
                tier: "low",
            },
        ];

        let policy = shipped();
        for case in table {
            let decision = policy.decide(&input(case.org_status, case.roles, case.scopes)).unwrap();
            assert_eq!(summary(&decision), case.expected, "{}", case.name);
            assert_eq!(decision.tier, case.tier, "{}", case.name);
        }
    }

    #[test]
    fn all_denied_and_the_rules_that_denied() {
        struct Row {
            org_status: &'static str,
            scopes: &'static [&'static str],
            all_denied: bool,
            rules: &'static [&'static str],
        }
        let table = [
            Row {
                org_status: "Revoked",
                scopes: &["accounts:read", "unknown:scope"],
                all_denied: true,
                rules: &["revoked-org"],
            },
            Row {
                org_status: "Active",
                scopes: &["unknown:scope", "payments:write"],
                all_denied: true,
                rules: &[DEFAULT_DENY_RULE],
            },
            Row {
                org_status: "Active",
                scopes: &["accounts:read", "unknown:scope"],
                all_denied: false,
                rules: &[DEFAULT_DENY_RULE],
            },
            Row { org_status: "Active", scopes: &["accounts:read"], all_denied: false, rules: &[] },
            Row { org_status: "Active", scopes: &[], all_denied: false, rules: &[] },
        ];
        let policy = shipped();
        for row in table {
            let decision = policy.decide(&input(row.org_status, &["AISP"], row.scopes)).unwrap();
            assert_eq!(decision.all_denied(), row.all_denied, "{} {:?}", row.org_status, row.scopes);
            assert_eq!(decision.denial_rules(), row.rules, "{} {:?}", row.org_status, row.scopes);
        }
    }

    /// A minimal valid policy for building bad files.
    const GRANT_ALL: &str =
        r#"@id("grant-all") @tier("low") permit(principal, action == Tessera::Action::"grant", resource);"#;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Parse,
        Validation,
    }

    fn kind(e: &PolicyError) -> Option<Kind> {
        match e {
            PolicyError::Parse { .. } => Some(Kind::Parse),
            PolicyError::Validation { .. } => Some(Kind::Validation),
            PolicyError::Evaluation { .. } => None,
        }
    }

    #[test]
    fn policies_that_must_not_load() {
        struct Bad {
            name: &'static str,
            source: String,
            kind: Kind,
            /// Substrings the message must contain.
            says: &'static [&'static str],
        }
        let bad = |name, source: &str, kind, says| Bad { name, source: source.to_owned(), kind, says };
        let table = [
            bad(
                "syntax error",
                "@id(\"broken\") @tier(\"low\")\npermit(principal, action, resource) when { principal.org_status == };",
                Kind::Parse,
                &["unexpected token", "line 2, column 68"],
            ),
            bad(
                "misspelt attribute",
                "@id(\"typo\") @tier(\"low\")\npermit(principal, action, resource)\nwhen { principal.org_stauts == \"Active\" };",
                Kind::Validation,
                &["`typo`", "org_stauts", "line 3, column 8", "did you mean `org_status`"],
            ),
            bad(
                "unknown action",
                "@id(\"bad-action\") @tier(\"low\")\npermit(principal, action == Tessera::Action::\"aprove\", resource);",
                Kind::Validation,
                &["`bad-action`", "unrecognized action", "aprove", "line 2, column 29"],
            ),
            bad(
                "unknown entity type",
                "@id(\"bad-type\") @tier(\"low\")\npermit(principal is Tessera::User, action, resource);",
                Kind::Validation,
                &["`bad-type`", "Tessera::User", "line 2"],
            ),
            bad(
                "type error",
                "@id(\"bad-types\") @tier(\"low\")\npermit(principal, action, resource) when { context.now == \"soon\" };",
                Kind::Validation,
                &["policy `bad-types`", "line 2, column 44"],
            ),
            Bad {
                name: "missing @id",
                source: format!("{GRANT_ALL}\n\n@tier(\"low\")\npermit(principal, action, resource);"),
                kind: Kind::Validation,
                says: &["policy at line 3, column 1 has no @id"],
            },
            Bad {
                name: "duplicate @id",
                source: format!("{GRANT_ALL}\n{GRANT_ALL}"),
                kind: Kind::Validation,
                says: &["duplicate @id(\"grant-all\")", "line 2, column 1", "line 1, column 1"],
            },
            bad(
                "two @id on one policy",
                "@id(\"a\") @id(\"b\") @tier(\"low\")\npermit(principal, action, resource);",
                Kind::Parse,
                &["duplicate annotation", "line 1"],
            ),
            bad(
                "permit without @tier",
                "@id(\"untiered\")\npermit(principal, action, resource);",
                Kind::Validation,
                &["`untiered`", "no @tier"],
            ),
            bad(
                "unknown tier",
                "@id(\"odd-tier\") @tier(\"critical\")\npermit(principal, action, resource);",
                Kind::Validation,
                &["`odd-tier`", "critical"],
            ),
            bad(
                "tier on a forbid",
                "@id(\"tiered-forbid\") @tier(\"low\")\nforbid(principal, action, resource);",
                Kind::Validation,
                &["`tiered-forbid`", "only permit"],
            ),
            bad(
                "reserved id",
                "@id(\"default-deny\")\nforbid(principal, action, resource);",
                Kind::Validation,
                &["default-deny", "reserved"],
            ),
            bad("empty id", "@id(\"\")\nforbid(principal, action, resource);", Kind::Validation, &["is empty"]),
            bad(
                "id with a space",
                "@id(\"two words\")\nforbid(principal, action, resource);",
                Kind::Validation,
                &["two words", "may only contain"],
            ),
            bad(
                "template",
                "@id(\"tpl\") @tier(\"low\")\npermit(principal == ?principal, action, resource);",
                Kind::Validation,
                &["template", "line 1"],
            ),
            bad("empty file", "// nothing here\n", Kind::Validation, &["no policy"]),
            bad(
                "a policy that can never apply",
                "@id(\"never\") @tier(\"low\")\npermit(principal, action, resource) when { false };",
                Kind::Validation,
                &["`never`", "impossible"],
            ),
        ];
        for case in table {
            let err = match OnboardingPolicy::from_source(&case.source) {
                Ok(_) => panic!("{}: loaded", case.name),
                Err(e) => e,
            };
            assert_eq!(kind(&err), Some(case.kind), "{}: {err:?}", case.name);
            let message = err.to_string();
            for needle in case.says {
                assert!(message.contains(needle), "{}: {needle:?} not in {message:?}", case.name);
            }
        }
    }

    #[test]
    fn unrelated_annotations_and_mixed_script_strings_are_fine() {
        let source = r#"
            @id("named-bank") @tier("medium") @description("one organisation by name")
            permit(principal, action == Tessera::Action::"review", resource)
            when { principal.org_name == "Банк Example" };
        "#;
        let policy = OnboardingPolicy::from_source(source).unwrap();
        let mut i = input("Active", &[], &["anything"]);
        i.org_name = "Банк Example".to_owned();
        let d = policy.decide(&i).unwrap();
        assert_eq!(summary(&d), [("anything", PendingReview, "named-bank", Some("medium"))]);
        assert_eq!(d.tier, "medium");
    }

    #[test]
    fn first_policy_in_file_order_is_the_rule_and_grant_beats_review() {
        let source = r#"
            @id("b-review") @tier("high") permit(principal, action == Tessera::Action::"review", resource);
            @id("z-grant") @tier("medium") permit(principal, action == Tessera::Action::"grant", resource);
            @id("a-grant") @tier("low") permit(principal, action == Tessera::Action::"grant", resource);
            @id("z-forbid") forbid(principal, action, resource) when { resource.name == "blocked" };
            @id("a-forbid") forbid(principal, action == Tessera::Action::"grant", resource)
                when { resource.name == "blocked" };
        "#;
        let policy = OnboardingPolicy::from_source(source).unwrap();
        let d = policy.decide(&input("Active", &[], &["x", "blocked"])).unwrap();
        assert_eq!(summary(&d), [("x", Granted, "z-grant", Some("medium")), ("blocked", Denied, "z-forbid", None)]);
        // Only granted and pending scopes count towards the tier.
        assert_eq!(d.tier, "medium");
    }

    #[test]
    fn every_input_reaches_the_policy() {
        // One review policy per input field; each scope is only reviewable when its field matches.
        let source = r#"
            @id("software-id") @tier("low") permit(principal == Tessera::Software::"sw-1", action == Tessera::Action::"review", resource == Tessera::Scope::"s-software-id");
            @id("org-id") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-org-id") when { principal.org_id == "org-1" };
            @id("mode") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-mode") when { principal.software_mode == "Live" };
            @id("directory") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-directory") when { principal.directory == "https://directory.example" };
            @id("auth") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-auth") when { principal.auth_method == "private_key_jwt" };
            @id("subject") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-subject") when { principal.cert_subject like "CN=sw-1,*" };
            @id("issuer") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-issuer") when { principal.cert_issuer like "*O=Directory*" };
            @id("grant-types") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-grant-types") when { context.grant_types.contains("refresh_token") };
            @id("requested") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-requested") when { context.requested_scopes.contains("s-org-id") };
            @id("time") @tier("low") permit(principal, action == Tessera::Action::"review", resource == Tessera::Scope::"s-time") when { context.now >= 1700000000 };
        "#;
        let scopes = [
            "s-software-id",
            "s-org-id",
            "s-mode",
            "s-directory",
            "s-auth",
            "s-subject",
            "s-issuer",
            "s-grant-types",
            "s-requested",
            "s-time",
        ];
        let policy = OnboardingPolicy::from_source(source).unwrap();
        let d = policy.decide(&input("Active", &[], &scopes)).unwrap();
        assert!(d.scopes.iter().all(|s| s.state == PendingReview), "{d:?}");

        let mut other = input("Active", &[], &scopes[..9]);
        other.software_id = "sw-2".to_owned();
        other.org_id = "org-2".to_owned();
        other.software_mode = "Test".to_owned();
        other.directory = "https://other.example".to_owned();
        other.auth_method = "tls_client_auth".to_owned();
        other.cert_subject = "CN=sw-2".to_owned();
        other.cert_issuer = "CN=Other CA".to_owned();
        other.grant_types = vec!["client_credentials".to_owned()];
        other.requested_scopes.push("s-time".to_owned());
        other.now = 1_600_000_000;
        let d = policy.decide(&other).unwrap();
        // `s-requested` still passes: `s-org-id` is among the requested scopes.
        let pending: Vec<&str> =
            d.scopes.iter().filter(|s| s.state == PendingReview).map(|s| s.scope.as_str()).collect();
        assert_eq!(pending, ["s-requested"]);
    }

    #[test]
    fn an_evaluation_error_fails_closed() {
        // Strict validation leaves no attribute optional in this schema, so the reachable
        // evaluation error is arithmetic overflow: `now * 10^10` overflows a 64-bit Long.
        // Without the check, Cedar would skip the erroring forbid and the grant would stand.
        let source = r#"
            @id("grant-all") @tier("low") permit(principal, action, resource);
            @id("overflowing-forbid") forbid(principal, action, resource)
                when { context.now * 10000000000 > 0 };
        "#;
        let policy = OnboardingPolicy::from_source(source).unwrap();
        let err = policy.decide(&input("Active", &["AISP"], &["accounts:read"])).unwrap_err();
        assert!(matches!(err, PolicyError::Evaluation { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("`overflowing-forbid`"), "{message}");
        assert!(message.contains("accounts:read"), "{message}");

        // The same policy decides when nothing overflows.
        let mut early = input("Active", &["AISP"], &["accounts:read"]);
        early.now = 0;
        let d = policy.decide(&early).unwrap();
        assert_eq!(summary(&d), [("accounts:read", Granted, "grant-all", Some("low"))]);
    }

    #[test]
    fn scope_and_software_ids_are_data_not_syntax() {
        let policy = shipped();
        let mut i = input("Active", &["AISP"], &["accounts:read", "\"quoted\" scope\\", ""]);
        i.software_id = "sw\"; forbid(principal, action, resource); //".to_owned();
        let d = policy.decide(&i).unwrap();
        assert_eq!(
            summary(&d),
            [
                ("accounts:read", Granted, "read-only-for-active-orgs", Some("low")),
                ("\"quoted\" scope\\", Denied, DEFAULT_DENY_RULE, None),
                ("", Denied, DEFAULT_DENY_RULE, None),
            ]
        );
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\nçd\nef";
        assert_eq!(Position::at(text, 0), Some(Position { line: 1, column: 1 }));
        assert_eq!(Position::at(text, 3), Some(Position { line: 2, column: 1 }));
        assert_eq!(Position::at(text, 5), Some(Position { line: 2, column: 2 }));
        assert_eq!(Position::at(text, 4), None, "inside a multi-byte character");
        assert_eq!(Position::at(text, 99), None);
    }

    #[test]
    fn examples_in_the_docs_load_and_decide() {
        // Kept verbatim from docs/onboarding-policy.md, "Changing the policy".
        let source = r#"
            // Sandbox software may read anything read-only without the AISP role.
            @id("sandbox-read-only")
            @tier("low")
            permit (principal, action == Tessera::Action::"grant", resource)
            when {
                principal.software_mode == "Test" &&
                ["accounts:read", "balances:read"].contains(resource.name)
            };

            // Only accept software vouched for by our production directory.
            @id("known-directory-only")
            forbid (principal, action, resource)
            unless { principal.directory == "https://directory.example" };
        "#;
        let policy = OnboardingPolicy::from_source(source).unwrap();
        let mut sandbox = input("Active", &[], &["accounts:read", "payments:write"]);
        sandbox.software_mode = "Test".to_owned();
        let d = policy.decide(&sandbox).unwrap();
        assert_eq!(
            summary(&d),
            [
                ("accounts:read", Granted, "sandbox-read-only", Some("low")),
                ("payments:write", Denied, DEFAULT_DENY_RULE, None)
            ]
        );
        sandbox.directory = "https://elsewhere.example".to_owned();
        let d = policy.decide(&sandbox).unwrap();
        assert_eq!(d.denial_rules(), ["known-directory-only"]);
        assert!(d.all_denied());
    }

    #[test]
    fn embedded_schema_parses() {
        assert!(embedded_schema().is_ok());
    }
}
