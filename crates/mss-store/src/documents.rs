//! Health documents and every version of them. A document is known by its set id (the
//! CDA `setId`; a document without one uses its own id); each received version is kept.
//! A replacement adds a version and marks the previous one replaced; a deletion marks the
//! current version deleted and keeps it. Nothing here removes a version.
//!
//! The states are the engine's `HeldState` (`Replaced` is its `Superseded`), so the
//! engine's reference semantics (`apply_to_history`) can be compared with the store.

use crate::clock::{from_ms, from_ms_opt, to_ms};
use crate::error::{col, col_u, db};
use crate::{Backend, Result, Store, StoreError, sha1_hex, sha256_hex};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// Why a version exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    /// The first version of the document.
    Added,
    /// A later version that replaces the one before.
    Replacement,
}

/// Where a version stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    Current,
    Replaced,
    /// The document was deleted while this version was current.
    Deleted,
    /// A deletion was received and waits for a person to confirm it.
    PendingDeletion,
}

impl VersionChange {
    fn code(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Replacement => "replacement",
        }
    }
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "added" => Ok(Self::Added),
            "replacement" => Ok(Self::Replacement),
            _ => Err(StoreError::Corrupt(format!("version change {code:?}"))),
        }
    }
}

impl VersionState {
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "current" => Ok(Self::Current),
            "replaced" => Ok(Self::Replaced),
            "deleted" => Ok(Self::Deleted),
            "pending_deletion" => Ok(Self::PendingDeletion),
            _ => Err(StoreError::Corrupt(format!("version state {code:?}"))),
        }
    }
}

/// A version to file.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// The document's identity across versions (CDA `setId`).
    pub set_id: &'a str,
    /// This version's own identifier (CDA `id`, XDM `uniqueId`).
    pub version_id: &'a str,
    /// The version number the document carries (CDA `versionNumber`), if any.
    pub source_version: Option<u32>,
    /// A version (by its id) this one replaces even if it sits under another set id
    /// (a replacement whose sender changed the set id): it is marked replaced too.
    pub supersedes: Option<&'a str>,
    pub patient: Option<i64>,
    pub doc_type: Option<&'a str>,
    pub title: Option<&'a str>,
    pub media_type: &'a str,
    pub content: &'a [u8],
    /// The stored message it came in, if any.
    pub message: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: i64,
    pub set_id: String,
    pub patient: Option<i64>,
    pub doc_type: Option<String>,
    pub title: Option<String>,
    pub deleted: Option<OffsetDateTime>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

/// One version, without its content (see [`Store::version_content`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentVersion {
    pub id: i64,
    pub document: i64,
    /// 1 for the first version received, then 2, 3… in order of arrival.
    pub version_no: u32,
    pub version_id: String,
    pub source_version: Option<u32>,
    pub change: VersionChange,
    pub state: VersionState,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    /// SHA-1 too, because XDM METADATA.XML states document hashes in SHA-1.
    pub sha1: String,
    pub message: Option<i64>,
    pub created: OffsetDateTime,
}

const VERSION_COLUMNS: &str = "v.id, v.document_id, v.version_no, v.version_id, v.source_version, \
    v.change, v.state, v.media_type, v.size, v.sha256, v.sha1, v.message_id, v.created_ms";
const DOCUMENT_COLUMNS: &str =
    "d.id, d.set_id, d.patient_id, d.doc_type, d.title, d.deleted_ms, d.created_ms, d.updated_ms";

fn document_from(row: &AnyRow) -> Result<Document> {
    Ok(Document {
        id: col(row, "id")?,
        set_id: col(row, "set_id")?,
        patient: col(row, "patient_id")?,
        doc_type: col(row, "doc_type")?,
        title: col(row, "title")?,
        deleted: from_ms_opt(col(row, "deleted_ms")?)?,
        created: from_ms(col(row, "created_ms")?)?,
        updated: from_ms(col(row, "updated_ms")?)?,
    })
}

fn version_from(row: &AnyRow) -> Result<DocumentVersion> {
    Ok(DocumentVersion {
        id: col(row, "id")?,
        document: col(row, "document_id")?,
        version_no: col_u(row, "version_no")?,
        version_id: col(row, "version_id")?,
        source_version: {
            let v: Option<i64> = col(row, "source_version")?;
            v.map(|n| {
                u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("version number {n}")))
            })
            .transpose()?
        },
        change: VersionChange::from_code(&col::<String>(row, "change")?)?,
        state: VersionState::from_code(&col::<String>(row, "state")?)?,
        media_type: col(row, "media_type")?,
        size: col_u(row, "size")?,
        sha256: col(row, "sha256")?,
        sha1: col(row, "sha1")?,
        message: col(row, "message_id")?,
        created: from_ms(col(row, "created_ms")?)?,
    })
}

impl Store {
    /// Files a version. A version already filed (same set id and version id) is not filed
    /// again: the stored one is returned with `false`. Otherwise the new version becomes
    /// current, the previous current one is marked replaced, a deleted document comes
    /// back, and the result carries `true`.
    pub async fn add_version(
        &self,
        version: &NewVersion<'_>,
        now: OffsetDateTime,
    ) -> Result<(DocumentVersion, bool)> {
        self.check_size("the document", version.content.len())?;
        if version.set_id.is_empty() || version.version_id.is_empty() {
            return Err(StoreError::Invalid(
                "a document needs a set id and a version id".into(),
            ));
        }
        if let Some(existing) = self
            .find_version(version.set_id, version.version_id)
            .await?
        {
            return Ok((existing, false));
        }
        match self.file_new_version(version, now).await {
            Ok(()) => {}
            // Another task filed the same version meanwhile: it is filed once, by them.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if let Some(existing) = self
                    .find_version(version.set_id, version.version_id)
                    .await?
                {
                    return Ok((existing, false));
                }
                return Err(db("filing a document")(sqlx::Error::Database(e)));
            }
            Err(e) => return Err(db("filing a document")(e)),
        }
        let stored = self
            .find_version(version.set_id, version.version_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("document {}", version.set_id)))?;
        Ok((stored, true))
    }

    /// The transaction that files a new version; raw errors so the caller can tell a
    /// concurrent duplicate from a failure.
    async fn file_new_version(
        &self,
        version: &NewVersion<'_>,
        now: OffsetDateTime,
    ) -> std::result::Result<(), sqlx::Error> {
        let now_ms = to_ms(now);
        let mut tx = self.pool.begin().await?;
        // Writing first also takes SQLite's write lock at once.
        sqlx::query(
            "INSERT INTO documents (set_id, patient_id, doc_type, title, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (set_id) DO NOTHING",
        )
        .bind(version.set_id)
        .bind(version.patient)
        .bind(version.doc_type)
        .bind(version.title)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // Versions of one document are numbered one filing at a time: SQLite holds its
        // write lock since the INSERT above; PostgreSQL needs the document row locked.
        let select = match self.backend {
            Backend::Sqlite => "SELECT id FROM documents WHERE set_id = $1",
            Backend::Postgres => "SELECT id FROM documents WHERE set_id = $1 FOR UPDATE",
        };
        let document: i64 = sqlx::query_scalar(select)
            .bind(version.set_id)
            .fetch_one(&mut *tx)
            .await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version_no) FROM document_versions WHERE document_id = $1",
        )
        .bind(document)
        .fetch_one(&mut *tx)
        .await?;
        let change = if last.is_some() {
            VersionChange::Replacement
        } else {
            VersionChange::Added
        };
        sqlx::query(
            "UPDATE document_versions SET state = 'replaced' \
             WHERE (document_id = $1 OR version_id = $2) AND state IN ('current', 'pending_deletion')",
        )
        .bind(document)
        // No version has an empty id (add_version refuses them): "" supersedes nothing.
        .bind(version.supersedes.unwrap_or(""))
        .execute(&mut *tx)
        .await
        ?;
        sqlx::query(
            "INSERT INTO document_versions (document_id, version_no, version_id, source_version, change, \
             state, media_type, size, sha256, sha1, content, message_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, 'current', $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(document)
        .bind(last.unwrap_or(0) + 1)
        .bind(version.version_id)
        .bind(version.source_version.map(i64::from))
        .bind(change.code())
        .bind(version.media_type)
        .bind(version.content.len() as i64)
        .bind(sha256_hex(version.content))
        .bind(sha1_hex(version.content))
        .bind(version.content)
        .bind(version.message)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        ?;
        sqlx::query(
            "UPDATE documents SET patient_id = COALESCE($2, patient_id), doc_type = COALESCE($3, doc_type), \
             title = COALESCE($4, title), deleted_ms = NULL, updated_ms = $5 WHERE id = $1",
        )
        .bind(document)
        .bind(version.patient)
        .bind(version.doc_type)
        .bind(version.title)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        ?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a document deleted: its current version becomes `Deleted` and stays in the
    /// history. Deleting a deleted document changes nothing.
    pub async fn delete_document(&self, set_id: &str, now: OffsetDateTime) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db("deleting a document"))?;
        let updated = sqlx::query(
            "UPDATE documents SET deleted_ms = COALESCE(deleted_ms, $2), updated_ms = $2 WHERE set_id = $1",
        )
        .bind(set_id)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db("deleting a document"))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("document {set_id}")));
        }
        sqlx::query(
            "UPDATE document_versions SET state = 'deleted' \
             WHERE state IN ('current', 'pending_deletion') \
             AND document_id = (SELECT id FROM documents WHERE set_id = $1)",
        )
        .bind(set_id)
        .execute(&mut *tx)
        .await
        .map_err(db("deleting a document"))?;
        tx.commit().await.map_err(db("deleting a document"))
    }

    /// Marks the current version as waiting for a person to confirm its deletion
    /// (`pending`), or back to current when the person refuses (`!pending`). Returns
    /// whether a version changed state.
    pub async fn set_pending_deletion(&self, set_id: &str, pending: bool) -> Result<bool> {
        let (from, to) = if pending {
            ("current", "pending_deletion")
        } else {
            ("pending_deletion", "current")
        };
        let done = sqlx::query(
            "UPDATE document_versions SET state = $2 WHERE state = $3 \
             AND document_id = (SELECT id FROM documents WHERE set_id = $1)",
        )
        .bind(set_id)
        .bind(to)
        .bind(from)
        .execute(&self.pool)
        .await
        .map_err(db("marking a deletion to confirm"))?;
        if done.rows_affected() == 0 && self.document(set_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("document {set_id}")));
        }
        Ok(done.rows_affected() > 0)
    }

    pub async fn document(&self, set_id: &str) -> Result<Option<Document>> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.set_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(set_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a document"))?
            .as_ref()
            .map(document_from)
            .transpose()
    }

    /// A patient's documents, most recently changed first; deleted ones only if asked.
    pub async fn documents_of_patient(
        &self,
        patient: i64,
        with_deleted: bool,
    ) -> Result<Vec<Document>> {
        let filter = if with_deleted {
            ""
        } else {
            " AND d.deleted_ms IS NULL"
        };
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.patient_id = $1{filter} \
             ORDER BY d.updated_ms DESC, d.id DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(patient)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing a patient's documents"))?
            .iter()
            .map(document_from)
            .collect()
    }

    /// Every version of a document, oldest first.
    pub async fn history(&self, set_id: &str) -> Result<Vec<DocumentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE d.set_id = $1 ORDER BY v.version_no"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(set_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a document's history"))?
            .iter()
            .map(version_from)
            .collect()
    }

    /// The version shown by default: the last one received (its state says whether the
    /// document was deleted since).
    pub async fn latest_version(&self, set_id: &str) -> Result<Option<DocumentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE d.set_id = $1 ORDER BY v.version_no DESC LIMIT 1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(set_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a document's latest version"))?
            .as_ref()
            .map(version_from)
            .transpose()
    }

    /// The version with this id in this document, if it was filed already.
    pub async fn find_version(
        &self,
        set_id: &str,
        version_id: &str,
    ) -> Result<Option<DocumentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE d.set_id = $1 AND v.version_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(set_id)
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking a document version up"))?
            .as_ref()
            .map(version_from)
            .transpose()
    }

    /// The versions, in any document, whose id is `version_id` (a replacement names the
    /// version it replaces by that id).
    pub async fn versions_by_id(&self, version_id: &str) -> Result<Vec<(String, DocumentVersion)>> {
        let sql = format!(
            "SELECT d.set_id, {VERSION_COLUMNS} FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE v.version_id = $1 ORDER BY v.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("looking a document version up"))?
            .iter()
            .map(|row| Ok((col(row, "set_id")?, version_from(row)?)))
            .collect()
    }

    /// The versions whose content has this SHA-256 (lower-case hex), oldest first: the same
    /// bytes already filed, whatever identifiers they came with.
    pub async fn versions_by_sha256(&self, sha256: &str) -> Result<Vec<DocumentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions v WHERE v.sha256 = $1 ORDER BY v.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sha256.to_ascii_lowercase())
            .fetch_all(&self.pool)
            .await
            .map_err(db("looking a document up by content"))?
            .iter()
            .map(version_from)
            .collect()
    }

    /// The versions whose content has this SHA-1 (lower-case hex), oldest first: what
    /// XDM METADATA.XML states, to recognise a document already filed.
    pub async fn versions_by_sha1(&self, sha1: &str) -> Result<Vec<DocumentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions v WHERE v.sha1 = $1 ORDER BY v.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sha1.to_ascii_lowercase())
            .fetch_all(&self.pool)
            .await
            .map_err(db("looking a document up by content"))?
            .iter()
            .map(version_from)
            .collect()
    }

    /// The bytes of one version.
    pub async fn version_content(&self, version: i64) -> Result<Vec<u8>> {
        sqlx::query_scalar("SELECT content FROM document_versions WHERE id = $1")
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a document's content"))?
            .ok_or_else(|| StoreError::NotFound(format!("document version {version}")))
    }
}
