//! Authorization server metadata (RFC 8414) assembled from the fragments each surface contributes.

use serde_json::{Map, Value};

/// One surface's contribution to the discovery document.
pub type MetadataFragment = Map<String, Value>;

use crate::Issuer;

/// The fragment that announces one endpoint: `{member: issuer + path}`, and the same member under
/// `mtls_endpoint_aliases` (RFC 8705 §5) when the server has an mTLS alias listener.
pub fn endpoint(issuer: &Issuer, mtls_alias: Option<&Issuer>, member: &str, path: &str) -> MetadataFragment {
    let mut f = Map::new();
    f.insert(member.to_owned(), Value::String(issuer.endpoint(path)));
    if let Some(alias) = mtls_alias {
        let mut aliases = Map::new();
        aliases.insert(member.to_owned(), Value::String(alias.endpoint(path)));
        f.insert("mtls_endpoint_aliases".to_owned(), Value::Object(aliases));
    }
    f
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two surfaces publish different values for discovery member {member:?}")]
pub struct MetadataConflict {
    pub member: String,
}

/// Merges fragments: arrays are unioned (order of first appearance kept, duplicates dropped),
/// objects are merged member by member, and any other member must have the same value in every
/// fragment that sets it. A conflict is a wiring bug, reported at start-up.
pub fn merge(fragments: impl IntoIterator<Item = MetadataFragment>) -> Result<MetadataFragment, MetadataConflict> {
    let mut out = Map::new();
    for fragment in fragments {
        merge_into(&mut out, fragment, "")?;
    }
    Ok(out)
}

fn merge_into(
    out: &mut Map<String, Value>,
    fragment: Map<String, Value>,
    prefix: &str,
) -> Result<(), MetadataConflict> {
    for (name, value) in fragment {
        let path = format!("{prefix}{name}");
        match (out.get_mut(&name), value) {
            (None, value) => {
                out.insert(name, value);
            }
            (Some(Value::Array(existing)), Value::Array(more)) => {
                for v in more {
                    if !existing.contains(&v) {
                        existing.push(v);
                    }
                }
            }
            (Some(Value::Object(existing)), Value::Object(more)) => {
                merge_into(existing, more, &format!("{path}."))?;
            }
            (Some(existing), value) if *existing == value => {}
            _ => return Err(MetadataConflict { member: path }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frag(v: Value) -> MetadataFragment {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn unions_arrays_and_merges_objects() {
        let merged = merge([
            frag(json!({"issuer": "https://a", "grant_types_supported": ["client_credentials"], "mtls_endpoint_aliases": {"token_endpoint": "https://m/token"}})),
            frag(json!({"issuer": "https://a", "grant_types_supported": ["authorization_code", "client_credentials"], "mtls_endpoint_aliases": {"registration_endpoint": "https://m/register"}})),
        ])
        .unwrap();
        assert_eq!(merged["grant_types_supported"], json!(["client_credentials", "authorization_code"]));
        assert_eq!(
            merged["mtls_endpoint_aliases"],
            json!({"token_endpoint": "https://m/token", "registration_endpoint": "https://m/register"})
        );
    }

    #[test]
    fn endpoint_with_and_without_alias() {
        let issuer = Issuer::parse("https://as.example").unwrap();
        let alias = Issuer::parse("https://mtls.as.example").unwrap();
        assert_eq!(
            Value::Object(endpoint(&issuer, None, "token_endpoint", "/token")),
            json!({"token_endpoint": "https://as.example/token"})
        );
        assert_eq!(
            Value::Object(endpoint(&issuer, Some(&alias), "token_endpoint", "/token")),
            json!({"token_endpoint": "https://as.example/token", "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.as.example/token"}})
        );
    }

    #[test]
    fn conflicting_scalars_are_an_error() {
        let err = merge([frag(json!({"issuer": "https://a"})), frag(json!({"issuer": "https://b"}))]).unwrap_err();
        assert_eq!(err.member, "issuer");
        let err = merge([
            frag(json!({"mtls_endpoint_aliases": {"token_endpoint": "https://x"}})),
            frag(json!({"mtls_endpoint_aliases": {"token_endpoint": "https://y"}})),
        ])
        .unwrap_err();
        assert_eq!(err.member, "mtls_endpoint_aliases.token_endpoint");
    }
}
