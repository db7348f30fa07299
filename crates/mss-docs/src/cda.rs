//! CDA R2 header extraction: everything mss needs to file a document, read
//! without paying for the body.
//!
//! [`parse_header`] makes one streaming pass (quick-xml) over the header and
//! stops at the start of the top-level `component`: in CDA schema order every
//! header element comes before it. On the way it checks that the root is an
//! HL7 `ClinicalDocument` (XSL "auto-présentable" wrappers get their own
//! error), refuses any DTD (so no external entity and no entity expansion),
//! and keeps only the values listed in [`CdaHeader`], matching each element on
//! its path of ancestors. It then peeks at the first child of `component` for
//! the level (`nonXMLBody` → 1, `structuredBody` → 3) and checks that the
//! document ends with the closing root tag, so a truncated transfer is refused.
//!
//! So a CDA with a 20 MB embedded PDF costs what its header costs. Limits keep
//! time and memory bounded whatever the input: [`MAX_HEADER_BYTES`] of header,
//! 256 levels of nesting, 128 namespace declarations in scope, 1000 authors,
//! template ids or patient ids.
//!
//! What this reader does not do, by design: validate the body (between its
//! first child and the final closing tag, nothing is read), or check the
//! attribute syntax of header elements whose values it does not read. The tag
//! structure of the whole header is checked (nesting, end-tag names, text
//! outside the root, undeclared prefixes and entities).
//!
//! Namespaces are resolved, prefixes do not matter (`cda:ClinicalDocument`
//! and a default namespace read the same). Text and attribute values are
//! trimmed and their inner runs of whitespace collapsed to one space; only
//! the text directly inside an element counts (not that of its children).
//! Single-valued fields take the first occurrence that has a value.
//!
//! ## Patient names
//!
//! Names are read from every `recordTarget/patientRole/patient/name`, in
//! document order; `qualifier` is a space-separated set of codes.
//!
//! - birth name: the first `family` qualified `BR`; when none is, the first
//!   `family` without any qualifier (older senders and non-INS documents write
//!   one plain name, which is then the best birth name there is);
//! - birth given names: every `given` without qualifier, joined by one space;
//! - first birth given name: the `given` qualified `BR`; when none is, the
//!   first word of the birth given names;
//! - name and given name in use: the first `family` / `given` qualified `CL`.
//!
//! Other qualifiers (`SP` spouse name…) are ignored.

mod extract;
mod stream;

use mss_model::{IdentityTraits, InsKind};
use serde::Serialize;

pub use crate::xml::XmlError;

/// The HL7 v3 namespace of every CDA element.
pub const HL7_NS: &str = "urn:hl7-org:v3";

/// Largest header accepted, in bytes before the top-level `component`. Real
/// headers weigh 5 to 60 kB; a bigger one is an attack or a broken producer.
pub const MAX_HEADER_BYTES: usize = 8 * 1024 * 1024;

/// Why a CDA header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdaError {
    #[error("the CDA document is empty: ask the sender to send the document again")]
    Empty,
    #[error("the CDA document is not readable XML ({0}): ask the sender to check the file")]
    Xml(#[from] XmlError),
    #[error(
        "the document is an XSL stylesheet wrapping a CDA for display (\"auto-présentable\"), not a CDA: ask the sender for the CDA document itself"
    )]
    XslWrapper,
    #[error(
        "the document root is {0}, not an HL7 CDA ClinicalDocument in namespace urn:hl7-org:v3: check that the right file was attached"
    )]
    NotCda(String),
    #[error(
        "the CDA document is truncated (it does not end with its closing ClinicalDocument tag): ask the sender to send it again"
    )]
    Truncated,
    #[error(
        "the CDA header is larger than {0} bytes before the body, refused: ask the sender to check the document"
    )]
    HeaderTooLarge(usize),
    #[error(
        "the CDA has no body (ClinicalDocument/component with nonXMLBody or structuredBody): the document cannot be filed, ask the sender to fix it"
    )]
    MissingBody,
    #[error(
        "the CDA body is {0}, expected nonXMLBody (level 1) or structuredBody (level 3): ask the sender to fix the document"
    )]
    UnknownBody(String),
    #[error(
        "the CDA has no identifier (ClinicalDocument/id with a root): the document cannot be tracked, ask the sender to fix it"
    )]
    MissingId,
    #[error(
        "the CDA versionNumber {0:?} is not a positive integer: ask the sender to fix the document"
    )]
    InvalidVersion(String),
    #[error(
        "the CDA header has more than {1} {0} elements, refused: ask the sender to check the document"
    )]
    TooMany(&'static str, usize),
}

/// Reads the header of the CDA R2 document `bytes` (UTF-8, with or without a
/// byte-order mark). Time and memory are those of the header, whatever the
/// size of the body.
pub fn parse_header(bytes: &[u8]) -> Result<CdaHeader, CdaError> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(CdaError::Xml(XmlError::NotUtf8(0)));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CdaError::Empty);
    }
    stream::read(bytes)
}

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
    /// Name in use (`family@qualifier="CL"`), as written (often equal to the birth name).
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

impl CdaHeader {
    /// A header with only its id and level, every other field empty: for
    /// callers that build headers (tests, generators) field by field.
    pub fn new(id: InstanceId, level: BodyLevel) -> Self {
        CdaHeader {
            id,
            set_id: None,
            version: None,
            code: None,
            title: None,
            effective_time: None,
            confidentiality: None,
            language: None,
            template_ids: Vec::new(),
            level,
            patient: Patient::default(),
            authors: Vec::new(),
            custodian: None,
            legal_authenticator: None,
            replaces: None,
            service_start: None,
            service_stop: None,
            facility_type: None,
            practice_setting: None,
        }
    }
}
