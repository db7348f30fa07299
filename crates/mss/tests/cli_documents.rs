//! The document commands end to end, through the real binary: what a host
//! software's script would run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mss-docs/tests/fixtures/cda")
        .join(name)
}

fn mss_ok(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .output()
        .expect("mss runs");
    assert!(
        out.status.success(),
        "mss {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(args: &[&str]) -> Value {
    serde_json::from_slice(&mss_ok(args)).expect("stdout is JSON")
}

#[test]
fn cda_inspect_prints_the_documented_fields() {
    let path = fixture("n3_rplc_v2.xml");
    let v = json(&["cda", "inspect", path.to_str().unwrap()]);
    assert_eq!(v["id"]["root"], "1.2.250.1.999.7.1");
    assert_eq!(v["id"]["extension"], "DOC-0002");
    assert_eq!(v["version"], 2);
    assert_eq!(v["code"]["code"], "11488-4");
    assert_eq!(v["level"], 3);
    assert_eq!(v["replaces"]["extension"], "DOC-0001");
    let patient = &v["patient"];
    assert_eq!(patient["ins"]["matricule"], "185057505612388");
    assert_eq!(patient["ins"]["kind"], "test");
    assert_eq!(patient["birth_name"], "MARTIN");
    assert_eq!(patient["birth_date"], "1985-05-12");
    assert_eq!(patient["sex"], "M");
    assert!(v["authors"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(v["custodian"].is_object());
}

#[test]
fn pack_then_inspect_gives_back_the_documents_and_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("IHE_XDM.ZIP");
    let (n1, n3) = (fixture("n1_pdf.xml"), fixture("n3_default_ns.xml"));
    mss_ok(&[
        "xdm",
        "pack",
        "--action",
        "delete",
        "--out",
        zip.to_str().unwrap(),
        n1.to_str().unwrap(),
        n3.to_str().unwrap(),
    ]);
    let v = json(&["xdm", "inspect", zip.to_str().unwrap()]);
    assert_eq!(v["action"], "D");
    let docs = v["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    for doc in docs {
        assert_eq!(doc["hash_ok"], true);
        assert_eq!(doc["size_ok"], true);
        assert!(
            doc["patient_id"]
                .as_str()
                .unwrap()
                .starts_with("185057505612388^^^")
        );
    }
    assert_eq!(docs[0]["cda"]["level"], 1);
    assert_eq!(docs[1]["cda"]["level"], 3);
}

#[test]
fn compose_is_reproducible_and_carries_the_mssante_headers() {
    let dir = tempfile::tempdir().unwrap();
    let cda = fixture("n1_pdf.xml");
    let run = |name: &str| {
        let out = dir.path().join(name);
        mss_ok(&[
            "compose",
            "--from",
            "Dr Alice Leblanc <alice.leblanc@cabinet.mssante.fr>",
            "--to",
            "185057505612388@patient.mssante.fr",
            "--cda",
            cda.to_str().unwrap(),
            "--close-patient-exchange",
            "--request-mdn",
            "--test-identities",
            "--nil",
            "MSS-TEST-NIL",
            "--message-id",
            "fixed@cabinet.mssante.fr",
            "--date",
            "1764000000",
            "--out",
            out.to_str().unwrap(),
        ]);
        std::fs::read(out).unwrap()
    };
    let (first, second) = (run("a.eml"), run("b.eml"));
    let text = String::from_utf8_lossy(&first);
    for header in [
        "X-MSS-NIL: MSS-TEST-NIL",
        "X-MSS-MES: FIN",
        "X-MSS-INS: O",
        "Disposition-Notification-To: <alice.leblanc@cabinet.mssante.fr>",
        "Subject: XDM/1.0/DDM+",
        "filename=\"IHE_XDM.ZIP\"",
    ] {
        assert!(text.contains(header), "missing {header:?} in:\n{text}");
    }
    // --date also fixes the XDM submission time: byte-identical messages.
    assert!(first == second, "two runs with the same inputs differ");
}
