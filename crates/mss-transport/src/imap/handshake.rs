//! The TLS handshake shared by the IMAP and SMTP sessions; refusals are classified by
//! [`crate::tls::classify`] (untrusted, expired, revoked, wrong host, version).

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::TransportError;

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

/// An I/O error out of tokio-rustls, classified by the TLS policy's rules.
pub(crate) fn tls_error(label: &str, e: std::io::Error) -> TransportError {
    crate::tls::classify(label, &e)
}
