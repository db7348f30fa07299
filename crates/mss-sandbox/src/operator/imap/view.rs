//! The selected folder as one session sees it: message sequence numbers are positions in
//! this session's list, which only changes when the session is told (EXPUNGE, EXISTS), as
//! RFC 3501 §7.4.1 requires, even when another session changed the folder meanwhile.

use std::collections::HashMap;
use std::num::NonZeroU32;

use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use tokio::sync::watch;

use super::fetch;
use crate::operator::mailstore::{MailStore, MessageMeta, StoreError};

#[derive(Debug, Clone, Copy)]
struct Known {
    uid: u32,
    /// The mod-sequence of the flags this session last reported.
    modseq: u64,
}

pub(super) struct Selected {
    /// The store's name of the folder (INBOX upper case).
    pub folder: String,
    pub read_only: bool,
    known: Vec<Known>,
    /// Wakes up IDLE when the folder changes.
    pub changes: watch::Receiver<u64>,
}

impl Selected {
    /// Opens a view of `folder` with its current messages.
    pub fn open(
        store: &MailStore,
        address: &str,
        folder: &str,
        read_only: bool,
    ) -> Result<(Selected, Vec<MessageMeta>), StoreError> {
        let changes = store.watch(address, folder)?;
        let messages = store.messages(address, folder)?;
        let known = messages
            .iter()
            .map(|m| Known {
                uid: m.uid,
                modseq: m.modseq,
            })
            .collect();
        let folder = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            folder.to_owned()
        };
        Ok((
            Selected {
                folder,
                read_only,
                known,
                changes,
            },
            messages,
        ))
    }

    pub fn len(&self) -> u32 {
        self.known.len() as u32
    }

    /// (sequence number, UID) of the messages `set` names, ascending. With `uid`, the set
    /// holds UIDs. Membership is tested per message: `1:4294967295` costs no more than `1:*`.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        let Some(last) = self.known.last() else {
            return Vec::new();
        };
        let largest = if uid { last.uid } else { self.len() };
        self.known
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u32 + 1, k.uid))
            .filter(|(seq, u)| contains(set, if uid { *u } else { *seq }, largest))
            .collect()
    }

    /// The sequence number of `uid`, if this session knows it.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.known
            .binary_search_by_key(&uid, |k| k.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    /// Notes that this session already reported `meta`'s flags.
    pub fn reported(&mut self, meta: &MessageMeta) {
        if let Ok(i) = self.known.binary_search_by_key(&meta.uid, |k| k.uid) {
            self.known[i].modseq = meta.modseq;
        }
    }

    /// Brings the view up to date with the store and returns what to tell the client:
    /// EXPUNGE (only when `expunges` is allowed: not during FETCH, STORE or SEARCH), FETCH
    /// FLAGS for messages changed elsewhere, then EXISTS for new messages.
    pub fn sync(
        &mut self,
        store: &MailStore,
        address: &str,
        expunges: bool,
        with_modseq: bool,
    ) -> Result<Vec<Data<'static>>, StoreError> {
        let current = store.messages(address, &self.folder)?;
        let by_uid: HashMap<u32, &MessageMeta> = current.iter().map(|m| (m.uid, m)).collect();
        let mut out = Vec::new();
        if expunges {
            // Highest first, so each number is still right when the client applies it.
            for i in (0..self.known.len()).rev() {
                if !by_uid.contains_key(&self.known[i].uid) {
                    self.known.remove(i);
                    out.push(Data::Expunge(
                        NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0"),
                    ));
                }
            }
        }
        for (i, known) in self.known.iter_mut().enumerate() {
            let Some(meta) = by_uid.get(&known.uid) else {
                continue;
            };
            if meta.modseq > known.modseq {
                known.modseq = meta.modseq;
                let mut items = vec![
                    MessageDataItem::Flags(fetch::flags(&meta.flags)),
                    MessageDataItem::Uid(NonZeroU32::new(meta.uid).expect("UIDs start at 1")),
                ];
                if with_modseq {
                    items.push(MessageDataItem::ModSeq(fetch::modseq(meta.modseq)));
                }
                out.push(Data::Fetch {
                    seq: NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0"),
                    items: items.try_into().expect("two items or more"),
                });
            }
        }
        let highest = self.known.last().map_or(0, |k| k.uid);
        let before = self.known.len();
        self.known
            .extend(current.iter().filter(|m| m.uid > highest).map(|m| Known {
                uid: m.uid,
                modseq: m.modseq,
            }));
        if self.known.len() != before {
            out.push(Data::Exists(self.len()));
        }
        Ok(out)
    }
}

/// Whether `value` is in `set`, `*` standing for `largest`.
pub(super) fn contains(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let expand = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => expand(s) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (expand(a), expand(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_tested_without_being_expanded() {
        let set = SequenceSet::try_from("2,4:*,1:4294967295").unwrap();
        assert!(contains(&set, 3, 10));
        let set = SequenceSet::try_from("7:5,*").unwrap();
        assert!(contains(&set, 6, 10));
        assert!(contains(&set, 10, 10));
        assert!(!contains(&set, 8, 10));
        // n:* with n above the largest still names the largest.
        let set = SequenceSet::try_from("50:*").unwrap();
        assert!(contains(&set, 10, 10));
        assert!(!contains(&set, 9, 10));
    }
}
