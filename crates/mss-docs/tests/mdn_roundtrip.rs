//! MDN: build → parse for every outcome, the two ANS failure syntaxes from
//! hand-written fixtures, and the loop-prevention rule.

use mss_docs::mdn::{
    DispositionType, ErrorCode, MdnDecision, MdnError, MdnOutcome, MdnRequest, build_mdn,
    mdn_decision, parse_mdn, should_send_mdn,
};
use mss_docs::message::parse_incoming;
use mss_docs::subject::parse_subject;

const ORIGINAL: &[u8] = b"From: imagerie@clinique-sud.mssante.fr\r\n\
To: cardio_auto@ch-nord.mssante.fr\r\n\
Message-ID: <cr.8812@clinique-sud.mssante.fr>\r\n\
Subject: XDM/1.0/DDM+CR de consultation MARTIN LUCIE 02/11/1964\r\n\
Disposition-Notification-To: imagerie@clinique-sud.mssante.fr\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"orig\"\r\n\
\r\n\
--orig\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Bonjour\r\n\
--orig\r\n\
Content-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n\
Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UEsDBBQAAAAIAA==\r\n\
--orig--\r\n";

fn request(outcome: MdnOutcome) -> MdnRequest<'static> {
    MdnRequest {
        reporting_bal: "cardio_auto@ch-nord.mssante.fr",
        reporting_name: Some("Cardiologie (intégration)"),
        notify: "imagerie@clinique-sud.mssante.fr",
        original_recipient: None,
        original_message_id: "<cr.8812@clinique-sud.mssante.fr>",
        original_subject: "XDM/1.0/DDM+CR de consultation MARTIN LUCIE 02/11/1964",
        original_message: ORIGINAL,
        outcome,
        reporting_ua: "ch-nord.mssante.fr; mss 0.1.0",
        message_id: "mdn.1@ch-nord.mssante.fr",
        date: 1_715_700_000,
        nil: Some("DEV935997"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn failure_mdn_round_trips_for_every_code() {
    for code in ErrorCode::ALL {
        let raw = build_mdn(&request(MdnOutcome::Failed(code))).unwrap();
        let mdn = parse_mdn(&raw).unwrap();
        assert!(mdn.is_failure(), "{code:?}");
        assert_eq!(mdn.error_code(), Some(code));
        let failure = mdn.failure.as_ref().unwrap();
        assert_eq!(failure.label.as_deref(), Some(code.ascii_label().as_str()));
        assert_eq!(mdn.final_recipient, "cardio_auto@ch-nord.mssante.fr");
        assert_eq!(
            mdn.original_recipient.as_deref(),
            Some("cardio_auto@ch-nord.mssante.fr")
        );
        assert_eq!(
            mdn.original_message_id.as_deref(),
            Some("cr.8812@clinique-sud.mssante.fr")
        );
        assert_eq!(mdn.disposition.kind, DispositionType::Processed);
        assert_eq!(mdn.disposition.modifiers, vec!["error".to_owned()]);
        assert_eq!(
            mdn.disposition.action_mode.as_deref(),
            Some("automatic-action")
        );
        assert_eq!(mdn.from.as_deref(), Some("cardio_auto@ch-nord.mssante.fr"));
        assert_eq!(
            mdn.reporting_ua.as_deref(),
            Some("ch-nord.mssante.fr; mss 0.1.0")
        );
        let subject = parse_subject(mdn.subject.as_deref().unwrap());
        assert_eq!(subject.error_code(), Some(code));
        assert_eq!(subject.family_name.as_deref(), Some("MARTIN"));

        // Both syntaxes are on the wire.
        let text = String::from_utf8_lossy(&raw);
        let detail = format!("{}^{}", code.code(), code.ascii_label());
        assert!(
            text.contains(&format!(
                "Disposition: automatic-action/MDN-sent-automatically; processed/Error: {detail}\r\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("\r\nError: {detail}\r\n")), "{text}");

        // The human part carries the exact French label.
        let incoming = parse_incoming(&raw).unwrap();
        let human = incoming.text_body.unwrap();
        assert!(human.contains(code.label()), "{human}");
        assert!(human.contains(&code.code().to_string()), "{human}");
    }
}

#[test]
fn success_mdn_round_trips() {
    let raw = build_mdn(&request(MdnOutcome::Processed)).unwrap();
    let mdn = parse_mdn(&raw).unwrap();
    assert!(!mdn.is_failure());
    assert_eq!(mdn.disposition.kind, DispositionType::Processed);
    assert!(mdn.disposition.modifiers.is_empty());
    assert_eq!(
        mdn.subject.as_deref(),
        Some("XDM/1.0/DDM+CR de consultation MARTIN LUCIE 02/11/1964")
    );
    assert_eq!(build_mdn(&request(MdnOutcome::Processed)).unwrap(), raw);
}

#[test]
fn mdn_is_a_report_addressed_to_the_requester_and_embeds_the_original() {
    let raw = build_mdn(&request(MdnOutcome::Failed(ErrorCode::UnknownPatient))).unwrap();
    let incoming = parse_incoming(&raw).unwrap();
    assert!(incoming.is_mdn);
    assert_eq!(incoming.to[0].address, "imagerie@clinique-sud.mssante.fr");
    let from = incoming.from.as_ref().unwrap();
    assert_eq!(from.address, "cardio_auto@ch-nord.mssante.fr");
    assert_eq!(
        from.display_name.as_deref(),
        Some("Cardiologie (intégration)")
    );
    assert_eq!(incoming.x_mss.nil.as_deref(), Some("DEV935997"));
    assert_eq!(
        incoming.in_reply_to,
        vec!["cr.8812@clinique-sud.mssante.fr".to_owned()]
    );
    let embedded = incoming
        .attachments
        .iter()
        .find(|a| a.content_type == "message/rfc822")
        .expect("original message part");
    assert_eq!(embedded.bytes, ORIGINAL);
    // The embedded original still has its XDM, readable.
    let original = parse_incoming(&embedded.bytes).unwrap();
    assert!(original.xdm().is_some());
    // An MDN never triggers another one.
    assert_eq!(mdn_decision(&incoming), MdnDecision::IsMdn);
    assert!(!should_send_mdn(&incoming));
}

#[test]
fn explicit_original_recipient_is_kept() {
    let mut req = request(MdnOutcome::Processed);
    req.original_recipient = Some("rfc822; service@ch-nord.mssante.fr");
    let mdn = parse_mdn(&build_mdn(&req).unwrap()).unwrap();
    assert_eq!(
        mdn.original_recipient.as_deref(),
        Some("service@ch-nord.mssante.fr")
    );
    req.original_recipient = Some("service@ch-nord.mssante.fr");
    let mdn = parse_mdn(&build_mdn(&req).unwrap()).unwrap();
    assert_eq!(
        mdn.original_recipient.as_deref(),
        Some("service@ch-nord.mssante.fr")
    );
}

#[test]
fn build_refuses_bad_input() {
    let mut req = request(MdnOutcome::Processed);
    req.notify = "imagerie@clinique-sud.mssante.fr\r\nBcc: spy@evil.example";
    assert!(matches!(build_mdn(&req), Err(MdnError::Address { .. })));
    let mut req = request(MdnOutcome::Processed);
    req.reporting_ua = "mss\r\nX-Evil: 1";
    assert!(matches!(build_mdn(&req), Err(MdnError::Injection { .. })));
    let mut req = request(MdnOutcome::Processed);
    req.reporting_name = Some("A\nB");
    assert!(matches!(build_mdn(&req), Err(MdnError::Injection { .. })));
    let mut req = request(MdnOutcome::Processed);
    req.original_message_id = "not an id";
    assert!(matches!(build_mdn(&req), Err(MdnError::MessageId { .. })));
    let mut req = request(MdnOutcome::Processed);
    req.nil = None;
    assert!(matches!(build_mdn(&req), Err(MdnError::Header(_))));
    // A subject with line breaks is cleaned, never injected.
    let mut req = request(MdnOutcome::Failed(ErrorCode::Other));
    req.original_subject = "XDM/1.0/DDM+CR\r\nBcc: spy@evil.example";
    let raw = build_mdn(&req).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
}

#[test]
fn reads_the_v112_failure_syntax() {
    let mdn = parse_mdn(&fixture("mdn/failure-v112-processed-Error.eml")).unwrap();
    assert_eq!(mdn.error_code(), Some(ErrorCode::UnknownPatient));
    let failure = mdn.failure.as_ref().unwrap();
    assert_eq!(
        failure.label.as_deref(),
        Some("Identifiant de patient inconnu")
    );
    assert!(failure.raw.ends_with("E^Error^errorSeverity"));
    assert_eq!(mdn.final_recipient, "cardio_auto@ch-nord.mssante.fr");
    assert_eq!(
        mdn.original_message_id.as_deref(),
        Some("cr.8812@clinique-sud.mssante.fr")
    );
    assert_eq!(mdn.disposition.kind, DispositionType::Processed);
    assert_eq!(
        parse_subject(mdn.subject.as_deref().unwrap()).failure_code,
        Some(902)
    );
}

#[test]
fn reads_the_v113_failure_syntax_in_any_case() {
    let mdn = parse_mdn(&fixture("mdn/failure-v113-processed-error-field.eml")).unwrap();
    assert_eq!(mdn.error_code(), Some(ErrorCode::InsIncomplete));
    assert_eq!(
        mdn.failure.as_ref().unwrap().label.as_deref(),
        Some("L'INS transmis n'est pas complet")
    );
    assert_eq!(mdn.final_recipient, "urgences_auto@chu-est.mssante.fr");
    assert_eq!(mdn.disposition.kind, DispositionType::Processed);
    assert_eq!(mdn.disposition.modifiers, vec!["error".to_owned()]);
    assert_eq!(
        mdn.disposition.action_mode.as_deref(),
        Some("automatic-action")
    );
    assert_eq!(
        parse_subject(mdn.subject.as_deref().unwrap()).failure_code,
        Some(905)
    );
    assert!(
        parse_incoming(&fixture("mdn/failure-v113-processed-error-field.eml"))
            .unwrap()
            .is_mdn
    );
}

#[test]
fn reads_plain_success_and_displayed() {
    let mdn = parse_mdn(&fixture("mdn/success-processed.eml")).unwrap();
    assert!(!mdn.is_failure());
    assert_eq!(mdn.disposition.kind, DispositionType::Processed);
    assert_eq!(mdn.original_recipient, None);
    assert_eq!(
        mdn.original_message_id.as_deref(),
        Some("presc.77@cabinet-est.mssante.fr")
    );

    let mdn = parse_mdn(&fixture("mdn/displayed-with-comments.eml")).unwrap();
    assert_eq!(mdn.disposition.kind, DispositionType::Displayed);
    assert_eq!(
        mdn.disposition.action_mode.as_deref(),
        Some("manual-action")
    );
    assert_eq!(
        mdn.disposition.sending_mode.as_deref(),
        Some("MDN-sent-manually")
    );
    assert_eq!(mdn.final_recipient, "279035121518989@patient.mssante.fr");
    assert!(!mdn.is_failure());
}

#[test]
fn refuses_what_is_not_an_mdn() {
    assert_eq!(
        parse_mdn(&fixture("mail/no-mdn-request.eml")),
        Err(MdnError::NotAnMdn)
    );
    assert_eq!(
        parse_mdn(&fixture("mdn/no-final-recipient.eml")),
        Err(MdnError::MissingFinalRecipient)
    );
    assert_eq!(parse_mdn(b""), Err(MdnError::NotAMessage));
}

#[test]
fn mdn_only_when_asked_by_the_return_path() {
    let asked = parse_incoming(&fixture("mail/request-mdn-same-return-path.eml")).unwrap();
    assert_eq!(mdn_decision(&asked), MdnDecision::Send);
    assert!(should_send_mdn(&asked));
    assert_eq!(
        asked.original_recipient.as_deref(),
        Some("rfc822;cardio_auto@ch-nord.mssante.fr")
    );
    assert!(
        asked.xdm().is_some(),
        "ihe_xdm.zip is found whatever its case"
    );

    let other = parse_incoming(&fixture("mail/request-mdn-other-address.eml")).unwrap();
    assert_eq!(mdn_decision(&other), MdnDecision::NeedsConfirmation);
    assert!(!should_send_mdn(&other));

    let none = parse_incoming(&fixture("mail/no-mdn-request.eml")).unwrap();
    assert_eq!(mdn_decision(&none), MdnDecision::NotRequested);

    let mut no_return_path = asked.clone();
    no_return_path.return_path = None;
    assert_eq!(
        mdn_decision(&no_return_path),
        MdnDecision::NeedsConfirmation
    );
}
