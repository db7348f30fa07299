//! The operator's IMAP server (being written: see docs/sandbox.md).

use std::sync::Arc;

use tokio::net::TcpListener;

use super::OperatorContext;

/// Serves IMAP on `listener`: STARTTLS first, or TLS from the first byte (`implicit_tls`).
pub async fn serve(listener: TcpListener, ctx: Arc<OperatorContext>, implicit_tls: bool) {
    let _ = (ctx, implicit_tls);
    // Until the server is written, connections are accepted and closed.
    while listener.accept().await.is_ok() {}
}
