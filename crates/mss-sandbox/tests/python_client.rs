//! The issue's "done when": an independent client written with Python's standard library
//! only (tests/python/independent_client.py) discovers PSC, gets tokens by CIBA, logs in to
//! IMAP and SMTP with XOAUTH2 and EXTERNAL, sends and reads back, and is refused with an
//! expired token, a token for another mailbox, a foreign certificate and LOGIN.
//!
//! Skipped with a message when python3 is missing, except under MSS_REQUIRE_SERVERS=1
//! (scripts/test), where that is a failure. (mss-testkit is not allowed in this crate.)

use std::process::Stdio;
use std::time::Duration;

use mss_sandbox::{Sandbox, SandboxOptions};

fn python() -> Option<&'static str> {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("python3");
    }
    if std::env::var("MSS_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("python3 is required (MSS_REQUIRE_SERVERS=1): install it");
    }
    eprintln!("skipped: python3 is not installed");
    None
}

#[tokio::test]
async fn a_stdlib_python_client_does_everything_the_issue_asks() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = SandboxOptions::new(dir.path());
    options.ciba_delay = Duration::ZERO;
    // Short-lived tokens, so the script can see one expire.
    options.access_token_lifetime = Duration::from_secs(8);
    let sandbox = Sandbox::start(options).await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/independent_client.py"
    );
    let child = tokio::process::Command::new(python)
        .arg(script)
        .arg(dir.path().join("sandbox.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the Python client finishes within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    assert!(stdout.contains("checks passed"), "{stdout}");
    // What it did is in the recording: its logins, never its tokens.
    let events = sandbox.operator.context.recorder.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.service == "smtp" && e.kind == "auth" && e.detail["ok"] == true)
    );
    assert!(
        events
            .iter()
            .any(|e| e.service == "imap" && e.kind == "auth" && e.detail["ok"] == true)
    );
    // The foreign certificate was stopped by TLS itself, on both services.
    for service in ["smtp", "imap"] {
        assert!(
            events
                .iter()
                .any(|e| e.service == service && e.kind == "tls" && e.detail["ok"] == false),
            "{service}"
        );
    }
    drop(sandbox);
}
