//! Bad input: each case ends in its own error, quickly, without panicking.

use mss_docs::cda::{BodyLevel, CdaError, MAX_HEADER_BYTES, XmlError, parse_header};

const N3: &str = include_str!("fixtures/cda/n3_default_ns.xml");

const OPEN: &str = r#"<ClinicalDocument xmlns="urn:hl7-org:v3">"#;
const BODY: &str = "<component><structuredBody/></component></ClinicalDocument>";

fn doc(header: &str) -> String {
    format!("{OPEN}<id root=\"1.2.3\"/>{header}{BODY}")
}

fn err(bytes: impl AsRef<[u8]>) -> CdaError {
    match parse_header(bytes.as_ref()) {
        Ok(h) => panic!("expected an error, got {h:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_input() {
    assert_eq!(err(""), CdaError::Empty);
    assert_eq!(err(" \r\n\t"), CdaError::Empty);
    assert_eq!(err("\u{FEFF}"), CdaError::Empty);
}

#[test]
fn malformed_xml() {
    assert!(matches!(
        err(doc("<title>x</titel>")),
        CdaError::Xml(XmlError::Malformed(_))
    ));
    assert!(matches!(
        err(doc("<code code=\"1\" code=\"2\"/>")),
        CdaError::Xml(XmlError::Malformed(_))
    ));
    assert!(matches!(
        err(doc("<title>&unknown;</title>")),
        CdaError::Xml(XmlError::Malformed(_))
    ));
    assert!(matches!(
        err(doc("<p:title>x</p:title>")),
        CdaError::Xml(XmlError::Malformed(_))
    ));
    assert!(matches!(
        err("just text"),
        CdaError::Xml(XmlError::Malformed(_))
    ));
    assert!(matches!(
        err(format!("x{}", doc(""))),
        CdaError::Xml(XmlError::Malformed(_))
    ));
}

#[test]
fn external_entity_is_refused_before_anything_is_resolved() {
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n{}",
        doc("<title>&xxe;</title>")
    );
    assert_eq!(err(xxe), CdaError::Xml(XmlError::Dtd));
    let external = format!(
        "<!DOCTYPE ClinicalDocument SYSTEM \"http://example.invalid/cda.dtd\">{}",
        doc("")
    );
    assert_eq!(err(external), CdaError::Xml(XmlError::Dtd));
}

#[test]
fn billion_laughs_is_refused() {
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("]>");
    assert_eq!(
        err(format!("{dtd}{}", doc("<title>&lol9;</title>"))),
        CdaError::Xml(XmlError::Dtd)
    );
}

#[test]
fn other_xml_is_not_a_cda() {
    let e = err("<html><body/></html>");
    assert_eq!(e, CdaError::NotCda("html (no namespace)".into()));
    assert!(e.to_string().contains("html"));
    // The right name in no namespace or in another one is not a CDA either.
    assert!(matches!(
        err("<ClinicalDocument><id root=\"1\"/></ClinicalDocument>"),
        CdaError::NotCda(_)
    ));
    let e =
        err(r#"<x:ClinicalDocument xmlns:x="urn:hl7-org:v2"><id root="1"/></x:ClinicalDocument>"#);
    assert_eq!(
        e,
        CdaError::NotCda("{urn:hl7-org:v2}ClinicalDocument".into())
    );
    // A METADATA.XML is not a CDA.
    let e = err(
        r#"<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>"#,
    );
    assert!(matches!(e, CdaError::NotCda(_)));
}

#[test]
fn an_xsl_wrapper_has_its_own_error() {
    let xsl = r#"<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:c="urn:hl7-org:v3">
  <xsl:template match="/"><c:ClinicalDocument><c:id root="1"/></c:ClinicalDocument></xsl:template>
</xsl:stylesheet>"#;
    let e = err(xsl);
    assert_eq!(e, CdaError::XslWrapper);
    assert!(e.to_string().contains("auto-présentable"));
}

#[test]
fn not_utf8() {
    let latin1 = doc("<title>R\u{e9}sum\u{e9}</title>").replace('\u{e9}', "\u{1}");
    let mut bytes = latin1.into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    for b in bytes.iter_mut().filter(|b| **b == 1) {
        *b = 0xE9; // ISO-8859-1 é
    }
    assert_eq!(err(&bytes), CdaError::Xml(XmlError::NotUtf8(at)));
    let utf16: Vec<u8> = "\u{FEFF}<a/>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(err(utf16), CdaError::Xml(XmlError::NotUtf8(0)));
}

#[test]
fn missing_or_unusable_id() {
    let no_id = format!("{OPEN}<title>x</title>{BODY}");
    assert_eq!(err(no_id), CdaError::MissingId);
    let null = format!("{OPEN}<id nullFlavor=\"UNK\"/>{BODY}");
    assert_eq!(err(null), CdaError::MissingId);
    let blank = format!("{OPEN}<id root=\"  \"/>{BODY}");
    assert_eq!(err(blank), CdaError::MissingId);
}

#[test]
fn missing_or_unknown_body() {
    assert_eq!(
        err(format!("{OPEN}<id root=\"1\"/></ClinicalDocument>")),
        CdaError::MissingBody
    );
    assert_eq!(
        err(r#"<ClinicalDocument xmlns="urn:hl7-org:v3"/>"#),
        CdaError::MissingBody
    );
    assert_eq!(
        err(format!(
            "{OPEN}<id root=\"1\"/><component/></ClinicalDocument>"
        )),
        CdaError::MissingBody
    );
    assert_eq!(
        err(format!(
            "{OPEN}<id root=\"1\"/><component> <!-- c --> </component></ClinicalDocument>"
        )),
        CdaError::MissingBody
    );
    assert_eq!(
        err(format!(
            "{OPEN}<id root=\"1\"/><component><section/></component></ClinicalDocument>"
        )),
        CdaError::UnknownBody("{urn:hl7-org:v3}section".into())
    );
    assert_eq!(
        err(format!(
            "{OPEN}<id root=\"1\"/><component>PDF</component></ClinicalDocument>"
        )),
        CdaError::UnknownBody("text".into())
    );
}

#[test]
fn invalid_version_number() {
    assert_eq!(
        err(doc("<versionNumber value=\"deux\"/>")),
        CdaError::InvalidVersion("deux".into())
    );
    assert_eq!(
        err(doc("<versionNumber value=\"0\"/>")),
        CdaError::InvalidVersion("0".into())
    );
    assert_eq!(
        parse_header(doc("<versionNumber/>").as_bytes())
            .unwrap()
            .version,
        None
    );
}

#[test]
fn every_truncation_is_detected() {
    let complete = N3.find("</ClinicalDocument>").unwrap() + "</ClinicalDocument>".len();
    let root = N3.find("<ClinicalDocument").unwrap();
    let root_open = root + N3[root..].find('>').unwrap() + 1;
    for cut in (root_open..complete).filter(|&c| N3.is_char_boundary(c)) {
        assert_eq!(
            parse_header(&N3.as_bytes()[..cut]),
            Err(CdaError::Truncated),
            "cut at {cut}"
        );
    }
    for cut in (1..root_open).filter(|&c| N3.is_char_boundary(c)) {
        assert!(parse_header(&N3.as_bytes()[..cut]).is_err(), "cut at {cut}");
    }
    assert!(parse_header(&N3.as_bytes()[..complete]).is_ok());
}

#[test]
fn a_huge_header_is_refused_without_reading_it_all() {
    // Elements the reader does not keep: only the size cap stops them.
    let participant = "<participant typeCode=\"INF\"><time value=\"20250101\"/></participant>";
    let mut huge = format!("{OPEN}<id root=\"1\"/>");
    huge.reserve(participant.len() * 1_000_000 + 100);
    for _ in 0..1_000_000 {
        huge.push_str(participant);
    }
    huge.push_str(BODY);
    let e = err(&huge);
    assert_eq!(e, CdaError::HeaderTooLarge(MAX_HEADER_BYTES));
    assert!(e.to_string().contains("8388608"));
}

#[test]
fn a_million_authors_are_refused_at_the_thousandth_and_first() {
    let author = "<author><time value=\"20250101\"/></author>";
    let e = err(doc(&author.repeat(1_000_000)));
    assert_eq!(e, CdaError::TooMany("author", 1000));
    assert_eq!(
        parse_header(doc(&author.repeat(1000)).as_bytes())
            .unwrap()
            .authors
            .len(),
        1000
    );
    let ids = "<templateId root=\"1.2\"/>".repeat(1001);
    assert_eq!(err(doc(&ids)), CdaError::TooMany("templateId", 1000));
}

#[test]
fn a_large_header_under_the_cap_is_read() {
    let participant = "<participant typeCode=\"INF\"><time value=\"20250101\"/></participant>";
    let big = doc(&format!(
        "{}<title>kept</title>",
        participant.repeat(100_000)
    ));
    assert!(big.len() > 6_000_000 && big.len() < MAX_HEADER_BYTES);
    assert_eq!(
        parse_header(big.as_bytes()).unwrap().title.as_deref(),
        Some("kept")
    );
}

#[test]
fn deep_nesting_is_skipped_or_truncated() {
    // Elements the reader does not keep are skipped whole, however deep.
    let depth = 100_000;
    let nested = format!("{}{}", "<x>".repeat(depth), "</x>".repeat(depth));
    assert_eq!(
        parse_header(doc(&nested).as_bytes()).unwrap().id.root,
        "1.2.3"
    );
    let unclosed = format!("{OPEN}<id root=\"1\"/>{}", "<x>".repeat(depth));
    assert_eq!(err(unclosed), CdaError::Truncated);
    let mismatched = format!(
        "{}{}</y>{BODY}",
        doc("").split("<component>").next().unwrap(),
        "<x><x></x>"
    );
    assert!(matches!(
        err(mismatched),
        CdaError::Xml(XmlError::Malformed(_))
    ));
}

#[test]
fn namespace_declarations_are_bounded() {
    let decls: String = (0..20_000)
        .map(|i| format!(" xmlns:n{i}=\"urn:n{i}\""))
        .collect();
    let d = format!("<ClinicalDocument xmlns=\"urn:hl7-org:v3\"{decls}><id root=\"1\"/>{BODY}");
    assert!(matches!(err(d), CdaError::Xml(XmlError::Malformed(m)) if m.contains("namespace")));

    let decls: String = (0..100)
        .map(|i| format!(" xmlns:n{i}=\"urn:n{i}\""))
        .collect();
    let children = "<templateId root=\"1.2\"/>".repeat(1000);
    let d = format!(
        "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"{decls}><id root=\"1\"/>{children}{BODY}"
    );
    assert_eq!(parse_header(d.as_bytes()).unwrap().template_ids.len(), 1000);
}

#[test]
fn a_prefix_redeclared_deeper_is_honoured() {
    // `id` here is in another namespace: it is not the document id.
    let d = format!(
        "{OPEN}<x:wrap xmlns:x=\"urn:other\" xmlns=\"urn:other\"><id root=\"9.9\"/></x:wrap><id root=\"1.2.3\"/>{BODY}"
    );
    assert_eq!(parse_header(d.as_bytes()).unwrap().id.root, "1.2.3");
    let undeclared = format!("{OPEN}<id root=\"1\"/><p:x/>{BODY}");
    assert!(
        matches!(err(undeclared), CdaError::Xml(XmlError::Malformed(m)) if m.contains("prefix"))
    );
}

#[test]
fn the_body_is_not_read() {
    // By design the body between its first child and the closing root tag is
    // not parsed: a broken body does not hide a good header.
    let d = format!(
        "{OPEN}<id root=\"1.2.3\"/><component><nonXMLBody><text>&lt; <<<< not xml &bogus;</oops></ClinicalDocument>"
    );
    assert_eq!(
        parse_header(d.as_bytes()).unwrap().level,
        BodyLevel::Unstructured
    );
}

#[test]
fn every_error_is_one_line_saying_what_to_do() {
    let errors = [
        CdaError::Empty,
        CdaError::Xml(XmlError::Dtd),
        CdaError::Xml(XmlError::NotUtf8(3)),
        CdaError::Xml(XmlError::TooManyNodes),
        CdaError::Xml(XmlError::Malformed("x".into())),
        CdaError::XslWrapper,
        CdaError::NotCda("html".into()),
        CdaError::Truncated,
        CdaError::HeaderTooLarge(MAX_HEADER_BYTES),
        CdaError::MissingBody,
        CdaError::UnknownBody("section".into()),
        CdaError::MissingId,
        CdaError::InvalidVersion("x".into()),
        CdaError::TooMany("author", 1000),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.contains(": ") && (text.contains("ask") || text.contains("check")),
            "{text}"
        );
    }
}
