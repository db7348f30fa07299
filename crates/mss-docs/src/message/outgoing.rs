//! Composing an outgoing MSSanté message.

use mail_builder::{
    MessageBuilder,
    headers::{
        address::Address, content_type::ContentType, date::Date, message_id::MessageId, raw::Raw,
        text::Text,
    },
    mime::MimePart,
};

use super::{AddressProblem, Mailbox, check_address, check_message_id, multipart};
use crate::cda::CdaHeader;
use crate::headers::{self, HeaderError, XMssHeaders, XMssInput, check_header_value};
use crate::subject::{SubjectError, SubjectParts, build_subject};
use crate::xdm::patient_cx;

/// The attachment name of the XDM archive.
pub const XDM_FILE_NAME: &str = "IHE_XDM.ZIP";

/// Largest message accepted by Mon espace santé (25 Mo); above it the
/// message bounces, so it is refused before sending.
pub const PATIENT_MAX_MESSAGE_BYTES: usize = 25_000_000;

/// Why a message could not be composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("{field} address {address:?} is not a valid mail address: correct it")]
    Address {
        field: &'static str,
        address: String,
    },
    #[error(
        "{field} contains a line break or control character: refusing it (header injection); remove it"
    )]
    Injection { field: &'static str },
    #[error("the message has no recipient: add at least one To address")]
    NoRecipient,
    #[error("Message-ID {0:?} is not valid (expected id@domain, no spaces): generate a proper one")]
    MessageId(String),
    #[error(
        "the documents concern different patients: send one message per patient (one patient per message)"
    )]
    SeveralPatients,
    #[error(
        "the message is {size} bytes, over the 25 MB Mon espace santé accepts: send fewer or smaller documents"
    )]
    TooLargeForPatient { size: usize },
    #[error("cannot build the subject line: {0}")]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("no subject given and no document to build one from: give a subject")]
    NoSubject,
    #[error("attachment name {0:?} is empty or not a single line: give a plain file name")]
    FileName(String),
    #[error("the message could not be written ({0}); this is a bug, please report it")]
    Write(String),
}

/// The XDM archive, already built by the caller, and the headers of the CDA
/// documents it contains (in archive order): they give X-MSS-CODECDA,
/// X-MSS-INS and the default subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdmPackage {
    /// The bytes of `IHE_XDM.ZIP`.
    pub zip: Vec<u8>,
    pub documents: Vec<CdaHeader>,
}

/// A PDF attached next to the XDM (the same documents, PDF/A-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfAttachment {
    /// e.g. `20220531_CR d'imagerie médicale_CORSE_FIGATELLIX.pdf`.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Everything an outgoing message is made of. Nothing is generated inside:
/// the Message-ID and the date are given, so the same input always gives
/// the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    /// The sending BAL, with its display name.
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// `id@domain`, with or without angle brackets.
    pub message_id: String,
    /// Unix time, seconds (written in UTC).
    pub date: i64,
    /// Message-ID of the message answered, if this is a reply.
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs, oldest first.
    pub references: Vec<String>,
    /// Explicit subject; when `None`, built as `XDM/1.0/DDM+<libellé> <NOM>
    /// <prénom> <date>` from the first document.
    pub subject: Option<String>,
    /// Plain text body (UTF-8).
    pub body: String,
    pub xdm: Option<XdmPackage>,
    pub pdfs: Vec<PdfAttachment>,
    /// Ask for an MDN: `Disposition-Notification-To` = the From address.
    pub request_mdn: bool,
    /// Product reference (X-MSS-NIL); required.
    pub nil: Option<String>,
    /// Count test/demonstration INS OIDs as INS for X-MSS-INS.
    pub test_identities: bool,
    /// End the exchange with the patient (`X-MSS-MES: FIN`); needs a patient recipient.
    pub end_patient_exchange: bool,
}

fn address_error(field: &'static str, address: &str, problem: AddressProblem) -> ComposeError {
    match problem {
        AddressProblem::Control => ComposeError::Injection { field },
        AddressProblem::Syntax => ComposeError::Address {
            field,
            address: address.to_owned(),
        },
    }
}

fn check_mailbox(field: &'static str, mailbox: &Mailbox) -> Result<Address<'static>, ComposeError> {
    let address =
        check_address(&mailbox.address).map_err(|p| address_error(field, &mailbox.address, p))?;
    let name = match mailbox.display_name.as_deref().map(str::trim) {
        Some(name) if name.chars().any(char::is_control) => {
            return Err(ComposeError::Injection { field });
        }
        Some("") | None => None,
        Some(name) => Some(name.to_owned()),
    };
    Ok(Address::new_address(name, address))
}

fn check_id(id: &str) -> Result<String, ComposeError> {
    check_message_id(id).ok_or_else(|| ComposeError::MessageId(id.to_owned()))
}

/// Whether two CDA headers concern the same patient, by the rule the XDM
/// writer applies (same patientId CX), so that a message and its package
/// never disagree about "one patient per message". No patient id on either
/// side means not provably the same.
fn same_patient(a: &CdaHeader, b: &CdaHeader) -> bool {
    matches!((patient_cx(a), patient_cx(b)), (Some(x), Some(y)) if x == y)
}

/// The subject built from the first document: label from the CDA code's
/// display name, else the JDV_J07 label of the code, else the document title; NOM from the birth name (else
/// the name in use); prénom from the first given name (else the one in use).
fn default_subject(document: &CdaHeader) -> Result<String, ComposeError> {
    let label = document
        .code
        .as_ref()
        .and_then(|c| {
            c.display
                .clone()
                .filter(|d| !d.trim().is_empty())
                .or_else(|| mss_model::doctype::label(c.code.trim()).map(str::to_owned))
        })
        .or_else(|| document.title.clone())
        .unwrap_or_default();
    let patient = &document.patient;
    let family = patient
        .traits
        .birth_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| patient.used_name.clone())
        .unwrap_or_default();
    let given = patient
        .traits
        .first_given_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| patient.used_given_name.clone())
        .unwrap_or_default();
    Ok(build_subject(&SubjectParts {
        label,
        family_name: family,
        given_name: given,
        birth_date: patient.traits.birth_date,
    })?)
}

fn check_file_name(name: &str) -> Result<String, ComposeError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(ComposeError::FileName(name.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// Compose the RFC 5322 bytes of an outgoing message.
///
/// Checks, in order: addresses and names (no control characters), the
/// Message-ID, one patient per message, the X-MSS headers (NIL present,
/// `FIN` only towards a patient), the subject, and, when a recipient is a
/// Mon espace santé address, the 25 MB limit on the final bytes.
pub fn compose(message: &OutgoingMessage) -> Result<Vec<u8>, ComposeError> {
    let from = check_mailbox("From", &message.from)?;
    if message.to.is_empty() {
        return Err(ComposeError::NoRecipient);
    }
    let to = message
        .to
        .iter()
        .map(|m| check_mailbox("To", m))
        .collect::<Result<Vec<_>, _>>()?;
    let cc = message
        .cc
        .iter()
        .map(|m| check_mailbox("Cc", m))
        .collect::<Result<Vec<_>, _>>()?;
    let message_id = check_id(&message.message_id)?;
    let in_reply_to = message.in_reply_to.as_deref().map(check_id).transpose()?;
    let references = message
        .references
        .iter()
        .map(|r| check_id(r))
        .collect::<Result<Vec<_>, _>>()?;

    let documents: &[CdaHeader] = message.xdm.as_ref().map_or(&[], |x| &x.documents);
    if let Some((first, rest)) = documents.split_first()
        && rest.iter().any(|d| !same_patient(first, d))
    {
        return Err(ComposeError::SeveralPatients);
    }

    let recipients: Vec<&str> = message
        .to
        .iter()
        .chain(&message.cc)
        .map(|m| m.address.trim())
        .collect();
    let x_mss = XMssHeaders::compute(&XMssInput {
        documents,
        nil: message.nil.as_deref(),
        test_identities: message.test_identities,
        end_patient_exchange: message.end_patient_exchange,
        recipients: &recipients,
    })?;

    let subject = match (&message.subject, documents.first()) {
        (Some(subject), _) => {
            check_header_value("Subject", subject)
                .map_err(|_| ComposeError::Injection { field: "Subject" })?;
            subject.trim().to_owned()
        }
        (None, Some(first)) => default_subject(first)?,
        (None, None) => return Err(ComposeError::NoSubject),
    };

    let mut builder = MessageBuilder::new()
        .from(from)
        .to(Address::new_list(to))
        .subject(Text::new(subject))
        .date(Date::new(message.date))
        .message_id(MessageId::new(message_id.clone()));
    if !cc.is_empty() {
        builder = builder.cc(Address::new_list(cc));
    }
    if let Some(id) = in_reply_to {
        builder = builder.in_reply_to(MessageId::new(id));
    }
    if !references.is_empty() {
        builder = builder.references(MessageId::from(references));
    }
    if message.request_mdn {
        let address = check_address(&message.from.address)
            .map_err(|p| address_error("From", &message.from.address, p))?;
        builder = builder.header(
            "Disposition-Notification-To",
            Address::new_address(None::<String>, address),
        );
    }
    for (name, value) in x_mss.fields() {
        check_header_value(name, &value)?;
        builder = builder.header(name, Raw::new(value));
    }

    let text = MimePart::new(
        ContentType::new("text/plain").attribute("charset", "utf-8"),
        message.body.as_str(),
    );
    let mut attachments = Vec::new();
    if let Some(xdm) = &message.xdm {
        attachments.push(
            MimePart::new(
                ContentType::new("application/zip").attribute("name", XDM_FILE_NAME),
                xdm.zip.as_slice(),
            )
            .attachment(XDM_FILE_NAME),
        );
    }
    for pdf in &message.pdfs {
        let name = check_file_name(&pdf.file_name)?;
        attachments.push(
            MimePart::new(
                ContentType::new("application/pdf").attribute("name", name.clone()),
                pdf.bytes.as_slice(),
            )
            .attachment(name),
        );
    }
    let body = if attachments.is_empty() {
        text
    } else {
        let mut parts = Vec::with_capacity(attachments.len() + 1);
        parts.push(text);
        parts.extend(attachments);
        multipart(ContentType::new("multipart/mixed"), &message_id, 0, parts)
    };
    let bytes = builder
        .body(body)
        .write_to_vec()
        .map_err(|e| ComposeError::Write(e.to_string()))?;

    if recipients.iter().any(|a| headers::is_patient_address(a))
        && bytes.len() > PATIENT_MAX_MESSAGE_BYTES
    {
        return Err(ComposeError::TooLargeForPatient { size: bytes.len() });
    }
    Ok(bytes)
}
