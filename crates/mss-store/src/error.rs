//! One error type for the whole store: each variant says what happened and what to do.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store URL {0:?} is not understood: write `sqlite:PATH` (a file, created if missing) or `postgres://user@host/db`"
    )]
    Url(String),
    #[error(
        "cannot create the data directory {path}: {reason}; check the path and its permissions"
    )]
    DataDir { path: String, reason: String },
    #[error(
        "cannot open the {backend} store: {reason}; check the store URL and that the database is reachable"
    )]
    Open {
        backend: &'static str,
        reason: String,
    },
    #[error(
        "the {backend} store schema could not be brought up to date: {reason}; restore the database from a backup or ask for support"
    )]
    Migrate {
        backend: &'static str,
        reason: String,
    },
    #[error(
        "store request failed while {doing}: {reason}; retry, and check the database if it persists"
    )]
    Database { doing: &'static str, reason: String },
    #[error(
        "{what} is {size} bytes, more than the configured maximum of {max} bytes: it was not stored; raise the limit only if such sizes are expected"
    )]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("{0} was not found in the store: check the identifier")]
    NotFound(String),
    #[error("{0}: correct the value and retry")]
    Invalid(String),
    #[error(
        "stored data is unreadable ({0}): the database was changed outside mss; run `mss trace verify` and restore from a backup if needed"
    )]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps a database error with what the store was doing, in one line.
pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database {
        doing,
        reason: one_line(&e.to_string()),
    }
}

/// Database messages may span lines; an error is one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads one column, turning a type mismatch into [`StoreError::Corrupt`].
pub(crate) fn col<'r, T>(row: &'r sqlx::any::AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {}", one_line(&e.to_string()))))
}

/// An integer column that must fit a smaller unsigned type (UIDs, sizes).
pub(crate) fn col_u<T: TryFrom<i64>>(row: &sqlx::any::AnyRow, name: &str) -> Result<T> {
    let v: i64 = col(row, name)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {name}: {v} is out of range")))
}
