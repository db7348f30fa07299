//! The IMAP session against a real Dovecot 2.3: XOAUTH2 with a token from the stand-in
//! Pro Santé Connect, EXTERNAL with an IGC-Santé-shaped client certificate, refusals,
//! UID sync, CONDSTORE/QRESYNC, IDLE, APPEND.

mod imap_support;

use std::sync::Arc;
use std::time::Duration;

use imap_support::{ALICE, APP, BOB, Servers, message};
use mss_transport::TransportError;
use mss_transport::imap::{
    Credentials, Endpoint, FlagOp, IdleEvent, ImapOptions, ImapSession, Security, SyncState,
};
use mss_transport::trace::{Action, MemorySink, Outcome};
use secrecy::SecretString;

fn starttls(s: &Servers) -> Endpoint {
    Endpoint::new("127.0.0.1", s.dovecot.imap_port, Security::StartTls)
}

async fn login(s: &Servers, user: &str, trace: &MemorySink) -> ImapSession {
    let token = s.token(user);
    ImapSession::connect(
        &starttls(s),
        s.tls(),
        Credentials::Token {
            user,
            token: &token,
        },
        Arc::new(trace.clone()),
        ImapOptions::new(user),
    )
    .await
    .unwrap_or_else(|e| panic!("login failed: {e}\n{}", s.dovecot.logs()))
}

#[tokio::test]
async fn xoauth2_login_on_starttls_and_implicit_tls() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let token = s.token(ALICE);
    for endpoint in [
        starttls(&s),
        Endpoint::new("127.0.0.1", s.dovecot.imaps_port, Security::Tls),
    ] {
        let session = ImapSession::connect(
            &endpoint,
            s.tls(),
            Credentials::Token {
                user: ALICE,
                token: &token,
            },
            Arc::new(trace.clone()),
            ImapOptions::new(ALICE),
        )
        .await
        .unwrap_or_else(|e| panic!("{endpoint:?}: {e}\n{}", s.dovecot.logs()));
        // Capabilities were read again after login: these only appear once authenticated.
        assert!(
            session.has("CONDSTORE"),
            "{:?}",
            session.capabilities().collect::<Vec<_>>()
        );
        assert!(session.qresync());
        session.logout().await;
    }
    let events = trace.events();
    assert!(events.iter().any(|e| e.action == Action::StartTls
        && e.request == "STARTTLS"
        && e.outcome == Outcome::Success));
    let auths: Vec<_> = events
        .iter()
        .filter(|e| e.action == Action::Authenticate)
        .collect();
    assert_eq!(auths.len(), 2);
    assert!(
        auths
            .iter()
            .all(|e| e.request == "AUTHENTICATE XOAUTH2" && e.author == ALICE)
    );
    assert!(
        s.dovecot
            .logs()
            .contains("Login: user=<alice@test.local>, method=XOAUTH2")
    );
}

#[tokio::test]
async fn external_login_with_a_client_certificate() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let mut session = ImapSession::connect(
        &starttls(&s),
        s.tls_with_client_cert(APP),
        Credentials::Certificate { authzid: None },
        Arc::new(trace.clone()),
        ImapOptions::new(APP),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.dovecot.logs()));
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    session.logout().await;
    assert!(
        s.dovecot
            .logs()
            .contains("user=<robot.app@test.local>, method=EXTERNAL")
    );

    // Without a certificate the same login is refused, and classified as such.
    let err = ImapSession::connect(
        &starttls(&s),
        s.tls(),
        Credentials::Certificate { authzid: None },
        Arc::new(trace.clone()),
        ImapOptions::new(APP),
    )
    .await
    .expect_err("no certificate, no login");
    assert!(
        matches!(err, TransportError::CertificateRefused { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refused_tokens_are_token_refused_after_the_error_challenge() {
    let Some(s) = Servers::start_with(false, Duration::from_secs(1)) else {
        return;
    };
    let trace = MemorySink::default();
    let expired = s.token(ALICE);
    let forged = SecretString::from(format!("{}x", s.token(BOB).expose()));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for (what, token) in [("expired", &expired), ("forged", &forged)] {
        let started = std::time::Instant::now();
        let err = ImapSession::connect(
            &starttls(&s),
            s.tls(),
            Credentials::Token { user: ALICE, token },
            Arc::new(trace.clone()),
            ImapOptions::new(ALICE),
        )
        .await
        .expect_err(what);
        match &err {
            TransportError::TokenRefused { detail, .. } => {
                eprintln!("{what}: {err}");
                // Dovecot's error challenge was answered: its status is in the detail.
                assert!(detail.contains("(status "), "{what}: {detail}")
            }
            other => panic!("{what}: {other}"),
        }
        assert_eq!(err.recovery(), mss_transport::error::Recovery::RefreshToken);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: auth penalty?"
        );
    }
    let logs = s.dovecot.logs();
    assert!(
        logs.contains("Token has expired") || logs.contains("expired"),
        "{logs}"
    );
}

trait Expose {
    fn expose(&self) -> String;
}
impl Expose for SecretString {
    fn expose(&self) -> String {
        use secrecy::ExposeSecret;
        self.expose_secret().to_owned()
    }
}

#[tokio::test]
async fn uid_sync_fetches_each_message_once_with_exact_bytes() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let originals: Vec<Vec<u8>> = (0..25).map(|n| message(BOB, ALICE, "sync", n)).collect();
    s.dovecot
        .deliver_maildir(ALICE, originals.iter().map(Vec::as_slice))
        .expect("deliver");
    let mut session = login(&s, ALICE, &trace).await;
    let mut state = SyncState::default();
    let selected = session.select("INBOX", &mut state).await.expect("select");
    assert_eq!(selected.exists, 25);
    assert!(selected.highest_modseq.is_some());
    assert!(!selected.uidvalidity_changed);
    session.changes(&mut state).await.expect("changes");

    let mut fetched = Vec::new();
    for round in 0.. {
        assert!(round < 10, "fetch_new never ends");
        let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
        fetched.extend(batch.messages);
        if !batch.more {
            break;
        }
    }
    assert_eq!(fetched.len(), 25);
    let mut bodies: Vec<_> = fetched.iter().map(|m| m.raw.clone()).collect();
    bodies.sort();
    let mut expected = originals.clone();
    expected.sort();
    assert_eq!(bodies, expected, "bytes changed on the way");
    assert_eq!(state.last_uid, fetched.iter().map(|m| m.uid).max().unwrap());
    assert!(fetched.iter().all(|m| m.internal_date.is_some()));
    // BODY.PEEK: nothing was marked seen.
    assert!(
        fetched
            .iter()
            .all(|m| !m.flags.iter().any(|f| f == "\\Seen"))
    );

    // Nothing new: an empty batch, even though `N:*` makes Dovecot return the last message.
    let again = session
        .fetch_new(&mut state, 10)
        .await
        .expect("fetch again");
    assert!(again.messages.is_empty() && !again.more);
    session.logout().await;

    // A new session with the persisted state only sees what arrived since.
    s.dovecot
        .deliver_maildir(ALICE, [message(BOB, ALICE, "later", 99).as_slice()])
        .expect("deliver");
    let mut session = login(&s, ALICE, &trace).await;
    session.select("INBOX", &mut state).await.expect("select");
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].raw, message(BOB, ALICE, "later", 99));
    session.logout().await;
}

#[tokio::test]
async fn uidvalidity_change_resets_the_state() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    s.dovecot
        .deliver_maildir(ALICE, [message(BOB, ALICE, "v", 1).as_slice()])
        .expect("deliver");
    let mut session = login(&s, ALICE, &trace).await;
    let mut state = SyncState::default();
    let selected = session.select("INBOX", &mut state).await.expect("select");
    state.uidvalidity = selected.uidvalidity.wrapping_add(1);
    state.last_uid = 1000;
    let selected = session.select("INBOX", &mut state).await.expect("select");
    assert!(selected.uidvalidity_changed);
    assert_eq!(state.last_uid, 0);
    assert_eq!(state.uidvalidity, selected.uidvalidity);
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    session.logout().await;
}

#[tokio::test]
async fn oversized_messages_are_listed_not_downloaded() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let mut big = message(BOB, ALICE, "big", 1);
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\r\n");
    s.dovecot
        .deliver_maildir(
            ALICE,
            [message(BOB, ALICE, "small", 0).as_slice(), big.as_slice()],
        )
        .expect("deliver");
    let token = s.token(ALICE);
    let mut options = ImapOptions::new(ALICE);
    options.max_message_size = 2000;
    let mut session = ImapSession::connect(
        &starttls(&s),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &token,
        },
        Arc::new(trace.clone()),
        options,
    )
    .await
    .expect("login");
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.oversized.len(), 1);
    assert_eq!(batch.oversized[0].1 as usize, big.len());
    assert_eq!(
        state.last_uid,
        batch.oversized[0].0.max(batch.messages[0].uid)
    );
    session.logout().await;
}

#[tokio::test]
async fn qresync_reports_changed_flags_and_vanished_messages() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    s.dovecot
        .deliver_maildir(
            ALICE,
            (0..3)
                .map(|n| message(BOB, ALICE, "q", n))
                .collect::<Vec<_>>()
                .iter()
                .map(Vec::as_slice),
        )
        .expect("deliver");
    let mut reader = login(&s, ALICE, &trace).await;
    let mut state = SyncState::default();
    reader.select("INBOX", &mut state).await.expect("select");
    reader.changes(&mut state).await.expect("changes");
    let batch = reader.fetch_new(&mut state, 10).await.expect("fetch");
    let uids: Vec<u32> = batch.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), 3);
    let before = state.highest_modseq.expect("modseq");

    // Another client (another session) flags one message and expunges another.
    let mut other = login(&s, ALICE, &trace).await;
    let mut other_state = SyncState::default();
    other
        .select("INBOX", &mut other_state)
        .await
        .expect("select");
    other
        .store_flags(uids[0], FlagOp::Add, &["\\Flagged", "$MssIntegrated"])
        .await
        .expect("store");
    other.logout().await;
    // The session API never expunges (mss does not delete on the server): ask Dovecot.
    s.dovecot
        .doveadm(&[
            "expunge",
            "-u",
            ALICE,
            "mailbox",
            "INBOX",
            "uid",
            &uids[1].to_string(),
        ])
        .expect("doveadm expunge");

    reader.select("INBOX", &mut state).await.expect("select");
    let changes = reader.changes(&mut state).await.expect("changes");
    assert!(state.highest_modseq.unwrap() > before);
    let flagged = changes
        .flags
        .iter()
        .find(|c| c.uid == uids[0])
        .expect("flag change reported");
    assert!(flagged.flags.iter().any(|f| f == "\\Flagged"));
    assert!(flagged.flags.iter().any(|f| f == "$MssIntegrated"));
    assert_eq!(changes.vanished, vec![uids[1]]);
    reader.logout().await;
}

#[tokio::test]
async fn idle_wakes_up_on_a_new_delivery() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let mut session = login(&s, ALICE, &trace).await;
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    assert!(
        session
            .fetch_new(&mut state, 10)
            .await
            .expect("fetch")
            .messages
            .is_empty()
    );

    // Quiet mailbox: IDLE ends at its timeout, and the session is usable afterwards.
    let event = session
        .idle(Duration::from_millis(500))
        .await
        .expect("idle");
    assert_eq!(event, IdleEvent::Timeout);

    let deliver = {
        let m = message(BOB, ALICE, "idle", 7);
        let conf_user = ALICE.to_owned();
        let s_ref = &s;
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s_ref.dovecot.deliver(&conf_user, &m).expect("doveadm save");
        }
    };
    let (event, ()) = tokio::join!(session.idle(Duration::from_secs(20)), deliver);
    assert_eq!(event.expect("idle"), IdleEvent::Changed);
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].raw, message(BOB, ALICE, "idle", 7));
    session.logout().await;
    assert!(
        trace
            .events()
            .iter()
            .any(|e| e.action == Action::Idle && e.outcome == Outcome::Success)
    );
}

#[tokio::test]
async fn append_to_sent_with_flags() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let mut session = login(&s, ALICE, &trace).await;
    let sent = session
        .sent_folder()
        .await
        .expect("list")
        .expect("a \\Sent folder");
    let m = message(ALICE, BOB, "sent", 1);
    session
        .append(&sent, &["\\Seen"], &m)
        .await
        .expect("append");
    let mut state = SyncState::default();
    session.select(&sent, &mut state).await.expect("select");
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].raw, m);
    assert!(batch.messages[0].flags.iter().any(|f| f == "\\Seen"));
    session.logout().await;
    // The trace says what was appended, not what it contained.
    let append = trace
        .events()
        .into_iter()
        .find(|e| e.action == Action::Append)
        .expect("traced");
    assert!(
        append.request.starts_with("APPEND \"Sent\" (\\Seen) {"),
        "{}",
        append.request
    );
    assert!(!append.request.contains("Message 1"));
}

#[tokio::test]
async fn traces_never_contain_the_token() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let trace = MemorySink::default();
    let token = s.token(ALICE);
    let mut session = ImapSession::connect(
        &starttls(&s),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &token,
        },
        Arc::new(trace.clone()),
        ImapOptions::new(ALICE),
    )
    .await
    .expect("login");
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    session.logout().await;
    // And a refused one.
    let bad = SecretString::from(format!("{}x", token.expose()));
    let _ = ImapSession::connect(
        &starttls(&s),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &bad,
        },
        Arc::new(trace.clone()),
        ImapOptions::new(ALICE),
    )
    .await
    .expect_err("refused");
    let dump = serde_json_dump(&trace);
    assert!(dump.len() > 200, "traces were recorded");
    let secret = token.expose();
    // Any 16-character piece of the token (its signature part especially) is absent.
    let signature = secret.rsplit('.').next().unwrap();
    assert!(!dump.contains(&secret));
    assert!(!dump.contains(&signature[..16]));
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(format!("user={ALICE}\x01auth=Bearer {secret}\x01\x01"));
    assert!(!dump.contains(&b64[..40]));
}

fn serde_json_dump(trace: &MemorySink) -> String {
    trace
        .events()
        .iter()
        .map(|e| {
            format!(
                "{} {:?} {} => {}\n",
                e.author, e.action, e.request, e.response
            )
        })
        .collect()
}

#[tokio::test]
async fn a_server_outside_the_trust_space_never_sees_the_token() {
    use mss_testkit::dovecot::{Dovecot, DovecotConfig};
    use mss_transport::error::TlsFailure;
    let Some(s) = Servers::start(false) else {
        return;
    };
    let token = s.token(ALICE);
    let cases = [
        (&s.pki.untrusted_server, TlsFailure::Untrusted),
        (&s.pki.expired_server, TlsFailure::Expired),
        (&s.pki.wrong_host_server, TlsFailure::WrongHost),
    ];
    for (leaf, expected) in cases {
        let Some(impostor) = Dovecot::start_or_skip(DovecotConfig {
            server_cert: leaf.chain.clone(),
            server_key: leaf.key.clone(),
            client_ca: s.pki.ca_bundle.clone(),
            oauth2: None,
            mechanisms: None,
        }) else {
            return;
        };
        for endpoint in [
            Endpoint::new("127.0.0.1", impostor.imap_port, Security::StartTls),
            Endpoint::new("127.0.0.1", impostor.imaps_port, Security::Tls),
        ] {
            let trace = MemorySink::default();
            let err = ImapSession::connect(
                &endpoint,
                s.tls(),
                Credentials::Token {
                    user: ALICE,
                    token: &token,
                },
                Arc::new(trace.clone()),
                ImapOptions::new(ALICE),
            )
            .await
            .expect_err("an untrusted server");
            match &err {
                TransportError::Tls { failure, .. } => assert_eq!(failure, &expected, "{err}"),
                other => panic!("{expected:?}: {other}"),
            }
            assert!(
                !trace
                    .events()
                    .iter()
                    .any(|e| e.action == Action::Authenticate),
                "authentication attempted after a refused handshake"
            );
        }
        let logs = impostor.logs();
        assert!(
            !logs.contains("XOAUTH2")
                && !logs.contains("auth failed")
                && !logs.contains("method=")
                && logs.contains("TLS handshaking"),
            "the impostor saw an authentication:\n{logs}"
        );
    }
}

#[tokio::test]
async fn oauthbearer_when_the_server_offers_no_xoauth2() {
    let Some(s) = Servers::start_all(
        true,
        Duration::from_secs(300),
        10_000_000,
        Some("oauthbearer external"),
    ) else {
        return;
    };
    let trace = MemorySink::default();
    let session = login(&s, ALICE, &trace).await;
    session.logout().await;
    assert!(
        trace
            .events()
            .iter()
            .any(|e| e.request == "AUTHENTICATE OAUTHBEARER" && e.outcome == Outcome::Success)
    );
    assert!(s.dovecot.logs().contains("method=OAUTHBEARER"));

    // A refused token: Dovecot's error challenge gets the %x01 answer RFC 7628 asks for.
    let forged = SecretString::from(format!("{}x", s.token(ALICE).expose()));
    let err = ImapSession::connect(
        &starttls(&s),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &forged,
        },
        Arc::new(trace.clone()),
        ImapOptions::new(ALICE),
    )
    .await
    .expect_err("forged");
    assert!(
        matches!(&err, TransportError::TokenRefused { detail, .. } if detail.contains("(status invalid_token)")),
        "{err}"
    );

    // The same fallback on Dovecot's submission service.
    use mss_transport::smtp::{Envelope, SmtpOptions, SmtpSession};
    let token = s.token(ALICE);
    let mut smtp = SmtpSession::connect(
        &Endpoint::new("127.0.0.1", s.dovecot.submission_port, Security::StartTls),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &token,
        },
        Arc::new(trace.clone()),
        SmtpOptions::new(ALICE),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.dovecot.logs()));
    smtp.submit(
        &Envelope::new(ALICE, [BOB]),
        &message(ALICE, BOB, "bearer", 1),
    )
    .await
    .expect("submit");
    smtp.quit().await;
    assert!(
        trace
            .events()
            .iter()
            .any(|e| e.request == "AUTH OAUTHBEARER" && e.outcome == Outcome::Success)
    );
}
