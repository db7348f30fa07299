//! Hostile or broken archives: each is refused with its own error, without
//! expanding what it claims to hold.

mod xdm_support;

use mss_docs::cda::parse_header;
use mss_docs::xdm::{
    self, IntegrityError, Limits, PackRequest, SubmissionTime, XdmError, XdmInput,
};
use xdm_support::*;

const META: &str = "IHE_XDM/SUBSET01/METADATA.XML";

/// A valid package of one generated CDA.
fn valid_package() -> Vec<u8> {
    let cda = cda_xml(&CdaSpec::default());
    let header = parse_header(cda.as_bytes()).expect("generated CDA parses");
    let request = PackRequest::new(
        SubmissionTime::parse("20240105150000").unwrap(),
        "1.2.250.1.999.9",
    );
    xdm::write(&[XdmInput::new(cda.as_bytes(), &header)], &request).unwrap()
}

fn read(bytes: &[u8]) -> Result<xdm::XdmPackage, XdmError> {
    xdm::read(bytes, &Limits::default())
}

/// Bytes that barely compress (xorshift), so the ratio check stays quiet.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn valid_package_reads() {
    let package = read(&valid_package()).unwrap();
    assert_eq!(package.documents.len(), 1);
    assert!(package.integrity_errors().is_empty());
}

#[test]
fn not_a_zip() {
    assert!(matches!(
        read(b"Bonjour, ceci n'est pas un zip"),
        Err(XdmError::NotZip(_))
    ));
    assert!(matches!(read(b""), Err(XdmError::NotZip(_))));
}

#[test]
fn truncated_zip() {
    let bytes = valid_package();
    for cut in [bytes.len() / 2, bytes.len() - 10, 30] {
        let err = read(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, XdmError::Truncated(_)), "cut {cut}: {err:?}");
    }
}

#[test]
fn zip_bomb_by_ratio() {
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let bomb = zip_of(
        &[(META, b"<x/>"), ("IHE_XDM/SUBSET01/DOC0001.XML", &zeros)],
        false,
    );
    assert!(bomb.len() < 200 * 1024, "the bomb is small: {}", bomb.len());
    let err = read(&bomb).unwrap_err();
    assert!(matches!(err, XdmError::RatioExceeded { .. }), "{err:?}");
}

#[test]
fn zip_bomb_lying_about_its_size() {
    // Same bomb, but both headers claim 1000 bytes: only `take` stops it.
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let mut bomb = zip_of(&[("IHE_XDM/SUBSET01/DOC0001.XML", &zeros)], false);
    let real = (zeros.len() as u32).to_le_bytes();
    for at in find_all(&bomb, &real) {
        bomb[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    }
    let err = read(&bomb).unwrap_err();
    assert!(
        matches!(
            err,
            XdmError::RatioExceeded { .. } | XdmError::EntryCorrupt { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn zip_bomb_by_total_size() {
    let limits = Limits {
        max_total_size: 2 * 1024 * 1024,
        ..Limits::default()
    };
    let parts: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("IHE_XDM/SUBSET01/PART{i:04}.BIN"),
                noise(300 * 1024, i + 1),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bomb = zip_of(&refs, false);
    let err = xdm::read(&bomb, &limits).unwrap_err();
    assert!(matches!(err, XdmError::TotalTooLarge { .. }), "{err:?}");
}

#[test]
fn entry_too_large() {
    let limits = Limits {
        max_entry_size: 100 * 1024,
        ..Limits::default()
    };
    let big = noise(200 * 1024, 7);
    let zip = zip_of(&[("IHE_XDM/SUBSET01/DOC0001.XML", &big)], false);
    let err = xdm::read(&zip, &limits).unwrap_err();
    assert!(matches!(err, XdmError::EntryTooLarge { .. }), "{err:?}");
}

#[test]
fn parent_and_absolute_names() {
    for name in ["../evil.xml", "IHE_XDM/../../evil.xml", "/etc/passwd"] {
        let zip = zip_of(&[(name, b"x")], true);
        let err = read(&zip).unwrap_err();
        assert!(matches!(err, XdmError::UnsafePath(_)), "{name}: {err:?}");
    }
}

#[test]
fn too_many_entries() {
    let names: Vec<String> = (0..1001).map(|i| format!("F{i:05}.TXT")).collect();
    let refs: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let zip = zip_of(&refs, true);
    let err = read(&zip).unwrap_err();
    assert!(
        matches!(
            err,
            XdmError::TooManyEntries {
                count: 1001,
                max: 1000
            }
        ),
        "{err:?}"
    );
}

#[test]
fn encrypted_entry() {
    let mut zip = zip_of(&[("IHE_XDM/SUBSET01/DOC0001.XML", b"secret")], true);
    // General purpose flag bit 0: in the local header (offset 6) and in the
    // central directory header (offset 8).
    for at in find_all(&zip, b"PK\x03\x04") {
        zip[at + 6] |= 1;
    }
    for at in find_all(&zip, b"PK\x01\x02") {
        zip[at + 8] |= 1;
    }
    let err = read(&zip).unwrap_err();
    assert!(matches!(err, XdmError::Encrypted(_)), "{err:?}");
}

#[test]
fn symlink_entry() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.add_symlink(
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let err = read(&bytes).unwrap_err();
    assert!(matches!(err, XdmError::Symlink(_)), "{err:?}");
}

#[test]
fn duplicate_names() {
    let mut zip = zip_of(&[("A/DOC1.XML", b"one"), ("A/DOC2.XML", b"two")], true);
    for at in find_all(&zip, b"A/DOC2.XML") {
        zip[at..at + 10].copy_from_slice(b"A/DOC1.XML");
    }
    let err = read(&zip).unwrap_err();
    assert!(matches!(err, XdmError::DuplicateName(_)), "{err:?}");

    let zip = zip_of(&[("A/DOC1.XML", b"one"), ("a/doc1.xml", b"two")], true);
    let err = read(&zip).unwrap_err();
    assert!(
        matches!(err, XdmError::DuplicateName(ref n) if n == "a/doc1.xml"),
        "{err:?}"
    );
}

#[test]
fn missing_metadata() {
    let zip = zip_of(
        &[
            ("README.TXT", b"hello"),
            ("IHE_XDM/SUBSET01/DOC0001.XML", b"<x/>"),
        ],
        false,
    );
    assert_eq!(read(&zip).unwrap_err(), XdmError::MetadataMissing);
}

#[test]
fn malformed_metadata() {
    let zip = rezip(&valid_package(), |name, data| {
        if name == META {
            data[..data.len() / 2].to_vec()
        } else {
            data
        }
    });
    let err = read(&zip).unwrap_err();
    assert!(matches!(err, XdmError::MetadataMalformed { .. }), "{err:?}");

    let zip = zip_of(&[(META, b"<html><body/></html>")], false);
    let err = read(&zip).unwrap_err();
    assert!(matches!(err, XdmError::MetadataInvalid { .. }), "{err:?}");

    let zip = zip_of(&[(META, b"\xff\xfe<\x00")], false);
    let err = read(&zip).unwrap_err();
    assert!(matches!(err, XdmError::MetadataMalformed { .. }), "{err:?}");
}

#[test]
fn metadata_with_dtd_or_xxe() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE lcm:SubmitObjectsRequest [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">&xxe;</lcm:SubmitObjectsRequest>"#;
    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE r [ <!ENTITY a "aaaaaaaaaa"> <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"> ]>
<r>&b;</r>"#;
    for metadata in [&xxe[..], &laughs[..]] {
        let zip = zip_of(&[(META, metadata)], false);
        let err = read(&zip).unwrap_err();
        assert!(matches!(err, XdmError::MetadataDtd { .. }), "{err:?}");
    }
}

#[test]
fn hash_mismatch_is_reported() {
    let zip = rezip(&valid_package(), |name, mut data| {
        if name.ends_with("DOC0001.XML") {
            let at = data.len() - 20;
            data[at] ^= 0x20; // same size, other bytes
        }
        data
    });
    let package = read(&zip).unwrap();
    let doc = &package.documents[0];
    assert!(!doc.hash_ok);
    assert!(doc.size_ok);
    let errors = package.integrity_errors();
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(errors[0], IntegrityError::HashMismatch { .. }),
        "{errors:?}"
    );
}

#[test]
fn size_mismatch_is_reported() {
    let zip = rezip(&valid_package(), |name, mut data| {
        if name.ends_with("DOC0001.XML") {
            data.extend_from_slice(b"\n\n");
        }
        data
    });
    let package = read(&zip).unwrap();
    let doc = &package.documents[0];
    assert!(!doc.size_ok);
    assert!(!doc.hash_ok);
    let errors = package.integrity_errors();
    assert!(errors.iter().any(|e| matches!(e, IntegrityError::SizeMismatch { actual, .. } if *actual == doc.content().len() as u64)));
}

#[test]
fn missing_document_is_reported() {
    let files: Vec<(String, Vec<u8>)> = unzip_all(&valid_package())
        .into_iter()
        .filter(|(n, _)| !n.ends_with("DOC0001.XML"))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let package = read(&zip_of(&refs, false)).unwrap();
    let doc = &package.documents[0];
    assert_eq!(doc.path, None);
    assert!(doc.content().is_empty());
    assert!(matches!(
        package.integrity_errors().as_slice(),
        [IntegrityError::Missing { uri, .. }] if uri == "DOC0001.XML"
    ));
}

#[test]
fn errors_are_one_line() {
    let errors = [
        XdmError::NotZip("x".into()),
        XdmError::MetadataMissing,
        XdmError::RatioExceeded {
            name: "a".into(),
            max_ratio: 100,
        },
        XdmError::UnknownClassCode("X".into()),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.contains('\n') && text.len() > 20, "{text}");
    }
}

#[test]
fn too_many_document_entries() {
    let objects: String = (0..1001)
        .map(|i| format!(r#"<rim:ExtrinsicObject id="d{i}"><rim:Slot name="URI"><rim:ValueList><rim:Value>DOC.XML</rim:Value></rim:ValueList></rim:Slot></rim:ExtrinsicObject>"#))
        .collect();
    let metadata = format!(
        r#"<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList><rim:RegistryPackage id="ss"/>{objects}</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"#
    );
    let big = noise(1024 * 1024, 3);
    let zip = zip_of(
        &[
            (META, metadata.as_bytes()),
            ("IHE_XDM/SUBSET01/DOC.XML", &big),
        ],
        false,
    );
    let err = read(&zip).unwrap_err();
    assert!(
        matches!(err, XdmError::MetadataInvalid { ref reason, .. } if reason.contains("1001")),
        "{err:?}"
    );
    // Within the limit, entries sharing one file share its bytes.
    let limits = Limits {
        max_entries: 2000,
        ..Limits::default()
    };
    let package = xdm::read(&zip, &limits).unwrap();
    assert_eq!(package.documents.len(), 1001);
    assert!(
        package
            .documents
            .iter()
            .all(|d| d.content().len() == big.len())
    );
}

#[test]
fn many_entries_sharing_one_cda_all_get_its_header() {
    // 1000 DocumentEntries on one CDA: the header is read once per file,
    // not once per entry, and every entry reports it.
    let cda = cda_xml(&CdaSpec::default());
    let objects: String = (0..1000)
        .map(|i| format!(r#"<rim:ExtrinsicObject id="d{i}" mimeType="text/xml"><rim:Slot name="URI"><rim:ValueList><rim:Value>DOC0001.XML</rim:Value></rim:ValueList></rim:Slot></rim:ExtrinsicObject>"#))
        .collect();
    let metadata = format!(
        r#"<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList><rim:RegistryPackage id="ss"/>{objects}</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"#
    );
    let zip = zip_of(
        &[
            (META, metadata.as_bytes()),
            ("IHE_XDM/SUBSET01/DOC0001.XML", cda.as_bytes()),
        ],
        false,
    );
    let package = read(&zip).unwrap();
    assert_eq!(package.documents.len(), 1000);
    let expected = parse_header(cda.as_bytes()).unwrap();
    assert!(
        package
            .documents
            .iter()
            .all(|d| d.cda.as_ref() == Some(&expected) && d.cda_error.is_none())
    );
}
