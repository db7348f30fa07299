//! FETCH: the data items of one message, from the store's metadata and bytes.
//!
//! Sections served: the whole message (`BODY[]`, `RFC822`), `HEADER`, `HEADER.FIELDS`,
//! `HEADER.FIELDS.NOT`, `TEXT`, and part `1` of a single-part message; partial fetches
//! `<origin.count>`; `ENVELOPE` (addresses read by mail-parser, the other fields as the
//! header has them). `BODYSTRUCTURE` is not offered (mss's client does not ask for it): the
//! command gets NO.

use std::num::{NonZeroU32, NonZeroU64};

use chrono::{FixedOffset, TimeZone};
use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::core::{AString, IString, Literal, NString};
use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::envelope::{Address, Envelope};
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_next::imap_types::flag::{Flag, FlagFetch};

use crate::operator::mailstore::MessageMeta;

/// What a FETCH asks for, checked once for the whole command.
pub(super) struct Request {
    pub names: Vec<MessageDataItemName<'static>>,
    /// Some item needs the message's bytes.
    pub needs_bytes: bool,
    /// Some item is a non-peek body section: reading it sets `\Seen`.
    pub sets_seen: bool,
}

/// Why a FETCH cannot be served.
pub(super) struct Unsupported(pub &'static str);

impl Request {
    pub fn new(
        items: &MacroOrMessageDataItemNames<'_>,
        uid_command: bool,
        with_modseq: bool,
    ) -> Result<Request, Unsupported> {
        let mut names: Vec<MessageDataItemName<'static>> = match items {
            MacroOrMessageDataItemNames::Macro(m) => m
                .expand()
                .into_iter()
                .map(IntoStatic::into_static)
                .collect(),
            MacroOrMessageDataItemNames::MessageDataItemNames(list) => {
                list.iter().cloned().map(IntoStatic::into_static).collect()
            }
        };
        // A UID command always answers with the UID (RFC 3501 §6.4.8), CONDSTORE with MODSEQ.
        if uid_command && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        if with_modseq && !names.contains(&MessageDataItemName::ModSeq) {
            names.push(MessageDataItemName::ModSeq);
        }
        let mut needs_bytes = false;
        let mut sets_seen = false;
        for name in &names {
            match name {
                MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                    return Err(Unsupported("BODYSTRUCTURE"));
                }
                MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                    return Err(Unsupported("BINARY"));
                }
                MessageDataItemName::BodyExt { peek, .. } => {
                    needs_bytes = true;
                    sets_seen |= !peek;
                }
                MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => {
                    needs_bytes = true;
                    sets_seen = true;
                }
                MessageDataItemName::Rfc822Header | MessageDataItemName::Envelope => {
                    needs_bytes = true
                }
                _ => {}
            }
        }
        Ok(Request {
            names,
            needs_bytes,
            sets_seen,
        })
    }

    /// The items for one message. `bytes` is there when [`Request::needs_bytes`].
    pub fn items(&self, meta: &MessageMeta, bytes: Option<&[u8]>) -> Vec<MessageDataItem<'static>> {
        let bytes = bytes.unwrap_or_default();
        let mut out = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let item = match name {
                MessageDataItemName::Uid => match NonZeroU32::new(meta.uid) {
                    Some(uid) => MessageDataItem::Uid(uid),
                    None => continue,
                },
                MessageDataItemName::Flags => MessageDataItem::Flags(flags(&meta.flags)),
                MessageDataItemName::Rfc822Size => {
                    MessageDataItem::Rfc822Size(u32::try_from(meta.size).unwrap_or(u32::MAX))
                }
                MessageDataItemName::InternalDate => {
                    MessageDataItem::InternalDate(date(meta.internal_date))
                }
                MessageDataItemName::ModSeq => MessageDataItem::ModSeq(modseq(meta.modseq)),
                MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(nstring(bytes)),
                MessageDataItemName::Envelope => MessageDataItem::Envelope(envelope(bytes)),
                MessageDataItemName::Rfc822Header => {
                    MessageDataItem::Rfc822Header(nstring(&bytes[..header_end(bytes)]))
                }
                MessageDataItemName::Rfc822Text => {
                    MessageDataItem::Rfc822Text(nstring(&bytes[header_end(bytes)..]))
                }
                MessageDataItemName::BodyExt {
                    section, partial, ..
                } => {
                    let whole = section_bytes(section.as_ref(), bytes);
                    let (origin, data) = match (partial, whole) {
                        (Some((origin, count)), Some(data)) => {
                            let start = (*origin as usize).min(data.len());
                            let end = start.saturating_add(count.get() as usize).min(data.len());
                            (Some(*origin), Some(data[start..end].to_vec()))
                        }
                        (_, data) => (None, data),
                    };
                    MessageDataItem::BodyExt {
                        section: section.clone(),
                        origin,
                        data: data.map_or(NString(None), |d| nstring(&d)),
                    }
                }
                // Refused in `new`.
                _ => continue,
            };
            out.push(item);
        }
        out
    }
}

/// The FLAGS of a message as imap-types values (flags the store accepted always convert).
pub(super) fn flags(stored: &[String]) -> Vec<FlagFetch<'static>> {
    stored
        .iter()
        .filter_map(|f| Flag::try_from(f.as_str()).ok().map(IntoStatic::into_static))
        .map(FlagFetch::Flag)
        .collect()
}

pub(super) fn modseq(value: u64) -> NonZeroU64 {
    NonZeroU64::new(value).unwrap_or(NonZeroU64::MIN)
}

fn date(secs: i64) -> DateTime {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    let value = utc
        .timestamp_opt(secs.clamp(0, 253_402_300_799), 0)
        .single()
        .unwrap_or_default();
    DateTime::try_from(value).unwrap_or_else(|_| {
        DateTime::try_from(utc.timestamp_opt(0, 0).unwrap())
            .expect("the epoch is a valid IMAP date")
    })
}

/// Message bytes as an IMAP literal. A literal cannot carry NUL (RFC 3501 CHAR8): the rare
/// message with one is sent with NULs turned into spaces rather than not at all.
fn nstring(bytes: &[u8]) -> NString<'static> {
    let literal = Literal::try_from(bytes.to_vec()).unwrap_or_else(|_| {
        let cleaned: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == 0 { b' ' } else { b })
            .collect();
        Literal::try_from(cleaned).expect("no NUL left")
    });
    NString(Some(IString::Literal(literal)))
}

/// ENVELOPE (RFC 3501 §7.4.2): date, subject, in-reply-to and message-id as the header
/// has them (unfolded), addresses split into name, mailbox and host.
fn envelope(bytes: &[u8]) -> Envelope<'static> {
    let header = &bytes[..header_end(bytes)];
    let parsed = mail_parser::MessageParser::default().parse_headers(header);
    let raw = |name: &str| header_value(header, name).map_or(NString(None), text);
    let list =
        |get: for<'m> fn(&'m mail_parser::Message<'_>) -> Option<&'m mail_parser::Address<'m>>| {
            let Some(addresses) = parsed.as_ref().and_then(get) else {
                return Vec::new();
            };
            addresses
                .iter()
                .filter_map(|addr| {
                    let email = addr.address.as_deref()?;
                    let (local, host) = email.rsplit_once('@').unwrap_or((email, ""));
                    Some(Address {
                        name: addr
                            .name
                            .as_deref()
                            .map_or(NString(None), |n| text(n.to_owned())),
                        adl: NString(None),
                        mailbox: text(local.to_owned()),
                        host: text(host.to_owned()),
                    })
                })
                .collect::<Vec<_>>()
        };
    let from = list(|m| m.from());
    let sender = list(|m| m.sender());
    let reply_to = list(|m| m.reply_to());
    Envelope {
        date: raw("date"),
        subject: raw("subject"),
        sender: if sender.is_empty() {
            from.clone()
        } else {
            sender
        },
        reply_to: if reply_to.is_empty() {
            from.clone()
        } else {
            reply_to
        },
        from,
        to: list(|m| m.to()),
        cc: list(|m| m.cc()),
        bcc: list(|m| m.bcc()),
        in_reply_to: raw("in-reply-to"),
        message_id: raw("message-id"),
    }
}

/// A header text as a quoted string, or a literal when it cannot be quoted.
fn text(value: String) -> NString<'static> {
    NString::try_from(value).unwrap_or(NString(None))
}

fn section_bytes(section: Option<&Section<'_>>, bytes: &[u8]) -> Option<Vec<u8>> {
    let end = header_end(bytes);
    let (header, text) = bytes.split_at(end);
    Some(match section {
        None => bytes.to_vec(),
        Some(Section::Header(None)) => header.to_vec(),
        Some(Section::Text(None)) => text.to_vec(),
        Some(Section::HeaderFields(None, names)) => select_fields(header, names.as_ref(), true),
        Some(Section::HeaderFieldsNot(None, names)) => select_fields(header, names.as_ref(), false),
        // A single-part message's part 1 is its body.
        Some(Section::Part(part))
            if part.0.as_ref().len() == 1 && part.0.as_ref()[0].get() == 1 =>
        {
            if is_multipart(header) {
                return None;
            }
            text.to_vec()
        }
        _ => return None,
    })
}

fn is_multipart(header: &[u8]) -> bool {
    header_value(header, "content-type").is_some_and(|v| {
        v.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    })
}

fn select_fields(header: &[u8], names: &[AString<'_>], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, field) in fields(header) {
        let listed = names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name));
        if listed == keep {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Where the header ends: just after the empty line, or the whole message if there is none.
pub(super) fn header_end(bytes: &[u8]) -> usize {
    let mut line_start = 0;
    while line_start < bytes.len() {
        let line_end = bytes[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| line_start + p + 1);
        let line = &bytes[line_start..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        line_start = line_end;
    }
    bytes.len()
}

/// The header fields (name, whole field with its folded lines and line end), in order.
fn fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out: Vec<(&[u8], &[u8])> = Vec::new();
    let mut start = 0;
    let mut field_start = None;
    while start < header.len() {
        let end = header[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| start + p + 1);
        let line = &header[start..end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            if let Some(fs) = field_start.take() {
                push_field(&mut out, &header[fs..start]);
            }
            if line != b"\r\n" && line != b"\n" {
                field_start = Some(start);
            }
        }
        start = end;
    }
    if let Some(fs) = field_start {
        push_field(&mut out, &header[fs..]);
    }
    out
}

fn push_field<'a>(out: &mut Vec<(&'a [u8], &'a [u8])>, field: &'a [u8]) {
    if let Some(colon) = field.iter().position(|&b| b == b':') {
        let name = field[..colon].trim_ascii_end();
        out.push((name, field));
    }
}

/// The unfolded value of the first header field called `name`, if any.
pub(super) fn header_value(header: &[u8], name: &str) -> Option<String> {
    fields(header).into_iter().find_map(|(n, field)| {
        if !n.eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        let colon = field.iter().position(|&b| b == b':')?;
        let value: Vec<u8> = field[colon + 1..]
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        Some(String::from_utf8_lossy(&value).trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"From: a@b.fr\r\nSubject: one\r\n two\r\nMessage-ID: <x@y>\r\n\r\nBody\r\n";

    #[test]
    fn header_and_text_split_at_the_empty_line() {
        let end = header_end(MESSAGE);
        assert_eq!(&MESSAGE[end..], b"Body\r\n");
        assert_eq!(header_end(b"no header end"), 13);
        assert_eq!(header_value(MESSAGE, "subject").as_deref(), Some("one two"));
        assert_eq!(
            header_value(MESSAGE, "message-id").as_deref(),
            Some("<x@y>")
        );
        assert_eq!(header_value(MESSAGE, "to"), None);
        let names = [AString::try_from("subject").unwrap()];
        assert_eq!(
            select_fields(&MESSAGE[..end], &names, true),
            b"Subject: one\r\n two\r\n\r\n"
        );
        assert_eq!(
            select_fields(&MESSAGE[..end], &names, false),
            b"From: a@b.fr\r\nMessage-ID: <x@y>\r\n\r\n"
        );
    }

    #[test]
    fn envelope_fields_come_from_the_header() {
        let message = b"Date: Tue, 1 Apr 2025 10:00:00 +0200\r\nFrom: Dr Karim BENALI <karim.benali@sandbox.mssante.fr>\r\nTo: a@b.fr, C <c@d.fr>\r\nSubject: CR\r\nMessage-ID: <x@y>\r\n\r\nBody\r\n";
        let e = envelope(message);
        assert_eq!(e.subject, text("CR".to_owned()));
        assert_eq!(e.message_id, text("<x@y>".to_owned()));
        assert_eq!(e.from.len(), 1);
        assert_eq!(e.from[0].host, text("sandbox.mssante.fr".to_owned()));
        assert_eq!(e.sender, e.from);
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.in_reply_to, NString(None));
        let empty = envelope(b"no header at all");
        assert!(empty.from.is_empty());
    }

    #[test]
    fn dates_and_odd_bytes_never_panic() {
        let _ = date(i64::MIN);
        let _ = date(i64::MAX);
        let _ = nstring(b"a\0b");
        let _ = fields(b": no name\r\n\tcontinued first\r\n");
    }
}
