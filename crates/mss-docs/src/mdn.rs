//! Message Disposition Notifications (RFC 8098) as the ANS volet
//! "Transmission de documents CDA en HL7v2 par messagerie sécurisée de
//! santé" (IG-LPS-MSS, MDN annex) uses them to report integration status.
//!
//! # What is built
//!
//! `multipart/report; report-type=disposition-notification` with:
//! 1. `text/plain; charset=utf-8`: French text for people, with the code and
//!    label on failure;
//! 2. `message/disposition-notification`: `Reporting-UA`,
//!    `Original-Recipient`, `Final-Recipient: rfc822;<bal>`,
//!    `Original-Message-ID`, `Disposition`, and on failure **both** the
//!    historical `processed/Error: <code>^<libellé>` disposition (v1.1.2) and
//!    an RFC 8098 `Error: <code>^<libellé>` field (v1.1.3);
//! 3. `message/rfc822`: the **whole** original message. Following the v1.1.3
//!    reading, the original attachments (IHE_XDM.ZIP, PDF) travel inside this
//!    part only; they are not attached a second time (the v1.1.2 text asked
//!    for that, which doubles the size for no information).
//!
//! The disposition part is 7-bit as RFC 8098 requires: the labels are written
//! there without accents (`Auteur non autorise a …`); the human part keeps
//! the exact French labels. Receivers read the code, not the label.
//!
//! Subject: the original XDM subject on success, `[KO Intégration système
//! !][<code>] <original>` on failure. From: the BAL that processed the
//! message. To: the `Disposition-Notification-To` address. The MDN also
//! carries `X-MSS-NIL` (every message an LPS sends does), `In-Reply-To` and
//! `References` to the original, and `Auto-Submitted: auto-replied`
//! (RFC 3834) so that no automaton answers it.

use mail_builder::{
    MessageBuilder,
    headers::{
        address::Address, content_type::ContentType, date::Date, message_id::MessageId, raw::Raw,
        text::Text,
    },
    mime::MimePart,
};
use mail_parser::{MessageParser, MimeHeaders};

use crate::headers::{HeaderError, X_MSS_NIL, check_header_value, nil};
use crate::message::{
    DEFAULT_MAX_INCOMING_BYTES, IncomingMessage, check_address, check_message_id, multipart,
};
use crate::subject::{build_failure_subject, one_line};

/// The integration error codes of the volet (table applicationErrorCondition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 900: the version given for a replacement/deletion is not the latest.
    VersionMismatch,
    /// 901: the author may not replace or delete this document.
    AuthorNotAuthorised,
    /// 902: the patient is unknown to the receiving software.
    UnknownPatient,
    /// 903: the document carries patient identifiers but no INS.
    InsMissing,
    /// 904: the INS or its traits do not match the receiving record exactly.
    InsMismatch,
    /// 905: the INS is there but not all its traits.
    InsIncomplete,
    /// 906: any other error.
    Other,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 7] = [
        Self::VersionMismatch,
        Self::AuthorNotAuthorised,
        Self::UnknownPatient,
        Self::InsMissing,
        Self::InsMismatch,
        Self::InsIncomplete,
        Self::Other,
    ];

    pub fn code(self) -> u16 {
        match self {
            Self::VersionMismatch => 900,
            Self::AuthorNotAuthorised => 901,
            Self::UnknownPatient => 902,
            Self::InsMissing => 903,
            Self::InsMismatch => 904,
            Self::InsIncomplete => 905,
            Self::Other => 906,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The French label of the volet's table.
    pub fn label(self) -> &'static str {
        match self {
            Self::VersionMismatch => {
                "Version du document incorrecte lors d'une demande de remplacement/suppression"
            }
            Self::AuthorNotAuthorised => "Auteur non autorisé à remplacer ou supprimer un document",
            Self::UnknownPatient => "Identifiant patient inconnu",
            Self::InsMissing => "INS non présent dans le document",
            Self::InsMismatch => {
                "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur"
            }
            Self::InsIncomplete => "L'INS transmis n'est pas complet",
            Self::Other => "Erreur 'Autre'",
        }
    }

    /// The label without accents, for the 7-bit disposition part.
    pub fn ascii_label(self) -> String {
        self.label()
            .chars()
            .map(|c| match c {
                'à' | 'â' | 'ä' => 'a',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'î' | 'ï' => 'i',
                'ô' | 'ö' => 'o',
                'ù' | 'û' | 'ü' => 'u',
                'ç' => 'c',
                c if c.is_ascii() => c,
                _ => '?',
            })
            .collect()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.label())
    }
}

/// Why an MDN could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdnError {
    #[error("{field} address {address:?} is not a valid mail address: correct it")]
    Address {
        field: &'static str,
        address: String,
    },
    #[error("{field} is not a valid Message-ID (id@domain, no spaces): check the original message")]
    MessageId { field: &'static str },
    #[error(
        "{field} contains a line break or a non-ASCII/control character: refusing it; remove it"
    )]
    Injection { field: &'static str },
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(
        "MDN of {size} bytes is over the {max}-byte limit: inspect it by hand if it is expected"
    )]
    TooLarge { size: usize, max: usize },
    #[error("the data is not a mail message (no header found): check what was fetched")]
    NotAMessage,
    #[error("the message is not an MDN (no message/disposition-notification part)")]
    NotAnMdn,
    #[error(
        "the MDN has no Final-Recipient field: the sender's software is not RFC 8098 compliant"
    )]
    MissingFinalRecipient,
    #[error("the MDN has no Disposition field: the sender's software is not RFC 8098 compliant")]
    MissingDisposition,
    #[error("the MDN could not be written ({0}); this is a bug, please report it")]
    Write(String),
}

/// The result reported by an MDN that mss sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdnOutcome {
    /// The message was integrated automatically.
    Processed,
    /// It could not be, for this reason.
    Failed(ErrorCode),
}

/// What an MDN is built from. Nothing is generated inside.
#[derive(Debug, Clone, Copy)]
pub struct MdnRequest<'a> {
    /// The BAL that processed the message (From, Final-Recipient).
    pub reporting_bal: &'a str,
    /// Display name of that BAL, if any.
    pub reporting_name: Option<&'a str>,
    /// The address in the original `Disposition-Notification-To` (To).
    pub notify: &'a str,
    /// The original `Original-Recipient` header, if present (either
    /// `rfc822;addr` or a bare address); else the reporting BAL is used, as
    /// the volet asks for the field.
    pub original_recipient: Option<&'a str>,
    pub original_message_id: &'a str,
    pub original_subject: &'a str,
    /// The raw original message, embedded as `message/rfc822`.
    pub original_message: &'a [u8],
    pub outcome: MdnOutcome,
    /// `Reporting-UA` product, e.g. `mss 0.1.0` (ASCII, single line).
    pub reporting_ua: &'a str,
    /// Message-ID of the MDN itself.
    pub message_id: &'a str,
    /// Unix time, seconds.
    pub date: i64,
    /// X-MSS-NIL product reference.
    pub nil: Option<&'a str>,
}

const SENT_AUTOMATICALLY: &str = "automatic-action/MDN-sent-automatically";

fn ascii_line(field: &'static str, value: &str) -> Result<String, MdnError> {
    let value = value.trim();
    if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(MdnError::Injection { field });
    }
    Ok(value.to_owned())
}

fn address(field: &'static str, value: &str) -> Result<String, MdnError> {
    check_address(value).map_err(|_| MdnError::Address {
        field,
        address: value.to_owned(),
    })
}

fn id(field: &'static str, value: &str) -> Result<String, MdnError> {
    check_message_id(value).ok_or(MdnError::MessageId { field })
}

/// The text shown to people (first part).
fn human_text(outcome: MdnOutcome, subject: &str, original_id: &str) -> String {
    match outcome {
        MdnOutcome::Processed => format!(
            "Le message ci-dessous a été reçu et intégré automatiquement dans le dossier du patient.\r\n\
             \r\n\
             Objet : {subject}\r\n\
             Identifiant du message : <{original_id}>\r\n"
        ),
        MdnOutcome::Failed(code) => format!(
            "L'intégration automatique du message ci-dessous a échoué pour la raison suivante : {label} (code {number}).\r\n\
             \r\n\
             Le document n'a pas été classé dans le dossier du patient. Vérifiez les informations \
             transmises, corrigez-les si besoin puis renvoyez le message, ou prenez contact avec le destinataire.\r\n\
             \r\n\
             Objet : {subject}\r\n\
             Identifiant du message : <{original_id}>\r\n\
             Erreur : {number}^{label}\r\n",
            label = code.label(),
            number = code.code(),
        ),
    }
}

/// Build the RFC 5322 bytes of an MDN.
pub fn build_mdn(request: &MdnRequest<'_>) -> Result<Vec<u8>, MdnError> {
    let bal = address("reporting BAL", request.reporting_bal)?;
    let notify = address("Disposition-Notification-To", request.notify)?;
    let original_id = id("Original-Message-ID", request.original_message_id)?;
    let message_id = id("Message-ID", request.message_id)?;
    let ua = ascii_line("Reporting-UA", request.reporting_ua)?;
    let nil = nil(request.nil)?;
    let original_recipient = match request.original_recipient.map(str::trim) {
        Some(value) if !value.is_empty() => {
            let value = ascii_line("Original-Recipient", value)?;
            match value.split_once(';') {
                Some((kind, addr)) => format!("{};{}", kind.trim(), addr.trim()),
                None => format!("rfc822;{}", address("Original-Recipient", &value)?),
            }
        }
        _ => format!("rfc822;{bal}"),
    };
    let name = match request.reporting_name.map(str::trim) {
        Some(n) if n.chars().any(char::is_control) => {
            return Err(MdnError::Injection {
                field: "reporting name",
            });
        }
        Some("") | None => None,
        Some(n) => Some(n.to_owned()),
    };
    let original_subject = one_line(request.original_subject);
    let subject = match request.outcome {
        MdnOutcome::Processed => original_subject.clone(),
        MdnOutcome::Failed(code) => build_failure_subject(code, &original_subject),
    };

    let mut fields = String::new();
    if !ua.is_empty() {
        fields.push_str(&format!("Reporting-UA: {ua}\r\n"));
    }
    fields.push_str(&format!("Original-Recipient: {original_recipient}\r\n"));
    fields.push_str(&format!("Final-Recipient: rfc822;{bal}\r\n"));
    fields.push_str(&format!("Original-Message-ID: <{original_id}>\r\n"));
    match request.outcome {
        MdnOutcome::Processed => {
            fields.push_str(&format!("Disposition: {SENT_AUTOMATICALLY}; processed\r\n"));
        }
        MdnOutcome::Failed(code) => {
            let detail = format!("{}^{}", code.code(), code.ascii_label());
            fields.push_str(&format!(
                "Disposition: {SENT_AUTOMATICALLY}; processed/Error: {detail}\r\nError: {detail}\r\n"
            ));
        }
    }

    let seven_bit = request.original_message.iter().all(|&b| b < 0x80 && b != 0);
    let parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            human_text(request.outcome, &original_subject, &original_id),
        ),
        MimePart::new(
            ContentType::new("message/disposition-notification"),
            fields.into_bytes(),
        )
        .transfer_encoding("7bit"),
        MimePart::new(ContentType::new("message/rfc822"), request.original_message)
            .transfer_encoding(if seven_bit { "7bit" } else { "8bit" }),
    ];
    let body = multipart(
        ContentType::new("multipart/report").attribute("report-type", "disposition-notification"),
        &message_id,
        0,
        parts,
    );

    check_header_value(X_MSS_NIL, &nil)?;
    let builder = MessageBuilder::new()
        .from(Address::new_address(name, bal))
        .to(Address::new_address(None::<String>, notify))
        .subject(Text::new(subject))
        .date(Date::new(request.date))
        .message_id(MessageId::new(message_id))
        .in_reply_to(MessageId::new(original_id.clone()))
        .references(MessageId::new(original_id))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header(X_MSS_NIL, Raw::new(nil))
        .body(body);
    builder
        .write_to_vec()
        .map_err(|e| MdnError::Write(e.to_string()))
}

/// Why no MDN is sent automatically for a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdnDecision {
    /// Send it.
    Send,
    /// The message does not ask for one (no `Disposition-Notification-To`).
    NotRequested,
    /// The message is itself an MDN: never answer it.
    IsMdn,
    /// `Disposition-Notification-To` differs from `Return-Path`, or there is
    /// no `Return-Path` to compare with (RFC 8098 §2.1): only a person may
    /// decide to send one.
    NeedsConfirmation,
}

/// Whether, and why not, an MDN is sent automatically for `incoming`.
pub fn mdn_decision(incoming: &IncomingMessage) -> MdnDecision {
    if incoming.is_mdn {
        return MdnDecision::IsMdn;
    }
    let Some(notify) = incoming.disposition_notification_to.first() else {
        return MdnDecision::NotRequested;
    };
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    match &incoming.return_path {
        Some(return_path)
            if incoming.disposition_notification_to.len() == 1 && same(notify, return_path) =>
        {
            MdnDecision::Send
        }
        _ => MdnDecision::NeedsConfirmation,
    }
}

/// Loop prevention: send an MDN automatically only when one is asked for,
/// to the same address as the Return-Path, and never in answer to an MDN.
pub fn should_send_mdn(incoming: &IncomingMessage) -> bool {
    mdn_decision(incoming) == MdnDecision::Send
}

/// `disposition-type` of RFC 8098.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispositionType {
    Displayed,
    Deleted,
    Dispatched,
    Processed,
    Other(String),
}

/// The `Disposition` field, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `automatic-action` or `manual-action` (as written, lower-case).
    pub action_mode: Option<String>,
    /// `MDN-sent-automatically` or `MDN-sent-manually` (as written).
    pub sending_mode: Option<String>,
    pub kind: DispositionType,
    /// Modifiers after `/`, lower-case, without their detail (`error`).
    pub modifiers: Vec<String>,
}

/// The error an MDN reports, from `processed/Error: …` or the `Error:` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnFailure {
    /// The leading number of `code^label^…`, when there is one.
    pub code: Option<u16>,
    /// The second component of `code^label^…`.
    pub label: Option<String>,
    /// The text as written.
    pub raw: String,
}

impl MdnFailure {
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.and_then(ErrorCode::from_code)
    }
}

/// A received MDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mdn {
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The address the MDN came from.
    pub from: Option<String>,
    pub reporting_ua: Option<String>,
    /// Address of `Original-Recipient` (after `rfc822;`).
    pub original_recipient: Option<String>,
    /// Address of `Final-Recipient` (after `rfc822;`).
    pub final_recipient: String,
    /// Without angle brackets.
    pub original_message_id: Option<String>,
    pub disposition: Disposition,
    /// Set when the MDN reports an error (an `error` modifier or an `Error:` field).
    pub failure: Option<MdnFailure>,
}

impl Mdn {
    pub fn is_failure(&self) -> bool {
        self.failure.is_some()
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.failure.as_ref().and_then(MdnFailure::error_code)
    }
}

/// Strip RFC 5322 comments `( … )`, which RFC 8098 allows in its fields.
fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `rfc822;addr` → `addr` (any address type is accepted).
fn recipient_address(value: &str) -> String {
    let value = strip_comments(value);
    let address = value.split_once(';').map_or(value.as_str(), |(_, a)| a);
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn parse_failure(detail: &str) -> MdnFailure {
    let raw = detail.trim().to_owned();
    let mut components = raw.split('^');
    let code = components.next().and_then(|c| {
        let c = c.trim();
        (!c.is_empty() && c.len() <= 5 && c.bytes().all(|b| b.is_ascii_digit()))
            .then(|| c.parse().ok())
            .flatten()
    });
    let label = components
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    MdnFailure { code, label, raw }
}

/// Parse the `Disposition` field: `mode/sending; type[/modifier[: detail]]`.
/// Returns the disposition and the error detail written after `error:`.
fn parse_disposition(value: &str) -> (Disposition, Option<String>) {
    let value = value.trim();
    let (modes, rest) = match value.split_once(';') {
        Some((modes, rest)) => (Some(strip_comments(modes)), rest),
        None => (None, value),
    };
    let (action_mode, sending_mode) = match modes.as_deref().map(str::trim) {
        Some(modes) => match modes.split_once('/') {
            Some((a, s)) => (Some(a.trim().to_owned()), Some(s.trim().to_owned())),
            None => (Some(modes.to_owned()), None),
        },
        None => (None, None),
    };
    let rest = rest.trim();
    let (kind, modifiers_text) = match rest.split_once('/') {
        Some((kind, modifiers)) => (kind.trim(), Some(modifiers.trim())),
        None => (rest, None),
    };
    let kind = strip_comments(kind).trim().to_ascii_lowercase();
    let kind = match kind.as_str() {
        "displayed" => DispositionType::Displayed,
        "deleted" => DispositionType::Deleted,
        "dispatched" => DispositionType::Dispatched,
        "processed" => DispositionType::Processed,
        _ => DispositionType::Other(kind),
    };
    let mut modifiers = Vec::new();
    let mut detail = None;
    if let Some(text) = modifiers_text {
        // `Error: 902^…` (v1.1.2) carries a detail after a colon; it may
        // itself contain commas, so the colon ends the modifier list.
        let (list, after_colon) = match text.split_once(':') {
            Some((list, after)) => (list, Some(after)),
            None => (text, None),
        };
        for modifier in list.split(',') {
            let modifier = modifier.trim().to_ascii_lowercase();
            if !modifier.is_empty() {
                modifiers.push(modifier);
            }
        }
        if let Some(after) = after_colon
            && modifiers.last().is_some_and(|m| m == "error")
        {
            detail = Some(after.trim().to_owned());
        }
    }
    (
        Disposition {
            action_mode: action_mode.map(|a| a.to_ascii_lowercase()),
            sending_mode,
            kind,
            modifiers,
        },
        detail,
    )
}

/// Read a received MDN (bounded by the default incoming limit).
///
/// Accepts both failure syntaxes of the volet — `processed/Error:
/// <code>^<libellé>` and `processed/error` with an `Error:` field — in any
/// case, and the plain `processed`, `displayed`, `deleted`, `dispatched`.
/// The report part is found wherever it is in the MIME tree, so a sender
/// that forgot `report-type` is still understood.
pub fn parse_mdn(raw: &[u8]) -> Result<Mdn, MdnError> {
    if raw.len() > DEFAULT_MAX_INCOMING_BYTES {
        return Err(MdnError::TooLarge {
            size: raw.len(),
            max: DEFAULT_MAX_INCOMING_BYTES,
        });
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MdnError::NotAMessage)?;
    if message.headers().is_empty() {
        return Err(MdnError::NotAMessage);
    }
    let report = message
        .parts
        .iter()
        .find(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("disposition-notification")
                            || s.eq_ignore_ascii_case("global-disposition-notification")
                    })
            })
        })
        .ok_or(MdnError::NotAnMdn)?;

    // The report is a block of header fields: let mail-parser read it.
    let mut block = report.contents().to_vec();
    block.extend_from_slice(b"\r\n\r\n");
    let fields = MessageParser::default()
        .parse_headers(&block)
        .ok_or(MdnError::MissingFinalRecipient)?;
    let field = |name: &str| -> Option<String> {
        fields
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| one_line(v))
            .filter(|v| !v.is_empty())
    };

    let final_recipient = field("Final-Recipient")
        .map(|v| recipient_address(&v))
        .filter(|v| !v.is_empty())
        .ok_or(MdnError::MissingFinalRecipient)?;
    let (disposition, detail) = field("Disposition")
        .map(|v| parse_disposition(&v))
        .ok_or(MdnError::MissingDisposition)?;
    let error_field = field("Error");
    let failure = match (error_field, detail) {
        (Some(error), _) => Some(parse_failure(&error)),
        (None, Some(detail)) if !detail.is_empty() => Some(parse_failure(&detail)),
        (None, _) if disposition.modifiers.iter().any(|m| m == "error") => Some(MdnFailure {
            code: None,
            label: None,
            raw: String::new(),
        }),
        _ => None,
    };

    Ok(Mdn {
        message_id: message.message_id().map(|m| m.trim().to_owned()),
        subject: message.subject().map(one_line),
        from: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.trim().to_owned()),
        reporting_ua: field("Reporting-UA"),
        original_recipient: field("Original-Recipient")
            .map(|v| recipient_address(&v))
            .filter(|v| !v.is_empty()),
        final_recipient,
        original_message_id: field("Original-Message-ID").map(|v| {
            strip_comments(&v)
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_owned()
        }),
        disposition,
        failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_labels_are_the_volets() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert!(code.ascii_label().is_ascii());
        }
        assert_eq!(ErrorCode::from_code(907), None);
        assert_eq!(
            ErrorCode::UnknownPatient.label(),
            "Identifiant patient inconnu"
        );
        assert_eq!(
            ErrorCode::AuthorNotAuthorised.ascii_label(),
            "Auteur non autorise a remplacer ou supprimer un document"
        );
    }

    #[test]
    fn disposition_forms() {
        let (d, detail) = parse_disposition("automatic-action/MDN-sent-automatically; processed");
        assert_eq!(d.kind, DispositionType::Processed);
        assert!(d.modifiers.is_empty());
        assert_eq!(detail, None);
        assert_eq!(d.action_mode.as_deref(), Some("automatic-action"));

        let (d, detail) = parse_disposition(
            "automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant de patient inconnu^messageErrorCondition| E^Error^errorSeverity",
        );
        assert_eq!(d.modifiers, vec!["error"]);
        let failure = parse_failure(&detail.unwrap());
        assert_eq!(failure.code, Some(902));
        assert_eq!(
            failure.label.as_deref(),
            Some("Identifiant de patient inconnu")
        );

        let (d, detail) = parse_disposition("MANUAL-ACTION/MDN-sent-manually; Processed/ERROR");
        assert_eq!(d.kind, DispositionType::Processed);
        assert_eq!(d.modifiers, vec!["error"]);
        assert_eq!(detail, None);

        for (text, kind) in [
            ("displayed", DispositionType::Displayed),
            ("deleted", DispositionType::Deleted),
            ("dispatched", DispositionType::Dispatched),
            ("weird", DispositionType::Other("weird".into())),
        ] {
            let (d, _) = parse_disposition(&format!("manual-action/MDN-sent-manually; {text}"));
            assert_eq!(d.kind, kind);
        }
    }

    #[test]
    fn failure_without_number() {
        let f = parse_failure("refus^pas de code");
        assert_eq!(f.code, None);
        assert_eq!(f.label.as_deref(), Some("pas de code"));
    }

    #[test]
    fn recipients_are_read_with_or_without_type() {
        assert_eq!(recipient_address("rfc822; a@b.fr "), "a@b.fr");
        assert_eq!(recipient_address("rfc822;<a@b.fr> (BAL)"), "a@b.fr");
        assert_eq!(recipient_address("a@b.fr"), "a@b.fr");
    }
}
