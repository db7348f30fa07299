//! Notifications for people: a new or updated document, a deletion, a failure.

use crate::clock::{from_ms, from_ms_opt, to_ms};
use crate::error::{col, db};
use crate::{Result, Store, StoreError};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    NewDocument,
    UpdatedDocument,
    DeletedDocument,
    /// Something needs a person (a proposal to confirm, an integration failure).
    Attention,
}

impl NotificationKind {
    fn code(self) -> &'static str {
        match self {
            Self::NewDocument => "new_document",
            Self::UpdatedDocument => "updated_document",
            Self::DeletedDocument => "deleted_document",
            Self::Attention => "attention",
        }
    }
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "new_document" => Ok(Self::NewDocument),
            "updated_document" => Ok(Self::UpdatedDocument),
            "deleted_document" => Ok(Self::DeletedDocument),
            "attention" => Ok(Self::Attention),
            _ => Err(StoreError::Corrupt(format!("notification kind {code:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub kind: NotificationKind,
    pub patient: Option<i64>,
    pub document: Option<i64>,
    pub message: Option<i64>,
    /// What a person reads, in French.
    pub text: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub kind: NotificationKind,
    pub patient: Option<i64>,
    pub document: Option<i64>,
    pub message: Option<i64>,
    pub text: String,
    pub created: OffsetDateTime,
    pub read: Option<OffsetDateTime>,
}

fn notification_from(row: &AnyRow) -> Result<Notification> {
    Ok(Notification {
        id: col(row, "id")?,
        kind: NotificationKind::from_code(&col::<String>(row, "kind")?)?,
        patient: col(row, "patient_id")?,
        document: col(row, "document_id")?,
        message: col(row, "message_id")?,
        text: col(row, "text")?,
        created: from_ms(col(row, "created_ms")?)?,
        read: from_ms_opt(col(row, "read_ms")?)?,
    })
}

impl Store {
    pub async fn notify(&self, n: &NewNotification<'_>, now: OffsetDateTime) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO notifications (kind, patient_id, document_id, message_id, text, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(n.kind.code())
        .bind(n.patient)
        .bind(n.document)
        .bind(n.message)
        .bind(n.text)
        .bind(to_ms(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db("adding a notification"))
    }

    /// Unread notifications, oldest first, at most `limit`.
    pub async fn unread_notifications(&self, limit: u32) -> Result<Vec<Notification>> {
        sqlx::query(
            "SELECT id, kind, patient_id, document_id, message_id, text, created_ms, read_ms \
             FROM notifications WHERE read_ms IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing notifications"))?
        .iter()
        .map(notification_from)
        .collect()
    }

    /// Marks a notification read; marking it again keeps the first time.
    pub async fn mark_read(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        let done =
            sqlx::query("UPDATE notifications SET read_ms = COALESCE(read_ms, $2) WHERE id = $1")
                .bind(id)
                .bind(to_ms(now))
                .execute(&self.pool)
                .await
                .map_err(db("marking a notification read"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("notification {id}")));
        }
        Ok(())
    }
}
