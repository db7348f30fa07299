//! `mss sandbox` as a user runs it, and mss's own clients against it: the PSC login
//! (`mss login --once`, CIBA) and autoconfiguration read the sandbox's mss.toml. The
//! sandbox is an independent implementation, so these prove interoperability both ways.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The running `mss sandbox`, killed on drop.
struct Running {
    child: Child,
    started_in: Duration,
    summary: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start(dir: &Path) -> Running {
    let begun = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(["sandbox", "--dir"])
        .arg(dir)
        .env_remove("MSS_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mss starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut summary = String::new();
    let mut running = Running {
        child,
        started_in: Duration::ZERO,
        summary: String::new(),
    };
    loop {
        let line = rx
            .recv_timeout(TIMEOUT)
            .expect("mss sandbox prints its summary in time");
        summary.push_str(&line);
        summary.push('\n');
        if line.contains("Ctrl-C") {
            break;
        }
    }
    running.started_in = begun.elapsed();
    running.summary = summary;
    running
}

fn run(config: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MSS_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss starts");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("mss {args:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "mss failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn mss_logs_in_by_ciba_and_finds_its_servers_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start(dir.path());
    eprintln!(
        "mss sandbox ready in {:?} (first start, debug build)",
        sandbox.started_in
    );
    assert!(
        sandbox.summary.contains("Pro Santé Connect") && sandbox.summary.contains("sandbox ready")
    );
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sandbox.json")).unwrap()).unwrap();
    let config = Path::new(info["config"].as_str().unwrap());

    // mss's real PSC client (mss-psc) against the simulator: discovery, CIBA, ID token.
    let login = json(&run(config, &["login", "--once"]));
    assert_eq!(login["logged_in"], true);
    assert_eq!(login["subject"], "899700000001");
    assert_eq!(login["email"], "jeanne.martin@sandbox.mssante.fr");
    assert_eq!(login["acr"], "eidas1");

    // mss's autoconfiguration reads the sandbox's XML and keeps its STARTTLS ports.
    let found = json(&run(
        config,
        &["autoconfig", "karim.benali@sandbox.mssante.fr", "--json"],
    ));
    let text = found.to_string();
    assert!(text.contains("autoconfig_xml"), "{text}");
    let imap = info["operator_ports"]["imap"].as_u64().unwrap();
    let smtp = info["operator_ports"]["smtp"].as_u64().unwrap();
    assert!(
        text.contains(&format!("localhost:{imap}")) || text.contains(&format!("\"port\":{imap}")),
        "{text}"
    );
    assert!(text.contains(&smtp.to_string()), "{text}");
}

#[test]
fn a_second_start_reuses_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    assert!(first.summary.contains("PKI"), "{}", first.summary);
    let root = std::fs::read(dir.path().join("pki/root.pem")).unwrap();
    drop(first);
    let second = start(dir.path());
    eprintln!(
        "mss sandbox ready in {:?} (second start, debug build)",
        second.started_in
    );
    assert!(
        !second.summary.contains("PKI created"),
        "{}",
        second.summary
    );
    assert_eq!(
        std::fs::read(dir.path().join("pki/root.pem")).unwrap(),
        root
    );
}

/// The sandbox's PKI and tokens in front of a real Dovecot: Dovecot presents the sandbox
/// server certificate, validates the simulator's JWTs locally with its public key (typ
/// JWT, issuer, expiry, email = mailbox) and takes EXTERNAL from the AUTH_CLI certificate;
/// mss reads both mailboxes with the sandbox's mss.toml plus the servers' ports.
#[test]
fn sandbox_credentials_open_a_real_dovecot_for_psc_and_app_mailboxes() {
    use mss_testkit::dovecot::{Dovecot, DovecotConfig, OAuth2};
    let dir = tempfile::tempdir().unwrap();
    let _sandbox = start(dir.path());
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sandbox.json")).unwrap()).unwrap();
    let path = |v: &Value| std::path::PathBuf::from(v.as_str().unwrap());
    let psc = &info["psc"];
    let keys = dir.path().join("dovecot-keys");
    let key_file = keys
        .join(psc["client_id"].as_str().unwrap())
        .join("RS256")
        .join(psc["kid"].as_str().unwrap());
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::copy(path(&psc["public_key_pem"]), &key_file).unwrap();
    let mut config = DovecotConfig::new(
        &path(&info["pki"]["server_chain_pem"]),
        &path(&info["pki"]["server_key_pem"]),
        &dir.path().join("pki/ca-bundle.pem"),
    );
    config.oauth2 = Some(OAuth2 {
        key_dir: keys,
        issuers: vec![psc["issuer"].as_str().unwrap().to_owned()],
        username_attribute: "email".into(),
    });
    let Some(dovecot) = Dovecot::start_or_skip(config) else {
        return;
    };

    // The sandbox's mss.toml, with the Dovecot ports instead of autoconfiguration.
    let servers = format!(
        "imap = \"127.0.0.1:{}\"\nsmtp = \"127.0.0.1:{}\"\n",
        dovecot.imap_port, dovecot.submission_port
    );
    let mut toml = std::fs::read_to_string(dir.path().join("mss.toml")).unwrap();
    for address in ["jeanne.martin@sandbox.mssante.fr", "dpi@sandbox.mssante.fr"] {
        let line = format!("address = \"{address}\"\n");
        toml = toml.replace(&line, &format!("{line}{servers}"));
    }
    let config = dir.path().join("mss-dovecot.toml");
    std::fs::write(&config, toml).unwrap();

    for (address, subject) in [
        ("jeanne.martin@sandbox.mssante.fr", "pour Jeanne"),
        ("dpi@sandbox.mssante.fr", "pour le DPI"),
    ] {
        let message = format!(
            "From: <karim.benali@sandbox.mssante.fr>\r\nTo: <{address}>\r\nSubject: {subject}\r\nMessage-ID: <{id}@sandbox>\r\n\r\nBonjour.\r\n",
            id = subject.replace(' ', "-"),
        );
        dovecot.deliver(address, message.as_bytes()).unwrap();
        let output = run(&config, &["sync", "--bal", address, "--once", "--json"]);
        assert!(
            output.status.success(),
            "mss sync {address} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            dovecot.logs()
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let messages = report["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{report}");
        assert_eq!(messages[0]["subject"], subject, "{report}");
    }
    let log = dovecot.logs();
    assert!(
        log.contains("Local validation succeeded") || log.contains("jeanne.martin"),
        "{log}"
    );
}

/// One HTTP/1.1 exchange over a plain socket (the test plays the browser; no client crate
/// that mss also uses). Returns the status line, the head and the body.
fn browser(method: &str, url: &str, body: &str) -> (String, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn mss_logs_in_through_the_french_login_page_with_pkce() {
    let dir = tempfile::tempdir().unwrap();
    let _sandbox = start(dir.path());
    let toml = std::fs::read_to_string(dir.path().join("mss.toml"))
        .unwrap()
        .replace("flow = \"ciba\"", "flow = \"code\"");
    let config = dir.path().join("mss-code.toml");
    std::fs::write(&config, toml).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .arg("--config")
        .arg(&config)
        .args(["login", "--once"])
        .env_remove("MSS_CONFIG")
        // No browser opener: mss prints the address and waits, which is what we want.
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let login_url = loop {
        let line = rx
            .recv_timeout(TIMEOUT)
            .expect("mss prints the login address");
        if line.starts_with("http://") {
            break line;
        }
    };
    let (status, _, page) = browser("GET", &login_url, "");
    assert!(status.contains("200"), "{status}\n{page}");
    assert!(page.contains("Pro Santé Connect") && page.contains("Karim BENALI"));
    let request = page
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("request id in the page");
    let issuer = login_url.split("/auth?").next().unwrap();
    let (status, head, _) = browser(
        "POST",
        &format!("{issuer}/auth/login"),
        &format!("request={request}&professional=899700000002"),
    );
    assert!(status.contains("303"), "{status}");
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("redirect")
        .trim()
        .to_owned();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let (status, _, _) = browser("GET", &location, "");
    assert!(
        status.contains("200"),
        "mss's loopback listener answers: {status}"
    );

    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mss login did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let login = json(&output);
    assert_eq!(login["subject"], "899700000002");
    assert_eq!(login["email"], "karim.benali@sandbox.mssante.fr");
}

/// `mss conformance` with mss as the client: every check passes, each names its
/// requirements and shows the recorded lines that prove it.
#[test]
fn conformance_passes_every_check_with_mss_as_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let begun = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(["conformance", "--json", "--sandbox"])
        .arg(dir.path())
        .env_remove("MSS_CONFIG")
        .output()
        .unwrap();
    let results: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{results:#}");
    let results = results.as_array().unwrap();
    assert!(results.len() >= 15, "{results:#?}");
    for r in results {
        assert_eq!(r["status"], "passed", "{r:#}");
        assert!(!r["requirements"].as_array().unwrap().is_empty(), "{r:#}");
        assert!(!r["evidence"].as_array().unwrap().is_empty(), "{r:#}");
    }
    eprintln!("conformance run in {:?}", begun.elapsed());
}

/// With another software as the client, a step nobody acts on is reported as not seen,
/// and the run fails.
#[test]
fn conformance_with_an_idle_client_fails_and_says_what_was_not_seen() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args([
            "conformance",
            "--client",
            "other",
            "--wait",
            "1",
            "--step",
            "application-mailbox",
            "--sandbox",
        ])
        .arg(dir.path())
        .env_remove("MSS_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("NON VU") && stdout.contains("external-app"),
        "{stdout}"
    );
    assert!(
        stderr.contains("BAL applicative"),
        "the instruction is shown: {stderr}"
    );
    assert!(stderr.contains("did not pass"), "{stderr}");
}

/// mss against the sandbox's own operators, nothing else: a document sent from the first
/// operator to a mailbox of the second crosses the SMTP hop, and `mss sync` reads it
/// there with the configuration the sandbox wrote (explicit servers for the second domain).
#[test]
fn mss_sends_across_the_two_operators_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let _sandbox = start(dir.path());
    let config = dir.path().join("mss.toml");
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sandbox.json")).unwrap()).unwrap();
    let to = info["second_operator"]["bals"][0]["address"]
        .as_str()
        .unwrap();
    let cda = info["documents"][0].as_str().unwrap();
    let sent = run(
        &config,
        &[
            "send",
            "--bal",
            "jeanne.martin@sandbox.mssante.fr",
            "--to",
            to,
            "--cda",
            cda,
            "--json",
        ],
    );
    let receipt = json(&sent);
    let message_id = receipt["message_id"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    let read = json(&run(
        &config,
        &["sync", "--bal", to, "--once", "--json", "--all"],
    ));
    let text = read.to_string();
    assert!(text.contains("XDM/1.0/DDM+"), "{text}");
    assert!(text.contains(&message_id), "{message_id} in {text}");
}
