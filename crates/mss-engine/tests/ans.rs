//! The engine over the ANS examples in `../shared/fixtures/ans/` (skipped,
//! with a notice, when that directory is absent): the Microbiologie V1/V2
//! pair, the RIS initial / replacement / deletion triplet, and every CDA of
//! the corpus packed alone.

mod support;

use std::path::{Path, PathBuf};

use mss_docs::cda::parse_header;
use mss_docs::xdm::{self, Action as XdmAction, PackRequest, SubmissionTime, XdmInput};
use mss_engine::matching::LocalPatient;
use mss_engine::process::{
    Action, DocumentOutcome, Input, Options, Processed, State, apply_to_history, process,
};
use mss_engine::versions::{HeldState, HeldVersion};
use mss_model::IdentityStatus;
use support::*;

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ans");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared not present ({})", dir.display());
        None
    }
}

fn read(base: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(base.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn import(
    zip: &[u8],
    patients: &[LocalPatient],
    history: &[HeldVersion],
    options: &Options,
) -> Processed {
    let state = State {
        patients,
        history,
        acknowledged: false,
    };
    process(Input::Import { zip }, &state, options).expect("an import never fails to classify")
}

fn apply(history: &mut Vec<HeldVersion>, p: &Processed) {
    for a in &p.actions {
        apply_to_history(history, a);
    }
}

#[test]
fn microbiologie_v1_then_v2() {
    let Some(base) = shared() else { return };
    let v1 = read(&base, "cda/BIO-CR-BIO_2024.01_Microbiologie_V1.xml");
    let v2 = read(&base, "cda/BIO-CR-BIO_2024.01_Microbiologie_V2.xml");
    let patients = [patient("P1", IdentityStatus::Qual)];
    let mut history = Vec::new();

    let (zip, _) = xdm_of(&[v1], None);
    let p = import(&zip, &patients, &history, &options());
    assert_eq!(
        p.documents[0].outcome,
        DocumentOutcome::Filed {
            patient: "P1".into()
        }
    );
    apply(&mut history, &p);

    // As published, V2 replaces a version (…12345.13) that is not V1: 900.
    let (zip, _) = xdm_of(std::slice::from_ref(&v2), Some(XdmAction::Replace));
    let p = import(&zip, &patients, &history, &options());
    assert_eq!(
        p.documents[0].outcome.error_code().map(|c| c.code()),
        Some(900)
    );

    // With its parent pointing at V1, it is V1's next version.
    let fixed = String::from_utf8(v2).unwrap().replace(
        "1.2.250.1.213.1.1.1.55.12345.13",
        "1.2.250.1.213.1.1.1.55.2024.8.1",
    );
    let (zip, _) = xdm_of(&[fixed.into_bytes()], Some(XdmAction::Replace));
    let p = import(&zip, &patients, &history, &options());
    assert_eq!(
        p.documents[0].outcome,
        DocumentOutcome::Replaced {
            patient: "P1".into(),
            previous: id("1.2.250.1.213.1.1.1.55.2024.8.1")
        }
    );
    apply(&mut history, &p);
    let states: Vec<HeldState> = history.iter().map(|h| h.state).collect();
    assert_eq!(states, [HeldState::Superseded, HeldState::Current]);
}

#[test]
fn ris_initial_replacement_deletion() {
    let Some(base) = shared() else { return };
    let initial = read(&base, "hl7v2/RIS/transmission_initiale_cr_imagerie.xml");
    let replacement = read(&base, "hl7v2/RIS/remplacement_cr_imagerie.xml");
    let deletion = read(&base, "hl7v2/RIS/suppression_cr_imagerie.xml");

    // The triplet's traits differ from the other examples for the same INS
    // (birthplace 63220, one given name): the usual record must not match.
    let usual = [patient("P1", IdentityStatus::Qual)];
    let (zip, _) = xdm_of(std::slice::from_ref(&initial), None);
    let p = import(&zip, &usual, &[], &options());
    assert_eq!(
        p.documents[0].outcome.error_code().map(|c| c.code()),
        Some(904)
    );
    let DocumentOutcome::Proposed { candidates, .. } = &p.documents[0].outcome else {
        panic!("{:?}", p.documents[0].outcome)
    };
    assert_eq!(
        candidates[0].patient, "P1",
        "the same-INS record is offered first"
    );

    let mut record = patient("P9", IdentityStatus::Qual);
    record.traits.given_names = Some("DOMINIQUE".into());
    record.traits.birthplace_code = Some("63220".into());
    let patients = [record];
    let options = Options {
        auto_delete: true,
        ..options()
    };
    let mut history = Vec::new();
    for (bytes, action, expected) in [
        (initial, None, "filed"),
        (replacement, Some(XdmAction::Replace), "replaced"),
        (deletion, Some(XdmAction::Delete), "deleted"),
    ] {
        let (zip, _) = xdm_of(&[bytes], action);
        let p = import(&zip, &patients, &history, &options);
        let got = match &p.documents[0].outcome {
            DocumentOutcome::Filed { .. } => "filed",
            DocumentOutcome::Replaced { .. } => "replaced",
            DocumentOutcome::Deleted { .. } => "deleted",
            other => panic!("{expected}: {other:?}"),
        };
        assert_eq!(got, expected);
        apply(&mut history, &p);
    }
    let states: Vec<HeldState> = history.iter().map(|h| h.state).collect();
    assert_eq!(states, [HeldState::Superseded, HeldState::Deleted]);
}

/// Every example, packed alone and received by a base with no patient:
/// nothing is filed, nothing panics, each gets a volet code. (33 of the
/// examples pack: the others have a type with no known classCode.)
#[test]
fn corpus_never_files_without_a_patient() {
    let Some(base) = shared() else { return };
    let mut names: Vec<_> = std::fs::read_dir(base.join("cda"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
        .collect();
    names.sort();
    let mut packed = 0;
    for path in names {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(header) = parse_header(&bytes) else {
            continue;
        };
        let request = PackRequest::new(
            SubmissionTime::parse("20251124160000").unwrap(),
            "1.2.250.1.999.7",
        );
        let Ok(zip) = xdm::write(&[XdmInput::new(&bytes, &header)], &request) else {
            continue;
        };
        packed += 1;
        let p = import(&zip, &[], &[], &options());
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::StoreVersion { .. })),
            "{}",
            path.display()
        );
        let code = p.documents[0].outcome.error_code().map(|c| c.code());
        assert!(
            matches!(code, Some(900..=906)),
            "{}: {code:?}",
            path.display()
        );
    }
    assert!(packed >= 30, "only {packed} examples could be packed");
}
