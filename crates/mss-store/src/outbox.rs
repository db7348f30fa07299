//! Messages waiting to be sent: the user's composed messages and the acknowledgements
//! the engine decides. Each is claimed before it is submitted, then marked sent, given a
//! later retry time, or given up on.
//!
//! At most once per item: a sender first claims the item with one conditional UPDATE
//! (`pending` and due → `sending` with a lease), and only the process whose UPDATE
//! changed the row submits it. A lease that runs out (the process died while sending)
//! makes the item claimable again: that is the one window where a message can go twice
//! (the server took it, the process died before writing `sent`).

use crate::clock::{from_ms, from_ms_opt, to_ms};
use crate::error::{col, col_u, db};
use crate::{Result, Store, StoreError, normalize_message_id};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a process that is submitting it (until its lease ends).
    Sending,
    Sent,
    /// Given up (a permanent refusal, or too many attempts): no further attempt is made
    /// unless a person asks for one.
    Failed,
    /// A person withdrew it before it went.
    Cancelled,
}

impl OutboxState {
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "pending" => Ok(Self::Pending),
            "sending" => Ok(Self::Sending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(StoreError::Corrupt(format!("outbox state {code:?}"))),
        }
    }

    /// The name shown and written in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Self::Pending => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What an outbox item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A message a person composed (`mss send`).
    Message,
    /// An MDN or failure notice the engine answers a received message with.
    Acknowledgement,
}

impl OutboxKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Acknowledgement => "acknowledgement",
        }
    }

    fn from_code(code: &str) -> Result<Self> {
        match code {
            "message" => Ok(Self::Message),
            "acknowledgement" => Ok(Self::Acknowledgement),
            _ => Err(StoreError::Corrupt(format!("outbox kind {code:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub mailbox: i64,
    pub kind: OutboxKind,
    /// Without angle brackets.
    pub message_id: String,
    pub subject: Option<String>,
    pub recipients: Vec<String>,
    /// The exact bytes to submit; empty in listings ([`Store::list_outbox`]).
    pub raw: Vec<u8>,
    /// DSN notifications asked for at submission (`failure,delay`), if any.
    pub dsn: Option<String>,
    pub state: OutboxState,
    /// Attempts made (or started) so far.
    pub attempts: u32,
    pub next_attempt: OffsetDateTime,
    /// While `Sending`: when the claim ends.
    pub lease_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created: OffsetDateTime,
    pub sent: Option<OffsetDateTime>,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewOutboxItem<'a> {
    pub mailbox: i64,
    pub kind: OutboxKind,
    pub message_id: &'a str,
    pub subject: Option<&'a str>,
    pub recipients: &'a [String],
    pub raw: &'a [u8],
    pub dsn: Option<&'a str>,
}

/// What [`Store::enqueue_item`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued by this call.
    New(i64),
    /// An item with this Message-ID was queued before: that one is returned, nothing added.
    Existing(i64),
}

impl Enqueued {
    pub fn id(self) -> i64 {
        match self {
            Self::New(id) | Self::Existing(id) => id,
        }
    }

    pub fn is_new(self) -> bool {
        matches!(self, Self::New(_))
    }
}

const COLUMNS: &str = "id, mailbox_id, kind, message_id, subject, recipients, raw, dsn, state, attempts, \
                       next_attempt_ms, lease_until_ms, last_error, created_ms, sent_ms";
const LIST_COLUMNS: &str = "id, mailbox_id, kind, message_id, subject, recipients, dsn, state, attempts, \
                            next_attempt_ms, lease_until_ms, last_error, created_ms, sent_ms";

/// Longest error text kept: a server's reply can be long, the outbox needs the gist.
const MAX_ERROR: usize = 1000;

/// The ENVID (RFC 3461) an item is submitted with when it asks for DSNs: its id and a
/// short hash of its Message-ID, so a DSN links back to it even without the headers,
/// and an id from another database is not mistaken for one of ours.
pub fn envelope_id(item: i64, message_id: &str) -> String {
    let hash = crate::sha256_hex(message_id.as_bytes());
    format!("mss.{item}.{}", &hash[..12])
}

fn item_from(row: &AnyRow, with_raw: bool) -> Result<OutboxItem> {
    let recipients: String = col(row, "recipients")?;
    Ok(OutboxItem {
        id: col(row, "id")?,
        mailbox: col(row, "mailbox_id")?,
        kind: OutboxKind::from_code(&col::<String>(row, "kind")?)?,
        message_id: col(row, "message_id")?,
        subject: col(row, "subject")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| StoreError::Corrupt(format!("outbox recipients: {e}")))?,
        raw: if with_raw {
            col(row, "raw")?
        } else {
            Vec::new()
        },
        dsn: col(row, "dsn")?,
        state: OutboxState::from_code(&col::<String>(row, "state")?)?,
        attempts: col_u(row, "attempts")?,
        next_attempt: from_ms(col(row, "next_attempt_ms")?)?,
        lease_until: from_ms_opt(col(row, "lease_until_ms")?)?,
        last_error: col(row, "last_error")?,
        created: from_ms(col(row, "created_ms")?)?,
        sent: from_ms_opt(col(row, "sent_ms")?)?,
    })
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Whether a database error is a unique-constraint violation (the same Message-ID
/// queued by another process a moment before).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.is_unique_violation()
                || e.message().contains("UNIQUE constraint failed")
                || e.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

impl Store {
    /// Queues an acknowledgement for sending, due at once. Queuing the same Message-ID
    /// again returns the item already queued.
    pub async fn enqueue(
        &self,
        mailbox: i64,
        message_id: &str,
        recipients: &[String],
        raw: &[u8],
        now: OffsetDateTime,
    ) -> Result<i64> {
        let queued = self
            .enqueue_item(
                &NewOutboxItem {
                    mailbox,
                    kind: OutboxKind::Acknowledgement,
                    message_id,
                    subject: None,
                    recipients,
                    raw,
                    dsn: None,
                },
                now,
            )
            .await?;
        Ok(queued.id())
    }

    /// Queues a message, due at once. Idempotent by Message-ID (a unique index, so two
    /// processes queuing the same message at the same moment still make one item).
    pub async fn enqueue_item(
        &self,
        item: &NewOutboxItem<'_>,
        now: OffsetDateTime,
    ) -> Result<Enqueued> {
        self.check_size("the message to send", item.raw.len())?;
        if item.recipients.is_empty() {
            return Err(StoreError::Invalid(
                "a message to send needs a recipient".into(),
            ));
        }
        let message_id = normalize_message_id(item.message_id)
            .ok_or_else(|| StoreError::Invalid("a message to send needs a Message-ID".into()))?;
        if let Some(existing) = self.outbox_id_by_message_id(&message_id).await? {
            return Ok(Enqueued::Existing(existing));
        }
        let recipients = serde_json::to_string(item.recipients)
            .map_err(|e| StoreError::Invalid(format!("recipients: {e}")))?;
        let inserted = sqlx::query_scalar(
            "INSERT INTO outbox (mailbox_id, kind, message_id, subject, recipients, raw, dsn, state, \
             attempts, next_attempt_ms, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) RETURNING id",
        )
        .bind(item.mailbox)
        .bind(item.kind.code())
        .bind(&message_id)
        .bind(item.subject.map(|s| truncate(s, MAX_ERROR)))
        .bind(recipients)
        .bind(item.raw)
        .bind(item.dsn)
        .bind(to_ms(now))
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(id) => Ok(Enqueued::New(id)),
            Err(e) if is_unique_violation(&e) => self
                .outbox_id_by_message_id(&message_id)
                .await?
                .map(Enqueued::Existing)
                .ok_or_else(|| db("queueing a message to send")(e)),
            Err(e) => Err(db("queueing a message to send")(e)),
        }
    }

    async fn outbox_id_by_message_id(&self, message_id: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM outbox WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the outbox"))
    }

    /// Whether an item was ever queued under this Message-ID (angle brackets optional),
    /// without reading its bytes.
    pub async fn is_queued(&self, message_id: &str) -> Result<bool> {
        Ok(match normalize_message_id(message_id) {
            Some(normalized) => self.outbox_id_by_message_id(&normalized).await?.is_some(),
            None => false,
        })
    }

    /// The item sent (or queued) under this Message-ID (angle brackets optional).
    pub async fn outbox_by_message_id(&self, message_id: &str) -> Result<Option<OutboxItem>> {
        let Some(normalized) = normalize_message_id(message_id) else {
            return Ok(None);
        };
        match self.outbox_id_by_message_id(&normalized).await? {
            Some(id) => self.outbox_item(id).await,
            None => Ok(None),
        }
    }

    /// The item whose ENVID ([`envelope_id`]) a DSN gives back, if it is one of ours.
    pub async fn outbox_by_envelope_id(&self, envid: &str) -> Result<Option<OutboxItem>> {
        let Some(id) = envid
            .trim()
            .strip_prefix("mss.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(id, _)| id.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        Ok(self
            .outbox_item(id)
            .await?
            .filter(|item| envelope_id(item.id, &item.message_id) == envid.trim()))
    }

    /// Items a sender may claim at `now`: pending and due, or sending with a lease that
    /// ran out. The longest waiting first, at most `limit`.
    pub async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE (state = 'pending' AND next_attempt_ms <= $1) \
             OR (state = 'sending' AND lease_until_ms < $1) \
             ORDER BY next_attempt_ms, id LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the outbox"))?
            .iter()
            .map(|r| item_from(r, true))
            .collect()
    }

    /// When the next pending message is due, if any: how long a sender may sleep.
    pub async fn next_due(&self) -> Result<Option<OffsetDateTime>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'sending' THEN lease_until_ms ELSE next_attempt_ms END) \
             FROM outbox WHERE state IN ('pending', 'sending')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("reading the outbox"))?;
        from_ms_opt(next)
    }

    /// Claims an item for sending until `lease_until`: true when this caller got it (and
    /// must submit it), false when it is not due, already claimed, sent or withdrawn.
    /// One conditional UPDATE: of two processes claiming at once, one wins.
    pub async fn claim(
        &self,
        id: i64,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'sending', lease_until_ms = $3, attempts = attempts + 1 \
             WHERE id = $1 AND ((state = 'pending' AND next_attempt_ms <= $2) \
             OR (state = 'sending' AND lease_until_ms < $2))",
        )
        .bind(id)
        .bind(to_ms(now))
        .bind(to_ms(lease_until))
        .execute(&self.pool)
        .await
        .map_err(db("claiming a message to send"))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the outbox"))?
            .as_ref()
            .map(|r| item_from(r, true))
            .transpose()
    }

    /// Every item, newest first, at most `limit`; without their bytes.
    pub async fn list_outbox(&self, limit: u32) -> Result<Vec<OutboxItem>> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the outbox"))?
            .iter()
            .map(|r| item_from(r, false))
            .collect()
    }

    /// The item went: the server took it. An unclaimed pending item counts an attempt.
    pub async fn mark_sent(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_ms = $2, last_error = NULL, lease_until_ms = NULL, \
             attempts = attempts + CASE WHEN state = 'pending' THEN 1 ELSE 0 END \
             WHERE id = $1 AND state IN ('pending', 'sending')",
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
                "UPDATE outbox SET state = 'pending', last_error = $2, next_attempt_ms = $3, \
                 lease_until_ms = NULL, attempts = attempts + CASE WHEN state = 'pending' THEN 1 ELSE 0 END \
                 WHERE id = $1 AND state IN ('pending', 'sending')",
            )
            .bind(id)
            .bind(truncate(error, MAX_ERROR))
            .bind(to_ms(at)),
            None => sqlx::query(
                "UPDATE outbox SET state = 'failed', last_error = $2, lease_until_ms = NULL, \
                 attempts = attempts + CASE WHEN state = 'pending' THEN 1 ELSE 0 END \
                 WHERE id = $1 AND state IN ('pending', 'sending')",
            )
            .bind(id)
            .bind(truncate(error, MAX_ERROR)),
        }
        .execute(&self.pool)
        .await
        .map_err(db("recording a failed sending"))?;
        self.expect_pending(id, done.rows_affected()).await
    }

    /// A person withdraws a queued or failed item. One being sent right now cannot be.
    pub async fn cancel_outbox(&self, id: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'cancelled', lease_until_ms = NULL \
             WHERE id = $1 AND state IN ('pending', 'failed')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("cancelling a message to send"))?;
        self.expect_changed(
            id,
            done.rows_affected(),
            "only a queued or failed message can be cancelled",
        )
        .await
    }

    /// A person asks for a new attempt now, with a fresh count of attempts, for a failed,
    /// cancelled or queued item.
    pub async fn retry_outbox(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_ms = $2, attempts = 0, lease_until_ms = NULL \
             WHERE id = $1 AND state IN ('pending', 'failed', 'cancelled')",
        )
        .bind(id)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("asking for a new attempt"))?;
        self.expect_changed(
            id,
            done.rows_affected(),
            "a sent message, or one being sent, cannot be retried",
        )
        .await
    }

    async fn expect_pending(&self, id: i64, affected: u64) -> Result<()> {
        self.expect_changed(id, affected, "not pending").await
    }

    async fn expect_changed(&self, id: i64, affected: u64, why: &str) -> Result<()> {
        if affected == 1 {
            return Ok(());
        }
        match self.outbox_item(id).await? {
            None => Err(StoreError::NotFound(format!("outbox message {id}"))),
            Some(item) => Err(StoreError::Invalid(format!(
                "outbox message {id} is {}: {why}",
                item.state.code()
            ))),
        }
    }
}
