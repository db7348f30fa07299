//! Servers that do not play by the rules, scripted on a local socket: no STARTTLS on IMAP or
//! SMTP (the session stops before any credential is sent), a BYE greeting, silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mss_transport::TransportError;
use mss_transport::imap::{Credentials, Endpoint, ImapOptions, ImapSession, Security};
use mss_transport::smtp::{SmtpOptions, SmtpSession};
use mss_transport::trace::NoTrace;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Serves one connection: sends `greeting`, then answers each line with `answer(line)`;
/// returns every line the client sent.
async fn scripted(
    greeting: &'static str,
    answer: fn(&str) -> Option<String>,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = socket.into_split();
        let _ = write.write_all(greeting.as_bytes()).await;
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().expect("log").push(line.clone());
            match answer(&line) {
                Some(reply) => {
                    let _ = write.write_all(reply.as_bytes()).await;
                }
                None => break,
            }
        }
    });
    (port, seen)
}

fn tls() -> Arc<rustls::ClientConfig> {
    let policy = mss_transport::tls::TlsPolicy::new(
        vec![test_anchor()],
        None,
        mss_transport::tls::WithoutCrl::Warn,
        false,
    )
    .expect("policy");
    policy.client_config(None).expect("config")
}

fn test_anchor() -> rustls::pki_types::CertificateDer<'static> {
    let dir = tempfile::tempdir().expect("dir");
    let pki = mss_testkit::pki::TestPki::generate(dir.path()).expect("pki");
    rustls::pki_types::CertificateDer::from(pki.root_der())
}

#[tokio::test]
async fn imap_without_starttls_gets_no_credentials() {
    let (port, seen) = scripted("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n", |line| {
        let tag = line.split(' ').next().unwrap_or("*");
        Some(format!("{tag} BAD unknown command\r\n"))
    })
    .await;
    let token = SecretString::from("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl");
    let err = ImapSession::connect(
        &Endpoint::new("127.0.0.1", port, Security::StartTls),
        tls(),
        Credentials::Token {
            user: "a@test.local",
            token: &token,
        },
        Arc::new(NoTrace),
        ImapOptions::new("a@test.local"),
    )
    .await
    .expect_err("no STARTTLS");
    assert!(
        matches!(&err, TransportError::Protocol { detail, .. } if detail.contains("STARTTLS")),
        "{err}"
    );
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].ends_with("STARTTLS"));
}

#[tokio::test]
async fn smtp_without_starttls_gets_no_credentials() {
    let (port, seen) = scripted("220 hello\r\n", |line| {
        if line.starts_with("EHLO") {
            Some("250-hello\r\n250-AUTH XOAUTH2\r\n250 SIZE 1000\r\n".to_owned())
        } else {
            Some("502 no\r\n".to_owned())
        }
    })
    .await;
    let token = SecretString::from("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl");
    let err = SmtpSession::connect(
        &Endpoint::new("127.0.0.1", port, Security::StartTls),
        tls(),
        Credentials::Token {
            user: "a@test.local",
            token: &token,
        },
        Arc::new(NoTrace),
        SmtpOptions::new("a@test.local"),
    )
    .await
    .expect_err("no STARTTLS");
    assert!(
        matches!(&err, TransportError::Protocol { detail, .. } if detail.contains("STARTTLS")),
        "{err}"
    );
    let seen = seen.lock().expect("log").clone();
    assert!(seen.iter().all(|l| !l.starts_with("AUTH")), "{seen:?}");
}

#[tokio::test]
async fn a_bye_greeting_is_a_refusal_and_silence_a_timeout() {
    let (port, _) = scripted("* BYE too many connections\r\n", |_| None).await;
    let token = SecretString::from("abc");
    let auth = Credentials::Token {
        user: "a@test.local",
        token: &token,
    };
    let err = ImapSession::connect(
        &Endpoint::new("127.0.0.1", port, Security::StartTls),
        tls(),
        auth,
        Arc::new(NoTrace),
        ImapOptions::new("a@test.local"),
    )
    .await
    .expect_err("BYE");
    assert!(matches!(err, TransportError::Rejected { .. }), "{err}");

    // A server that accepts and never speaks: the wait is bounded by the timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _keep = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    });
    let mut options = ImapOptions::new("a@test.local");
    options.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = ImapSession::connect(
        &Endpoint::new("127.0.0.1", port, Security::StartTls),
        tls(),
        auth,
        Arc::new(NoTrace),
        options,
    )
    .await
    .expect_err("silence");
    assert!(matches!(err, TransportError::Network { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
