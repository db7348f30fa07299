//! What a received message is: who sent it (a professional, or a patient
//! through Mon espace santé, SC.MSS/UX.25), what it carries (an IHE XDM
//! archive, an MDN, a DSN, or nothing structured), and the subject as people
//! see it (without `XDM/1.0/DDM+`, SC.MSS/UX.28).
//!
//! Reading the MIME structure is mss-docs' job ([`parse_incoming`],
//! [`parse_mdn`]); this module only sorts. Received bytes come from anyone:
//! nothing here panics, and every loop over them is bounded.

use mss_docs::mdn::{ErrorCode, MdnDecision, mdn_decision, parse_mdn};
use mss_docs::message::{IncomingMessage, MessageError, parse_incoming_with_limit};
use mss_docs::subject::{display_subject, parse_subject};
use mss_model::{Matricule, MssAddress};

/// Largest message classified (64 MiB, mss-docs' default).
pub const MAX_MESSAGE_BYTES: usize = mss_docs::message::DEFAULT_MAX_INCOMING_BYTES;

/// Most recipients read from one DSN; a real one lists a handful.
const MAX_DSN_RECIPIENTS: usize = 256;

/// Who wrote the message, as the inbox must show it (UX.25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderKind {
    /// A health professional or organisation (any address outside the
    /// Mon espace santé domain).
    Professional,
    /// A patient writing from Mon espace santé (`…@patient.mssante.fr`).
    /// `matricule` is the local part when it is a matricule with a valid key.
    Patient { matricule: Option<Matricule> },
    /// No usable `From` address.
    Unknown,
}

/// The sender of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The `From` address as written, trimmed.
    pub address: Option<String>,
    /// The `From` display name (Mon espace santé puts the patient's name there).
    pub display_name: Option<String>,
    pub kind: SenderKind,
}

impl Sender {
    pub fn is_patient(&self) -> bool {
        matches!(self.kind, SenderKind::Patient { .. })
    }
}

/// What the message carries, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Health documents: an `IHE_XDM.ZIP` attachment, or an `XDM/1.0/DDM+`
    /// subject (then a missing archive is an error, not a plain mail).
    Xdm,
    /// A disposition notification (RFC 8098) answering a message we sent.
    Mdn,
    /// A delivery status notification (RFC 3464): the operator's receipt or bounce.
    Dsn,
    /// Anything else: a mail to read.
    Plain,
}

/// One recipient reported by a DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient` address (type prefix removed).
    pub recipient: String,
    /// `Original-Recipient` address (type prefix removed): the address as we wrote it.
    pub original_recipient: Option<String>,
    /// `Action`, lower-case: `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: String,
    /// `Status`, e.g. `5.1.1`.
    pub status: Option<String>,
    /// `Diagnostic-Code` as written.
    pub diagnostic: Option<String>,
}

/// What an MDN or a DSN says about a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Mdn {
        /// Message-ID of our message, without angle brackets.
        original_message_id: Option<String>,
        /// `None` when the MDN reports success.
        failure_code: Option<u16>,
        failure_label: Option<String>,
        /// The disposition part could not be read: why.
        unreadable: Option<String>,
    },
    Dsn {
        /// Message-ID of our message when the DSN quotes its headers.
        original_message_id: Option<String>,
        /// `Original-Envelope-Id`: the ENVID we gave at submission.
        envelope_id: Option<String>,
        recipients: Vec<DsnRecipient>,
    },
}

impl Report {
    /// The 900–906 error an MDN reports, when it is one of the volet's codes.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Report::Mdn { failure_code, .. } => failure_code.and_then(ErrorCode::from_code),
            Report::Dsn { .. } => None,
        }
    }

    /// True when the report says our message failed (MDN error, or a DSN
    /// with a `failed` recipient, or an MDN nobody can read).
    pub fn is_failure(&self) -> bool {
        match self {
            Report::Mdn {
                failure_code,
                failure_label,
                unreadable,
                ..
            } => failure_code.is_some() || failure_label.is_some() || unreadable.is_some(),
            Report::Dsn { recipients, .. } => recipients.iter().any(|r| r.action == "failed"),
        }
    }
}

/// An attachment, described without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentSummary {
    pub file_name: Option<String>,
    /// `type/subtype`, lower-case.
    pub content_type: String,
    pub size: usize,
    pub is_xdm: bool,
}

/// A received message, sorted. `message` keeps everything mss-docs read
/// (attachments included) for the later steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message: IncomingMessage,
    pub sender: Sender,
    pub kind: MessageKind,
    /// The subject as shown: `XDM/1.0/DDM+` hidden (UX.28), one line.
    pub display_subject: String,
    pub attachments: Vec<AttachmentSummary>,
    /// For MDN and DSN kinds: what they report.
    pub report: Option<Report>,
    /// Whether an MDN may be sent automatically (RFC 8098 loop rules).
    pub mdn: MdnDecision,
}

impl Received {
    /// Message-ID without angle brackets.
    pub fn message_id(&self) -> Option<&str> {
        self.message.message_id.as_deref()
    }

    /// The first `Disposition-Notification-To` address: an MDN was asked for.
    pub fn mdn_requested_to(&self) -> Option<&str> {
        self.message
            .disposition_notification_to
            .first()
            .map(String::as_str)
    }
}

/// Sorts a received message. Fails only when the bytes are not a mail
/// message at all, or are over [`MAX_MESSAGE_BYTES`].
pub fn classify(raw: &[u8]) -> Result<Received, MessageError> {
    classify_with_limit(raw, MAX_MESSAGE_BYTES)
}

/// [`classify`] with another size limit.
pub fn classify_with_limit(raw: &[u8], max_bytes: usize) -> Result<Received, MessageError> {
    let message = parse_incoming_with_limit(raw, max_bytes)?;
    let sender = sender_of(&message);
    let is_dsn = message.attachments.iter().any(is_delivery_status);
    let subject = message.subject.as_deref().unwrap_or("");
    let subject_is_xdm = parse_subject(subject).is_xdm;
    let kind = if message.is_mdn {
        MessageKind::Mdn
    } else if is_dsn {
        MessageKind::Dsn
    } else if message.xdm().is_some() || subject_is_xdm {
        MessageKind::Xdm
    } else {
        MessageKind::Plain
    };
    let report = match kind {
        MessageKind::Mdn => Some(mdn_report(raw, max_bytes)),
        MessageKind::Dsn => Some(dsn_report(&message)),
        _ => None,
    };
    let attachments = message
        .attachments
        .iter()
        .map(|a| AttachmentSummary {
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone(),
            size: a.bytes.len(),
            is_xdm: a.is_xdm,
        })
        .collect();
    Ok(Received {
        sender,
        kind,
        display_subject: display_subject(subject),
        attachments,
        report,
        mdn: mdn_decision(&message),
        message,
    })
}

fn sender_of(message: &IncomingMessage) -> Sender {
    let Some(from) = &message.from else {
        return Sender {
            address: None,
            display_name: None,
            kind: SenderKind::Unknown,
        };
    };
    let address = from.address.trim().to_owned();
    let kind = match MssAddress::parse(&address) {
        Ok(parsed) if parsed.is_patient() => SenderKind::Patient {
            matricule: parsed.patient_matricule(),
        },
        Ok(_) => SenderKind::Professional,
        // An address the strict parser refuses may still be in the patient
        // domain: never show a patient as a professional.
        Err(_) if is_patient_domain(&address) => SenderKind::Patient { matricule: None },
        Err(_) if address.is_empty() => SenderKind::Unknown,
        Err(_) => SenderKind::Professional,
    };
    Sender {
        address: (!address.is_empty()).then_some(address),
        display_name: from.display_name.clone(),
        kind,
    }
}

fn is_patient_domain(address: &str) -> bool {
    address.rsplit_once('@').is_some_and(|(_, d)| {
        d.trim()
            .eq_ignore_ascii_case(mss_model::address::PATIENT_DOMAIN)
    })
}

fn is_delivery_status(a: &mss_docs::message::ReceivedAttachment) -> bool {
    matches!(
        a.content_type.as_str(),
        "message/delivery-status" | "message/global-delivery-status"
    )
}

fn mdn_report(raw: &[u8], max_bytes: usize) -> Report {
    if raw.len() > max_bytes {
        return Report::Mdn {
            original_message_id: None,
            failure_code: None,
            failure_label: None,
            unreadable: Some("message too large".into()),
        };
    }
    match parse_mdn(raw) {
        Ok(mdn) => Report::Mdn {
            original_message_id: mdn.original_message_id.clone(),
            failure_code: mdn.failure.as_ref().and_then(|f| f.code),
            failure_label: mdn.failure.as_ref().and_then(|f| f.label.clone()),
            unreadable: None,
        },
        Err(e) => Report::Mdn {
            original_message_id: None,
            failure_code: None,
            failure_label: None,
            unreadable: Some(e.to_string()),
        },
    }
}

/// Header-style fields of a text block, continuation lines unfolded, at most
/// `max` fields.
fn fields(text: &str, max: usize) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if out.len() >= max {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        } else if line.trim().is_empty() {
            // Block separator: keep a marker so recipient groups stay apart.
            out.push((String::new(), String::new()));
        }
    }
    out
}

fn strip_type(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, a)| a)
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn dsn_report(message: &IncomingMessage) -> Report {
    let mut recipients = Vec::new();
    let mut original_message_id = None;
    let mut envelope_id = None;
    for attachment in &message.attachments {
        let text =
            String::from_utf8_lossy(&attachment.bytes[..attachment.bytes.len().min(64 * 1024)]);
        if is_delivery_status(attachment) {
            let mut current: Option<DsnRecipient> = None;
            // `Original-Recipient` comes before the `Final-Recipient` of its group.
            let mut original: Option<String> = None;
            for (name, value) in fields(&text, 4 * MAX_DSN_RECIPIENTS) {
                match name.as_str() {
                    "original-envelope-id" if envelope_id.is_none() => {
                        envelope_id = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
                    }
                    "original-recipient" => {
                        original = Some(strip_type(&value)).filter(|v| !v.is_empty());
                    }
                    "" => original = None,
                    "final-recipient" => {
                        if let Some(done) = current.take() {
                            recipients.push(done);
                        }
                        current = Some(DsnRecipient {
                            recipient: strip_type(&value),
                            original_recipient: original.take(),
                            action: String::new(),
                            status: None,
                            diagnostic: None,
                        });
                    }
                    "action" => {
                        if let Some(r) = current.as_mut() {
                            r.action = value.to_ascii_lowercase();
                        }
                    }
                    "status" => {
                        if let Some(r) = current.as_mut() {
                            r.status = Some(value);
                        }
                    }
                    "diagnostic-code" => {
                        if let Some(r) = current.as_mut() {
                            r.diagnostic = Some(value);
                        }
                    }
                    _ => {}
                }
                if recipients.len() >= MAX_DSN_RECIPIENTS {
                    break;
                }
            }
            if let Some(done) = current.take()
                && recipients.len() < MAX_DSN_RECIPIENTS
            {
                recipients.push(done);
            }
        } else if original_message_id.is_none()
            && matches!(
                attachment.content_type.as_str(),
                "text/rfc822-headers" | "message/rfc822" | "message/global-headers"
            )
        {
            // The quoted headers end at the first blank line.
            let head = text.split("\n\n").next().unwrap_or("");
            let head = head.split("\r\n\r\n").next().unwrap_or("");
            original_message_id = fields(head, 200)
                .into_iter()
                .find(|(n, _)| n == "message-id")
                .map(|(_, v)| strip_type(&v))
                .filter(|v| !v.is_empty());
        }
    }
    Report::Dsn {
        original_message_id,
        envelope_id,
        recipients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(from: &str, subject: &str, extra: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: bal@hopital.mssante.fr\r\nSubject: {subject}\r\nMessage-ID: <m1@x.fr>\r\n{extra}\r\nBonjour\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn patient_sender_is_recognised_with_its_matricule() {
        let raw = mail(
            "Leo Dupond <279035121518989@patient.mssante.fr>",
            "Question",
            "",
        );
        let r = classify(&raw).unwrap();
        assert_eq!(
            r.sender.kind,
            SenderKind::Patient {
                matricule: Some(Matricule::parse("279035121518989").unwrap())
            }
        );
        assert_eq!(r.sender.display_name.as_deref(), Some("Leo Dupond"));
        assert_eq!(r.kind, MessageKind::Plain);
    }

    #[test]
    fn patient_domain_with_a_bad_local_part_is_still_a_patient() {
        let raw = mail("<12345@PATIENT.mssante.fr>", "x", "");
        let r = classify(&raw).unwrap();
        assert_eq!(r.sender.kind, SenderKind::Patient { matricule: None });
    }

    #[test]
    fn professional_sender_and_xdm_subject_without_archive() {
        let raw = mail(
            "Dr House <house@hopital.mssante.fr>",
            "XDM/1.0/DDM+CR d'imagerie PAT-TROIS DOMINIQUE 28/03/1979",
            "",
        );
        let r = classify(&raw).unwrap();
        assert_eq!(r.sender.kind, SenderKind::Professional);
        assert_eq!(r.kind, MessageKind::Xdm);
        assert_eq!(
            r.display_subject,
            "CR d'imagerie PAT-TROIS DOMINIQUE 28/03/1979"
        );
        assert_eq!(r.message_id(), Some("m1@x.fr"));
    }

    #[test]
    fn dsn_is_read() {
        let raw = b"From: MAILER-DAEMON@op.mssante.fr\r\nTo: bal@hopital.mssante.fr\r\nSubject: Undelivered Mail\r\nMessage-ID: <d1@op>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; op.mssante.fr\r\nOriginal-Envelope-Id: 12.ab34\r\n\r\nOriginal-Recipient: rfc822;Nobody@patient.mssante.fr\r\nFinal-Recipient: rfc822; nobody@patient.mssante.fr\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 no such\r\n  mailbox\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <sent-1@hopital.mssante.fr>\r\nSubject: x\r\n--b--\r\n";
        let r = classify(raw).unwrap();
        assert_eq!(r.kind, MessageKind::Dsn);
        let Some(Report::Dsn {
            original_message_id,
            envelope_id,
            recipients,
        }) = &r.report
        else {
            panic!("no DSN report: {:?}", r.report)
        };
        assert_eq!(
            original_message_id.as_deref(),
            Some("sent-1@hopital.mssante.fr")
        );
        assert_eq!(envelope_id.as_deref(), Some("12.ab34"));
        assert_eq!(recipients.len(), 1);
        assert_eq!(recipients[0].recipient, "nobody@patient.mssante.fr");
        assert_eq!(
            recipients[0].original_recipient.as_deref(),
            Some("Nobody@patient.mssante.fr")
        );
        assert_eq!(recipients[0].action, "failed");
        assert_eq!(recipients[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            recipients[0].diagnostic.as_deref(),
            Some("smtp; 550 no such mailbox")
        );
        assert!(r.report.as_ref().unwrap().is_failure());
    }

    #[test]
    fn not_a_message_is_an_error() {
        assert!(classify(b"").is_err());
        assert!(classify_with_limit(&mail("a@b.fr", "x", ""), 10).is_err());
    }
}
