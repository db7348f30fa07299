//! `mss send` and `mss sync` end to end against real servers: Pro Santé Connect stood in by
//! oidc-provider (CIBA), Postfix and Dovecot with the IGC-Santé-shaped test PKI, and the
//! fault proxy between mss and the servers. Skipped (saying so) when the servers are not
//! installed, failed under scripts/test.

use mss_testkit::faultproxy::{Action, Direction, FaultProxy};
use mss_testkit::world::{Bal, MailWorld};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ALICE: &str = "alice.martin@test.local";
const BOB: &str = "bob.durand@test.local";
const ROBOT: &str = "dpi.robot@test.local";
const DATE: &str = "1764064800";
/// Bound for any one command: a hang is a failure, not a stuck CI.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn accounts() -> [(&'static str, &'static str); 2] {
    [("899700000001", ALICE), ("899700000002", BOB)]
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mss-docs/tests/fixtures/cda")
        .join(name)
}

fn mss(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mss"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MSS_CONFIG")
        .env_remove("MSS_NIL")
        .stdin(Stdio::null());
    command
}

/// Runs to completion within [`COMMAND_TIMEOUT`], killing the process otherwise.
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss starts");
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("mss did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn ok_json(output: &Output, world: &MailWorld) -> Value {
    assert!(
        output.status.success(),
        "mss failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        world.logs()
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Nothing mss wrote or printed holds a token (JWTs start with `eyJ`), the client secret or
/// a private key (SC.MSS/CONF.28).
fn assert_no_secret(world: &MailWorld, data_dirs: &[PathBuf], printed: &[&Output]) {
    let secret = world.idp.client_secret().to_owned();
    let check = |what: &str, bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("eyJ"), "a token in {what}");
        assert!(!text.contains(&secret), "the PSC client secret in {what}");
        assert!(!text.contains("PRIVATE KEY"), "a private key in {what}");
    };
    let mut seen = 0;
    for dir in data_dirs {
        for file in files(dir) {
            check(&file.display().to_string(), &std::fs::read(&file).unwrap());
            seen += 1;
        }
    }
    assert!(
        seen > 0,
        "mss wrote no trace or state: the check would prove nothing"
    );
    for output in printed {
        check("stdout", &output.stdout);
        check("stderr", &output.stderr);
    }
}

fn maildir_count(world: &MailWorld, user: &str) -> usize {
    let root = world.dovecot.maildir(user);
    ["new", "cur"]
        .iter()
        .map(|sub| {
            std::fs::read_dir(root.join(sub))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

fn wait_for_maildir(world: &MailWorld, user: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while maildir_count(world, user) < count {
        assert!(
            Instant::now() < deadline,
            "{user} has {} message(s), expected {count}\n{}",
            maildir_count(world, user),
            world.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_personal_mailbox_sends_with_psc_and_the_recipient_reads_the_exact_bytes() {
    let Some(world) = MailWorld::start(&accounts(), Duration::from_secs(300)) else {
        return;
    };
    let alice = world.write_config("alice", ALICE, &[world.per(ALICE)]);
    let bob = world.write_config("bob", BOB, &[world.per(BOB)]);
    let cda = fixture("n3_default_ns.xml");
    let message = [
        "--to",
        BOB,
        "--cda",
        cda.to_str().unwrap(),
        "--body",
        "Compte rendu ci-joint.",
        "--date",
        DATE,
        "--message-id",
        "e2e-1@test.local",
        "--request-mdn",
    ];
    let sent = run({
        let mut c = mss(&alice, &["send", "--json"]);
        c.args(message);
        c
    });
    let receipt = ok_json(&sent, &world);
    assert!(
        receipt["reply"].as_str().unwrap().starts_with("250"),
        "{receipt}"
    );
    assert_eq!(receipt["sent_copy"], "Sent");
    assert!(
        world.idp.stats().backchannel_requests >= 1,
        "logged in by CIBA"
    );

    // What compose writes for the same options is what travelled.
    let composed_path = world.dir.join("composed.eml");
    let composed = run({
        let mut c = mss(
            &alice,
            &["compose", "--from", ALICE, "--nil", "MSS-TEST-NIL"],
        );
        c.args(message)
            .arg("--test-identities")
            .arg("--out")
            .arg(&composed_path);
        c
    });
    assert!(
        composed.status.success(),
        "{}",
        String::from_utf8_lossy(&composed.stderr)
    );
    let composed = std::fs::read(&composed_path).unwrap();

    wait_for_maildir(&world, BOB, 1);
    let saved = world.dir.join("bob-saved");
    let synced = run({
        let mut c = mss(&bob, &["sync", "--once", "--json", "--save"]);
        c.arg(&saved);
        c
    });
    let report = ok_json(&synced, &world);
    let messages = report["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{report}");
    assert_eq!(messages[0]["message_id"], "e2e-1@test.local");
    assert_eq!(messages[0]["from"], ALICE);
    assert!(
        messages[0]["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["is_xdm"] == true)
    );
    let uid = messages[0]["uid"].as_u64().unwrap();
    let received = std::fs::read(saved.join(format!("{uid}.eml"))).unwrap();
    // The servers only prepend their trace headers (Return-Path, Received, Delivered-To).
    assert!(
        received.ends_with(&composed),
        "the received message is not the composed one:\n{}",
        String::from_utf8_lossy(&received[..received.len().min(3000)])
    );
    for header in ["X-MSS-NIL: MSS-TEST-NIL", "X-MSS-CODECDA:", "X-MSS-INS:"] {
        assert!(
            String::from_utf8_lossy(&received).contains(header),
            "{header}"
        );
    }

    // A second sync has nothing new: the position was kept.
    let again = ok_json(&run(mss(&bob, &["sync", "--once", "--json"])), &world);
    assert_eq!(again["messages"].as_array().unwrap().len(), 0, "{again}");

    assert_no_secret(
        &world,
        &[
            alice.parent().unwrap().join("data"),
            bob.parent().unwrap().join("data"),
        ],
        &[&sent, &synced],
    );
}

#[test]
fn an_application_mailbox_uses_its_certificate_on_imap_and_submission() {
    let Some(world) = MailWorld::start(&accounts(), Duration::from_secs(300)) else {
        return;
    };
    let robot = world.write_config("robot", ALICE, &[world.app(ROBOT)]);
    let sent = run({
        let mut c = mss(
            &robot,
            &["send", "--json", "--to", BOB, "--subject", "Résultats"],
        );
        c.args(["--body", "Envoi automatique."]);
        c
    });
    let receipt = ok_json(&sent, &world);
    assert!(
        receipt["reply"].as_str().unwrap().starts_with("250"),
        "{receipt}"
    );
    wait_for_maildir(&world, BOB, 1);

    world
        .dovecot
        .deliver(ROBOT, b"From: <bob.durand@test.local>\r\nTo: <dpi.robot@test.local>\r\nSubject: pour le robot\r\nMessage-ID: <to-robot@test.local>\r\n\r\nBonjour.\r\n")
        .unwrap();
    let report = ok_json(&run(mss(&robot, &["sync", "--once", "--json"])), &world);
    let messages = report["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{report}");
    assert_eq!(messages[0]["message_id"], "to-robot@test.local");
    assert_eq!(
        world.idp.stats().backchannel_requests,
        0,
        "no PSC login for a BAL APP"
    );
    let log = world.dovecot.logs();
    assert!(
        log.contains("EXTERNAL") || log.contains("cert"),
        "EXTERNAL was used:\n{log}"
    );
}

/// A message of about `kib` KiB.
fn filler(n: usize, kib: usize) -> Vec<u8> {
    let mut body = format!(
        "From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: lot {n}\r\nMessage-ID: <lot-{n}@test.local>\r\n\r\n"
    );
    while body.len() < kib * 1024 {
        body.push_str("Ligne de compte rendu pour tester les coupures de connexion.\r\n");
    }
    body.into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_connection_cut_mid_fetch_loses_nothing_and_fetches_nothing_twice() {
    let Some(world) = MailWorld::start(&accounts(), Duration::from_secs(300)) else {
        return;
    };
    let messages: Vec<Vec<u8>> = (0..30).map(|n| filler(n, 8)).collect();
    world
        .dovecot
        .deliver_maildir(BOB, messages.iter().map(Vec::as_slice))
        .unwrap();
    let rt = runtime();
    let proxy = rt
        .block_on(FaultProxy::start(
            ([127, 0, 0, 1], world.dovecot.imap_port).into(),
        ))
        .unwrap();
    // Well past the login, in the middle of the bodies (30 × 8 KiB).
    proxy.cut_after_bytes(Direction::ToClient, 100_000);
    let bal = Bal {
        imap_port: proxy.addr().port(),
        ..world.per(BOB)
    };
    let bob = world.write_config("bob", BOB, &[bal]);
    let report = ok_json(&run(mss(&bob, &["sync", "--once", "--json"])), &world);
    assert_eq!(proxy.fired(), 1, "the cut happened");
    assert!(proxy.accepted() >= 2, "mss reconnected");
    let mut ids: Vec<String> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 30, "{report}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "a message was fetched twice");
}

#[test]
fn a_connection_cut_mid_data_delivers_the_message_exactly_once() {
    let Some(world) = MailWorld::start(&accounts(), Duration::from_secs(300)) else {
        return;
    };
    let rt = runtime();
    let proxy = rt
        .block_on(FaultProxy::start(
            ([127, 0, 0, 1], world.postfix.submission_port).into(),
        ))
        .unwrap();
    // The PDF makes DATA about 270 KiB; the login is a few KiB.
    proxy.cut_after_bytes(Direction::ToServer, 80_000);
    let pdf = world.dir.join("cr.pdf");
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..200_000u32).map(|i| (i % 251) as u8));
    std::fs::write(&pdf, bytes).unwrap();
    let bal = Bal {
        smtp_port: proxy.addr().port(),
        ..world.per(ALICE)
    };
    let alice = world.write_config("alice", ALICE, &[bal]);
    let sent = run({
        let mut c = mss(&alice, &["send", "--json", "--to", BOB, "--subject", "CR"]);
        c.arg("--pdf").arg(&pdf);
        c
    });
    ok_json(&sent, &world);
    assert_eq!(proxy.fired(), 1, "the cut happened");
    wait_for_maildir(&world, BOB, 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(maildir_count(&world, BOB), 1, "the message arrived twice");
}

/// Reads a child's stdout lines on a thread, so the test can wait with a timeout.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn expect_line(rx: &mpsc::Receiver<String>, needle: &str, world: &MailWorld) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => continue,
            Err(_) => panic!("no line with {needle}\n{}", world.logs()),
        }
    }
}

#[test]
fn the_session_reopens_after_token_expiry_and_a_cut_mid_idle_and_ends_with_psc() {
    // Tokens that live 4 s: the session outlives several of them.
    let Some(world) = MailWorld::start(&accounts(), Duration::from_secs(4)) else {
        return;
    };
    let rt = runtime();
    let proxy = rt
        .block_on(FaultProxy::start(
            ([127, 0, 0, 1], world.dovecot.imap_port).into(),
        ))
        .unwrap();
    let bal = Bal {
        imap_port: proxy.addr().port(),
        ..world.per(BOB)
    };
    let bob = world.write_config("bob", BOB, &[bal]);
    let mut follower = mss(&bob, &["sync"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(&mut follower);

    world.dovecot.deliver(BOB, &filler(1, 1)).unwrap();
    expect_line(&out, "lot-1@test.local", &world);

    // The token the session opened with has expired; the connection drops in IDLE.
    std::thread::sleep(Duration::from_secs(6));
    let accepted = proxy.accepted();
    proxy.end_all(Action::Cut);
    world.dovecot.deliver(BOB, &filler(2, 1)).unwrap();
    expect_line(&out, "lot-2@test.local", &world);
    assert!(proxy.accepted() > accepted, "a new connection was opened");

    // PSC refuses the refresh: every session of the user ends and mss says to log in again.
    world.idp.revoke(BOB);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            follower.kill().ok();
            panic!(
                "mss sync kept running after the PSC session ended\n{}",
                world.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut follower.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("log in again"), "{stderr}");
}

#[test]
fn login_once_opens_a_psc_session_and_logs_out() {
    use mss_testkit::oidc::{OidcOptions, OidcProvider};
    let Some(idp) = OidcProvider::start(OidcOptions::default().account("899700000001", ALICE))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mss.toml");
    std::fs::write(
        &config,
        format!(
            "[software]\nnil = \"MSS-TEST-NIL\"\n\n[psc]\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nflow = \"ciba\"\nlogin_hint = \"899700000001\"\n",
            idp.issuer(),
            idp.client_id(),
            idp.client_secret()
        ),
    )
    .unwrap();
    let output = run(mss(&config, &["login", "--once"]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let session: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(session["logged_in"], true);
    assert_eq!(session["subject"], "899700000001");
    assert_eq!(session["email"], ALICE);

    // A professional who refuses on their device gets one line saying so.
    idp.set_ciba_deny(&["899700000001"]);
    let denied = run(mss(&config, &["login", "--once"]));
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(
        stderr.lines().count(),
        2,
        "a prompt and one error line: {stderr}"
    );
    assert!(stderr.contains("access_denied"), "{stderr}");
}
