//! Shared by the IMAP and SMTP interop tests: a test PKI, the stand-in Pro Santé Connect,
//! a private Dovecot and (on request) a Postfix, all on 127.0.0.1 and gone on drop.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use mss_testkit::dovecot::Dovecot;
use mss_testkit::oidc::{OidcOptions, OidcProvider};
use mss_testkit::pki::{Leaf, TestPki};
use mss_testkit::postfix::{Postfix, PostfixConfig};
use mss_transport::tls::{ClientIdentity, TlsPolicy, TlsSettings};
use secrecy::SecretString;

pub const ALICE: &str = "alice@test.local";
pub const BOB: &str = "bob@test.local";
pub const APP: &str = "robot.app@test.local";

pub struct Servers {
    pub pki: TestPki,
    pub idp: OidcProvider,
    pub dovecot: Dovecot,
    pub postfix: Option<Postfix>,
    _dir: tempfile::TempDir,
}

impl Servers {
    /// PKI + IdP + Dovecot (+ Postfix when `with_postfix`); `None` when a server is missing
    /// locally (a failure under scripts/test).
    pub fn start(with_postfix: bool) -> Option<Servers> {
        Self::start_with(with_postfix, Duration::from_secs(300))
    }

    pub fn start_with(with_postfix: bool, token_ttl: Duration) -> Option<Servers> {
        Self::start_full(with_postfix, token_ttl, 10 * 1024 * 1024)
    }

    pub fn start_full(
        with_postfix: bool,
        token_ttl: Duration,
        message_size_limit: u64,
    ) -> Option<Servers> {
        Self::start_all(with_postfix, token_ttl, message_size_limit, None)
    }

    /// Everything configurable; `mechanisms` is Dovecot's `auth_mechanisms`.
    pub fn start_all(
        with_postfix: bool,
        token_ttl: Duration,
        message_size_limit: u64,
        mechanisms: Option<&str>,
    ) -> Option<Servers> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pki = TestPki::generate(dir.path()).expect("test PKI");
        let idp = OidcProvider::start(
            OidcOptions::default()
                .account("899700000001", ALICE)
                .account("899700000002", BOB)
                .access_token_ttl(token_ttl),
        )?;
        let mut config = mss_testkit::world::dovecot_config(&pki, &idp);
        config.mechanisms = mechanisms.map(str::to_owned);
        let dovecot = Dovecot::start_or_skip(config)?;
        let postfix = if with_postfix {
            let mut config = PostfixConfig::new(&pki.server.chain, &pki.server.key, "test.local");
            config.message_size_limit = message_size_limit;
            Some(Postfix::start_or_skip(&dovecot, config)?)
        } else {
            None
        };
        Some(Servers {
            pki,
            idp,
            dovecot,
            postfix,
            _dir: dir,
        })
    }

    pub fn token(&self, user: &str) -> SecretString {
        SecretString::from(self.idp.token(user).access_token)
    }

    /// TLS trusting only the test root, without a client certificate.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        client_config(&self.pki, None)
    }

    /// TLS with an AUTH_CLI client certificate for `mailbox` (BAL APP).
    pub fn tls_with_client_cert(&self, mailbox: &str) -> Arc<rustls::ClientConfig> {
        let leaf = self.pki.issue_client(mailbox).expect("client certificate");
        client_config(&self.pki, Some(&leaf))
    }

    pub fn postfix(&self) -> &Postfix {
        self.postfix.as_ref().expect("started with Postfix")
    }
}

/// The session's TLS exactly as mss builds it: the TLS policy with the test root as the
/// only anchor (no CRL directory), and the AUTH_CLI identity for BAL APP.
fn client_config(pki: &TestPki, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let policy = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        ..TlsSettings::default()
    })
    .expect("TLS policy");
    let identity = client.map(|leaf| {
        ClientIdentity::from_pem_files(&leaf.chain, &leaf.key).expect("client identity")
    });
    policy
        .client_config(identity.as_ref())
        .expect("client config")
}

/// A small RFC 5322 message with CRLF line ends.
pub fn message(from: &str, to: &str, subject: &str, n: usize) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <m{n}.{subject}@test.local>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-MSS-NIL: TEST-NIL\r\n\r\nMessage {n}.\r\n.starts with a dot\r\n"
    )
    .into_bytes()
}

/// Polls `user`'s INBOX over IMAP until `count` messages arrived (or 20 s passed).
pub async fn wait_for_messages(
    s: &Servers,
    user: &str,
    count: usize,
) -> Vec<mss_transport::imap::FetchedMessage> {
    use mss_transport::imap::{
        Credentials, Endpoint, ImapOptions, ImapSession, Security, SyncState,
    };
    let token = s.token(user);
    let mut session = ImapSession::connect(
        &Endpoint::new("127.0.0.1", s.dovecot.imap_port, Security::StartTls),
        s.tls(),
        Credentials::Token {
            user,
            token: &token,
        },
        Arc::new(mss_transport::trace::NoTrace),
        ImapOptions::new(user),
    )
    .await
    .expect("IMAP login to read back");
    let mut state = SyncState::default();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} messages arrived for {user}\n{}\n{}",
            got.len(),
            s.postfix.as_ref().map(|p| p.logs()).unwrap_or_default(),
            s.dovecot.logs()
        );
        session.select("INBOX", &mut state).await.expect("select");
        loop {
            let batch = session.fetch_new(&mut state, 500).await.expect("fetch");
            got.extend(batch.messages);
            if !batch.more {
                break;
            }
        }
        if got.len() < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    session.logout().await;
    got
}
