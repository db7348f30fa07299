//! Header injection: a CR or LF in any value that reaches a header must be
//! refused (or, for what mail-builder encodes itself, made harmless).

use mss_docs::cda::{BodyLevel, CdaHeader, Coded, InstanceId, Patient};
use mss_docs::headers::HeaderError;
use mss_docs::message::{
    ComposeError, Mailbox, OutgoingMessage, PdfAttachment, XdmPackage, compose, parse_incoming,
};
use mss_docs::subject::{SubjectParts, build_subject};

const EVIL: &str = "\r\nBcc: spy@evil.example\r\nX-Injected: 1";

fn base() -> OutgoingMessage {
    OutgoingMessage {
        from: Mailbox::named("a@hopital-a.mssante.fr", "Service A"),
        to: vec![Mailbox::new("b@cabinet-b.mssante.fr")],
        message_id: "1@hopital-a.mssante.fr".into(),
        date: 0,
        subject: Some("Bonjour".into()),
        body: "corps".into(),
        nil: Some("DEV935997".into()),
        ..OutgoingMessage::default()
    }
}

/// No header named Bcc or X-Injected in the top-level header block.
fn assert_not_injected(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.starts_with("bcc:") && !lower.starts_with("x-injected:"),
            "injected header line {line:?} in {head}"
        );
    }
}

#[test]
fn subject_with_line_break_is_refused() {
    let mut message = base();
    message.subject = Some(format!("Bonjour{EVIL}"));
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "Subject" })
    );
}

#[test]
fn display_names_with_line_break_are_refused() {
    let mut message = base();
    message.from.display_name = Some(format!("Service{EVIL}"));
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "From" })
    );
    let mut message = base();
    message.to = vec![Mailbox::named("b@cabinet-b.mssante.fr", format!("B{EVIL}"))];
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "To" })
    );
    let mut message = base();
    message.cc = vec![Mailbox::named("c@cabinet-b.mssante.fr", "C\nX: y")];
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "Cc" })
    );
}

#[test]
fn addresses_with_line_break_are_refused() {
    let mut message = base();
    message.to = vec![Mailbox::new(format!("b@cabinet-b.mssante.fr{EVIL}"))];
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "To" })
    );
    let mut message = base();
    message.from = Mailbox::new(format!("a@hopital-a.mssante.fr{EVIL}"));
    assert_eq!(
        compose(&message),
        Err(ComposeError::Injection { field: "From" })
    );
}

#[test]
fn nil_with_line_break_is_refused() {
    let mut message = base();
    message.nil = Some(format!("DEV935997{EVIL}"));
    assert_eq!(
        compose(&message),
        Err(ComposeError::Header(HeaderError::Injection {
            name: "X-MSS-NIL".into()
        }))
    );
}

#[test]
fn message_ids_with_line_break_are_refused() {
    let mut message = base();
    message.message_id = format!("1@x.fr{EVIL}");
    assert!(matches!(compose(&message), Err(ComposeError::MessageId(_))));
    let mut message = base();
    message.in_reply_to = Some(format!("1@x.fr{EVIL}"));
    assert!(matches!(compose(&message), Err(ComposeError::MessageId(_))));
    let mut message = base();
    message.references = vec![format!("1@x.fr>{EVIL}")];
    assert!(matches!(compose(&message), Err(ComposeError::MessageId(_))));
}

#[test]
fn pdf_name_with_line_break_is_refused() {
    let mut message = base();
    message.pdfs = vec![PdfAttachment {
        file_name: format!("cr.pdf{EVIL}"),
        bytes: vec![1, 2, 3],
    }];
    assert!(matches!(compose(&message), Err(ComposeError::FileName(_))));
}

fn cda_with(code: &str, display: &str, family: &str) -> CdaHeader {
    CdaHeader {
        code: Some(Coded {
            code: code.into(),
            system: None,
            display: Some(display.into()),
        }),
        patient: Patient {
            traits: mss_model::IdentityTraits {
                birth_name: Some(family.into()),
                first_given_name: Some("JEAN".into()),
                ..Default::default()
            },
            ..Patient::default()
        },
        ..CdaHeader::new(
            InstanceId {
                root: "1.2.3".into(),
                extension: None,
            },
            BodyLevel::Structured,
        )
    }
}

#[test]
fn document_code_with_line_break_is_refused() {
    let mut message = base();
    message.xdm = Some(XdmPackage {
        zip: vec![0; 10],
        documents: vec![cda_with(&format!("11488-4{EVIL}"), "CR", "DUPONT")],
    });
    assert!(matches!(
        compose(&message),
        Err(ComposeError::Header(HeaderError::Injection { .. }))
    ));
}

#[test]
fn line_breaks_in_document_data_never_reach_the_subject_header() {
    // Names and labels come from received documents: they are cleaned, not refused.
    let mut message = base();
    message.subject = None;
    message.xdm = Some(XdmPackage {
        zip: vec![0; 10],
        documents: vec![cda_with(
            "11488-4",
            &format!("CR{EVIL}"),
            &format!("DUPONT{EVIL}"),
        )],
    });
    let raw = compose(&message).unwrap();
    assert_not_injected(&raw);
    let read = parse_incoming(&raw).unwrap();
    let subject = read.subject.unwrap();
    assert!(
        subject.starts_with("XDM/1.0/DDM+CR Bcc: spy@evil.example"),
        "{subject}"
    );
    assert!(!subject.contains('\n'));
}

#[test]
fn mail_builder_encodes_control_characters_in_text_headers() {
    // Defence in depth: even if a value slipped through, mail-builder writes
    // a text header with CR/LF as an encoded word, never as a new line.
    use mail_builder::{MessageBuilder, headers::text::Text};
    let raw = MessageBuilder::new()
        .from("a@x.fr")
        .to("b@y.fr")
        .message_id("1@x.fr")
        .date(0i64)
        .subject(Text::new(format!("Bonjour{EVIL}")))
        .text_body("x")
        .write_to_vec()
        .unwrap();
    assert_not_injected(&raw);
    let read = parse_incoming(&raw).unwrap();
    // mss reads the subject back as one line.
    assert_eq!(
        read.subject.as_deref(),
        Some("Bonjour Bcc: spy@evil.example X-Injected: 1")
    );
}

#[test]
fn subject_builder_never_outputs_line_breaks() {
    let s = build_subject(&SubjectParts {
        label: format!("CR{EVIL}"),
        family_name: "a\rb".into(),
        given_name: "c\u{0}d".into(),
        birth_date: None,
    })
    .unwrap();
    assert!(!s.chars().any(char::is_control), "{s:?}");
}
