//! Tagged answers, response texts and codes, and what the recorder keeps of a command.

use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::{Tag, Text};
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, CodeOther, Status, StatusBody, StatusKind, Tagged};
use imap_next::imap_types::sequence::SequenceSet;
use serde_json::{Value, json};

use crate::operator::mailstore::StoreError;

/// What a command asks of the connection once answered.
pub(super) enum Flow {
    Continue,
    StartTls,
    Close(&'static str),
}

/// A tagged answer.
pub(super) struct Answer {
    pub(super) kind: StatusKind,
    pub(super) code: Option<Code<'static>>,
    pub(super) text: String,
}

impl Answer {
    pub(super) fn ok(text: impl Into<String>) -> Answer {
        Answer {
            kind: StatusKind::Ok,
            code: None,
            text: text.into(),
        }
    }
    pub(super) fn no(text: impl Into<String>) -> Answer {
        Answer {
            kind: StatusKind::No,
            code: None,
            text: text.into(),
        }
    }
    pub(super) fn bad(text: impl Into<String>) -> Answer {
        Answer {
            kind: StatusKind::Bad,
            code: None,
            text: text.into(),
        }
    }
    pub(super) fn with(mut self, code: Code<'static>) -> Answer {
        self.code = Some(code);
        self
    }
}

pub(super) fn tagged(tag: Tag<'static>, answer: Answer) -> Status<'static> {
    Status::Tagged(Tagged {
        tag,
        body: StatusBody {
            kind: answer.kind,
            code: answer.code,
            text: text_of(&answer.text),
        },
    })
}

/// Response text; anything IMAP text cannot carry is replaced.
pub(super) fn text_of(text: &str) -> Text<'static> {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim_start_matches('[').trim().to_owned();
    Text::try_from(clean).unwrap_or_else(|_| Text::try_from("Done").expect("static text"))
}

pub(super) fn other_code(name: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(name.as_bytes()))
}

pub(super) fn code_name(code: &Code<'_>) -> String {
    match code {
        Code::Other(other) => String::from_utf8_lossy(other.inner()).into_owned(),
        Code::Capability(_) => "CAPABILITY".to_owned(),
        Code::AppendUid { uid_validity, uid } => format!("APPENDUID {uid_validity} {uid}"),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase(),
    }
}

/// The store's name of a folder named in a command (INBOX in any case is INBOX).
pub(super) fn folder_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

pub(super) fn store_answer(error: &StoreError) -> Answer {
    match error {
        StoreError::NoFolder(_) => Answer::no("No such folder").with(other_code("NONEXISTENT")),
        StoreError::Disk(_) => Answer::no("Server storage error").with(other_code("SERVERBUG")),
        other => Answer::no(other.to_string()),
    }
}

/// What the recorder keeps of a command: its name and targets, never literal contents.
pub(super) fn describe(tag: &Tag<'_>, body: &CommandBody<'_>) -> Value {
    let mut detail = json!({ "tag": tag.as_ref(), "command": body.name() });
    match body {
        CommandBody::Select { mailbox, .. }
        | CommandBody::Examine { mailbox, .. }
        | CommandBody::Create { mailbox }
        | CommandBody::Delete { mailbox }
        | CommandBody::Status { mailbox, .. }
        | CommandBody::Append { mailbox, .. } => {
            detail["mailbox"] = folder_name(mailbox).into();
        }
        CommandBody::Copy { mailbox, uid, .. } => {
            detail["mailbox"] = folder_name(mailbox).into();
            detail["uid"] = (*uid).into();
        }
        CommandBody::Fetch {
            uid, sequence_set, ..
        }
        | CommandBody::Store {
            uid, sequence_set, ..
        } => {
            detail["uid"] = (*uid).into();
            detail["set"] = set_text(sequence_set).into();
        }
        CommandBody::ExpungeUid { sequence_set } => {
            detail["set"] = set_text(sequence_set).into();
        }
        CommandBody::Search { uid, .. } => {
            detail["uid"] = (*uid).into();
        }
        _ => {}
    }
    if let CommandBody::Append { message, .. } = body {
        let size = match message {
            LiteralOrLiteral8::Literal(l) => l.data().len(),
            LiteralOrLiteral8::Literal8(l) => l.data.len(),
        };
        detail["size"] = size.into();
    }
    detail
}

/// A sequence set as the client wrote it (for the recording), cut at 200 characters.
pub(super) fn set_text(set: &SequenceSet) -> String {
    use imap_next::imap_types::sequence::{SeqOrUid, Sequence};
    let one = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.to_string(),
        SeqOrUid::Asterisk => "*".to_owned(),
    };
    let mut out = set
        .0
        .as_ref()
        .iter()
        .map(|seq| match seq {
            Sequence::Single(s) => one(s),
            Sequence::Range(a, b) => format!("{}:{}", one(a), one(b)),
        })
        .collect::<Vec<_>>()
        .join(",");
    if out.len() > 200 {
        out.truncate(200);
        out.push('…');
    }
    out
}

/// `*` matches anything, `%` anything but the hierarchy delimiter `/` (RFC 3501 §6.3.8).
pub(super) fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    // Dynamic programming over (pattern, name) prefixes: no backtracking blow-up.
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                for j in 0..=name.len() {
                    next[j] =
                        row[j] || (j > 0 && next[j - 1] && (p == b'*' || name[j - 1] != b'/'));
                }
            }
            _ => {
                for j in 1..=name.len() {
                    next[j] = row[j - 1] && name[j - 1].eq_ignore_ascii_case(&p) && {
                        // Only INBOX is case-insensitive; other names compare exactly.
                        name.starts_with(b"INBOX") || name[j - 1] == p
                    };
                }
            }
        }
        row = next;
    }
    row[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(wildcard_match(b"*", b"Dossiers/Cardio"));
        assert!(!wildcard_match(b"%", b"Dossiers/Cardio"));
        assert!(wildcard_match(b"Dossiers/%", b"Dossiers/Cardio"));
        assert!(wildcard_match(b"inbox", b"INBOX"));
        assert!(!wildcard_match(b"sent", b"Sent"));
        assert!(!wildcard_match(b"*a*a*a*a*a*a*a*a*a*a*a*b", &[b'a'; 200]));
    }

    #[test]
    fn texts_never_break_the_protocol() {
        assert_eq!(text_of("a\r\nb").inner(), "a  b");
        assert_eq!(text_of("[X] y").inner(), "X] y");
        assert_eq!(text_of("").inner(), "Done");
    }
}
