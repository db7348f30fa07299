//! Randomness from the operating system (ring's `SystemRandom`), for secrets and ids.

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::SandboxError;

pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], SandboxError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SandboxError::Key("the system's random source failed".into()))?;
    Ok(out)
}

/// 256 random bits, base64url without padding: tokens, codes, secrets.
pub(crate) fn token() -> Result<String, SandboxError> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes::<32>()?))
}
