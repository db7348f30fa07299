//! parse_incoming never panics on mutated composed messages.

use mss_docs::message::{Mailbox, OutgoingMessage, PdfAttachment, compose, parse_incoming};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    compose(&OutgoingMessage {
        from: Mailbox::named("a@x.mssante.fr", "Dr Émile A"),
        to: vec![Mailbox::new("b@y.mssante.fr")],
        message_id: "1@x.mssante.fr".into(),
        subject: Some("Résultats".into()),
        body: "Bonjour\r\nà bientôt".into(),
        pdfs: vec![PdfAttachment {
            file_name: "cr é.pdf".into(),
            bytes: vec![0, 1, 2, 255],
        }],
        nil: Some("DEV1".into()),
        ..OutgoingMessage::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_message(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32),
                       cut in any::<prop::sample::Index>()) {
        let mut data = sample();
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let end = cut.index(data.len() + 1);
        let _ = parse_incoming(&data[..end]);
    }

    #[test]
    fn compose_never_panics(subject in any::<String>(), name in any::<String>(), address in any::<String>(),
                            nil in any::<String>(), body in any::<String>()) {
        let message = OutgoingMessage {
            from: Mailbox::named("a@x.mssante.fr", name),
            to: vec![Mailbox::new(address)],
            message_id: "1@x.mssante.fr".into(),
            subject: Some(subject),
            body,
            nil: Some(nil),
            ..OutgoingMessage::default()
        };
        if let Ok(raw) = compose(&message) {
            let read = parse_incoming(&raw).unwrap();
            prop_assert_eq!(read.to.len(), 1);
        }
    }
}

/// A message found by fuzzing the engine that trips a debug assertion inside mail-parser
/// 0.11 (release builds have none): debug and test builds must answer like release ones,
/// which the workspace's `[profile.dev.package.mail-parser]` ensures.
#[test]
fn the_fuzz_found_mail_parser_assertion_gets_an_answer_not_a_panic() {
    let raw = include_bytes!("fixtures/hostile/mail-parser-debug-assert.eml");
    let _ = parse_incoming(raw);
}
