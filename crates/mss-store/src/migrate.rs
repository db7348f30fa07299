//! Schema migrations, embedded at compile time: one directory per backend because the
//! column types differ (INTEGER/BLOB vs BIGINT/BYTEA, identity columns).
//!
//! Built by hand with `include_str!` rather than `sqlx::migrate!`, which would need
//! sqlx's `macros` feature (and its proc-macro build of both drivers) for nothing else.

use crate::{Backend, Result, StoreError, error::one_line};
use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// (version, description, SQL) for each backend, in order. Never edit an applied file:
/// add a new one (sqlx refuses to start when an applied migration's checksum changes).
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "outbox reports",
        include_str!("../migrations/sqlite/0002_outbox_reports.sql"),
    ),
    (
        3,
        "blob compression",
        include_str!("../migrations/sqlite/0003_blob_compression.sql"),
    ),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "outbox reports",
        include_str!("../migrations/postgres/0002_outbox_reports.sql"),
    ),
    (
        3,
        "blob compression",
        include_str!("../migrations/postgres/0003_blob_compression.sql"),
    ),
];

fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    migrator_of(files)
}

fn migrator_of(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Applies what is missing. On PostgreSQL sqlx takes an advisory lock, so two processes
/// opening the same database at once do not both migrate.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    migrator(backend)
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate {
            backend: backend.name(),
            reason: one_line(&e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at version 1 holding the same acknowledgement queued twice (possible
    /// before the unique index) is brought to version 2 without losing a row.
    async fn upgrade_keeps_duplicate_acknowledgements(url: &str, backend: Backend) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        let files = match backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        migrator_of(&files[..1]).run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO mailboxes (address, kind, created_ms) VALUES ('bal@h.mssante.fr', 'PER', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for _ in 0..2 {
            sqlx::query(
                "INSERT INTO outbox (mailbox_id, message_id, recipients, raw, state, attempts, next_attempt_ms, created_ms) \
                 SELECT id, 'ack.1@h', '[\"x@h.mssante.fr\"]', $1, 'sent', 1, 0, 0 FROM mailboxes",
            )
            .bind(b"raw".as_slice())
            .execute(&pool)
            .await
            .unwrap();
        }
        run(&pool, backend).await.unwrap();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, message_id, kind FROM outbox ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].1, "ack.1@h");
        assert_eq!(rows[1].1, format!("ack.1@h duplicate {}", rows[1].0));
        assert!(rows.iter().all(|r| r.2 == "acknowledgement"));
        // New rows continue after the copied ids, and the Message-ID is now unique.
        let insert = "INSERT INTO outbox (mailbox_id, kind, message_id, recipients, raw, state, attempts, next_attempt_ms, created_ms) \
                      SELECT id, 'message', $1, '[]', $2, 'pending', 0, 0, 0 FROM mailboxes RETURNING id";
        let id: i64 = sqlx::query_scalar(insert)
            .bind("new@h")
            .bind(b"raw".as_slice())
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(id > rows[1].0);
        assert!(
            sqlx::query_scalar::<_, i64>(insert)
                .bind("ack.1@h")
                .bind(b"raw".as_slice())
                .fetch_one(&pool)
                .await
                .is_err()
        );
        pool.close().await;
    }

    #[tokio::test]
    async fn sqlite_upgrade_keeps_duplicate_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("v1.db").display());
        upgrade_keeps_duplicate_acknowledgements(&url, Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_upgrade_keeps_duplicate_acknowledgements() {
        let Some(pg) = tokio::task::spawn_blocking(mss_testkit::postgres::Postgres::start_or_skip)
            .await
            .unwrap()
        else {
            return;
        };
        let url = pg.create_database("upgrade_v1");
        upgrade_keeps_duplicate_acknowledgements(&url, Backend::Postgres).await;
    }

    /// On PostgreSQL the message and document bytes are never given to pglz (lz4 when the
    /// server has it, else stored uncompressed).
    #[tokio::test]
    async fn postgres_blobs_avoid_pglz() {
        let Some(pg) = tokio::task::spawn_blocking(mss_testkit::postgres::Postgres::start_or_skip)
            .await
            .unwrap()
        else {
            return;
        };
        let url = pg.create_database("blob_compression");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        run(&pool, Backend::Postgres).await.unwrap();
        for (table, column) in [
            ("messages", "raw"),
            ("attachments", "content"),
            ("document_versions", "content"),
            ("outbox", "raw"),
        ] {
            let (compression, storage): (String, String) = sqlx::query_as(
                "SELECT attcompression::text, attstorage::text FROM pg_attribute \
                 WHERE attrelid = $1::regclass AND attname = $2",
            )
            .bind(table)
            .bind(column)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(
                compression == "l" || storage == "e",
                "{table}.{column}: compression {compression:?}, storage {storage:?}"
            );
        }
        pool.close().await;
    }

    /// The two schemas must describe the same tables: compare their table names.
    #[test]
    fn both_backends_create_the_same_tables() {
        let tables = |sql: &str| -> Vec<String> {
            sql.lines()
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect()
        };
        for (a, b) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1, b.1);
            assert_eq!(tables(a.2), tables(b.2));
        }
        assert_eq!(SQLITE.len(), POSTGRES.len());
        assert!(!tables(SQLITE[0].2).is_empty());
    }
}
