//! The operator's SMTP submission server (being written: see docs/sandbox.md).

use std::sync::Arc;

use tokio::net::TcpListener;

use super::OperatorContext;

/// Serves SMTP submission (STARTTLS) on `listener`.
pub async fn serve(listener: TcpListener, ctx: Arc<OperatorContext>) {
    let _ = ctx;
    // Until the server is written, connections are accepted and closed.
    while listener.accept().await.is_ok() {}
}
