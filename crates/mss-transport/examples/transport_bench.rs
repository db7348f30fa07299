//! Transport benchmarks against real servers (not a test; figures go to docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p mss-transport --example transport_bench -- [messages] [submissions] [rounds]
//! MSS_BIN=target/release/mss cargo run …   # also times `mss sync --once` on the same mailbox
//! ```
//!
//! Starts the test PKI, the stand-in Pro Santé Connect, Dovecot and Postfix on 127.0.0.1,
//! then measures: opening an authenticated IMAP session (STARTTLS + XOAUTH2); fetching a
//! 10,000-message mailbox with our session and with Python's imaplib in the same run; and
//! submitting messages through Postfix (XOAUTH2 via Dovecot SASL).

#[path = "../tests/imap_support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mss_transport::imap::{Credentials, Endpoint, ImapOptions, ImapSession, Security, SyncState};
use mss_transport::smtp::{Envelope, SmtpOptions, SmtpSession};
use mss_transport::trace::NoTrace;
use secrecy::ExposeSecret;
use support::{ALICE, BOB, Servers};

/// A message of about 3 KB, the size of a typical MSSanté notification with its headers.
fn bench_message(n: usize) -> Vec<u8> {
    let mut m = support::message(BOB, ALICE, "bench", n);
    for line in 0..40 {
        m.extend_from_slice(
            format!("Ligne {line:02} du compte rendu {n}, texte de remplissage réaliste.\r\n")
                .as_bytes(),
        );
    }
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mailbox_size = args.first().copied().unwrap_or(10_000);
    let submissions = args.get(1).copied().unwrap_or(500);
    let rounds = args.get(2).copied().unwrap_or(5).max(1);
    println!("load average at start: {}", loadavg());
    let Some(s) = Servers::start(true) else {
        eprintln!("servers missing: run scripts/setup/mail.sh and scripts/setup/oidc.sh");
        std::process::exit(2);
    };
    let imap = Endpoint::new("127.0.0.1", s.dovecot.imap_port, Security::StartTls);
    let token = s.token(ALICE);
    let tls = s.tls();
    println!(
        "machine: {} cores; Dovecot {}; rustc release build",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        String::from_utf8_lossy(
            &Command::new("dovecot")
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .trim()
    );

    // 1. Opening an authenticated session.
    let connect = || {
        ImapSession::connect(
            &imap,
            tls.clone(),
            Credentials::Token {
                user: ALICE,
                token: &token,
            },
            Arc::new(NoTrace),
            ImapOptions::new(ALICE),
        )
    };
    connect().await.expect("warm-up login").logout().await;
    let mut opens = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let session = connect().await.expect("login");
        opens.push(started.elapsed().as_secs_f64() * 1000.0);
        session.logout().await;
    }
    println!(
        "open IMAP session (TCP + STARTTLS + TLS 1.3 + AUTHENTICATE XOAUTH2 + CAPABILITY + ENABLE), 50 runs: median {:.2} ms, p95 {:.2} ms",
        median(opens.clone()),
        percentile(opens, 0.95)
    );

    // 2. Fetching a large mailbox.
    let started = Instant::now();
    let messages: Vec<Vec<u8>> = (0..mailbox_size).map(bench_message).collect();
    let total_bytes: usize = messages.iter().map(Vec::len).sum();
    s.dovecot
        .deliver_maildir(ALICE, messages.iter().map(Vec::as_slice))
        .expect("deliver");
    println!(
        "mailbox: {mailbox_size} messages, {:.1} MB, written in {:.2} s",
        total_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    // Dovecot indexes the folder on first open: do it outside the measures.
    {
        let mut session = connect().await.expect("login");
        let mut state = SyncState::default();
        let started = Instant::now();
        session.select("INBOX", &mut state).await.expect("select");
        println!(
            "first SELECT (Dovecot builds its index): {:.2} s",
            started.elapsed().as_secs_f64()
        );
        session.logout().await;
    }
    let python = python_script(&s);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..rounds {
        for limit in [500usize] {
            let started = Instant::now();
            let mut session = connect().await.expect("login");
            let mut state = SyncState::default();
            session.select("INBOX", &mut state).await.expect("select");
            let mut count = 0;
            let mut bytes = 0;
            loop {
                let batch = session.fetch_new(&mut state, limit).await.expect("fetch");
                count += batch.messages.len();
                bytes += batch.messages.iter().map(|m| m.raw.len()).sum::<usize>();
                if !batch.more {
                    break;
                }
            }
            session.logout().await;
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(count, mailbox_size);
            assert_eq!(bytes, total_bytes);
            println!(
                "round {round}: mss session (batches of {limit}): {count} messages in {secs:.2} s = {:.0} msg/s",
                count as f64 / secs
            );
            ours.push(count as f64 / secs);
        }
        let out = Command::new("python3")
            .arg(&python)
            .arg(s.dovecot.imap_port.to_string())
            .arg(&s.pki.root)
            .arg(ALICE)
            .env("MSS_BENCH_TOKEN", token.expose_secret())
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.trim();
        let Some((count, secs)) = line
            .split_once(' ')
            .and_then(|(c, t)| Some((c.parse::<usize>().ok()?, t.parse::<f64>().ok()?)))
        else {
            panic!("python: {line}\n{}", String::from_utf8_lossy(&out.stderr));
        };
        assert_eq!(count, mailbox_size, "python fetched {count}");
        println!(
            "round {round}: python3 imaplib (one UID FETCH 1:*): {count} messages in {secs:.2} s = {:.0} msg/s",
            count as f64 / secs
        );
        theirs.push(count as f64 / secs);
    }
    println!(
        "fetch, median of {rounds}: mss {:.0} msg/s, imaplib {:.0} msg/s",
        median(ours),
        median(theirs)
    );

    // 2b. The same mailbox through the command line (`mss sync --once`), when MSS_BIN names
    // the release binary: a whole run (CIBA login, TLS, fetch, parsing each message for the
    // summary, JSON out), next to `mss login --once` alone so the fetch part can be told.
    if let Some(mss) = std::env::var_os("MSS_BIN") {
        let config = s.dovecot.dir.join("mss.toml");
        std::fs::write(
            &config,
            format!(
                "[software]\nnil = \"BENCH\"\ndata_dir = \"data\"\n\n[tls]\nanchors = [{:?}]\n\n[psc]\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nlogin_hint = \"{ALICE}\"\n\n[[bal]]\naddress = \"{ALICE}\"\nkind = \"per\"\nimap = \"127.0.0.1:{}\"\nsmtp = \"127.0.0.1:{}\"\n",
                s.pki.root.display().to_string(),
                s.idp.issuer(),
                s.idp.client_id(),
                s.idp.client_secret(),
                s.dovecot.imap_port,
                s.postfix().submission_port
            ),
        )
        .expect("mss.toml");
        let time = |args: &[&str]| {
            let started = Instant::now();
            let out = Command::new(&mss)
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
                .expect("mss");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed().as_secs_f64()
        };
        let mut logins = Vec::new();
        let mut syncs = Vec::new();
        for round in 0..rounds {
            let login = time(&["login", "--once"]);
            let sync = time(&["sync", "--once", "--all", "--json"]);
            println!(
                "round {round}: mss login --once {login:.2} s; mss sync --once --all {sync:.2} s"
            );
            logins.push(login);
            syncs.push(sync);
        }
        let (login, sync) = (median(logins), median(syncs));
        println!(
            "mss sync, median of {rounds}: {sync:.2} s for {mailbox_size} messages, of which the login {login:.2} s: {:.0} msg/s after login",
            mailbox_size as f64 / (sync - login).max(0.001)
        );
    }

    // 3. Submitting through Postfix.
    let smtp_endpoint = Endpoint::new("127.0.0.1", s.postfix().submission_port, Security::StartTls);
    let mut smtp = SmtpSession::connect(
        &smtp_endpoint,
        tls.clone(),
        Credentials::Token {
            user: ALICE,
            token: &token,
        },
        Arc::new(NoTrace),
        SmtpOptions::new(ALICE),
    )
    .await
    .expect("smtp login");
    let outgoing: Vec<Vec<u8>> = (0..submissions)
        .map(|n| support::message(ALICE, BOB, "submitted", n))
        .collect();
    let started = Instant::now();
    for m in &outgoing {
        smtp.submit(&Envelope::new(ALICE, [BOB]), m)
            .await
            .expect("submit");
    }
    let accepted = started.elapsed().as_secs_f64();
    smtp.quit().await;
    let delivered = s
        .postfix()
        .wait_log("status=sent", submissions, Duration::from_secs(300));
    let until_delivered = started.elapsed().as_secs_f64();
    println!(
        "submit through Postfix, one session: {submissions} messages accepted in {accepted:.2} s = {:.0} msg/s; all delivered into Dovecot over LMTP after {until_delivered:.2} s{}",
        submissions as f64 / accepted,
        if delivered {
            ""
        } else {
            " (NOT ALL DELIVERED)"
        }
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Python imaplib doing the same job: STARTTLS against the same root, XOAUTH2, SELECT,
/// one UID FETCH of everything (imaplib's best case), bytes received counted.
fn python_script(s: &Servers) -> std::path::PathBuf {
    let path = s.dovecot.dir.join("imaplib_bench.py");
    std::fs::write(
        &path,
        r#"import imaplib, os, ssl, sys, time
port, root, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
token = os.environ["MSS_BENCH_TOKEN"]
started = time.monotonic()
ctx = ssl.create_default_context(cafile=root)
imap = imaplib.IMAP4("127.0.0.1", port)
imap.starttls(ctx)
imap.authenticate("XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {token}\x01\x01".encode())
imap.select("INBOX")
typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
count = sum(1 for d in data if isinstance(d, tuple))
imap.logout()
print(count, time.monotonic() - started)
"#,
    )
    .expect("python script");
    path
}
