//! The conformance checks fail when a client misbehaves: faults are injected by a client
//! of our own (independent of mss: mail-send over tokio-rustls) against the real operator,
//! and each check is judged on what the operator recorded.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use common::*;
use mss_sandbox::conformance::{self, CheckResult, Observation, STEPS};

fn step(id: &str) -> &'static conformance::Step {
    STEPS.iter().find(|s| s.id == id).unwrap()
}

async fn judge(env: &Env, step_id: &str, mark: u64) -> Vec<CheckResult> {
    // The operator records a session's last lines as it closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rec = &env.sandbox.operator.context.recorder;
    let observed = Observation {
        events: rec.since(mark),
        messages: rec.messages_since(mark),
    };
    conformance::judge_step(step(step_id), &observed)
}

fn status<'a>(results: &'a [CheckResult], id: &str) -> &'a str {
    results.iter().find(|r| r.id == id).unwrap().status
}

/// A message carrying the sandbox's report for its first patient in an IHE_XDM.ZIP.
fn document_message(env: &Env, extra_headers: &str) -> Vec<u8> {
    let cda = std::fs::read(&env.sandbox.info.documents[0]).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "IHE_XDM/SUBSET01/DOC0001.XML",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&cda).unwrap();
    let zip = base64::engine::general_purpose::STANDARD.encode(zip.finish().unwrap().into_inner());
    let patient = &env.sandbox.info.patients[0];
    format!(
        "From: {JEANNE}\r\nTo: {KARIM}\r\nMessage-ID: <conformance@test>\r\n\
         Subject: XDM/1.0/DDM+CR de consultation {} {}\r\n{extra_headers}\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu.\r\n\
         --b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n{zip}\r\n--b--\r\n",
        patient.family_name, patient.given_name
    )
    .into_bytes()
}

async fn logged_in(env: &Env, token: &str) -> Tls {
    let (mut client, _) = env.secure(env.sandbox.operator.smtp, None).await;
    let auth = format!("AUTH XOAUTH2 {}", xoauth2(JEANNE, token));
    assert_eq!(cmd(&mut client, &auth).await.0, 235);
    client
}

#[tokio::test]
async fn missing_nil_and_wrong_document_headers_fail_their_checks() {
    let env = start(Duration::from_secs(300)).await;
    let token = env.token("899700000001").await;

    let mark = env.sandbox.operator.context.recorder.mark();
    let mut client = logged_in(&env, &token).await;
    let broken = document_message(&env, "X-MSS-CODECDA: 11490-0\r\nX-MSS-INS: N\r\n");
    assert_eq!(send(&mut client, JEANNE, &[KARIM], &broken).await.0, 250);
    let results = judge(&env, "send-document", mark).await;
    for (id, expected) in [
        ("x-mss-nil", "failed"),
        ("x-mss-codecda", "failed"),
        ("x-mss-ins", "failed"),
        ("subject-xdm", "passed"),
        ("one-patient", "passed"),
        ("tls-version", "passed"),
        ("xoauth2-psc", "passed"),
    ] {
        assert_eq!(status(&results, id), expected, "{id}: {results:#?}");
    }

    let mark = env.sandbox.operator.context.recorder.mark();
    let mut client = logged_in(&env, &token).await;
    let good = document_message(
        &env,
        "X-MSS-CODECDA: 11488-4\r\nX-MSS-INS: O\r\nX-MSS-NIL: TEST-NIL\r\n",
    );
    assert_eq!(send(&mut client, JEANNE, &[KARIM], &good).await.0, 250);
    let results = judge(&env, "send-document", mark).await;
    assert!(
        results.iter().all(|r| r.passed),
        "a compliant message passes every check: {results:#?}"
    );
}

#[tokio::test]
async fn a_token_presented_again_after_its_refusal_fails() {
    let env = start(Duration::from_secs(300)).await;
    let ctx = &env.sandbox.operator.context;
    let token = env.token("899700000001").await;

    ctx.faults.refuse_tokens.store(1, Ordering::SeqCst);
    let mark = ctx.recorder.mark();
    let (mut client, _) = env.secure(env.sandbox.operator.smtp, None).await;
    let auth = format!("AUTH XOAUTH2 {}", xoauth2(JEANNE, &token));
    assert_eq!(cmd(&mut client, &auth).await.0, 334, "error challenge");
    assert_eq!(cmd(&mut client, "").await.0, 535);
    // The misbehaviour: the same token again.
    drop(logged_in(&env, &token).await);
    let results = judge(&env, "token-refused", mark).await;
    assert_eq!(
        status(&results, "token-not-reused"),
        "failed",
        "{results:#?}"
    );
    assert_eq!(status(&results, "token-reopen"), "failed", "{results:#?}");

    // The right behaviour: a new token after the refusal.
    ctx.faults.refuse_tokens.store(1, Ordering::SeqCst);
    let mark = ctx.recorder.mark();
    let (mut client, _) = env.secure(env.sandbox.operator.smtp, None).await;
    let fresh = env.token("899700000001").await;
    let auth = format!("AUTH XOAUTH2 {}", xoauth2(JEANNE, &fresh));
    assert_eq!(cmd(&mut client, &auth).await.0, 334);
    assert_eq!(cmd(&mut client, "").await.0, 535);
    let newer = env.token("899700000001").await;
    drop(logged_in(&env, &newer).await);
    let results = judge(&env, "token-refused", mark).await;
    assert!(results.iter().all(|r| r.passed), "{results:#?}");
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_fails_igc_only() {
    let env = start(Duration::from_secs(300)).await;
    let ctx = &env.sandbox.operator.context;
    ctx.faults
        .untrusted_certificate
        .store(true, Ordering::SeqCst);
    let addr = env.sandbox.operator.imaps;

    // A client trusting only the IGC-like root refuses the handshake: passed.
    let mark = ctx.recorder.mark();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    assert!(
        connector(env.root(), None)
            .connect(name.clone(), tcp)
            .await
            .is_err()
    );
    let results = judge(&env, "untrusted-operator", mark).await;
    assert_eq!(status(&results, "igc-only"), "passed", "{results:#?}");

    // A client that trusts the other CA completes it: failed.
    let mark = ctx.recorder.mark();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let other = env.sandbox.info.pki.untrusted_ca_pem.clone();
    let tls = connector(&other, None).connect(name, tcp).await.unwrap();
    let results = judge(&env, "untrusted-operator", mark).await;
    drop(tls);
    assert_eq!(status(&results, "igc-only"), "failed", "{results:#?}");
}
