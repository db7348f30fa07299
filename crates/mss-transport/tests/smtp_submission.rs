//! SMTP submission against real servers: Postfix (Dovecot SASL) and Dovecot's own
//! submission service, each message read back over IMAP from Dovecot.

mod imap_support;

use std::sync::Arc;
use std::time::Duration;

use imap_support::{ALICE, APP, BOB, Servers, message, wait_for_messages};
use mss_transport::TransportError;
use mss_transport::imap::{Endpoint, Security};
use mss_transport::smtp::{
    Credentials, Dsn, Envelope, MAX_INLINE_AUTH_LINE, SmtpOptions, SmtpSession,
};
use mss_transport::trace::{Action, MemorySink, Outcome};
use secrecy::{ExposeSecret, SecretString};

fn postfix_submission(s: &Servers) -> Endpoint {
    Endpoint::new("127.0.0.1", s.postfix().submission_port, Security::StartTls)
}

fn dovecot_submission(s: &Servers) -> Endpoint {
    Endpoint::new("127.0.0.1", s.dovecot.submission_port, Security::StartTls)
}

async fn smtp_login(
    s: &Servers,
    endpoint: &Endpoint,
    user: &str,
    trace: &MemorySink,
) -> SmtpSession {
    let token = s.token(user);
    SmtpSession::connect(
        endpoint,
        s.tls(),
        Credentials::Token {
            user,
            token: &token,
        },
        Arc::new(trace.clone()),
        SmtpOptions::new(user),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "SMTP login failed: {e}\n{}\n{}",
            s.postfix.as_ref().map(|p| p.logs()).unwrap_or_default(),
            s.dovecot.logs()
        )
    })
}

/// What arrived is what was sent, after the trace headers the servers prepend
/// (Return-Path, Delivered-To, Received).
fn assert_arrived_intact(delivered: &[u8], sent: &[u8]) {
    assert!(
        delivered.ends_with(sent),
        "the message changed on the way:\n--- sent\n{}\n--- delivered\n{}",
        String::from_utf8_lossy(sent),
        String::from_utf8_lossy(delivered)
    );
    let prefix = String::from_utf8_lossy(&delivered[..delivered.len() - sent.len()]);
    for line in prefix.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with(' ')
                || line.starts_with('\t')
                || ["Return-Path:", "Delivered-To:", "Received:"]
                    .iter()
                    .any(|h| line.starts_with(h)),
            "unexpected header added: {line}"
        );
    }
}

#[tokio::test]
async fn xoauth2_through_postfix_arrives_byte_identical() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let trace = MemorySink::default();
    let mut smtp = smtp_login(&s, &postfix_submission(&s), ALICE, &trace).await;
    assert!(smtp.max_size().is_some());
    let sent: Vec<Vec<u8>> = (0..2).map(|n| message(ALICE, BOB, "postfix", n)).collect();
    for m in &sent {
        // Two messages on one session: the session is reusable after a submission.
        let receipt = smtp
            .submit(&Envelope::new(ALICE, [BOB]), m)
            .await
            .expect("submit");
        assert!(receipt.reply.starts_with("250"), "{}", receipt.reply);
    }
    smtp.quit().await;
    let got = wait_for_messages(&s, BOB, 2).await;
    // Postfix may deliver the two in either order: each is found by its Message-ID.
    for (n, original) in sent.iter().enumerate() {
        let id = format!("<m{n}.postfix@test.local>");
        let delivered = got
            .iter()
            .find(|m| String::from_utf8_lossy(&m.raw).contains(&id))
            .unwrap_or_else(|| panic!("{id} was not delivered"));
        assert_arrived_intact(&delivered.raw, original);
    }
    let events = trace.events();
    assert!(events.iter().any(|e| e.action == Action::Authenticate
        && e.request == "AUTH XOAUTH2"
        && e.outcome == Outcome::Success));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.request.starts_with("DATA (") && e.outcome == Outcome::Success)
            .count(),
        2
    );
}

#[tokio::test]
async fn long_token_goes_after_the_continuation_on_dovecot_submission() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let trace = MemorySink::default();
    let token = s.token(ALICE);
    let payload = format!(
        "user={ALICE}\x01auth=Bearer {}\x01\x01",
        token.expose_secret()
    );
    let inline_len = "AUTH XOAUTH2 ".len() + payload.len().div_ceil(3) * 4;
    eprintln!("inline AUTH line would be {inline_len} characters");
    assert!(
        inline_len > MAX_INLINE_AUTH_LINE,
        "the stand-in token is too short to exercise the continuation form"
    );
    let mut smtp = SmtpSession::connect(
        &dovecot_submission(&s),
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
    let m = message(ALICE, BOB, "dovecot-submission", 1);
    smtp.submit(&Envelope::new(ALICE, [BOB]), &m)
        .await
        .expect("submit via relay");
    smtp.quit().await;
    let got = wait_for_messages(&s, BOB, 1).await;
    assert_arrived_intact(&got[0].raw, &m);
}

#[tokio::test]
async fn external_with_a_client_certificate_on_dovecot_submission() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let trace = MemorySink::default();
    let mut smtp = SmtpSession::connect(
        &dovecot_submission(&s),
        s.tls_with_client_cert(APP),
        Credentials::Certificate { authzid: None },
        Arc::new(trace.clone()),
        SmtpOptions::new(APP),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.dovecot.logs()));
    let m = message(APP, BOB, "external", 1);
    smtp.submit(&Envelope::new(APP, [BOB]), &m)
        .await
        .expect("submit");
    smtp.quit().await;
    let got = wait_for_messages(&s, BOB, 1).await;
    assert_arrived_intact(&got[0].raw, &m);
    assert!(s.dovecot.logs().contains("method=EXTERNAL"));

    // Postfix with Dovecot SASL does not do EXTERNAL: said clearly, before any attempt.
    let err = SmtpSession::connect(
        &postfix_submission(&s),
        s.tls_with_client_cert(APP),
        Credentials::Certificate { authzid: None },
        Arc::new(trace.clone()),
        SmtpOptions::new(APP),
    )
    .await
    .expect_err("no EXTERNAL on Postfix");
    assert!(
        matches!(err, TransportError::CertificateRefused { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refused_tokens_are_token_refused_on_both_servers() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let trace = MemorySink::default();
    let good = s.token(ALICE);
    let forged = SecretString::from(format!("{}x", good.expose_secret()));
    for endpoint in [postfix_submission(&s), dovecot_submission(&s)] {
        let started = std::time::Instant::now();
        let err = SmtpSession::connect(
            &endpoint,
            s.tls(),
            Credentials::Token {
                user: ALICE,
                token: &forged,
            },
            Arc::new(trace.clone()),
            SmtpOptions::new(ALICE),
        )
        .await
        .expect_err("forged token");
        eprintln!("{err}");
        assert!(matches!(err, TransportError::TokenRefused { .. }), "{err}");
        assert!(err.to_string().contains("535"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let dump: String = trace
        .events()
        .iter()
        .map(|e| format!("{} {} {}\n", e.request, e.response, e.author))
        .collect();
    let secret = good.expose_secret();
    assert!(
        !dump.contains(&secret[secret.len() - 20..]),
        "token in traces:\n{dump}"
    );
}

#[tokio::test]
async fn size_recipient_and_content_refusals_are_classified() {
    let Some(s) = Servers::start_full(true, Duration::from_secs(300), 4000) else {
        return;
    };
    let trace = MemorySink::default();
    let mut smtp = smtp_login(&s, &postfix_submission(&s), ALICE, &trace).await;
    assert_eq!(smtp.max_size(), Some(4000));

    let mut big = message(ALICE, BOB, "big", 1);
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\r\n");
    let err = smtp
        .submit(&Envelope::new(ALICE, [BOB]), &big)
        .await
        .expect_err("too big");
    assert!(
        matches!(&err, TransportError::Rejected { detail, .. } if detail.contains("SIZE")),
        "{err}"
    );

    let err = smtp
        .submit(
            &Envelope::new(ALICE, [BOB, "nobody@test.local"]),
            &message(ALICE, BOB, "r", 2),
        )
        .await
        .expect_err("unknown recipient");
    assert!(
        matches!(&err, TransportError::Rejected { detail, .. } if detail.contains("nobody@test.local") && detail.contains("550 5.1.1")),
        "{err}"
    );

    let mut refused = b"X-Test-Reject: yes\r\n".to_vec();
    refused.extend(message(ALICE, BOB, "content", 3));
    let err = smtp
        .submit(&Envelope::new(ALICE, [BOB]), &refused)
        .await
        .expect_err("header check");
    assert!(
        matches!(&err, TransportError::Rejected { detail, .. } if detail.contains("550")),
        "{err}"
    );

    // After three refusals the session still delivers, and only that one message arrived.
    let ok = message(ALICE, BOB, "after", 4);
    smtp.submit(&Envelope::new(ALICE, [BOB]), &ok)
        .await
        .expect("submit after refusals");
    smtp.quit().await;
    let got = wait_for_messages(&s, BOB, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = wait_for_messages(&s, BOB, 1).await;
    assert_eq!((got.len(), again.len()), (1, 1));
    assert_arrived_intact(&got[0].raw, &ok);
}

#[tokio::test]
async fn dsn_parameters_bring_a_delivery_report() {
    let Some(s) = Servers::start(true) else {
        return;
    };
    let trace = MemorySink::default();
    let mut smtp = smtp_login(&s, &postfix_submission(&s), ALICE, &trace).await;
    assert!(smtp.offers_dsn());
    let envelope = Envelope::new(ALICE, [BOB]).with_dsn(Dsn {
        success: true,
        failure: true,
        delay: false,
        full: false,
        envelope_id: Some("mss-42+x".to_owned()),
    });
    let receipt = smtp
        .submit(&envelope, &message(ALICE, BOB, "dsn", 1))
        .await
        .expect("submit");
    assert!(receipt.dsn_honoured);
    smtp.quit().await;
    wait_for_messages(&s, BOB, 1).await;
    // Postfix reports the successful delivery back to the sender.
    let reports = wait_for_messages(&s, ALICE, 1).await;
    let report = String::from_utf8_lossy(&reports[0].raw);
    assert!(report.contains("multipart/report"), "{report}");
    assert!(
        report.contains("mss-42+2Bx") || report.contains("mss-42+x"),
        "{report}"
    );
    let mail = trace
        .events()
        .into_iter()
        .find(|e| e.request.starts_with("MAIL FROM"))
        .expect("traced");
    assert!(
        mail.request.contains("RET=HDRS ENVID=mss-42+2Bx"),
        "{}",
        mail.request
    );
}
