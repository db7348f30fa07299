//! METADATA.XML variants: namespace prefixes, folder layouts, URI forms and
//! the ways the `action` extra metadata is written.

mod xdm_support;

use mss_docs::cda::parse_header;
use mss_docs::xdm::{self, Action, Limits, PackRequest, SubmissionTime, XdmInput, XdmPackage};
use sha1::{Digest, Sha1};
use xdm_support::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/xdm")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn with_document(metadata: &str, doc: &[u8], upper_hash: bool) -> String {
    let mut hash = hex::encode(Sha1::digest(doc));
    if upper_hash {
        hash = hash.to_uppercase();
    }
    metadata
        .replace("@HASH@", &hash)
        .replace("@SIZE@", &doc.len().to_string())
}

fn read(bytes: &[u8]) -> XdmPackage {
    xdm::read(bytes, &Limits::default()).unwrap()
}

#[test]
fn default_namespace_extra_root_folder_action_on_submission_set() {
    let cda = cda_xml(&CdaSpec::default());
    let metadata = with_document(&fixture("metadata_default_ns.xml"), cda.as_bytes(), false);
    let zip = zip_of(
        &[
            ("KA202401/README.TXT", b"readme"),
            (
                "KA202401/IHE_XDM/SUBSET01/METADATA.XML",
                metadata.as_bytes(),
            ),
            ("KA202401/IHE_XDM/SUBSET01/DOCS/CRBIO.XML", cda.as_bytes()),
        ],
        false,
    );
    let package = read(&zip);
    assert_eq!(package.action, Some(Action::Delete));
    let ss = &package.submission_set;
    assert_eq!(ss.unique_id.as_deref(), Some("1.2.250.1.999.77.1"));
    assert_eq!(ss.source_id.as_deref(), Some("1.2.250.1.999.77"));
    assert_eq!(
        ss.patient_id.as_deref(),
        Some("279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")
    );
    assert_eq!(ss.submission_time.as_deref(), Some("20240301101500"));
    let doc = &package.documents[0];
    assert_eq!(
        doc.path.as_deref(),
        Some("KA202401/IHE_XDM/SUBSET01/DOCS/CRBIO.XML")
    );
    assert_eq!(doc.action, None);
    assert_eq!(doc.unique_id.as_deref(), Some("1.2.250.1.999.1.1"));
    let type_code = doc.type_code.as_ref().unwrap();
    assert_eq!(type_code.code, "11502-2");
    assert_eq!(type_code.system.as_deref(), Some("2.16.840.1.113883.6.1"));
    assert_eq!(
        type_code.display.as_deref(),
        Some("CR d'examens biologiques")
    );
    let class_code = doc.class_code.as_ref().unwrap();
    assert_eq!(
        (class_code.code.as_str(), class_code.display.as_deref()),
        ("10", None)
    );
    assert_eq!(doc.format_code, None);
    assert_eq!(doc.title.as_deref(), Some("CR de biologie"));
    assert_eq!(doc.creation_time.as_deref(), Some("20240301090000"));
    assert!(
        doc.hash_ok && doc.size_ok,
        "{:?}",
        package.integrity_errors()
    );
    assert_eq!(
        doc.cda.as_ref().unwrap().title.as_deref(),
        Some("Compte rendu de biologie")
    );
    assert_eq!(doc.cda_error, None);
}

#[test]
fn ns5_ns2_prefixes_action_on_document_entry() {
    let cda = cda_xml(&CdaSpec {
        level1: true,
        ..CdaSpec::default()
    });
    let metadata = with_document(&fixture("metadata_ns5_ns2.xml"), cda.as_bytes(), true);
    let zip = zip_of(
        &[
            ("IHE_XDM/SS000001/metadata.xml", metadata.as_bytes()),
            ("IHE_XDM/SS000001/doc0001.xml", cda.as_bytes()),
        ],
        false,
    );
    let package = read(&zip);
    assert_eq!(package.action, Some(Action::Replace));
    assert_eq!(
        package.submission_set.unique_id.as_deref(),
        Some("1.2.250.1.999.88.1")
    );
    assert_eq!(
        package.submission_set.submission_time.as_deref(),
        Some("20240302111111")
    );
    let doc = &package.documents[0];
    assert_eq!(doc.action, Some(Action::Replace));
    assert_eq!(doc.uri.as_deref(), Some("DOC0001.XML"));
    assert_eq!(doc.path.as_deref(), Some("IHE_XDM/SS000001/doc0001.xml"));
    assert_eq!(doc.type_code.as_ref().unwrap().code, "18748-4");
    assert_eq!(
        doc.format_code.as_ref().map(|c| c.code.as_str()),
        Some("urn:ihe:iti:xds-sd:pdf:2008")
    );
    assert_eq!(
        doc.patient_id.as_deref(),
        Some("279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")
    );
    assert!(doc.hash_ok && doc.size_ok);
    assert!(doc.cda.is_some());
}

/// A package written by `write`, its METADATA.XML edited by `edit`.
fn edited(action: Option<Action>, edit: impl Fn(&str) -> String) -> XdmPackage {
    let cda = cda_xml(&CdaSpec::default());
    let header = parse_header(cda.as_bytes()).unwrap();
    let mut request = PackRequest::new(
        SubmissionTime::parse("20240105150000").unwrap(),
        "1.2.250.1.999.9",
    );
    request.action = action;
    let bytes = xdm::write(&[XdmInput::new(cda.as_bytes(), &header)], &request).unwrap();
    let bytes = rezip(&bytes, |name, data| {
        if name.ends_with("METADATA.XML") {
            edit(std::str::from_utf8(&data).unwrap()).into_bytes()
        } else {
            data
        }
    });
    read(&bytes)
}

#[test]
fn action_spellings() {
    let same = |s: &str| s.to_string();
    assert_eq!(edited(None, same).action, None);
    assert_eq!(
        edited(Some(Action::Replace), same).action,
        Some(Action::Replace)
    );
    assert_eq!(
        edited(Some(Action::Delete), same).action,
        Some(Action::Delete)
    );

    // Only on the DocumentEntry (the SubmissionSet slot removed).
    let package = edited(Some(Action::Delete), |m| {
        let first = m.find(r#"<rim:Slot name="action">"#).unwrap();
        let end = m[first..].find("</rim:Slot>").unwrap() + first + "</rim:Slot>".len();
        format!("{}{}", &m[..first], &m[end..])
    });
    assert_eq!(package.action, Some(Action::Delete));
    assert_eq!(package.documents[0].action, Some(Action::Delete));

    // URN-prefixed, other case.
    let package = edited(Some(Action::Replace), |m| {
        m.replace(r#"name="action""#, r#"name="urn:asip:ci-sis:Action""#)
    });
    assert_eq!(package.action, Some(Action::Replace));

    // Unknown value, or a name that merely contains "action": no action.
    let package = edited(Some(Action::Replace), |m| {
        m.replace("<rim:Value>C</rim:Value>", "<rim:Value>X</rim:Value>")
    });
    assert_eq!(package.action, None);
    let package = edited(Some(Action::Replace), |m| {
        m.replace(r#"name="action""#, r#"name="transaction""#)
    });
    assert_eq!(package.action, None);
}

#[test]
fn rplc_association_means_replace() {
    let package = edited(None, |m| {
        let de = m.split("<rim:ExtrinsicObject id=\"").nth(1).unwrap();
        let de_id = &de[..de.find('"').unwrap()];
        m.replace(
            "</rim:RegistryObjectList>",
            &format!(
                r#"<rim:Association id="urn:uuid:0b7c5f6e-0000-4000-8000-000000000001" associationType="urn:ihe:iti:2007:AssociationType:RPLC" sourceObject="{de_id}" targetObject="urn:uuid:0b7c5f6e-0000-4000-8000-000000000002"/></rim:RegistryObjectList>"#
            ),
        )
    });
    assert_eq!(package.documents[0].action, Some(Action::Replace));
    assert_eq!(package.action, Some(Action::Replace));
}

#[test]
fn uri_resolved_by_basename() {
    let package = edited(None, |m| {
        m.replace(
            "<rim:Value>DOC0001.XML</rim:Value>",
            "<rim:Value>elsewhere/doc0001.xml</rim:Value>",
        )
    });
    let doc = &package.documents[0];
    assert_eq!(doc.path.as_deref(), Some("IHE_XDM/SUBSET01/DOC0001.XML"));
    assert!(doc.hash_ok && doc.size_ok);

    let package = edited(None, |m| {
        m.replace(
            "<rim:Value>DOC0001.XML</rim:Value>",
            "<rim:Value>../SUBSET01/DOC0001.XML</rim:Value>",
        )
    });
    assert_eq!(package.documents[0].path, None, "no escape through ..");
}

#[test]
fn several_submission_sets_first_is_read() {
    let one = cda_xml(&CdaSpec::default());
    let two = cda_xml(&CdaSpec {
        id_root: "1.2.250.1.999.1.2".into(),
        ..CdaSpec::default()
    });
    let meta_one = with_document(&fixture("metadata_ns5_ns2.xml"), one.as_bytes(), false);
    let meta_two = with_document(&fixture("metadata_ns5_ns2.xml"), two.as_bytes(), false);
    let zip = zip_of(
        &[
            ("IHE_XDM/SUBSET02/METADATA.XML", meta_two.as_bytes()),
            ("IHE_XDM/SUBSET02/DOC0001.XML", two.as_bytes()),
            ("IHE_XDM/SUBSET01/METADATA.XML", meta_one.as_bytes()),
            ("IHE_XDM/SUBSET01/DOC0001.XML", one.as_bytes()),
        ],
        false,
    );
    let package = read(&zip);
    assert_eq!(package.metadata_path, "IHE_XDM/SUBSET01/METADATA.XML");
    assert_eq!(package.ignored_metadata, ["IHE_XDM/SUBSET02/METADATA.XML"]);
    assert_eq!(
        package.documents[0].path.as_deref(),
        Some("IHE_XDM/SUBSET01/DOC0001.XML")
    );
    assert!(package.documents[0].hash_ok);
}

#[test]
fn non_cda_document_has_no_header() {
    let package = edited(None, |m| {
        m.replace(r#"mimeType="text/xml""#, r#"mimeType="application/pdf""#)
    });
    // Content sniffing still recognises the CDA.
    assert!(package.documents[0].cda.is_some());

    let pdf = b"%PDF-1.4 not a CDA";
    let metadata = with_document(&fixture("metadata_ns5_ns2.xml"), pdf, false)
        .replace(r#"mimeType="text/xml""#, r#"mimeType="application/pdf""#);
    let zip = zip_of(
        &[
            ("IHE_XDM/S1/METADATA.XML", metadata.as_bytes()),
            ("IHE_XDM/S1/DOC0001.XML", pdf),
        ],
        false,
    );
    let doc = &read(&zip).documents[0];
    assert!(doc.cda.is_none() && doc.cda_error.is_none());

    let broken = b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><id root=\"1.2\"/>";
    let metadata = with_document(&fixture("metadata_ns5_ns2.xml"), broken, false);
    let zip = zip_of(
        &[
            ("IHE_XDM/S1/METADATA.XML", metadata.as_bytes()),
            ("IHE_XDM/S1/DOC0001.XML", broken),
        ],
        false,
    );
    let doc = &read(&zip).documents[0];
    assert!(doc.cda.is_none());
    assert!(doc.cda_error.is_some());
}
