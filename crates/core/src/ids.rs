//! Newtypes for the identifiers that travel on the wire. Parse once, at the edge; the rest of the
//! code can then rely on the invariant.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The authorization server's issuer identifier (RFC 8414 §2): an `https` URL with no query and
/// no fragment. Endpoint URLs are built by appending a path, so a trailing `/` is refused
/// rather than silently producing `https://as.example//token`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Issuer(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("the issuer must be an https URL (got {0:?})")]
    NotHttps(String),
    #[error("the issuer must have a host (got {0:?})")]
    NoHost(String),
    #[error("the issuer must not contain a query or a fragment (got {0:?})")]
    QueryOrFragment(String),
    #[error("the issuer must not end with '/' (got {0:?})")]
    TrailingSlash(String),
    #[error("the issuer must not contain whitespace, user information or control characters (got {0:?})")]
    BadCharacter(String),
}

impl Issuer {
    pub fn parse(s: &str) -> Result<Self, IssuerError> {
        let rest = s.strip_prefix("https://").ok_or_else(|| IssuerError::NotHttps(s.to_owned()))?;
        if s.contains(['?', '#']) {
            return Err(IssuerError::QueryOrFragment(s.to_owned()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || rest.contains('@') {
            return Err(IssuerError::BadCharacter(s.to_owned()));
        }
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(IssuerError::NoHost(s.to_owned()));
        }
        if s.ends_with('/') {
            return Err(IssuerError::TrailingSlash(s.to_owned()));
        }
        Ok(Issuer(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of an endpoint below this issuer, e.g. `endpoint("/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Issuer::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// A registered client's identifier (at most 36 characters when the server chooses it).
    ClientId
);
string_newtype!(
    /// A signing key's `kid`, unique within the server's JWKS.
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_accepts_https_with_port_and_path() {
        for ok in ["https://as.example", "https://127.0.0.1:8443", "https://bank.example/oauth"] {
            assert_eq!(Issuer::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn issuer_rejects_each_class() {
        // spec-checklist I.96: https, no query, no fragment.
        let cases = [
            ("http://as.example", "https"),
            ("as.example", "https"),
            ("https://", "host"),
            ("https://:443", "host"),
            ("https://as.example?x=1", "query"),
            ("https://as.example#f", "query"),
            ("https://as.example/", "'/'"),
            ("https://user@as.example", "whitespace"),
            ("https://as example", "whitespace"),
        ];
        for (input, needle) in cases {
            let err = Issuer::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn endpoint_appends_path() {
        let i = Issuer::parse("https://as.example/t").unwrap();
        assert_eq!(i.endpoint("/jwks"), "https://as.example/t/jwks");
    }

    #[test]
    fn issuer_deserialize_validates() {
        assert!(serde_json::from_str::<Issuer>("\"http://x\"").is_err());
        assert!(serde_json::from_str::<Issuer>("\"https://x\"").is_ok());
    }
}
