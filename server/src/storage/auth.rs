//! Devices and dispatchers, the part both backends share: a bearer token is 32 random bytes,
//! base64url without padding; only its SHA-256 is stored, so a copy of the database does not
//! let anyone upload or dispatch. Re-enrolling replaces the previous token; revoking deletes
//! the enrollment, so the token is refused at once (the records stay).

use base64::Engine as _;

use crate::error::{Result, ServerError};

/// An enrolled device or dispatcher (never its token), as `crewsafe-server list-tokens` shows
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The device id or dispatcher name.
    pub name: String,
    /// When its current token was issued.
    pub enrolled_at: chrono::DateTime<chrono::Utc>,
}

/// A fresh bearer token.
pub(crate) fn new_token() -> Result<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServerError::Config("system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks a device id or dispatcher name (`what`) before it is enrolled.
pub(crate) fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > 200
        || value.trim() != value
        || value.chars().any(char::is_control)
    {
        return Err(ServerError::InvalidInput(format!(
            "{what} must be 1 to 200 characters, without control characters or surrounding spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_base64url() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(bytes.len(), 32);
    }
}
