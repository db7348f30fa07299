//! The trace journal: append-only and hash-chained (see [`crate::trace_chain`]).
//!
//! Every operator request and answer, every decision and every action of a person on a
//! message or document is one entry: author, local time, action, references (mailbox,
//! patient, document, message), request, response, outcome. Never message content,
//! never a token: callers must not pass them, and the store masks token-shaped words
//! it still finds (see [`mask_secrets`]).
//!
//! Appends lock the chain head (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR
//! UPDATE` on the head row), so concurrent writers, in one process or several, queue up
//! and the chain never forks. Pruning removes the oldest entries and appends a
//! checkpoint entry that carries where the chain now starts, so it still verifies.

use crate::clock::to_ms;
use crate::error::{col, db};
use crate::trace_chain::{GENESIS_HASH, TraceFields};
use crate::{Backend, Result, Store, StoreError};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest text kept in one field of an entry; longer text is cut and marked.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Retention recommended for the trace journal: six months.
pub const DEFAULT_TRACE_RETENTION_DAYS: u32 = 183;
/// Entries read per round trip while verifying: bounds memory on a large journal.
const PAGE: i64 = 1000;
const CHECKPOINT_ACTION: &str = "trace.pruned";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    Entry,
    /// Written by pruning: says where the chain starts now.
    Checkpoint,
}

impl TraceKind {
    fn code(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Checkpoint => "checkpoint",
        }
    }
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "entry" => Ok(Self::Entry),
            "checkpoint" => Ok(Self::Checkpoint),
            _ => Err(StoreError::Corrupt(format!("trace kind {code:?}"))),
        }
    }
}

/// An entry to append. `at` is the local time with its offset, as the person saw it.
#[derive(Debug, Clone, Copy)]
pub struct NewTrace<'a> {
    pub at: OffsetDateTime,
    /// Who acted: a person's identifier, or `mss` for what the program decided alone.
    pub author: &'a str,
    /// What happened, dotted: `imap.fetch`, `message.received`, `document.integrated`…
    pub action: &'a str,
    pub mailbox: Option<&'a str>,
    pub patient: Option<&'a str>,
    pub document: Option<&'a str>,
    pub message: Option<&'a str>,
    /// The request sent to the operator, or the person's command: never content or tokens.
    pub request: Option<&'a str>,
    pub response: Option<&'a str>,
    /// `ok`, or a short failure code/reason.
    pub outcome: &'a str,
}

/// A stored entry, as listed and as written by `mss trace list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEntry {
    pub seq: i64,
    pub kind: TraceKind,
    pub at: String,
    pub at_ms: i64,
    pub author: String,
    pub action: String,
    pub mailbox: Option<String>,
    pub patient: Option<String>,
    pub document: Option<String>,
    pub message: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

impl TraceEntry {
    fn fields(&self) -> TraceFields {
        TraceFields {
            seq: self.seq,
            kind: self.kind.code().to_owned(),
            at_ms: self.at_ms,
            at: self.at.clone(),
            author: self.author.clone(),
            action: self.action.clone(),
            mailbox: self.mailbox.clone(),
            patient: self.patient.clone(),
            document: self.document.clone(),
            message: self.message.clone(),
            request: self.request.clone(),
            response: self.response.clone(),
            outcome: self.outcome.clone(),
        }
    }
}

/// Which entries to list. Empty filter: all of them, oldest first.
#[derive(Debug, Clone, Default)]
pub struct TraceFilter {
    pub mailbox: Option<String>,
    pub patient: Option<String>,
    pub document: Option<String>,
    /// From this instant, included.
    pub since: Option<OffsetDateTime>,
    /// Up to this instant, excluded.
    pub until: Option<OffsetDateTime>,
    /// Only entries after this sequence number (to page through).
    pub after_seq: Option<i64>,
    pub limit: Option<u32>,
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceBreak {
    /// The first entry that does not verify (or the first missing one).
    pub seq: i64,
    pub reason: String,
}

impl std::fmt::Display for TraceBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trace entry {}: {}", self.seq, self.reason)
    }
}

/// What `mss trace verify` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// First sequence number kept (after pruning), and the last one written.
    pub first_seq: i64,
    pub last_seq: i64,
    /// Hash of the last entry: write it down elsewhere to detect a wholesale rewrite.
    pub head_hash: String,
    /// `None` when every entry verifies.
    pub broken: Option<TraceBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub removed: u64,
    /// The checkpoint entry written, when anything was removed.
    pub checkpoint_seq: Option<i64>,
}

/// Masks words shaped like credentials: what follows `Bearer`, SASL `AUTHENTICATE`
/// payloads, JSON Web Tokens and long opaque mixed-case blobs. A safety net only:
/// callers must not pass secrets in the first place.
pub fn mask_secrets(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let before = |n: usize| i.checked_sub(n).map(|j| words[j]);
        let after_bearer = before(1)
            .is_some_and(|w| w.eq_ignore_ascii_case("bearer") || w.ends_with("auth=Bearer"));
        let sasl_payload = before(2).is_some_and(|w| w.eq_ignore_ascii_case("authenticate"));
        let masked = after_bearer || sasl_payload || looks_like_token(word);
        out.push(if masked && !word.is_empty() {
            "[masqué]"
        } else {
            word
        });
    }
    out.join(" ")
}

fn looks_like_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '(' | ')'));
    let jwt = w.starts_with("eyJ") && w.matches('.').count() >= 2;
    let blob = w.len() >= 40
        && w.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.')
        })
        && w.bytes().any(|b| b.is_ascii_uppercase())
        && w.bytes().any(|b| b.is_ascii_lowercase())
        && w.bytes().any(|b| b.is_ascii_digit());
    jwt || blob
}

/// Cuts a field to [`MAX_FIELD_CHARS`] characters, saying so. Control characters
/// (line breaks, tabs, escapes) become spaces: an entry is one line wherever it is shown,
/// and a forged line break cannot fake another entry in `mss trace list`.
fn bounded(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let masked = mask_secrets(&flat);
    match masked.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => format!("{}…[tronqué]", &masked[..at]),
        None => masked,
    }
}

fn entry_from(row: &AnyRow) -> Result<TraceEntry> {
    Ok(TraceEntry {
        seq: col(row, "seq")?,
        kind: TraceKind::from_code(&col::<String>(row, "kind")?)?,
        at: col(row, "at")?,
        at_ms: col(row, "at_ms")?,
        author: col(row, "author")?,
        action: col(row, "action")?,
        mailbox: col(row, "mailbox")?,
        patient: col(row, "patient")?,
        document: col(row, "document")?,
        message: col(row, "message")?,
        request: col(row, "request")?,
        response: col(row, "response")?,
        outcome: col(row, "outcome")?,
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

const COLUMNS: &str = "seq, kind, at_ms, at, author, action, mailbox, patient, document, message, \
                       request, response, outcome, prev_hash, hash";

/// The chain's two ends, as the head row records them.
struct Head {
    anchor_seq: i64,
    anchor_hash: String,
    last_seq: i64,
    last_hash: String,
}

/// Reads the head; `lock` takes PostgreSQL's row lock, which is what serialises writers
/// there (SQLite has no FOR UPDATE and is already serialised by BEGIN IMMEDIATE).
async fn read_head(conn: &mut AnyConnection, lock: bool) -> Result<Head> {
    let sql = if lock {
        "SELECT anchor_seq, anchor_hash, last_seq, last_hash FROM trace_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT anchor_seq, anchor_hash, last_seq, last_hash FROM trace_head WHERE id = 1"
    };
    let row = sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("reading the trace head"))?;
    Ok(Head {
        anchor_seq: col(&row, "anchor_seq")?,
        anchor_hash: col(&row, "anchor_hash")?,
        last_seq: col(&row, "last_seq")?,
        last_hash: col(&row, "last_hash")?,
    })
}

/// Walks the chain entry by entry and remembers the latest checkpoint.
struct Walker {
    expected_seq: i64,
    prev_hash: String,
    count: u64,
    checkpoint: Option<(i64, String)>,
}

impl Walker {
    fn new(head: &Head) -> Self {
        Self {
            expected_seq: head.anchor_seq,
            prev_hash: head.anchor_hash.clone(),
            count: 0,
            checkpoint: None,
        }
    }

    fn step(&mut self, entry: &TraceEntry) -> Result<(), TraceBreak> {
        let broken = |seq, reason: String| Err(TraceBreak { seq, reason });
        if entry.seq != self.expected_seq {
            return broken(
                self.expected_seq,
                format!("entry is missing (the next one found is {})", entry.seq),
            );
        }
        if entry.prev_hash != self.prev_hash {
            return broken(
                entry.seq,
                "does not point to the entry before it (removed or moved)".into(),
            );
        }
        if entry.fields().hash(&entry.prev_hash) != entry.hash {
            return broken(
                entry.seq,
                "its content was changed after it was written".into(),
            );
        }
        if entry.kind == TraceKind::Checkpoint {
            self.checkpoint = Some(parse_checkpoint(entry).ok_or_else(|| TraceBreak {
                seq: entry.seq,
                reason: "checkpoint entry is unreadable".into(),
            })?);
        }
        self.prev_hash = entry.hash.clone();
        self.expected_seq += 1;
        self.count += 1;
        Ok(())
    }

    /// After the last entry: the walk must end where the head says, and the start must be
    /// the one the latest checkpoint recorded.
    fn finish(&self, head: &Head) -> Result<(), TraceBreak> {
        if self.expected_seq - 1 != head.last_seq || self.prev_hash != head.last_hash {
            return Err(TraceBreak {
                seq: self.expected_seq.min(head.last_seq),
                reason: format!(
                    "the journal ends at entry {} but its head records entry {}: entries were removed from the end",
                    self.expected_seq - 1,
                    head.last_seq
                ),
            });
        }
        let pruned = head.anchor_seq != 1 || head.anchor_hash != GENESIS_HASH;
        let recorded = self.checkpoint.as_ref();
        let start_ok = match recorded {
            Some((seq, hash)) => *seq == head.anchor_seq && *hash == head.anchor_hash,
            None => !pruned,
        };
        if !start_ok {
            return Err(TraceBreak {
                seq: head.anchor_seq,
                reason: "the journal does not start where the last pruning checkpoint says: entries were removed from the start".into(),
            });
        }
        Ok(())
    }
}

/// A checkpoint's request reads `<first kept seq> <hash of the last removed entry>`.
fn parse_checkpoint(entry: &TraceEntry) -> Option<(i64, String)> {
    let mut parts = entry.request.as_deref()?.split(' ');
    let seq = parts.next()?.parse().ok()?;
    let hash = parts.next()?;
    (hash.len() == 64 && parts.next().is_none()).then(|| (seq, hash.to_owned()))
}

async fn page(conn: &mut AnyConnection, after: i64, upto: i64) -> Result<Vec<TraceEntry>> {
    let sql =
        format!("SELECT {COLUMNS} FROM traces WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(upto)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("reading the trace journal"))?
        .iter()
        .map(entry_from)
        .collect()
}

/// Walks entries `after < seq <= upto` (every row there, including rows past the head).
async fn walk(
    conn: &mut AnyConnection,
    walker: &mut Walker,
    upto: i64,
) -> Result<Option<TraceBreak>> {
    let mut after = i64::MIN;
    loop {
        let entries = page(conn, after, upto).await?;
        for entry in &entries {
            if let Err(broken) = walker.step(entry) {
                return Ok(Some(broken));
            }
        }
        match entries.last() {
            Some(last) if entries.len() as i64 == PAGE => after = last.seq,
            _ => return Ok(None),
        }
    }
}

impl Store {
    async fn begin_trace_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            // Takes the write lock now rather than at the first write, so two appenders
            // cannot both read the same head.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(db("locking the trace journal"))
    }

    /// Appends one entry and returns it with its sequence number and hash.
    pub async fn append_trace(&self, t: &NewTrace<'_>) -> Result<TraceEntry> {
        if t.author.trim().is_empty() || t.action.trim().is_empty() || t.outcome.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a trace entry needs an author, an action and an outcome".into(),
            ));
        }
        let at =
            t.at.format(&Rfc3339)
                .map_err(|e| StoreError::Invalid(format!("trace time: {e}")))?;
        let fields = TraceFields {
            seq: 0,
            kind: TraceKind::Entry.code().to_owned(),
            at_ms: to_ms(t.at),
            at,
            author: bounded(t.author),
            action: bounded(t.action),
            mailbox: t.mailbox.map(bounded),
            patient: t.patient.map(bounded),
            document: t.document.map(bounded),
            message: t.message.map(bounded),
            request: t.request.map(bounded),
            response: t.response.map(bounded),
            outcome: bounded(t.outcome),
        };
        let mut tx = self.begin_trace_write().await?;
        let entry = append_locked(&mut tx, self.backend, fields).await?;
        tx.commit().await.map_err(db("appending a trace entry"))?;
        Ok(entry)
    }

    /// Entries matching `filter`, oldest first.
    pub async fn list_traces(&self, filter: &TraceFilter) -> Result<Vec<TraceEntry>> {
        let mut sql = format!("SELECT {COLUMNS} FROM traces WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let texts = [
            ("mailbox", &filter.mailbox),
            ("patient", &filter.patient),
            ("document", &filter.document),
        ];
        for (column, value) in texts {
            if value.is_some() {
                sql += &format!(" AND {column} = {}", next());
            }
        }
        if filter.since.is_some() {
            sql += &format!(" AND at_ms >= {}", next());
        }
        if filter.until.is_some() {
            sql += &format!(" AND at_ms < {}", next());
        }
        if filter.after_seq.is_some() {
            sql += &format!(" AND seq > {}", next());
        }
        sql += " ORDER BY seq";
        if filter.limit.is_some() {
            sql += &format!(" LIMIT {}", next());
        }
        // Only column names and placeholders are formatted in: values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, value) in texts {
            if let Some(v) = value {
                query = query.bind(v.clone());
            }
        }
        for at in [filter.since, filter.until].into_iter().flatten() {
            query = query.bind(to_ms(at));
        }
        if let Some(seq) = filter.after_seq {
            query = query.bind(seq);
        }
        if let Some(limit) = filter.limit {
            query = query.bind(i64::from(limit));
        }
        query
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing trace entries"))?
            .iter()
            .map(entry_from)
            .collect()
    }

    /// Checks the whole journal: every entry's hash, every link, no gap, the end the head
    /// records and the start the last checkpoint records. Reads one consistent snapshot.
    pub async fn verify_traces(&self) -> Result<VerifyReport> {
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut tx = self
            .pool
            .begin_with(begin)
            .await
            .map_err(db("reading the trace journal"))?;
        let head = read_head(&mut tx, false).await?;
        let mut walker = Walker::new(&head);
        let broken = match walk(&mut tx, &mut walker, i64::MAX).await? {
            Some(b) => Some(b),
            None => walker.finish(&head).err(),
        };
        tx.rollback()
            .await
            .map_err(db("reading the trace journal"))?;
        Ok(VerifyReport {
            entries: walker.count,
            first_seq: head.anchor_seq,
            last_seq: head.last_seq,
            head_hash: head.last_hash,
            broken,
        })
    }

    /// Applies the configured retention: prunes what was written more than
    /// `retention_days` days before `now`. Zero keeps everything.
    pub async fn apply_trace_retention(
        &self,
        retention_days: u32,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<PruneReport> {
        if retention_days == 0 {
            return Ok(PruneReport {
                removed: 0,
                checkpoint_seq: None,
            });
        }
        let before = now - time::Duration::days(i64::from(retention_days));
        self.prune_traces(before, author, now).await
    }

    /// Removes the entries written before `before` (the oldest run of them, in sequence
    /// order) and appends a checkpoint entry by `author` at `now` recording where the
    /// chain starts. Refused if the part to remove does not verify: pruning must never
    /// hide tampering.
    pub async fn prune_traces(
        &self,
        before: OffsetDateTime,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<PruneReport> {
        let mut tx = self.begin_trace_write().await?;
        let head = read_head(&mut tx, self.backend == Backend::Postgres).await?;
        let first_kept: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM traces WHERE at_ms >= $1")
                .bind(to_ms(before))
                .fetch_one(&mut *tx)
                .await
                .map_err(db("pruning the trace journal"))?;
        let last_removed = first_kept.map_or(head.last_seq, |s| s - 1);
        if last_removed < head.anchor_seq {
            return Ok(PruneReport {
                removed: 0,
                checkpoint_seq: None,
            });
        }
        let mut walker = Walker::new(&head);
        if let Some(broken) = walk(&mut tx, &mut walker, last_removed).await? {
            return Err(StoreError::Corrupt(format!("{broken}; nothing was pruned")));
        }
        if walker.expected_seq - 1 != last_removed {
            return Err(StoreError::Corrupt(format!(
                "trace entry {} is missing; nothing was pruned",
                walker.expected_seq
            )));
        }
        let removed = sqlx::query("DELETE FROM traces WHERE seq <= $1")
            .bind(last_removed)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning the trace journal"))?
            .rows_affected();
        sqlx::query("UPDATE trace_head SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1")
            .bind(last_removed + 1)
            .bind(&walker.prev_hash)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning the trace journal"))?;
        let fields = TraceFields {
            seq: 0,
            kind: TraceKind::Checkpoint.code().to_owned(),
            at_ms: to_ms(now),
            at: now
                .format(&Rfc3339)
                .map_err(|e| StoreError::Invalid(format!("trace time: {e}")))?,
            author: bounded(author),
            action: CHECKPOINT_ACTION.to_owned(),
            mailbox: None,
            patient: None,
            document: None,
            message: None,
            request: Some(format!("{} {}", last_removed + 1, walker.prev_hash)),
            response: Some(format!(
                "{removed} entries written before {} removed",
                to_ms(before)
            )),
            outcome: "ok".to_owned(),
        };
        let checkpoint = append_locked(&mut tx, self.backend, fields).await?;
        tx.commit().await.map_err(db("pruning the trace journal"))?;
        Ok(PruneReport {
            removed,
            checkpoint_seq: Some(checkpoint.seq),
        })
    }
}

/// Appends `fields` after the head, inside a transaction that holds the journal lock.
async fn append_locked(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    mut fields: TraceFields,
) -> Result<TraceEntry> {
    let head = read_head(tx, backend == Backend::Postgres).await?;
    fields.seq = head.last_seq + 1;
    let hash = fields.hash(&head.last_hash);
    let sql = format!(
        "INSERT INTO traces ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(fields.seq)
        .bind(fields.kind.clone())
        .bind(fields.at_ms)
        .bind(fields.at.clone())
        .bind(fields.author.clone())
        .bind(fields.action.clone())
        .bind(fields.mailbox.clone())
        .bind(fields.patient.clone())
        .bind(fields.document.clone())
        .bind(fields.message.clone())
        .bind(fields.request.clone())
        .bind(fields.response.clone())
        .bind(fields.outcome.clone())
        .bind(head.last_hash.clone())
        .bind(hash.clone())
        .execute(&mut **tx)
        .await
        .map_err(db("appending a trace entry"))?;
    sqlx::query("UPDATE trace_head SET last_seq = $1, last_hash = $2 WHERE id = 1")
        .bind(fields.seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map_err(db("appending a trace entry"))?;
    Ok(TraceEntry {
        seq: fields.seq,
        kind: TraceKind::from_code(&fields.kind)?,
        at: fields.at,
        at_ms: fields.at_ms,
        author: fields.author,
        action: fields.action,
        mailbox: fields.mailbox,
        patient: fields.patient,
        document: fields.document,
        message: fields.message,
        request: fields.request,
        response: fields.response,
        outcome: fields.outcome,
        prev_hash: head.last_hash,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_masked() {
        assert_eq!(
            mask_secrets("AUTHENTICATE XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXIgeHl6AQE="),
            "AUTHENTICATE XOAUTH2 [masqué]"
        );
        assert_eq!(
            mask_secrets("Authorization: Bearer abc.def"),
            "Authorization: Bearer [masqué]"
        );
        assert_eq!(
            mask_secrets("token eyJhbGciOi.eyJzdWIi.sig"),
            "token [masqué]"
        );
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            mask_secrets(&format!("sha256 {sha}")),
            format!("sha256 {sha}")
        );
        assert_eq!(
            mask_secrets("UID FETCH 1:* (FLAGS)"),
            "UID FETCH 1:* (FLAGS)"
        );
    }

    /// A chain of `n` entries as the store would write it, and its head.
    fn chain(n: i64) -> (Vec<TraceEntry>, Head) {
        let mut prev = GENESIS_HASH.to_owned();
        let mut entries = Vec::new();
        for seq in 1..=n {
            let fields = TraceFields {
                seq,
                kind: "entry".into(),
                at_ms: 1_764_115_200_000 + seq,
                at: "2025-11-26T01:00:00+01:00".into(),
                author: format!("author-{seq}"),
                action: "imap.fetch".into(),
                mailbox: Some("bal@x".into()),
                patient: None,
                document: None,
                message: None,
                request: Some(format!("UID FETCH {seq}")),
                response: None,
                outcome: "ok".into(),
            };
            let hash = fields.hash(&prev);
            entries.push(TraceEntry {
                seq,
                kind: TraceKind::Entry,
                at: fields.at,
                at_ms: fields.at_ms,
                author: fields.author,
                action: fields.action,
                mailbox: fields.mailbox,
                patient: None,
                document: None,
                message: None,
                request: fields.request,
                response: None,
                outcome: fields.outcome,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        let head = Head {
            anchor_seq: 1,
            anchor_hash: GENESIS_HASH.to_owned(),
            last_seq: n,
            last_hash: prev,
        };
        (entries, head)
    }

    fn verifies(entries: &[TraceEntry], head: &Head) -> bool {
        let mut walker = Walker::new(head);
        entries.iter().all(|e| walker.step(e).is_ok()) && walker.finish(head).is_ok()
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Edit { at: usize, text: String },
        Delete { at: usize },
        Swap { a: usize, b: usize },
        Truncate { keep: usize },
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (0..64usize, "[a-z]{0,8}").prop_map(|(at, text)| Tamper::Edit { at, text }),
            (0..64usize).prop_map(|at| Tamper::Delete { at }),
            (0..64usize, 0..64usize).prop_map(|(a, b)| Tamper::Swap { a, b }),
            (0..64usize).prop_map(|keep| Tamper::Truncate { keep }),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever one change is made to the stored rows (the head row left alone, as
        /// someone hiding a change would), verification notices it.
        #[test]
        fn any_single_tampering_is_detected(n in 2i64..40, t in tamper()) {
            let (mut entries, head) = chain(n);
            prop_assert!(verifies(&entries, &head));
            let len = entries.len();
            let changed = match t {
                Tamper::Edit { at, text } => {
                    let e = &mut entries[at % len];
                    let before = e.author.clone();
                    e.author = text;
                    e.author != before
                }
                Tamper::Delete { at } => {
                    entries.remove(at % len);
                    true
                }
                Tamper::Swap { a, b } => {
                    let (a, b) = (a % len, b % len);
                    // Rows keep their content; only their positions (seq) move.
                    let (sa, sb) = (entries[a].seq, entries[b].seq);
                    entries[a].seq = sb;
                    entries[b].seq = sa;
                    entries.sort_by_key(|e| e.seq);
                    a != b
                }
                Tamper::Truncate { keep } => {
                    entries.truncate(keep % len);
                    true
                }
            };
            prop_assert_eq!(verifies(&entries, &head), !changed);
        }
    }

    #[test]
    fn long_fields_are_cut() {
        let cut = bounded(&"é".repeat(MAX_FIELD_CHARS + 5));
        assert!(cut.ends_with("…[tronqué]"));
        assert_eq!(
            cut.chars().count(),
            MAX_FIELD_CHARS + "…[tronqué]".chars().count()
        );
        assert_eq!(bounded("court"), "court");
        assert_eq!(
            bounded("a\r\nseq=9 forged\tBearer\tabc\u{1b}[2J"),
            "a  seq=9 forged Bearer [masqué] [2J"
        );
    }
}
