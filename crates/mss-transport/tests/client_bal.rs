//! `BalClient` against a real Dovecot: an application mailbox whose server certificate
//! points to a CRL that mss has never seen. The first handshake is refused for want of a
//! valid CRL; the client fetches it from the distribution point, keeps it on disk, and the
//! same call succeeds (SC.MSS/CONF.22).

use mss_testkit::dovecot::Dovecot;
use mss_testkit::oidc::{OidcOptions, OidcProvider};
use mss_testkit::pki::{SERVER_NAMES, TestPki};
use mss_transport::bal::{BalConfig, BalKind, Security};
use mss_transport::client::{BalClient, BalServers};
use mss_transport::imap::SyncState;
use mss_transport::supervisor::{NoTokens, RetryPolicy};
use mss_transport::tls::{TlsPolicy, TlsSettings};
use mss_transport::trace::MemorySink;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROBOT: &str = "dpi.robot@test.local";

/// Answers every request with `body` (the CRL), like the authority's distribution point.
async fn serve(body: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crl_is_fetched_from_the_distribution_point_then_the_session_opens() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = pki
        .crl_der(&[], now, now + time::Duration::days(7))
        .unwrap();
    let port = serve(crl).await;
    let url = format!("http://127.0.0.1:{port}/elementaire.crl");
    let server = pki
        .issue_server("dovecot-dp", &SERVER_NAMES, Some(&url))
        .unwrap();
    let Some(idp) = OidcProvider::start(OidcOptions::default()) else {
        return;
    };
    let mut config = mss_testkit::world::dovecot_config(&pki, &idp);
    config.server_cert = server.chain.clone();
    config.server_key = server.key.clone();
    let Some(dovecot) = Dovecot::start_or_skip(config) else {
        return;
    };
    dovecot
        .deliver(
            ROBOT,
            b"Subject: bonjour\r\nMessage-ID: <crl@test.local>\r\n\r\nx\r\n",
        )
        .unwrap();

    let crl_dir = dir.path().join("crl");
    let policy = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        crl_dir: Some(crl_dir.clone()),
        ..TlsSettings::default()
    })
    .unwrap();
    let leaf = pki.issue_client(ROBOT).unwrap();
    let bal = BalConfig {
        login_hint: None,
        address: ROBOT.into(),
        kind: BalKind::App,
        auth: None,
        imap: Some(format!("127.0.0.1:{}", dovecot.imap_port).parse().unwrap()),
        smtp: Some(
            format!("127.0.0.1:{}", dovecot.submission_port)
                .parse()
                .unwrap(),
        ),
        security: Security::StartTls,
        client_cert: Some(leaf.chain.clone()),
        client_key: Some(leaf.key.clone()),
    };
    let servers = BalServers::explicit(&bal).unwrap();
    let trace = Arc::new(MemorySink::default());
    let client = BalClient::<NoTokens>::new(bal, servers, Arc::new(policy), None, trace.clone())
        .unwrap()
        .with_policy(RetryPolicy::once())
        .with_timeout(Duration::from_secs(20));
    let mut state = SyncState::default();
    let fetched = client.fetch_new("INBOX", &mut state, 10).await.unwrap();
    assert_eq!(fetched.messages.len(), 1);
    let stored = std::fs::read_dir(&crl_dir).unwrap().count();
    assert_eq!(stored, 1, "the fetched CRL is kept on disk");
}
