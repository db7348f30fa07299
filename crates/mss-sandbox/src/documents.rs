//! Test health documents for the sandbox's patients: a short CDA R2 consultation report
//! per patient, with the patient's test INS and all six traits, so that a client has a
//! realistic document to send without any other material. Written at start under
//! `<dir>/documents/`.

use std::path::{Path, PathBuf};

use crate::error::SandboxError;
use crate::fsio;
use crate::identities::{Patient, TEST_INS_OID};
use crate::psc::Professional;
use crate::psc::page::escape;

/// OID root of the sandbox's document ids (a private arc, never a real organisation's).
pub const DOCUMENT_ROOT: &str = "1.2.250.1.999.42.1";
/// LOINC code of the consultation report.
pub const CONSULTATION_CODE: &str = "11488-4";

/// What varies between two versions of one report.
#[derive(Debug, Clone)]
pub struct ReportVersion<'a> {
    /// Document id extension (unique per version).
    pub id: &'a str,
    /// Set id extension (the same for every version of one document).
    pub set_id: &'a str,
    pub version: u32,
    /// The id extension of the version this one replaces (`relatedDocument RPLC`).
    pub replaces: Option<&'a str>,
    /// HL7 timestamp, e.g. `20261125093000+0100`.
    pub effective_time: &'a str,
    /// Free text of the body.
    pub text: &'a str,
}

/// A level-3 CDA consultation report for `patient`, written by `author`.
pub fn consultation_report(patient: &Patient, author: &Professional, v: &ReportVersion) -> String {
    let birth = patient.birth_date.replace('-', "");
    let related = v.replaces.map_or(String::new(), |old| {
        format!(
            "  <relatedDocument typeCode=\"RPLC\"><parentDocument><id root=\"{DOCUMENT_ROOT}\" extension=\"{}\"/></parentDocument></relatedDocument>\n",
            escape(old)
        )
    });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="{DOCUMENT_ROOT}" extension="{id}"/>
  <code code="{CONSULTATION_CODE}" codeSystem="2.16.840.1.113883.6.1" displayName="CR de consultation"/>
  <title>Compte rendu de consultation</title>
  <effectiveTime value="{time}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root="{DOCUMENT_ROOT}.2" extension="{set_id}"/>
  <versionNumber value="{version}"/>
  <recordTarget>
    <patientRole>
      <id root="{TEST_INS_OID}" extension="{matricule}"/>
      <patient>
        <name>
          <given>{given}</given>
          <family qualifier="BR">{family}</family>
          <given qualifier="BR">{given}</given>
        </name>
        <administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="{birth}"/>
        <birthplace><place><addr><county>{birthplace}</county></addr></place></birthplace>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="{time}"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="{author_id}"/>
      <assignedPerson><name><given>{author_given}</given><family>{author_family}</family></name></assignedPerson>
      <representedOrganization><name>Bac à sable MSSanté</name></representedOrganization>
    </assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian>
      <representedCustodianOrganization>
        <id root="{DOCUMENT_ROOT}" extension="SANDBOX"/>
        <name>Bac à sable MSSanté</name>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
{related}  <component>
    <structuredBody>
      <component>
        <section>
          <title>Conclusion</title>
          <text>{text}</text>
        </section>
      </component>
    </structuredBody>
  </component>
</ClinicalDocument>
"#,
        id = escape(v.id),
        set_id = escape(v.set_id),
        version = v.version,
        time = escape(v.effective_time),
        matricule = escape(&patient.matricule),
        given = escape(&patient.given_name),
        family = escape(&patient.family_name),
        sex = escape(&patient.sex),
        birthplace = escape(&patient.birthplace_code),
        author_id = escape(&author.national_id),
        author_given = escape(&author.given_name),
        author_family = escape(&author.family_name),
        text = escape(v.text),
    )
}

/// Writes one first-version report per patient under `<dir>/documents/` (kept if already
/// there) and returns their paths, in patient order.
pub fn write_reports(
    dir: &Path,
    patients: &[Patient],
    author: &Professional,
) -> Result<Vec<PathBuf>, SandboxError> {
    let mut paths = Vec::with_capacity(patients.len());
    for patient in patients {
        let path = dir
            .join("documents")
            .join(format!("cr-consultation-{}.xml", patient.matricule));
        if !path.exists() {
            let id = format!("CR-{}-1", patient.matricule);
            let set_id = format!("CR-{}", patient.matricule);
            let xml = consultation_report(
                patient,
                author,
                &ReportVersion {
                    id: &id,
                    set_id: &set_id,
                    version: 1,
                    replaces: None,
                    effective_time: "20261125093000+0100",
                    text: "Examen clinique sans particularité. Document de test du bac à sable.",
                },
            );
            fsio::write(&path, xml.as_bytes(), false)?;
        }
        paths.push(path);
    }
    Ok(paths)
}
