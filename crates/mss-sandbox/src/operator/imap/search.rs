//! SEARCH: the criteria of RFC 3501 §6.4.4 over the store's metadata, and over the bytes
//! for header and text criteria (plain case-insensitive substring, no charset decoding).

use chrono::DateTime;
use imap_next::imap_types::search::SearchKey;

use super::fetch::{header_end, header_value};
use super::view::contains;
use crate::operator::mailstore::MessageMeta;

/// A criterion the sandbox does not evaluate (the command gets NO).
pub(super) struct Unsupported;

/// One message being tested.
pub(super) struct Candidate<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    pub bytes: Option<&'a [u8]>,
    pub largest_seq: u32,
    pub largest_uid: u32,
}

/// Whether any criterion needs the message's bytes.
pub(super) fn needs_bytes(keys: &[SearchKey<'_>]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::Header(..)
        | SearchKey::Subject(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Cc(_)
        | SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Text(_) => true,
        SearchKey::Not(k) => needs_bytes(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => {
            needs_bytes(std::slice::from_ref(a)) || needs_bytes(std::slice::from_ref(b))
        }
        SearchKey::And(list) => needs_bytes(list.as_ref()),
        _ => false,
    })
}

/// Whether the message matches every key.
pub(super) fn matches_all(keys: &[SearchKey<'_>], c: &Candidate<'_>) -> Result<bool, Unsupported> {
    for key in keys {
        if !matches(key, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> Result<bool, Unsupported> {
    let flag = |f: &str| c.meta.has_flag(f);
    let bytes = c.bytes.unwrap_or_default();
    let header = &bytes[..header_end(bytes)];
    let in_header = |name: &str, needle: &[u8]| {
        header_value(header, name).is_some_and(|v| contains_ci(v.as_bytes(), needle))
    };
    let day = || {
        DateTime::from_timestamp(c.meta.internal_date, 0)
            .unwrap_or_default()
            .date_naive()
    };
    Ok(match key {
        SearchKey::All | SearchKey::Old => true,
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::And(list) => matches_all(list.as_ref(), c)?,
        SearchKey::Not(k) => !matches(k, c)?,
        SearchKey::Or(a, b) => matches(a, c)? || matches(b, c)?,
        SearchKey::SequenceSet(set) => contains(set, c.seq, c.largest_seq),
        SearchKey::Uid(set) => contains(set, c.meta.uid, c.largest_uid),
        SearchKey::Seen => flag("\\Seen"),
        SearchKey::Unseen => !flag("\\Seen"),
        SearchKey::Deleted => flag("\\Deleted"),
        SearchKey::Undeleted => !flag("\\Deleted"),
        SearchKey::Answered => flag("\\Answered"),
        SearchKey::Unanswered => !flag("\\Answered"),
        SearchKey::Flagged => flag("\\Flagged"),
        SearchKey::Unflagged => !flag("\\Flagged"),
        SearchKey::Draft => flag("\\Draft"),
        SearchKey::Undraft => !flag("\\Draft"),
        SearchKey::Keyword(k) => flag(k.as_ref()),
        SearchKey::Unkeyword(k) => !flag(k.as_ref()),
        SearchKey::Larger(n) => c.meta.size > u64::from(*n),
        SearchKey::Smaller(n) => c.meta.size < u64::from(*n),
        SearchKey::Before(d) => day() < *d.as_ref(),
        SearchKey::On(d) => day() == *d.as_ref(),
        SearchKey::Since(d) => day() >= *d.as_ref(),
        SearchKey::ModSequence { modseq, .. } => c.meta.modseq >= *modseq,
        SearchKey::Header(name, value) => {
            let name = String::from_utf8_lossy(name.as_ref()).into_owned();
            header_value(header, &name).is_some_and(|v| contains_ci(v.as_bytes(), value.as_ref()))
        }
        SearchKey::Subject(s) => in_header("subject", s.as_ref()),
        SearchKey::From(s) => in_header("from", s.as_ref()),
        SearchKey::To(s) => in_header("to", s.as_ref()),
        SearchKey::Cc(s) => in_header("cc", s.as_ref()),
        SearchKey::Bcc(s) => in_header("bcc", s.as_ref()),
        SearchKey::Body(s) => contains_ci(&bytes[header.len()..], s.as_ref()),
        SearchKey::Text(s) => contains_ci(bytes, s.as_ref()),
        _ => return Err(Unsupported),
    })
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}
