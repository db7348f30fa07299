//! The shell against a real store: messages built by mss-docs go in, the store holds
//! what the decisions say, and nothing files twice. Every scenario runs on SQLite (one
//! test each) and on a private PostgreSQL (one test running them all; skipped when
//! PostgreSQL is not installed, a failure under `MSS_REQUIRE_SERVERS=1`).

mod support;

use mss_docs::xdm::Action as XdmAction;
use mss_engine::shell::{Incoming, Outcome, Shell, ShellConfig};
use mss_model::{IdentityStatus, Ins, MssAddress};
use mss_store::{
    MailboxKind, MessageKey, NewPatient, NotificationKind, Store, VersionState, WorkState,
};
use support::*;
use time::OffsetDateTime;

struct Bench {
    _dir: Option<tempfile::TempDir>,
    url: String,
    shell: Shell,
    bal: MssAddress,
}

fn config(auto_delete: bool) -> ShellConfig {
    let mut options = options();
    options.auto_delete = auto_delete;
    ShellConfig {
        options,
        reporting_ua: "mss test".into(),
        nil: Some("NIL-TEST".into()),
    }
}

/// A bench on SQLite in a temporary directory.
async fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("mss.db").display());
    bench_at(url, Some(dir)).await
}

/// A bench on the store at `url` (`dir` keeps a SQLite file alive).
async fn bench_at(url: String, dir: Option<tempfile::TempDir>) -> Bench {
    let store = Store::open(&url).await.unwrap();
    Bench {
        _dir: dir,
        url,
        shell: Shell::new(store, config(false)),
        bal: MssAddress::parse("dpi@clinique.mssante.fr").unwrap(),
    }
}

/// One SQLite test per scenario, and one PostgreSQL test running them all on one
/// server, each in its own database (initdb costs seconds of CPU: once is enough).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::bench().await).await;
                }
            )*
        }
        mod postgres {
            use mss_testkit::postgres::Postgres;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_scenario() {
                let Some(pg) = tokio::task::spawn_blocking(Postgres::start_or_skip).await.unwrap() else {
                    return;
                };
                let mut failed = Vec::new();
                // Numbered databases: some scenario names exceed PostgreSQL's 63 bytes.
                let mut n = 0;
                $(
                    n += 1;
                    let url = pg.create_database(&format!("shell_{n}"));
                    let run = tokio::spawn(async move {
                        let b = super::bench_at(url, None).await;
                        super::$name(b).await;
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
    a_qualified_exact_match_is_filed_notified_traced_and_acknowledged,
    a_validated_patient_is_proposed_with_candidates_then_attached_by_a_person,
    a_replacement_keeps_the_history,
    a_deletion_asks_a_person_then_applies_and_answers,
    a_refused_deletion_keeps_the_document,
    the_same_message_twice_files_once_and_answers_once,
    a_message_stored_before_a_crash_is_decided_at_the_next_pass,
    broken_input_stays_in_the_worklist_with_its_code,
    automatic_deletion_when_configured,
    a_crash_after_the_answer_was_queued_does_not_answer_twice,
    two_processes_deciding_the_same_message_at_once_file_it_once,
);

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_115_200).unwrap()
}

impl Bench {
    fn store(&self) -> &Store {
        self.shell.store()
    }

    async fn patient(&self, status: IdentityStatus) -> i64 {
        self.store()
            .add_patient(
                &NewPatient {
                    ins: Some(Ins::new(INS, OID_TEST).unwrap()),
                    traits: traits(),
                    status,
                    local_ids: vec![],
                },
                now(),
            )
            .await
            .unwrap()
    }

    async fn receive(&self, uid: u32, raw: &[u8]) -> Outcome {
        self.shell
            .receive(
                &Incoming {
                    mailbox: &self.bal,
                    kind: MailboxKind::App,
                    folder: "INBOX",
                    uidvalidity: 7,
                    uid,
                    raw,
                },
                now(),
            )
            .await
            .unwrap()
    }

    async fn actions(&self) -> Vec<String> {
        self.store()
            .list_traces(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.action)
            .collect()
    }

    async fn outbox(&self) -> usize {
        self.store()
            .due(now() + time::Duration::days(1), 100)
            .await
            .unwrap()
            .len()
    }
}

async fn a_qualified_exact_match_is_filed_notified_traced_and_acknowledged(b: Bench) {
    let patient = b.patient(IdentityStatus::Qual).await;
    let raw = message(
        "s1@hopital.mssante.fr",
        &[Doc::new("s.1").xml()],
        None,
        true,
    );
    let out = b.receive(1, &raw).await;
    assert!(out.new && !out.already_decided);
    assert_eq!(out.state, WorkState::Integrated);
    assert_eq!(out.documents.len(), 1);
    assert_eq!(out.documents[0].1, WorkState::Integrated);
    assert_eq!(out.outbox.len(), 1, "the MDN is queued");
    let mdn = b.store().outbox_item(out.outbox[0]).await.unwrap().unwrap();
    assert_eq!(mdn.recipients, ["dr.house@hopital.mssante.fr"]);
    assert!(String::from_utf8_lossy(&mdn.raw).contains("disposition-notification"));
    let docs = b
        .store()
        .documents_of_patient(patient, false)
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].set_id, "1.2.250.1.999.7.9");
    let notes = b.store().unread_notifications(10).await.unwrap();
    assert!(notes.iter().any(|n| n.kind == NotificationKind::NewDocument
        && n.patient == Some(patient)
        && n.document == Some(docs[0].id)));
    let actions = b.actions().await;
    for a in [
        "message.stored",
        "message.classified",
        "document.integrated",
        "ack.queued",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // The decision is found by the document and by the patient.
    let by_doc = b
        .store()
        .list_traces(&mss_store::TraceFilter {
            document: Some("s.1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_doc.iter().any(|t| t.action == "document.integrated"
        && t.patient.as_deref() == Some(patient.to_string().as_str())));
    // No content in the traces: the body text never appears.
    let all = format!(
        "{:?}",
        b.store().list_traces(&Default::default()).await.unwrap()
    );
    assert!(!all.contains("Veuillez trouver"));
    assert!(b.store().verify_traces().await.unwrap().is_intact());
}

async fn a_validated_patient_is_proposed_with_candidates_then_attached_by_a_person(b: Bench) {
    let patient = b.patient(IdentityStatus::Vali).await;
    let raw = message(
        "s2@hopital.mssante.fr",
        &[Doc::new("s.2").xml()],
        None,
        false,
    );
    let out = b.receive(1, &raw).await;
    assert_eq!(out.state, WorkState::Proposed);
    let (item, _) = out.documents[0];
    let work = b.store().work_item(item).await.unwrap().unwrap();
    assert_eq!(work.candidates.first().map(|c| c.0), Some(patient));
    assert!(
        work.reason.as_deref().unwrap().contains("904"),
        "{:?}",
        work.reason
    );
    assert!(
        b.store()
            .documents_of_patient(patient, true)
            .await
            .unwrap()
            .is_empty()
    );
    // Proposal without MDN request: the failure notice is offered, not sent.
    assert!(out.offered.is_some() && out.outbox.is_empty());

    let state = b
        .shell
        .attach(item, patient, "dr.watson", now())
        .await
        .unwrap();
    assert_eq!(state, WorkState::Integrated);
    let work = b.store().work_item(item).await.unwrap().unwrap();
    assert_eq!(work.patient, Some(patient));
    assert_eq!(
        b.store()
            .documents_of_patient(patient, false)
            .await
            .unwrap()
            .len(),
        1
    );
    let traces = b.store().list_traces(&Default::default()).await.unwrap();
    let attached = traces
        .iter()
        .find(|t| t.action == "document.attached")
        .unwrap();
    assert_eq!(attached.author, "dr.watson");
    assert_eq!(
        attached.patient.as_deref(),
        Some(patient.to_string().as_str())
    );
    // Attaching again is refused: the item is no longer proposed.
    assert!(
        b.shell
            .attach(item, patient, "dr.watson", now())
            .await
            .is_err()
    );
}

async fn a_replacement_keeps_the_history(b: Bench) {
    b.patient(IdentityStatus::Qual).await;
    let v1 = Doc::new("r.1");
    b.receive(
        1,
        &message("r1@hopital.mssante.fr", &[v1.xml()], None, false),
    )
    .await;
    let v2 = Doc::new("r.2").version(2, Some("r.1"));
    let out = b
        .receive(
            2,
            &message(
                "r2@hopital.mssante.fr",
                &[v2.xml()],
                Some(XdmAction::Replace),
                false,
            ),
        )
        .await;
    assert_eq!(out.state, WorkState::Replaced);
    let history = b.store().history("1.2.250.1.999.7.9").await.unwrap();
    let states: Vec<_> = history
        .iter()
        .map(|v| (v.version_id.as_str(), v.state))
        .collect();
    assert_eq!(
        states,
        [
            ("r.1", VersionState::Replaced),
            ("r.2", VersionState::Current)
        ]
    );
    assert!(
        b.store()
            .unread_notifications(10)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind == NotificationKind::UpdatedDocument)
    );
}

async fn a_deletion_asks_a_person_then_applies_and_answers(b: Bench) {
    b.patient(IdentityStatus::Qual).await;
    let doc = Doc::new("d.1");
    b.receive(
        1,
        &message("d1@hopital.mssante.fr", &[doc.xml()], None, false),
    )
    .await;
    let out = b
        .receive(
            2,
            &message(
                "d2@hopital.mssante.fr",
                &[doc.xml()],
                Some(XdmAction::Delete),
                true,
            ),
        )
        .await;
    assert_eq!(out.state, WorkState::DeletionToConfirm);
    assert!(out.outbox.is_empty(), "the answer waits for the person");
    let latest = b
        .store()
        .latest_version("1.2.250.1.999.7.9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.state, VersionState::PendingDeletion);
    let (item, _) = out.documents[0];
    let decided = b
        .shell
        .decide_deletion(item, true, "dr.watson", now())
        .await
        .unwrap();
    assert_eq!(decided.state, WorkState::Deleted);
    assert_eq!(decided.outbox.len(), 1, "the deferred MDN is queued");
    let latest = b
        .store()
        .latest_version("1.2.250.1.999.7.9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.state, VersionState::Deleted);
    assert!(
        b.store()
            .document("1.2.250.1.999.7.9")
            .await
            .unwrap()
            .unwrap()
            .deleted
            .is_some()
    );
    assert!(
        b.actions()
            .await
            .iter()
            .any(|a| a == "document.deletion_confirmed")
    );
}

async fn a_refused_deletion_keeps_the_document(b: Bench) {
    b.patient(IdentityStatus::Qual).await;
    let doc = Doc::new("k.1");
    b.receive(
        1,
        &message("k1@hopital.mssante.fr", &[doc.xml()], None, false),
    )
    .await;
    let out = b
        .receive(
            2,
            &message(
                "k2@hopital.mssante.fr",
                &[doc.xml()],
                Some(XdmAction::Delete),
                false,
            ),
        )
        .await;
    let (item, _) = out.documents[0];
    let decided = b
        .shell
        .decide_deletion(item, false, "dr.watson", now())
        .await
        .unwrap();
    assert!(matches!(decided.state, WorkState::Failed(_)));
    let latest = b
        .store()
        .latest_version("1.2.250.1.999.7.9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.state, VersionState::Current);
}

async fn the_same_message_twice_files_once_and_answers_once(b: Bench) {
    let patient = b.patient(IdentityStatus::Qual).await;
    let raw = message(
        "twice@hopital.mssante.fr",
        &[Doc::new("t.1").xml()],
        None,
        true,
    );
    let first = b.receive(1, &raw).await;
    // Same UID (a reconnection), then another UID (a copy): recognised both times.
    let again = b.receive(1, &raw).await;
    let copy = b.receive(9, &raw).await;
    for out in [&again, &copy] {
        assert!(!out.new && out.already_decided);
        assert_eq!(out.message, first.message);
        assert!(out.outbox.is_empty());
    }
    assert_eq!(b.outbox().await, 1);
    assert_eq!(
        b.store().history("1.2.250.1.999.7.9").await.unwrap().len(),
        1
    );

    // Another process on the same database sees it too.
    let other = Shell::new(Store::open(&b.url).await.unwrap(), config(false));
    let out = other
        .receive(
            &Incoming {
                mailbox: &b.bal,
                kind: MailboxKind::App,
                folder: "INBOX",
                uidvalidity: 7,
                uid: 1,
                raw: &raw,
            },
            now(),
        )
        .await
        .unwrap();
    assert!(out.already_decided);
    assert_eq!(
        b.store()
            .documents_of_patient(patient, false)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_message_stored_before_a_crash_is_decided_at_the_next_pass(b: Bench) {
    b.patient(IdentityStatus::Qual).await;
    let raw = message(
        "crash@hopital.mssante.fr",
        &[Doc::new("c.1").xml()],
        None,
        false,
    );
    // The raw bytes and the item were written, then the process died.
    let mailbox = b
        .store()
        .ensure_mailbox(&b.bal, MailboxKind::App, now())
        .await
        .unwrap();
    let key = MessageKey {
        mailbox_id: mailbox.id,
        folder: "INBOX".into(),
        uidvalidity: 7,
        uid: 3,
    };
    let stored = b
        .store()
        .insert_message(&key, Some("<crash@hopital.mssante.fr>"), &raw, now())
        .await
        .unwrap();
    b.store()
        .work_item_for(stored.id(), "", now())
        .await
        .unwrap();
    let out = b.receive(3, &raw).await;
    assert!(!out.new && !out.already_decided);
    assert_eq!(out.state, WorkState::Integrated);
}

async fn broken_input_stays_in_the_worklist_with_its_code(b: Bench) {
    let out = b
        .shell
        .import_xdm(b"PK\x03\x04 not really a zip", "dr.watson", now())
        .await
        .unwrap();
    assert_eq!(
        out.state,
        WorkState::Failed(mss_store::FailureCode::new(906).unwrap())
    );
    let items = b.store().worklist(true, 10).await.unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].reason.is_some());
    // Not a mail message at all: stored raw, failed 906 with its reason.
    let out = b.receive(5, b"\r\n\r\nbody without any header").await;
    assert!(matches!(out.state, WorkState::Failed(_)));
    let stored = b.store().message(out.message).await.unwrap().unwrap();
    assert_eq!(stored.raw, b"\r\n\r\nbody without any header");
    // The same file imported again does nothing more.
    let again = b
        .shell
        .import_xdm(b"PK\x03\x04 not really a zip", "dr.watson", now())
        .await
        .unwrap();
    assert!(again.already_decided);
}

async fn automatic_deletion_when_configured(b: Bench) {
    let shell = Shell::new(b.store().clone(), config(true));
    b.patient(IdentityStatus::Qual).await;
    let doc = Doc::new("a.1");
    b.receive(
        1,
        &message("a1@hopital.mssante.fr", &[doc.xml()], None, false),
    )
    .await;
    let out = shell
        .receive(
            &Incoming {
                mailbox: &b.bal,
                kind: MailboxKind::App,
                folder: "INBOX",
                uidvalidity: 7,
                uid: 2,
                raw: &message(
                    "a2@hopital.mssante.fr",
                    &[doc.xml()],
                    Some(XdmAction::Delete),
                    false,
                ),
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(out.state, WorkState::Deleted);
    let latest = b
        .store()
        .latest_version("1.2.250.1.999.7.9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.state, VersionState::Deleted);
}

async fn a_crash_after_the_answer_was_queued_does_not_answer_twice(b: Bench) {
    b.patient(IdentityStatus::Qual).await;
    let raw = message(
        "late@hopital.mssante.fr",
        &[Doc::new("l.1").xml()],
        None,
        true,
    );
    let first = b.receive(1, &raw).await;
    assert_eq!(first.outbox.len(), 1);
    // The process died before the message was marked decided.
    let item = b
        .store()
        .work_item_for(first.message, "", now())
        .await
        .unwrap();
    b.store()
        .set_work_state(item, WorkState::Received, None, None, None, now())
        .await
        .unwrap();
    let again = b.receive(1, &raw).await;
    assert!(!again.already_decided, "decided again");
    assert!(again.outbox.is_empty(), "{again:?}");
    assert_eq!(b.outbox().await, 1);
    assert_eq!(
        b.store().history("1.2.250.1.999.7.9").await.unwrap().len(),
        1
    );
}

async fn two_processes_deciding_the_same_message_at_once_file_it_once(b: Bench) {
    let patient = b.patient(IdentityStatus::Qual).await;
    let raw = message(
        "race@hopital.mssante.fr",
        &[Doc::new("x.1").xml()],
        None,
        false,
    );
    // Two shells with their own pools, as two `mss run` on one database.
    let other = Shell::new(Store::open(&b.url).await.unwrap(), config(false));
    let incoming = |uid| Incoming {
        mailbox: &b.bal,
        kind: MailboxKind::App,
        folder: "INBOX",
        uidvalidity: 7,
        uid,
        raw: &raw,
    };
    let (a, c) = (incoming(1), incoming(1));
    let (one, two) = tokio::join!(b.shell.receive(&a, now()), other.receive(&c, now()));
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.message, two.message);
    assert_eq!(
        b.store().history("1.2.250.1.999.7.9").await.unwrap().len(),
        1
    );
    assert_eq!(
        b.store()
            .documents_of_patient(patient, false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(b.store().verify_traces().await.unwrap().is_intact());
}

/// Two shells deciding the same message at the same moment, on `url`: one answer queued.
async fn race_for_the_acknowledgement(url: &str) {
    let a = Shell::new(Store::open(url).await.unwrap(), config(false));
    let b = Shell::new(Store::open(url).await.unwrap(), config(false));
    a.store()
        .add_patient(
            &NewPatient {
                ins: Some(Ins::new(INS, OID_TEST).unwrap()),
                traits: traits(),
                status: IdentityStatus::Qual,
                local_ids: vec![],
            },
            now(),
        )
        .await
        .unwrap();
    let bal = MssAddress::parse("dpi@clinique.mssante.fr").unwrap();
    for round in 0..4u32 {
        let raw = message(
            &format!("race{round}@hopital.mssante.fr"),
            &[Doc::new(&format!("r.{round}")).xml()],
            None,
            true,
        );
        let incoming = Incoming {
            mailbox: &bal,
            kind: MailboxKind::App,
            folder: "INBOX",
            uidvalidity: 7,
            uid: round + 1,
            raw: &raw,
        };
        let (one, two) = tokio::join!(a.receive(&incoming, now()), b.receive(&incoming, now()));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(
            one.outbox.len() + two.outbox.len(),
            1,
            "round {round}: {one:?} {two:?}"
        );
    }
    let items = a.store().list_outbox(100).await.unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(
        items
            .iter()
            .all(|i| i.kind == mss_store::OutboxKind::Acknowledgement)
    );
    a.store().close().await;
    b.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shells_on_one_sqlite_file_queue_one_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("mss.db").display());
    race_for_the_acknowledgement(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shells_on_one_postgres_database_queue_one_acknowledgement() {
    let Some(pg) = tokio::task::spawn_blocking(mss_testkit::postgres::Postgres::start_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    race_for_the_acknowledgement(&pg.create_database("shell_ack_race")).await;
}

/// A message we sent, as `mss send` queues it.
async fn sent_message(b: &Bench, message_id: &str, to: &[String]) -> i64 {
    let mailbox = b
        .store()
        .ensure_mailbox(&b.bal, MailboxKind::App, now())
        .await
        .unwrap();
    b.store()
        .enqueue_item(
            &mss_store::NewOutboxItem {
                mailbox: mailbox.id,
                kind: mss_store::OutboxKind::Message,
                message_id,
                subject: Some("CR de biologie"),
                recipients: to,
                raw: b"sent bytes",
                dsn: Some("failure,delay"),
            },
            now(),
        )
        .await
        .unwrap()
        .id()
}

#[tokio::test]
async fn a_failure_mdn_is_linked_to_the_message_we_sent() {
    use mss_docs::mdn::{ErrorCode, MdnOutcome, MdnRequest, build_mdn};
    let b = bench().await;
    let to = vec!["dpi@hopital.mssante.fr".to_owned()];
    let item = sent_message(&b, "<sent-1@clinique.mssante.fr>", &to).await;
    let original = message(
        "sent-1@clinique.mssante.fr",
        &[Doc::new("m.1").xml()],
        None,
        true,
    );
    let mdn = build_mdn(&MdnRequest {
        reporting_bal: "dpi@hopital.mssante.fr",
        reporting_name: None,
        notify: "dpi@clinique.mssante.fr",
        original_recipient: None,
        original_message_id: "sent-1@clinique.mssante.fr",
        original_subject: "CR de biologie",
        original_message: &original,
        outcome: MdnOutcome::Failed(ErrorCode::UnknownPatient),
        reporting_ua: "autre logiciel",
        message_id: "mdn-1@hopital.mssante.fr",
        date: 1_764_000_100,
        nil: Some("NIL-AUTRE"),
    })
    .unwrap();
    let out = b.receive(1, &mdn).await;
    assert!(out.outbox.is_empty(), "a report is never answered");
    let reports = b.store().reports_for(item).await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].recipient, "dpi@hopital.mssante.fr");
    assert_eq!(reports[0].state, mss_store::DeliveryState::Failed);
    assert_eq!(reports[0].status.as_deref(), Some("902"));
    assert!(
        reports[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("patient"),
        "{reports:?}"
    );
    let notes = b.store().unread_notifications(10).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.text.contains("n'a pas pu intégrer") && n.text.contains("CR de biologie")),
        "{notes:?}"
    );
    assert!(b.actions().await.contains(&"report.linked".to_owned()));
    // Seen again (another UID), nothing is recorded twice.
    b.receive(2, &mdn).await;
    assert_eq!(b.store().reports_for(item).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_dsn_links_by_its_envelope_id_and_an_unknown_one_is_kept() {
    let b = bench().await;
    let to = vec!["000000000000000@patient.mssante.fr".to_owned()];
    let item = sent_message(&b, "bounced@clinique.mssante.fr", &to).await;
    let envid = mss_store::envelope_id(item, "bounced@clinique.mssante.fr");
    // No quoted headers: only the ENVID names our message.
    let dsn = |envid: &str, id: &str| {
        format!(
            "From: MAILER-DAEMON@op.mssante.fr\r\nTo: dpi@clinique.mssante.fr\r\nSubject: Undelivered\r\nMessage-ID: <{id}@op>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; op.mssante.fr\r\nOriginal-Envelope-Id: {envid}\r\n\r\nFinal-Recipient: rfc822; 000000000000000@patient.mssante.fr\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 patient inconnu\r\n--b--\r\n"
        )
        .into_bytes()
    };
    b.receive(1, &dsn(&envid, "d1")).await;
    let reports = b.store().reports_for(item).await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].state, mss_store::DeliveryState::Failed);
    assert_eq!(reports[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(reports[0].kind, mss_store::ReportKind::Dsn);
    // An ENVID of ours that does not match the item (another database), and none at all.
    b.receive(2, &dsn(&format!("mss.{item}.000000000000"), "d2"))
        .await;
    b.receive(3, &dsn("theirs-42", "d3")).await;
    assert_eq!(b.store().reports_for(item).await.unwrap().len(), 1);
    let unlinked = b.store().list_reports(true, 10).await.unwrap();
    assert_eq!(unlinked.len(), 2, "kept, not an error: {unlinked:?}");
    let traces = b.store().list_traces(&Default::default()).await.unwrap();
    let linked: Vec<&str> = traces
        .iter()
        .filter(|t| t.action == "report.linked")
        .map(|t| t.outcome.as_str())
        .collect();
    assert_eq!(linked, ["ok", "unlinked", "unlinked"]);
}
