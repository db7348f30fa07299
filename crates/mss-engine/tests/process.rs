//! The engine end to end on messages built by mss-docs: every case of the
//! decision table (docs/engine.md), the acknowledgement it produces, and
//! the history after the shell applies the actions.

mod support;

use mss_docs::mdn::{ErrorCode, MdnOutcome, MdnRequest, build_mdn, parse_mdn};
use mss_docs::message::parse_incoming;
use mss_docs::xdm::Action as XdmAction;
use mss_engine::acknowledge::{self, AckContext, AckPlan, FailureNotice, NoAckReason};
use mss_engine::matching::LocalPatient;
use mss_engine::process::{
    Action, DocumentOutcome, Input, Notification, Options, Processed, State, apply_to_history,
    process,
};
use mss_engine::versions::{HeldState, HeldVersion, Origin};
use mss_model::IdentityStatus;
use support::*;

fn run(
    raw: &[u8],
    patients: &[LocalPatient],
    history: &[HeldVersion],
    options: &Options,
) -> Processed {
    let state = State {
        patients,
        history,
        acknowledged: false,
    };
    process(Input::Message { raw }, &state, options).expect("a mail message")
}

fn stores(p: &Processed) -> usize {
    p.actions
        .iter()
        .filter(|a| matches!(a, Action::StoreVersion { .. }))
        .count()
}

fn ctx() -> AckContext<'static> {
    AckContext {
        bal: "dpi@clinique.mssante.fr",
        bal_name: Some("DPI Clinique"),
        reporting_ua: "mss 0.1.0",
        message_id: "ack-1@clinique.mssante.fr",
        date: 1_764_000_100,
        nil: Some("NIL-TEST-1"),
    }
}

fn held(root: &str, version: u32, state: HeldState) -> HeldVersion {
    HeldVersion {
        id: id(root),
        set_id: Some(id("1.2.250.1.999.7.9")),
        version: Some(version),
        patient: "P1".into(),
        state,
        sha1: None,
        origin: None,
    }
}

#[test]
fn qualified_exact_match_is_filed_and_a_processed_mdn_is_sent() {
    let raw = message(
        "m1@hopital.mssante.fr",
        &[Doc::new("1.2.250.1.999.7.1").xml()],
        None,
        true,
    );
    let patients = [patient("P1", IdentityStatus::Qual)];
    let p = run(&raw, &patients, &[], &options());
    assert_eq!(stores(&p), 1);
    assert_eq!(
        p.documents[0].outcome,
        DocumentOutcome::Filed {
            patient: "P1".into()
        }
    );
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::Notify(Notification::NewDocument { .. })))
    );
    assert_eq!(
        p.ack,
        AckPlan::Mdn {
            to: "dr.house@hopital.mssante.fr".into(),
            outcome: MdnOutcome::Processed,
            automatic: true
        }
    );
    assert_eq!(
        p.received.as_ref().unwrap().display_subject,
        "CR de consultation PAT-TROIS DOMINIQUE 28/03/1979",
        "UX.28: the XDM prefix is hidden"
    );
    let mdn = acknowledge::build(&p.ack, p.received.as_ref().unwrap(), &raw, &ctx()).unwrap();
    let read = parse_mdn(&mdn).unwrap();
    assert!(!read.is_failure());
    assert_eq!(
        read.original_message_id.as_deref(),
        Some("m1@hopital.mssante.fr")
    );
}

#[test]
fn unknown_patient_is_proposed_with_candidates_and_a_902_mdn() {
    let raw = message(
        "m2@hopital.mssante.fr",
        &[Doc::new("1.2.250.1.999.7.2").xml()],
        None,
        true,
    );
    // Same person, recorded without INS: a candidate, never filed automatically.
    let mut local = patient("P7", IdentityStatus::Prov);
    local.ins = None;
    let p = run(&raw, &[local], &[], &options());
    assert_eq!(stores(&p), 0);
    let Some(Action::ProposePatients {
        code, candidates, ..
    }) = p
        .actions
        .iter()
        .find(|a| matches!(a, Action::ProposePatients { .. }))
    else {
        panic!("no proposal: {:?}", p.actions)
    };
    assert_eq!(*code, ErrorCode::UnknownPatient);
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].patient, "P7");
    assert!(candidates[0].score > 0.99);
    let mdn = acknowledge::build(&p.ack, p.received.as_ref().unwrap(), &raw, &ctx()).unwrap();
    let read = parse_mdn(&mdn).unwrap();
    assert_eq!(read.error_code(), Some(ErrorCode::UnknownPatient));
    assert!(read.subject.unwrap().contains("[902]"));
}

#[test]
fn each_identity_problem_gets_its_code() {
    let qual = [patient("P1", IdentityStatus::Qual)];
    let cases: [(Doc, &[LocalPatient], u16); 4] = [
        (
            Doc {
                ins: None,
                ..Doc::new("a.1")
            },
            &qual,
            903,
        ),
        (
            Doc {
                birth_name: "PAT-QUATRE".into(),
                ..Doc::new("a.2")
            },
            &qual,
            904,
        ),
        (
            Doc {
                birthplace: None,
                ..Doc::new("a.3")
            },
            &qual,
            905,
        ),
        (Doc::new("a.4"), &[], 902),
    ];
    for (doc, patients, code) in cases {
        let raw = message("m3@hopital.mssante.fr", &[doc.xml()], None, true);
        let p = run(&raw, patients, &[], &options());
        assert_eq!(stores(&p), 0, "{doc:?}");
        assert_eq!(
            p.documents[0].outcome.error_code().map(|c| c.code()),
            Some(code),
            "{doc:?}"
        );
        let AckPlan::Mdn {
            outcome: MdnOutcome::Failed(sent),
            ..
        } = p.ack
        else {
            panic!("{doc:?}: {:?}", p.ack)
        };
        assert_eq!(sent.code(), code);
    }
    // A VALI local identity never allows automatic filing.
    let raw = message(
        "m4@hopital.mssante.fr",
        &[Doc::new("a.5").xml()],
        None,
        true,
    );
    let p = run(
        &raw,
        &[patient("P1", IdentityStatus::Vali)],
        &[],
        &options(),
    );
    assert_eq!(
        p.documents[0].outcome.error_code(),
        Some(ErrorCode::InsMismatch)
    );
}

#[test]
fn without_mdn_request_a_failure_offers_the_standard_notice() {
    let raw = message(
        "m5@hopital.mssante.fr",
        &[Doc::new("b.1").xml()],
        None,
        false,
    );
    let p = run(&raw, &[], &[], &options());
    let AckPlan::FailureNotice {
        to,
        code,
        automatic,
    } = &p.ack
    else {
        panic!("{:?}", p.ack)
    };
    assert_eq!(
        (to.as_str(), *code, *automatic),
        (
            "dr.house@hopital.mssante.fr",
            ErrorCode::UnknownPatient,
            false
        )
    );
    let notice = acknowledge::build(&p.ack, p.received.as_ref().unwrap(), &raw, &ctx()).unwrap();
    let read = parse_incoming(&notice).unwrap();
    assert!(
        read.subject
            .as_deref()
            .unwrap()
            .starts_with("[KO Intégration système !][902] XDM/1.0/DDM+")
    );
    assert!(read.xdm().is_some(), "the archive is attached again");
    assert!(read.text_body.unwrap().contains("902"));
    // Success without request: nothing.
    let p = run(
        &raw,
        &[patient("P1", IdentityStatus::Qual)],
        &[],
        &options(),
    );
    assert_eq!(p.ack, AckPlan::None(NoAckReason::NotRequested));
    // An installation that never sends notices.
    let never = Options {
        failure_notice: FailureNotice::Never,
        ..options()
    };
    assert_eq!(
        run(&raw, &[], &[], &never).ack,
        AckPlan::None(NoAckReason::NoticeDisabled)
    );
}

#[test]
fn replacement_supersedes_the_latest_version() {
    let v2 = Doc::new("c.2").version(2, Some("c.1"));
    let raw = message(
        "m6@hopital.mssante.fr",
        &[v2.xml()],
        Some(XdmAction::Replace),
        true,
    );
    let patients = [patient("P1", IdentityStatus::Qual)];
    let history = [held("c.1", 1, HeldState::Current)];
    let p = run(&raw, &patients, &history, &options());
    let Some(Action::StoreVersion {
        supersedes,
        version,
        ..
    }) = p
        .actions
        .iter()
        .find(|a| matches!(a, Action::StoreVersion { .. }))
    else {
        panic!("{:?}", p.actions)
    };
    assert_eq!((supersedes.clone(), *version), (Some(id("c.1")), Some(2)));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::Notify(Notification::UpdatedDocument { .. })))
    );
    let mut after = history.to_vec();
    for a in &p.actions {
        apply_to_history(&mut after, a);
    }
    assert_eq!(after[0].state, HeldState::Superseded);
    assert_eq!(after[1].state, HeldState::Current);
}

#[test]
fn replacement_of_a_version_we_do_not_hold_is_900() {
    let v2 = Doc::new("d.2").version(2, Some("d.1"));
    let raw = message(
        "m7@hopital.mssante.fr",
        &[v2.xml()],
        Some(XdmAction::Replace),
        true,
    );
    let p = run(
        &raw,
        &[patient("P1", IdentityStatus::Qual)],
        &[],
        &options(),
    );
    assert_eq!(stores(&p), 0);
    assert_eq!(
        p.documents[0].outcome.error_code(),
        Some(ErrorCode::VersionMismatch)
    );
    assert!(matches!(
        p.ack,
        AckPlan::Mdn {
            outcome: MdnOutcome::Failed(ErrorCode::VersionMismatch),
            ..
        }
    ));
}

/// The held version as the shell reads it: with the origin of its CDA header.
fn held_by(doc: &Doc, state: HeldState) -> HeldVersion {
    let header = mss_docs::cda::parse_header(&doc.xml()).expect("our CDA");
    HeldVersion {
        origin: Some(Origin::from_header(&header)),
        ..held(&doc.id, doc.version, state)
    }
}

#[test]
fn only_the_author_or_their_organisation_may_replace_or_delete_901() {
    let v1 = Doc::new("g.1").by("10001", "20001");
    let patients = [patient("P1", IdentityStatus::Qual)];
    let history = [held_by(&v1, HeldState::Current)];
    let cases = [
        (
            "a colleague of the same organisation",
            "10002",
            "20001",
            None,
        ),
        (
            "the author from another organisation",
            "10001",
            "20002",
            None,
        ),
        (
            "someone else elsewhere",
            "10003",
            "20003",
            Some(ErrorCode::AuthorNotAuthorised),
        ),
    ];
    for (n, (who, rpps, finess, expected)) in cases.into_iter().enumerate() {
        let v2 = Doc::new("g.2").version(2, Some("g.1")).by(rpps, finess);
        let delete = v1.clone().by(rpps, finess);
        for (doc, action) in [(v2, XdmAction::Replace), (delete, XdmAction::Delete)] {
            let raw = message(
                &format!("m9.{n}.{action:?}@hopital.mssante.fr"),
                &[doc.xml()],
                Some(action),
                true,
            );
            let p = run(&raw, &patients, &history, &options());
            assert_eq!(
                p.documents[0].outcome.error_code(),
                expected,
                "{who}, {action:?}: {:?}",
                p.documents[0].outcome
            );
            if expected.is_some() {
                assert_eq!(stores(&p), 0, "{who}");
                assert!(matches!(
                    p.ack,
                    AckPlan::Mdn {
                        outcome: MdnOutcome::Failed(ErrorCode::AuthorNotAuthorised),
                        ..
                    }
                ));
            }
        }
    }
    // A held version whose author has no id cannot be checked: not refused for it.
    let anonymous = [held_by(&Doc::new("g.1"), HeldState::Current)];
    let v2 = Doc::new("g.2").version(2, Some("g.1")).by("10003", "20003");
    let raw = message(
        "m9.anon@hopital.mssante.fr",
        &[v2.xml()],
        Some(XdmAction::Replace),
        true,
    );
    let p = run(&raw, &patients, &anonymous, &options());
    assert_eq!(stores(&p), 1, "{:?}", p.documents[0].outcome);
}

#[test]
fn deletion_waits_for_confirmation_unless_configured() {
    let doc = Doc::new("e.1");
    let raw = message(
        "m8@hopital.mssante.fr",
        &[doc.xml()],
        Some(XdmAction::Delete),
        true,
    );
    let patients = [patient("P1", IdentityStatus::Qual)];
    let history = [held("e.1", 1, HeldState::Current)];
    let p = run(&raw, &patients, &history, &options());
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::AwaitDeletionConfirmation { .. }))
    );
    assert_eq!(p.ack, AckPlan::None(NoAckReason::Deferred));
    let received = p.received.as_ref().unwrap();
    assert!(matches!(
        acknowledge::plan_after_decision(received, MdnOutcome::Processed, FailureNotice::Offer),
        AckPlan::Mdn {
            outcome: MdnOutcome::Processed,
            ..
        }
    ));

    let auto = Options {
        auto_delete: true,
        ..options()
    };
    let p = run(&raw, &patients, &history, &auto);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::MarkDeleted { .. }))
    );
    assert!(matches!(
        p.ack,
        AckPlan::Mdn {
            outcome: MdnOutcome::Processed,
            ..
        }
    ));
    let mut after = history.to_vec();
    for a in &p.actions {
        apply_to_history(&mut after, a);
    }
    assert_eq!(
        after[0].state,
        HeldState::Deleted,
        "the deleted version stays in the history"
    );
}

#[test]
fn the_same_message_twice_files_once_and_answers_once() {
    let raw = message(
        "m9@hopital.mssante.fr",
        &[Doc::new("f.1").xml()],
        None,
        true,
    );
    let patients = [patient("P1", IdentityStatus::Qual)];
    let first = run(&raw, &patients, &[], &options());
    assert_eq!(stores(&first), 1);
    let mut history = Vec::new();
    for a in &first.actions {
        apply_to_history(&mut history, a);
    }
    let state = State {
        patients: &patients,
        history: &history,
        acknowledged: true,
    };
    let second = process(Input::Message { raw: &raw }, &state, &options()).unwrap();
    assert_eq!(stores(&second), 0);
    assert!(matches!(
        second.documents[0].outcome,
        DocumentOutcome::AlreadyIntegrated {
            same_content: Some(true),
            ..
        }
    ));
    assert!(
        second
            .actions
            .iter()
            .any(|a| matches!(a, Action::FlagAlreadyIntegrated { .. }))
    );
    assert_eq!(second.ack, AckPlan::None(NoAckReason::AlreadyAcknowledged));
    assert!(
        !second
            .actions
            .iter()
            .any(|a| matches!(a, Action::Acknowledge(_)))
    );
}

#[test]
fn manual_import_takes_the_same_path_without_answer() {
    let (zip, _) = xdm_of(&[Doc::new("g.1").xml()], None);
    let patients = [patient("P1", IdentityStatus::Qual)];
    let state = State {
        patients: &patients,
        history: &[],
        acknowledged: false,
    };
    let p = process(Input::Import { zip: &zip }, &state, &options()).unwrap();
    assert_eq!(stores(&p), 1);
    assert_eq!(p.ack, AckPlan::None(NoAckReason::ManualImport));
    assert!(p.received.is_none());
    let doc = &p.package.as_ref().unwrap().documents[0];
    assert!(
        !doc.content().is_empty(),
        "the shell stores the bytes from the package"
    );
}

#[test]
fn broken_archives_are_906() {
    let raw = b"From: a@hopital.mssante.fr\r\nReturn-Path: <a@hopital.mssante.fr>\r\nDisposition-Notification-To: a@hopital.mssante.fr\r\nTo: dpi@clinique.mssante.fr\r\nMessage-ID: <x1@h>\r\nSubject: XDM/1.0/DDM+CR PAT-TROIS DOMINIQUE\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Disposition: attachment; filename=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAAA==\r\n--b--\r\n";
    let p = run(raw, &[], &[], &options());
    assert!(matches!(
        p.actions
            .iter()
            .find(|a| matches!(a, Action::Reject { .. })),
        Some(Action::Reject {
            doc: None,
            code: ErrorCode::Other,
            ..
        })
    ));
    assert!(matches!(
        p.ack,
        AckPlan::Mdn {
            outcome: MdnOutcome::Failed(ErrorCode::Other),
            ..
        }
    ));
    // An XDM subject with no archive at all.
    let raw = b"From: a@hopital.mssante.fr\r\nTo: dpi@clinique.mssante.fr\r\nMessage-ID: <x2@h>\r\nSubject: XDM/1.0/DDM+CR PAT-TROIS DOMINIQUE\r\n\r\nx\r\n";
    let p = run(raw, &[], &[], &options());
    assert_eq!(p.documents[0].outcome.error_code(), Some(ErrorCode::Other));
}

#[test]
fn a_patient_sender_is_shown_by_name_and_ins() {
    let raw = format!(
        "From: Leo <{INS}@patient.mssante.fr>\r\nTo: dr@hopital.mssante.fr\r\nMessage-ID: <p1@mes>\r\nSubject: Question\r\n\r\nBonjour docteur\r\n"
    );
    let patients = [patient("P1", IdentityStatus::Qual)];
    let p = run(raw.as_bytes(), &patients, &[], &options());
    assert_eq!(
        p.sender_label.as_deref(),
        Some("PAT-TROIS DOMINIQUE (INS 279035121518989)")
    );
    assert!(
        p.actions
            .contains(&Action::Notify(Notification::NewMessage {
                from_patient: true
            }))
    );
    assert_eq!(p.ack, AckPlan::None(NoAckReason::NotXdm));
    // Unknown locally: the From display name.
    let p = run(raw.as_bytes(), &[], &[], &options());
    assert_eq!(p.sender_label.as_deref(), Some("Leo (INS 279035121518989)"));
}

#[test]
fn a_received_mdn_is_recorded_with_its_code() {
    let original = message(
        "sent-1@clinique.mssante.fr",
        &[Doc::new("h.1").xml()],
        None,
        true,
    );
    let mdn = build_mdn(&MdnRequest {
        reporting_bal: "auto@chb.mssante.fr",
        reporting_name: None,
        notify: "dpi@clinique.mssante.fr",
        original_recipient: None,
        original_message_id: "sent-1@clinique.mssante.fr",
        original_subject: "XDM/1.0/DDM+CR PAT-TROIS DOMINIQUE",
        original_message: &original,
        outcome: MdnOutcome::Failed(ErrorCode::InsIncomplete),
        reporting_ua: "other 1.0",
        message_id: "mdn-1@chb.mssante.fr",
        date: 1_764_000_000,
        nil: Some("NIL-X"),
    })
    .unwrap();
    let p = run(&mdn, &[], &[], &options());
    let Some(Action::RecordReport(report)) = p
        .actions
        .iter()
        .find(|a| matches!(a, Action::RecordReport(_)))
    else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(report.error_code(), Some(ErrorCode::InsIncomplete));
    assert_eq!(
        p.ack,
        AckPlan::None(NoAckReason::NotXdm),
        "an MDN is never answered"
    );
    assert_eq!(stores(&p), 0);
}
