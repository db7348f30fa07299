//! parse_mdn and parse_incoming never panic, whatever the bytes.

use mss_docs::mdn::{ErrorCode, MdnOutcome, MdnRequest, build_mdn, parse_mdn};
use mss_docs::message::parse_incoming;
use proptest::prelude::*;

fn sample_mdn() -> Vec<u8> {
    build_mdn(&MdnRequest {
        reporting_bal: "bal@a.mssante.fr",
        reporting_name: None,
        notify: "x@b.mssante.fr",
        original_recipient: None,
        original_message_id: "o.1@b.mssante.fr",
        original_subject: "XDM/1.0/DDM+CR DUPONT JEAN",
        original_message: b"From: x@b.mssante.fr\r\nSubject: s\r\n\r\nbody\r\n",
        outcome: MdnOutcome::Failed(ErrorCode::InsMismatch),
        reporting_ua: "mss",
        message_id: "m.1@a.mssante.fr",
        date: 0,
        nil: Some("DEV1"),
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_mdn(&data);
        let _ = parse_incoming(&data);
    }

    #[test]
    fn mutated_mdn(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32),
                   cut in any::<prop::sample::Index>()) {
        let mut data = sample_mdn();
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let end = cut.index(data.len() + 1);
        let _ = parse_mdn(&data[..end]);
        let _ = parse_incoming(&data[..end]);
    }

    #[test]
    fn textual_fields(disposition in "[ -~]{0,120}", error in proptest::option::of("[ -~]{0,80}"),
                      recipient in "[ -~]{0,60}") {
        let mut raw = format!(
            "From: a@b.fr\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: {recipient}\r\nDisposition: {disposition}\r\n"
        );
        if let Some(e) = error {
            raw.push_str(&format!("Error: {e}\r\n"));
        }
        raw.push_str("--q--\r\n");
        let _ = parse_mdn(raw.as_bytes());
    }
}
