//! The MSSanté document formats. Pure: bytes in, values out — no I/O, no
//! clock (time is passed in), no randomness that is not passed in.
//!
//! Reading what a received CDA says about its patient, then packing it:
//!
//! ```
//! use mss_docs::cda::{parse_header, BodyLevel};
//! use mss_docs::xdm::{self, Limits, PackRequest, SubmissionTime, XdmInput};
//!
//! let cda = br#"<ClinicalDocument xmlns="urn:hl7-org:v3">
//!   <id root="1.2.250.1.999.7.1" extension="DOC-1"/>
//!   <code code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="CR de consultation"/>
//!   <recordTarget><patientRole>
//!     <id root="1.2.250.1.213.1.4.10" extension="185057505612388"/>
//!     <patient><name><family qualifier="BR">MARTIN</family><given qualifier="BR">Jean</given></name>
//!       <administrativeGenderCode code="M"/><birthTime value="19850512"/></patient>
//!   </patientRole></recordTarget>
//!   <component><structuredBody/></component>
//! </ClinicalDocument>"#;
//!
//! let header = parse_header(cda)?;
//! let ins = header.patient.ins.as_ref().expect("the document carries an INS");
//! assert_eq!(ins.matricule, "185057505612388");
//! assert!(ins.key_valid);
//! assert_eq!(header.level, BodyLevel::Structured);
//!
//! let request = PackRequest::new(SubmissionTime::parse("20251124160000")?, "1.2.250.1.999.7");
//! let zip = xdm::write(&[XdmInput::new(cda, &header)], &request)?;
//! let package = xdm::read(&zip, &Limits::default())?;
//! assert!(package.integrity_errors().is_empty());
//! assert_eq!(package.documents[0].cda.as_ref(), Some(&header));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod cda;
pub mod headers;
pub mod mdn;
pub mod message;
pub mod subject;
pub mod xdm;
mod xml;
