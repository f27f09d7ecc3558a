//! Finding the access token in a request (RFC 6750 §2), without any web framework.

use crate::error::RsError;

/// The bearer token from the `Authorization` header values of a request (all of them, in
/// order). RFC 6750 §2.1 with RFC 9110 §11.1: the scheme name is case-insensitive (`Bearer`,
/// `bearer`, `BEARER`), followed by one or more spaces and a token68.
///
/// - no header, or a header with another scheme (`Basic`, `DPoP`): [`RsError::MissingToken`]
///   (the request carries no bearer credentials; 401 with a bare `WWW-Authenticate: Bearer`);
/// - two `Authorization` headers, a `Bearer` header without a token, a token that is not a
///   token68 (several credentials, spaces, quotes, non-ASCII): [`RsError::InvalidRequest`].
pub fn bearer_from_authorization(values: &[&[u8]]) -> Result<String, RsError> {
    let value = match values {
        [] => return Err(RsError::MissingToken),
        [one] => *one,
        _ => return Err(RsError::InvalidRequest("more than one Authorization header".into())),
    };
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| RsError::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(RsError::MissingToken);
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(RsError::InvalidRequest("the Bearer authorization has no token".into()));
    }
    if !is_token68(token) {
        return Err(RsError::InvalidRequest("the bearer token is malformed (RFC 6750 b64token expected)".into()));
    }
    Ok(token.to_owned())
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Whether the query string carries an `access_token` parameter (RFC 6750 §2.3, which FAPI 2.0
/// and this crate never accept: tokens in URLs end up in logs). Percent-encoding of the name is
/// decoded, so `access%5Ftoken` counts too.
pub fn query_has_access_token(query: &str) -> bool {
    query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .any(|name| percent_decode(name).as_deref() == Some(b"access_token".as_slice()))
}

/// `application/x-www-form-urlencoded` decoding of a name (`+` is a space). `None` on a bad escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<String, RsError> {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        bearer_from_authorization(&v)
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(parse(&[&format!("{scheme} abc.def.ghi")]).unwrap(), "abc.def.ghi", "{scheme}");
        }
        assert_eq!(parse(&["Bearer   abc"]).unwrap(), "abc");
        assert_eq!(parse(&["Bearer abc== "]).unwrap(), "abc==");
    }

    #[test]
    fn missing_or_other_scheme_is_missing_token() {
        assert_eq!(parse(&[]), Err(RsError::MissingToken));
        assert_eq!(parse(&["Basic Zm9vOmJhcg=="]), Err(RsError::MissingToken));
        assert_eq!(parse(&["DPoP abc"]), Err(RsError::MissingToken));
        assert_eq!(parse(&["Bearerabc"]), Err(RsError::MissingToken));
    }

    #[test]
    fn malformed_is_invalid_request() {
        for bad in
            [&["Bearer"][..], &["Bearer    "], &["Bearer a b"], &["Bearer a,b"], &["Bearer \"a\""], &["Bearer ==="]]
        {
            assert!(matches!(parse(bad), Err(RsError::InvalidRequest(_))), "{bad:?}");
        }
        assert!(matches!(parse(&["Bearer a", "Bearer b"]), Err(RsError::InvalidRequest(_))));
        assert!(matches!(bearer_from_authorization(&[b"Bearer \xff"]), Err(RsError::InvalidRequest(_))));
        assert!(matches!(parse(&["Bearer é"]), Err(RsError::InvalidRequest(_))));
    }

    #[test]
    fn query_tokens_are_detected() {
        assert!(query_has_access_token("access_token=abc"));
        assert!(query_has_access_token("x=1&access_token=abc"));
        assert!(query_has_access_token("access%5Ftoken=abc"));
        assert!(query_has_access_token("access_token"));
        assert!(!query_has_access_token(""));
        assert!(!query_has_access_token("x=access_token"));
        assert!(!query_has_access_token("my_access_token=1"));
        assert!(!query_has_access_token("access_token2=1"));
        assert!(!query_has_access_token("%zz=1"));
    }
}
