//! The operator's mailboxes on disk: one directory per account and folder, each message in
//! its own file, and per folder an append-only log of what changed (appends, flags,
//! expunges). Replaying the log at start gives UIDs, flags and mod-sequences back exactly,
//! so content persists across restarts and UIDVALIDITY stays the same.
//!
//! Everything sits behind one mutex: the sandbox serves a few dozen sessions, and a single
//! lock keeps UID allocation and the log in the same order. Sessions waiting in IDLE watch
//! a folder's highest mod-sequence through a `tokio::sync::watch` channel.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::SandboxError;

/// The folders every account has; INBOX cannot be deleted or renamed.
pub const INBOX: &str = "INBOX";
pub const SENT: &str = "Sent";

/// Largest message the store accepts (the SMTP side enforces its own, lower, limits).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Longest folder name, in bytes.
const MAX_FOLDER_NAME: usize = 200;
/// Most folders per account.
const MAX_FOLDERS: usize = 200;
/// Most flags on one message, and longest flag.
const MAX_FLAGS: usize = 32;
const MAX_FLAG_LEN: usize = 64;

/// What the store knows about one message (its bytes are in their own file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch when the message was stored (IMAP INTERNALDATE).
    pub internal_date: i64,
    pub size: u64,
    pub modseq: u64,
}

impl MessageMeta {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// The counters of a folder (IMAP SELECT / STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub exists: u32,
    pub unseen: u32,
    pub highest_modseq: u64,
}

/// How a STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Replace,
    Add,
    Remove,
}

/// Why the store said no. Protocol servers turn these into NO / 5xx answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such mailbox {0}")]
    NoAccount(String),
    #[error("no such folder {0}")]
    NoFolder(String),
    #[error("folder {0} already exists")]
    FolderExists(String),
    #[error("invalid folder name")]
    BadFolderName,
    #[error("INBOX cannot be deleted or renamed")]
    Inbox,
    #[error("too many folders")]
    TooManyFolders,
    #[error("invalid flag {0:?}")]
    BadFlag(String),
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooBig,
    #[error("message {0} is gone")]
    NoMessage(u32),
    #[error(transparent)]
    Disk(#[from] SandboxError),
}

/// One line of a folder's log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum LogEntry {
    Created {
        name: String,
        uid_validity: u32,
    },
    Append {
        uid: u32,
        flags: Vec<String>,
        date: i64,
        size: u64,
        modseq: u64,
    },
    Flags {
        uid: u32,
        flags: Vec<String>,
        modseq: u64,
    },
    Expunge {
        uids: Vec<u32>,
        modseq: u64,
    },
}

#[derive(Debug)]
struct Folder {
    dir: PathBuf,
    uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
    messages: BTreeMap<u32, MessageMeta>,
    changes: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Account {
    folders: BTreeMap<String, Folder>,
}

/// The mailboxes of every account the sandbox serves.
#[derive(Debug)]
pub struct MailStore {
    root: PathBuf,
    accounts: Mutex<HashMap<String, Account>>,
}

impl MailStore {
    /// Opens (or creates) the store under `root` and replays every folder's log.
    pub fn open(root: &Path) -> Result<MailStore, SandboxError> {
        std::fs::create_dir_all(root).map_err(SandboxError::io(root))?;
        let mut accounts = HashMap::new();
        for entry in std::fs::read_dir(root).map_err(SandboxError::io(root))? {
            let entry = entry.map_err(SandboxError::io(root))?;
            let Some(address) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !entry.path().is_dir() {
                continue;
            }
            let mut account = Account::default();
            for folder in std::fs::read_dir(entry.path()).map_err(SandboxError::io(root))? {
                let folder = folder.map_err(SandboxError::io(root))?;
                if folder.path().join("log").is_file() {
                    let loaded = Folder::load(&folder.path())?;
                    account.folders.insert(loaded.0, loaded.1);
                }
            }
            accounts.insert(address, account);
        }
        Ok(MailStore {
            root: root.to_owned(),
            accounts: Mutex::new(accounts),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        // A panic while holding the lock leaves consistent data (the log is written last).
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure `address` exists with INBOX and Sent (idempotent).
    pub fn ensure_account(&self, address: &str) -> Result<(), StoreError> {
        let address = address.to_ascii_lowercase();
        if address.is_empty() || address.contains(['/', '\\']) || address.starts_with('.') {
            return Err(StoreError::NoAccount(address));
        }
        let mut accounts = self.lock();
        let account = accounts.entry(address.clone()).or_default();
        for name in [INBOX, SENT] {
            if !account.folders.contains_key(name) {
                let dir = self.root.join(&address).join(folder_dir_name(name));
                account
                    .folders
                    .insert(name.to_owned(), Folder::create(&dir, name)?);
            }
        }
        Ok(())
    }

    pub fn has_account(&self, address: &str) -> bool {
        self.lock().contains_key(&address.to_ascii_lowercase())
    }

    /// Folder names of an account, INBOX first.
    pub fn folders(&self, address: &str) -> Result<Vec<String>, StoreError> {
        let accounts = self.lock();
        let account = account(&accounts, address)?;
        let mut names: Vec<String> = account.folders.keys().cloned().collect();
        names.sort_by_key(|n| (n != INBOX, n.clone()));
        Ok(names)
    }

    pub fn create_folder(&self, address: &str, name: &str) -> Result<(), StoreError> {
        let name = checked_folder_name(name)?;
        let mut accounts = self.lock();
        let key = address.to_ascii_lowercase();
        let account = accounts
            .get_mut(&key)
            .ok_or_else(|| StoreError::NoAccount(address.to_owned()))?;
        if account.folders.contains_key(&name) {
            return Err(StoreError::FolderExists(name));
        }
        if account.folders.len() >= MAX_FOLDERS {
            return Err(StoreError::TooManyFolders);
        }
        let dir = self.root.join(&key).join(folder_dir_name(&name));
        let folder = Folder::create(&dir, &name)?;
        account.folders.insert(name, folder);
        Ok(())
    }

    pub fn delete_folder(&self, address: &str, name: &str) -> Result<(), StoreError> {
        let name = checked_folder_name(name)?;
        if name == INBOX {
            return Err(StoreError::Inbox);
        }
        let mut accounts = self.lock();
        let account = accounts
            .get_mut(&address.to_ascii_lowercase())
            .ok_or_else(|| StoreError::NoAccount(address.to_owned()))?;
        let folder = account
            .folders
            .remove(&name)
            .ok_or(StoreError::NoFolder(name))?;
        std::fs::remove_dir_all(&folder.dir).map_err(SandboxError::io(&folder.dir))?;
        Ok(())
    }

    pub fn status(&self, address: &str, folder: &str) -> Result<FolderStatus, StoreError> {
        let accounts = self.lock();
        let f = folder_ref(&accounts, address, folder)?;
        Ok(FolderStatus {
            uid_validity: f.uid_validity,
            uid_next: f.uid_next,
            exists: f.messages.len() as u32,
            unseen: f
                .messages
                .values()
                .filter(|m| !m.has_flag("\\Seen"))
                .count() as u32,
            highest_modseq: f.highest_modseq,
        })
    }

    /// Stores a message and returns its UID. Delivery, APPEND and the Sent copy all come
    /// through here.
    pub fn append(
        &self,
        address: &str,
        folder: &str,
        flags: &[String],
        internal_date: i64,
        bytes: &[u8],
    ) -> Result<u32, StoreError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(StoreError::TooBig);
        }
        let flags = checked_flags(flags)?;
        let mut accounts = self.lock();
        let f = folder_mut(&mut accounts, address, folder)?;
        let uid = f.uid_next;
        let path = f.dir.join(format!("{uid}.eml"));
        std::fs::write(&path, bytes).map_err(SandboxError::io(&path))?;
        let modseq = f.highest_modseq + 1;
        f.log(&LogEntry::Append {
            uid,
            flags: flags.clone(),
            date: internal_date,
            size: bytes.len() as u64,
            modseq,
        })?;
        f.uid_next = uid + 1;
        f.messages.insert(
            uid,
            MessageMeta {
                uid,
                flags,
                internal_date,
                size: bytes.len() as u64,
                modseq,
            },
        );
        f.changed(modseq);
        Ok(uid)
    }

    /// Every message of a folder, by ascending UID (message sequence numbers are positions
    /// in this list).
    pub fn messages(&self, address: &str, folder: &str) -> Result<Vec<MessageMeta>, StoreError> {
        let accounts = self.lock();
        Ok(folder_ref(&accounts, address, folder)?
            .messages
            .values()
            .cloned()
            .collect())
    }

    /// The bytes of one message.
    pub fn read(&self, address: &str, folder: &str, uid: u32) -> Result<Vec<u8>, StoreError> {
        let path = {
            let accounts = self.lock();
            let f = folder_ref(&accounts, address, folder)?;
            if !f.messages.contains_key(&uid) {
                return Err(StoreError::NoMessage(uid));
            }
            f.dir.join(format!("{uid}.eml"))
        };
        std::fs::read(&path).map_err(|_| StoreError::NoMessage(uid))
    }

    /// Changes the flags of some messages; returns the new metadata of those that exist.
    pub fn set_flags(
        &self,
        address: &str,
        folder: &str,
        uids: &[u32],
        change: FlagChange,
        flags: &[String],
    ) -> Result<Vec<MessageMeta>, StoreError> {
        let flags = checked_flags(flags)?;
        let mut accounts = self.lock();
        let f = folder_mut(&mut accounts, address, folder)?;
        let mut changed = Vec::new();
        for uid in uids {
            let Some(current) = f.messages.get(uid) else {
                continue;
            };
            let mut next: Vec<String> = match change {
                FlagChange::Replace => flags.clone(),
                FlagChange::Add => {
                    let mut all = current.flags.clone();
                    for flag in &flags {
                        if !current.has_flag(flag) {
                            all.push(flag.clone());
                        }
                    }
                    all
                }
                FlagChange::Remove => current
                    .flags
                    .iter()
                    .filter(|have| !flags.iter().any(|f| f.eq_ignore_ascii_case(have)))
                    .cloned()
                    .collect(),
            };
            next.truncate(MAX_FLAGS);
            if next == current.flags {
                changed.push(current.clone());
                continue;
            }
            let modseq = f.highest_modseq + 1;
            f.log(&LogEntry::Flags {
                uid: *uid,
                flags: next.clone(),
                modseq,
            })?;
            let meta = f.messages.get_mut(uid).expect("checked above");
            meta.flags = next;
            meta.modseq = modseq;
            changed.push(meta.clone());
            f.changed(modseq);
        }
        Ok(changed)
    }

    /// Removes the messages flagged `\Deleted` (all of them, or only among `only`);
    /// returns the UIDs removed, ascending.
    pub fn expunge(
        &self,
        address: &str,
        folder: &str,
        only: Option<&[u32]>,
    ) -> Result<Vec<u32>, StoreError> {
        let mut accounts = self.lock();
        let f = folder_mut(&mut accounts, address, folder)?;
        let uids: Vec<u32> = f
            .messages
            .values()
            .filter(|m| m.has_flag("\\Deleted"))
            .filter(|m| only.is_none_or(|set| set.contains(&m.uid)))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(uids);
        }
        let modseq = f.highest_modseq + 1;
        f.log(&LogEntry::Expunge {
            uids: uids.clone(),
            modseq,
        })?;
        for uid in &uids {
            f.messages.remove(uid);
            let _ = std::fs::remove_file(f.dir.join(format!("{uid}.eml")));
        }
        f.changed(modseq);
        Ok(uids)
    }

    /// A receiver that wakes up whenever the folder changes (its value is the folder's
    /// highest mod-sequence): what IDLE waits on.
    pub fn watch(&self, address: &str, folder: &str) -> Result<watch::Receiver<u64>, StoreError> {
        let accounts = self.lock();
        Ok(folder_ref(&accounts, address, folder)?.changes.subscribe())
    }
}

fn account<'a>(
    accounts: &'a HashMap<String, Account>,
    address: &str,
) -> Result<&'a Account, StoreError> {
    accounts
        .get(&address.to_ascii_lowercase())
        .ok_or_else(|| StoreError::NoAccount(address.to_owned()))
}

fn folder_ref<'a>(
    accounts: &'a HashMap<String, Account>,
    address: &str,
    folder: &str,
) -> Result<&'a Folder, StoreError> {
    let name = canonical_folder(folder);
    account(accounts, address)?
        .folders
        .get(name.as_str())
        .ok_or_else(|| StoreError::NoFolder(folder.to_owned()))
}

fn folder_mut<'a>(
    accounts: &'a mut HashMap<String, Account>,
    address: &str,
    folder: &str,
) -> Result<&'a mut Folder, StoreError> {
    let name = canonical_folder(folder);
    accounts
        .get_mut(&address.to_ascii_lowercase())
        .ok_or_else(|| StoreError::NoAccount(address.to_owned()))?
        .folders
        .get_mut(name.as_str())
        .ok_or_else(|| StoreError::NoFolder(folder.to_owned()))
}

/// INBOX is case-insensitive in IMAP; every other name is kept as given.
fn canonical_folder(name: &str) -> String {
    if name.eq_ignore_ascii_case(INBOX) {
        INBOX.to_owned()
    } else {
        name.to_owned()
    }
}

fn checked_folder_name(name: &str) -> Result<String, StoreError> {
    let name = canonical_folder(name);
    if name.is_empty()
        || name.len() > MAX_FOLDER_NAME
        || name.chars().any(|c| c.is_control() || c == '*' || c == '%')
    {
        return Err(StoreError::BadFolderName);
    }
    Ok(name)
}

fn checked_flags(flags: &[String]) -> Result<Vec<String>, StoreError> {
    if flags.len() > MAX_FLAGS {
        return Err(StoreError::BadFlag(format!("{} flags", flags.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    for flag in flags {
        let ok = !flag.is_empty()
            && flag.len() <= MAX_FLAG_LEN
            && flag.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_graphic() && !b"(){%*\"]".contains(&b) && (b != b'\\' || i == 0)
            });
        if !ok || flag.eq_ignore_ascii_case("\\Recent") {
            return Err(StoreError::BadFlag(flag.clone()));
        }
        if !out.iter().any(|have| have.eq_ignore_ascii_case(flag)) {
            out.push(flag.clone());
        }
    }
    Ok(out)
}

/// Folder directories are named by the hex of their UTF-8 name: any name is safe on disk.
fn folder_dir_name(name: &str) -> String {
    let mut out = String::from("f-");
    for b in name.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl Folder {
    fn create(dir: &Path, name: &str) -> Result<Folder, SandboxError> {
        std::fs::create_dir_all(dir).map_err(SandboxError::io(dir))?;
        let (changes, _) = watch::channel(0);
        let uid_validity = u32::from_be_bytes(crate::random::bytes::<4>()?).max(1);
        let folder = Folder {
            dir: dir.to_owned(),
            uid_validity,
            uid_next: 1,
            highest_modseq: 0,
            messages: BTreeMap::new(),
            changes,
        };
        folder.log(&LogEntry::Created {
            name: name.to_owned(),
            uid_validity,
        })?;
        Ok(folder)
    }

    fn load(dir: &Path) -> Result<(String, Folder), SandboxError> {
        let path = dir.join("log");
        let text = std::fs::read_to_string(&path).map_err(SandboxError::io(&path))?;
        let damaged = |why: &str| SandboxError::Damaged {
            path: path.clone(),
            why: why.to_owned(),
        };
        let mut lines = text.lines();
        let first = lines.next().ok_or_else(|| damaged("empty log"))?;
        let LogEntry::Created { name, uid_validity } =
            serde_json::from_str(first).map_err(|_| damaged("bad first line"))?
        else {
            return Err(damaged("the log does not start with the folder's creation"));
        };
        let (changes, _) = watch::channel(0);
        let mut folder = Folder {
            dir: dir.to_owned(),
            uid_validity,
            uid_next: 1,
            highest_modseq: 0,
            messages: BTreeMap::new(),
            changes,
        };
        for line in lines {
            // A line cut short by a crash is the last one: ignore it.
            let Ok(entry) = serde_json::from_str::<LogEntry>(line) else {
                continue;
            };
            match entry {
                LogEntry::Created { .. } => return Err(damaged("created twice")),
                LogEntry::Append {
                    uid,
                    flags,
                    date,
                    size,
                    modseq,
                } => {
                    folder.uid_next = folder.uid_next.max(uid + 1);
                    folder.highest_modseq = folder.highest_modseq.max(modseq);
                    folder.messages.insert(
                        uid,
                        MessageMeta {
                            uid,
                            flags,
                            internal_date: date,
                            size,
                            modseq,
                        },
                    );
                }
                LogEntry::Flags { uid, flags, modseq } => {
                    folder.highest_modseq = folder.highest_modseq.max(modseq);
                    if let Some(m) = folder.messages.get_mut(&uid) {
                        m.flags = flags;
                        m.modseq = modseq;
                    }
                }
                LogEntry::Expunge { uids, modseq } => {
                    folder.highest_modseq = folder.highest_modseq.max(modseq);
                    for uid in uids {
                        folder.messages.remove(&uid);
                    }
                }
            }
        }
        folder.changes.send_replace(folder.highest_modseq);
        Ok((name, folder))
    }

    fn log(&self, entry: &LogEntry) -> Result<(), SandboxError> {
        let path = self.dir.join("log");
        let mut line = serde_json::to_vec(entry).map_err(|e| SandboxError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(SandboxError::io(&path))
    }

    fn changed(&mut self, modseq: u64) {
        self.highest_modseq = modseq;
        self.changes.send_replace(modseq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "bob@sandbox.mssante.fr";

    fn flags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn content_uids_and_flags_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).unwrap();
        store.ensure_account(BOB).unwrap();
        let a = store
            .append(BOB, "inbox", &[], 10, b"Subject: a\r\n\r\nA")
            .unwrap();
        let b = store
            .append(BOB, INBOX, &[], 11, b"Subject: b\r\n\r\nB")
            .unwrap();
        assert_eq!((a, b), (1, 2));
        store
            .set_flags(
                BOB,
                INBOX,
                &[a],
                FlagChange::Add,
                &flags(&["\\Seen", "\\Deleted"]),
            )
            .unwrap();
        assert_eq!(store.expunge(BOB, INBOX, None).unwrap(), vec![1]);
        store.create_folder(BOB, "Dossiers/Été").unwrap();
        let before = store.status(BOB, INBOX).unwrap();
        drop(store);

        let store = MailStore::open(dir.path()).unwrap();
        assert_eq!(store.status(BOB, INBOX).unwrap(), before);
        assert_eq!(before.uid_next, 3);
        assert_eq!(before.exists, 1);
        assert_eq!(store.read(BOB, INBOX, 2).unwrap(), b"Subject: b\r\n\r\nB");
        assert!(matches!(
            store.read(BOB, INBOX, 1),
            Err(StoreError::NoMessage(1))
        ));
        assert_eq!(
            store.folders(BOB).unwrap(),
            vec!["INBOX", "Dossiers/Été", "Sent"]
        );
        // UIDs are never reused after an expunge and a restart.
        assert_eq!(store.append(BOB, INBOX, &[], 12, b"x").unwrap(), 3);
    }

    #[test]
    fn hostile_names_and_flags_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).unwrap();
        store.ensure_account(BOB).unwrap();
        for name in ["", "a\r\nb", "*", &"x".repeat(201)] {
            assert!(store.create_folder(BOB, name).is_err(), "{name:?}");
        }
        assert!(matches!(
            store.delete_folder(BOB, "inbox"),
            Err(StoreError::Inbox)
        ));
        for flag in ["\\Recent", "a b", "(x", "", "a\\b"] {
            assert!(
                store.append(BOB, INBOX, &flags(&[flag]), 0, b"x").is_err(),
                "{flag:?}"
            );
        }
        assert!(matches!(
            store.append(BOB, "Nope", &[], 0, b"x"),
            Err(StoreError::NoFolder(_))
        ));
        assert!(matches!(
            store.append("eve@x", INBOX, &[], 0, b"x"),
            Err(StoreError::NoAccount(_))
        ));
        // "../" in a folder name stays inside the account's directory.
        store.create_folder(BOB, "../../evil").unwrap();
        assert!(!dir.path().join("evil").exists());
    }

    #[tokio::test]
    async fn watchers_see_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).unwrap();
        store.ensure_account(BOB).unwrap();
        let mut rx = store.watch(BOB, INBOX).unwrap();
        store.append(BOB, INBOX, &[], 0, b"x").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*rx.borrow(), 1);
    }
}
