//! The outbox as two processes see it, delivery reports and sent documents: every
//! scenario runs on SQLite (a temporary file) and on a private PostgreSQL (skipped when
//! PostgreSQL is not installed, a failure under `MSS_REQUIRE_SERVERS=1`).

use mss_model::MssAddress;
use mss_store::{
    DeliveryState, Enqueued, MailboxKind, MessageKey, NewOutboxItem, NewReport, NewSentDocument,
    OutboxKind, OutboxState, ReportKind, SentAction, Store, StoreError, delivery_by_recipient,
};
use mss_testkit::postgres::Postgres;
use time::{Duration, OffsetDateTime};

struct Harness {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/mss.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        Harness {
            store,
            url,
            _dir: Some(dir),
        }
    }

    async fn postgres(pg: &Postgres, name: &str) -> Harness {
        let url = pg.create_database(name);
        let store = Store::open(&url).await.unwrap();
        Harness {
            store,
            url,
            _dir: None,
        }
    }

    /// What another process would have: its own pool on the same database.
    async fn other_process(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = super::Harness::sqlite().await;
                    super::$name(&h).await;
                }
            )*
        }
        mod postgres {
            /// One server, one database per scenario; every scenario runs even when one fails.
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
                        let h = super::Harness::postgres(&server, concat!("outbox_", stringify!($name))).await;
                        super::$name(&h).await;
                        h.store.close().await;
                    });
                    if let Err(e) = run.await {
                        eprintln!("postgres scenario {} failed: {e}", stringify!($name));
                        failed.push(stringify!($name));
                    }
                )*
                assert!(failed.is_empty(), "failed on PostgreSQL: {failed:?}");
            }
        }
    };
}

on_both_backends!(
    claiming_sends_each_item_once,
    an_expired_lease_returns_the_item,
    same_message_id_queues_once,
    cancel_and_retry,
    reports_rank_per_recipient,
    sent_documents_history,
);

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_115_200).unwrap()
}

async fn mailbox(store: &Store) -> i64 {
    store
        .ensure_mailbox(
            &MssAddress::parse("bal@hopital.mssante.fr").unwrap(),
            MailboxKind::Per,
            t0(),
        )
        .await
        .unwrap()
        .id
}

fn to() -> Vec<String> {
    vec![
        "dr.martin@hopital.mssante.fr".to_owned(),
        "185057505612388@patient.mssante.fr".to_owned(),
    ]
}

fn message<'a>(mb: i64, id: &'a str, recipients: &'a [String]) -> NewOutboxItem<'a> {
    NewOutboxItem {
        mailbox: mb,
        kind: OutboxKind::Message,
        message_id: id,
        subject: Some("Compte rendu"),
        recipients,
        raw: b"raw bytes",
        dsn: Some("failure,delay"),
    }
}

/// Two processes race to claim every due item: each item is claimed by exactly one.
async fn claiming_sends_each_item_once(h: &Harness) {
    let a = &h.store;
    let b = h.other_process().await;
    let mb = mailbox(a).await;
    let to = to();
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = format!("m{n}@hopital.mssante.fr");
        ids.push(
            a.enqueue_item(&message(mb, &id, &to), t0())
                .await
                .unwrap()
                .id(),
        );
    }
    let lease = t0() + Duration::minutes(10);
    let claims = |store: Store, ids: Vec<i64>| async move {
        let mut won = Vec::new();
        for id in ids {
            if store.claim(id, t0(), lease).await.unwrap() {
                won.push(id);
            }
        }
        won
    };
    let (x, y) = tokio::join!(
        tokio::spawn(claims(a.clone(), ids.clone())),
        tokio::spawn(claims(b.clone(), ids.iter().rev().copied().collect()))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), ids.len(), "{x:?} {y:?}");
    assert!(
        x.iter().all(|id| !y.contains(id)),
        "claimed twice: {x:?} {y:?}"
    );

    let item = a.outbox_item(ids[0]).await.unwrap().unwrap();
    assert_eq!(item.state, OutboxState::Sending);
    assert_eq!(item.attempts, 1);
    assert_eq!(item.lease_until, Some(lease));
    assert_eq!(item.kind, OutboxKind::Message);
    assert_eq!(item.subject.as_deref(), Some("Compte rendu"));
    assert_eq!(item.dsn.as_deref(), Some("failure,delay"));
    // Claimed items are not due again while their lease runs.
    assert!(
        a.due(t0() + Duration::minutes(5), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!a.claim(ids[0], t0(), lease).await.unwrap());
    a.mark_sent(ids[0], t0() + Duration::seconds(2))
        .await
        .unwrap();
    assert!(
        !b.claim(ids[0], t0() + Duration::hours(1), lease)
            .await
            .unwrap()
    );
    let sent = b.outbox_item(ids[0]).await.unwrap().unwrap();
    assert_eq!((sent.state, sent.attempts), (OutboxState::Sent, 1));
    assert_eq!(sent.lease_until, None);
    b.close().await;
}

/// A process that died while sending leaves its claim: once the lease ends, the item is
/// due again and another process can claim it.
async fn an_expired_lease_returns_the_item(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s).await;
    let to = to();
    let id = s
        .enqueue_item(&message(mb, "crash@hopital.mssante.fr", &to), t0())
        .await
        .unwrap()
        .id();
    let lease = t0() + Duration::minutes(10);
    assert!(s.claim(id, t0(), lease).await.unwrap());
    assert_eq!(s.next_due().await.unwrap(), Some(lease));
    let later = lease + Duration::milliseconds(1);
    let due: Vec<i64> = s
        .due(later, 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(due, [id]);
    let other = h.other_process().await;
    assert!(
        other
            .claim(id, later, later + Duration::minutes(10))
            .await
            .unwrap()
    );
    assert!(
        !s.claim(id, later, later + Duration::minutes(10))
            .await
            .unwrap()
    );
    // A temporary failure puts it back with its error and next attempt.
    let retry = later + Duration::minutes(5);
    other
        .mark_failed(id, "421 4.7.0 try again later", Some(retry))
        .await
        .unwrap();
    let item = s.outbox_item(id).await.unwrap().unwrap();
    assert_eq!(item.state, OutboxState::Pending);
    assert_eq!(item.attempts, 2);
    assert_eq!(item.next_attempt, retry);
    assert_eq!(
        item.last_error.as_deref(),
        Some("421 4.7.0 try again later")
    );
    assert!(!s.claim(id, later, retry).await.unwrap(), "not due yet");
    other.close().await;
}

/// One Message-ID, one item: queued again (with or without angle brackets, or by two
/// processes at the same moment), the first item is returned.
async fn same_message_id_queues_once(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s).await;
    let to = vec!["dr.martin@hopital.mssante.fr".to_owned()];
    let first = s
        .enqueue(mb, "<ack.1.abc@hopital.mssante.fr>", &to, b"A", t0())
        .await
        .unwrap();
    let again = s
        .enqueue_item(
            &NewOutboxItem {
                kind: OutboxKind::Acknowledgement,
                ..message(mb, "ack.1.abc@hopital.mssante.fr", &to)
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Existing(first));
    let item = s
        .outbox_by_message_id("<ack.1.abc@hopital.mssante.fr>")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (item.id, item.message_id.as_str()),
        (first, "ack.1.abc@hopital.mssante.fr")
    );

    let other = h.other_process().await;
    for round in 0..10 {
        let id = format!("ack.race{round}@hopital.mssante.fr");
        let (x, y) = tokio::join!(
            {
                let (s, id, to) = (s.clone(), id.clone(), to.clone());
                tokio::spawn(async move { s.enqueue(mb, &id, &to, b"X", t0()).await.unwrap() })
            },
            {
                let (s, id, to) = (other.clone(), id.clone(), to.clone());
                tokio::spawn(async move { s.enqueue(mb, &id, &to, b"Y", t0()).await.unwrap() })
            }
        );
        assert_eq!(x.unwrap(), y.unwrap(), "round {round}");
    }
    let all = s.list_outbox(100).await.unwrap();
    assert_eq!(all.len(), 11);
    assert!(
        all.iter().all(|i| i.raw.is_empty()),
        "listings leave the bytes out"
    );
    assert!(matches!(
        s.enqueue(mb, "<>", &to, b"Z", t0()).await,
        Err(StoreError::Invalid(_))
    ));
    other.close().await;
}

async fn cancel_and_retry(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s).await;
    let to = to();
    let id = s
        .enqueue_item(&message(mb, "c@hopital.mssante.fr", &to), t0())
        .await
        .unwrap()
        .id();
    let lease = t0() + Duration::minutes(10);
    assert!(s.claim(id, t0(), lease).await.unwrap());
    assert!(
        matches!(s.cancel_outbox(id).await, Err(StoreError::Invalid(e)) if e.contains("sending")),
        "an item being sent cannot be withdrawn"
    );
    s.mark_failed(id, "550 5.1.1 unknown", None).await.unwrap();
    assert!(!s.claim(id, t0() + Duration::days(1), lease).await.unwrap());
    s.retry_outbox(id, t0() + Duration::hours(1)).await.unwrap();
    let item = s.outbox_item(id).await.unwrap().unwrap();
    assert_eq!((item.state, item.attempts), (OutboxState::Pending, 0));
    assert_eq!(item.last_error.as_deref(), Some("550 5.1.1 unknown"));
    s.cancel_outbox(id).await.unwrap();
    assert!(
        s.due(t0() + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.outbox_item(id).await.unwrap().unwrap().state,
        OutboxState::Cancelled
    );
    assert!(
        s.claim(id, t0() + Duration::days(1), lease)
            .await
            .is_ok_and(|c| !c)
    );
    s.retry_outbox(id, t0()).await.unwrap();
    assert!(s.claim(id, t0(), lease).await.unwrap());
    s.mark_sent(id, t0()).await.unwrap();
    assert!(matches!(
        s.retry_outbox(id, t0()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.cancel_outbox(id).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.cancel_outbox(9999).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn reports_rank_per_recipient(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s).await;
    let to = to();
    let id = s
        .enqueue_item(&message(mb, "r@hopital.mssante.fr", &to), t0())
        .await
        .unwrap()
        .id();
    let mut report_messages = Vec::new();
    for uid in 1..=4 {
        let key = MessageKey {
            mailbox_id: mb,
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid,
        };
        let m = s
            .insert_message(&key, Some(&format!("<rep{uid}@op>")), b"report", t0())
            .await
            .unwrap();
        report_messages.push(m.id());
    }
    let report = |message, outbox, recipient, state, status| NewReport {
        report_message: message,
        outbox,
        kind: ReportKind::Dsn,
        original_message_id: Some("r@hopital.mssante.fr"),
        envelope_id: None,
        recipient,
        state,
        status,
        detail: None,
    };
    let patient = "185057505612388@patient.mssante.fr";
    let doctor = "Dr.Martin@hopital.mssante.fr";
    let at = |m| t0() + Duration::seconds(m);
    assert!(
        s.record_report(
            &report(
                report_messages[0],
                Some(id),
                doctor,
                DeliveryState::Delayed,
                Some("4.4.1")
            ),
            at(1)
        )
        .await
        .unwrap()
    );
    assert!(
        s.record_report(
            &report(
                report_messages[1],
                Some(id),
                doctor,
                DeliveryState::Processed,
                None
            ),
            at(2)
        )
        .await
        .unwrap()
    );
    // A later, lesser report does not take a recipient back.
    assert!(
        s.record_report(
            &report(
                report_messages[2],
                Some(id),
                doctor,
                DeliveryState::Delivered,
                Some("2.0.0")
            ),
            at(3)
        )
        .await
        .unwrap()
    );
    assert!(
        s.record_report(
            &report(
                report_messages[2],
                Some(id),
                patient,
                DeliveryState::Failed,
                Some("5.1.1")
            ),
            at(3)
        )
        .await
        .unwrap()
    );
    // The same report read twice counts once.
    assert!(
        !s.record_report(
            &report(
                report_messages[2],
                Some(id),
                patient,
                DeliveryState::Failed,
                Some("5.1.1")
            ),
            at(4)
        )
        .await
        .unwrap()
    );
    // A report about nothing we sent is kept.
    assert!(
        s.record_report(
            &report(
                report_messages[3],
                None,
                "x@ailleurs.mssante.fr",
                DeliveryState::Failed,
                None
            ),
            at(5)
        )
        .await
        .unwrap()
    );

    let reports = s.reports_for(id).await.unwrap();
    assert_eq!(reports.len(), 4);
    let by = delivery_by_recipient(&reports);
    assert_eq!(by.len(), 2, "{by:?}");
    let d = by
        .iter()
        .find(|d| d.recipient == doctor.to_ascii_lowercase())
        .unwrap();
    assert_eq!(d.state, DeliveryState::Processed);
    let p = by.iter().find(|d| d.recipient == patient).unwrap();
    assert_eq!(
        (p.state, p.status.as_deref()),
        (DeliveryState::Failed, Some("5.1.1"))
    );
    let unlinked = s.list_reports(true, 10).await.unwrap();
    assert_eq!(unlinked.len(), 1);
    assert_eq!(unlinked[0].recipient, "x@ailleurs.mssante.fr");
    assert_eq!(s.list_reports(false, 10).await.unwrap().len(), 5);
}

async fn sent_documents_history(h: &Harness) {
    let s = &h.store;
    let mb = mailbox(s).await;
    let to = to();
    let send = |n: u32| format!("doc{n}@hopital.mssante.fr");
    let (m1, m2, m3) = (send(1), send(2), send(3));
    let o1 = s
        .enqueue_item(&message(mb, &m1, &to), t0())
        .await
        .unwrap()
        .id();
    let o2 = s
        .enqueue_item(&message(mb, &m2, &to), t0())
        .await
        .unwrap()
        .id();
    let o3 = s
        .enqueue_item(&message(mb, &m3, &to), t0())
        .await
        .unwrap()
        .id();
    let doc = |outbox, id, version, action, replaces| NewSentDocument {
        outbox,
        document_id: id,
        set_id: "1.2.250.1^set",
        version: Some(version),
        action,
        replaces,
        patient_ins: Some("185057505612388"),
        title: Some("CR"),
        recipients: &to,
    };
    s.record_sent_document(&doc(o1, "1.2.250.1^v1", 1, SentAction::New, None), t0())
        .await
        .unwrap();
    s.record_sent_document(&doc(o1, "1.2.250.1^v1", 1, SentAction::New, None), t0())
        .await
        .unwrap();
    s.record_sent_document(
        &doc(
            o2,
            "1.2.250.1^v2",
            2,
            SentAction::Replace,
            Some("1.2.250.1^v1"),
        ),
        t0(),
    )
    .await
    .unwrap();
    s.record_sent_document(
        &doc(
            o3,
            "1.2.250.1^v3",
            3,
            SentAction::Replace,
            Some("1.2.250.1^v2"),
        ),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(s.sent_documents(10).await.unwrap().len(), 3);
    // A message given up on does not count as sent.
    assert!(
        s.claim(o3, t0(), t0() + Duration::minutes(1))
            .await
            .unwrap()
    );
    s.mark_failed(o3, "550 refused", None).await.unwrap();
    let history = s.sent_history("1.2.250.1^v1").await.unwrap();
    let ids: Vec<&str> = history.iter().map(|d| d.document_id.as_str()).collect();
    assert_eq!(ids, ["1.2.250.1^v1", "1.2.250.1^v2"]);
    assert_eq!(history[1].action, SentAction::Replace);
    assert_eq!(history[1].outbox_state, OutboxState::Pending);
    assert_eq!(history[0].patient_ins.as_deref(), Some("185057505612388"));
    assert!(s.sent_history("1.2.250.1^other").await.unwrap().is_empty());
}
