//! What became of the messages we sent: delivery reports (MDN, DSN) linked to their
//! outbox item, recipient by recipient, and the documents this software sent
//! (UX.05.BIS: only a version we sent may be replaced or deleted by a later message).

use crate::clock::{from_ms, to_ms};
use crate::error::{col, db};
use crate::outbox::{OutboxState, truncate};
use crate::{Result, Store, StoreError};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// What a report says happened to our message at one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryState {
    /// A DSN `delayed`: the operator still tries.
    Delayed,
    /// A DSN `delivered` / `relayed` / `expanded`, or an MDN `dispatched`.
    Delivered,
    /// An MDN `deleted`: discarded without being read.
    Deleted,
    /// An MDN `displayed`: shown to the recipient.
    Displayed,
    /// An MDN `processed`: the recipient's software integrated it.
    Processed,
    /// A DSN `failed`, or an MDN carrying an error (900–906).
    Failed,
}

impl DeliveryState {
    pub fn code(self) -> &'static str {
        match self {
            Self::Delayed => "delayed",
            Self::Delivered => "delivered",
            Self::Deleted => "deleted",
            Self::Displayed => "displayed",
            Self::Processed => "processed",
            Self::Failed => "failed",
        }
    }

    fn from_code(code: &str) -> Result<Self> {
        Ok(match code {
            "delayed" => Self::Delayed,
            "delivered" => Self::Delivered,
            "deleted" => Self::Deleted,
            "displayed" => Self::Displayed,
            "processed" => Self::Processed,
            "failed" => Self::Failed,
            _ => return Err(StoreError::Corrupt(format!("delivery state {code:?}"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Mdn,
    Dsn,
}

impl ReportKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Mdn => "mdn",
            Self::Dsn => "dsn",
        }
    }
}

/// One recipient's line of a received report.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    /// The stored report message.
    pub report_message: i64,
    /// The outbox item it is about; `None` when nothing we sent matches.
    pub outbox: Option<i64>,
    pub kind: ReportKind,
    pub original_message_id: Option<&'a str>,
    pub envelope_id: Option<&'a str>,
    pub recipient: &'a str,
    pub state: DeliveryState,
    /// DSN `Status` (`5.1.1`) or the MDN's error code (`902`).
    pub status: Option<&'a str>,
    /// DSN `Diagnostic-Code`, or the MDN's error label.
    pub detail: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub id: i64,
    pub report_message: i64,
    pub outbox: Option<i64>,
    pub kind: ReportKind,
    pub original_message_id: Option<String>,
    pub envelope_id: Option<String>,
    pub recipient: String,
    pub state: DeliveryState,
    pub status: Option<String>,
    pub detail: Option<String>,
    pub received: OffsetDateTime,
}

/// Where one recipient stands, from every report about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientDelivery {
    pub recipient: String,
    pub state: DeliveryState,
    pub status: Option<String>,
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

/// The state each recipient reached: the furthest one (a failure above all, then
/// processed, displayed, deleted, delivered, delayed), the latest report on ties.
/// Recipients are compared without case.
pub fn delivery_by_recipient(reports: &[DeliveryReport]) -> Vec<RecipientDelivery> {
    let mut out: Vec<RecipientDelivery> = Vec::new();
    for r in reports {
        let line = RecipientDelivery {
            recipient: r.recipient.clone(),
            state: r.state,
            status: r.status.clone(),
            detail: r.detail.clone(),
            at: r.received,
        };
        match out
            .iter_mut()
            .find(|d| d.recipient.eq_ignore_ascii_case(&r.recipient))
        {
            Some(d) if (r.state, r.received) >= (d.state, d.at) => *d = line,
            Some(_) => {}
            None => out.push(line),
        }
    }
    out
}

/// What a sent document asked of its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentAction {
    New,
    Replace,
    Delete,
}

impl SentAction {
    pub fn code(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Replace => "replace",
            Self::Delete => "delete",
        }
    }

    fn from_code(code: &str) -> Result<Self> {
        Ok(match code {
            "new" => Self::New,
            "replace" => Self::Replace,
            "delete" => Self::Delete,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "sent document action {code:?}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewSentDocument<'a> {
    pub outbox: i64,
    /// The version's id, `root^extension`.
    pub document_id: &'a str,
    pub set_id: &'a str,
    pub version: Option<u32>,
    pub action: SentAction,
    /// The version it replaces (`relatedDocument RPLC`), if any.
    pub replaces: Option<&'a str>,
    /// The patient's INS matricule, when the document has one.
    pub patient_ins: Option<&'a str>,
    pub title: Option<&'a str>,
    pub recipients: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentDocument {
    pub id: i64,
    pub outbox: i64,
    pub document_id: String,
    pub set_id: String,
    pub version: Option<u32>,
    pub action: SentAction,
    pub replaces: Option<String>,
    pub patient_ins: Option<String>,
    pub title: Option<String>,
    pub recipients: Vec<String>,
    pub created: OffsetDateTime,
    /// Where the message that carried it stands.
    pub outbox_state: OutboxState,
}

const REPORT_COLUMNS: &str = "id, report_message_id, outbox_id, kind, original_message_id, envelope_id, \
                              recipient, state, status, detail, received_ms";
const SENT_COLUMNS: &str = "s.id, s.outbox_id, s.document_id, s.set_id, s.version, s.action, s.replaces, \
                            s.patient_ins, s.title, s.recipients, s.created_ms, o.state AS outbox_state";
/// Longest diagnostic kept from a report.
const MAX_DETAIL: usize = 1000;

fn report_from(row: &AnyRow) -> Result<DeliveryReport> {
    Ok(DeliveryReport {
        id: col(row, "id")?,
        report_message: col(row, "report_message_id")?,
        outbox: col(row, "outbox_id")?,
        kind: match col::<String>(row, "kind")?.as_str() {
            "mdn" => ReportKind::Mdn,
            "dsn" => ReportKind::Dsn,
            other => return Err(StoreError::Corrupt(format!("report kind {other:?}"))),
        },
        original_message_id: col(row, "original_message_id")?,
        envelope_id: col(row, "envelope_id")?,
        recipient: col(row, "recipient")?,
        state: DeliveryState::from_code(&col::<String>(row, "state")?)?,
        status: col(row, "status")?,
        detail: col(row, "detail")?,
        received: from_ms(col(row, "received_ms")?)?,
    })
}

fn sent_from(row: &AnyRow) -> Result<SentDocument> {
    let recipients: String = col(row, "recipients")?;
    let version: Option<i64> = col(row, "version")?;
    let state: String = col(row, "outbox_state")?;
    Ok(SentDocument {
        id: col(row, "id")?,
        outbox: col(row, "outbox_id")?,
        document_id: col(row, "document_id")?,
        set_id: col(row, "set_id")?,
        version: version.and_then(|v| u32::try_from(v).ok()),
        action: SentAction::from_code(&col::<String>(row, "action")?)?,
        replaces: col(row, "replaces")?,
        patient_ins: col(row, "patient_ins")?,
        title: col(row, "title")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| StoreError::Corrupt(format!("sent document recipients: {e}")))?,
        created: from_ms(col(row, "created_ms")?)?,
        outbox_state: match state.as_str() {
            "pending" => OutboxState::Pending,
            "sending" => OutboxState::Sending,
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            "cancelled" => OutboxState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("outbox state {other:?}"))),
        },
    })
}

impl Store {
    /// Records one recipient's line of a report. The same report read again (a crash, a
    /// second process) adds nothing: returns false.
    pub async fn record_report(&self, report: &NewReport<'_>, now: OffsetDateTime) -> Result<bool> {
        let recipient = report.recipient.trim().to_ascii_lowercase();
        let recipient = if recipient.is_empty() {
            "?".to_owned()
        } else {
            truncate(&recipient, 320)
        };
        let done = sqlx::query(
            "INSERT INTO delivery_reports (report_message_id, outbox_id, kind, original_message_id, \
             envelope_id, recipient, state, status, detail, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(report.report_message)
        .bind(report.outbox)
        .bind(report.kind.code())
        .bind(report.original_message_id.map(|s| truncate(s, 512)))
        .bind(report.envelope_id.map(|s| truncate(s, 100)))
        .bind(recipient)
        .bind(report.state.code())
        .bind(report.status.map(|s| truncate(s, 64)))
        .bind(report.detail.map(|s| truncate(s, MAX_DETAIL)))
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("recording a delivery report"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The reports about one outbox item, oldest first.
    pub async fn reports_for(&self, outbox: i64) -> Result<Vec<DeliveryReport>> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM delivery_reports WHERE outbox_id = $1 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(outbox)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading delivery reports"))?
            .iter()
            .map(report_from)
            .collect()
    }

    /// Every report, newest first, at most `limit`; only those matching nothing we sent
    /// when `unlinked`.
    pub async fn list_reports(&self, unlinked: bool, limit: u32) -> Result<Vec<DeliveryReport>> {
        let filter = if unlinked {
            "WHERE outbox_id IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM delivery_reports {filter} ORDER BY id DESC LIMIT $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading delivery reports"))?
            .iter()
            .map(report_from)
            .collect()
    }

    /// Remembers a document sent in an outbox item (idempotent per item and version).
    pub async fn record_sent_document(
        &self,
        doc: &NewSentDocument<'_>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let recipients = serde_json::to_string(doc.recipients)
            .map_err(|e| StoreError::Invalid(format!("recipients: {e}")))?;
        sqlx::query(
            "INSERT INTO sent_documents (outbox_id, document_id, set_id, version, action, replaces, \
             patient_ins, title, recipients, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(doc.outbox)
        .bind(doc.document_id)
        .bind(doc.set_id)
        .bind(doc.version.map(i64::from))
        .bind(doc.action.code())
        .bind(doc.replaces)
        .bind(doc.patient_ins)
        .bind(doc.title.map(|t| truncate(t, MAX_DETAIL)))
        .bind(recipients)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("recording a sent document"))?;
        Ok(())
    }

    /// Documents this software sent, newest first, at most `limit`.
    pub async fn sent_documents(&self, limit: u32) -> Result<Vec<SentDocument>> {
        let sql = format!(
            "SELECT {SENT_COLUMNS} FROM sent_documents s JOIN outbox o ON o.id = s.outbox_id \
             ORDER BY s.id DESC LIMIT $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading sent documents"))?
            .iter()
            .map(sent_from)
            .collect()
    }

    /// Every sending of the version `document_id` and of the other versions of its set,
    /// oldest first, counting only messages that went or may still go (not failed, not
    /// cancelled).
    pub async fn sent_history(&self, document_id: &str) -> Result<Vec<SentDocument>> {
        let sql = format!(
            "SELECT {SENT_COLUMNS} FROM sent_documents s JOIN outbox o ON o.id = s.outbox_id \
             WHERE o.state NOT IN ('failed', 'cancelled') AND s.set_id IN \
             (SELECT set_id FROM sent_documents WHERE document_id = $1) ORDER BY s.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(document_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading sent documents"))?
            .iter()
            .map(sent_from)
            .collect()
    }
}
