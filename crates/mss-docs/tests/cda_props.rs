//! Property tests: no input makes the reader panic, and the body never
//! changes what the header says.

use mss_docs::cda::{BodyLevel, parse_header};
use proptest::prelude::*;

const N3: &[u8] = include_bytes!("fixtures/cda/n3_default_ns.xml");
const N1: &[u8] = include_bytes!("fixtures/cda/n1_pdf.xml");

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                b"<".to_vec(),
                b"</".to_vec(),
                b">".to_vec(),
                b"&".to_vec(),
                b"\"".to_vec(),
                b"<!--".to_vec(),
                b"-->".to_vec(),
                b"<![CDATA[".to_vec(),
                b"<!DOCTYPE x>".to_vec(),
                b"<component>".to_vec(),
                b"</component>".to_vec(),
                b"<nonXMLBody>".to_vec(),
                b"xmlns=\"urn:hl7-org:v3\"".to_vec(),
                b"xmlns:cda=\"urn:x\"".to_vec(),
                "é".as_bytes().to_vec(),
            ])
        )
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut doc: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = doc.len().max(1);
        match e {
            Edit::Flip(i, b) => {
                if let Some(x) = doc.get_mut(i % len) {
                    *x = *b;
                }
            }
            Edit::Delete(i, n) => {
                let start = (i % len).min(doc.len());
                let end = (start + n).min(doc.len());
                doc.drain(start..end);
            }
            Edit::Insert(i, v) => {
                let at = (i % len).min(doc.len());
                doc.splice(at..at, v.iter().copied());
            }
            Edit::Truncate(i) => doc.truncate(i % len),
        }
    }
    doc
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_header(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(
        base in prop::sample::select(vec![N3, N1]),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let doc = apply(base.to_vec(), &edits);
        if let Ok(h) = parse_header(&doc) {
            prop_assert!(!h.id.root.is_empty());
            prop_assert!(matches!(h.level, BodyLevel::Structured | BodyLevel::Unstructured));
            prop_assert_eq!(parse_header(&doc), Ok(h));
        }
    }

    #[test]
    fn the_body_never_changes_the_header(text in any::<String>(), repeat in 1usize..50) {
        let original = parse_header(N3).unwrap();
        let n3 = std::str::from_utf8(N3).unwrap();
        let cleaned: String = text.chars().filter(|c| !c.is_control()).collect();
        let body_text = escape(&cleaned).repeat(repeat);
        let doc = n3.replacen("Contrôle annuel.", &body_text, 1);
        prop_assert_eq!(parse_header(doc.as_bytes()), Ok(original));
    }
}
