//! Building each protocol surface from the configuration.

use std::sync::Arc;

use tessera_client_registration::policy::OnboardingPolicy;
use tessera_client_registration::{Directory, Profile, Registrar, RegistrationSettings, StaticJwks, TransportBinding};
use tessera_core::{Clock, Rng};
use tessera_http::mtls::TrustAnchors;
use tessera_store::{AuditLog, ClientCache, ClientStore};

use crate::config::{Config, DirectoryKeys};
use crate::fetch::{self, RemoteJwks};

#[derive(Debug, thiserror::Error)]
pub enum SurfaceError {
    #[error("onboarding policy ({origin}): {message}")]
    Policy { origin: String, message: String },
    #[error("registration: {0}")]
    Registration(String),
}

pub fn trust_anchors(config: &Config) -> Result<TrustAnchors, SurfaceError> {
    TrustAnchors::from_ders(&config.client_cas).map_err(|e| SurfaceError::Registration(e.to_string()))
}

pub fn registrar(
    config: &Config,
    anchors: TrustAnchors,
    clients: Arc<dyn ClientStore>,
    audit: Arc<dyn AuditLog>,
    cache: Arc<ClientCache>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
) -> Result<Registrar, SurfaceError> {
    let r = &config.registration;
    let policy = OnboardingPolicy::from_source(&r.policy_source)
        .map_err(|e| SurfaceError::Policy { origin: r.policy_origin.clone(), message: e.to_string() })?;
    let mut directories = Vec::new();
    for d in &r.directories {
        let keys: Arc<dyn tessera_client_registration::JwksSource> = match &d.keys {
            DirectoryKeys::Inline(text) => Arc::new(StaticJwks::new(
                fetch::parse_jwks(text.as_bytes())
                    .map_err(|e| SurfaceError::Registration(format!("directory {}: {e}", d.issuer)))?,
            )),
            DirectoryKeys::Remote { uri, cas } => Arc::new(RemoteJwks::new(
                uri.clone(),
                fetch::client(cas).map_err(|e| SurfaceError::Registration(format!("directory {}: {e}", d.issuer)))?,
            )),
        };
        directories.push(Directory {
            issuer: d.issuer.clone(),
            keys,
            algorithms: d.algorithms.clone(),
            max_ssa_age_secs: d.max_ssa_age_secs,
            allow_reuse: d.allow_reuse,
        });
    }
    let software_jwks = if r.uk_profile {
        Some(fetch::shared(fetch::client(&r.software_jwks_cas).map_err(SurfaceError::Registration)?))
    } else {
        None
    };
    let settings = RegistrationSettings {
        issuer: config.issuer.clone(),
        profile: if r.uk_profile {
            Profile::UkOpenBanking { audiences: r.uk_audiences.clone() }
        } else {
            Profile::Rfc7591
        },
        directories,
        role_scopes: r.role_scopes.clone(),
        transport_binding: match r.transport_binding.as_str() {
            "none" => TransportBinding::None,
            "organisation_and_software" => TransportBinding::OrganisationAndSoftware,
            _ => TransportBinding::Organisation,
        },
        tier_lifetimes: r.tier_lifetime_secs.clone(),
        default_lifetime_secs: r.default_client_lifetime_secs,
        max_body_bytes: r.max_body_bytes,
        software_jwks,
    };
    Ok(Registrar::new(settings, Arc::new(policy), anchors, clients, audit, cache, clock, rng))
}

#[allow(clippy::too_many_arguments)]
pub fn token_service(
    config: &Config,
    anchors: TrustAnchors,
    cache: Arc<ClientCache>,
    replay: Arc<dyn tessera_store::ReplayGuard>,
    signer: Arc<dyn tessera_core::keys::SignerSource>,
    audit: tessera_store::AuditSink,
    usage: Arc<tessera_store::UsageRecorder>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
) -> Result<tessera_token_endpoint::TokenService, SurfaceError> {
    let t = &config.token;
    let settings = tessera_token_endpoint::TokenSettings {
        default_audience: t.default_audience.clone(),
        resources: t.resources.clone(),
        tier_lifetimes: t.tier_lifetime_secs.clone(),
        default_lifetime_secs: t.default_lifetime_secs,
        max_lifetime_secs: config.max_token_lifetime_secs,
        accept_token_endpoint_audience: t.accept_token_endpoint_audience,
    };
    let keys =
        Arc::new(fetch::ClientKeyCache::new(fetch::client(&t.client_jwks_cas).map_err(SurfaceError::Registration)?));
    Ok(tessera_token_endpoint::TokenService::new(
        config.issuer.clone(),
        settings,
        cache,
        anchors,
        keys,
        replay,
        signer,
        audit,
        usage,
        clock,
        rng,
    ))
}
