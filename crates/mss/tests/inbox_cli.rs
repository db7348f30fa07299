//! The inbox commands through the real binary, each call its own process, on a SQLite
//! store in a temporary directory: patients, manual XDM import, worklist, a person's
//! decisions, documents with their versions, and the trace journal.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mss.toml");
    std::fs::write(
        &config,
        "[software]\nnil = \"NIL-TEST\"\ntest_identities = true\n\n[store]\ntrace_retention_days = 183\n",
    )
    .unwrap();
    Env { dir, config }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mss-docs/tests/fixtures/cda")
        .join(name)
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

    /// Adds the patient of `cda` with the traits the document states.
    fn add_patient_of(&self, cda: &Path, status: &str) -> Value {
        let v = self.json(&["cda", "inspect", cda.to_str().unwrap()]);
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
            status.into(),
            "--local-id".into(),
            "IPP-42".into(),
        ];
        if let Some(g) = p["given_names"].as_str() {
            args.extend(["--given-names".into(), g.into()]);
        }
        if let Some(b) = p["birthplace_code"].as_str() {
            args.extend(["--birthplace".into(), b.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.json(&args)
    }

    fn pack(&self, name: &str, cda: &[&Path], action: Option<&str>) -> PathBuf {
        let out = self.dir.path().join(name);
        let mut args = vec!["xdm", "pack", "--out", out.to_str().unwrap()];
        if let Some(a) = action {
            args.extend(["--action", a]);
        }
        for c in cda {
            args.push(c.to_str().unwrap());
        }
        self.ok(&args);
        out
    }

    fn import(&self, zip: &Path) -> Value {
        self.json(&["import-xdm", "--json", zip.to_str().unwrap()])
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("mss-data/mss.db")
    }
}

#[test]
fn a_qualified_patient_gets_the_document_once_across_processes() {
    let e = env();
    let cda = fixture("n3_default_ns.xml");
    let patient = e.add_patient_of(&cda, "QUAL");
    assert_eq!(patient["status"], "QUAL");
    assert_eq!(patient["matricule"], "185057505612388");
    let list = e.json(&["patient", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["local_ids"][0], "IPP-42");

    let zip = e.pack("v1.zip", &[&cda], None);
    let first = e.import(&zip);
    assert_eq!(first["state"], "integrated", "{first}");
    assert_eq!(first["new"], true);
    // A second process imports the same file: recognised, nothing filed again.
    let again = e.import(&zip);
    assert_eq!(again["already_decided"], true);
    assert_eq!(again["message"], first["message"]);

    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["set_id"], "1.2.250.1.999.7.2^SET-0001");
    assert_eq!(docs[0]["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        docs[0]["versions"][0]["version_id"],
        "1.2.250.1.999.7.1^DOC-0001"
    );

    let inbox = e.json(&["inbox", "--json", "--mark-read"]);
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["state"], "integrated");
    assert_eq!(items[0]["sender_kind"], "import");
    assert!(
        items[0]["patient_shown"]
            .as_str()
            .unwrap()
            .contains("MARTIN")
    );
    assert!(
        inbox["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["text"].as_str().unwrap().starts_with("Nouveau document"))
    );
    // Marked read: not shown again.
    let inbox = e.json(&["inbox", "--json"]);
    assert!(inbox["notifications"].as_array().unwrap().is_empty());
}

#[test]
fn a_proposal_waits_for_a_person_who_attaches_it() {
    let e = env();
    let cda = fixture("n3_default_ns.xml");
    let patient = e.add_patient_of(&cda, "VALI");
    let out = e.import(&e.pack("v1.zip", &[&cda], None));
    assert_eq!(out["state"], "proposed", "{out}");
    let item = out["documents"][0]["item"].as_i64().unwrap();

    let inbox = e.json(&["inbox", "--json", "--open"]);
    let row = &inbox["items"][0];
    assert_eq!(row["item"], item);
    assert_eq!(row["code"], 904, "{row}");
    assert_eq!(row["candidates"][0]["patient"], patient["id"]);

    // Nothing is filed until a person attaches it.
    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert!(docs.as_array().unwrap().is_empty());
    e.ok(&["attach", &item.to_string(), "--patient", "185057505612388"]);
    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert_eq!(docs.as_array().unwrap().len(), 1);

    let traces = e.json(&["trace", "list", "--json"]);
    let by = |action: &str| {
        traces
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("{action} traced"))
    };
    assert_eq!(by("document.attached")["author"], "dr.watson");
    // Filtered by patient: only that patient's entries.
    let id = patient["id"].to_string();
    let mine = e.json(&["trace", "list", "--json", "--patient", &id]);
    assert!(!mine.as_array().unwrap().is_empty());
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|t| t["patient"] == id.as_str())
    );
}

#[test]
fn a_deletion_asked_by_the_sender_waits_for_confirmation() {
    let e = env();
    let cda = fixture("n3_default_ns.xml");
    e.add_patient_of(&cda, "QUAL");
    let out = e.import(&e.pack("v1.zip", &[&cda], None));
    assert_eq!(out["state"], "integrated", "{out}");
    // The sender asks for the deletion: it waits for a person (auto_delete = false).
    let del = e.import(&e.pack("del.zip", &[&cda], Some("delete")));
    assert_eq!(del["state"], "deletion_to_confirm", "{del}");
    let del_item = del["documents"][0]["item"].as_i64().unwrap();
    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert_eq!(docs[0]["versions"][0]["state"], "pending_deletion");
    e.ok(&["delete-document", &del_item.to_string(), "--confirm"]);
    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert!(
        docs.as_array().unwrap().is_empty(),
        "deleted: hidden by default"
    );
    let all = e.json(&[
        "documents",
        "--matricule",
        "185057505612388",
        "--all",
        "--json",
    ]);
    assert_eq!(all[0]["deleted"], true);
    assert_eq!(all[0]["versions"][0]["state"], "deleted");

    let traces = e.json(&[
        "trace",
        "list",
        "--json",
        "--document",
        "1.2.250.1.999.7.1^DOC-0001",
    ]);
    let confirmed = traces
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["action"] == "document.deletion_confirmed")
        .expect("the confirmation is traced");
    assert_eq!(confirmed["author"], "dr.watson");
}

#[test]
fn only_the_author_or_their_organisation_may_delete_a_document() {
    let e = env();
    let cda = fixture("n3_default_ns.xml");
    e.add_patient_of(&cda, "QUAL");
    assert_eq!(
        e.import(&e.pack("v1.zip", &[&cda], None))["state"],
        "integrated"
    );
    // The same document, as if another doctor of another practice asked for its deletion.
    let original = std::fs::read_to_string(&cda).unwrap();
    let stranger = original
        .replace("810000000001", "810000000099")
        .replace("810000000002", "810000000098")
        .replace("1000000001", "1000000099");
    assert_ne!(stranger, original);
    let forged = e.dir.path().join("forged.xml");
    std::fs::write(&forged, stranger).unwrap();
    let del = e.import(&e.pack("del.zip", &[&forged], Some("delete")));
    assert_eq!(del["state"], "failed", "{del}");
    assert_eq!(del["code"], 901, "{del}");
    let docs = e.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert_eq!(docs[0]["versions"][0]["state"], "current", "{docs}");
}

#[test]
fn a_broken_archive_is_failed_with_its_code() {
    let e = env();
    let bad = e.dir.path().join("bad.zip");
    std::fs::write(&bad, b"PK\x03\x04 this is not an archive").unwrap();
    let out = e.import(&bad);
    assert_eq!(out["state"], "failed");
    assert_eq!(out["code"], 906);
    let inbox = e.json(&["inbox", "--json"]);
    assert_eq!(inbox["items"][0]["code"], 906);
    assert!(inbox["items"][0]["reason"].as_str().is_some());
    // Attaching a failed archive is refused in one line.
    let item = inbox["items"][0]["item"].to_string();
    e.add_patient_of(&fixture("n3_default_ns.xml"), "QUAL");
    let refused = e.run(&["attach", &item, "--patient", "1"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn trace_verify_passes_then_catches_a_tampered_row() {
    let e = env();
    let cda = fixture("n3_default_ns.xml");
    e.add_patient_of(&cda, "QUAL");
    e.import(&e.pack("v1.zip", &[&cda], None));
    let report = e.json(&["trace", "verify", "--json"]);
    assert!(report["broken"].is_null(), "{report}");
    assert!(report["entries"].as_u64().unwrap() >= 2, "{report}");

    let db = e.db();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let changed = sqlx::query("UPDATE traces SET outcome = 'rewritten' WHERE seq = 2")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 1);
        conn.close().await.unwrap();
    });
    let out = e.run(&["trace", "verify"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trace entry 2"), "{stderr}");
}

/// The ANS examples (when ../shared is present): an unknown patient is never filed.
#[test]
fn ans_examples_are_never_filed_for_an_unknown_patient() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ans/cda");
    if !dir.is_dir() {
        eprintln!("skipping: {} not present", dir.display());
        return;
    }
    let e = env();
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    for name in names.iter().take(12) {
        let cda = dir.join(name);
        // Some examples have a document type without a known classCode: not packable.
        let zip = e.dir.path().join(format!("{name}.zip"));
        let packed = e.run(&[
            "xdm",
            "pack",
            "--out",
            zip.to_str().unwrap(),
            cda.to_str().unwrap(),
        ]);
        if !packed.status.success() {
            continue;
        }
        let out = e.import(&zip);
        let state = out["state"].as_str().unwrap();
        assert!(state == "proposed" || state == "failed", "{name}: {out}");
        seen += 1;
    }
    assert!(seen > 0, "no ANS example found in {}", dir.display());
    let inbox = e.json(&["inbox", "--json"]);
    for item in inbox["items"].as_array().unwrap() {
        let code = item["code"].as_u64().unwrap();
        assert!((900..=906).contains(&code), "{item}");
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

/// A started sandbox, and a recipient configuration with only its application mailbox,
/// whose store already knows the patient of `n3_default_ns.xml` (QUAL).
struct World {
    _sandbox: Sandbox,
    dir: tempfile::TempDir,
    recipient: Env,
    app: String,
    sender: String,
}

impl World {
    /// `mss send` from the personal mailbox to the application mailbox, MDN asked.
    fn send(&self) {
        let sent = Command::new(env!("CARGO_BIN_EXE_mss"))
            .arg("--config")
            .arg(self.dir.path().join("mss.toml"))
            .args([
                "send",
                "--bal",
                &self.sender,
                "--to",
                &self.app,
                "--request-mdn",
                "--json",
            ])
            .args(["--body", "Compte rendu ci-joint.", "--cda"])
            .arg(fixture("n3_default_ns.xml"))
            .env_remove("MSS_CONFIG")
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "send: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }
}

fn world() -> World {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;
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
        .expect("the sandbox has an application mailbox");
    let sender = bals
        .iter()
        .find(|b| b["auth"] == "psc")
        .expect("the sandbox has a personal mailbox");
    let app_address = app["address"].as_str().unwrap();
    let sender_address = sender["address"].as_str().unwrap();

    // The recipient's configuration: the sandbox's, with only the application mailbox and
    // its own data directory (written beside it, so relative paths still hold).
    let text = std::fs::read_to_string(dir.path().join("mss.toml")).unwrap();
    let mut parts = text.split("\n[[bal]]");
    let head = parts
        .next()
        .unwrap()
        .replace("data_dir = \"mss-data\"", "data_dir = \"recipient-data\"");
    let block = parts
        .find(|b| b.contains(&format!("\"{app_address}\"")))
        .expect("the application mailbox is in mss.toml");
    let recipient = Env {
        config: dir.path().join("recipient.toml"),
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(&recipient.config, format!("{head}\n[[bal]]{block}")).unwrap();
    let cda = fixture("n3_default_ns.xml");
    recipient.add_patient_of(&cda, "QUAL");
    World {
        _sandbox: sandbox,
        dir,
        recipient,
        app: app_address.to_owned(),
        sender: sender_address.to_owned(),
    }
}

/// `mss run --once` against the sandbox's operator: a professional sends a document with
/// `mss send`, the application mailbox runs, files it for the qualified patient, and the
/// exchanges with the operator are in the trace journal.
#[test]
fn run_once_files_a_message_delivered_by_the_sandbox() {
    use std::time::{Duration, Instant};
    let w = world();
    let recipient = &w.recipient;
    let app_address = w.app.as_str();
    w.send();
    // Delivery is asynchronous: run until the message is there (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let out = recipient.run(&["run", "--once", "--json"]);
        assert!(
            out.status.success(),
            "run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if !lines.is_empty() {
            break lines;
        }
        assert!(Instant::now() < deadline, "the message never arrived");
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("mss run --once: {lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["state"], "integrated", "{lines:?}");
    assert_eq!(lines[0]["mailbox"], app_address);
    let docs = recipient.json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert_eq!(docs.as_array().unwrap().len(), 1);

    // A second pass fetches nothing new and files nothing twice.
    let out = recipient.run(&["run", "--once", "--json"]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let traces = recipient.json(&["trace", "list", "--json", "--mailbox", app_address]);
    let actions: Vec<&str> = traces
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.iter().any(|a| a.starts_with("transport.")),
        "{actions:?}"
    );
    assert!(actions.contains(&"document.integrated"), "{actions:?}");
    // The sandbox writes no Return-Path on delivery, so the MDN asked for is offered to a
    // person rather than sent automatically (RFC 8098 §2.1): the person agrees, the next
    // pass submits it.
    if lines[0]["acknowledgement_offered"] == true {
        let item = lines[0]["documents"][0]["item"].to_string();
        recipient.ok(&["acknowledge", &item]);
        let again = recipient.run(&["acknowledge", &item]);
        assert!(!again.status.success(), "queued once only");
        let out = recipient.run(&["run", "--once", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let traces = recipient.json(&["trace", "list", "--json", "--mailbox", app_address]);
    if lines[0]["acknowledgements_queued"] == 1 || lines[0]["acknowledgement_offered"] == true {
        let sent = traces
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["action"] == "ack.sent")
            .expect("the queued MDN was submitted");
        assert_eq!(sent["outcome"], "ok", "{sent}");
    }
    let verify = recipient.json(&["trace", "verify", "--json"]);
    assert!(verify["broken"].is_null());
}

/// `mss run` without `--once` stays and follows the mailbox: a message sent while it runs
/// is filed as it arrives (IDLE), one JSON line each.
#[test]
fn run_follows_the_mailbox_and_files_what_arrives() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;
    let w = world();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .arg("--config")
        .arg(&w.recipient.config)
        .args(["run", "--json"])
        .env_remove("MSS_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Sandbox(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Let the catch-up pass end and the IDLE start, then send.
    std::thread::sleep(Duration::from_secs(2));
    w.send();
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the message is filed while mss run follows");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["state"], "integrated", "{v}");
    assert_eq!(v["mailbox"], w.app.as_str());
    drop(running);
    let docs = w
        .recipient
        .json(&["documents", "--matricule", "185057505612388", "--json"]);
    assert_eq!(docs.as_array().unwrap().len(), 1);
}
