//! X-MSS headers computed from real ANS CDA examples (`../shared/fixtures/ans/cda`).
//! Skips, saying so, when the shared fixtures are not present.

use std::path::PathBuf;

use mss_docs::cda::{CdaHeader, parse_header};
use mss_docs::headers::{InsFlag, XMssHeaders, XMssInput, code_cda, ins_flag};
use mss_model::InsKind;

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ans/cda");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("{} not present: corpus test skipped", dir.display());
        None
    }
}

fn read(dir: &std::path::Path, name: &str) -> CdaHeader {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    parse_header(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn tsh_example_gives_its_code_and_a_test_ins() {
    let Some(dir) = corpus() else { return };
    let doc = read(&dir, "BIO-CR-BIO_2024.01_TSH_1.xml");
    let code = doc.code.as_ref().unwrap().code.clone();
    let docs = [doc];
    assert_eq!(code_cda(&docs).unwrap(), Some(code));
    let ins = docs[0]
        .patient
        .ins
        .as_ref()
        .expect("the ANS example carries an INS");
    assert_eq!(ins.kind, InsKind::Test);
    // A test OID never yields O in production…
    assert_eq!(ins_flag(&docs, false), Some(InsFlag::No));
    // …and, the example carrying its key and all six traits, yields O with
    // test identities enabled.
    assert!(ins.key_valid);
    assert!(
        docs[0].patient.traits.is_complete_for_ins(),
        "{:?}",
        docs[0].patient.traits.missing_traits()
    );
    assert_eq!(ins_flag(&docs, true), Some(InsFlag::Yes));
}

#[test]
fn every_example_with_a_code_gives_a_single_line_header() {
    let Some(dir) = corpus() else { return };
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(doc) = parse_header(&bytes) else {
            continue;
        };
        seen += 1;
        let docs = [doc];
        let headers = XMssHeaders::compute(&XMssInput {
            documents: &docs,
            nil: Some("DEV935997"),
            test_identities: true,
            end_patient_exchange: false,
            recipients: &[],
        })
        .unwrap_or_else(|e| panic!("{:?}: {e}", entry.file_name()));
        for (name, value) in headers.fields() {
            assert!(
                !value.chars().any(char::is_control),
                "{:?}: {name}",
                entry.file_name()
            );
        }
        assert!(headers.ins.is_some());
    }
    assert!(seen > 50, "only {seen} CDA examples read");
}
