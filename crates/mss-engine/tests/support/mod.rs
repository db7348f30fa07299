//! Builders for the engine's tests: CDA documents of our own, XDM packages
//! made by mss-docs' writer, messages made by mss-docs' composer.
#![allow(dead_code)]

use mss_docs::cda::{CdaHeader, InstanceId, parse_header};
use mss_docs::message::{Mailbox, OutgoingMessage, XdmPackage, compose};
use mss_docs::xdm::{self, Action, PackRequest, SubmissionTime, XdmInput};
use mss_engine::matching::{LocalPatient, MatchOptions};
use mss_engine::process::Options;
use mss_model::{IdentityStatus, IdentityTraits, Ins, PartialDate, Sex, TestIdentities};

pub const INS: &str = "279035121518989";
pub const OID_TEST: &str = "1.2.250.1.213.1.4.10";

/// A CDA document's version facts and patient.
#[derive(Clone, Debug)]
pub struct Doc {
    pub id: String,
    pub set_id: String,
    pub version: u32,
    pub replaces: Option<String>,
    pub ins: Option<String>,
    pub birth_name: String,
    pub birthplace: Option<String>,
    /// The author's RPPS and their organisation's FINESS, when the document names them.
    pub author: Option<(String, String)>,
}

impl Doc {
    pub fn new(id: &str) -> Self {
        Doc {
            id: id.into(),
            set_id: "1.2.250.1.999.7.9".into(),
            version: 1,
            replaces: None,
            ins: Some(INS.into()),
            birth_name: "PAT-TROIS".into(),
            birthplace: Some("51215".into()),
            author: None,
        }
    }

    pub fn by(mut self, rpps: &str, finess: &str) -> Self {
        self.author = Some((rpps.into(), finess.into()));
        self
    }

    pub fn version(mut self, version: u32, replaces: Option<&str>) -> Self {
        self.version = version;
        self.replaces = replaces.map(str::to_owned);
        self
    }

    pub fn xml(&self) -> Vec<u8> {
        let ins = self
            .ins
            .as_ref()
            .map(|m| format!(r#"<id root="{OID_TEST}" extension="{m}"/>"#))
            .unwrap_or_default();
        let birthplace = self
            .birthplace
            .as_ref()
            .map(|c| format!("<birthplace><place><addr><county>{c}</county><city>REIMS</city></addr></place></birthplace>"))
            .unwrap_or_default();
        let replaces = self
            .replaces
            .as_ref()
            .map(|r| format!(r#"<relatedDocument typeCode="RPLC"><parentDocument><id root="{r}"/></parentDocument></relatedDocument>"#))
            .unwrap_or_default();
        let author = self
            .author
            .as_ref()
            .map(|(rpps, finess)| format!(r#"<author><time value="20251124120000+0100"/><assignedAuthor><id root="1.2.250.1.71.4.2.1" extension="8{rpps}"/><representedOrganization><id root="1.2.250.1.71.4.2.2" extension="1{finess}"/></representedOrganization></assignedAuthor></author>"#))
            .unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <id root="{id}"/>
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="CR de consultation"/>
  <title>CR de consultation</title>
  <effectiveTime value="20251124120000+0100"/>
  <setId root="{set}"/>
  <versionNumber value="{version}"/>
  <recordTarget><patientRole>
    {ins}
    <id root="1.2.250.1.999.1" extension="IPP42"/>
    <patient>
      <name><family qualifier="BR">{name}</family><given>DOMINIQUE MARIE-LOUISE</given><given qualifier="BR">DOMINIQUE</given></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19790328"/>
      {birthplace}
    </patient>
  </patientRole></recordTarget>
  {author}
  {replaces}
  <component><structuredBody/></component>
</ClinicalDocument>"#,
            id = self.id,
            set = self.set_id,
            version = self.version,
            name = self.birth_name,
        )
        .into_bytes()
    }
}

pub fn traits() -> IdentityTraits {
    IdentityTraits {
        birth_name: Some("PAT-TROIS".into()),
        first_given_name: Some("DOMINIQUE".into()),
        given_names: Some("DOMINIQUE MARIE-LOUISE".into()),
        birth_date: Some(PartialDate::new(1979, Some(3), Some(28)).unwrap()),
        sex: Some(Sex::F),
        birthplace_code: Some("51215".into()),
    }
}

pub fn patient(id: &str, status: IdentityStatus) -> LocalPatient {
    LocalPatient {
        id: id.into(),
        ins: Some(Ins::new(INS, OID_TEST).unwrap()),
        status,
        traits: traits(),
    }
}

pub fn options() -> Options {
    Options {
        matching: MatchOptions {
            test_identities: TestIdentities::Allowed,
            ..MatchOptions::default()
        },
        ..Options::default()
    }
}

/// An XDM archive of `docs` (CDA bytes), with `action`.
pub fn xdm_of(docs: &[Vec<u8>], action: Option<Action>) -> (Vec<u8>, Vec<CdaHeader>) {
    let headers: Vec<CdaHeader> = docs
        .iter()
        .map(|d| parse_header(d).expect("test CDA parses"))
        .collect();
    let inputs: Vec<XdmInput> = docs
        .iter()
        .zip(&headers)
        .map(|(d, h)| XdmInput::new(d, h))
        .collect();
    let mut request = PackRequest::new(
        SubmissionTime::parse("20251124160000").unwrap(),
        "1.2.250.1.999.7",
    );
    request.action = action;
    (xdm::write(&inputs, &request).expect("XDM writes"), headers)
}

/// A message from a professional carrying `docs`, MDN asked when `mdn`.
pub fn message(message_id: &str, docs: &[Vec<u8>], action: Option<Action>, mdn: bool) -> Vec<u8> {
    let (zip, headers) = xdm_of(docs, action);
    let out = OutgoingMessage {
        from: Mailbox::named("dr.house@hopital.mssante.fr", "Dr House"),
        to: vec![Mailbox::new("dpi@clinique.mssante.fr")],
        message_id: message_id.into(),
        date: 1_764_000_000,
        body: "Veuillez trouver le compte rendu.".into(),
        xdm: Some(XdmPackage {
            zip,
            documents: headers,
        }),
        request_mdn: mdn,
        nil: Some("NIL-TEST-1".into()),
        test_identities: true,
        ..OutgoingMessage::default()
    };
    let raw = compose(&out).expect("message composes");
    // compose writes no Return-Path (the server adds it on delivery): add it
    // so the RFC 8098 loop rule lets the MDN go automatically.
    let mut with_path = b"Return-Path: <dr.house@hopital.mssante.fr>\r\n".to_vec();
    with_path.extend_from_slice(&raw);
    with_path
}

pub fn id(root: &str) -> InstanceId {
    InstanceId {
        root: root.into(),
        extension: None,
    }
}
