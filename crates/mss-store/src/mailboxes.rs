//! Mailboxes (BAL) and where the synchronisation of each of their folders stands.

use crate::clock::{from_ms, to_ms};
use crate::error::{col, col_u, db};
use crate::{Result, Store, StoreError};
use mss_model::MssAddress;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// Kind of mailbox (BAL): personal, organisational or applicative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailboxKind {
    Per,
    Org,
    App,
}

impl MailboxKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Per => "PER",
            Self::Org => "ORG",
            Self::App => "APP",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "PER" => Some(Self::Per),
            "ORG" => Some(Self::Org),
            "APP" => Some(Self::App),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: i64,
    pub address: MssAddress,
    pub kind: MailboxKind,
    pub created: OffsetDateTime,
}

/// Where synchronisation of one IMAP folder stands: a changed UIDVALIDITY means every
/// UID seen before is meaningless and the folder must be read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub folder: String,
    pub uidvalidity: u32,
    pub last_uid: u32,
    /// CONDSTORE HIGHESTMODSEQ, when the server has it.
    pub highest_modseq: Option<u64>,
    pub updated: OffsetDateTime,
}

fn mailbox_from(row: &AnyRow) -> Result<Mailbox> {
    let address: String = col(row, "address")?;
    let kind: String = col(row, "kind")?;
    Ok(Mailbox {
        id: col(row, "id")?,
        address: MssAddress::parse(&address)
            .map_err(|e| StoreError::Corrupt(format!("mailbox address {address:?}: {e}")))?,
        kind: MailboxKind::from_code(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("mailbox kind {kind:?}")))?,
        created: from_ms(col(row, "created_ms")?)?,
    })
}

impl Store {
    /// The mailbox with this address, created on first use. The kind of an existing
    /// mailbox is left as it was.
    pub async fn ensure_mailbox(
        &self,
        address: &MssAddress,
        kind: MailboxKind,
        now: OffsetDateTime,
    ) -> Result<Mailbox> {
        sqlx::query(
            "INSERT INTO mailboxes (address, kind, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (address) DO NOTHING",
        )
        .bind(address.as_str())
        .bind(kind.code())
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("adding a mailbox"))?;
        self.mailbox(address)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {address}")))
    }

    pub async fn mailbox(&self, address: &MssAddress) -> Result<Option<Mailbox>> {
        sqlx::query("SELECT id, address, kind, created_ms FROM mailboxes WHERE address = $1")
            .bind(address.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a mailbox"))?
            .as_ref()
            .map(mailbox_from)
            .transpose()
    }

    pub async fn mailboxes(&self) -> Result<Vec<Mailbox>> {
        sqlx::query("SELECT id, address, kind, created_ms FROM mailboxes ORDER BY address")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing mailboxes"))?
            .iter()
            .map(mailbox_from)
            .collect()
    }

    pub async fn sync_state(&self, mailbox_id: i64, folder: &str) -> Result<Option<SyncState>> {
        let row = sqlx::query(
            "SELECT folder, uidvalidity, last_uid, highest_modseq, updated_ms FROM sync_state \
             WHERE mailbox_id = $1 AND folder = $2",
        )
        .bind(mailbox_id)
        .bind(folder)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading the sync state"))?;
        let Some(row) = row else { return Ok(None) };
        let modseq: Option<i64> = col(&row, "highest_modseq")?;
        Ok(Some(SyncState {
            folder: col(&row, "folder")?,
            uidvalidity: col_u(&row, "uidvalidity")?,
            last_uid: col_u(&row, "last_uid")?,
            highest_modseq: modseq
                .map(|m| u64::try_from(m).map_err(|_| StoreError::Corrupt(format!("modseq {m}"))))
                .transpose()?,
            updated: from_ms(col(&row, "updated_ms")?)?,
        }))
    }

    /// Records where synchronisation stands (replacing what was there).
    pub async fn save_sync_state(&self, mailbox_id: i64, state: &SyncState) -> Result<()> {
        // HIGHESTMODSEQ is a 63-bit value (RFC 7162), so it fits a signed 64-bit column.
        let modseq = state
            .highest_modseq
            .map(|m| {
                i64::try_from(m)
                    .map_err(|_| StoreError::Invalid(format!("HIGHESTMODSEQ {m} exceeds 2^63-1")))
            })
            .transpose()?;
        sqlx::query(
            "INSERT INTO sync_state (mailbox_id, folder, uidvalidity, last_uid, highest_modseq, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (mailbox_id, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
             last_uid = excluded.last_uid, highest_modseq = excluded.highest_modseq, \
             updated_ms = excluded.updated_ms",
        )
        .bind(mailbox_id)
        .bind(&state.folder)
        .bind(i64::from(state.uidvalidity))
        .bind(i64::from(state.last_uid))
        .bind(modseq)
        .bind(to_ms(state.updated))
        .execute(&self.pool)
        .await
        .map_err(db("saving the sync state"))?;
        Ok(())
    }
}
