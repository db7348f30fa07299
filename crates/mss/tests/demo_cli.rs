//! `mss demo` through the real binary, in a temporary working directory: the sandbox and
//! mss in one process, mails from other professionals filed by the engine. The store is
//! read back with `mss inbox --json` / `documents --json`, the MDNs in the senders'
//! sandbox mailboxes, and a second start must add nothing.

use mss_docs::mdn::{DispositionType, parse_mdn};
use mss_sandbox::operator::mailstore::{INBOX, MailStore};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound for one `mss demo --once` (seconds are expected; a hang is a failure).
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);
const CONFIG: &str = "mss-demo/mss.toml";
const PAT_TROIS: &str = "279035121518989";
const DURAND_V1: &str = "demo-01-cr-durand@sandbox.mssante.fr";
const PETIT: &str = "demo-02-cr-petit@operateur2.sandbox.mssante.fr";
const UNKNOWN: &str = "demo-06-cr-lefebvre@sandbox.mssante.fr";

fn mss(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mss"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("MSS_CONFIG")
        .env("MSS_AUTHOR", "demo.test")
        .stdin(Stdio::null());
    command
}

/// Runs to completion within [`DEMO_TIMEOUT`], killing the process otherwise.
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss starts");
    // Drain stdout on a thread so a full pipe never blocks the child.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut BufReader::new(stdout), &mut out).ok();
        out
    });
    let deadline = Instant::now() + DEMO_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("mss did not finish within {DEMO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut output = child.wait_with_output().expect("output");
    output.stdout = reader.join().unwrap();
    output
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--config", CONFIG];
    all.extend_from_slice(args);
    let out = ok(&run(mss(dir, &all)), &format!("mss {args:?}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn matricule(index: usize) -> String {
    mss_sandbox::identities::patients().unwrap()[index]
        .matricule
        .clone()
}

/// The worklist item whose patient (as shown) contains `who`.
fn item_for<'a>(inbox: &'a Value, who: &str) -> &'a Value {
    inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["patient_shown"].as_str().is_some_and(|p| p.contains(who)))
        .unwrap_or_else(|| panic!("no worklist item for {who}: {inbox:#}"))
}

/// The MDNs in `address`'s INBOX of the sandbox mail store `mail`, by original Message-ID.
fn mdns(mail: &Path, address: &str) -> Vec<mss_docs::mdn::Mdn> {
    let store = MailStore::open(mail).unwrap();
    store
        .messages(address, INBOX)
        .unwrap()
        .iter()
        .filter_map(|m| parse_mdn(&store.read(address, INBOX, m.uid).unwrap()).ok())
        .collect()
}

fn mdn_for<'a>(all: &'a [mss_docs::mdn::Mdn], id: &str) -> &'a mss_docs::mdn::Mdn {
    let found: Vec<_> = all
        .iter()
        .filter(|m| {
            m.original_message_id
                .as_deref()
                .is_some_and(|o| o.contains(id))
        })
        .collect();
    assert_eq!(found.len(), 1, "one MDN for {id}: {all:#?}");
    found[0]
}

#[test]
fn demo_once_files_every_case_answers_mdns_and_a_second_start_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let started = Instant::now();
    let first = ok(&run(mss(dir, &["demo", "--once"])), "mss demo --once");
    eprintln!("mss demo --once (first start): {:?}", started.elapsed());
    assert!(first.contains("Liste de travail"), "{first}");
    assert!(first.contains("trace verify"), "the guide: {first}");

    let (durand, petit, roux) = (matricule(0), matricule(1), matricule(2));
    let patients = json(dir, &["patient", "list", "--json"]);
    let patients = patients.as_array().unwrap();
    assert_eq!(patients.len(), 4, "{patients:#?}");
    let status = |m: &str| {
        patients
            .iter()
            .find(|p| p["matricule"] == m)
            .map(|p| p["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status(&durand).as_deref(), Some("QUAL"));
    assert_eq!(status(PAT_TROIS).as_deref(), Some("VALI"));

    // Known patients: filed; the replacement kept both versions.
    let docs = json(dir, &["documents", "--matricule", &durand, "--json"]);
    assert_eq!(docs.as_array().unwrap().len(), 1, "{docs:#}");
    let versions = docs[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{docs:#}");
    let states: Vec<&str> = versions
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"current") && states.contains(&"replaced"),
        "{states:?}"
    );
    let docs = json(dir, &["documents", "--matricule", &petit, "--json"]);
    assert_eq!(docs.as_array().unwrap().len(), 1, "{docs:#}");
    assert_eq!(docs[0]["versions"][0]["state"], "current");
    // The deletion waits for a person.
    let docs = json(dir, &["documents", "--matricule", &roux, "--json"]);
    assert_eq!(
        docs[0]["versions"][0]["state"], "pending_deletion",
        "{docs:#}"
    );

    let inbox = json(dir, &["inbox", "--json"]);
    let items = inbox["items"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["state"] == "deletion_to_confirm"
            && i["patient_shown"].as_str().unwrap_or("").contains("ROUX")),
        "{inbox:#}"
    );
    let unknown = item_for(&inbox, "LEFEBVRE");
    assert!(
        ["proposed", "failed"].contains(&unknown["state"].as_str().unwrap()),
        "{unknown:#}"
    );
    assert_eq!(unknown["code"], 902, "{unknown:#}");
    let vali = item_for(&inbox, "PAT-TROIS");
    assert_eq!(vali["state"], "proposed", "{vali:#}");
    assert_eq!(vali["code"], 904, "{vali:#}");
    assert_eq!(vali["candidates"][0]["matricule"], PAT_TROIS, "{vali:#}");
    let broken: Vec<&Value> = items.iter().filter(|i| i["code"] == 906).collect();
    assert_eq!(broken.len(), 1, "{inbox:#}");
    assert_eq!(broken[0]["state"], "failed");
    // The XDM/1.0/DDM+ prefix is never shown, even on a message that could not be read (UX.28).
    assert!(
        broken[0]["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("CR de consultation")),
        "{:#}",
        broken[0]
    );
    // A patient's message shows the patient by name and INS (SC.MSS/UX.31).
    let from_patient = items
        .iter()
        .find(|i| i["sender_kind"] == "patient")
        .unwrap_or_else(|| panic!("no patient message: {inbox:#}"));
    let shown = from_patient["sender_shown"].as_str().unwrap();
    assert!(
        shown.contains("DURAND") && shown.contains(&durand),
        "{shown}"
    );
    assert!(
        items.iter().filter(|i| i["state"] == "integrated").count() >= 3,
        "{inbox:#}"
    );

    // MDNs went back over the real SMTP path: to the first operator's mailbox, and across
    // the hop to the second operator's.
    let sandbox = dir.join("mss-demo/sandbox");
    let jeanne = mdns(
        &sandbox.join("operator/mail"),
        "jeanne.martin@sandbox.mssante.fr",
    );
    let ok_mdn = mdn_for(&jeanne, DURAND_V1);
    assert_eq!(ok_mdn.disposition.kind, DispositionType::Processed);
    assert!(!ok_mdn.is_failure(), "{ok_mdn:#?}");
    let karim = mdns(
        &sandbox.join("operator/mail"),
        "karim.benali@sandbox.mssante.fr",
    );
    assert_eq!(
        mdn_for(&karim, UNKNOWN)
            .failure
            .as_ref()
            .and_then(|f| f.code),
        Some(902)
    );
    let karim2 = mdns(
        &sandbox.join("operator2/mail"),
        "karim.benali@operateur2.sandbox.mssante.fr",
    );
    assert!(!mdn_for(&karim2, PETIT).is_failure());

    let verified = run(mss(dir, &["--config", CONFIG, "trace", "verify"]));
    ok(&verified, "mss trace verify");

    // A second start in the same directory adds nothing twice.
    let second = ok(
        &run(mss(dir, &["demo", "--once"])),
        "second mss demo --once",
    );
    assert!(second.contains("0 patient(s)"), "{second}");
    assert!(second.contains("0 courrier(s)"), "{second}");
    let again = json(dir, &["inbox", "--json"]);
    assert_eq!(
        again["items"].as_array().unwrap().len(),
        items.len(),
        "{again:#}"
    );
    assert_eq!(
        json(dir, &["patient", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        mdns(
            &sandbox.join("operator/mail"),
            "jeanne.martin@sandbox.mssante.fr"
        )
        .len(),
        jeanne.len()
    );
    ok(
        &run(mss(dir, &["--config", CONFIG, "trace", "verify"])),
        "mss trace verify (second)",
    );
}

#[test]
fn demo_follows_new_mail_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = mss(tmp.path(), &["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss demo starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &dyn Fn(&str) -> bool, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = what(&line);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    child.kill().ok();
                    panic!("not printed in time; output so far:\n{}", seen.join("\n"));
                }
            }
        }
    };
    wait_for(&|l| l.contains("Liste de travail"), DEMO_TIMEOUT);
    wait_for(&|l| l.contains("Ctrl-C"), Duration::from_secs(10));
    // The demo's own later mail arrives over IDLE and is filed and printed.
    wait_for(
        &|l| l.starts_with("Nouveau courrier"),
        Duration::from_secs(30),
    );
    wait_for(
        &|l| l.contains("dpi@sandbox.mssante.fr UID") && l.contains("integrated"),
        Duration::from_secs(30),
    );

    let pid = child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("mss demo did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).ok();
    assert!(status.success(), "exit {status:?}: {stderr}");
}
