//! Reading a received message.

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};

use super::Mailbox;
use crate::headers::{X_MSS_CODECDA, X_MSS_INS, X_MSS_MES, X_MSS_NIL};
use crate::subject::one_line;

/// Default largest raw message read (64 MiB).
pub const DEFAULT_MAX_INCOMING_BYTES: usize = 64 * 1024 * 1024;

/// Why a received message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(
        "message of {size} bytes is over the {max}-byte limit: raise the limit if it is expected, or inspect it by hand"
    )]
    TooLarge { size: usize, max: usize },
    #[error("the data is not a mail message (no header found): check what was fetched")]
    NotAMessage,
}

/// The `X-MSS-*` headers as read (trimmed, unchecked).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XMssRead {
    pub code_cda: Option<String>,
    pub ins: Option<String>,
    pub nil: Option<String>,
    pub mes: Option<String>,
}

impl XMssRead {
    /// The CDA codes listed in `X-MSS-CODECDA`.
    pub fn codes(&self) -> Vec<&str> {
        self.code_cda
            .as_deref()
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One attachment of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAttachment {
    pub file_name: Option<String>,
    /// `type/subtype`, lower-case.
    pub content_type: String,
    /// Decoded bytes (for an embedded message, its raw bytes).
    pub bytes: Vec<u8>,
    /// This is the IHE XDM archive.
    pub is_xdm: bool,
}

/// A received message, as far as mss needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncomingMessage {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub subject: Option<String>,
    /// Unix time, seconds; `None` when absent or not a valid date.
    pub date: Option<i64>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// `Return-Path` address, without angle brackets.
    pub return_path: Option<String>,
    /// `Disposition-Notification-To` addresses.
    pub disposition_notification_to: Vec<String>,
    /// `Original-Recipient` as written (e.g. `rfc822;bal@x.fr`).
    pub original_recipient: Option<String>,
    pub x_mss: XMssRead,
    /// The first plain-text body.
    pub text_body: Option<String>,
    pub attachments: Vec<ReceivedAttachment>,
    /// `multipart/report; report-type=disposition-notification`.
    pub is_mdn: bool,
}

impl IncomingMessage {
    /// The IHE XDM archive, if one is attached.
    pub fn xdm(&self) -> Option<&ReceivedAttachment> {
        self.attachments.iter().find(|a| a.is_xdm)
    }
}

fn mailboxes(address: Option<&Address<'_>>) -> Vec<Mailbox> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| {
                    Some(Mailbox {
                        address: addr.address()?.trim().to_owned(),
                        display_name: addr.name().map(one_line).filter(|n| !n.is_empty()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.trim().to_owned()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Whether an attachment is the XDM archive: named `IHE_XDM.ZIP` (any case),
/// or a zip whose name mentions IHE_XDM.
pub(crate) fn is_xdm(file_name: Option<&str>, content_type: &str) -> bool {
    let Some(name) = file_name.map(|n| n.trim().to_ascii_uppercase()) else {
        return false;
    };
    name == "IHE_XDM.ZIP"
        || (name.contains("IHE_XDM")
            && (content_type == "application/zip"
                || content_type == "application/x-zip-compressed"
                || name.ends_with(".ZIP")))
}

/// Read a received message with the default size limit
/// ([`DEFAULT_MAX_INCOMING_BYTES`]).
pub fn parse_incoming(raw: &[u8]) -> Result<IncomingMessage, MessageError> {
    parse_incoming_with_limit(raw, DEFAULT_MAX_INCOMING_BYTES)
}

/// Read a received message, refusing more than `max_bytes`.
pub fn parse_incoming_with_limit(
    raw: &[u8],
    max_bytes: usize,
) -> Result<IncomingMessage, MessageError> {
    if raw.len() > max_bytes {
        return Err(MessageError::TooLarge {
            size: raw.len(),
            max: max_bytes,
        });
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MessageError::NotAMessage)?;
    if message.headers().is_empty() {
        return Err(MessageError::NotAMessage);
    }

    let raw_header = |name: &str| -> Option<String> {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| one_line(v))
            .filter(|v| !v.is_empty())
    };

    let disposition_notification_to = message
        .header_as(
            HeaderName::DispositionNotificationTo,
            mail_parser::HeaderForm::Addresses,
        )
        .iter()
        .flat_map(|v| mailboxes(v.as_address()))
        .map(|m| m.address)
        .collect();

    let is_mdn = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|r| r.trim().eq_ignore_ascii_case("disposition-notification"))
    });

    let attachments = message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned())
                .to_ascii_lowercase();
            let file_name = part.attachment_name().map(one_line);
            let bytes = match &part.body {
                PartType::Message(inner) => inner.raw_message().to_vec(),
                _ => part.contents().to_vec(),
            };
            ReceivedAttachment {
                is_xdm: is_xdm(file_name.as_deref(), &content_type),
                file_name,
                content_type,
                bytes,
            }
        })
        .collect();

    Ok(IncomingMessage {
        message_id: message.message_id().map(|id| id.trim().to_owned()),
        from: mailboxes(message.from()).into_iter().next(),
        to: mailboxes(message.to()),
        cc: mailboxes(message.cc()),
        subject: message.subject().map(one_line),
        date: message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp()),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        return_path: ids(message.return_path())
            .into_iter()
            .next_back()
            .filter(|r| !r.is_empty()),
        disposition_notification_to,
        original_recipient: raw_header("Original-Recipient"),
        x_mss: XMssRead {
            code_cda: raw_header(X_MSS_CODECDA),
            ins: raw_header(X_MSS_INS),
            nil: raw_header(X_MSS_NIL),
            mes: raw_header(X_MSS_MES),
        },
        text_body: message.body_text(0).map(|b| b.into_owned()),
        attachments,
        is_mdn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdm_detection() {
        assert!(is_xdm(Some("IHE_XDM.ZIP"), "application/octet-stream"));
        assert!(is_xdm(Some("ihe_xdm.zip"), "application/zip"));
        assert!(is_xdm(Some("2024_IHE_XDM_patient"), "application/zip"));
        assert!(!is_xdm(Some("photos.zip"), "application/zip"));
        assert!(!is_xdm(None, "application/zip"));
    }

    #[test]
    fn too_large_is_refused() {
        assert_eq!(
            parse_incoming_with_limit(b"Subject: x\r\n\r\nbody", 5),
            Err(MessageError::TooLarge { size: 18, max: 5 })
        );
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(parse_incoming(b""), Err(MessageError::NotAMessage));
    }

    #[test]
    fn reads_headers_of_a_plain_message() {
        let raw = b"Return-Path: <a@x.fr>\r\n\
From: \"Dr A\" <a@x.fr>\r\n\
To: b@y.fr, C <c@y.fr>\r\n\
Subject: XDM/1.0/DDM+CR X Y\r\n\
Message-ID: <1@x.fr>\r\n\
Date: Wed, 20 Feb 2024 00:19:00 -0400\r\n\
Disposition-Notification-To: a@x.fr\r\n\
X-MSS-INS: O\r\n\
x-mss-codecda: 11488-4, 34112-3\r\n\
\r\n\
Bonjour\r\n";
        let m = parse_incoming(raw).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("1@x.fr"));
        assert_eq!(
            m.from.as_ref().unwrap().display_name.as_deref(),
            Some("Dr A")
        );
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.return_path.as_deref(), Some("a@x.fr"));
        assert_eq!(m.disposition_notification_to, vec!["a@x.fr".to_owned()]);
        assert_eq!(m.x_mss.ins.as_deref(), Some("O"));
        assert_eq!(m.x_mss.codes(), vec!["11488-4", "34112-3"]);
        assert_eq!(m.date, Some(1_708_402_740));
        assert_eq!(m.text_body.as_deref().map(str::trim), Some("Bonjour"));
        assert!(!m.is_mdn);
    }
}
