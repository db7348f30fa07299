//! Transport errors, classified for the people who read them and for the supervisor that
//! decides what to do next (retry, refresh the token, stop and ask for a new login).

use std::fmt;

/// Why a TLS handshake was refused. Each variant is a separate check of SC.MSS/CONF.22.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate does not chain to a configured trust anchor (not IGC Santé).
    Untrusted,
    /// The certificate (or one in its chain) has expired or is not valid yet.
    Expired,
    /// The certificate is on a CRL of its issuer.
    Revoked,
    /// The certificate does not name the host we connected to.
    WrongHost,
    /// The server offers no protocol version or cipher suite we accept (TLS 1.2 minimum).
    Version,
    /// Anything else the TLS layer reported.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Untrusted => {
                f.write_str("its certificate is not issued by a trusted IGC Santé authority")
            }
            TlsFailure::Expired => f.write_str("its certificate has expired or is not valid yet"),
            TlsFailure::Revoked => f.write_str("its certificate has been revoked"),
            TlsFailure::WrongHost => f.write_str("its certificate is for another host name"),
            TlsFailure::Version => {
                f.write_str("it offers no TLS version or cipher suite allowed (TLS 1.2 minimum)")
            }
            TlsFailure::Other(detail) => write!(f, "{detail}"),
        }
    }
}

/// What the supervisor should do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Reconnect after a back-off (network drops, server hiccups).
    Reconnect,
    /// Get a fresh access token, then reconnect; the refused token is never presented again.
    RefreshToken,
    /// Nothing will get better by retrying: tell the user and stop this mailbox.
    GiveUp,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {host}: {detail} (check the network and the server address)")]
    Network { host: String, detail: String },
    #[error("refused the TLS connection to {host}: {failure}")]
    Tls { host: String, failure: TlsFailure },
    #[error("{host} refused the access token: {detail}")]
    TokenRefused { host: String, detail: String },
    #[error(
        "{host} refused the client certificate: {detail} (check the certificate of the application mailbox)"
    )]
    CertificateRefused { host: String, detail: String },
    #[error("the Pro Santé Connect session is over: log in again")]
    PscSessionOver,
    #[error("{host} broke the protocol: {detail}")]
    Protocol { host: String, detail: String },
    #[error("{host} refused: {detail}")]
    Rejected { host: String, detail: String },
    #[error("configuration: {0}")]
    Config(String),
}

impl TransportError {
    pub fn recovery(&self) -> Recovery {
        match self {
            TransportError::Network { .. } | TransportError::Protocol { .. } => Recovery::Reconnect,
            TransportError::TokenRefused { .. } => Recovery::RefreshToken,
            TransportError::Tls { .. }
            | TransportError::CertificateRefused { .. }
            | TransportError::PscSessionOver
            | TransportError::Rejected { .. }
            | TransportError::Config(_) => Recovery::GiveUp,
        }
    }
}
