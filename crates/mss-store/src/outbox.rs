//! Messages waiting to be sent: each is tried when due, and either marked sent, given a
//! later retry time, or given up on.

use crate::clock::{from_ms, from_ms_opt, to_ms};
use crate::error::{col, col_u, db};
use crate::{Result, Store, StoreError};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for its next attempt.
    Pending,
    Sent,
    /// Given up: no further attempt will be made.
    Failed,
}

impl OutboxState {
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            _ => Err(StoreError::Corrupt(format!("outbox state {code:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub mailbox: i64,
    pub message_id: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    pub state: OutboxState,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt: OffsetDateTime,
    pub last_error: Option<String>,
    pub created: OffsetDateTime,
    pub sent: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, mailbox_id, message_id, recipients, raw, state, attempts, next_attempt_ms, \
                       last_error, created_ms, sent_ms";

/// Longest error text kept: a server's reply can be long, the outbox needs the gist.
const MAX_ERROR: usize = 1000;

fn item_from(row: &AnyRow) -> Result<OutboxItem> {
    let recipients: String = col(row, "recipients")?;
    Ok(OutboxItem {
        id: col(row, "id")?,
        mailbox: col(row, "mailbox_id")?,
        message_id: col(row, "message_id")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| StoreError::Corrupt(format!("outbox recipients: {e}")))?,
        raw: col(row, "raw")?,
        state: OutboxState::from_code(&col::<String>(row, "state")?)?,
        attempts: col_u(row, "attempts")?,
        next_attempt: from_ms(col(row, "next_attempt_ms")?)?,
        last_error: col(row, "last_error")?,
        created: from_ms(col(row, "created_ms")?)?,
        sent: from_ms_opt(col(row, "sent_ms")?)?,
    })
}

fn truncate(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl Store {
    /// Queues a composed message for sending, due at once.
    pub async fn enqueue(
        &self,
        mailbox: i64,
        message_id: &str,
        recipients: &[String],
        raw: &[u8],
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.check_size("the message to send", raw.len())?;
        if recipients.is_empty() {
            return Err(StoreError::Invalid(
                "a message to send needs a recipient".into(),
            ));
        }
        let recipients = serde_json::to_string(recipients)
            .map_err(|e| StoreError::Invalid(format!("recipients: {e}")))?;
        sqlx::query_scalar(
            "INSERT INTO outbox (mailbox_id, message_id, recipients, raw, state, attempts, next_attempt_ms, created_ms) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) RETURNING id",
        )
        .bind(mailbox)
        .bind(message_id)
        .bind(recipients)
        .bind(raw)
        .bind(to_ms(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db("queueing a message to send"))
    }

    /// The queued message with this Message-ID, if any (whatever its state): a caller
    /// that derives the Message-ID from what it answers queues each answer once.
    pub async fn outbox_by_message_id(&self, message_id: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM outbox WHERE message_id = $1 ORDER BY id LIMIT 1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the outbox"))
    }

    /// Pending messages due at `now`, the longest waiting first, at most `limit`.
    pub async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_ms <= $1 \
             ORDER BY next_attempt_ms, id LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the outbox"))?
            .iter()
            .map(item_from)
            .collect()
    }

    /// When the next pending message is due, if any: how long a sender may sleep.
    pub async fn next_due(&self) -> Result<Option<OffsetDateTime>> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_ms) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db("reading the outbox"))?;
        from_ms_opt(next)
    }

    pub async fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the outbox"))?
            .as_ref()
            .map(item_from)
            .transpose()
    }

    pub async fn mark_sent(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_ms = $2, last_error = NULL \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("marking a message sent"))?;
        self.expect_pending(id, done.rows_affected()).await
    }

    /// Records a failed attempt: tried again at `retry_at`, or given up when `None`.
    pub async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<()> {
        let done = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_ms = $3 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(truncate(error))
            .bind(to_ms(at)),
            None => sqlx::query(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = $2 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(truncate(error)),
        }
        .execute(&self.pool)
        .await
        .map_err(db("recording a failed sending"))?;
        self.expect_pending(id, done.rows_affected()).await
    }

    async fn expect_pending(&self, id: i64, affected: u64) -> Result<()> {
        if affected == 1 {
            return Ok(());
        }
        match self.outbox_item(id).await? {
            None => Err(StoreError::NotFound(format!("outbox message {id}"))),
            Some(item) => Err(StoreError::Invalid(format!(
                "outbox message {id} is {:?}, not pending",
                item.state
            ))),
        }
    }
}
