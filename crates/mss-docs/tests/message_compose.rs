//! Composing outgoing messages, and reading them back with `parse_incoming`.

use mss_docs::cda::{BodyLevel, CdaHeader, Coded, InsRef, InstanceId, Patient};
use mss_docs::headers::HeaderError;
use mss_docs::message::{
    ComposeError, Mailbox, OutgoingMessage, PATIENT_MAX_MESSAGE_BYTES, PdfAttachment, XdmPackage,
    compose, parse_incoming,
};
use mss_model::{IdentityTraits, InsKind, PartialDate, Sex};

fn document(code: &str, display: &str, matricule: &str, kind: InsKind) -> CdaHeader {
    CdaHeader {
        version: Some(1),
        code: Some(Coded {
            code: code.into(),
            system: Some("2.16.840.1.113883.6.1".into()),
            display: Some(display.into()),
        }),
        title: Some("Titre".into()),
        patient: Patient {
            ids: vec![InstanceId {
                root: kind.oid().into(),
                extension: Some(matricule.into()),
            }],
            ins: Some(InsRef {
                matricule: matricule.into(),
                oid: kind.oid().into(),
                kind,
                key_valid: true,
            }),
            traits: IdentityTraits {
                birth_name: Some("PAT-TROIS".into()),
                first_given_name: Some("DOMINIQUE".into()),
                given_names: Some("DOMINIQUE MARIE-LOUISE".into()),
                birth_date: Some(PartialDate {
                    year: 1979,
                    month: Some(3),
                    day: Some(5),
                }),
                sex: Some(Sex::F),
                birthplace_code: Some("51215".into()),
            },
            used_name: None,
            used_given_name: None,
        },
        ..CdaHeader::new(
            InstanceId {
                root: "1.2.250.1.999.1".into(),
                extension: Some(format!("doc-{code}")),
            },
            BodyLevel::Structured,
        )
    }
}

const INS: &str = "279035121518989";

fn base() -> OutgoingMessage {
    OutgoingMessage {
        from: Mailbox::named("radiologie@hopital-a.mssante.fr", "Service de radiologie"),
        to: vec![Mailbox::new("dr.martin@cabinet-b.mssante.fr")],
        cc: vec![Mailbox::named(
            "secretariat@cabinet-b.mssante.fr",
            "Secrétariat",
        )],
        message_id: "<20240520.1@hopital-a.mssante.fr>".into(),
        date: 1_716_200_000,
        in_reply_to: None,
        references: vec![],
        subject: None,
        body: "Bonjour,\r\nVeuillez trouver ci-joint le compte rendu.\r\nCordialement".into(),
        xdm: Some(XdmPackage {
            zip: (0..=255u8).cycle().take(5000).collect(),
            documents: vec![
                document("18748-4", "CR d'imagerie médicale", INS, InsKind::Nir),
                document("11488-4", "CR de consultation", INS, InsKind::Nir),
            ],
        }),
        pdfs: vec![PdfAttachment {
            file_name: "20240520_CR d'imagerie médicale_PAT-TROIS_DOMINIQUE.pdf".into(),
            bytes: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\nfake".to_vec(),
        }],
        request_mdn: true,
        nil: Some("DEV935997".into()),
        test_identities: false,
        end_patient_exchange: false,
    }
}

#[test]
fn composed_message_reads_back_the_same() {
    let message = base();
    let raw = compose(&message).unwrap();
    let read = parse_incoming(&raw).unwrap();

    assert_eq!(
        read.message_id.as_deref(),
        Some("20240520.1@hopital-a.mssante.fr")
    );
    assert_eq!(
        read.subject.as_deref(),
        Some("XDM/1.0/DDM+CR d'imagerie médicale PAT-TROIS DOMINIQUE 05/03/1979")
    );
    assert_eq!(read.date, Some(message.date));
    let from = read.from.clone().unwrap();
    assert_eq!(from.address, "radiologie@hopital-a.mssante.fr");
    assert_eq!(from.display_name.as_deref(), Some("Service de radiologie"));
    assert_eq!(read.to, message.to);
    assert_eq!(read.cc, message.cc);
    assert_eq!(
        read.disposition_notification_to,
        vec!["radiologie@hopital-a.mssante.fr".to_owned()]
    );
    assert_eq!(read.x_mss.code_cda.as_deref(), Some("18748-4,11488-4"));
    assert_eq!(read.x_mss.ins.as_deref(), Some("O"));
    assert_eq!(read.x_mss.nil.as_deref(), Some("DEV935997"));
    assert_eq!(read.x_mss.mes, None);
    assert!(!read.is_mdn);
    assert!(
        read.text_body
            .as_deref()
            .unwrap()
            .contains("Veuillez trouver ci-joint le compte rendu.")
    );

    assert_eq!(read.attachments.len(), 2);
    let xdm = read.xdm().unwrap();
    assert_eq!(xdm.file_name.as_deref(), Some("IHE_XDM.ZIP"));
    assert_eq!(xdm.content_type, "application/zip");
    assert_eq!(xdm.bytes, message.xdm.as_ref().unwrap().zip);
    let pdf = &read.attachments[1];
    assert!(!pdf.is_xdm);
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(
        pdf.file_name.as_deref(),
        Some(message.pdfs[0].file_name.as_str())
    );
    assert_eq!(pdf.bytes, message.pdfs[0].bytes);
}

#[test]
fn same_input_gives_the_same_bytes() {
    let first = compose(&base()).unwrap();
    let second = compose(&base()).unwrap();
    assert_eq!(first, second);
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("boundary=\"=_mss_"), "{text}");
    assert!(
        text.contains("\r\nDate: Mon, 20 May 2024 10:13:20 +0000\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nX-MSS-NIL: DEV935997\r\n"));
    assert!(text.contains("\r\nX-MSS-INS: O\r\n"));
    assert!(text.contains("\r\nX-MSS-CODECDA: 18748-4,11488-4\r\n"));

    let mut other = base();
    other.message_id = "20240520.2@hopital-a.mssante.fr".into();
    let third = compose(&other).unwrap();
    let boundary = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let start = text.find("boundary=\"").unwrap() + 10;
        text[start..start + text[start..].find('"').unwrap()].to_owned()
    };
    assert_ne!(boundary(&first), boundary(&third));
}

#[test]
fn reply_headers_are_written() {
    let mut message = base();
    message.in_reply_to = Some("orig.1@cabinet-b.mssante.fr".into());
    message.references = vec![
        "<root.0@cabinet-b.mssante.fr>".into(),
        "orig.1@cabinet-b.mssante.fr".into(),
    ];
    let read = parse_incoming(&compose(&message).unwrap()).unwrap();
    assert_eq!(
        read.in_reply_to,
        vec!["orig.1@cabinet-b.mssante.fr".to_owned()]
    );
    assert_eq!(
        read.references,
        vec![
            "root.0@cabinet-b.mssante.fr".to_owned(),
            "orig.1@cabinet-b.mssante.fr".to_owned()
        ]
    );
}

#[test]
fn message_without_documents_has_only_the_nil() {
    let mut message = base();
    message.xdm = None;
    message.pdfs.clear();
    message.request_mdn = false;
    message.subject = Some("Rendez-vous du 3 juin".into());
    let raw = compose(&message).unwrap();
    let read = parse_incoming(&raw).unwrap();
    assert_eq!(read.x_mss.code_cda, None);
    assert_eq!(read.x_mss.ins, None);
    assert_eq!(read.x_mss.nil.as_deref(), Some("DEV935997"));
    assert!(read.disposition_notification_to.is_empty());
    assert!(read.attachments.is_empty());
    assert_eq!(read.subject.as_deref(), Some("Rendez-vous du 3 juin"));

    message.subject = None;
    assert_eq!(compose(&message), Err(ComposeError::NoSubject));
}

#[test]
fn test_ins_counts_only_when_enabled() {
    let mut message = base();
    message.xdm.as_mut().unwrap().documents = vec![document(
        "18748-4",
        "CR d'imagerie médicale",
        INS,
        InsKind::Test,
    )];
    let read = parse_incoming(&compose(&message).unwrap()).unwrap();
    assert_eq!(read.x_mss.ins.as_deref(), Some("N"));
    message.test_identities = true;
    let read = parse_incoming(&compose(&message).unwrap()).unwrap();
    assert_eq!(read.x_mss.ins.as_deref(), Some("O"));
}

#[test]
fn one_patient_per_message() {
    let mut message = base();
    message.xdm.as_mut().unwrap().documents.push(document(
        "11502-2",
        "CR de biologie",
        "162018885045327",
        InsKind::Nir,
    ));
    assert_eq!(compose(&message), Err(ComposeError::SeveralPatients));

    // Without INS, a shared local identifier is enough.
    let mut message = base();
    for doc in &mut message.xdm.as_mut().unwrap().documents {
        doc.patient.ins = None;
        doc.patient.ids = vec![InstanceId {
            root: "1.2.250.1.999.2".into(),
            extension: Some("IPP-42".into()),
        }];
    }
    compose(&message).unwrap();
    message.xdm.as_mut().unwrap().documents[1].patient.ids[0].extension = Some("IPP-43".into());
    assert_eq!(compose(&message), Err(ComposeError::SeveralPatients));

    // The rule is the XDM writer's (same patientId): an INS on one document
    // and only a local id on the other do not prove one patient.
    let mut message = base();
    let second = &mut message.xdm.as_mut().unwrap().documents[1].patient;
    second.ins = None;
    second.ids = vec![InstanceId {
        root: "1.2.250.1.999.2".into(),
        extension: Some("IPP-42".into()),
    }];
    assert_eq!(compose(&message), Err(ComposeError::SeveralPatients));
}

#[test]
fn nil_is_required() {
    let mut message = base();
    message.nil = None;
    assert_eq!(
        compose(&message),
        Err(ComposeError::Header(HeaderError::MissingNil))
    );
}

#[test]
fn end_of_patient_exchange() {
    let mut message = base();
    message.end_patient_exchange = true;
    assert_eq!(
        compose(&message),
        Err(ComposeError::Header(HeaderError::EndWithoutPatient))
    );
    message.to = vec![Mailbox::new(format!("{INS}@patient.mssante.fr"))];
    message.cc.clear();
    let read = parse_incoming(&compose(&message).unwrap()).unwrap();
    assert_eq!(read.x_mss.mes.as_deref(), Some("FIN"));
}

#[test]
fn patient_messages_over_25_mb_are_refused() {
    let mut message = base();
    message.xdm.as_mut().unwrap().zip = vec![7u8; 19_000_000]; // ~25.6 MB once in base64
    message.to = vec![Mailbox::new(format!("{INS}@patient.mssante.fr"))];
    match compose(&message) {
        Err(ComposeError::TooLargeForPatient { size }) => assert!(size > PATIENT_MAX_MESSAGE_BYTES),
        other => panic!(
            "expected TooLargeForPatient, got {:?}",
            other.map(|b| b.len())
        ),
    }
    // The same message to a professional is not limited here.
    message.to = vec![Mailbox::new("dr.martin@cabinet-b.mssante.fr")];
    assert!(compose(&message).unwrap().len() > PATIENT_MAX_MESSAGE_BYTES);
}

#[test]
fn invalid_addresses_and_ids_are_refused() {
    let mut message = base();
    message.to = vec![];
    assert_eq!(compose(&message), Err(ComposeError::NoRecipient));

    let mut message = base();
    message.to = vec![Mailbox::new("pas une adresse")];
    assert!(matches!(
        compose(&message),
        Err(ComposeError::Address { field: "To", .. })
    ));

    let mut message = base();
    message.message_id = "no at sign".into();
    assert!(matches!(compose(&message), Err(ComposeError::MessageId(_))));
}

#[test]
fn default_subject_needs_the_patient_names() {
    let mut message = base();
    for doc in &mut message.xdm.as_mut().unwrap().documents {
        doc.patient.traits.first_given_name = None;
    }
    assert!(matches!(compose(&message), Err(ComposeError::Subject(_))));
    // The given name in use is the fallback.
    message.xdm.as_mut().unwrap().documents[0]
        .patient
        .used_given_name = Some("Domi".into());
    let read = parse_incoming(&compose(&message).unwrap()).unwrap();
    assert_eq!(
        read.subject.as_deref(),
        Some("XDM/1.0/DDM+CR d'imagerie médicale PAT-TROIS Domi 05/03/1979")
    );
}
