//! The outbox: `mss outbox` (list, retry, cancel, sent documents, reports), and the
//! submission of one queued item, which `mss send` and `mss run` share.
//!
//! An item is claimed in the store before it is submitted (one conditional UPDATE, see
//! mss-store's outbox module), so `mss send` and `mss run` working at once never both
//! submit it. A temporary failure (network, 4xx, token) puts it back with its error and
//! the time of its next attempt; a permanent refusal (5xx) fails it.

use super::inbox::{now_local, open_store, runtime};
use super::print_json;
use crate::cli::{OutboxArgs, OutboxCommand};
use crate::config::Config;
use crate::operator::PscTokens;
use anyhow::Result;
use mss_store::{NewTrace, OutboxItem, OutboxKind, Store, delivery_by_recipient, envelope_id};
use mss_transport::TransportError;
use mss_transport::client::BalClient;
use mss_transport::smtp::{Dsn, Envelope};
use serde::Serialize;
use std::path::Path;
use time::OffsetDateTime;

/// How long a claim lasts: far longer than a submission may take ([`SUBMIT_TIMEOUT`]),
/// so a claim only runs out when its process died.
pub const LEASE: time::Duration = time::Duration::minutes(10);
/// Longest wait for one submission, retries of the transport included.
const SUBMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);
/// After this many failed attempts an item is given up (it stays listed; `mss outbox
/// retry` gives it a new series).
pub const MAX_ATTEMPTS: u32 = 8;

/// The message is not sent yet but safely queued: `mss send` exits with
/// [`Queued::EXIT_CODE`] instead of the failure code.
#[derive(Debug)]
pub struct Queued {
    pub id: i64,
    pub reason: String,
    pub next_attempt: Option<OffsetDateTime>,
}

impl Queued {
    /// `EX_TEMPFAIL` of sysexits.h: "try again later".
    pub const EXIT_CODE: u8 = 75;
}

impl std::fmt::Display for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not sent yet ({}): the message waits in the outbox as item {}; `mss run` sends it{} — see `mss outbox`",
            self.reason,
            self.id,
            self.next_attempt
                .map(|at| format!(" from {}", shown_time(at)))
                .unwrap_or_default()
        )
    }
}

impl std::error::Error for Queued {}

/// What one attempt gave.
#[derive(Debug)]
pub enum Attempt {
    Sent {
        reply: String,
        dsn_honoured: bool,
        /// The folder the copy went to; `None` if the copy failed (the message went).
        sent_copy: Option<String>,
    },
    /// A temporary failure: tried again at `at`, or given up after [`MAX_ATTEMPTS`].
    Retry {
        error: String,
        at: Option<OffsetDateTime>,
    },
    /// A permanent refusal: given up.
    Failed { error: String },
    /// Another process holds it, or it is no longer due: nothing done.
    NotClaimed,
}

/// When to try again after `attempts` failed attempts: 5 min, 10, 20… at most 4 h;
/// `None` once [`MAX_ATTEMPTS`] is reached.
pub fn retry_at(now: OffsetDateTime, attempts: u32) -> Option<OffsetDateTime> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let minutes = 5i64 << attempts.saturating_sub(1).min(6);
    Some(now + time::Duration::minutes(minutes.min(240)))
}

/// A refusal that sending again will not change (a 5xx answer, a message too large).
/// Network failures, 4xx answers and refused tokens are temporary.
fn is_permanent(error: &TransportError) -> bool {
    matches!(error, TransportError::Rejected { .. })
}

/// Claims `item` and, when this process got it, submits it.
pub async fn claim_and_send(
    store: &Store,
    client: &BalClient<PscTokens>,
    from: &str,
    item: &OutboxItem,
) -> Result<Attempt> {
    let now = now_local();
    if !store.claim(item.id, now, now + LEASE).await? {
        return Ok(Attempt::NotClaimed);
    }
    send_claimed(store, client, from, item).await
}

/// Records an attempt that could not even start (no PSC session, servers not found) on a
/// claimed item, as a temporary failure.
pub async fn record_unreached(store: &Store, item: &OutboxItem, error: &str) -> Result<Attempt> {
    let at = retry_at(now_local(), item.attempts + 1);
    store.mark_failed(item.id, error, at).await?;
    Ok(Attempt::Retry {
        error: error.to_owned(),
        at,
    })
}

fn action(item: &OutboxItem) -> &'static str {
    match item.kind {
        OutboxKind::Message => "message.sent",
        OutboxKind::Acknowledgement => "ack.sent",
    }
}

/// Submits a claimed item, with a copy in Sent, and records the outcome.
async fn send_claimed(
    store: &Store,
    client: &BalClient<PscTokens>,
    from: &str,
    item: &OutboxItem,
) -> Result<Attempt> {
    let mut envelope = Envelope::new(from.to_owned(), item.recipients.clone());
    if let Some(notify) = &item.dsn {
        envelope = envelope.with_dsn(Dsn {
            success: notify.contains("success"),
            failure: notify.contains("failure"),
            delay: notify.contains("delay"),
            full: false,
            envelope_id: Some(envelope_id(item.id, &item.message_id)),
        });
    }
    let attempts = item.attempts + 1;
    let submitted = tokio::time::timeout(SUBMIT_TIMEOUT, client.submit(&envelope, &item.raw)).await;
    let (attempt, outcome, response) = match submitted {
        Ok(Ok(receipt)) => {
            store.mark_sent(item.id, now_local()).await?;
            let sent_copy = match client.append_sent(&item.raw).await {
                Ok(folder) => Some(folder),
                Err(e) => {
                    eprintln!(
                        "mss: warning: {} was sent, but its copy in Sent failed: {e}",
                        item.message_id
                    );
                    None
                }
            };
            let response = receipt.reply.clone();
            (
                Attempt::Sent {
                    reply: receipt.reply,
                    dsn_honoured: receipt.dsn_honoured,
                    sent_copy,
                },
                "ok",
                response,
            )
        }
        Ok(Err(e)) if is_permanent(&e) => {
            let error = e.to_string();
            store.mark_failed(item.id, &error, None).await?;
            (
                Attempt::Failed {
                    error: error.clone(),
                },
                "failure",
                error,
            )
        }
        Ok(Err(e)) => {
            let error = e.to_string();
            let at = retry_at(now_local(), attempts);
            store.mark_failed(item.id, &error, at).await?;
            (
                Attempt::Retry {
                    error: error.clone(),
                    at,
                },
                "failure",
                error,
            )
        }
        Err(_) => {
            // The server may have taken the message without our hearing it: the one
            // case where a retry can send it twice.
            let error = format!(
                "no answer from the server within {} s",
                SUBMIT_TIMEOUT.as_secs()
            );
            let at = retry_at(now_local(), attempts);
            store.mark_failed(item.id, &error, at).await?;
            (
                Attempt::Retry {
                    error: error.clone(),
                    at,
                },
                "failure",
                error,
            )
        }
    };
    store
        .append_trace(&NewTrace {
            at: now_local(),
            author: "mss",
            action: action(item),
            mailbox: Some(from),
            patient: None,
            document: None,
            message: Some(item.message_id.as_str()),
            request: Some(
                format!(
                    "outbox={} attempt={attempts} to={}",
                    item.id,
                    item.recipients.join(",")
                )
                .as_str(),
            ),
            response: Some(response.as_str()),
            outcome,
        })
        .await?;
    Ok(attempt)
}

/// `YYYY-MM-DD HH:MM` in the time's own offset.
pub fn shown_time(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

#[derive(Serialize)]
struct DeliveryJson {
    recipient: String,
    state: &'static str,
    status: Option<String>,
    detail: Option<String>,
    at: i64,
}

#[derive(Serialize)]
struct ItemJson {
    id: i64,
    kind: &'static str,
    state: &'static str,
    mailbox: Option<String>,
    message_id: String,
    subject: Option<String>,
    recipients: Vec<String>,
    attempts: u32,
    last_error: Option<String>,
    /// Unix seconds; only while queued.
    next_attempt: Option<i64>,
    created: i64,
    sent: Option<i64>,
    /// What the reports received say, per recipient (none yet: empty).
    delivery: Vec<DeliveryJson>,
}

#[derive(Serialize)]
struct SentDocumentJson {
    document_id: String,
    set_id: String,
    version: Option<u32>,
    action: &'static str,
    replaces: Option<String>,
    patient_ins: Option<String>,
    title: Option<String>,
    recipients: Vec<String>,
    outbox: i64,
    outbox_state: &'static str,
    created: i64,
}

#[derive(Serialize)]
struct ReportJson {
    id: i64,
    kind: &'static str,
    outbox: Option<i64>,
    original_message_id: Option<String>,
    recipient: String,
    state: &'static str,
    status: Option<String>,
    detail: Option<String>,
    received: i64,
}

pub fn run(config: &Path, args: OutboxArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let result = match &args.command {
            Some(OutboxCommand::Retry(item)) => {
                store.retry_outbox(item.id, now_local()).await?;
                trace_person(&store, "outbox.retry", item.id, &item.author.author).await?;
                println!(
                    "item {} will be sent at the next pass of `mss run`",
                    item.id
                );
                Ok(())
            }
            Some(OutboxCommand::Cancel(item)) => {
                store.cancel_outbox(item.id).await?;
                trace_person(&store, "outbox.cancelled", item.id, &item.author.author).await?;
                println!("item {} is cancelled: it will not be sent", item.id);
                Ok(())
            }
            None if args.documents => documents(&store, &args).await,
            None if args.reports => reports(&store, &args).await,
            None => list(&store, &args).await,
        };
        store.close().await;
        result
    })
}

async fn trace_person(store: &Store, action: &str, id: i64, author: &str) -> Result<()> {
    let item = store.outbox_item(id).await?;
    store
        .append_trace(&NewTrace {
            at: now_local(),
            author,
            action,
            mailbox: None,
            patient: None,
            document: None,
            message: item.as_ref().map(|i| i.message_id.as_str()),
            request: Some(format!("outbox={id}").as_str()),
            response: None,
            outcome: "ok",
        })
        .await?;
    Ok(())
}

async fn list(store: &Store, args: &OutboxArgs) -> Result<()> {
    let mailboxes = store.mailboxes().await?;
    let mut out = Vec::new();
    for item in store.list_outbox(args.limit).await? {
        let delivery = delivery_by_recipient(&store.reports_for(item.id).await?)
            .into_iter()
            .map(|d| DeliveryJson {
                recipient: d.recipient,
                state: d.state.code(),
                status: d.status,
                detail: d.detail,
                at: d.at.unix_timestamp(),
            })
            .collect();
        let queued = matches!(item.state, mss_store::OutboxState::Pending);
        out.push(ItemJson {
            id: item.id,
            kind: item.kind.code(),
            state: item.state.code(),
            mailbox: mailboxes
                .iter()
                .find(|m| m.id == item.mailbox)
                .map(|m| m.address.as_str().to_owned()),
            message_id: item.message_id,
            subject: item.subject,
            recipients: item.recipients,
            attempts: item.attempts,
            last_error: item.last_error,
            next_attempt: queued.then(|| item.next_attempt.unix_timestamp()),
            created: item.created.unix_timestamp(),
            sent: item.sent.map(|t| t.unix_timestamp()),
            delivery,
        });
    }
    if args.json {
        return print_json(&out);
    }
    if out.is_empty() {
        println!("the outbox is empty");
    }
    let offset = now_local().offset();
    for i in &out {
        let at = |secs: i64| {
            OffsetDateTime::from_unix_timestamp(secs)
                .map(|t| shown_time(t.to_offset(offset)))
                .unwrap_or_default()
        };
        println!(
            "{:>5}  {:<9} {:<15} {}  {}",
            i.id,
            i.state,
            i.kind,
            i.recipients.join(", "),
            i.subject.as_deref().unwrap_or("")
        );
        if let Some(error) = &i.last_error
            && i.state != "sent"
        {
            println!("       {} attempt(s), last error: {error}", i.attempts);
        }
        if let Some(next) = i.next_attempt {
            println!("       next attempt: {}", at(next));
        }
        for d in &i.delivery {
            println!(
                "       {} → {}{}",
                d.recipient,
                d.state,
                [d.status.as_deref(), d.detail.as_deref()]
                    .into_iter()
                    .flatten()
                    .fold(String::new(), |acc, s| acc + " " + s)
            );
        }
    }
    Ok(())
}

async fn documents(store: &Store, args: &OutboxArgs) -> Result<()> {
    let out: Vec<SentDocumentJson> = store
        .sent_documents(args.limit)
        .await?
        .into_iter()
        .map(|d| SentDocumentJson {
            document_id: d.document_id,
            set_id: d.set_id,
            version: d.version,
            action: d.action.code(),
            replaces: d.replaces,
            patient_ins: d.patient_ins,
            title: d.title,
            recipients: d.recipients,
            outbox: d.outbox,
            outbox_state: d.outbox_state.code(),
            created: d.created.unix_timestamp(),
        })
        .collect();
    if args.json {
        return print_json(&out);
    }
    for d in &out {
        println!(
            "{}  v{}  {:<7} {}  INS {}  ({} , item {})",
            d.set_id,
            d.version.map_or("?".into(), |v| v.to_string()),
            d.action,
            d.title.as_deref().unwrap_or("sans titre"),
            d.patient_ins.as_deref().unwrap_or("-"),
            d.outbox_state,
            d.outbox
        );
    }
    Ok(())
}

async fn reports(store: &Store, args: &OutboxArgs) -> Result<()> {
    let out: Vec<ReportJson> = store
        .list_reports(false, args.limit)
        .await?
        .into_iter()
        .map(|r| ReportJson {
            id: r.id,
            kind: r.kind.code(),
            outbox: r.outbox,
            original_message_id: r.original_message_id,
            recipient: r.recipient,
            state: r.state.code(),
            status: r.status,
            detail: r.detail,
            received: r.received.unix_timestamp(),
        })
        .collect();
    if args.json {
        return print_json(&out);
    }
    for r in &out {
        println!(
            "{} {} → {} {}  ({})",
            r.kind,
            r.recipient,
            r.state,
            r.status.as_deref().unwrap_or(""),
            r.outbox
                .map(|o| format!("item {o}"))
                .unwrap_or_else(|| "message inconnu".into())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_then_stop() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let minutes = |n| (retry_at(now, n).unwrap() - now).whole_minutes();
        assert_eq!(
            (1..MAX_ATTEMPTS).map(minutes).collect::<Vec<_>>(),
            [5, 10, 20, 40, 80, 160, 240]
        );
        assert_eq!(retry_at(now, MAX_ATTEMPTS), None);
    }

    #[test]
    fn only_refusals_are_permanent() {
        let host = || "smtp.op".to_owned();
        assert!(is_permanent(&TransportError::Rejected {
            host: host(),
            detail: "550 5.1.1".into()
        }));
        for temporary in [
            TransportError::Network {
                host: host(),
                detail: "refused".into(),
            },
            TransportError::TokenRefused {
                host: host(),
                detail: "535".into(),
            },
            TransportError::PscSessionOver,
        ] {
            assert!(!is_permanent(&temporary), "{temporary}");
        }
    }
}
