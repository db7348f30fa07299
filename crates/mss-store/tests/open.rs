//! Opening a store that cannot be opened says why, in one line, without secrets.

use mss_store::{Store, StoreError, StoreOptions};
use std::time::Duration;

#[tokio::test]
async fn data_directory_that_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let url = format!("sqlite:{}/mss.db", file.display());
    let err = Store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test]
async fn unreachable_postgres_fails_in_bounded_time_without_the_password() {
    let port = mss_testkit::free_port();
    let url = format!("postgres://mss:s3cret-password@127.0.0.1:{port}/mss");
    let options = StoreOptions {
        busy_timeout: Duration::from_secs(3),
        ..StoreOptions::default()
    };
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), Store::open_with(&url, options))
        .await
        .expect("open did not give up")
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        matches!(
            err,
            StoreError::Open {
                backend: "PostgreSQL",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("check the store URL"), "{text}");
    assert!(text.contains("refused"), "the cause is said: {text}");
}

#[tokio::test]
async fn unknown_url_forms_are_refused() {
    for url in ["mysql://root:pw@db/mss", "mss.db", "sqlite::memory:"] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::Url(_)), "{url}: {err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
}

#[tokio::test]
async fn a_database_file_that_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mss.db");
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    let options = StoreOptions {
        busy_timeout: Duration::from_secs(3),
        ..StoreOptions::default()
    };
    let err = Store::open_with(&format!("sqlite:{}", path.display()), options)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

/// Each pooled connection gets the durability asked for (SQLite forgets it per connection).
#[tokio::test]
async fn sqlite_waits_for_the_disk_at_every_commit_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    for (every_commit, expected) in [(true, 2_i64), (false, 1)] {
        let url = format!(
            "sqlite:{}",
            dir.path().join(format!("{every_commit}.db")).display()
        );
        let options = mss_store::StoreOptions {
            sqlite_sync_every_commit: every_commit,
            ..Default::default()
        };
        let store = Store::open_with(&url, options).await.unwrap();
        // FULL = 2, NORMAL = 1.
        assert_eq!(store.sqlite_synchronous().await.unwrap(), Some(expected));
        store.close().await;
    }
}
