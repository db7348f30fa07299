//! The repository's own small CDA fixtures: they prove the reader on a fresh
//! clone, without `../shared`.

use mss_docs::cda::{BodyLevel, CdaHeader, Coded, InstanceId, parse_header};
use mss_model::{InsKind, PartialDate, Sex};

const N3: &[u8] = include_bytes!("fixtures/cda/n3_default_ns.xml");
const N3_PREFIXED: &[u8] = include_bytes!("fixtures/cda/n3_prefixed.xml");
const N1_PDF: &[u8] = include_bytes!("fixtures/cda/n1_pdf.xml");
const N3_V2: &[u8] = include_bytes!("fixtures/cda/n3_rplc_v2.xml");

fn id(root: &str, extension: &str) -> InstanceId {
    InstanceId {
        root: root.into(),
        extension: Some(extension.into()),
    }
}

fn header(bytes: &[u8]) -> CdaHeader {
    parse_header(bytes).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn minimal_level_three_in_full() {
    let h = header(N3);
    assert_eq!(h.id, id("1.2.250.1.999.7.1", "DOC-0001"));
    assert_eq!(h.set_id, Some(id("1.2.250.1.999.7.2", "SET-0001")));
    assert_eq!(h.version, Some(1));
    assert_eq!(
        h.code,
        Some(Coded {
            code: "11488-4".into(),
            system: Some("2.16.840.1.113883.6.1".into()),
            display: Some("CR de consultation".into()),
        })
    );
    // Trimmed, inner whitespace collapsed.
    assert_eq!(h.title.as_deref(), Some("Compte rendu de consultation"));
    assert_eq!(h.effective_time.as_deref(), Some("20250314093000+0100"));
    assert_eq!(
        h.confidentiality.as_ref().map(|c| c.code.as_str()),
        Some("N")
    );
    assert_eq!(h.language.as_deref(), Some("fr-FR"));
    assert_eq!(h.template_ids.len(), 2);
    assert_eq!(h.level, BodyLevel::Structured);

    let p = &h.patient;
    assert_eq!(
        p.ids,
        [
            id("1.2.250.1.999.1", "IPP-42"),
            id("1.2.250.1.213.1.4.10", "185057505612388")
        ]
    );
    let ins = p.ins.as_ref().unwrap();
    assert_eq!(ins.matricule, "185057505612388");
    assert_eq!(ins.kind, InsKind::Test);
    assert!(ins.key_valid);
    // Qualified parts win whatever their order in the name.
    assert_eq!(p.traits.birth_name.as_deref(), Some("MARTIN"));
    assert_eq!(p.traits.first_given_name.as_deref(), Some("Jean"));
    assert_eq!(p.traits.given_names.as_deref(), Some("Jean Pierre"));
    assert_eq!(
        p.traits.birth_date,
        Some(PartialDate {
            year: 1985,
            month: Some(5),
            day: Some(12)
        })
    );
    assert_eq!(p.traits.sex, Some(Sex::M));
    assert_eq!(p.traits.birthplace_code.as_deref(), Some("75056"));
    assert_eq!(p.used_name.as_deref(), Some("MARTIN-DURAND"));
    assert_eq!(p.used_given_name.as_deref(), Some("Pierrot"));

    assert_eq!(h.authors.len(), 2);
    let a = &h.authors[0];
    assert_eq!(a.id, Some(id("1.2.250.1.71.4.2.1", "810000000001")));
    assert_eq!(
        (a.family.as_deref(), a.given.as_deref()),
        (Some("LEBLANC"), Some("Alice"))
    );
    assert_eq!(
        a.role.as_ref().and_then(|r| r.display.as_deref()),
        Some("Médecin généraliste")
    );
    assert_eq!(a.time.as_deref(), Some("20250314090000+0100"));
    let org = a.organization.as_ref().unwrap();
    assert_eq!(org.id, Some(id("1.2.250.1.71.4.2.2", "1000000001")));
    assert_eq!(org.name.as_deref(), Some("Cabinet du Parc"));
    let b = &h.authors[1];
    assert_eq!(b.given.as_deref(), Some("Bruno Marc"));
    assert_eq!(b.role, None);
    assert_eq!(b.organization, None);

    assert_eq!(
        h.custodian.as_ref().and_then(|c| c.name.as_deref()),
        Some("Cabinet du Parc")
    );
    let legal = h.legal_authenticator.as_ref().unwrap();
    assert_eq!(legal.family.as_deref(), Some("LEBLANC"));
    assert_eq!(legal.time.as_deref(), Some("20250314093000+0100"));
    assert_eq!(h.replaces, None);
    assert_eq!(h.service_start.as_deref(), Some("20250314090000+0100"));
    assert_eq!(h.service_stop.as_deref(), Some("20250314092000+0100"));
    assert_eq!(
        h.facility_type.as_ref().map(|c| c.code.as_str()),
        Some("SA07")
    );
    assert_eq!(
        h.practice_setting.as_ref().map(|c| c.code.as_str()),
        Some("AMBULATOIRE")
    );
}

#[test]
fn the_prefix_does_not_matter() {
    assert!(
        std::str::from_utf8(N3_PREFIXED)
            .unwrap()
            .contains("<cda:ClinicalDocument")
    );
    assert_eq!(header(N3_PREFIXED), header(N3));
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(N3);
    assert_eq!(header(&with_bom), header(N3));
}

#[test]
fn level_one_with_an_embedded_pdf() {
    let h = header(N1_PDF);
    assert_eq!(h.level, BodyLevel::Unstructured);
    assert_eq!(h.id, id("1.2.250.1.999.7.1", "DOC-0101"));
    assert_eq!(h.patient, header(N3).patient);
}

#[test]
fn replacement_points_to_the_previous_version() {
    let v1 = header(N3);
    let v2 = header(N3_V2);
    assert_eq!(v2.version, Some(2));
    assert_eq!(v2.set_id, v1.set_id);
    // Only the RPLC relation counts, not the XFRM one before it.
    assert_eq!(v2.replaces, Some(v1.id.clone()));
    assert_ne!(v2.id, v1.id);
}

fn with_name(name: &str) -> CdaHeader {
    let text = std::str::from_utf8(N3).unwrap();
    let start = text.find("<name>").unwrap();
    let end = text.find("</name>").unwrap() + "</name>".len();
    let doc = format!("{}{name}{}", &text[..start], &text[end..]);
    header(doc.as_bytes())
}

#[test]
fn a_name_without_qualifiers_falls_back_to_its_plain_parts() {
    let h =
        with_name("<name><family>DUPONT</family><given>Marie</given><given>Claire</given></name>");
    let t = &h.patient.traits;
    assert_eq!(t.birth_name.as_deref(), Some("DUPONT"));
    assert_eq!(t.given_names.as_deref(), Some("Marie Claire"));
    assert_eq!(t.first_given_name.as_deref(), Some("Marie"));
    assert_eq!(h.patient.used_name, None);
}

#[test]
fn birth_and_used_names_may_sit_in_separate_name_elements() {
    let h = with_name(concat!(
        "<name><family qualifier=\"SP\">EPOUX</family><family qualifier=\"CL\">EPOUX</family></name>",
        "<name><family qualifier=\"BR\">NAISSANCE</family><given qualifier=\"BR\">Anne</given>",
        "<given>Anne Sophie</given></name>"
    ));
    let t = &h.patient.traits;
    assert_eq!(t.birth_name.as_deref(), Some("NAISSANCE"));
    assert_eq!(t.first_given_name.as_deref(), Some("Anne"));
    assert_eq!(t.given_names.as_deref(), Some("Anne Sophie"));
    assert_eq!(h.patient.used_name.as_deref(), Some("EPOUX"));
}

#[test]
fn a_spouse_name_alone_is_not_a_birth_name() {
    let h = with_name("<name><family qualifier=\"SP\">EPOUX</family><given>Lou</given></name>");
    assert_eq!(h.patient.traits.birth_name, None);
    assert_eq!(h.patient.traits.first_given_name.as_deref(), Some("Lou"));
}

#[test]
fn an_id_without_key_or_with_another_root_is_not_the_ins() {
    let text = std::str::from_utf8(N3).unwrap();
    let bad_key = text.replace("185057505612388", "185057505612389");
    let ins = header(bad_key.as_bytes()).patient.ins.unwrap();
    assert_eq!(ins.matricule, "185057505612389");
    assert!(!ins.key_valid);

    let legacy = text.replace("1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.2");
    let p = header(legacy.as_bytes()).patient;
    assert_eq!(p.ins, None);
    assert_eq!(p.ids.len(), 2);

    let nir = text.replace("1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.8");
    assert_eq!(
        header(nir.as_bytes()).patient.ins.unwrap().kind,
        InsKind::Nir
    );
}

#[test]
fn a_partial_birth_date_and_unknown_sex() {
    let text = std::str::from_utf8(N3).unwrap();
    let doc = text
        .replace(
            "<birthTime value=\"19850512\"/>",
            "<birthTime value=\"198505\"/>",
        )
        .replace(
            "<administrativeGenderCode code=\"M\"",
            "<administrativeGenderCode code=\"UN\"",
        );
    let t = header(doc.as_bytes()).patient.traits;
    assert_eq!(
        t.birth_date,
        Some(PartialDate {
            year: 1985,
            month: Some(5),
            day: None
        })
    );
    assert_eq!(t.sex, Some(Sex::U));
}

#[test]
fn a_foreign_component_in_the_header_is_not_the_body() {
    let text = std::str::from_utf8(N3).unwrap();
    let doc = text.replacen(
        "<componentOf>",
        "<ext:component xmlns:ext=\"urn:example:ext\"><ext:x/></ext:component><componentOf>",
        1,
    );
    let h = header(doc.as_bytes());
    assert_eq!(h.level, BodyLevel::Structured);
    assert_eq!(h.facility_type.map(|c| c.code).as_deref(), Some("SA07"));
}

#[test]
fn entities_and_character_references_in_the_header_are_decoded() {
    let text = std::str::from_utf8(N3).unwrap();
    let doc = text.replace(
        "Cabinet du Parc</name>\n      </representedOrganization>",
        "Cabinet d&apos;Ann &amp; C&#xE9;line</name>\n      </representedOrganization>",
    );
    let h = header(doc.as_bytes());
    assert_eq!(
        h.authors[0].organization.as_ref().unwrap().name.as_deref(),
        Some("Cabinet d'Ann & Céline")
    );
}
