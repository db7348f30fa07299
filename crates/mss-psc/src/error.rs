//! One error type for the crate; every message is one line saying what to do.

use std::fmt;

/// Why a PSC session ended. Every IMAP/SMTP session of the user closes on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// PSC refused the refresh token (`invalid_grant`, …): the PSC session is over there
    /// (SC.MSS/CONF.10).
    RefreshRefused { code: String },
    /// The user logged out.
    LoggedOut,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::RefreshRefused { code } => {
                write!(f, "Pro Santé Connect refused to renew the session ({code})")
            }
            SessionEnd::LoggedOut => f.write_str("logged out"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PscError {
    #[error("Pro Santé Connect configuration: {0}")]
    Config(String),
    #[error("cannot reach Pro Santé Connect at {url}: {detail} (check the network and retry)")]
    Network { url: String, detail: String },
    #[error("Pro Santé Connect refused: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
    },
    #[error("Pro Santé Connect answered something unexpected: {0}")]
    Protocol(String),
    #[error("the ID token from Pro Santé Connect is not valid: {0}")]
    IdToken(String),
    #[error("the login was not completed within {0} s: start it again")]
    Timeout(u64),
    #[error("cannot open the browser for the login: {0}")]
    Browser(String),
    #[error("the Pro Santé Connect session is over ({0}): log in again")]
    SessionOver(SessionEnd),
}

impl PscError {
    pub(crate) fn network(url: &str, err: impl fmt::Display) -> Self {
        PscError::Network {
            url: url.to_string(),
            detail: err.to_string(),
        }
    }

    /// The OAuth error code when the provider refused (`access_denied`, `invalid_grant`, …).
    pub fn refusal_code(&self) -> Option<&str> {
        match self {
            PscError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}
