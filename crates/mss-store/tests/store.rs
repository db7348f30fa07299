//! Every scenario runs on both backends: SQLite in a temporary directory always, and a
//! private PostgreSQL started by mss-testkit (skipped when PostgreSQL is not installed,
//! a failure under `MSS_REQUIRE_SERVERS=1`).

use mss_model::{IdentityStatus, IdentityTraits, Ins, MssAddress, PartialDate, Sex};
use mss_store::{
    Backend, FailureCode, InsertOutcome, MailboxKind, MessageKey, NewAttachment, NewNotification,
    NewPatient, NewTrace, NewVersion, NotificationKind, OutboxState, Store, StoreError,
    StoreOptions, SyncState, TraceFields, TraceFilter, TraceKind, VersionChange, VersionState,
    WorkState,
};
use mss_testkit::postgres::Postgres;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A store and what keeps its database alive.
struct Harness {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite(options: StoreOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: open must create it.
        let url = format!("sqlite:{}/data/mss.db", dir.path().display());
        let store = Store::open_with(&url, options).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        Harness {
            store,
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the shared PostgreSQL server.
    async fn postgres(pg: &Postgres, name: &str, options: StoreOptions) -> Harness {
        let url = pg.create_database(name);
        let store = Store::open_with(&url, options).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        Harness {
            store,
            url,
            _dir: None,
        }
    }

    /// A second, independent store on the same database: what another process would have.
    async fn reopen(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

/// Generates one SQLite test per scenario, and one PostgreSQL test running them all.
macro_rules! on_both_backends {
    ($($name:ident $(($options:ident))?),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    #[allow(unused_mut, unused_assignments)]
                    let mut options = mss_store::StoreOptions::default();
                    $( options = super::$options(); )?
                    let h = super::Harness::sqlite(options).await;
                    super::$name(&h).await;
                }
            )*
        }
        mod postgres {
        /// One server for every scenario, each in its own database: initdb costs seconds
        /// of CPU, too much to pay once per scenario. Every scenario runs even when one
        /// fails, and the failure names them all.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn every_scenario() {
            let Some(pg) = tokio::task::spawn_blocking(super::Postgres::start_or_skip).await.unwrap() else {
                return;
            };
            let pg = std::sync::Arc::new(pg);
            let mut failed = Vec::new();
            $(
                let server = pg.clone();
                let run = tokio::spawn(async move {
                    #[allow(unused_mut, unused_assignments)]
                    let mut options = mss_store::StoreOptions::default();
                    $( options = super::$options(); )?
                    let h = super::Harness::postgres(&server, stringify!($name), options).await;
                    super::$name(&h).await;
                    h.store.close().await;
                });
                if let Err(e) = run.await {
                    eprintln!("postgres scenario {} failed: {e}", stringify!($name));
                    failed.push(stringify!($name));
                }
            )*
            assert!(failed.is_empty(), "failed on PostgreSQL: {failed:?} (see the messages above)");
        }
        }
    };
}

on_both_backends!(
    idempotent_message_insert,
    hostile_and_huge_raw_messages(small_limit),
    sync_state_round_trip,
    schema_is_enforced_and_reopens,
    document_versions_history,
    concurrent_filing_files_once,
    patients_and_candidates,
    worklist_states_and_candidates,
    outbox_retry_ordering,
    notifications_read_and_unread,
    trace_verify_detects_modification,
    trace_verify_detects_deletion,
    trace_verify_detects_reordering,
    trace_verify_detects_truncation_and_rechained_forgery,
    concurrent_appends_keep_one_chain,
    retention_pruning_still_verifies,
    pruning_refuses_a_tampered_journal,
    trace_list_filters,
    traces_mask_tokens,
);

const LIMIT: usize = 1024 * 1024;

fn small_limit() -> StoreOptions {
    StoreOptions {
        max_content_bytes: LIMIT,
        ..StoreOptions::default()
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_115_200)
        .unwrap()
        .to_offset(UtcOffset::from_hms(1, 0, 0).unwrap())
}

async fn mailbox(store: &Store, address: &str) -> i64 {
    store
        .ensure_mailbox(&MssAddress::parse(address).unwrap(), MailboxKind::Org, t0())
        .await
        .unwrap()
        .id
}

fn key(mailbox_id: i64, uidvalidity: u32, uid: u32) -> MessageKey {
    MessageKey {
        mailbox_id,
        folder: "INBOX".into(),
        uidvalidity,
        uid,
    }
}

async fn idempotent_message_insert(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s, "secretariat@hopital.mssante.fr").await;
    assert_eq!(
        mailbox(s, "secretariat@hopital.mssante.fr").await,
        mb,
        "ensure_mailbox twice"
    );
    let raw = b"Message-ID: <abc@x>\r\n\r\nbody".to_vec();

    let first = s
        .insert_message(&key(mb, 7, 1), Some("<abc@x>"), &raw, t0())
        .await
        .unwrap();
    let InsertOutcome::Stored(id) = first else {
        panic!("{first:?}")
    };
    // Same UID again (a crash before the UID was recorded, a reconnection).
    assert_eq!(
        s.insert_message(&key(mb, 7, 1), Some("<abc@x>"), &raw, t0())
            .await
            .unwrap(),
        InsertOutcome::SameUid(id)
    );
    // Same message under another UID (copied, or the folder was renumbered).
    assert_eq!(
        s.insert_message(&key(mb, 8, 40), Some("abc@x"), &raw, t0())
            .await
            .unwrap(),
        InsertOutcome::SameMessageId(id)
    );
    // No Message-ID: only the UID tells them apart.
    let other = s
        .insert_message(&key(mb, 8, 41), None, b"x", t0())
        .await
        .unwrap();
    assert!(other.is_new() && other.id() != id);
    assert_eq!(
        s.insert_message(&key(mb, 8, 41), None, b"x", t0())
            .await
            .unwrap(),
        InsertOutcome::SameUid(other.id())
    );
    // The same Message-ID in another mailbox is another message.
    let mb2 = mailbox(s, "dr.martin@hopital.mssante.fr").await;
    assert!(
        s.insert_message(&key(mb2, 7, 1), Some("<abc@x>"), &raw, t0())
            .await
            .unwrap()
            .is_new()
    );

    let stored = s.message(id).await.unwrap().unwrap();
    assert_eq!(stored.raw, raw);
    assert_eq!(stored.size, raw.len() as u64);
    assert_eq!(stored.message_id.as_deref(), Some("abc@x"));
    assert_eq!(stored.sha256, mss_store::sha256_hex(&raw));
    assert_eq!(stored.key, key(mb, 7, 1));
    assert_eq!(
        s.message_by_message_id(mb, " <abc@x> ").await.unwrap(),
        Some(id)
    );
    assert_eq!(s.message_by_key(&key(mb, 7, 2)).await.unwrap(), None);

    // Attachments: adding the same ordinal again is a no-op.
    let pdf = NewAttachment {
        ordinal: 0,
        filename: Some("compte-rendu.pdf"),
        media_type: "application/pdf",
        content: b"%PDF-1.7",
    };
    let a = s.add_attachment(id, &pdf).await.unwrap();
    assert_eq!(s.add_attachment(id, &pdf).await.unwrap(), a);
    let list = s.attachments(id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].content, b"%PDF-1.7");
    assert_eq!(list[0].filename.as_deref(), Some("compte-rendu.pdf"));
}

async fn hostile_and_huge_raw_messages(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s, "bal@hopital.mssante.fr").await;
    // Every byte value, NULs and invalid UTF-8 included, exactly at the limit.
    let raw: Vec<u8> = (0..LIMIT).map(|i| (i * 7 % 256) as u8).collect();
    let id = s
        .insert_message(&key(mb, 1, 1), None, &raw, t0())
        .await
        .unwrap()
        .id();
    assert_eq!(
        s.message(id).await.unwrap().unwrap().raw,
        raw,
        "stored as-is"
    );

    let too_big = vec![b'a'; LIMIT + 1];
    let err = s
        .insert_message(&key(mb, 1, 2), None, &too_big, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { size, max, .. } if size == LIMIT + 1 && max == LIMIT),
        "{err}"
    );
    assert!(err.to_string().contains("not stored"), "{err}");
    assert_eq!(s.message_by_key(&key(mb, 1, 2)).await.unwrap(), None);

    // A 100 000-character Message-ID still deduplicates, and is kept bounded.
    let long_id = format!("<{}@x>", "z".repeat(100_000));
    let first = s
        .insert_message(&key(mb, 1, 3), Some(&long_id), b"m", t0())
        .await
        .unwrap();
    assert!(first.is_new());
    assert_eq!(
        s.insert_message(&key(mb, 1, 4), Some(&long_id), b"m", t0())
            .await
            .unwrap(),
        InsertOutcome::SameMessageId(first.id())
    );
    assert!(
        s.message(first.id())
            .await
            .unwrap()
            .unwrap()
            .message_id
            .unwrap()
            .len()
            < 100
    );

    // SQL in identifiers is only ever data.
    let nasty = "x'); DROP TABLE messages; --";
    let n = s
        .insert_message(&key(mb, 1, 5), Some(nasty), b"m", t0())
        .await
        .unwrap();
    assert!(n.is_new());
    assert_eq!(
        s.message_by_message_id(mb, nasty).await.unwrap(),
        Some(n.id())
    );

    let doc = NewVersion {
        set_id: "1.2.3",
        version_id: "1.2.3.1",
        source_version: None,
        supersedes: None,
        patient: None,
        doc_type: None,
        title: None,
        media_type: "text/xml",
        content: &too_big,
        message: None,
    };
    assert!(matches!(
        s.add_version(&doc, t0()).await,
        Err(StoreError::TooLarge { .. })
    ));
}

async fn sync_state_round_trip(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s, "bal@hopital.mssante.fr").await;
    assert_eq!(s.sync_state(mb, "INBOX").await.unwrap(), None);
    let mut state = SyncState {
        folder: "INBOX".into(),
        uidvalidity: u32::MAX,
        last_uid: 42,
        highest_modseq: Some(i64::MAX as u64),
        updated: t0(),
    };
    s.save_sync_state(mb, &state).await.unwrap();
    let read = s.sync_state(mb, "INBOX").await.unwrap().unwrap();
    assert_eq!(read.uidvalidity, u32::MAX);
    assert_eq!(read.highest_modseq, Some(i64::MAX as u64));
    assert_eq!(read.updated, t0());
    state.last_uid = 43;
    state.highest_modseq = None;
    s.save_sync_state(mb, &state).await.unwrap();
    let read = s.sync_state(mb, "INBOX").await.unwrap().unwrap();
    assert_eq!((read.last_uid, read.highest_modseq), (43, None));
    state.highest_modseq = Some(u64::MAX);
    assert!(matches!(
        s.save_sync_state(mb, &state).await,
        Err(StoreError::Invalid(_))
    ));
    let listed = s.mailboxes().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, MailboxKind::Org);
}

async fn schema_is_enforced_and_reopens(h: &Harness) {
    let s = &h.store;
    // Foreign keys are on: a message for a mailbox that does not exist is refused.
    let err = s
        .insert_message(&key(999, 1, 1), None, b"x", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
    let mb = mailbox(s, "bal@hopital.mssante.fr").await;
    s.append_trace(&trace(t0(), "message.received", None))
        .await
        .unwrap();
    // Opening again (another process, a restart) migrates nothing and keeps everything.
    let again = h.reopen().await;
    assert_eq!(again.mailboxes().await.unwrap()[0].id, mb);
    assert!(again.verify_traces().await.unwrap().is_intact());
    if s.backend() == Backend::Sqlite {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
    again.close().await;
}

fn version<'a>(
    set_id: &'a str,
    version_id: &'a str,
    content: &'a [u8],
    patient: Option<i64>,
) -> NewVersion<'a> {
    NewVersion {
        set_id,
        version_id,
        source_version: None,
        supersedes: None,
        patient,
        doc_type: Some("11488-4"),
        title: Some("Compte rendu de consultation"),
        media_type: "text/xml",
        content,
        message: None,
    }
}

async fn document_versions_history(h: &Harness) {
    let s = &h.store;
    let p = s
        .add_patient(
            &patient("DUPONT", "1980-01-01", &matricule(5), IdentityStatus::Qual),
            t0(),
        )
        .await
        .unwrap();
    let (v1, new) = s
        .add_version(&version("set-1", "doc-1", b"v1", Some(p)), t0())
        .await
        .unwrap();
    assert!(new);
    assert_eq!(
        (v1.version_no, v1.change, v1.state),
        (1, VersionChange::Added, VersionState::Current)
    );
    // Received again: already integrated, nothing filed.
    let (again, new) = s
        .add_version(&version("set-1", "doc-1", b"v1", Some(p)), t0())
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again.id, v1.id);

    let later = t0() + Duration::minutes(5);
    let (v2, new) = s
        .add_version(&version("set-1", "doc-2", b"v2", None), later)
        .await
        .unwrap();
    assert!(new);
    assert_eq!(
        (v2.version_no, v2.change, v2.state),
        (2, VersionChange::Replacement, VersionState::Current)
    );
    let history = s.history("set-1").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|v| (v.version_id.as_str(), v.state))
            .collect::<Vec<_>>(),
        [
            ("doc-1", VersionState::Replaced),
            ("doc-2", VersionState::Current)
        ]
    );
    assert_eq!(s.latest_version("set-1").await.unwrap().unwrap().id, v2.id);
    assert_eq!(
        s.version_content(v1.id).await.unwrap(),
        b"v1",
        "the replaced version is kept"
    );
    let doc = s.document("set-1").await.unwrap().unwrap();
    assert_eq!(
        doc.patient,
        Some(p),
        "a version without patient keeps the document's"
    );

    s.delete_document("set-1", later + Duration::minutes(1))
        .await
        .unwrap();
    s.delete_document("set-1", later + Duration::minutes(2))
        .await
        .unwrap();
    let doc = s.document("set-1").await.unwrap().unwrap();
    assert_eq!(
        doc.deleted,
        Some(later + Duration::minutes(1)),
        "the first deletion time stays"
    );
    let latest = s.latest_version("set-1").await.unwrap().unwrap();
    assert_eq!((latest.id, latest.state), (v2.id, VersionState::Deleted));
    assert_eq!(
        s.version_content(v2.id).await.unwrap(),
        b"v2",
        "the deleted version is kept"
    );
    assert!(s.documents_of_patient(p, false).await.unwrap().is_empty());
    assert_eq!(s.documents_of_patient(p, true).await.unwrap().len(), 1);

    // A new version after a deletion brings the document back; the deleted one stays deleted.
    let (v3, _) = s
        .add_version(
            &version("set-1", "doc-3", b"v1", None),
            later + Duration::minutes(3),
        )
        .await
        .unwrap();
    let states: Vec<_> = s
        .history("set-1")
        .await
        .unwrap()
        .iter()
        .map(|v| v.state)
        .collect();
    assert_eq!(
        states,
        [
            VersionState::Replaced,
            VersionState::Deleted,
            VersionState::Current
        ]
    );
    assert!(
        s.document("set-1")
            .await
            .unwrap()
            .unwrap()
            .deleted
            .is_none()
    );
    let same_bytes = s
        .versions_by_sha256(&mss_store::sha256_hex(b"v1"))
        .await
        .unwrap();
    assert_eq!(
        same_bytes.iter().map(|v| v.id).collect::<Vec<_>>(),
        [v1.id, v3.id]
    );
    let by_id = s.versions_by_id("doc-2").await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].0, "set-1");
    assert!(matches!(
        s.delete_document("nope", t0()).await,
        Err(StoreError::NotFound(_))
    ));
    // XDM states SHA-1: the same bytes are found by it too.
    let sha1 = mss_store::sha1_hex(b"v1");
    assert_eq!(v1.sha1, sha1);
    assert_eq!(
        s.versions_by_sha1(&sha1.to_uppercase())
            .await
            .unwrap()
            .len(),
        2
    );

    // A deletion waiting for a person: confirmed, or refused.
    let (_, _) = s
        .add_version(&version("set-2", "doc-20", b"x", Some(p)), t0())
        .await
        .unwrap();
    assert!(s.set_pending_deletion("set-2", true).await.unwrap());
    assert!(
        !s.set_pending_deletion("set-2", true).await.unwrap(),
        "already pending"
    );
    let state =
        |id: &'static str| async move { s.latest_version(id).await.unwrap().unwrap().state };
    assert_eq!(state("set-2").await, VersionState::PendingDeletion);
    assert!(s.set_pending_deletion("set-2", false).await.unwrap());
    assert_eq!(state("set-2").await, VersionState::Current);
    s.set_pending_deletion("set-2", true).await.unwrap();
    s.delete_document("set-2", t0()).await.unwrap();
    assert_eq!(state("set-2").await, VersionState::Deleted);
    assert!(matches!(
        s.set_pending_deletion("nope", true).await,
        Err(StoreError::NotFound(_))
    ));

    // A replacement that names the version it replaces under another set id.
    s.add_version(&version("set-3", "doc-30", b"a", Some(p)), t0())
        .await
        .unwrap();
    let mut moved = version("set-4", "doc-40", b"b", Some(p));
    moved.supersedes = Some("doc-30");
    moved.source_version = Some(2);
    let (v40, _) = s.add_version(&moved, t0()).await.unwrap();
    assert_eq!(v40.source_version, Some(2));
    assert_eq!(state("set-3").await, VersionState::Replaced);
    assert_eq!(state("set-4").await, VersionState::Current);
}

async fn concurrent_filing_files_once(h: &Harness) {
    let stores = [h.store.clone(), h.reopen().await];
    let mut tasks = Vec::new();
    for round in 0..6 {
        for store in &stores {
            for _ in 0..2 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let id = format!("doc-{round}");
                    let v = version("set-c", &id, b"same bytes", None);
                    store.add_version(&v, t0()).await.unwrap().1
                }));
            }
        }
    }
    let mut filed = 0;
    for task in tasks {
        let new = tokio::time::timeout(std::time::Duration::from_secs(120), task)
            .await
            .expect("filing did not finish in time")
            .unwrap();
        filed += usize::from(new);
    }
    assert_eq!(filed, 6, "each version filed exactly once");
    let history = h.store.history("set-c").await.unwrap();
    assert_eq!(history.len(), 6);
    let current = history
        .iter()
        .filter(|v| v.state == VersionState::Current)
        .count();
    assert_eq!(current, 1, "{history:#?}");
}

fn traits(birth_name: &str, birth_date: &str) -> IdentityTraits {
    IdentityTraits {
        birth_name: Some(birth_name.into()),
        first_given_name: Some("Jeanne".into()),
        given_names: Some("Jeanne Marie".into()),
        birth_date: Some(PartialDate::parse_iso(birth_date).unwrap()),
        sex: Some(Sex::F),
        birthplace_code: Some("75056".into()),
    }
}

fn patient(
    birth_name: &str,
    birth_date: &str,
    matricule: &str,
    status: IdentityStatus,
) -> NewPatient {
    NewPatient {
        ins: Some(Ins::new(matricule, "1.2.250.1.213.1.4.10").unwrap()),
        traits: traits(birth_name, birth_date),
        status,
        local_ids: vec![("IPP".into(), format!("ipp-{birth_name}"))],
    }
}

/// A valid test matricule: 13 digits and the key 97 - (n mod 97).
fn matricule(n: u64) -> String {
    let number = 2_800_175_000_000 + n;
    format!("{number}{:02}", 97 - number % 97)
}

async fn patients_and_candidates(h: &Harness) {
    let s = &h.store;
    let dupont = s
        .add_patient(
            &patient("DUPONT", "1980-03-14", &matricule(1), IdentityStatus::Qual),
            t0(),
        )
        .await
        .unwrap();
    let dupond = s
        .add_patient(
            &patient("Dupond", "1980-03-14", &matricule(2), IdentityStatus::Vali),
            t0(),
        )
        .await
        .unwrap();
    let martin = s
        .add_patient(
            &patient("MARTIN", "1980-07-01", &matricule(3), IdentityStatus::Prov),
            t0(),
        )
        .await
        .unwrap();
    let _far = s
        .add_patient(
            &patient("ZOLA", "1950-01-01", &matricule(4), IdentityStatus::Prov),
            t0(),
        )
        .await
        .unwrap();

    let m1 = mss_model::Matricule::parse(&matricule(1)).unwrap();
    let found = s.patient_by_matricule(&m1).await.unwrap().unwrap();
    assert_eq!(found.id, dupont);
    assert_eq!(found.status, IdentityStatus::Qual);
    assert_eq!(found.traits, traits("DUPONT", "1980-03-14"));
    assert_eq!(
        found.local_ids,
        [("IPP".to_owned(), "ipp-DUPONT".to_owned())]
    );
    assert_eq!(
        s.patient_by_local_id("IPP", "ipp-MARTIN")
            .await
            .unwrap()
            .unwrap()
            .id,
        martin
    );

    // The same INS twice, or a local identifier already taken, is refused.
    let err = s
        .add_patient(
            &patient("AUTRE", "1990-01-01", &matricule(1), IdentityStatus::Prov),
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let mut taken = patient("AUTRE", "1990-01-01", &matricule(9), IdentityStatus::Prov);
    taken.local_ids = vec![("IPP".into(), "ipp-MARTIN".into())];
    assert!(matches!(
        s.add_patient(&taken, t0()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        s.patient_by_matricule(&mss_model::Matricule::parse(&matricule(9)).unwrap())
            .await
            .unwrap()
            .is_none(),
        "rolled back"
    );
    assert!(matches!(
        s.add_local_id(dupont, "IPP", "ipp-MARTIN").await,
        Err(StoreError::Invalid(_))
    ));
    s.add_local_id(dupont, "IPP-2", "42").await.unwrap();
    s.add_local_id(dupont, "IPP-2", "42").await.unwrap();

    // A document for "DUPONT" with a typo: both Dupont/Dupond first, Martin (same year) after.
    let wanted = traits("DUPONTT", "1980-03-14");
    let candidates = s.candidates(&wanted, 10).await.unwrap();
    let ids: Vec<i64> = candidates.iter().map(|c| c.patient.id).collect();
    assert_eq!(&ids[..2], [dupont, dupond], "{candidates:#?}");
    assert!(ids.contains(&martin));
    assert!(candidates.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(s.candidates(&wanted, 1).await.unwrap().len(), 1);
    assert!(
        s.candidates(&IdentityTraits::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut update = patient("DUPONT", "1980-03-14", &matricule(1), IdentityStatus::Recup);
    update.ins = None;
    s.update_patient(dupont, &update, t0()).await.unwrap();
    let p = s.patient(dupont).await.unwrap().unwrap();
    assert_eq!((p.ins, p.status), (None, IdentityStatus::Recup));
    assert_eq!(s.patients(0, 10).await.unwrap().len(), 4);
    assert_eq!(s.patients(3, 10).await.unwrap().len(), 1);
    assert!(matches!(
        s.update_patient(9999, &update, t0()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn worklist_states_and_candidates(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s, "bal@hopital.mssante.fr").await;
    let msg = s
        .insert_message(&key(mb, 1, 1), None, b"m", t0())
        .await
        .unwrap()
        .id();
    let item = s.work_item_for(msg, "", t0()).await.unwrap();
    assert_eq!(
        s.work_item_for(msg, "", t0()).await.unwrap(),
        item,
        "one item per message part"
    );
    let doc_item = s.work_item_for(msg, "doc-1", t0()).await.unwrap();
    assert_ne!(doc_item, item);

    let p1 = s
        .add_patient(
            &patient("DUPONT", "1980-03-14", &matricule(1), IdentityStatus::Qual),
            t0(),
        )
        .await
        .unwrap();
    let p2 = s
        .add_patient(
            &patient("DUPOND", "1980-03-14", &matricule(2), IdentityStatus::Qual),
            t0(),
        )
        .await
        .unwrap();
    s.set_candidates(doc_item, &[(p2, 0.9), (p1, 0.8)])
        .await
        .unwrap();
    s.set_candidates(doc_item, &[(p1, 0.95), (p2, 0.9)])
        .await
        .unwrap();
    assert!(matches!(
        s.set_candidates(doc_item, &[(p1, f64::NAN)]).await,
        Err(StoreError::Invalid(_))
    ));
    let code = FailureCode::new(904).unwrap();
    assert!(FailureCode::new(907).is_none() && FailureCode::new(899).is_none());
    s.set_work_state(
        doc_item,
        WorkState::Failed(code),
        Some("Traits d'identité différents"),
        None,
        None,
        t0(),
    )
    .await
    .unwrap();
    s.set_work_state(
        item,
        WorkState::Integrated,
        None,
        Some(p1),
        None,
        t0() + Duration::seconds(1),
    )
    .await
    .unwrap();

    let got = s.work_item(doc_item).await.unwrap().unwrap();
    assert_eq!(got.state, WorkState::Failed(code));
    assert_eq!(got.candidates, [(p1, 0.95), (p2, 0.9)]);
    assert_eq!(got.reason.as_deref(), Some("Traits d'identité différents"));
    let open = s.worklist(true, 10).await.unwrap();
    assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), [doc_item]);
    let all = s.worklist(false, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|i| i.id).collect::<Vec<_>>(),
        [item, doc_item],
        "latest change first"
    );
    assert!(matches!(
        s.set_work_state(9999, WorkState::Proposed, None, None, None, t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn outbox_retry_ordering(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s, "bal@hopital.mssante.fr").await;
    let to = vec!["dr.martin@hopital.mssante.fr".to_owned()];
    let ms = Duration::milliseconds;
    let a = s.enqueue(mb, "<a@x>", &to, b"A", t0()).await.unwrap();
    let b = s
        .enqueue(mb, "<b@x>", &to, b"B", t0() + ms(1))
        .await
        .unwrap();
    let c = s
        .enqueue(mb, "<c@x>", &to, b"C", t0() + ms(2))
        .await
        .unwrap();
    let ids = |items: Vec<mss_store::OutboxItem>| items.iter().map(|i| i.id).collect::<Vec<_>>();

    assert_eq!(
        ids(s.due(t0() + ms(1), 10).await.unwrap()),
        [a, b],
        "not yet due is not listed"
    );
    assert_eq!(ids(s.due(t0() + ms(10), 10).await.unwrap()), [a, b, c]);
    s.mark_failed(a, "421 4.7.0 Try again later", Some(t0() + ms(100)))
        .await
        .unwrap();
    assert_eq!(
        ids(s.due(t0() + ms(10), 10).await.unwrap()),
        [b, c],
        "a waits for its retry time"
    );
    s.mark_sent(b, t0() + ms(11)).await.unwrap();
    assert_eq!(
        ids(s.due(t0() + ms(200), 10).await.unwrap()),
        [c, a],
        "the longest waiting first"
    );
    assert_eq!(ids(s.due(t0() + ms(200), 1).await.unwrap()), [c]);
    s.mark_failed(c, &"5.1.1 unknown ".repeat(500), None)
        .await
        .unwrap();
    assert_eq!(ids(s.due(t0() + ms(200), 10).await.unwrap()), [a]);
    assert_eq!(s.next_due().await.unwrap(), Some(t0() + ms(100)));

    let failed = s.outbox_item(c).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (OutboxState::Failed, 1));
    assert!(failed.last_error.unwrap().len() <= 1000);
    let retried = s.outbox_item(a).await.unwrap().unwrap();
    assert_eq!((retried.state, retried.attempts), (OutboxState::Pending, 1));
    assert_eq!(retried.recipients, to);
    assert_eq!(retried.raw, b"A");
    let sent = s.outbox_item(b).await.unwrap().unwrap();
    assert_eq!(
        (sent.state, sent.sent),
        (OutboxState::Sent, Some(t0() + ms(11)))
    );
    // A message sent or given up on is not tried again.
    assert!(matches!(
        s.mark_sent(c, t0()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.mark_failed(b, "x", None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.mark_sent(9999, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.enqueue(mb, "<d@x>", &[], b"D", t0()).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn notifications_read_and_unread(h: &Harness) {
    let s = &h.store;
    let n = |text| NewNotification {
        kind: NotificationKind::NewDocument,
        patient: None,
        document: None,
        message: None,
        text,
    };
    let first = s
        .notify(&n("Nouveau document pour DUPONT Jeanne"), t0())
        .await
        .unwrap();
    let second = s.notify(&n("Document mis à jour"), t0()).await.unwrap();
    assert_eq!(s.unread_notifications(10).await.unwrap().len(), 2);
    s.mark_read(first, t0() + Duration::seconds(1))
        .await
        .unwrap();
    s.mark_read(first, t0() + Duration::seconds(9))
        .await
        .unwrap();
    let unread = s.unread_notifications(10).await.unwrap();
    assert_eq!(unread.iter().map(|n| n.id).collect::<Vec<_>>(), [second]);
    assert_eq!(unread[0].text, "Document mis à jour");
    assert!(matches!(
        s.mark_read(9999, t0()).await,
        Err(StoreError::NotFound(_))
    ));
}

fn trace(
    at: OffsetDateTime,
    action: &'static str,
    mailbox: Option<&'static str>,
) -> NewTrace<'static> {
    NewTrace {
        at,
        author: "mss",
        action,
        mailbox,
        patient: None,
        document: None,
        message: None,
        request: Some("UID FETCH 1:* (FLAGS)"),
        response: Some("OK"),
        outcome: "ok",
    }
}

async fn five_entries(s: &Store) {
    for i in 0..5 {
        s.append_trace(&trace(
            t0() + Duration::seconds(i),
            "imap.fetch",
            Some("bal@x"),
        ))
        .await
        .unwrap();
    }
    let report = s.verify_traces().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.entries, report.first_seq, report.last_seq),
        (5, 1, 5)
    );
}

async fn exec(s: &Store, sql: &'static str) {
    sqlx::query(sql).execute(s.pool()).await.unwrap();
}

async fn broken_at(s: &Store) -> (i64, String) {
    let report = s.verify_traces().await.unwrap();
    let broken = report.broken.expect("tampering went unnoticed");
    (broken.seq, broken.reason)
}

async fn trace_verify_detects_modification(h: &Harness) {
    let s = &h.store;
    five_entries(s).await;
    exec(s, "UPDATE traces SET outcome = 'refused' WHERE seq = 3").await;
    let (seq, reason) = broken_at(s).await;
    assert_eq!(seq, 3);
    assert!(reason.contains("changed"), "{reason}");
}

async fn trace_verify_detects_deletion(h: &Harness) {
    let s = &h.store;
    five_entries(s).await;
    exec(s, "DELETE FROM traces WHERE seq = 3").await;
    let (seq, reason) = broken_at(s).await;
    assert_eq!(seq, 3);
    assert!(reason.contains("missing"), "{reason}");
}

async fn trace_verify_detects_reordering(h: &Harness) {
    let s = &h.store;
    five_entries(s).await;
    // Swap entries 2 and 3, each keeping its own content and hashes.
    exec(s, "UPDATE traces SET seq = 1000 WHERE seq = 2").await;
    exec(s, "UPDATE traces SET seq = 2 WHERE seq = 3").await;
    exec(s, "UPDATE traces SET seq = 3 WHERE seq = 1000").await;
    let (seq, _) = broken_at(s).await;
    assert_eq!(seq, 2);
}

async fn trace_verify_detects_truncation_and_rechained_forgery(h: &Harness) {
    let s = &h.store;
    five_entries(s).await;
    exec(s, "DELETE FROM traces WHERE seq = 5").await;
    let (seq, reason) = broken_at(s).await;
    assert!(reason.contains("removed from the end"), "{reason}");
    assert_eq!(seq, 5);

    // Rewrite entry 3 and recompute its hash correctly: entry 4 no longer points to it.
    let entries = s.list_traces(&TraceFilter::default()).await.unwrap();
    let e3 = &entries[2];
    let forged = TraceFields {
        seq: 3,
        kind: "entry".into(),
        at_ms: e3.at_ms,
        at: e3.at.clone(),
        author: "someone else".into(),
        action: e3.action.clone(),
        mailbox: e3.mailbox.clone(),
        patient: None,
        document: None,
        message: None,
        request: e3.request.clone(),
        response: e3.response.clone(),
        outcome: e3.outcome.clone(),
    };
    let hash = forged.hash(&e3.prev_hash);
    sqlx::query("UPDATE traces SET author = 'someone else', hash = $1 WHERE seq = 3")
        .bind(hash)
        .execute(s.pool())
        .await
        .unwrap();
    let (seq, reason) = broken_at(s).await;
    assert_eq!(seq, 4, "{reason}");
}

async fn concurrent_appends_keep_one_chain(h: &Harness) {
    // Two stores = two connection pools, as two processes would have.
    let stores = [h.store.clone(), h.reopen().await];
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for task in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    let at = t0() + Duration::milliseconds(i);
                    let mut t = trace(at, "imap.fetch", None);
                    let who = format!("writer-{n}-{task}");
                    t.author = &who;
                    store.append_trace(&t).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(120), task)
            .await
            .expect("appends did not finish in time")
            .unwrap();
    }
    let report = h.store.verify_traces().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.entries, report.last_seq), (120, 120));
    let seqs: Vec<i64> = h
        .store
        .list_traces(&TraceFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

async fn ten_days(s: &Store) {
    for day in 0..10 {
        s.append_trace(&trace(
            t0() + Duration::days(day),
            "document.integrated",
            None,
        ))
        .await
        .unwrap();
    }
}

async fn retention_pruning_still_verifies(h: &Harness) {
    let s = &h.store;
    ten_days(s).await;
    let now = t0() + Duration::days(10);
    let kept_all = s.apply_trace_retention(0, "admin", now).await.unwrap();
    assert_eq!(kept_all.removed, 0, "zero days keeps everything");
    // Five days of retention at day 10: days 0 to 4 go.
    let report = s.apply_trace_retention(5, "admin", now).await.unwrap();
    assert_eq!((report.removed, report.checkpoint_seq), (5, Some(11)));
    let v = s.verify_traces().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.entries, v.first_seq, v.last_seq), (6, 6, 11));
    let kept = s.list_traces(&TraceFilter::default()).await.unwrap();
    assert_eq!(kept.first().unwrap().seq, 6);
    assert_eq!(kept.last().unwrap().kind, TraceKind::Checkpoint);

    // Nothing old enough: nothing removed, no checkpoint.
    let none = s
        .prune_traces(t0() + Duration::days(5), "admin", now)
        .await
        .unwrap();
    assert_eq!((none.removed, none.checkpoint_seq), (0, None));

    // Pruning again, past the first checkpoint, and appending after it.
    let report = s
        .prune_traces(t0() + Duration::days(8), "admin", now)
        .await
        .unwrap();
    assert_eq!(report.removed, 3);
    s.append_trace(&trace(now, "trace.listed", None))
        .await
        .unwrap();
    let v = s.verify_traces().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.first_seq, 9);

    // Removing the oldest kept entry and moving the anchor to hide it is detected: the
    // checkpoint in the chain says where it starts.
    let e9_hash: String = sqlx::query_scalar("SELECT hash FROM traces WHERE seq = 9")
        .fetch_one(s.pool())
        .await
        .unwrap();
    exec(s, "DELETE FROM traces WHERE seq = 9").await;
    sqlx::query("UPDATE trace_head SET anchor_seq = 10, anchor_hash = $1")
        .bind(e9_hash)
        .execute(s.pool())
        .await
        .unwrap();
    let (seq, reason) = broken_at(s).await;
    assert_eq!(seq, 10);
    assert!(reason.contains("removed from the start"), "{reason}");
}

async fn pruning_refuses_a_tampered_journal(h: &Harness) {
    let s = &h.store;
    ten_days(s).await;
    exec(
        s,
        "UPDATE traces SET action = 'document.deleted' WHERE seq = 2",
    )
    .await;
    let err = s
        .prune_traces(t0() + Duration::days(5), "admin", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("trace entry 2"), "{err}");
    assert_eq!(
        s.list_traces(&TraceFilter::default()).await.unwrap().len(),
        10,
        "nothing pruned"
    );
}

async fn trace_list_filters(h: &Harness) {
    let s = &h.store;
    let mk = |day: i64,
              mailbox: &'static str,
              patient: Option<&'static str>,
              document: Option<&'static str>| NewTrace {
        patient,
        document,
        ..trace(
            t0() + Duration::days(day),
            "document.integrated",
            Some(mailbox),
        )
    };
    s.append_trace(&mk(0, "a@x", Some("P1"), Some("D1")))
        .await
        .unwrap();
    s.append_trace(&mk(1, "b@x", Some("P1"), Some("D2")))
        .await
        .unwrap();
    s.append_trace(&mk(2, "a@x", Some("P2"), Some("D3")))
        .await
        .unwrap();
    s.append_trace(&mk(3, "a@x", None, None)).await.unwrap();
    let seqs = |f: TraceFilter| async move {
        s.list_traces(&f)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    let text = |v: &str| Some(v.to_owned());
    assert_eq!(
        seqs(TraceFilter {
            mailbox: text("a@x"),
            ..Default::default()
        })
        .await,
        [1, 3, 4]
    );
    assert_eq!(
        seqs(TraceFilter {
            patient: text("P1"),
            ..Default::default()
        })
        .await,
        [1, 2]
    );
    assert_eq!(
        seqs(TraceFilter {
            document: text("D3"),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        seqs(TraceFilter {
            since: Some(t0() + Duration::days(1)),
            until: Some(t0() + Duration::days(3)),
            ..Default::default()
        })
        .await,
        [2, 3]
    );
    assert_eq!(
        seqs(TraceFilter {
            mailbox: text("a@x"),
            patient: text("P2"),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        seqs(TraceFilter {
            after_seq: Some(1),
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [2, 3]
    );
    assert_eq!(
        seqs(TraceFilter {
            mailbox: text("' OR 1=1 --"),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    let entry = &s
        .list_traces(&TraceFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(
        entry.at, "2025-11-26T01:00:00+01:00",
        "local time with its offset"
    );
    let json = serde_json::to_value(entry).unwrap();
    assert_eq!(json["kind"], "entry");
    assert_eq!(json["hash"].as_str().unwrap().len(), 64);
}

async fn traces_mask_tokens(h: &Harness) {
    let s = &h.store;
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let request = format!("AUTHENTICATE OAUTHBEARER {token}");
    let response = format!("Authorization: Bearer {token}");
    let entry = s
        .append_trace(&NewTrace {
            request: Some(&request),
            response: Some(&response),
            ..trace(t0(), "imap.authenticate", Some("bal@x"))
        })
        .await
        .unwrap();
    for stored in [entry.request.unwrap(), entry.response.unwrap()] {
        assert!(!stored.contains("eyJ"), "{stored}");
        assert!(stored.contains("[masqué]"), "{stored}");
    }
    let all: String = s
        .list_traces(&TraceFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    assert!(!all.contains("c2lnbmF0dXJl"));
    assert!(s.verify_traces().await.unwrap().is_intact());
    let empty = NewTrace {
        author: " ",
        ..trace(t0(), "x", None)
    };
    assert!(matches!(
        s.append_trace(&empty).await,
        Err(StoreError::Invalid(_))
    ));
}
