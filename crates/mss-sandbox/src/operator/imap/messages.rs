//! The commands of the selected state (RFC 3501 §6.4): SEARCH, FETCH, STORE, COPY, EXPUNGE.

use std::collections::HashMap;

use imap_next::imap_types::command::{FetchModifier, StoreModifier};
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::server::Event;

use super::answer::{Answer, folder_name, store_answer};
use super::conn::{Conn, Step};
use super::fetch::{self, Request};
use super::search::{self, Candidate};
use super::session::Session;
use crate::operator::mailstore::{FlagChange, MessageMeta, StoreError};

impl Session {
    pub(super) fn expunge(&mut self, only: Option<&SequenceSet>) -> Answer {
        let selected = self.selected.as_ref().expect("checked by the caller");
        if selected.read_only {
            return Answer::no("The folder is read-only (EXAMINE)");
        }
        let uids: Option<Vec<u32>> = only.map(|set| {
            selected
                .resolve(set, true)
                .into_iter()
                .map(|(_, u)| u)
                .collect()
        });
        match self
            .ctx
            .store
            .expunge(self.user(), &selected.folder, uids.as_deref())
        {
            // The EXPUNGE responses come from the sync that follows every command.
            Ok(_) => Answer::ok("EXPUNGE completed"),
            Err(e) => store_answer(&e),
        }
    }

    /// The metadata of the messages of the view, by UID.
    pub(super) fn metas(&self) -> Result<HashMap<u32, MessageMeta>, StoreError> {
        let selected = self.selected.as_ref().expect("checked by the caller");
        Ok(self
            .ctx
            .store
            .messages(self.user(), &selected.folder)?
            .into_iter()
            .map(|m| (m.uid, m))
            .collect())
    }

    pub(super) fn search(&mut self, conn: &mut Conn, keys: &[SearchKey<'_>], uid: bool) -> Answer {
        let metas = match self.metas() {
            Ok(m) => m,
            Err(e) => return store_answer(&e),
        };
        let selected = self.selected.as_ref().expect("checked by the caller");
        let all = selected.resolve(&SequenceSet::try_from("1:*").expect("valid set"), false);
        let largest_uid = all.last().map_or(0, |(_, u)| *u);
        let needs_bytes = search::needs_bytes(keys);
        let mut found = Vec::new();
        let mut top_modseq = 0;
        for (seq, u) in &all {
            let Some(meta) = metas.get(u) else { continue };
            let bytes = if needs_bytes {
                self.ctx.store.read(self.user(), &selected.folder, *u).ok()
            } else {
                None
            };
            let candidate = Candidate {
                seq: *seq,
                meta,
                bytes: bytes.as_deref(),
                largest_seq: selected.len(),
                largest_uid,
            };
            match search::matches_all(keys, &candidate) {
                Ok(true) => {
                    found.push(if uid { *u } else { *seq });
                    top_modseq = top_modseq.max(meta.modseq);
                }
                Ok(false) => {}
                Err(search::Unsupported) => return Answer::no("Search criterion not offered"),
            }
        }
        let uses_modseq = keys
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }));
        let found = found
            .into_iter()
            .filter_map(std::num::NonZeroU32::new)
            .collect::<Vec<_>>();
        let modseq = (uses_modseq && !found.is_empty()).then(|| fetch::modseq(top_modseq));
        conn.server.enqueue_data(Data::Search(found, modseq));
        Answer::ok("SEARCH completed")
    }

    pub(super) async fn fetch(
        &mut self,
        conn: &mut Conn,
        set: &SequenceSet,
        items: &imap_next::imap_types::fetch::MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Answer {
        let mut changed_since = None;
        for modifier in modifiers {
            match modifier {
                FetchModifier::ChangedSince(m) => changed_since = Some(m.get()),
                FetchModifier::Vanished => return Answer::bad("QRESYNC is not enabled"),
            }
        }
        if changed_since.is_some() {
            self.condstore = true;
        }
        let request = match Request::new(items, uid, self.condstore) {
            Ok(r) => r,
            Err(fetch::Unsupported(what)) => {
                return Answer::no(format!("{what} is not offered by the sandbox"));
            }
        };
        if request
            .names
            .contains(&imap_next::imap_types::fetch::MessageDataItemName::ModSeq)
        {
            self.condstore = true;
        }
        let metas = match self.metas() {
            Ok(m) => m,
            Err(e) => return store_answer(&e),
        };
        let (folder, read_only, targets) = {
            let selected = self.selected.as_ref().expect("checked by the caller");
            (
                selected.folder.clone(),
                selected.read_only,
                selected.resolve(set, uid),
            )
        };
        let mut queued = 0usize;
        let mut missing = false;
        for (seq, u) in targets {
            let Some(meta) = metas.get(&u) else {
                missing = true;
                continue;
            };
            if changed_since.is_some_and(|since| meta.modseq <= since) {
                continue;
            }
            let bytes = if request.needs_bytes {
                match self.ctx.store.read(self.user(), &folder, u) {
                    Ok(b) => Some(b),
                    Err(_) => {
                        missing = true;
                        continue;
                    }
                }
            } else {
                None
            };
            let mut meta = meta.clone();
            let mut flags_changed = false;
            if request.sets_seen
                && !read_only
                && !meta.has_flag("\\Seen")
                && let Ok(mut changed) = self.ctx.store.set_flags(
                    self.user(),
                    &folder,
                    &[u],
                    FlagChange::Add,
                    &["\\Seen".to_owned()],
                )
                && let Some(m) = changed.pop()
            {
                meta = m;
                flags_changed = true;
            }
            let mut items = request.items(&meta, bytes.as_deref());
            if flags_changed && !items.iter().any(|i| matches!(i, MessageDataItem::Flags(_))) {
                items.push(MessageDataItem::Flags(fetch::flags(&meta.flags)));
            }
            if let Some(selected) = self.selected.as_mut()
                && (flags_changed || items.iter().any(|i| matches!(i, MessageDataItem::Flags(_))))
            {
                selected.reported(&meta);
            }
            queued += bytes.as_ref().map_or(64, Vec::len);
            let (Some(seq), Ok(items)) = (std::num::NonZeroU32::new(seq), Vec1::try_from(items))
            else {
                continue;
            };
            conn.server.enqueue_data(Data::Fetch { seq, items });
            // Long answers are written as they go instead of piling up in memory.
            if queued > 4 * 1024 * 1024 {
                queued = 0;
                if self.drain(conn).await.is_err() {
                    return Answer::no("Connection trouble while sending");
                }
            }
        }
        if missing && !uid {
            Answer::no("Some messages were expunged meanwhile")
        } else {
            Answer::ok("FETCH completed")
        }
    }

    /// Writes what is queued; commands decoded meanwhile wait in `stashed`.
    pub(super) async fn drain(&mut self, conn: &mut Conn) -> Result<(), ()> {
        loop {
            match tokio::time::timeout(self.settings.inactivity_timeout, conn.progress()).await {
                Ok(Ok(Step::Event(Event::ResponseSent { .. }))) => {}
                Ok(Ok(Step::Event(event))) => self.stashed.push_back(event),
                Ok(Ok(Step::NeedInput)) => return Ok(()),
                _ => return Err(()),
            }
            if self.stashed.len() > 64 {
                return Err(());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &mut self,
        conn: &mut Conn,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Answer {
        let selected = self.selected.as_ref().expect("checked by the caller");
        if selected.read_only {
            return Answer::no("The folder is read-only (EXAMINE)");
        }
        let folder = selected.folder.clone();
        let targets = selected.resolve(set, uid);
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(n)| *n)
            .next();
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let metas = match self.metas() {
            Ok(m) => m,
            Err(e) => return store_answer(&e),
        };
        let mut refused = Vec::new();
        let mut uids = Vec::new();
        for (seq, u) in &targets {
            let Some(meta) = metas.get(u) else { continue };
            if unchanged_since.is_some_and(|n| meta.modseq > n) {
                refused.push(if uid { *u } else { *seq });
            } else {
                uids.push(*u);
            }
        }
        let change = match kind {
            StoreType::Replace => FlagChange::Replace,
            StoreType::Add => FlagChange::Add,
            StoreType::Remove => FlagChange::Remove,
        };
        let flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
        let changed = match self
            .ctx
            .store
            .set_flags(self.user(), &folder, &uids, change, &flags)
        {
            Ok(c) => c,
            Err(e) => return store_answer(&e),
        };
        let selected = self.selected.as_mut().expect("checked by the caller");
        for meta in &changed {
            selected.reported(meta);
            if response == StoreResponse::Silent && !self.condstore {
                continue;
            }
            let Some(seq) = selected
                .seq_of(meta.uid)
                .and_then(std::num::NonZeroU32::new)
            else {
                continue;
            };
            let mut items = Vec::new();
            if response == StoreResponse::Answer {
                items.push(MessageDataItem::Flags(fetch::flags(&meta.flags)));
            }
            if uid {
                items.push(MessageDataItem::Uid(
                    std::num::NonZeroU32::new(meta.uid).expect("UIDs start at 1"),
                ));
            }
            if self.condstore {
                items.push(MessageDataItem::ModSeq(fetch::modseq(meta.modseq)));
            }
            if let Ok(items) = Vec1::try_from(items) {
                conn.server.enqueue_data(Data::Fetch { seq, items });
            }
        }
        if refused.is_empty() {
            Answer::ok("STORE completed")
        } else {
            let list: Vec<std::num::NonZeroU32> = refused
                .into_iter()
                .filter_map(std::num::NonZeroU32::new)
                .collect();
            match SequenceSet::try_from(list) {
                Ok(set) => Answer::ok("Conditional STORE failed").with(Code::Modified(set)),
                Err(_) => Answer::ok("STORE completed"),
            }
        }
    }

    pub(super) fn copy(&mut self, set: &SequenceSet, mailbox: &Mailbox<'_>, uid: bool) -> Answer {
        let selected = self.selected.as_ref().expect("checked by the caller");
        let folder = selected.folder.clone();
        let targets = selected.resolve(set, uid);
        let destination = folder_name(mailbox);
        if let Err(e) = self.ctx.store.status(self.user(), &destination) {
            return match e {
                StoreError::NoFolder(_) => Answer::no("No such folder").with(Code::TryCreate),
                e => store_answer(&e),
            };
        }
        let metas = match self.metas() {
            Ok(m) => m,
            Err(e) => return store_answer(&e),
        };
        for (_, u) in targets {
            let Some(meta) = metas.get(&u) else { continue };
            let Ok(bytes) = self.ctx.store.read(self.user(), &folder, u) else {
                continue;
            };
            if let Err(e) = self.ctx.store.append(
                self.user(),
                &destination,
                &meta.flags,
                meta.internal_date,
                &bytes,
            ) {
                return store_answer(&e);
            }
        }
        Answer::ok("COPY completed")
    }
}
