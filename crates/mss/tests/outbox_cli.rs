//! The outbox through the real binary against `mss sandbox`: a message that cannot be
//! sent waits and goes once the operator is back, exactly once; a bounce and an MDN
//! come back and are linked to what we sent, recipient by recipient; replacements and
//! deletions are only asked for versions we sent (UX.05.BIS).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mss-docs/tests/fixtures/cda")
        .join(name)
}

/// One configuration (one data directory) of the sandbox's mss.toml.
struct Env {
    config: PathBuf,
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mss"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("MSS_CONFIG")
            .env("MSS_AUTHOR", "dr.watson")
            .output()
            .expect("mss runs")
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mss {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out)))
    }

    fn outbox(&self) -> Vec<Value> {
        self.json(&["outbox", "--json"]).as_array().unwrap().clone()
    }

    /// `mss run --once` until `done` holds for the outbox (bounded).
    fn run_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.run(&["run", "--once", "--json"]);
            assert!(
                out.status.success(),
                "run: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let items = self.outbox();
            if done(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened: {items:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The running `mss sandbox`, killed on drop.
struct Sandbox(std::process::Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

struct World {
    _sandbox: Sandbox,
    _dir: tempfile::TempDir,
    info: Value,
    head: String,
    text: String,
    /// The professional's PSC mailbox, alone in its configuration.
    sender: Env,
    sender_address: String,
    /// The application mailbox, alone in its configuration, its store knowing the
    /// patient of `n3_default_ns.xml` (QUAL).
    recipient: Env,
    app: String,
}

impl World {
    /// The `[[bal]]` block of `address` in the sandbox's mss.toml.
    fn block(&self, address: &str) -> String {
        self.text
            .split("\n[[bal]]")
            .skip(1)
            .find(|b| b.contains(&format!("\"{address}\"")))
            .expect("the mailbox is in mss.toml")
            .to_owned()
    }

    /// Writes the sender's configuration, with `servers` added to its mailbox.
    fn write_sender(&self, servers: &str) {
        let head = self
            .head
            .replace("data_dir = \"mss-data\"", "data_dir = \"sender-data\"");
        let block = self.block(&self.sender_address);
        std::fs::write(
            &self.sender.config,
            format!("{head}\n[[bal]]{block}{servers}"),
        )
        .unwrap();
    }

    fn send(&self, args: &[&str]) -> Output {
        let mut all = vec!["send", "--bal", self.sender_address.as_str(), "--json"];
        all.extend_from_slice(args);
        self.sender.run(&all)
    }

    /// Messages in the application mailbox's INBOX with this Message-ID.
    fn copies_at_app(&self, message_id: &str) -> usize {
        let v = self
            .recipient
            .json(&["sync", "--bal", &self.app, "--once", "--all", "--json"]);
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["message_id"].as_str() == Some(message_id))
            .count()
    }
}

fn world() -> World {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(["sandbox", "--dir"])
        .arg(dir.path())
        .env_remove("MSS_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mss sandbox starts");
    let stdout = child.stdout.take().unwrap();
    let sandbox = Sandbox(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the sandbox is ready in time");
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sandbox.json")).unwrap()).unwrap();
    let bals = info["bals"].as_array().unwrap();
    let app = bals
        .iter()
        .find(|b| b["auth"] == "certificate")
        .expect("the sandbox has an application mailbox")["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let sender_address = bals
        .iter()
        .find(|b| b["auth"] == "psc")
        .expect("the sandbox has a personal mailbox")["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = std::fs::read_to_string(dir.path().join("mss.toml")).unwrap();
    let head = text.split("\n[[bal]]").next().unwrap().to_owned();
    let w = World {
        sender: Env {
            config: dir.path().join("sender.toml"),
        },
        recipient: Env {
            config: dir.path().join("recipient.toml"),
        },
        _sandbox: sandbox,
        info,
        head,
        text,
        sender_address,
        app,
        _dir: dir,
    };
    let recipient_head = w
        .head
        .replace("data_dir = \"mss-data\"", "data_dir = \"recipient-data\"");
    std::fs::write(
        &w.recipient.config,
        format!("{recipient_head}\n[[bal]]{}", w.block(&w.app)),
    )
    .unwrap();
    w.write_sender("");
    add_patient_of(&w.recipient, &fixture("n3_default_ns.xml"));
    w
}

fn add_patient_of(env: &Env, cda: &Path) {
    let v = env.json(&["cda", "inspect", cda.to_str().unwrap()]);
    let p = &v["patient"];
    let s = |k: &str| p[k].as_str().unwrap().trim().to_owned();
    let mut args = vec![
        "patient".to_owned(),
        "add".into(),
        "--json".into(),
        "--matricule".into(),
        p["ins"]["matricule"].as_str().unwrap().trim().into(),
        "--oid".into(),
        p["ins"]["oid"].as_str().unwrap().trim().into(),
        "--birth-name".into(),
        s("birth_name"),
        "--first-given-name".into(),
        s("first_given_name"),
        "--birth-date".into(),
        s("birth_date"),
        "--sex".into(),
        s("sex"),
        "--status".into(),
        "QUAL".into(),
    ];
    // Every trait the document states: an exact match files automatically.
    if let Some(g) = p["given_names"].as_str() {
        args.extend(["--given-names".into(), g.into()]);
    }
    if let Some(b) = p["birthplace_code"].as_str() {
        args.extend(["--birthplace".into(), b.into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&args);
}

fn item<'a>(items: &'a [Value], message_id: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["message_id"] == message_id)
        .unwrap_or_else(|| panic!("{message_id} not in the outbox: {items:?}"))
}

fn delivery<'a>(item: &'a Value, recipient: &str) -> Option<&'a Value> {
    item["delivery"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"].as_str() == Some(&recipient.to_ascii_lowercase()))
}

/// The operator is down: `mss send` keeps the message (exit 75) with its error; once the
/// operator is back, `mss run --once` sends it, and the recipient gets exactly one copy.
#[test]
fn a_message_sent_while_the_operator_is_down_goes_once_when_it_is_back() {
    let w = world();
    let smtp = w.info["smtp"].as_str().unwrap().to_owned();
    let imap = w.info["imap"].as_str().unwrap().to_owned();
    let closed = mss_testkit::free_port();
    w.write_sender(&format!(
        "imap = \"{imap}\"\nsmtp = \"localhost:{closed}\"\n"
    ));
    let started = Instant::now();
    let out = w.send(&[
        "--to",
        &w.app,
        "--subject",
        "Message en attente",
        "--body",
        "Bonjour",
        "--message-id",
        "down-1@outbox.test",
    ]);
    eprintln!("send while down: {:?}", started.elapsed());
    assert_eq!(
        out.status.code(),
        Some(75),
        "queued, not failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mss outbox"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state"], "queued");
    assert!(report["next_attempt"].as_i64().is_some(), "{report}");
    let items = w.sender.outbox();
    let queued = item(&items, "down-1@outbox.test");
    assert_eq!(queued["state"], "queued", "{queued}");
    assert_eq!(queued["kind"], "message");
    assert_eq!(queued["attempts"], 1);
    assert!(
        queued["last_error"].as_str().unwrap().contains("localhost"),
        "{queued}"
    );
    let text = String::from_utf8_lossy(&w.sender.ok(&["outbox"])).into_owned();
    assert!(
        text.contains("queued") && text.contains("last error"),
        "{text}"
    );

    // The operator is back; a person asks for the next attempt now rather than in 5 min.
    w.write_sender(&format!("imap = \"{imap}\"\nsmtp = \"{smtp}\"\n"));
    let out = w.sender.run(&["run", "--once"]);
    assert!(out.status.success());
    assert_eq!(
        item(&w.sender.outbox(), "down-1@outbox.test")["state"],
        "queued",
        "not due yet: mss run waits for the next attempt"
    );
    let id = queued["id"].to_string();
    w.sender.ok(&["outbox", "retry", &id]);
    let items = w.sender.run_until("the send", |items| {
        item(items, "down-1@outbox.test")["state"] == "sent"
    });
    assert_eq!(item(&items, "down-1@outbox.test")["attempts"], 1);
    // Another pass sends nothing again.
    w.sender.ok(&["run", "--once"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.copies_at_app("down-1@outbox.test") == 0 {
        assert!(Instant::now() < deadline, "never delivered");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.copies_at_app("down-1@outbox.test"), 1, "exactly one copy");
    let traces = w.sender.json(&["trace", "list", "--json"]);
    let actions: Vec<&str> = traces
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["action"].as_str().unwrap())
        .collect();
    for expected in ["message.queued", "message.sent", "outbox.retry"] {
        assert!(actions.contains(&expected), "{expected}: {actions:?}");
    }
    let sent: Vec<&Value> = traces
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["action"] == "message.sent")
        .collect();
    assert_eq!(
        sent.iter()
            .map(|t| t["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["failure", "ok"]
    );
}

/// A message to a patient Mon espace santé does not know bounces: the DSN is linked to
/// the outbox item (by ENVID or quoted headers) and shows that recipient failed, with a
/// notification; a document sent with an MDN request is filed by the recipient's engine,
/// whose MDN comes back and shows `processed`.
#[test]
fn bounces_and_mdns_come_back_to_what_we_sent() {
    let w = world();
    let unknown = "100000000000054@patient.mssante.fr";
    let out = w.send(&[
        "--to",
        unknown,
        "--subject",
        "Vos résultats",
        "--body",
        "Bonjour",
        "--dsn",
        "--message-id",
        "bounce-1@outbox.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cda = fixture("n3_default_ns.xml");
    let out = w.send(&[
        "--to",
        &w.app,
        "--request-mdn",
        "--body",
        "Compte rendu ci-joint.",
        "--message-id",
        "mdn-1@outbox.test",
        "--cda",
        cda.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The recipient's engine files the document and answers (the sandbox writes
    // Return-Path, so the MDN is automatic), in its own passes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = w.recipient.run(&["run", "--once", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let acks = w.recipient.outbox();
        if acks
            .iter()
            .any(|a| a["kind"] == "acknowledgement" && a["state"] == "sent")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recipient never answered: {acks:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let items = w.sender.run_until("both reports", |items| {
        delivery(item(items, "bounce-1@outbox.test"), unknown).is_some()
            && delivery(item(items, "mdn-1@outbox.test"), &w.app).is_some()
    });
    let bounced = delivery(item(&items, "bounce-1@outbox.test"), unknown).unwrap();
    assert_eq!(bounced["state"], "failed", "{bounced}");
    assert!(
        bounced["status"].as_str().unwrap().starts_with('5'),
        "the DSN status: {bounced}"
    );
    let mdn = delivery(item(&items, "mdn-1@outbox.test"), &w.app).unwrap();
    assert_eq!(mdn["state"], "processed", "{mdn}");
    let inbox = w.sender.json(&["inbox", "--json"]);
    let notes = inbox["notifications"].to_string();
    assert!(notes.contains("n'a pas pu être remis"), "{notes}");
    let reports = w.sender.json(&["outbox", "--reports", "--json"]);
    assert!(
        reports
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outbox"].is_i64()),
        "{reports}"
    );
    let traces = w.sender.json(&["trace", "list", "--json"]);
    let linked = traces
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["action"] == "report.linked" && t["outcome"] == "ok")
        .count();
    assert_eq!(linked, 2, "{traces}");
    let verify = w.sender.json(&["trace", "verify", "--json"]);
    assert!(verify["broken"].is_null());
}

/// UX.05.BIS: the store remembers each document sent; a replacement or a deletion is
/// refused unless it names the latest version this software sent, or `--force` says the
/// document was produced here and sent otherwise.
#[test]
fn replacements_and_deletions_only_for_versions_we_sent() {
    let w = world();
    let cda = |name| fixture(name).to_string_lossy().into_owned();
    let (v1, v2, other) = (
        cda("n3_default_ns.xml"),
        cda("n3_rplc_v2.xml"),
        cda("n3_prefixed.xml"),
    );
    let send = |args: &[&str]| {
        let mut all = vec!["--to", w.app.as_str(), "--body", "CR"];
        all.extend_from_slice(args);
        w.send(&all)
    };
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let refused = |out: Output, why: &str| {
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("refusé") && stderr.contains(why),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    };
    refused(
        send(&["--action", "replace", "--cda", &v2]),
        "n'a pas été envoyée par ce logiciel",
    );
    ok(send(&["--cda", &v1]));
    ok(send(&["--action", "replace", "--cda", &v2]));
    refused(
        send(&["--action", "replace", "--cda", &v2]),
        "n'est pas la dernière version envoyée",
    );
    refused(
        send(&["--action", "delete", "--cda", &v1]),
        "n'est pas la dernière version envoyée",
    );
    ok(send(&["--action", "delete", "--cda", &v2]));
    refused(send(&["--action", "delete", "--cda", &v2]), "suppression");
    // Produced here, sent before mss: --force lets it through, traced.
    ok(send(&["--action", "delete", "--force", "--cda", &other]));
    let docs = w.sender.json(&["outbox", "--documents", "--json"]);
    let rows: Vec<(String, String)> = docs
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|d| {
            (
                d["document_id"].as_str().unwrap().to_owned(),
                d["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 4, "{docs}");
    assert_eq!(rows[0], ("1.2.250.1.999.7.1^DOC-0001".into(), "new".into()));
    assert_eq!(
        rows[1],
        ("1.2.250.1.999.7.1^DOC-0002".into(), "replace".into())
    );
    assert_eq!(
        rows[2],
        ("1.2.250.1.999.7.1^DOC-0002".into(), "delete".into())
    );
    assert_eq!(rows[3].1, "delete");
    let first = &docs.as_array().unwrap()[3];
    assert_eq!(first["set_id"], "1.2.250.1.999.7.2^SET-0001");
    assert_eq!(first["version"], 1);
    assert_eq!(first["patient_ins"], "185057505612388");
    assert_eq!(first["outbox_state"], "sent");
    let traces = w.sender.json(&["trace", "list", "--json"]);
    assert!(
        traces
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["action"] == "document.send_unverified" && t["outcome"] == "forced"),
        "{traces}"
    );
}
