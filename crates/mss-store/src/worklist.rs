//! The worklist: every received message (or document inside one) with where it stands,
//! why it failed, and the candidate patients a person may choose from.

use crate::clock::{from_ms, to_ms};
use crate::error::{col, db};
use crate::{Result, Store, StoreError};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// An MSSanté integration failure code, 900 to 906 (the code carried by the MDN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailureCode(u16);

impl FailureCode {
    pub fn new(code: u16) -> Option<Self> {
        (900..=906).contains(&code).then_some(Self(code))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Where a worklist item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    /// Stored, not decided yet.
    Received,
    /// Filed automatically in a patient's record.
    Integrated,
    /// Waiting for a person to choose the patient.
    Proposed,
    /// Replaced a previous version.
    Replaced,
    /// Deleted a previous version.
    Deleted,
    /// Already integrated: nothing was filed again.
    Duplicate,
    /// A deletion waits for a person to confirm it.
    DeletionToConfirm,
    Failed(FailureCode),
}

impl WorkState {
    fn code(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Integrated => "integrated",
            Self::Proposed => "proposed",
            Self::Replaced => "replaced",
            Self::Deleted => "deleted",
            Self::Duplicate => "duplicate",
            Self::DeletionToConfirm => "deletion_to_confirm",
            Self::Failed(_) => "failed",
        }
    }

    fn failure(self) -> Option<i64> {
        match self {
            Self::Failed(code) => Some(i64::from(code.get())),
            _ => None,
        }
    }

    fn from_row(state: &str, failure: Option<i64>) -> Result<Self> {
        Ok(match (state, failure) {
            ("received", None) => Self::Received,
            ("integrated", None) => Self::Integrated,
            ("proposed", None) => Self::Proposed,
            ("replaced", None) => Self::Replaced,
            ("deleted", None) => Self::Deleted,
            ("duplicate", None) => Self::Duplicate,
            ("deletion_to_confirm", None) => Self::DeletionToConfirm,
            ("failed", Some(code)) => Self::Failed(
                u16::try_from(code)
                    .ok()
                    .and_then(FailureCode::new)
                    .ok_or_else(|| StoreError::Corrupt(format!("failure code {code}")))?,
            ),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "worklist state {state:?}/{failure:?}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorklistItem {
    pub id: i64,
    /// The stored message it comes from.
    pub message: i64,
    /// Which part of the message: empty for the message itself, else the document's key.
    pub item_key: String,
    pub state: WorkState,
    pub reason: Option<String>,
    pub patient: Option<i64>,
    pub document: Option<i64>,
    /// Candidate patients, best first: (patient id, score).
    pub candidates: Vec<(i64, f64)>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

const COLUMNS: &str = "id, message_id, item_key, state, failure_code, reason, patient_id, document_id, created_ms, updated_ms";

fn item_from(row: &AnyRow) -> Result<WorklistItem> {
    let state: String = col(row, "state")?;
    Ok(WorklistItem {
        id: col(row, "id")?,
        message: col(row, "message_id")?,
        item_key: col(row, "item_key")?,
        state: WorkState::from_row(&state, col(row, "failure_code")?)?,
        reason: col(row, "reason")?,
        patient: col(row, "patient_id")?,
        document: col(row, "document_id")?,
        candidates: Vec::new(),
        created: from_ms(col(row, "created_ms")?)?,
        updated: from_ms(col(row, "updated_ms")?)?,
    })
}

impl Store {
    /// The worklist item for this message part, created as `Received` on first call.
    pub async fn work_item_for(
        &self,
        message: i64,
        item_key: &str,
        now: OffsetDateTime,
    ) -> Result<i64> {
        sqlx::query(
            "INSERT INTO worklist (message_id, item_key, state, created_ms, updated_ms) \
             VALUES ($1, $2, 'received', $3, $3) ON CONFLICT (message_id, item_key) DO NOTHING",
        )
        .bind(message)
        .bind(item_key)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("adding a worklist item"))?;
        sqlx::query_scalar("SELECT id FROM worklist WHERE message_id = $1 AND item_key = $2")
            .bind(message)
            .bind(item_key)
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading a worklist item"))
    }

    /// Records where an item stands now, with the reason (shown to people, in French),
    /// and the patient and document it was filed under when there is one.
    pub async fn set_work_state(
        &self,
        item: i64,
        state: WorkState,
        reason: Option<&str>,
        patient: Option<i64>,
        document: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE worklist SET state = $2, failure_code = $3, reason = $4, patient_id = $5, \
             document_id = $6, updated_ms = $7 WHERE id = $1",
        )
        .bind(item)
        .bind(state.code())
        .bind(state.failure())
        .bind(reason)
        .bind(patient)
        .bind(document)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("updating a worklist item"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("worklist item {item}")));
        }
        Ok(())
    }

    /// Replaces an item's candidate patients with `candidates`, in the order given
    /// (best first): (patient id, score).
    pub async fn set_candidates(&self, item: i64, candidates: &[(i64, f64)]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db("ranking candidates"))?;
        sqlx::query("DELETE FROM worklist_candidates WHERE item_id = $1")
            .bind(item)
            .execute(&mut *tx)
            .await
            .map_err(db("ranking candidates"))?;
        for (rank, (patient, score)) in candidates.iter().enumerate() {
            if !score.is_finite() {
                return Err(StoreError::Invalid(format!(
                    "candidate score {score} is not a number"
                )));
            }
            sqlx::query(
                "INSERT INTO worklist_candidates (item_id, rank, patient_id, score) VALUES ($1, $2, $3, $4)",
            )
            .bind(item)
            .bind(rank as i64 + 1)
            .bind(*patient)
            .bind(*score)
            .execute(&mut *tx)
            .await
            .map_err(db("ranking candidates"))?;
        }
        tx.commit().await.map_err(db("ranking candidates"))
    }

    async fn with_candidates(&self, mut item: WorklistItem) -> Result<WorklistItem> {
        let rows = sqlx::query(
            "SELECT patient_id, score FROM worklist_candidates WHERE item_id = $1 ORDER BY rank",
        )
        .bind(item.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading candidates"))?;
        item.candidates = rows
            .iter()
            .map(|r| Ok((col(r, "patient_id")?, col(r, "score")?)))
            .collect::<Result<_>>()?;
        Ok(item)
    }

    pub async fn work_item(&self, id: i64) -> Result<Option<WorklistItem>> {
        let sql = format!("SELECT {COLUMNS} FROM worklist WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a worklist item"))?;
        match row {
            Some(row) => Ok(Some(self.with_candidates(item_from(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// Worklist items, most recently changed first; only those still needing a person
    /// (received, proposed, deletion to confirm, failed) when `open_only`.
    pub async fn worklist(&self, open_only: bool, limit: u32) -> Result<Vec<WorklistItem>> {
        let filter = if open_only {
            " WHERE state IN ('received', 'proposed', 'deletion_to_confirm', 'failed')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM worklist{filter} ORDER BY updated_ms DESC, id DESC LIMIT $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing the worklist"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.with_candidates(item_from(row)?).await?);
        }
        Ok(out)
    }
}
