/// What can go wrong in any store. Implementations keep driver detail in the message, which is
/// logged; callers map the variant (never the message) to the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached now (connection refused, pool exhausted, timeout). Callers
    /// answer `temporarily_unavailable` / 503 and may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (the row already exists).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The record to change does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data could not be decoded: a bug or tampering, never a client's fault.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("storage failure: {0}")]
    Internal(String),
}
