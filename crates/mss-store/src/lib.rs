//! Persistence for mss: mailboxes and their sync state, received messages as raw bytes,
//! the worklist, patients, documents with every version, the outbox, notifications, and
//! the hash-chained trace journal.
//!
//! SQLite is the default (one file in the data directory); PostgreSQL is used when the
//! store URL says so. Both run the same SQL through sqlx's `Any` driver: the statements
//! are kept portable (`$1` placeholders, which SQLite reads as numbered parameters too,
//! `ON CONFLICT`, `RETURNING`, integers, text and blobs only), so there is one code path
//! to test and to reason about. The few places that must differ (schema types, the lock
//! taken before appending a trace) branch on [`Backend`] and say why.
//!
//! Times are stored as milliseconds since the Unix epoch (UTC), which both databases
//! compare and index the same way.

#![forbid(unsafe_code)]

mod clock;
mod documents;
mod error;
mod mailboxes;
mod messages;
mod migrate;
mod notifications;
mod outbox;
mod patients;
mod sent;
mod trace_chain;
mod traces;
mod worklist;

pub use documents::{Document, DocumentVersion, NewVersion, VersionChange, VersionState};
pub use error::{Result, StoreError};
pub use mailboxes::{Mailbox, MailboxKind, SyncState};
pub use messages::{
    Attachment, InsertOutcome, MessageKey, NewAttachment, StoredMessage, normalize_message_id,
};
pub use notifications::{NewNotification, Notification, NotificationKind};
pub use outbox::{Enqueued, NewOutboxItem, OutboxItem, OutboxKind, OutboxState, envelope_id};
pub use patients::{Candidate, NewPatient, Patient};
pub use sent::{
    DeliveryReport, DeliveryState, NewReport, NewSentDocument, RecipientDelivery, ReportKind,
    SentAction, SentDocument, delivery_by_recipient,
};
pub use trace_chain::{GENESIS_HASH, TraceFields};
pub use traces::{
    DEFAULT_TRACE_RETENTION_DAYS, MAX_FIELD_CHARS, NewTrace, PruneReport, TraceBreak, TraceEntry,
    TraceFilter, TraceKind, VerifyReport, mask_secrets,
};
pub use worklist::{FailureCode, WorkState, WorklistItem};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Limits and pool size. The defaults suit one mss process.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest raw message or document content accepted, in bytes. Anything bigger is
    /// refused with [`StoreError::TooLarge`] before it reaches the database.
    pub max_content_bytes: usize,
    /// Connections kept open to the database.
    pub max_connections: u32,
    /// How long a request waits for a free connection or a lock before failing.
    pub busy_timeout: Duration,
    /// SQLite only: wait for the disk at every commit (`synchronous = FULL`, the default),
    /// or only at checkpoints (`NORMAL`: a power cut may lose the last commits, never the
    /// file's consistency; see docs/store.md).
    pub sqlite_sync_every_commit: bool,
}

/// 64 MiB: well above what MSSanté operators accept for one message.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 64 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
            max_connections: 5,
            busy_timeout: Duration::from_secs(30),
            sqlite_sync_every_commit: true,
        }
    }
}

/// An open store. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    options: StoreOptions,
}

/// What a store URL designates, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    SqliteFile(PathBuf),
    Postgres(String),
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        // `sqlite://PATH` or `sqlite:PATH`; PATH is a plain file path, not URL-encoded.
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(p) if !p.is_empty() && !p.starts_with(":memory:") && !p.contains('\0') => {
                Ok(Self::SqliteFile(PathBuf::from(p)))
            }
            _ => Err(StoreError::Url(scheme_only(url))),
        }
    }
}

/// The part of a refused URL that is safe to repeat: never user names or passwords.
fn scheme_only(url: &str) -> String {
    let end = url
        .find("://")
        .or_else(|| url.find(':'))
        .unwrap_or(url.len());
    url[..end].chars().take(20).collect()
}

/// sqlx percent-decodes the file name of a SQLite URL: encode what would be misread.
fn sqlite_url(path: &Path) -> String {
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            _ => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

/// One direct connection first: a pool that cannot connect only reports "timed out",
/// while this says why (refused, unknown database, authentication failed…).
async fn probe(backend: Backend, url: &str, timeout: Duration) -> Result<()> {
    use sqlx::Connection;
    let open_error = |reason: String| StoreError::Open {
        backend: backend.name(),
        reason,
    };
    match tokio::time::timeout(timeout, sqlx::AnyConnection::connect(url)).await {
        Err(_) => Err(open_error(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
        Ok(Err(e)) => Err(open_error(error::one_line(&e.to_string()))),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

impl Store {
    /// Opens (and creates, for SQLite) the store at `url` with default options, and brings
    /// its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// Same as [`Store::open`] with explicit limits.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let target = Target::parse(url)?;
        let (backend, connect_url) = match &target {
            Target::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::DataDir {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                (Backend::Sqlite, sqlite_url(path))
            }
            Target::Postgres(url) => (Backend::Postgres, url.clone()),
        };
        probe(backend, &connect_url, options.busy_timeout).await?;
        let busy_ms = options.busy_timeout.as_millis().min(i32::MAX as u128) as i64;
        let synchronous = if options.sqlite_sync_every_commit {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.busy_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Per connection: SQLite forgets these when a connection closes.
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        let pragma = format!("PRAGMA busy_timeout = {busy_ms}");
                        sqlx::query(sqlx::AssertSqlSafe(pragma))
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(synchronous).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|e| StoreError::Open {
                backend: backend.name(),
                reason: error::one_line(&e.to_string()),
            })?;
        if backend == Backend::Sqlite {
            // WAL lets readers work while one writer appends; it is stored in the file.
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&pool)
                .await
                .map_err(|e| StoreError::Open {
                    backend: backend.name(),
                    reason: error::one_line(&e.to_string()),
                })?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Open {
                    backend: backend.name(),
                    reason: format!("the file refused WAL journaling (mode stays {mode})"),
                });
            }
        }
        migrate::run(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            options,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The connection pool, for maintenance tools and tests that must reach the tables
    /// directly (for instance to prove that tampering is detected).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// SQLite's `synchronous` level on a pooled connection (2 = FULL, 1 = NORMAL), to show
    /// the durability in force; `None` on PostgreSQL.
    pub async fn sqlite_synchronous(&self) -> Result<Option<i64>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.pool)
            .await
            .map_err(error::db("reading the synchronous level"))?;
        Ok(Some(level))
    }

    /// Waits for running requests and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Refuses content over the configured maximum before it reaches the database.
    fn check_size(&self, what: &'static str, size: usize) -> Result<()> {
        if size > self.options.max_content_bytes {
            return Err(StoreError::TooLarge {
                what,
                size,
                max: self.options.max_content_bytes,
            });
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of `bytes`: the content hash kept beside every stored blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lower-case hex SHA-1 of `bytes`: only to compare with the hashes XDM METADATA.XML
/// states, never as a security measure. The `sha1` crate uses the CPU's SHA instructions
/// where ring's SHA-1 does not (a profile of the engine showed it).
pub fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashes_are_the_standard_ones() {
        // FIPS 180 test vectors for "abc".
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn store_urls() {
        assert_eq!(
            Target::parse("sqlite:data/mss.db").unwrap(),
            Target::SqliteFile("data/mss.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/mss/mss.db").unwrap(),
            Target::SqliteFile("/var/lib/mss/mss.db".into())
        );
        assert!(matches!(
            Target::parse("postgresql://mss@db/mss").unwrap(),
            Target::Postgres(_)
        ));
        for bad in [
            "",
            "sqlite:",
            "sqlite::memory:",
            "mysql://u:secret@h/db",
            "data.db",
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
            assert!(err.contains("sqlite:PATH"), "{err}");
        }
    }

    #[test]
    fn sqlite_file_names_are_encoded() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a?b#c%d.db")),
            "sqlite:///tmp/a%3Fb%23c%25d.db?mode=rwc"
        );
    }
}
