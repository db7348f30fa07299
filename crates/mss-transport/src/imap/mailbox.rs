//! Folder operations of an [`ImapSession`]: list, select with UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ,
//! fetch what is new since the last UID, flags changed since a modseq (CONDSTORE/QRESYNC),
//! IDLE, APPEND and STORE.

use std::time::Duration;

use async_imap::imap_proto::{AttributeValue, Response};

use super::{ImapSession, map_error};
use crate::error::TransportError;
use crate::trace::Action;

/// What the caller persists per folder between sessions. A changed UIDVALIDITY resets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncState {
    /// 0 until the first SELECT.
    pub uidvalidity: u32,
    /// The highest UID already fetched (0: nothing yet).
    pub last_uid: u32,
    /// The folder's HIGHESTMODSEQ when changes were last read (CONDSTORE servers only).
    pub highest_modseq: Option<u64>,
}

/// A folder as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: String,
    pub delimiter: Option<String>,
    /// `\Sent`, `\Noselect`, … as the server wrote them.
    pub attributes: Vec<String>,
}

impl Folder {
    pub fn has_attribute(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }
}

/// The selected folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub folder: String,
    pub exists: u32,
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
    /// The server renumbered the folder: the state was reset and everything is fetched again
    /// (the caller deduplicates by Message-ID).
    pub uidvalidity_changed: bool,
}

/// One message, exactly as the server stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    /// INTERNALDATE as the server wrote it (`25-Nov-2026 10:00:00 +0100`).
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    /// The RFC 5322 bytes (BODY.PEEK[]: fetching does not mark the message seen).
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for FetchedMessage {
    // Message content never goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedMessage")
            .field("uid", &self.uid)
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("bytes", &self.raw.len())
            .finish()
    }
}

/// A batch of new messages.
#[derive(Debug, Default)]
pub struct NewMessages {
    pub messages: Vec<FetchedMessage>,
    /// (uid, size) of messages over [`super::ImapOptions::max_message_size`]: not downloaded.
    pub oversized: Vec<(u32, u32)>,
    /// More new messages wait: call again.
    pub more: bool,
}

/// Flags of one message changed since the last modseq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: Option<u64>,
}

/// What changed in messages already fetched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub flags: Vec<FlagChange>,
    /// UIDs expunged since (QRESYNC only; without it the caller compares UID lists).
    pub vanished: Vec<u32>,
}

/// Why IDLE returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEvent {
    /// The server announced something (new message, expunge, flags): sync again.
    Changed,
    /// Nothing happened during the wait.
    Timeout,
}

/// Adding or removing flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
}

/// Most UIDs a VANISHED answer may expand to: a hostile range cannot exhaust memory.
const MAX_VANISHED: usize = 1_000_000;

impl ImapSession {
    /// All folders (`LIST "" "*"`).
    pub async fn folders(&mut self) -> Result<Vec<Folder>, TransportError> {
        let mut folders = Vec::new();
        self.raw(Action::Search, "LIST \"\" \"*\"", |r| {
            if let Response::MailboxData(async_imap::imap_proto::MailboxDatum::List(list)) = r {
                folders.push(Folder {
                    name: list.name.to_string(),
                    delimiter: list.delimiter.as_ref().map(|d| d.to_string()),
                    attributes: list.name_attributes.iter().map(attribute_name).collect(),
                });
            }
            Ok(())
        })
        .await?
        .ok_or_rejected(self)?;
        Ok(folders)
    }

    /// The folder marked `\Sent`, or one named `Sent`, if any.
    pub async fn sent_folder(&mut self) -> Result<Option<String>, TransportError> {
        let folders = self.folders().await?;
        Ok(folders
            .iter()
            .find(|f| f.has_attribute("\\Sent"))
            .or_else(|| folders.iter().find(|f| f.name.eq_ignore_ascii_case("Sent")))
            .map(|f| f.name.clone()))
    }

    /// Creates a folder; one that already exists is not an error.
    pub async fn create_folder(&mut self, name: &str) -> Result<(), TransportError> {
        let command = format!("CREATE {}", quoted(name)?);
        let done = self.raw(Action::Store, &command, |_| Ok(())).await?;
        if done.ok || done.text.contains("ALREADYEXISTS") || done.text.contains("already exists") {
            Ok(())
        } else {
            Err(self.rejected(done.text))
        }
    }

    /// Selects a folder (with CONDSTORE when offered) and checks `state` against it: a new
    /// UIDVALIDITY resets `state` and is reported in [`Selected::uidvalidity_changed`].
    pub async fn select(
        &mut self,
        folder: &str,
        state: &mut SyncState,
    ) -> Result<Selected, TransportError> {
        let condstore = self.has("CONDSTORE");
        let timeout = self.options.timeout;
        let host = self.host.clone();
        let request = format!(
            "SELECT {}{}",
            quoted(folder)?,
            if condstore { " (CONDSTORE)" } else { "" }
        );
        let session = self.session()?;
        let result = if condstore {
            tokio::time::timeout(timeout, session.select_condstore(folder)).await
        } else {
            tokio::time::timeout(timeout, session.select(folder)).await
        };
        let mailbox = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                let e = map_error(&host, e);
                self.record(Action::Select, &request, &e.to_string(), false);
                return Err(e);
            }
            Err(_) => {
                self.session = None;
                self.record(Action::Select, &request, "timeout", false);
                return Err(self.network("no answer to SELECT"));
            }
        };
        self.drain_unsolicited();
        let Some(uidvalidity) = mailbox.uid_validity else {
            self.record(Action::Select, &request, "no UIDVALIDITY", false);
            return Err(TransportError::Protocol {
                host,
                detail: format!("SELECT {folder} gave no UIDVALIDITY"),
            });
        };
        let changed = state.uidvalidity != 0 && state.uidvalidity != uidvalidity;
        if state.uidvalidity != uidvalidity {
            *state = SyncState {
                uidvalidity,
                last_uid: 0,
                highest_modseq: None,
            };
        }
        let selected = Selected {
            folder: folder.to_owned(),
            exists: mailbox.exists,
            uidvalidity,
            uidnext: mailbox.uid_next,
            highest_modseq: mailbox.highest_modseq,
            uidvalidity_changed: changed,
        };
        self.record(
            Action::Select,
            &request,
            &format!(
                "OK EXISTS {} UIDVALIDITY {} UIDNEXT {:?} HIGHESTMODSEQ {:?}",
                selected.exists, uidvalidity, selected.uidnext, selected.highest_modseq
            ),
            true,
        );
        self.pending.clear();
        self.current = Some(selected.clone());
        Ok(selected)
    }

    /// Flags changed (and, with QRESYNC, messages expunged) among the messages already
    /// fetched, since `state.highest_modseq`; then records the folder's HIGHESTMODSEQ in
    /// `state`. Empty on servers without CONDSTORE. Call right after [`ImapSession::select`].
    pub async fn changes(&mut self, state: &mut SyncState) -> Result<Changes, TransportError> {
        let current = self.selected()?.clone();
        let mut changes = Changes::default();
        if let (Some(since), Some(_), true) = (
            state.highest_modseq,
            current.highest_modseq,
            state.last_uid > 0,
        ) {
            let command = format!(
                "UID FETCH 1:{} (UID FLAGS) (CHANGEDSINCE {since}{})",
                state.last_uid,
                if self.qresync { " VANISHED" } else { "" }
            );
            let last_uid = state.last_uid;
            let host = self.host.clone();
            let out = &mut changes;
            self.raw(Action::Fetch, &command, |r| {
                match r {
                    Response::Fetch(_, attributes) => {
                        let mut change = FlagChange {
                            uid: 0,
                            flags: Vec::new(),
                            modseq: None,
                        };
                        for a in attributes {
                            match a {
                                AttributeValue::Uid(u) => change.uid = *u,
                                AttributeValue::Flags(f) => {
                                    change.flags = f.iter().map(|f| f.to_string()).collect()
                                }
                                AttributeValue::ModSeq(m) => change.modseq = Some(*m),
                                _ => {}
                            }
                        }
                        if change.uid != 0 && change.uid <= last_uid {
                            out.flags.push(change);
                        }
                    }
                    Response::Vanished { uids, .. } => {
                        for range in uids {
                            let end = (*range.end()).min(last_uid);
                            for uid in *range.start()..=end {
                                if out.vanished.len() >= MAX_VANISHED {
                                    return Err(TransportError::Protocol {
                                        host: host.clone(),
                                        detail: "VANISHED lists too many UIDs".to_owned(),
                                    });
                                }
                                out.vanished.push(uid);
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?
            .ok_or_rejected(self)?;
        }
        state.highest_modseq = current.highest_modseq;
        Ok(changes)
    }

    /// Up to `limit` new messages after `state.last_uid`, oldest first, with flags and
    /// internal date; advances `state.last_uid` past what it returns (including oversized
    /// messages, which are listed, not downloaded).
    pub async fn fetch_new(
        &mut self,
        state: &mut SyncState,
        limit: usize,
    ) -> Result<NewMessages, TransportError> {
        self.selected()?;
        let limit = limit.max(1);
        if self.pending.is_empty() {
            self.list_new(state.last_uid).await?;
        }
        self.pending.retain(|(uid, _)| *uid > state.last_uid);
        let mut batch = NewMessages::default();
        let mut wanted = Vec::new();
        let mut wanted_bytes = 0u64;
        while wanted.len() + batch.oversized.len() < limit {
            let Some((uid, size)) = self.pending.pop_front() else {
                break;
            };
            if size > self.options.max_message_size {
                batch.oversized.push((uid, size));
            } else {
                wanted.push(uid);
                wanted_bytes += u64::from(size);
            }
        }
        batch.more = !self.pending.is_empty();
        let highest = wanted
            .iter()
            .chain(batch.oversized.iter().map(|(u, _)| u))
            .copied()
            .max();
        if !wanted.is_empty() {
            batch.messages = self.fetch_bodies(&wanted, wanted_bytes).await?;
        }
        if let Some(uid) = highest {
            state.last_uid = state.last_uid.max(uid);
        }
        Ok(batch)
    }

    /// Lists (uid, size) of every message after `last_uid` into `self.pending`.
    async fn list_new(&mut self, last_uid: u32) -> Result<(), TransportError> {
        let command = format!(
            "UID FETCH {}:* (UID RFC822.SIZE)",
            last_uid.saturating_add(1)
        );
        let mut listed = Vec::new();
        self.raw(Action::Fetch, &command, |r| {
            if let Response::Fetch(_, attributes) = r {
                let mut uid = 0;
                let mut size = 0;
                for a in attributes {
                    match a {
                        AttributeValue::Uid(u) => uid = *u,
                        AttributeValue::Rfc822Size(s) => size = *s,
                        _ => {}
                    }
                }
                // `N:*` also returns the last message when N is past it: skip what we have.
                if uid > last_uid {
                    listed.push((uid, size));
                }
            }
            Ok(())
        })
        .await?
        .ok_or_rejected(self)?;
        listed.sort_unstable();
        listed.dedup_by_key(|(uid, _)| *uid);
        self.pending = listed.into();
        Ok(())
    }

    async fn fetch_bodies(
        &mut self,
        uids: &[u32],
        sizes: u64,
    ) -> Result<Vec<FetchedMessage>, TransportError> {
        let set = uid_set(uids);
        let command = format!("UID FETCH {set} (UID FLAGS INTERNALDATE BODY.PEEK[])");
        let max = self.options.max_message_size as usize;
        let host = self.host.clone();
        let mut messages = Vec::with_capacity(uids.len());
        let wanted: std::collections::BTreeSet<u32> = uids.iter().copied().collect();
        // The announced sizes, plus room for flags, dates and unsolicited updates.
        let allowance = sizes + uids.len() as u64 * 4096 + super::budget::ORDINARY;
        self.raw_within(Action::Fetch, &command, allowance, |r| {
            let Response::Fetch(_, attributes) = r else {
                return Ok(());
            };
            let mut m = FetchedMessage {
                uid: 0,
                flags: Vec::new(),
                internal_date: None,
                modseq: None,
                raw: Vec::new(),
            };
            let mut has_body = false;
            for a in attributes {
                match a {
                    AttributeValue::Uid(u) => m.uid = *u,
                    AttributeValue::Flags(f) => m.flags = f.iter().map(|f| f.to_string()).collect(),
                    AttributeValue::InternalDate(d) => m.internal_date = Some(d.to_string()),
                    AttributeValue::ModSeq(s) => m.modseq = Some(*s),
                    AttributeValue::BodySection {
                        section: None,
                        data,
                        ..
                    }
                    | AttributeValue::Rfc822(data) => {
                        let data = data.as_deref().unwrap_or_default();
                        if data.len() > max {
                            return Err(TransportError::Protocol {
                                host: host.clone(),
                                detail: format!(
                                    "sent {} bytes for a message it announced under {max}",
                                    data.len()
                                ),
                            });
                        }
                        m.raw = data.to_vec();
                        has_body = true;
                    }
                    _ => {}
                }
            }
            // Unsolicited flag updates of other messages come as FETCH without a body.
            if has_body && wanted.contains(&m.uid) {
                messages.push(m);
            }
            Ok(())
        })
        .await?
        .ok_or_rejected(self)?;
        messages.sort_by_key(|m| m.uid);
        messages.dedup_by_key(|m| m.uid);
        Ok(messages)
    }

    /// Waits in IDLE until the server announces a change or `wait` passes, then ends IDLE
    /// with DONE. Servers drop idle clients after 30 minutes: keep `wait` under 29.
    pub async fn idle(&mut self, wait: Duration) -> Result<IdleEvent, TransportError> {
        if !self.has("IDLE") {
            return Err(self.rejected("the server does not offer IDLE".to_owned()));
        }
        let timeout = self.options.timeout;
        let host = self.host.clone();
        self.budget.set(super::budget::ORDINARY);
        let session = self
            .session
            .take()
            .ok_or_else(|| self.network("the session was closed after an earlier failure"))?;
        let mut handle = session.idle();
        match tokio::time::timeout(timeout, handle.init()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = map_error(&host, e);
                self.record(Action::Idle, "IDLE", &e.to_string(), false);
                return Err(e);
            }
            Err(_) => {
                self.record(Action::Idle, "IDLE", "timeout", false);
                return Err(self.network("no answer to IDLE"));
            }
        }
        let (wait_future, _stop) = handle.wait_with_timeout(wait);
        let waited = wait_future.await;
        let event = match waited {
            Ok(async_imap::extensions::idle::IdleResponse::Timeout) => IdleEvent::Timeout,
            Ok(_) => IdleEvent::Changed,
            Err(e) => {
                let e = map_error(&host, e);
                self.record(Action::Idle, "IDLE", &e.to_string(), false);
                return Err(e);
            }
        };
        match tokio::time::timeout(timeout, handle.done()).await {
            Ok(Ok(session)) => self.session = Some(session),
            Ok(Err(e)) => {
                let e = map_error(&host, e);
                self.record(Action::Idle, "DONE", &e.to_string(), false);
                return Err(e);
            }
            Err(_) => {
                self.record(Action::Idle, "DONE", "timeout", false);
                return Err(self.network("no answer to DONE"));
            }
        }
        self.drain_unsolicited();
        self.pending.clear();
        self.record(Action::Idle, "IDLE … DONE", &format!("OK {event:?}"), true);
        Ok(event)
    }

    /// Appends `message` to `folder` (usually the Sent folder) with `flags` such as `\Seen`.
    pub async fn append(
        &mut self,
        folder: &str,
        flags: &[&str],
        message: &[u8],
    ) -> Result<(), TransportError> {
        let flags = flag_list(flags)?;
        let request = format!("APPEND {} {flags} {{{}}}", quoted(folder)?, message.len());
        let timeout = self.options.timeout;
        let host = self.host.clone();
        let session = self.session()?;
        let result =
            tokio::time::timeout(timeout, session.append(folder, Some(&flags), None, message))
                .await;
        self.finish(Action::Append, &request, result, &host)
    }

    /// Adds or removes flags on one message (`UID STORE uid ±FLAGS.SILENT (…)`).
    pub async fn store_flags(
        &mut self,
        uid: u32,
        op: FlagOp,
        flags: &[&str],
    ) -> Result<(), TransportError> {
        let list = flag_list(flags)?;
        let sign = match op {
            FlagOp::Add => '+',
            FlagOp::Remove => '-',
        };
        let command = format!("UID STORE {uid} {sign}FLAGS.SILENT {list}");
        self.raw(Action::Store, &command, |_| Ok(()))
            .await?
            .ok_or_rejected(self)?;
        Ok(())
    }

    fn finish(
        &mut self,
        action: Action,
        request: &str,
        result: Result<Result<(), async_imap::error::Error>, tokio::time::error::Elapsed>,
        host: &str,
    ) -> Result<(), TransportError> {
        self.drain_unsolicited();
        match result {
            Ok(Ok(())) => {
                self.record(action, request, "OK", true);
                Ok(())
            }
            Ok(Err(e)) => {
                let e = map_error(host, e);
                self.record(action, request, &e.to_string(), false);
                Err(e)
            }
            Err(_) => {
                self.session = None;
                self.record(action, request, "timeout", false);
                Err(self.network(format!("no answer to {request}")))
            }
        }
    }

    /// The channel of unsolicited responses is bounded: empty it after typed commands (the
    /// next sync reads the folder state again anyway).
    fn drain_unsolicited(&mut self) {
        if let Some(s) = self.session.as_mut() {
            while s.unsolicited_responses.try_recv().is_ok() {}
        }
    }

    fn selected(&self) -> Result<&Selected, TransportError> {
        self.current
            .as_ref()
            .ok_or_else(|| TransportError::Config("select a folder first".to_owned()))
    }

    fn rejected(&self, detail: String) -> TransportError {
        TransportError::Rejected {
            host: self.host.clone(),
            detail,
        }
    }
}

impl super::Done {
    fn ok_or_rejected(self, session: &ImapSession) -> Result<super::Done, TransportError> {
        if self.ok {
            Ok(self)
        } else {
            Err(session.rejected(self.text))
        }
    }
}

/// `1:3,7,9:10` from sorted UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// A quoted IMAP string; folder names with CR, LF or NUL are refused.
fn quoted(s: &str) -> Result<String, TransportError> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(TransportError::Config(format!(
            "folder name {:?} contains a line break",
            s.escape_debug().to_string()
        )));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// `(\Seen $Label)`: system flags and keywords only, nothing that could end the command.
fn flag_list(flags: &[&str]) -> Result<String, TransportError> {
    for f in flags {
        let body = f.strip_prefix('\\').unwrap_or(f);
        let ok = !body.is_empty()
            && body.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
            });
        if !ok {
            return Err(TransportError::Config(format!("{f:?} is not an IMAP flag")));
        }
    }
    Ok(format!("({})", flags.join(" ")))
}

fn attribute_name(a: &async_imap::imap_proto::NameAttribute<'_>) -> String {
    use async_imap::imap_proto::NameAttribute as N;
    match a {
        N::NoInferiors => "\\Noinferiors".to_owned(),
        N::NoSelect => "\\Noselect".to_owned(),
        N::Marked => "\\Marked".to_owned(),
        N::Unmarked => "\\Unmarked".to_owned(),
        N::All => "\\All".to_owned(),
        N::Archive => "\\Archive".to_owned(),
        N::Drafts => "\\Drafts".to_owned(),
        N::Flagged => "\\Flagged".to_owned(),
        N::Junk => "\\Junk".to_owned(),
        N::Sent => "\\Sent".to_owned(),
        N::Trash => "\\Trash".to_owned(),
        N::Extension(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
    }

    #[test]
    fn folder_names_and_flags_cannot_inject_commands() {
        assert!(quoted("Sent\r\nA1 DELETE INBOX").is_err());
        assert_eq!(quoted("a\"b").unwrap(), "\"a\\\"b\"");
        assert!(flag_list(&["\\Seen", "$MDNSent"]).is_ok());
        assert!(flag_list(&["\\Seen) A1 LOGOUT"]).is_err());
        assert!(flag_list(&["{5}"]).is_err());
    }
}
