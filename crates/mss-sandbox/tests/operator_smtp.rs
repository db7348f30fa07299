//! The operator's SMTP side seen by an independent client: mail-send and raw bytes over
//! tokio + rustls, a PSC token got by CIBA over plain HTTP (reqwest). Never mss's own
//! transport (tests/independence.rs).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_send::SmtpClient;
use serde_json::Value;
use smtp_proto::{AUTH_EXTERNAL, AUTH_OAUTHBEARER, AUTH_XOAUTH2, EXT_AUTH, EXT_DSN, EXT_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::*;

#[tokio::test]
async fn xoauth2_submission_lands_in_the_recipients_inbox_byte_for_byte() {
    let env = start(Duration::from_secs(300)).await;
    let token = env.token("899700000001").await;
    let (mut client, ehlo) = env.secure(env.sandbox.operator.smtp, None).await;
    assert!(ehlo.has_capability(EXT_AUTH) && ehlo.has_capability(EXT_DSN));
    assert!(ehlo.has_capability(EXT_SIZE));
    assert_eq!(ehlo.size, 30 * 1024 * 1024);
    assert_eq!(
        ehlo.auth_mechanisms,
        AUTH_XOAUTH2 | AUTH_OAUTHBEARER | AUTH_EXTERNAL
    );

    // Credentials after the 334 continuation, as mss sends long tokens.
    assert_eq!(cmd(&mut client, "AUTH XOAUTH2").await.0, 334);
    let (code, text) = cmd(&mut client, &xoauth2(JEANNE, &token)).await;
    assert_eq!(code, 235, "{text}");

    // A line starting with a dot and a bare dot line in the body: transparency both ways.
    let bytes = message(
        JEANNE,
        KARIM,
        "Compte rendu",
        "X-MSS-NIL: TEST\r\n",
        "Bonjour,\r\n.cache\r\n.\r\nfin\r\n",
    );
    let (code, text) = send(&mut client, JEANNE, &[KARIM], &bytes).await;
    assert_eq!(code, 250, "{text}");
    client.quit().await.unwrap();

    let ctx = &env.sandbox.operator.context;
    let inbox = env.inbox(ctx, KARIM);
    assert_eq!(inbox.len(), 1);
    let stored = &inbox[0];
    let return_path =
        format!("Return-Path: <{JEANNE}>\r\nReceived: from client.test ([127.0.0.1])");
    assert!(stored.starts_with(return_path.as_bytes()));
    assert!(stored.ends_with(&bytes), "the message is stored as sent");
    assert!(header(stored, "Received")[0].contains("with ESMTPSA"));
    // The client files its own copy in Sent (API LPS): the operator does not.
    assert!(ctx.store.messages(JEANNE, "Sent").unwrap().is_empty());

    // A second session with the inline initial response (mail-send's way).
    let (mut client, ehlo) = env.secure(env.sandbox.operator.smtp, None).await;
    client
        .authenticate(
            mail_send::Credentials::new_xoauth2(JEANNE, token.as_str()),
            &ehlo,
        )
        .await
        .unwrap();
    let bytes = message(JEANNE, KARIM, "Deux", "", "deux\r\n");
    assert_eq!(send(&mut client, JEANNE, &[KARIM], &bytes).await.0, 250);
    assert_eq!(env.inbox(ctx, KARIM).len(), 2);

    // OAUTHBEARER (RFC 7628) too.
    let (mut client, _) = env.secure(env.sandbox.operator.smtp, None).await;
    let bearer = STANDARD.encode(format!("n,a={JEANNE},\x01auth=Bearer {token}\x01\x01"));
    let (code, text) = cmd(&mut client, &format!("AUTH OAUTHBEARER {bearer}")).await;
    assert_eq!(code, 235, "{text}");

    // The recorder: the authentication, the commands, every header; never the token.
    let events = ctx.recorder.since(0);
    assert!(events.iter().any(|e| e.kind == "auth"
        && e.detail["mechanism"] == "XOAUTH2"
        && e.detail["ok"] == true
        && e.detail["mailbox"] == JEANNE));
    let message_event = events.iter().find(|e| e.kind == "message").unwrap();
    assert_eq!(message_event.detail["from"], JEANNE);
    assert_eq!(message_event.detail["to"][0], KARIM);
    let headers = message_event.detail["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "X-MSS-NIL" && h["value"] == "TEST")
    );
    assert!(headers.iter().any(|h| h["name"] == "Subject"));
    let all = env.recording();
    assert!(!all.contains(&token), "the token is never recorded");
    assert!(!all.contains(&xoauth2(JEANNE, &token)));
    assert!(!all.contains(".cache"), "bodies are never recorded");
    let file = std::fs::read_to_string(env.dir.path().join("operator/recorder.jsonl")).unwrap();
    assert!(!file.contains(&token));
}

#[tokio::test]
async fn external_with_the_application_certificate() {
    let env = start(Duration::from_secs(300)).await;
    let (cert, key) = env.bal_cert(DPI);
    let (mut client, _) = env
        .secure(env.sandbox.operator.smtp, Some((&cert, &key)))
        .await;
    let (code, text) = cmd(&mut client, "AUTH EXTERNAL =").await;
    assert_eq!(code, 235, "{text}");
    let bytes = message(DPI, JEANNE, "Resultats", "", "ok\r\n");
    assert_eq!(send(&mut client, DPI, &[JEANNE], &bytes).await.0, 250);
    assert_eq!(env.inbox(&env.sandbox.operator.context, JEANNE).len(), 1);

    // With the authorization identity after the continuation.
    let (mut client, _) = env
        .secure(env.sandbox.operator.smtp, Some((&cert, &key)))
        .await;
    assert_eq!(cmd(&mut client, "AUTH EXTERNAL").await.0, 334);
    assert_eq!(cmd(&mut client, &STANDARD.encode(DPI)).await.0, 235);

    // No certificate, or a certificate naming another mailbox: refused.
    let (mut client, _) = env.secure(env.sandbox.operator.smtp, None).await;
    assert_eq!(cmd(&mut client, "AUTH EXTERNAL =").await.0, 535);
    let (mut client, _) = env
        .secure(env.sandbox.operator.smtp, Some((&cert, &key)))
        .await;
    assert_eq!(
        cmd(
            &mut client,
            &format!("AUTH EXTERNAL {}", STANDARD.encode(JEANNE))
        )
        .await
        .0,
        535
    );

    // A certificate from another CA does not even pass TLS.
    let pki = &env.sandbox.info.pki;
    let mut plain = SmtpClient::connect(env.sandbox.operator.smtp, WAIT)
        .await
        .unwrap();
    plain.read().await.unwrap();
    plain.ehlo("client.test").await.unwrap();
    let result = async {
        let mut tls = plain
            .start_tls(
                &connector(
                    env.root(),
                    Some((
                        &pki.untrusted_server_chain_pem,
                        &pki.untrusted_server_key_pem,
                    )),
                ),
                "localhost",
            )
            .await?;
        tls.ehlo("client.test").await?;
        tls.cmd("AUTH EXTERNAL =\r\n").await
    }
    .await;
    assert!(
        !matches!(&result, Ok(r) if r.code() == 235),
        "a foreign certificate never logs in: {:?}",
        result.map(|r| r.code())
    );
    let events = env.sandbox.operator.context.recorder.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.kind == "tls" && e.detail["ok"] == false)
    );
}

#[tokio::test]
async fn refusals_are_clear_and_recorded() {
    let env = start(Duration::from_secs(3)).await;
    let smtp = env.sandbox.operator.smtp;

    // AUTH before STARTTLS.
    let mut plain = SmtpClient::connect(smtp, WAIT).await.unwrap();
    plain.read().await.unwrap();
    plain.ehlo("client.test").await.unwrap();
    let reply = plain.cmd("AUTH XOAUTH2 dGVzdA==\r\n").await.unwrap();
    assert_eq!(reply.code(), 530);
    let reply = plain.cmd("MAIL FROM:<a@b.fr>\r\n").await.unwrap();
    assert_eq!(reply.code(), 530);

    let token = env.token("899700000001").await;

    // PLAIN and LOGIN.
    let (mut client, _) = env.secure(smtp, None).await;
    let plain_auth = STANDARD.encode(format!("\0{JEANNE}\0secret"));
    assert_eq!(
        cmd(&mut client, &format!("AUTH PLAIN {plain_auth}"))
            .await
            .0,
        504
    );
    assert_eq!(cmd(&mut client, "AUTH LOGIN").await.0, 504);
    // Not logged in: no mail.
    assert_eq!(
        cmd(&mut client, &format!("MAIL FROM:<{JEANNE}>")).await.0,
        530
    );

    // Jeanne's token for Karim's mailbox: error challenge, then 535.
    let (code, challenge) = cmd(
        &mut client,
        &format!("AUTH XOAUTH2 {}", xoauth2(KARIM, &token)),
    )
    .await;
    assert_eq!(code, 334);
    let report: Value =
        serde_json::from_slice(&STANDARD.decode(challenge.trim()).unwrap()).unwrap();
    assert_eq!(report["status"], "invalid_token");
    assert_eq!(cmd(&mut client, "").await.0, 535);

    // Logged in: MAIL FROM another mailbox, unknown local recipient.
    let (code, _) = cmd(
        &mut client,
        &format!("AUTH XOAUTH2 {}", xoauth2(JEANNE, &token)),
    )
    .await;
    assert_eq!(code, 235);
    let (code, text) = cmd(&mut client, &format!("MAIL FROM:<{KARIM}>")).await;
    assert_eq!(code, 553);
    assert!(text.contains(JEANNE), "{text}");
    assert_eq!(
        cmd(&mut client, &format!("MAIL FROM:<{JEANNE}> SIZE=40000000"))
            .await
            .0,
        552
    );
    assert_eq!(
        cmd(&mut client, &format!("MAIL FROM:<{JEANNE}>")).await.0,
        250
    );
    assert_eq!(
        cmd(&mut client, "RCPT TO:<personne@sandbox.mssante.fr>")
            .await
            .0,
        550
    );
    assert_eq!(
        cmd(&mut client, "RCPT TO:<someone@example.com>").await.0,
        550
    );
    assert_eq!(cmd(&mut client, "DATA").await.0, 554);

    // The same token once expired (tokens live 3 s here).
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (mut client, _) = env.secure(smtp, None).await;
    assert_eq!(cmd(&mut client, "AUTH XOAUTH2").await.0, 334);
    assert_eq!(cmd(&mut client, &xoauth2(JEANNE, &token)).await.0, 334);
    assert_eq!(cmd(&mut client, "AQ==").await.0, 535);

    let events = env.sandbox.operator.context.recorder.since(0);
    let reasons: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "auth" && e.detail["ok"] == false)
        .map(|e| e.detail["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    for expected in [
        "AUTH before STARTTLS",
        "password mechanisms are refused",
        "token of a professional who does not hold this mailbox",
        "token expired",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected}: {reasons:?}"
        );
    }
    assert!(events.iter().any(|e| e.kind == "mail_from"
        && e.detail["ok"] == false
        && e.detail["from"] == KARIM
        && e.detail["authenticated"] == JEANNE));
    assert!(
        !env.recording().contains("secret"),
        "a PLAIN password is never recorded"
    );
}

#[tokio::test]
async fn mail_to_the_second_operator_crosses_a_real_smtp_hop() {
    let env = start(Duration::from_secs(300)).await;
    let token = env.token("899700000001").await;
    let (mut client, ehlo) = env.secure(env.sandbox.operator.smtp, None).await;
    client
        .authenticate(
            mail_send::Credentials::new_xoauth2(JEANNE, token.as_str()),
            &ehlo,
        )
        .await
        .unwrap();
    let bytes = message(JEANNE, KARIM_2, "Entre operateurs", "", "bonjour\r\n");
    let (code, text) = send(&mut client, JEANNE, &[KARIM_2, KARIM], &bytes).await;
    assert_eq!(code, 250, "{text}");

    let second = &env.sandbox.second_operator.context;
    let inbox = env.inbox(second, KARIM_2);
    assert_eq!(inbox.len(), 1);
    let received = header(&inbox[0], "Received");
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received[0].contains("by smtp.operateur2.sandbox.mssante.fr"));
    assert!(received[0].contains("with ESMTPS"));
    assert!(received[1].contains("by smtp.sandbox.mssante.fr"));
    assert!(inbox[0].ends_with(&bytes));
    assert_eq!(env.inbox(&env.sandbox.operator.context, KARIM).len(), 1);
    let events = second.recorder.since(0);
    assert!(
        events.iter().any(|e| e.service == "smtp-relay"
            && e.kind == "message"
            && e.detail["from"] == JEANNE)
    );
    assert!(
        events
            .iter()
            .any(|e| e.service == "smtp-relay" && e.kind == "tls" && e.detail["ok"] == true)
    );

    // Karim, holder of the second operator's mailbox, answers through that operator.
    let karim = env.token("899700000002").await;
    let (mut client, ehlo) = env.secure(env.sandbox.second_operator.smtp, None).await;
    client
        .authenticate(
            mail_send::Credentials::new_xoauth2(KARIM_2, karim.as_str()),
            &ehlo,
        )
        .await
        .unwrap();
    let reply = message(KARIM_2, JEANNE, "Re: Entre operateurs", "", "reçu\r\n");
    assert_eq!(send(&mut client, KARIM_2, &[JEANNE], &reply).await.0, 250);
    assert_eq!(env.inbox(&env.sandbox.operator.context, JEANNE).len(), 1);

    // From the second operator to Mon espace santé (hosted by the first): a known patient
    // gets it over the hop; an unknown one bounces, and the report comes back over the hop.
    let alice = env.sandbox.info.patients[0].address.clone();
    let unknown = "100000000000054@patient.mssante.fr";
    let bytes = message(KARIM_2, &alice, "Patients", "", "x\r\n");
    assert_eq!(
        send(&mut client, KARIM_2, &[&alice, unknown], &bytes)
            .await
            .0,
        250
    );
    assert_eq!(env.inbox(&env.sandbox.operator.context, &alice).len(), 1);
    let back = env.inbox(second, KARIM_2);
    assert_eq!(
        back.len(),
        2,
        "the bounce came back to the sender's operator"
    );
    let report = String::from_utf8_lossy(&back[1]).into_owned();
    assert!(
        report.contains(&format!("Final-Recipient: rfc822; {unknown}")),
        "{report}"
    );
    assert!(!report.contains(&format!("Final-Recipient: rfc822; {alice}")));
    assert!(
        second
            .recorder
            .since(0)
            .iter()
            .any(|e| e.kind == "message" && e.service == "smtp-relay" && e.detail["from"] == "")
    );

    // The relay port is no open relay.
    let relay = env.sandbox.second_operator.relay.unwrap();
    let mut plain = SmtpClient::connect(relay, WAIT).await.unwrap();
    plain.read().await.unwrap();
    plain.ehlo("evil.test").await.unwrap();
    plain.cmd("MAIL FROM:<x@evil.test>\r\n").await.unwrap();
    assert_eq!(
        plain
            .cmd(format!("RCPT TO:<{JEANNE}>\r\n"))
            .await
            .unwrap()
            .code(),
        550
    );
    assert_eq!(
        plain
            .cmd("RCPT TO:<a@example.com>\r\n")
            .await
            .unwrap()
            .code(),
        550
    );
}

fn patient(env: &Env, index: usize) -> (String, String) {
    let p = &env.sandbox.info.patients[index];
    (p.matricule.clone(), p.address.clone())
}

fn dsns(env: &Env, address: &str) -> Vec<Vec<u8>> {
    env.inbox(&env.sandbox.operator.context, address)
        .into_iter()
        .filter(|m| {
            header(m, "Content-Type")
                .iter()
                .any(|v| v.contains("multipart/report"))
        })
        .collect()
}

#[tokio::test]
async fn mon_espace_sante_bounces_fin_and_replies() {
    let env = start(Duration::from_secs(300)).await;
    let ctx = &env.sandbox.operator.context;
    let token = env.token("899700000001").await;
    let (mut client, ehlo) = env.secure(env.sandbox.operator.smtp, None).await;
    client
        .authenticate(
            mail_send::Credentials::new_xoauth2(JEANNE, token.as_str()),
            &ehlo,
        )
        .await
        .unwrap();
    let (matricule, alice) = patient(&env, 0);

    // The patient cannot write first.
    assert_eq!(
        mss_sandbox::operator::mes::patient_reply(ctx, &matricule, JEANNE, "Bonjour", "?"),
        Err(mss_sandbox::operator::mes::ReplyError::NotStarted)
    );

    // A professional writes; the patient can answer.
    let bytes = message(JEANNE, &alice, "Vos résultats", "", "Bonjour\r\n");
    assert_eq!(send(&mut client, JEANNE, &[&alice], &bytes).await.0, 250);
    assert_eq!(env.inbox(ctx, &alice).len(), 1);
    mss_sandbox::operator::mes::patient_reply(
        ctx,
        &matricule,
        JEANNE,
        "Re: Vos résultats",
        "Merci",
    )
    .unwrap();
    let jeanne = env.inbox(ctx, JEANNE);
    assert_eq!(jeanne.len(), 1);
    let from = &header(&jeanne[0], "From")[0];
    assert!(from.contains(&alice) && from.contains("DURAND"), "{from}");

    // X-MSS-MES: FIN ends it.
    let bytes = message(JEANNE, &alice, "Fin", "X-MSS-MES: FIN\r\n", "Au revoir\r\n");
    assert_eq!(send(&mut client, JEANNE, &[&alice], &bytes).await.0, 250);
    assert_eq!(
        mss_sandbox::operator::mes::patient_reply(ctx, &matricule, JEANNE, "Re", "?"),
        Err(mss_sandbox::operator::mes::ReplyError::Closed)
    );
    // A new message opens it again, a subject "[FIN]" closes it again.
    let bytes = message(JEANNE, &alice, "Nouveau", "", "x\r\n");
    send(&mut client, JEANNE, &[&alice], &bytes).await;
    assert!(mss_sandbox::operator::mes::patient_reply(ctx, &matricule, JEANNE, "Re", "ok").is_ok());
    let bytes = message(JEANNE, &alice, "[FIN] fin du suivi", "", "x\r\n");
    send(&mut client, JEANNE, &[&alice], &bytes).await;
    assert_eq!(
        mss_sandbox::operator::mes::patient_reply(ctx, &matricule, JEANNE, "Re", "?"),
        Err(mss_sandbox::operator::mes::ReplyError::Closed)
    );
    assert!(
        env.dir
            .path()
            .join("operator/mes-conversations.json")
            .exists()
    );

    // An unknown matricule is accepted, then bounced with a DSN.
    let unknown = "100000000000054@patient.mssante.fr";
    let bytes = message(JEANNE, unknown, "Inconnu", "", "x\r\n");
    let (code, text) = send(&mut client, JEANNE, &[unknown], &bytes).await;
    assert_eq!(code, 250, "{text}");
    let reports = dsns(&env, JEANNE);
    assert_eq!(reports.len(), 1);
    let report = String::from_utf8_lossy(&reports[0]).into_owned();
    assert!(
        report.contains("report-type=delivery-status")
            || report.contains("report-type=\"delivery-status\"")
    );
    assert!(report.contains(&format!("Final-Recipient: rfc822; {unknown}")));
    assert!(report.contains("Status: 5.1.1"));
    assert!(
        report.contains("Subject: Inconnu"),
        "original headers attached"
    );

    // Over 25 MB to a patient: accepted (under the session's 30 MB), then bounced.
    let big_body = "A".repeat(998) + "\r\n";
    let big = message(
        JEANNE,
        &alice,
        "Gros",
        "",
        &big_body.repeat(26 * 1024 * 1024 / 1000 + 10),
    );
    assert!(big.len() > 25 * 1024 * 1024 && big.len() < 30 * 1024 * 1024);
    let (code, text) = send(&mut client, JEANNE, &[&alice], &big).await;
    assert_eq!(code, 250, "{text}");
    let reports = dsns(&env, JEANNE);
    assert_eq!(reports.len(), 2);
    let report = String::from_utf8_lossy(&reports[1]).into_owned();
    assert!(report.contains("Status: 5.3.4"));
    assert!(
        report.len() < 100_000,
        "the report carries headers, not the body"
    );
    assert_eq!(
        env.inbox(ctx, &alice).len(),
        4,
        "the big one was not delivered"
    );
    let events = ctx.recorder.since(0);
    assert_eq!(events.iter().filter(|e| e.kind == "bounce").count(), 2);
}

#[tokio::test]
async fn hostile_input_is_refused_in_bounded_time() {
    let env = start(Duration::from_secs(300)).await;
    let smtp = env.sandbox.operator.smtp;
    let started = Instant::now();

    // A huge line: 500, then closed.
    let mut raw = TcpStream::connect(smtp).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = raw.read(&mut buf).await.unwrap();
    raw.write_all(&[b'A'; 20_000]).await.unwrap();
    let answer = read_until_closed(&mut raw).await;
    assert!(answer.starts_with("500 5.5.2"), "{answer}");

    // Garbage: 5xx each time, then 421 and closed.
    let mut raw = TcpStream::connect(smtp).await.unwrap();
    let _ = raw.read(&mut buf).await.unwrap();
    for _ in 0..10 {
        let _ = raw.write_all(b"\x00\xff\xfe garbage \x1b[31m\r\n").await;
    }
    let answer = read_until_closed(&mut raw).await;
    assert!(answer.starts_with("500"), "{answer}");
    assert!(answer.contains("421 4.7.0"), "{answer}");

    // Endless DATA: cut after the size limit.
    let token = env.token("899700000001").await;
    let (mut client, ehlo) = env.secure(smtp, None).await;
    client
        .authenticate(
            mail_send::Credentials::new_xoauth2(JEANNE, token.as_str()),
            &ehlo,
        )
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut client, &format!("MAIL FROM:<{JEANNE}>")).await.0,
        250
    );
    assert_eq!(cmd(&mut client, &format!("RCPT TO:<{KARIM}>")).await.0, 250);
    assert_eq!(cmd(&mut client, "DATA").await.0, 354);
    let chunk = ("X".repeat(1000) + "\r\n").repeat(1000);
    let mut sent = 0usize;
    let mut stream = client.stream;
    let _ = tokio::time::timeout(Duration::from_secs(90), async {
        while sent < 100 * 1024 * 1024 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
    })
    .await;
    assert!(sent < 100 * 1024 * 1024, "the server stopped reading");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.is_empty() || rest.starts_with("552 5.3.4"), "{rest}");
    assert!(env.inbox(&env.sandbox.operator.context, KARIM).is_empty());
    assert!(started.elapsed() < Duration::from_secs(120));
    let events = env.sandbox.operator.context.recorder.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.kind == "response" && e.detail["code"] == 552),
        "the endless DATA was answered 552 before the close"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "command" && e.detail["error"] == "line too long")
    );
}

async fn read_until_closed(raw: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut all))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&all).into_owned()
}
