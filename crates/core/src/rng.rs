//! Randomness as an injected dependency. Every secret the server hands out (token ids, registration
//! access tokens, key ids) comes from here, with at least 128 bits of entropy (FAPI2 5.4.1-4).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RngError(String);

pub trait Rng: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError>;

    /// A base64url string of `bytes` random bytes (no padding).
    fn token(&self, bytes: usize) -> Result<String, RngError> {
        let mut buf = vec![0u8; bytes];
        self.fill(&mut buf)?;
        Ok(URL_SAFE_NO_PAD.encode(buf))
    }
}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
        getrandom::fill(buf).map_err(|e| RngError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_sized() {
        // FAPI2 A.6-46: 16 random bytes = 128 bits -> 22 base64url characters.
        let a = OsRng.token(16).unwrap();
        let b = OsRng.token(16).unwrap();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(!a.contains('='));
    }
}
