//! Real ANS CDA examples packed and read back, when `../shared` is present.

mod xdm_support;

use mss_docs::cda::parse_header;
use mss_docs::xdm::{self, Action, Limits, PackRequest, SubmissionTime, XdmInput};
use xdm_support::shared_dir;

const INS_CX: &str = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH";

fn load(name: &str) -> Option<Vec<u8>> {
    let Some(dir) = shared_dir() else {
        println!("skipping: ../shared/fixtures/ans not present");
        return None;
    };
    Some(std::fs::read(dir.join("fixtures/ans/cda").join(name)).unwrap())
}

#[test]
fn pack_and_read_ans_bio_and_imaging_reports() {
    let (Some(bio), Some(img)) = (
        load("BIO-CR-BIO_2024.01_TSH_1.xml"),
        load("IMG_CR_IMG_2024.01.xml"),
    ) else {
        return;
    };
    let bio_header = parse_header(&bio).unwrap();
    let img_header = parse_header(&img).unwrap();
    let mut request = PackRequest::new(
        SubmissionTime::parse("20240401120000").unwrap(),
        "1.2.250.1.999.9",
    );
    request.action = Some(Action::Replace);
    let inputs = [
        XdmInput::new(&bio, &bio_header),
        XdmInput::new(&img, &img_header),
    ];
    let bytes = xdm::write(&inputs, &request).unwrap();
    assert_eq!(bytes, xdm::write(&inputs, &request).unwrap());

    let package = xdm::read(&bytes, &Limits::default()).unwrap();
    assert_eq!(package.action, Some(Action::Replace));
    assert_eq!(package.submission_set.patient_id.as_deref(), Some(INS_CX));
    assert!(package.integrity_errors().is_empty());

    let [bio_doc, img_doc] = package.documents.as_slice() else {
        panic!("two documents expected");
    };
    assert_eq!(
        bio_doc.unique_id.as_deref(),
        Some("1.2.250.1.213.1.1.1.55.2024.9.1")
    );
    assert_eq!(
        img_doc.unique_id.as_deref(),
        Some("1.2.250.1.213.1.1.1.45.2024.1.1")
    );
    for doc in [bio_doc, img_doc] {
        assert_eq!(doc.patient_id.as_deref(), Some(INS_CX));
        assert!(doc.hash_ok && doc.size_ok);
        assert_eq!(doc.class_code.as_ref().map(|c| c.code.as_str()), Some("10"));
        assert_eq!(doc.action, Some(Action::Replace));
    }
    assert_eq!(bio_doc.type_code.as_ref().unwrap().code, "11502-2");
    assert_eq!(img_doc.type_code.as_ref().unwrap().code, "18748-4");
    assert_eq!(
        bio_doc.format_code.as_ref().unwrap().code,
        "urn:ihe:lab:xd-lab:2008"
    );
    assert_eq!(
        img_doc.format_code.as_ref().unwrap().code,
        "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    );
    assert_eq!(bio_doc.content(), bio.as_slice());
    assert_eq!(bio_doc.cda.as_ref(), Some(&bio_header));
    assert_eq!(img_doc.cda.as_ref(), Some(&img_header));
    // effectiveTime 20210401171000+0100 → UTC.
    assert_eq!(bio_doc.creation_time.as_deref(), Some("20210401161000"));
    assert_eq!(bio_doc.title.as_deref(), bio_header.title.as_deref());
}

#[test]
fn pack_ans_level1_document() {
    let Some(n1) = load("BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml") else {
        return;
    };
    let header = parse_header(&n1).unwrap();
    let request = PackRequest::new(
        SubmissionTime::parse("20240401120000").unwrap(),
        "1.2.250.1.999.9",
    );
    let bytes = xdm::write(&[XdmInput::new(&n1, &header)], &request).unwrap();
    let package = xdm::read(&bytes, &Limits::default()).unwrap();
    let doc = &package.documents[0];
    assert_eq!(
        doc.format_code.as_ref().unwrap().code,
        "urn:ihe:iti:xds-sd:pdf:2008"
    );
    assert_eq!(package.action, None);
    assert!(doc.hash_ok && doc.size_ok);
}
