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
];

fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
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
            assert_eq!(tables(a.2), tables(b.2));
            assert!(!tables(a.2).is_empty());
        }
        assert_eq!(SQLITE.len(), POSTGRES.len());
    }
}
