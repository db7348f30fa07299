//! Broken networks between our sessions and real servers (the in-repo fault proxy in front
//! of Dovecot and Postfix): every failure is a prompt network error the supervisor retries,
//! the sync state only moves past what was really received, and a message cut during DATA
//! is not delivered (so sending it again does not deliver it twice).

mod imap_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imap_support::{ALICE, BOB, Servers, message, wait_for_messages};
use mss_testkit::faultproxy::{Action as Fault, Direction, FaultProxy, Mode, Trigger};
use mss_transport::TransportError;
use mss_transport::error::Recovery;
use mss_transport::imap::{Credentials, Endpoint, ImapOptions, ImapSession, Security, SyncState};
use mss_transport::smtp::{Envelope, SmtpOptions, SmtpSession};
use mss_transport::trace::NoTrace;

async fn proxy_to(port: u16) -> FaultProxy {
    FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("fault proxy")
}

async fn imap_via(s: &Servers, proxy: &FaultProxy, timeout: Duration) -> ImapSession {
    let token = s.token(ALICE);
    let mut options = ImapOptions::new(ALICE);
    options.timeout = timeout;
    ImapSession::connect(
        &Endpoint::new("127.0.0.1", proxy.addr().port(), Security::StartTls),
        s.tls(),
        Credentials::Token {
            user: ALICE,
            token: &token,
        },
        Arc::new(NoTrace),
        options,
    )
    .await
    .expect("login through the proxy")
}

fn assert_reconnect(err: &TransportError) {
    assert!(matches!(err, TransportError::Network { .. }), "{err}");
    assert_eq!(err.recovery(), Recovery::Reconnect, "{err}");
}

#[tokio::test]
async fn cut_mid_fetch_loses_nothing() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let originals: Vec<Vec<u8>> = (0..200).map(|n| message(BOB, ALICE, "cut", n)).collect();
    s.dovecot
        .deliver_maildir(ALICE, originals.iter().map(Vec::as_slice))
        .expect("deliver");
    let proxy = proxy_to(s.dovecot.imap_port).await;
    let mut session = imap_via(&s, &proxy, Duration::from_secs(5)).await;
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    // The answer to the body FETCH is cut after 20 kB (of about 60).
    proxy.arm(Direction::ToClient, Trigger::AfterBytes(20_000), Fault::Cut);
    let started = Instant::now();
    let err = session
        .fetch_new(&mut state, 200)
        .await
        .expect_err("cut mid-FETCH");
    assert_reconnect(&err);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        state.last_uid, 0,
        "the state moved past messages never received"
    );
    assert!(
        session.select("INBOX", &mut state).await.is_err(),
        "a broken session is not reused"
    );

    // The supervisor reconnects with the same state: everything arrives, once.
    let mut session = imap_via(&s, &proxy, Duration::from_secs(5)).await;
    session.select("INBOX", &mut state).await.expect("select");
    let batch = session.fetch_new(&mut state, 500).await.expect("fetch");
    assert_eq!(batch.messages.len(), 200);
    let mut got: Vec<_> = batch.messages.into_iter().map(|m| m.raw).collect();
    got.sort();
    let mut expected = originals;
    expected.sort();
    assert_eq!(got, expected);
    session.logout().await;
}

#[tokio::test]
async fn a_stalled_server_is_a_timeout_not_a_hang() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    s.dovecot
        .deliver_maildir(ALICE, [message(BOB, ALICE, "stall", 1).as_slice()])
        .expect("deliver");
    let proxy = proxy_to(s.dovecot.imap_port).await;
    let mut session = imap_via(&s, &proxy, Duration::from_secs(2)).await;
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    proxy.set_mode(Direction::ToClient, Mode::Stall);
    let started = Instant::now();
    let err = session
        .fetch_new(&mut state, 10)
        .await
        .expect_err("stalled");
    assert_reconnect(&err);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(state.last_uid, 0);
}

#[tokio::test]
async fn cut_mid_idle_ends_idle_with_a_network_error() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let proxy = proxy_to(s.dovecot.imap_port).await;
    let mut session = imap_via(&s, &proxy, Duration::from_secs(5)).await;
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    let cut = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.end_all(Fault::Reset);
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(session.idle(Duration::from_secs(60)), cut);
    let err = result.expect_err("cut mid-IDLE");
    assert_reconnect(&err);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn one_byte_writes_change_nothing() {
    let Some(s) = Servers::start(false) else {
        return;
    };
    let originals: Vec<Vec<u8>> = (0..5).map(|n| message(BOB, ALICE, "slow", n)).collect();
    s.dovecot
        .deliver_maildir(ALICE, originals.iter().map(Vec::as_slice))
        .expect("deliver");
    let proxy = proxy_to(s.dovecot.imap_port).await;
    proxy.set_mode(Direction::ToClient, Mode::OneByte);
    proxy.set_mode(Direction::ToServer, Mode::OneByte);
    let mut session = imap_via(&s, &proxy, Duration::from_secs(10)).await;
    let mut state = SyncState::default();
    session.select("INBOX", &mut state).await.expect("select");
    let batch = session.fetch_new(&mut state, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 5);
    assert!(proxy.writes(Direction::ToClient) > 1000);
    session.logout().await;
}

#[tokio::test]
async fn cut_mid_data_delivers_nothing_and_a_resend_delivers_once() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let proxy = proxy_to(s.postfix().submission_port).await;
    let endpoint = Endpoint::new("127.0.0.1", proxy.addr().port(), Security::StartTls);
    let token = s.token(ALICE);
    let connect = || {
        let mut options = SmtpOptions::new(ALICE);
        options.timeout = Duration::from_secs(5);
        SmtpSession::connect(
            &endpoint,
            s.tls(),
            Credentials::Token {
                user: ALICE,
                token: &token,
            },
            Arc::new(NoTrace),
            options,
        )
    };
    let mut m = message(ALICE, BOB, "data", 1);
    for line in 0..400 {
        m.extend_from_slice(format!("line {line} of a long report\r\n").as_bytes());
    }
    let mut smtp = connect().await.expect("login");
    // Encrypted traffic: cut after 4 kB more towards the server, in the middle of DATA.
    proxy.arm(Direction::ToServer, Trigger::AfterBytes(4_000), Fault::Cut);
    let err = smtp
        .submit(&Envelope::new(ALICE, [BOB]), &m)
        .await
        .expect_err("cut mid-DATA");
    assert_reconnect(&err);

    let mut smtp = connect().await.expect("login again");
    smtp.submit(&Envelope::new(ALICE, [BOB]), &m)
        .await
        .expect("resend");
    smtp.quit().await;
    let got = wait_for_messages(&s, BOB, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = wait_for_messages(&s, BOB, 1).await;
    assert_eq!((got.len(), again.len()), (1, 1), "delivered twice");
    assert!(got[0].raw.ends_with(&m));
}
