//! Received messages, kept as the raw bytes the server sent, before anything reads them,
//! and the attachments taken out of them.
//!
//! Idempotent by construction: a message is known by (mailbox, folder, UIDVALIDITY, UID)
//! and, when it has one, by its Message-ID within the mailbox. Storing it again, after
//! a crash, a reconnection or a copy into another folder, returns the row already there.

use crate::clock::{from_ms, to_ms};
use crate::error::{col, col_u, db};
use crate::{Result, Store, StoreError, sha256_hex};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// Where a message was read from: UIDs only mean something within a folder and a
/// UIDVALIDITY.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub mailbox_id: i64,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// What [`Store::insert_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored now, under this id.
    Stored(i64),
    /// Already stored under this id, found by the same folder, UIDVALIDITY and UID.
    SameUid(i64),
    /// Already stored under this id, found by the same Message-ID in this mailbox.
    SameMessageId(i64),
}

impl InsertOutcome {
    /// The stored message's id, whether it is new or not.
    pub fn id(self) -> i64 {
        match self {
            Self::Stored(id) | Self::SameUid(id) | Self::SameMessageId(id) => id,
        }
    }

    pub fn is_new(self) -> bool {
        matches!(self, Self::Stored(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub key: MessageKey,
    /// The Message-ID as stored (see [`normalize_message_id`]).
    pub message_id: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub raw: Vec<u8>,
    pub received: OffsetDateTime,
}

/// An attachment taken out of a stored message.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    /// Position in the message (0-based), which makes adding it again a no-op.
    pub ordinal: u32,
    pub filename: Option<&'a str>,
    pub media_type: &'a str,
    pub content: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: i64,
    pub message: i64,
    pub ordinal: u32,
    pub filename: Option<String>,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub content: Vec<u8>,
}

/// Longest Message-ID kept as it is; a longer one (hostile or broken) is kept as its
/// hash, so it still deduplicates without bloating the index.
const MAX_MESSAGE_ID: usize = 512;

/// Trims white space and the angle brackets, and hashes a Message-ID too long to index.
/// An empty one counts as absent.
pub fn normalize_message_id(message_id: &str) -> Option<String> {
    let trimmed = message_id.trim();
    let bare = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed)
        .trim();
    if bare.is_empty() {
        None
    } else if bare.len() > MAX_MESSAGE_ID || bare.contains('\0') {
        Some(format!("sha256:{}", sha256_hex(bare.as_bytes())))
    } else {
        Some(bare.to_owned())
    }
}

fn message_from(row: &AnyRow) -> Result<StoredMessage> {
    Ok(StoredMessage {
        id: col(row, "id")?,
        key: MessageKey {
            mailbox_id: col(row, "mailbox_id")?,
            folder: col(row, "folder")?,
            uidvalidity: col_u(row, "uidvalidity")?,
            uid: col_u(row, "uid")?,
        },
        message_id: col(row, "message_id")?,
        size: col_u(row, "size")?,
        sha256: col(row, "sha256")?,
        raw: col(row, "raw")?,
        received: from_ms(col(row, "received_ms")?)?,
    })
}

impl Store {
    /// Stores a received message as it came, unless it is already there. Refused with
    /// [`StoreError::TooLarge`] above the configured maximum.
    pub async fn insert_message(
        &self,
        key: &MessageKey,
        message_id: Option<&str>,
        raw: &[u8],
        now: OffsetDateTime,
    ) -> Result<InsertOutcome> {
        self.check_size("the received message", raw.len())?;
        let message_id = message_id.and_then(normalize_message_id);
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO messages (mailbox_id, folder, uidvalidity, uid, message_id, size, sha256, raw, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(key.mailbox_id)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .bind(message_id.as_deref())
        .bind(raw.len() as i64)
        .bind(sha256_hex(raw))
        .bind(raw)
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("storing a received message"))?;
        if let Some(id) = inserted {
            return Ok(InsertOutcome::Stored(id));
        }
        if let Some(id) = self.message_by_key(key).await? {
            return Ok(InsertOutcome::SameUid(id));
        }
        if let Some(mid) = &message_id
            && let Some(id) = self.find_message_id(key.mailbox_id, mid).await?
        {
            return Ok(InsertOutcome::SameMessageId(id));
        }
        // A conflict on a row that vanished since: nothing deletes messages, so the
        // database was changed behind our back.
        Err(StoreError::Corrupt(
            "a received message conflicted with a row that is not there".into(),
        ))
    }

    /// The id of the message read at `key`, if stored.
    pub async fn message_by_key(&self, key: &MessageKey) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT id FROM messages WHERE mailbox_id = $1 AND folder = $2 AND uidvalidity = $3 AND uid = $4",
        )
        .bind(key.mailbox_id)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking a message up by UID"))
    }

    /// The id of the message with this Message-ID in this mailbox, if stored.
    pub async fn message_by_message_id(
        &self,
        mailbox_id: i64,
        message_id: &str,
    ) -> Result<Option<i64>> {
        match normalize_message_id(message_id) {
            Some(mid) => self.find_message_id(mailbox_id, &mid).await,
            None => Ok(None),
        }
    }

    async fn find_message_id(&self, mailbox_id: i64, normalized: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM messages WHERE mailbox_id = $1 AND message_id = $2")
            .bind(mailbox_id)
            .bind(normalized)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking a message up by Message-ID"))
    }

    /// The stored message with its raw bytes.
    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        sqlx::query(
            "SELECT id, mailbox_id, folder, uidvalidity, uid, message_id, size, sha256, raw, received_ms \
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a received message"))?
        .as_ref()
        .map(message_from)
        .transpose()
    }

    /// Keeps an attachment of a stored message; adding the same ordinal again returns
    /// the id already there.
    pub async fn add_attachment(
        &self,
        message: i64,
        attachment: &NewAttachment<'_>,
    ) -> Result<i64> {
        self.check_size("the attachment", attachment.content.len())?;
        sqlx::query(
            "INSERT INTO attachments (message_id, ordinal, filename, media_type, size, sha256, content) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id, ordinal) DO NOTHING",
        )
        .bind(message)
        .bind(i64::from(attachment.ordinal))
        .bind(attachment.filename)
        .bind(attachment.media_type)
        .bind(attachment.content.len() as i64)
        .bind(sha256_hex(attachment.content))
        .bind(attachment.content)
        .execute(&self.pool)
        .await
        .map_err(db("storing an attachment"))?;
        sqlx::query_scalar("SELECT id FROM attachments WHERE message_id = $1 AND ordinal = $2")
            .bind(message)
            .bind(i64::from(attachment.ordinal))
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading an attachment id"))
    }

    pub async fn attachments(&self, message: i64) -> Result<Vec<Attachment>> {
        let rows = sqlx::query(
            "SELECT id, message_id, ordinal, filename, media_type, size, sha256, content \
             FROM attachments WHERE message_id = $1 ORDER BY ordinal",
        )
        .bind(message)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing attachments"))?;
        rows.iter()
            .map(|row| {
                Ok(Attachment {
                    id: col(row, "id")?,
                    message: col(row, "message_id")?,
                    ordinal: col_u(row, "ordinal")?,
                    filename: col(row, "filename")?,
                    media_type: col(row, "media_type")?,
                    size: col_u(row, "size")?,
                    sha256: col(row, "sha256")?,
                    content: col(row, "content")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_normalized_and_bounded() {
        assert_eq!(normalize_message_id(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(normalize_message_id("a@b").as_deref(), Some("a@b"));
        assert_eq!(normalize_message_id("<>"), None);
        assert_eq!(normalize_message_id("  "), None);
        let long = "x".repeat(10_000);
        let kept = normalize_message_id(&long).unwrap();
        assert!(kept.starts_with("sha256:") && kept.len() == 71);
        assert_ne!(kept, normalize_message_id(&"y".repeat(10_000)).unwrap());
    }
}
