//! The TLS handshake shared by the IMAP and SMTP sessions, with refusals classified for
//! people (untrusted, expired, revoked, wrong host, version).

use std::sync::Arc;
use std::time::Duration;

use rustls::{CertificateError, Error as RustlsError};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{TlsFailure, TransportError};

/// Runs the client handshake for `server_name` over `tcp`; `label` names the server in errors.
pub(crate) async fn handshake(
    server_name: &str,
    label: &str,
    tls: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, TransportError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
        TransportError::Config(format!(
            "{server_name:?} is not a valid server name for TLS"
        ))
    })?;
    match tokio::time::timeout(timeout, TlsConnector::from(tls).connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(tls_error(label, e)),
        Err(_) => Err(TransportError::Network {
            host: label.to_owned(),
            detail: format!("TLS handshake not finished within {timeout:?}"),
        }),
    }
}

/// An I/O error out of tokio-rustls: a rustls refusal becomes [`TransportError::Tls`], the
/// rest is a network error.
pub(crate) fn tls_error(label: &str, e: std::io::Error) -> TransportError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<RustlsError>())
    {
        Some(error) => TransportError::Tls {
            host: label.to_owned(),
            failure: classify(error),
        },
        None => TransportError::Network {
            host: label.to_owned(),
            detail: format!("TLS handshake: {e}"),
        },
    }
}

fn classify(error: &RustlsError) -> TlsFailure {
    match error {
        RustlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsFailure::Untrusted
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            CertificateError::Revoked => TlsFailure::Revoked,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongHost
            }
            other => TlsFailure::Other(format!("invalid certificate: {other:?}")),
        },
        RustlsError::PeerIncompatible(_) => TlsFailure::Version,
        RustlsError::AlertReceived(
            rustls::AlertDescription::ProtocolVersion
            | rustls::AlertDescription::HandshakeFailure
            | rustls::AlertDescription::InsufficientSecurity,
        ) => TlsFailure::Version,
        other => TlsFailure::Other(other.to_string()),
    }
}
