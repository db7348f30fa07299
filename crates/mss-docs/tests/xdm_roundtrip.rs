//! write → read gives back what was packed, and writing is deterministic.

mod xdm_support;

use mss_docs::cda::{Coded, parse_header};
use mss_docs::xdm::{self, Action, Limits, PackRequest, SubmissionTime, XdmInput};
use proptest::prelude::*;
use xdm_support::*;

fn oid_arc() -> impl Strategy<Value = String> {
    (1u32..100_000).prop_map(|n| n.to_string())
}

/// Text with the characters XML and HL7 care about.
fn text() -> impl Strategy<Value = String> {
    "[A-Za-zéèàç0-9&<>\"' ^|~\\\\-]{1,30}".prop_map(|s| {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if s.is_empty() { "x".into() } else { s }
    })
}

#[derive(Debug, Clone)]
struct DocGen {
    arc: String,
    extension: Option<String>,
    code: (&'static str, &'static str, bool),
    title: String,
    level1: bool,
    lab_template: bool,
}

fn doc_gen() -> impl Strategy<Value = DocGen> {
    let codes = prop::sample::select(vec![
        ("11502-2", "CR d'examens biologiques", true),
        ("18748-4", "CR d'imagerie médicale", true),
        ("60591-5", "Synthèse", true),
        ("57833-6", "Prescription de produits de santé", false),
        (
            "PRESC-BIO",
            "Prescription d'actes de biologie médicale",
            false,
        ),
    ]);
    (
        oid_arc(),
        prop::option::of("[A-Za-z0-9]{1,12}"),
        codes,
        text(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(arc, extension, code, title, level1, lab_template)| DocGen {
                arc,
                extension,
                code,
                title,
                level1,
                lab_template,
            },
        )
}

fn action() -> impl Strategy<Value = Option<Action>> {
    prop::option::of(prop::sample::select(vec![Action::Replace, Action::Delete]))
}

fn patient() -> impl Strategy<Value = (Option<String>, String, String)> {
    (
        prop::option::of("[12][0-9]{14}"),
        "[A-Z0-9]{1,10}",
        "[A-Z][A-Z -]{0,20}",
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn write_then_read(
        docs in prop::collection::vec(doc_gen(), 1..4),
        action in action(),
        (ins, ipp, family) in patient(),
        source in "1\\.2\\.250\\.[0-9]{1,5}",
    ) {
        let specs: Vec<CdaSpec> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| CdaSpec {
                id_root: format!("1.2.250.1.999.{}.{}", d.arc, i + 1),
                id_extension: d.extension.clone(),
                code: d.code.0.into(),
                code_display: d.code.1.into(),
                title: d.title.clone(),
                ins: ins.clone().map(|m| (m, "1.2.250.1.213.1.4.10".into())),
                ipp: ("1.2.250.1.999.2".into(), ipp.clone()),
                family: family.clone(),
                level1: d.level1,
                template: if d.lab_template { "1.2.250.1.213.1.1.1.55".into() } else { "1.2.250.1.213.1.1.1.45".into() },
                ..CdaSpec::default()
            })
            .collect();
        let xmls: Vec<String> = specs.iter().map(cda_xml).collect();
        let headers: Vec<_> = xmls
            .iter()
            .map(|x| parse_header(x.as_bytes()).expect("generated CDA parses"))
            .collect();
        let class = Coded { code: "99".into(), system: Some("1.2.250.1.213.1.1.4.1".into()), display: Some("Autre".into()) };
        let inputs: Vec<XdmInput> = xmls
            .iter()
            .zip(&headers)
            .zip(&docs)
            .map(|((x, h), d)| XdmInput {
                class_code: (!d.code.2).then_some(&class),
                ..XdmInput::new(x.as_bytes(), h)
            })
            .collect();
        let mut request = PackRequest::new(SubmissionTime::parse("20240105150000").unwrap(), source.clone());
        request.action = action;

        let bytes = xdm::write(&inputs, &request).unwrap();
        prop_assert_eq!(&bytes, &xdm::write(&inputs, &request).unwrap(), "deterministic");

        let package = xdm::read(&bytes, &Limits::default()).unwrap();
        let expected_patient = match &ins {
            Some(m) => format!("{m}^^^&1.2.250.1.213.1.4.10&ISO^NH"),
            None => format!("{ipp}^^^&1.2.250.1.999.2&ISO^PI"),
        };
        prop_assert_eq!(package.action, action);
        prop_assert_eq!(package.submission_set.patient_id.as_deref(), Some(expected_patient.as_str()));
        prop_assert_eq!(package.submission_set.source_id.as_deref(), Some(source.as_str()));
        prop_assert_eq!(package.submission_set.submission_time.as_deref(), Some("20240105150000"));
        prop_assert!(package.submission_set.unique_id.as_deref().is_some_and(|u| u.starts_with("2.25.")));
        prop_assert_eq!(package.documents.len(), docs.len());
        prop_assert!(package.integrity_errors().is_empty());
        for (i, doc) in package.documents.iter().enumerate() {
            let spec = &specs[i];
            let unique = match &spec.id_extension {
                Some(ext) => format!("{}^{}", spec.id_root, ext),
                None => spec.id_root.clone(),
            };
            prop_assert_eq!(doc.unique_id.as_deref(), Some(unique.as_str()));
            prop_assert_eq!(doc.patient_id.as_deref(), Some(expected_patient.as_str()));
            prop_assert_eq!(doc.type_code.as_ref().map(|c| c.code.as_str()), Some(spec.code.as_str()));
            prop_assert_eq!(doc.type_code.as_ref().and_then(|c| c.display.as_deref()), Some(spec.code_display.as_str()));
            let class_code = doc.class_code.as_ref().map(|c| c.code.as_str());
            if docs[i].code.2 {
                prop_assert!(matches!(class_code, Some("10" | "11")), "{:?}", class_code);
            } else {
                prop_assert_eq!(class_code, Some("99"));
            }
            let format = doc.format_code.as_ref().map(|c| c.code.as_str());
            let expected_format = if spec.level1 {
                "urn:ihe:iti:xds-sd:pdf:2008"
            } else if docs[i].lab_template {
                "urn:ihe:lab:xd-lab:2008"
            } else {
                "urn:ihe:iti:xds:2017:mimeTypeSufficient"
            };
            prop_assert_eq!(format, Some(expected_format));
            prop_assert!(doc.hash_ok && doc.size_ok);
            prop_assert_eq!(doc.content(), xmls[i].as_bytes());
            prop_assert_eq!(doc.title.as_deref(), Some(spec.title.as_str()));
            prop_assert_eq!(doc.action, action);
            prop_assert_eq!(doc.cda.as_ref(), Some(&headers[i]));
            prop_assert_eq!(doc.path.clone(), Some(format!("IHE_XDM/SUBSET01/DOC{:04}.XML", i + 1)));
        }
    }
}

#[test]
fn layout_and_json_contract() {
    let cda = cda_xml(&CdaSpec {
        title: "CR <biologie> & \"TSH\"".into(),
        ..CdaSpec::default()
    });
    let header = parse_header(cda.as_bytes()).unwrap();
    let mut request = PackRequest::new(
        SubmissionTime::parse("20240105150000").unwrap(),
        "1.2.250.1.999.9",
    );
    request.action = Some(Action::Replace);
    let bytes = xdm::write(&[XdmInput::new(cda.as_bytes(), &header)], &request).unwrap();
    let names: Vec<String> = unzip_all(&bytes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "README.TXT",
            "INDEX.HTM",
            "IHE_XDM/SUBSET01/METADATA.XML",
            "IHE_XDM/SUBSET01/DOC0001.XML"
        ]
    );
    let files = unzip_all(&bytes);
    let index = String::from_utf8(files[1].1.clone()).unwrap();
    assert!(index.contains(r#"<a href="IHE_XDM/SUBSET01/DOC0001.XML">CR &lt;biologie&gt; &amp; &quot;TSH&quot;</a>"#), "{index}");
    let metadata = String::from_utf8(files[2].1.clone()).unwrap();
    if std::env::var_os("XDM_DUMP").is_some() {
        println!("{metadata}");
    }
    for needle in [
        r#"<rim:Slot name="action">"#,
        r#"<rim:Slot name="creationTime">"#,
        "<rim:Value>20240105133000</rim:Value>",
        "<rim:Value>801234534765^MEDECIN^Jean^^^^^^&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^IDNPS</rim:Value>",
        "<rim:Value>IPP42^^^&amp;1.2.250.1.999.2&amp;ISO^PI</rim:Value>",
        "<rim:Value>PID-5|PAT-TROIS^DOMINIQUE^^^^^L</rim:Value>",
        "<rim:Value>PID-7|19790328</rim:Value>",
        "<rim:Value>PID-8|F</rim:Value>",
        "Laboratoire A \\T\\ B^^^^^&amp;1.2.250.1.71.4.2.2&amp;ISO^IDNST^^^1234567890",
        r#"value="279035121518989^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH""#,
        "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
        r#"nodeRepresentation="urn:ihe:lab:xd-lab:2008""#,
        r#"<rim:LocalizedString value="CR &lt;biologie&gt; &amp; &quot;TSH&quot;"/>"#,
    ] {
        assert!(metadata.contains(needle), "missing {needle}\n{metadata}");
    }

    let package = xdm::read(&bytes, &Limits::default()).unwrap();
    let json = serde_json::to_value(&package).unwrap();
    assert_eq!(json["action"], "C");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&json), ["action", "documents", "submission_set"]);
    assert_eq!(
        keys(&json["submission_set"]),
        ["patient_id", "source_id", "submission_time", "unique_id"]
    );
    assert_eq!(
        keys(&json["documents"][0]),
        [
            "cda",
            "class_code",
            "format_code",
            "hash",
            "hash_ok",
            "path",
            "patient_id",
            "size",
            "size_ok",
            "type_code",
            "unique_id"
        ]
    );
    assert_eq!(json["documents"][0]["type_code"]["code"], "11502-2");
    assert_eq!(
        json["documents"][0]["type_code"]["system"],
        "2.16.840.1.113883.6.1"
    );
    assert!(json["documents"][0]["cda"].is_object());
}

#[test]
fn writer_refusals() {
    use mss_docs::xdm::XdmError;
    let time = SubmissionTime::parse("20240105150000").unwrap();
    let request = PackRequest::new(time, "1.2.250.1.999.9");
    let a = cda_xml(&CdaSpec::default());
    let b = cda_xml(&CdaSpec {
        id_root: "1.2.250.1.999.1.2".into(),
        ins: Some(("146026322000196".into(), "1.2.250.1.213.1.4.10".into())),
        ..CdaSpec::default()
    });
    let c = cda_xml(&CdaSpec {
        id_root: "1.2.250.1.999.1.3".into(),
        code: "87273-9".into(),
        ..CdaSpec::default()
    });
    let (ha, hb, hc) = (
        parse_header(a.as_bytes()).unwrap(),
        parse_header(b.as_bytes()).unwrap(),
        parse_header(c.as_bytes()).unwrap(),
    );
    let (ia, ib, ic) = (
        XdmInput::new(a.as_bytes(), &ha),
        XdmInput::new(b.as_bytes(), &hb),
        XdmInput::new(c.as_bytes(), &hc),
    );
    assert_eq!(xdm::write(&[], &request), Err(XdmError::NoDocuments));
    assert!(matches!(
        xdm::write(&[ia, ib], &request),
        Err(XdmError::MixedPatients { .. })
    ));
    assert!(matches!(
        xdm::write(&[ia, ia], &request),
        Err(XdmError::DuplicateDocument(_))
    ));
    assert_eq!(
        xdm::write(&[ic], &request),
        Err(XdmError::UnknownClassCode("87273-9".into()))
    );
    let bad_source = PackRequest::new(time, "not an oid");
    assert!(matches!(
        xdm::write(&[ia], &bad_source),
        Err(XdmError::InvalidSourceId(_))
    ));
}
