//! CDA R2 header extraction: everything mss needs to file a document, read
//! without paying for the body.

use mss_model::{IdentityTraits, InsKind};
use serde::Serialize;

/// An HL7 instance identifier (`II`): OID root and optional extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct InstanceId {
    pub root: String,
    pub extension: Option<String>,
}

/// A coded value (`CE`/`CV`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coded {
    pub code: String,
    pub system: Option<String>,
    pub display: Option<String>,
}

/// CDA level: 1 is a `nonXMLBody` (usually an embedded PDF), 3 a structured body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u8")]
pub enum BodyLevel {
    Unstructured = 1,
    Structured = 3,
}

impl From<BodyLevel> for u8 {
    fn from(level: BodyLevel) -> u8 {
        level as u8
    }
}

/// The patient's INS as written in the document. Reported exactly as found:
/// a matricule whose key does not verify is kept, with `key_valid = false`,
/// and must never be used to file automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InsRef {
    pub matricule: String,
    pub oid: String,
    pub kind: InsKind,
    pub key_valid: bool,
}

/// `recordTarget/patientRole`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Patient {
    /// Every `patientRole/id`, INS or not (local IPP…).
    pub ids: Vec<InstanceId>,
    pub ins: Option<InsRef>,
    #[serde(flatten)]
    pub traits: IdentityTraits,
    /// Name in use (`family@qualifier="CL"`), when it differs from the birth name.
    pub used_name: Option<String>,
    /// Given name in use (`given@qualifier="CL"`).
    pub used_given_name: Option<String>,
}

/// An organisation (`representedOrganization`, `representedCustodianOrganization`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: Option<InstanceId>,
    pub name: Option<String>,
}

/// A person acting on the document: author or legal authenticator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub id: Option<InstanceId>,
    pub family: Option<String>,
    pub given: Option<String>,
    /// `assignedAuthor/code`: profession or specialty.
    pub role: Option<Coded>,
    pub time: Option<String>,
    pub organization: Option<Organization>,
}

/// The header of a CDA R2 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CdaHeader {
    pub id: InstanceId,
    pub set_id: Option<InstanceId>,
    pub version: Option<u32>,
    pub code: Option<Coded>,
    pub title: Option<String>,
    /// `effectiveTime@value` as written (HL7 TS, e.g. `20210401171000+0100`).
    pub effective_time: Option<String>,
    pub confidentiality: Option<Coded>,
    pub language: Option<String>,
    pub template_ids: Vec<InstanceId>,
    pub level: BodyLevel,
    pub patient: Patient,
    pub authors: Vec<Actor>,
    pub custodian: Option<Organization>,
    pub legal_authenticator: Option<Actor>,
    /// `relatedDocument[@typeCode='RPLC']/parentDocument/id`: the version this one replaces.
    pub replaces: Option<InstanceId>,
    /// `documentationOf/serviceEvent/effectiveTime/low|high`.
    pub service_start: Option<String>,
    pub service_stop: Option<String>,
    /// `componentOf/encompassingEncounter/location/healthCareFacility/code`.
    pub facility_type: Option<Coded>,
    /// `documentationOf/serviceEvent/performer/assignedEntity/representedOrganization/standardIndustryClassCode`.
    pub practice_setting: Option<Coded>,
}
