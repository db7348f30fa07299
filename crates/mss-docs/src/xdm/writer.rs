//! Building a package from CDA documents, deterministically.
//!
//! Layout: `README.TXT`, `INDEX.HTM`, `IHE_XDM/SUBSET01/METADATA.XML`,
//! `IHE_XDM/SUBSET01/DOC0001.XML`… in that order, every entry deflated and
//! dated with the submission time. ebRIM ids (`urn:uuid:…`) are derived from
//! SHA-1 of the document uniqueIds, so the same inputs give the same bytes.
//!
//! Metadata derived from each CDA header (ANS "lien en-tête CDA ↔
//! métadonnées XDS"):
//!
//! | XDS | from |
//! |---|---|
//! | typeCode | `code` |
//! | classCode | `XdmInput::class_code`, else the report/synthesis part of ASS_X04 we could confirm (`10` Compte rendu, `11` Synthèse, TRE_A03); other types are refused with [`XdmError::UnknownClassCode`] |
//! | formatCode | `XdmInput::format_code`, else N1 → `urn:ihe:iti:xds-sd:pdf:2008`; N3 CR-BIO/PALM templateId → `urn:ihe:lab:xd-lab:2008`; other N3 → `urn:ihe:iti:xds:2017:mimeTypeSufficient` (ASS_A11 is not in the references) |
//! | confidentialityCode, healthcareFacilityTypeCode, practiceSettingCode | the header codes, when present |
//! | creationTime, serviceStartTime, serviceStopTime | `effectiveTime`, `serviceEvent/effectiveTime/low|high`, converted to UTC when they carry an offset |
//! | languageCode, title | `languageCode`, `title` |
//! | legalAuthenticator, author (authorPerson XCN, authorInstitution XON, authorSpecialty) | `legalAuthenticator`, `author/assignedAuthor` |
//! | patientId | the INS as `matricule^^^&oid&ISO^NH`. **Without an INS**, the first `patientRole/id` as `ext^^^&root&ISO^PI` (not a valid DMP patientId: the receiver will not file it automatically) |
//! | sourcePatientId | the first non-INS id (`^PI`), else the patientId |
//! | sourcePatientInfo | `PID-3`, `PID-5` (birth name, first given name), `PID-7`, `PID-8` |
//! | uniqueId | `id@root`, or `root^extension` |
//! | hash, size, URI | the file |
//! | action | Slot `action` = `C`/`D` on each DocumentEntry and on the SubmissionSet, when asked |

use std::io::{Cursor, Write as _};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use super::vocab::*;
use super::{Action, XdmError, sha1_of};
use crate::cda::{Actor, BodyLevel, CdaHeader, Coded, InstanceId, Organization};
use crate::subject::one_line;

/// One CDA to pack, with its parsed header.
#[derive(Debug, Clone, Copy)]
pub struct XdmInput<'a> {
    /// The CDA file, packed byte for byte.
    pub content: &'a [u8],
    pub header: &'a CdaHeader,
    /// classCode when the built-in correspondence does not know the type.
    pub class_code: Option<&'a Coded>,
    /// formatCode overriding the derived one.
    pub format_code: Option<&'a Coded>,
}

impl<'a> XdmInput<'a> {
    pub fn new(content: &'a [u8], header: &'a CdaHeader) -> Self {
        XdmInput {
            content,
            header,
            class_code: None,
            format_code: None,
        }
    }
}

/// A UTC instant `YYYYMMDDhhmmss`, passed in by the caller (mss-docs reads
/// no clock). Dates before 1980 cannot be written in a zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubmissionTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl SubmissionTime {
    /// Parses `YYYYMMDDhhmmss`.
    pub fn parse(text: &str) -> Result<Self, XdmError> {
        let invalid = || XdmError::InvalidSubmissionTime(text.chars().take(32).collect());
        if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let num = |range: std::ops::Range<usize>| text[range].parse::<u16>().unwrap_or(0);
        let time = SubmissionTime {
            year: num(0..4),
            month: num(4..6) as u8,
            day: num(6..8) as u8,
            hour: num(8..10) as u8,
            minute: num(10..12) as u8,
            second: num(12..14) as u8,
        };
        let valid = (1980..=2107).contains(&time.year)
            && is_date(
                i64::from(time.year),
                i64::from(time.month),
                i64::from(time.day),
            )
            && time.hour < 24
            && time.minute < 60
            && time.second < 60;
        if valid { Ok(time) } else { Err(invalid()) }
    }

    fn zip_time(self) -> Result<DateTime, XdmError> {
        DateTime::from_date_and_time(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        )
        .map_err(|_| XdmError::InvalidSubmissionTime(self.to_string()))
    }
}

impl std::fmt::Display for SubmissionTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl std::str::FromStr for SubmissionTime {
    type Err = XdmError;
    fn from_str(s: &str) -> Result<Self, XdmError> {
        SubmissionTime::parse(s)
    }
}

/// Free text for `README.TXT` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readme {
    /// Sending organisation or professional.
    pub sender: Option<String>,
    /// Sending software and version.
    pub software: Option<String>,
    /// Who to contact about the package.
    pub contact: Option<String>,
    /// What the package holds, in a sentence.
    pub description: Option<String>,
}

/// Author of the submission set (the sender).
pub type PackAuthor = Actor;

/// What the caller decides about a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRequest {
    pub action: Option<Action>,
    pub submission_time: SubmissionTime,
    /// OID of the sending system (SubmissionSet `sourceId`).
    pub source_id: String,
    /// SubmissionSet uniqueId; derived (`2.25.<uuid>`) from the source id,
    /// submission time and document ids when `None`.
    pub submission_set_unique_id: Option<String>,
    /// Submission set author; the first document's first author when `None`.
    pub author: Option<PackAuthor>,
    /// SubmissionSet contentTypeCode (JDV_J59). [`PackRequest::new`] puts
    /// `07` (codingScheme `1.2.250.1.213.2.2`), the ANS mapping of an
    /// outpatient/external encounter; set it from the encounter when known.
    pub content_type: Coded,
    pub readme: Readme,
}

impl PackRequest {
    pub fn new(submission_time: SubmissionTime, source_id: impl Into<String>) -> Self {
        PackRequest {
            action: None,
            submission_time,
            source_id: source_id.into(),
            submission_set_unique_id: None,
            author: None,
            content_type: Coded {
                code: "07".into(),
                system: Some("1.2.250.1.213.2.2".into()),
                display: None,
            },
            readme: Readme::default(),
        }
    }
}

const SUBSET: &str = "IHE_XDM/SUBSET01";

/// Everything METADATA.XML says about one document.
struct Entry<'a> {
    input: XdmInput<'a>,
    file_name: String,
    entry_uuid: String,
    unique_id: String,
    patient_id: String,
    type_code: Coded,
    class_code: Coded,
    format_code: Coded,
}

/// Builds an XDM package. Same inputs, same bytes.
pub fn write(docs: &[XdmInput], request: &PackRequest) -> Result<Vec<u8>, XdmError> {
    if docs.is_empty() {
        return Err(XdmError::NoDocuments);
    }
    if docs.len() > 9999 {
        return Err(XdmError::TooManyDocuments(docs.len()));
    }
    if !is_oid(&request.source_id) {
        return Err(XdmError::InvalidSourceId(
            request.source_id.chars().take(64).collect(),
        ));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(docs.len());
    for (n, input) in docs.iter().enumerate() {
        let header = input.header;
        let unique_id = document_unique_id(&header.id);
        if entries.iter().any(|e| e.unique_id == unique_id) {
            return Err(XdmError::DuplicateDocument(unique_id));
        }
        let patient_id =
            patient_cx(header).ok_or_else(|| XdmError::NoPatientId(unique_id.clone()))?;
        if let Some(first) = entries.first()
            && first.patient_id != patient_id
        {
            return Err(XdmError::MixedPatients {
                first: first.patient_id.clone(),
                other: patient_id,
            });
        }
        let type_code = header
            .code
            .clone()
            .filter(|c| !c.code.trim().is_empty())
            .ok_or_else(|| XdmError::NoTypeCode(unique_id.clone()))?;
        let class_code = match input.class_code {
            Some(code) => code.clone(),
            None => class_code_for(&type_code.code)
                .ok_or_else(|| XdmError::UnknownClassCode(type_code.code.clone()))?,
        };
        let format_code = match input.format_code {
            Some(code) => code.clone(),
            None => match header.level {
                BodyLevel::Unstructured => format_code_pdf(),
                BodyLevel::Structured => {
                    let roots: Vec<&str> = header
                        .template_ids
                        .iter()
                        .map(|t| t.root.as_str())
                        .collect();
                    format_code_structured(&roots)
                }
            },
        };
        entries.push(Entry {
            input: *input,
            file_name: format!("DOC{:04}.XML", n + 1),
            entry_uuid: derived_uuid(&["DocumentEntry", &unique_id]),
            unique_id,
            patient_id,
            type_code,
            class_code,
            format_code,
        });
    }

    let ss_unique_id = match &request.submission_set_unique_id {
        Some(id) => id.clone(),
        None => {
            let time = request.submission_time.to_string();
            let mut parts: Vec<&str> = vec!["SubmissionSet", &request.source_id, &time];
            parts.extend(entries.iter().map(|e| e.unique_id.as_str()));
            derived_oid(&parts)
        }
    };
    let metadata = metadata_xml(&entries, request, &ss_unique_id)
        .map_err(|e| XdmError::ZipWrite(e.to_string()))?;

    let time = request.submission_time.zip_time()?;
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(time)
        .system(System::Unix)
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), XdmError> {
        zip.start_file(name, options)
            .map_err(|e| XdmError::ZipWrite(e.to_string()))?;
        zip.write_all(bytes)
            .map_err(|e| XdmError::ZipWrite(e.to_string()))
    };
    add("README.TXT", readme_txt(&entries, request).as_bytes())?;
    add("INDEX.HTM", index_htm(&entries).as_bytes())?;
    add(&format!("{SUBSET}/METADATA.XML"), &metadata)?;
    for entry in &entries {
        add(
            &format!("{SUBSET}/{}", entry.file_name),
            entry.input.content,
        )?;
    }
    let cursor = zip
        .finish()
        .map_err(|e| XdmError::ZipWrite(e.to_string()))?;
    Ok(cursor.into_inner())
}

fn is_oid(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
}

fn document_unique_id(id: &InstanceId) -> String {
    match id.extension.as_deref().filter(|e| !e.is_empty()) {
        Some(ext) => format!("{}^{}", id.root, ext),
        None => id.root.clone(),
    }
}

/// Identifiers under an INS OID are written with identifier type `NH`.
fn is_ins_root(root: &str) -> bool {
    mss_model::InsKind::from_oid(root).is_some()
}

fn cx(id: &str, authority: &str, kind: &str) -> String {
    format!(
        "{}^^^&{}&ISO^{}",
        hl7_escape(id),
        hl7_escape(authority),
        kind
    )
}

/// patientId: the INS, else the first patient id (see module docs). Also the
/// one "same patient" rule of mss-docs: two documents concern the same
/// patient when this gives the same CX for both.
pub(crate) fn patient_cx(header: &CdaHeader) -> Option<String> {
    if let Some(ins) = &header.patient.ins {
        return Some(cx(&ins.matricule, &ins.oid, "NH"));
    }
    let id = header.patient.ids.first()?;
    let kind = if is_ins_root(&id.root) { "NH" } else { "PI" };
    Some(match id.extension.as_deref().filter(|e| !e.is_empty()) {
        Some(ext) => cx(ext, &id.root, kind),
        None => cx(&id.root, &id.root, kind),
    })
}

fn source_patient_cx(header: &CdaHeader, patient_id: &str) -> String {
    header
        .patient
        .ids
        .iter()
        .find(|id| !is_ins_root(&id.root) && id.extension.as_deref().is_some_and(|e| !e.is_empty()))
        .map(|id| cx(id.extension.as_deref().unwrap_or(""), &id.root, "PI"))
        .unwrap_or_else(|| patient_id.to_string())
}

fn source_patient_info(header: &CdaHeader, patient_id: &str) -> Vec<String> {
    let traits = &header.patient.traits;
    let mut info = vec![format!("PID-3|{patient_id}")];
    if traits.birth_name.is_some() || traits.first_given_name.is_some() {
        info.push(format!(
            "PID-5|{}^{}^^^^^L",
            hl7_escape(traits.birth_name.as_deref().unwrap_or("")),
            hl7_escape(traits.first_given_name.as_deref().unwrap_or(""))
        ));
    }
    if let Some(date) = traits.birth_date {
        info.push(format!("PID-7|{}", date.to_hl7()));
    }
    if let Some(sex) = traits.sex {
        let code = match sex {
            mss_model::Sex::M => "M",
            mss_model::Sex::F => "F",
            mss_model::Sex::U => "U",
        };
        info.push(format!("PID-8|{code}"));
    }
    info
}

/// Root of the national identifiers of health professionals (RPPS/ADELI based).
const OID_IDNPS: &str = "1.2.250.1.71.4.2.1";
/// Root of the national identifiers of health organisations (FINESS/SIRET based).
const OID_IDNST: &str = "1.2.250.1.71.4.2.2";

/// XCN of a person: `id^FAMILY^Given^^^^^^&oid&ISO^D^^^IDNPS`.
fn xcn(actor: &Actor) -> Option<String> {
    if actor.id.is_none() && actor.family.is_none() && actor.given.is_none() {
        return None;
    }
    // IDNPS says "this number is assigned by the national PS authority":
    // only true of an extension under that root, not of a bare root.
    let (id, authority, kind) = match &actor.id {
        Some(id) => match id.extension.as_deref() {
            Some(ext) => {
                let kind = if id.root == OID_IDNPS { "IDNPS" } else { "" };
                (ext, format!("&{}&ISO", hl7_escape(&id.root)), kind)
            }
            None => (id.root.as_str(), String::new(), ""),
        },
        None => ("", String::new(), ""),
    };
    Some(format!(
        "{}^{}^{}^^^^^^{}^D^^^{}",
        hl7_escape(id),
        hl7_escape(actor.family.as_deref().unwrap_or("")),
        hl7_escape(actor.given.as_deref().unwrap_or("")),
        authority,
        kind
    ))
}

/// XON of an organisation: `Name^^^^^&oid&ISO^IDNST^^^id`.
fn xon(org: &Organization) -> Option<String> {
    let name = hl7_escape(org.name.as_deref().unwrap_or(""));
    match &org.id {
        Some(id) => {
            // As for IDNPS in `xcn`: the type only qualifies an extension.
            let (value, authority, kind) = match id.extension.as_deref() {
                Some(ext) => {
                    let kind = if id.root == OID_IDNST { "IDNST" } else { "" };
                    (ext, format!("&{}&ISO", hl7_escape(&id.root)), kind)
                }
                None => (id.root.as_str(), String::new(), ""),
            };
            Some(format!(
                "{name}^^^^^{authority}^{kind}^^^{}",
                hl7_escape(value)
            ))
        }
        None if !name.is_empty() => Some(name),
        None => None,
    }
}

/// CE as XDS writes it: `code^display^system`.
fn ce(code: &Coded) -> String {
    format!(
        "{}^{}^{}",
        hl7_escape(&code.code),
        hl7_escape(code.display.as_deref().unwrap_or("")),
        hl7_escape(code.system.as_deref().unwrap_or(""))
    )
}

// ---------------------------------------------------------------- time

/// A real calendar date (mss-model's rule, leap years included).
fn is_date(year: i64, month: i64, day: i64) -> bool {
    let narrow = |v: i64| u8::try_from(v).ok();
    match (u16::try_from(year), narrow(month), narrow(day)) {
        (Ok(year), Some(month), Some(day)) => {
            mss_model::PartialDate::new(year, Some(month), Some(day)).is_ok()
        }
        _ => false,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// An HL7 TS (`YYYY[MM[DD[hh[mm[ss[.f]]]]]][±hhmm]`) as XDS wants it: UTC,
/// no fraction, no offset. Precision is kept; an offset is applied when the
/// time has at least hours. `None` when it does not look like a TS.
pub(crate) fn xds_time(ts: &str) -> Option<String> {
    let ts = ts.trim();
    let digits_end = ts
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(ts.len());
    let digits = &ts[..digits_end];
    if digits.len() < 4 || digits.len() > 14 || !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut rest = &ts[digits_end..];
    if let Some(after_dot) = rest.strip_prefix('.') {
        let end = after_dot
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(after_dot.len());
        rest = &after_dot[end..];
    }
    let offset_minutes = match rest.as_bytes().first() {
        None => None,
        Some(sign @ (b'+' | b'-')) => {
            let off = &rest[1..];
            if off.len() != 4 || !off.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let minutes = off[..2].parse::<i64>().ok()? * 60 + off[2..].parse::<i64>().ok()?;
            Some(if *sign == b'-' { -minutes } else { minutes })
        }
        Some(_) => return None,
    };
    let offset = match offset_minutes {
        Some(m) if m != 0 && digits.len() >= 10 => m,
        _ => return Some(digits.to_string()),
    };
    let field = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i64>().ok());
    let (y, mo, d, h) = (field(0..4)?, field(4..6)?, field(6..8)?, field(8..10)?);
    let mi = field(10..12).unwrap_or(0);
    if !is_date(y, mo, d) || h > 23 || mi > 59 {
        return Some(digits.to_string());
    }
    let total = (days_from_civil(y, mo, d) * 24 + h) * 60 + mi - offset;
    let days = total.div_euclid(1440);
    let minute_of_day = total.rem_euclid(1440);
    let (y, mo, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}{mo:02}{d:02}{:02}{:02}",
        minute_of_day / 60,
        minute_of_day % 60
    );
    out.truncate(digits.len().min(12));
    if digits.len() > 12 {
        out.push_str(&digits[12..]);
    }
    Some(out)
}

// ---------------------------------------------------------------- text files

/// XML 1.0 forbids most control characters even escaped: drop them.
fn xml_clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in xml_clean(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn doc_label(entry: &Entry) -> String {
    entry
        .input
        .header
        .title
        .clone()
        .or_else(|| entry.type_code.display.clone())
        .unwrap_or_else(|| entry.unique_id.clone())
}

fn readme_txt(entries: &[Entry], request: &PackRequest) -> String {
    let readme = &request.readme;
    let mut out = String::from("Archive IHE XDM (ITI-32, ZIP sur messagerie) - MSSanté\r\n\r\n");
    let mut field = |label: &str, value: Option<&String>| {
        if let Some(value) = value {
            out.push_str(&format!("{label} : {}\r\n", one_line(value)));
        }
    };
    field("Émetteur", readme.sender.as_ref());
    field("Logiciel", readme.software.as_ref());
    field("Contact", readme.contact.as_ref());
    field("Contenu", readme.description.as_ref());
    out.push_str(&format!(
        "Date de soumission (UTC) : {}\r\n",
        request.submission_time
    ));
    if let Some(action) = request.action {
        let what = match action {
            Action::Replace => "remplacement de la version précédente",
            Action::Delete => "suppression du document",
        };
        out.push_str(&format!("Action demandée : {what}\r\n"));
    }
    out.push_str("\r\nDocuments :\r\n");
    for entry in entries {
        out.push_str(&format!(
            "  {SUBSET}/{}  {}\r\n",
            entry.file_name,
            one_line(&doc_label(entry))
        ));
    }
    out.push_str("\r\nLe fichier INDEX.HTM donne accès aux documents.\r\n");
    out
}

fn index_htm(entries: &[Entry]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head><meta charset=\"UTF-8\"><title>Documents IHE XDM</title></head>\n<body>\n<h1>Documents</h1>\n<ul>\n",
    );
    for entry in entries {
        out.push_str(&format!(
            "<li><a href=\"{SUBSET}/{}\">{}</a></li>\n",
            entry.file_name,
            html_escape(&one_line(&doc_label(entry)))
        ));
    }
    out.push_str("</ul>\n<p><a href=\"README.TXT\">README.TXT</a></p>\n</body>\n</html>\n");
    out
}

// ---------------------------------------------------------------- METADATA.XML

type Xml = Writer<Vec<u8>>;
type XmlResult = std::io::Result<()>;

fn slot(w: &mut Xml, name: &str, values: &[String]) -> XmlResult {
    if values.is_empty() {
        return Ok(());
    }
    w.create_element("rim:Slot")
        .with_attribute(("name", name))
        .write_inner_content(|w| {
            w.create_element("rim:ValueList").write_inner_content(|w| {
                for value in values {
                    w.create_element("rim:Value")
                        .write_text_content(BytesText::new(&xml_clean(value)))?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn opt_slot(w: &mut Xml, name: &str, value: Option<String>) -> XmlResult {
    match value {
        Some(v) if !v.is_empty() => slot(w, name, &[v]),
        _ => Ok(()),
    }
}

fn name_element(w: &mut Xml, text: &str) -> XmlResult {
    w.create_element("rim:Name").write_inner_content(|w| {
        w.create_element("rim:LocalizedString")
            .with_attribute(("value", one_line(&xml_clean(text)).as_str()))
            .write_empty()?;
        Ok(())
    })?;
    Ok(())
}

fn classification(w: &mut Xml, owner: &str, scheme: &str, n: usize, code: &Coded) -> XmlResult {
    let id = derived_uuid(&["Classification", owner, scheme, &n.to_string()]);
    w.create_element("rim:Classification")
        .with_attribute(("classificationScheme", scheme))
        .with_attribute(("classifiedObject", owner))
        .with_attribute(("id", id.as_str()))
        .with_attribute(("nodeRepresentation", xml_clean(&code.code).as_str()))
        .with_attribute(("objectType", CLASSIFICATION_OBJECT))
        .write_inner_content(|w| {
            opt_slot(w, "codingScheme", code.system.clone())?;
            if let Some(display) = &code.display {
                name_element(w, display)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn author_classification(
    w: &mut Xml,
    owner: &str,
    scheme: &str,
    n: usize,
    author: &Actor,
) -> XmlResult {
    let id = derived_uuid(&["Author", owner, &n.to_string()]);
    w.create_element("rim:Classification")
        .with_attribute(("classificationScheme", scheme))
        .with_attribute(("classifiedObject", owner))
        .with_attribute(("id", id.as_str()))
        .with_attribute(("nodeRepresentation", ""))
        .with_attribute(("objectType", CLASSIFICATION_OBJECT))
        .write_inner_content(|w| {
            opt_slot(
                w,
                "authorInstitution",
                author.organization.as_ref().and_then(xon),
            )?;
            opt_slot(w, "authorPerson", xcn(author))?;
            opt_slot(w, "authorSpecialty", author.role.as_ref().map(ce))?;
            Ok(())
        })?;
    Ok(())
}

fn external_identifier(
    w: &mut Xml,
    owner: &str,
    scheme: &str,
    label: &str,
    value: &str,
) -> XmlResult {
    let id = derived_uuid(&["ExternalIdentifier", owner, scheme]);
    w.create_element("rim:ExternalIdentifier")
        .with_attribute(("id", id.as_str()))
        .with_attribute(("identificationScheme", scheme))
        .with_attribute(("objectType", EXTERNAL_IDENTIFIER_OBJECT))
        .with_attribute(("registryObject", owner))
        .with_attribute(("value", xml_clean(value).as_str()))
        .write_inner_content(|w| name_element(w, label))?;
    Ok(())
}

fn metadata_xml(
    entries: &[Entry],
    request: &PackRequest,
    ss_unique_id: &str,
) -> std::io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let ss_id = derived_uuid(&["SubmissionSetEntry", ss_unique_id]);
    let patient_id = entries[0].patient_id.as_str();
    let ss_author = request
        .author
        .clone()
        .or_else(|| entries[0].input.header.authors.first().cloned());
    w.create_element("lcm:SubmitObjectsRequest")
        .with_attribute(("xmlns:lcm", NS_LCM))
        .with_attribute(("xmlns:rim", NS_RIM))
        .write_inner_content(|w| {
            w.create_element("rim:RegistryObjectList")
                .write_inner_content(|w| {
                    w.create_element("rim:RegistryPackage")
                        .with_attribute(("id", ss_id.as_str()))
                        .with_attribute(("objectType", REGISTRY_PACKAGE_OBJECT))
                        .write_inner_content(|w| {
                            if let Some(action) = request.action {
                                slot(w, "action", &[action.code().into()])?;
                            }
                            slot(w, "submissionTime", &[request.submission_time.to_string()])?;
                            if let Some(author) = &ss_author {
                                author_classification(w, &ss_id, SS_AUTHOR, 0, author)?;
                            }
                            classification(w, &ss_id, SS_CONTENT_TYPE, 0, &request.content_type)?;
                            external_identifier(
                                w,
                                &ss_id,
                                SS_PATIENT_ID,
                                "XDSSubmissionSet.patientId",
                                patient_id,
                            )?;
                            external_identifier(
                                w,
                                &ss_id,
                                SS_SOURCE_ID,
                                "XDSSubmissionSet.sourceId",
                                &request.source_id,
                            )?;
                            external_identifier(
                                w,
                                &ss_id,
                                SS_UNIQUE_ID,
                                "XDSSubmissionSet.uniqueId",
                                ss_unique_id,
                            )?;
                            Ok(())
                        })?;
                    let node_id = derived_uuid(&["SubmissionSetNode", &ss_id]);
                    w.create_element("rim:Classification")
                        .with_attribute(("classificationNode", SUBMISSION_SET_NODE))
                        .with_attribute(("classifiedObject", ss_id.as_str()))
                        .with_attribute(("id", node_id.as_str()))
                        .with_attribute(("objectType", CLASSIFICATION_OBJECT))
                        .write_empty()?;
                    for entry in entries {
                        document_entry(w, entry, request.action)?;
                    }
                    for entry in entries {
                        let id = derived_uuid(&["HasMember", &ss_id, &entry.entry_uuid]);
                        w.create_element("rim:Association")
                            .with_attribute(("associationType", HAS_MEMBER))
                            .with_attribute(("id", id.as_str()))
                            .with_attribute(("objectType", ASSOCIATION_OBJECT))
                            .with_attribute(("sourceObject", ss_id.as_str()))
                            .with_attribute(("targetObject", entry.entry_uuid.as_str()))
                            .write_inner_content(|w| {
                                slot(w, "SubmissionSetStatus", &["Original".into()])
                            })?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn document_entry(w: &mut Xml, entry: &Entry, action: Option<Action>) -> XmlResult {
    let header = entry.input.header;
    let id = entry.entry_uuid.as_str();
    let content = entry.input.content;
    w.create_element("rim:ExtrinsicObject")
        .with_attribute(("id", id))
        .with_attribute(("mimeType", "text/xml"))
        .with_attribute(("objectType", DOCUMENT_ENTRY_TYPE))
        .write_inner_content(|w| {
            if let Some(action) = action {
                slot(w, "action", &[action.code().into()])?;
            }
            opt_slot(
                w,
                "creationTime",
                header.effective_time.as_deref().and_then(xds_time),
            )?;
            slot(w, "hash", &[hex::encode(sha1_of(content))])?;
            opt_slot(w, "languageCode", header.language.clone())?;
            opt_slot(
                w,
                "legalAuthenticator",
                header.legal_authenticator.as_ref().and_then(xcn),
            )?;
            opt_slot(
                w,
                "serviceStartTime",
                header.service_start.as_deref().and_then(xds_time),
            )?;
            opt_slot(
                w,
                "serviceStopTime",
                header.service_stop.as_deref().and_then(xds_time),
            )?;
            slot(w, "size", &[content.len().to_string()])?;
            slot(
                w,
                "sourcePatientId",
                &[source_patient_cx(header, &entry.patient_id)],
            )?;
            slot(
                w,
                "sourcePatientInfo",
                &source_patient_info(header, &entry.patient_id),
            )?;
            slot(w, "URI", std::slice::from_ref(&entry.file_name))?;
            if let Some(title) = &header.title {
                name_element(w, title)?;
            }
            for (n, author) in header.authors.iter().enumerate() {
                author_classification(w, id, DE_AUTHOR, n, author)?;
            }
            classification(w, id, DE_CLASS, 0, &entry.class_code)?;
            if let Some(code) = &header.confidentiality {
                classification(w, id, DE_CONFIDENTIALITY, 0, code)?;
            }
            classification(w, id, DE_FORMAT, 0, &entry.format_code)?;
            if let Some(code) = &header.facility_type {
                classification(w, id, DE_FACILITY, 0, code)?;
            }
            if let Some(code) = &header.practice_setting {
                classification(w, id, DE_PRACTICE, 0, code)?;
            }
            classification(w, id, DE_TYPE, 0, &entry.type_code)?;
            external_identifier(
                w,
                id,
                DE_PATIENT_ID,
                "XDSDocumentEntry.patientId",
                &entry.patient_id,
            )?;
            external_identifier(
                w,
                id,
                DE_UNIQUE_ID,
                "XDSDocumentEntry.uniqueId",
                &entry.unique_id,
            )?;
            Ok(())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_time_parses_and_rejects() {
        let t = SubmissionTime::parse("20240229235959").unwrap();
        assert_eq!(t.to_string(), "20240229235959");
        for bad in [
            "20230229000000",
            "2024022923595",
            "19791231000000",
            "2024013100000x",
            "20241301000000",
        ] {
            assert!(SubmissionTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xds_time_converts_to_utc() {
        assert_eq!(
            xds_time("20210401171000+0100").as_deref(),
            Some("20210401161000")
        );
        assert_eq!(
            xds_time("20210101003000+0200").as_deref(),
            Some("20201231223000")
        );
        assert_eq!(
            xds_time("20211231233000-0100").as_deref(),
            Some("20220101003000")
        );
        assert_eq!(xds_time("20240229").as_deref(), Some("20240229"));
        assert_eq!(xds_time("20240229+0100").as_deref(), Some("20240229"));
        assert_eq!(xds_time("202102011200").as_deref(), Some("202102011200"));
        assert_eq!(
            xds_time("20210201120000.123+0000").as_deref(),
            Some("20210201120000")
        );
        assert_eq!(xds_time("2021020112+0130").as_deref(), Some("2021020110"));
        assert_eq!(xds_time("garbage"), None);
    }

    #[test]
    fn civil_roundtrip() {
        for days in [-1_000_000, -1, 0, 1, 11_016, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn hl7_types() {
        let actor = Actor {
            id: Some(InstanceId {
                root: "1.2.250.1.71.4.2.1".into(),
                extension: Some("801234534765".into()),
            }),
            family: Some("NOM".into()),
            given: Some("Prénom".into()),
            ..Actor::default()
        };
        assert_eq!(
            xcn(&actor).unwrap(),
            "801234534765^NOM^Prénom^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
        );
        let org = Organization {
            id: Some(InstanceId {
                root: "1.2.250.1.71.4.2.2".into(),
                extension: Some("1234".into()),
            }),
            name: Some("Labo A&B".into()),
        };
        assert_eq!(
            xon(&org).unwrap(),
            "Labo A\\T\\B^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1234"
        );
        // A bare root is no national number: no IDNPS/IDNST type.
        let bare = Actor {
            id: Some(InstanceId {
                root: "1.2.250.1.71.4.2.1".into(),
                extension: None,
            }),
            ..actor
        };
        assert_eq!(
            xcn(&bare).unwrap(),
            "1.2.250.1.71.4.2.1^NOM^Prénom^^^^^^^D^^^"
        );
        let bare_org = Organization {
            id: Some(InstanceId {
                root: "1.2.250.1.71.4.2.2".into(),
                extension: None,
            }),
            ..org
        };
        assert_eq!(
            xon(&bare_org).unwrap(),
            "Labo A\\T\\B^^^^^^^^^1.2.250.1.71.4.2.2"
        );
    }
}
