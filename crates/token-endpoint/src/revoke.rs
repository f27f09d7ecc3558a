//! Token revocation (RFC 7009), authenticated like the token endpoint.

use serde_json::{Map, json};
use tessera_core::UnixTime;
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::error::TokenError;
use tessera_http::PeerCertificates;

use crate::auth::{Credentials, Form};
use crate::inspect::issued_by_us;
use crate::service::TokenService;

impl TokenService {
    /// `POST /revoke`. Unknown, malformed or expired tokens are a success (RFC 7009 §2.2): the
    /// client's goal, a token that no longer works, is met.
    pub async fn revoke(
        &self,
        form: &Form,
        authorization_header: bool,
        peer: &PeerCertificates,
    ) -> Result<(), TokenError> {
        let now = self.clock.now();
        let caller = self.authenticate(&Credentials { form, authorization_header, peer }, now).await?;
        let token = form.get("token")?.ok_or_else(|| TokenError::InvalidRequest("token is required".into()))?;
        // token_type_hint is only a hint: an unknown value is ignored (§2.1), and every token
        // type this server issues is searched.
        let _ = form.get("token_type_hint")?;
        let Some(verifier) = self.verifier.as_ref() else {
            return Err(TokenError::Internal { internal: "revocation without a token verifier".into() });
        };
        let Some(issued) = issued_by_us(token, verifier.as_ref(), &self.issuer) else {
            // Not an access token of ours. A JWT we signed for another purpose (signed metadata,
            // introspection responses) cannot be revoked.
            if verifier.verify(token, "JWT").is_some() || verifier.verify(token, "token-introspection+jwt").is_some() {
                return Err(TokenError::UnsupportedTokenType("only access tokens can be revoked here".into()));
            }
            return Ok(());
        };
        if issued.client_id != caller.client_id {
            // §2.1: the token must have been issued to the client making the request.
            return Err(TokenError::UnauthorizedClient("the token was not issued to this client".into()));
        }
        if issued.exp <= now.0 || self.revocations.is_revoked(&issued.jti) {
            return Ok(());
        }
        let mut data = Map::new();
        data.insert("jti".into(), json!(issued.jti));
        data.insert("exp".into(), json!(issued.exp));
        let event = AuditEvent {
            at: now,
            kind: AuditKind::TokenRevoked,
            actor: caller.client_id.to_string(),
            client_id: Some(caller.client_id.clone()),
            data,
        };
        // Durable first, then the in-memory list every introspection reads.
        self.tokens
            .revoke(&issued.jti, &issued.client_id, UnixTime(issued.exp), now, &[event])
            .await
            .map_err(|e| TokenError::Unavailable { internal: format!("revocation store: {e}") })?;
        self.revocations.insert(issued.jti.clone(), UnixTime(issued.exp));
        if let Some(notify) = &self.on_revoke {
            notify(&issued.jti, UnixTime(issued.exp));
        }
        tracing::info!(client_id = %caller.client_id, jti = %issued.jti, "token revoked");
        Ok(())
    }
}
