#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("the key-encryption key is invalid: {0}")]
    InvalidKek(String),
    #[error("a stored private key could not be decrypted (wrong key-encryption key, or the data was altered): {0}")]
    Decrypt(String),
    #[error("signing failed: {0}")]
    Sign(String),
}
