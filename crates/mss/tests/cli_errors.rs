//! Bad input on the command line: a non-zero exit and exactly one line on
//! stderr that names the problem — never a panic or a backtrace.

use std::path::Path;
use std::process::{Command, Output};

fn mss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("mss runs")
}

/// Asserts a clean failure and returns its single stderr line.
fn one_line_failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure, got success");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(!stderr.contains("internal error"), "panic: {stderr}");
    lines[0].to_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn missing_file_names_the_file() {
    let line = one_line_failure(&mss(&["cda", "inspect", "/nonexistent/doc.xml"]));
    assert!(line.contains("/nonexistent/doc.xml"), "{line}");
}

#[test]
fn a_directory_is_not_a_document() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_line_failure(&mss(&["cda", "inspect", dir.path().to_str().unwrap()]));
    assert!(line.contains("not a file"), "{line}");
}

#[test]
fn hostile_or_wrong_xml_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("malformed.xml", b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><id root=\"1\"/>", "malformed"),
        (
            "xxe.xml",
            b"<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><ClinicalDocument xmlns=\"urn:hl7-org:v3\">&x;</ClinicalDocument>",
            "DTD",
        ),
        ("other.xml", b"<html><body/></html>", "CDA"),
        ("binary.xml", b"\xff\xfe\x00\x01garbage", "UTF-8"),
    ];
    for (name, bytes, expected) in cases {
        let path = write(dir.path(), name, bytes);
        let line = one_line_failure(&mss(&["cda", "inspect", &path]));
        assert!(line.contains(expected), "{name}: {line}");
    }
}

#[test]
fn not_a_zip_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "fake.zip",
        b"PK\x03\x04 this is not really a zip",
    );
    one_line_failure(&mss(&["xdm", "inspect", &path]));
}

/// Runs `mss compose` from and to professional addresses with `extra`
/// arguments; asserts a one-line failure that wrote no file, and returns it.
fn refused_compose(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.eml");
    let output = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args([
            "compose",
            "--from",
            "a@x.mssante.fr",
            "--to",
            "b@y.mssante.fr",
        ])
        .args(extra)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let line = one_line_failure(&output);
    assert!(
        !out.exists(),
        "a refused message must not be written: {line}"
    );
    line
}

#[test]
fn compose_without_nil_is_refused() {
    let line = refused_compose(&["--nil", " "]);
    assert!(line.contains("NIL"), "{line}");
}

#[test]
fn fin_without_a_patient_recipient_is_refused() {
    let line = refused_compose(&["--close-patient-exchange", "--nil", "REF"]);
    assert!(line.contains("FIN"), "{line}");
}
