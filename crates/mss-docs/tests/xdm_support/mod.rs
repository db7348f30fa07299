//! Helpers shared by the XDM tests: small CDA documents and zip surgery.
#![allow(dead_code)]

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// What goes into a generated CDA.
#[derive(Debug, Clone)]
pub struct CdaSpec {
    pub id_root: String,
    pub id_extension: Option<String>,
    pub code: String,
    pub code_display: String,
    pub title: String,
    pub effective_time: String,
    /// INS matricule and OID; `None` leaves only the local id.
    pub ins: Option<(String, String)>,
    pub ipp: (String, String),
    pub family: String,
    pub given: String,
    pub birth_time: String,
    pub sex: String,
    pub level1: bool,
    pub template: String,
}

impl Default for CdaSpec {
    fn default() -> Self {
        CdaSpec {
            id_root: "1.2.250.1.999.1.1".into(),
            id_extension: None,
            code: "11502-2".into(),
            code_display: "CR d'examens biologiques".into(),
            title: "Compte rendu de biologie".into(),
            effective_time: "20240105143000+0100".into(),
            ins: Some(("279035121518989".into(), "1.2.250.1.213.1.4.10".into())),
            ipp: ("1.2.250.1.999.2".into(), "IPP42".into()),
            family: "PAT-TROIS".into(),
            given: "DOMINIQUE".into(),
            birth_time: "19790328".into(),
            sex: "F".into(),
            level1: false,
            template: "1.2.250.1.213.1.1.1.55".into(),
        }
    }
}

pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A small but complete CDA R2 document.
pub fn cda_xml(spec: &CdaSpec) -> String {
    let id = match &spec.id_extension {
        Some(ext) => format!(
            r#"<id root="{}" extension="{}"/>"#,
            esc(&spec.id_root),
            esc(ext)
        ),
        None => format!(r#"<id root="{}"/>"#, esc(&spec.id_root)),
    };
    let ins = spec
        .ins
        .as_ref()
        .map(|(m, oid)| format!(r#"<id extension="{}" root="{}"/>"#, esc(m), esc(oid)))
        .unwrap_or_default();
    let body = if spec.level1 {
        r#"<nonXMLBody><text mediaType="application/pdf" representation="B64">JVBERi0xLjQK</text></nonXMLBody>"#
            .to_string()
    } else {
        r#"<structuredBody><component><section><title>Résultats</title><text>TSH 1.2 mUI/L</text></section></component></structuredBody>"#
            .to_string()
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="{template}"/>
  {id}
  <code code="{code}" codeSystem="2.16.840.1.113883.6.1" displayName="{code_display}"/>
  <title>{title}</title>
  <effectiveTime value="{effective}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="Normal"/>
  <languageCode code="fr-FR"/>
  <setId root="{id_root}.0"/>
  <versionNumber value="1"/>
  <recordTarget>
    <patientRole>
      {ins}
      <id extension="{ipp_ext}" root="{ipp_root}"/>
      <patient>
        <name>
          <family qualifier="BR">{family}</family>
          <given>{given}</given>
          <given qualifier="BR">{given}</given>
        </name>
        <administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="{birth}"/>
        <birthplace><place><addr><county>51215</county></addr></place></birthplace>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20240105140000+0100"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="801234534765"/>
      <code code="G15_10/SM03" codeSystem="1.2.250.1.213.1.1.4.5" displayName="Médecin - Biologie médicale"/>
      <assignedPerson><name><family>MEDECIN</family><given>Jean</given></name></assignedPerson>
      <representedOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1234567890"/>
        <name>Laboratoire A &amp; B</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="1.2.250.1.71.4.2.2" extension="1234567890"/><name>Laboratoire</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <legalAuthenticator>
    <time value="20240105150000+0100"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="1.2.250.1.71.4.2.1" extension="801234534765"/>
      <assignedPerson><name><family>MEDECIN</family><given>Jean</given></name></assignedPerson>
    </assignedEntity>
  </legalAuthenticator>
  <documentationOf><serviceEvent>
    <effectiveTime><low value="20240105080000+0100"/><high value="20240105120000+0100"/></effectiveTime>
  </serviceEvent></documentationOf>
  <component>{body}</component>
</ClinicalDocument>
"#,
        template = esc(&spec.template),
        code = esc(&spec.code),
        code_display = esc(&spec.code_display),
        title = esc(&spec.title),
        effective = esc(&spec.effective_time),
        id_root = esc(&spec.id_root),
        ipp_ext = esc(&spec.ipp.1),
        ipp_root = esc(&spec.ipp.0),
        family = esc(&spec.family),
        given = esc(&spec.given),
        sex = esc(&spec.sex),
        birth = esc(&spec.birth_time),
    )
}

/// A zip of `files` (name, bytes), deflated unless `stored`.
pub fn zip_of(files: &[(&str, &[u8])], stored: bool) -> Vec<u8> {
    let method = if stored {
        CompressionMethod::Stored
    } else {
        CompressionMethod::Deflated
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Every (name, bytes) of a zip.
pub fn unzip_all(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        out.push((file.name().unwrap().into_owned(), data));
    }
    out
}

/// Rebuilds a zip, letting `edit` change an entry's bytes.
pub fn rezip(bytes: &[u8], edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = unzip_all(bytes)
        .into_iter()
        .map(|(name, data)| {
            let data = edit(&name, data);
            (name, data)
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    zip_of(&refs, false)
}

/// Offsets of every occurrence of `needle` in `haystack`.
pub fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Path of the shared ANS fixtures, when the checkout has them.
pub fn shared_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    dir.join("fixtures/ans/cda").is_dir().then_some(dir)
}
