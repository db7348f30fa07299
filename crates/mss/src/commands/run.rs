//! `mss run [--once]`: every configured mailbox is synced, what arrives goes through the
//! engine's shell (stored raw first, decided, filed), and the outbox is drained: the
//! acknowledgements the shell queued and the messages `mss send` could not send at once.
//! Exchanges with the operator are written to the store's trace journal.

use super::inbox::{now_local, open_shell, outcome_json, runtime};
use super::outbox::{Attempt, claim_and_send, shown_time};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::operator::Operator;
use anyhow::{Context, Result, bail};
use mss_engine::shell::{Incoming, Outcome, Shell, open_message};
use mss_model::MssAddress;
use mss_store::{MailboxKind, NewTrace, Store};
use mss_transport::bal::{BalConfig, BalKind};
use mss_transport::imap::{FetchedMessage, SyncState};
use mss_transport::supervisor::RetryPolicy;
use mss_transport::trace::{TraceEvent, TraceSink};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const FOLDER: &str = "INBOX";
/// Messages fetched at once; the next ones are fetched while these are stored, so two
/// such batches may be in memory.
const FETCH_AT_ONCE: usize = 100;
/// Messages stored between two saves of the sync position.
const SAVE_EVERY: usize = 10;
/// Outbox items sent per pass at most (the rest waits for the next pass).
const OUTBOX_BATCH: u32 = 100;
/// While following, how often the outbox is looked at when nothing arrives.
const OUTBOX_POLL: Duration = Duration::from_secs(60);

/// Hands the transport's events to a task that appends them to the store: the transport
/// records synchronously and must never wait on the database.
struct StoreSink(mpsc::UnboundedSender<TraceEvent>);

impl TraceSink for StoreSink {
    fn record(&self, event: TraceEvent) {
        let _ = self.0.send(event);
    }
}

async fn write_traces(store: Store, mut rx: mpsc::UnboundedReceiver<TraceEvent>) {
    while let Some(event) = rx.recv().await {
        let action = serde_json::to_value(event.action)
            .ok()
            .and_then(|v| v.as_str().map(|s| format!("transport.{s}")))
            .unwrap_or_else(|| "transport".into());
        let outcome = match event.outcome {
            mss_transport::trace::Outcome::Success => "ok",
            mss_transport::trace::Outcome::Failure => "failure",
        };
        let entry = NewTrace {
            at: event.at,
            author: "mss",
            action: &action,
            mailbox: Some(event.author.as_str()),
            patient: None,
            document: None,
            message: None,
            request: Some(event.request.as_str()),
            response: Some(event.response.as_str()),
            outcome,
        };
        if let Err(e) = store.append_trace(&entry).await {
            eprintln!("mss: warning: a transport trace could not be written: {e}");
        }
    }
}

fn kind(bal: &BalConfig) -> MailboxKind {
    match bal.kind {
        BalKind::Per => MailboxKind::Per,
        BalKind::Org => MailboxKind::Org,
        BalKind::App => MailboxKind::App,
    }
}

pub fn run(config_path: &Path, args: RunArgs) -> Result<()> {
    let config = Config::load(config_path)?;
    runtime()?.block_on(run_mailboxes(&config, args.once, args.json, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}

/// Everything `mss run` does, inside a runtime the caller owns: `mss demo` runs it beside
/// the sandbox and ends it with `stop` (follow mode only; `once` ends by itself).
pub async fn run_mailboxes(
    config: &Config,
    once: bool,
    json: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if config.bals.is_empty() {
        bail!(
            "no [[bal]] in {}: there is no mailbox to run",
            config.path.display()
        );
    }
    let shell = open_shell(config).await?;
    let store = shell.store().clone();
    let retention = config.store.trace_retention_days;
    if retention > 0 {
        store
            .apply_trace_retention(retention, "mss", now_local())
            .await?;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_traces(store.clone(), rx));
    let sink: Arc<dyn TraceSink> = Arc::new(StoreSink(tx));
    let mut failures = Vec::new();
    if once {
        for bal in &config.bals {
            if let Err(e) = self::once(&shell, config, bal, sink.clone(), json).await {
                eprintln!("mss: {}: {e:#}", bal.address);
                failures.push(bal.address.clone());
            }
        }
    } else {
        let follows = config.bals.iter().map(|bal| {
            let sink = sink.clone();
            let shell = &shell;
            async move {
                let result = follow(shell, config, bal, sink, json).await;
                (bal.address.clone(), result)
            }
        });
        tokio::select! {
            results = futures::future::join_all(follows) => {
                for (address, result) in results {
                    if let Err(e) = result {
                        eprintln!("mss: {address}: {e:#}");
                        failures.push(address);
                    }
                }
            }
            _ = stop => {}
        }
    }
    drop(sink);
    // Every transport trace is written before the store closes.
    let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    store.close().await;
    if !failures.is_empty() {
        bail!(
            "{} mailbox(es) could not be processed: {}; what was fetched is kept and the next run continues",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

struct Bal {
    address: MssAddress,
    kind: MailboxKind,
    mailbox_id: i64,
}

async fn prepare(shell: &Shell, bal: &BalConfig) -> Result<(Bal, SyncState)> {
    let address = MssAddress::parse(&bal.address)
        .map_err(|e| anyhow::anyhow!("mailbox {}: {e}", bal.address))?;
    let kind = kind(bal);
    let mailbox = shell
        .store()
        .ensure_mailbox(&address, kind, now_local())
        .await?;
    let state = match shell.store().sync_state(mailbox.id, FOLDER).await? {
        Some(s) => SyncState {
            uidvalidity: s.uidvalidity,
            last_uid: s.last_uid,
            highest_modseq: s.highest_modseq,
        },
        None => SyncState::default(),
    };
    Ok((
        Bal {
            address,
            kind,
            mailbox_id: mailbox.id,
        },
        state,
    ))
}

async fn save_state(shell: &Shell, bal: &Bal, state: &SyncState) -> Result<()> {
    shell
        .store()
        .save_sync_state(
            bal.mailbox_id,
            &mss_store::SyncState {
                folder: FOLDER.to_owned(),
                uidvalidity: state.uidvalidity,
                last_uid: state.last_uid,
                highest_modseq: state.highest_modseq,
                updated: now_local(),
            },
        )
        .await?;
    Ok(())
}

async fn receive(
    shell: &Shell,
    bal: &Bal,
    uidvalidity: u32,
    uid: u32,
    raw: &[u8],
    json: bool,
) -> Result<()> {
    let outcome = shell
        .receive(
            &Incoming {
                mailbox: &bal.address,
                kind: bal.kind,
                folder: FOLDER,
                uidvalidity,
                uid,
                raw,
            },
            now_local(),
        )
        .await
        .with_context(|| format!("message UID {uid}"))?;
    report(bal, uid, &outcome, json)
}

/// One line per message filed: what became of it.
fn report(bal: &Bal, uid: u32, outcome: &Outcome, json: bool) -> Result<()> {
    let summary = outcome_json(outcome);
    if json {
        let mut line = serde_json::to_value(&summary)?;
        line["mailbox"] = bal.address.as_str().into();
        line["uid"] = uid.into();
        println!("{line}");
    } else {
        println!(
            "{} UID {uid}: {}{}",
            bal.address,
            summary.state,
            summary.code.map(|c| format!(" {c}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// Files a fetched batch in UID order. Each next message is opened (MIME decoding,
/// inflating, hashing) on a blocking thread while the current one is stored and
/// decided; the position is saved every few messages, so a run killed mid-batch does
/// not see the whole batch again at the next start.
async fn file_batch(
    shell: &Shell,
    bal: &Bal,
    messages: Vec<FetchedMessage>,
    mut progress: SyncState,
    json: bool,
) -> Result<()> {
    let options = shell.options();
    let open_later = |message: FetchedMessage| {
        tokio::task::spawn_blocking(move || {
            let opened = open_message(&message.raw, &options);
            (message, opened)
        })
    };
    let mut messages = messages.into_iter();
    let mut next = messages.next().map(open_later);
    let mut n = 0;
    while let Some(opening) = next.take() {
        let (message, opened) = opening.await.context("opening a received message")?;
        next = messages.next().map(open_later);
        let incoming = Incoming {
            mailbox: &bal.address,
            kind: bal.kind,
            folder: FOLDER,
            uidvalidity: progress.uidvalidity,
            uid: message.uid,
            raw: &message.raw,
        };
        let outcome = shell
            .receive_opened(&incoming, opened, now_local())
            .await
            .with_context(|| format!("message UID {}", message.uid))?;
        report(bal, message.uid, &outcome, json)?;
        progress.last_uid = progress.last_uid.max(message.uid);
        n += 1;
        if n % SAVE_EVERY == 0 {
            save_state(shell, bal, &progress).await?;
        }
    }
    Ok(())
}

/// One pass: fetch what is new, file it, send what the shell queued.
async fn once(
    shell: &Shell,
    config: &Config,
    bal_config: &BalConfig,
    sink: Arc<dyn TraceSink>,
    json: bool,
) -> Result<()> {
    let (bal, mut state) = prepare(shell, bal_config).await?;
    let operator = Operator::open_with_trace(config, bal_config, sink).await?;
    // One pass: a few quick attempts, then the mailbox waits for the next run.
    let operator = Operator {
        client: operator.client.with_policy(RetryPolicy::once()),
        psc: operator.psc,
    };
    let result = async {
        // A hundred messages at a time, the next hundred fetched while these are filed:
        // a large mailbox never sits whole in memory. Each batch carries the sync state
        // that follows it, so the position saved never runs ahead of what is stored.
        let client = &operator.client;
        let fetch = async |mut after: SyncState| {
            let (fetched, more) = client
                .fetch_some(FOLDER, &mut after, 100, FETCH_AT_ONCE)
                .await?;
            anyhow::Ok((fetched, more, after))
        };
        let mut batch = fetch(state.clone()).await?;
        loop {
            let (fetched, more, after) = batch;
            for (uid, size) in &fetched.oversized {
                eprintln!(
                    "mss: warning: {} UID {uid} ({size} bytes) is too large to fetch; it stays on the server",
                    bal.address
                );
            }
            let progress = if state.uidvalidity == after.uidvalidity {
                state.clone()
            } else {
                SyncState {
                    uidvalidity: after.uidvalidity,
                    last_uid: 0,
                    highest_modseq: None,
                }
            };
            let next = async {
                match more {
                    true => Some(fetch(after.clone()).await),
                    false => None,
                }
            };
            let (filed, next) =
                tokio::join!(file_batch(shell, &bal, fetched.messages, progress, json), next);
            filed?;
            // Saved only once everything fetched is stored: a failure refetches, and the
            // store recognises what it already holds.
            save_state(shell, &bal, &after).await?;
            state = after;
            match next {
                Some(next) => batch = next?,
                None => break,
            }
        }
        drain_outbox(shell, &operator, &bal).await
    }
    .await;
    operator.close().await;
    result
}

/// Catches up, then follows the mailbox with IDLE until stopped.
async fn follow(
    shell: &Shell,
    config: &Config,
    bal_config: &BalConfig,
    sink: Arc<dyn TraceSink>,
    json: bool,
) -> Result<()> {
    once(shell, config, bal_config, sink.clone(), json).await?;
    let (bal, mut state) = prepare(shell, bal_config).await?;
    let operator = Operator::open_with_trace(config, bal_config, sink).await?;
    let uidvalidity = state.uidvalidity;
    let mut last = state.clone();
    let (tx, mut rx) = mpsc::channel(64);
    let result = {
        let mut following = Box::pin(operator.client.follow(
            FOLDER,
            &mut state,
            &tx,
            Duration::from_secs(25 * 60),
        ));
        loop {
            tokio::select! {
                ended = &mut following => break ended.map_err(anyhow::Error::from),
                Some(message) = rx.recv() => {
                    receive(shell, &bal, uidvalidity, message.uid, &message.raw, json).await?;
                    last.last_uid = last.last_uid.max(message.uid);
                    save_state(shell, &bal, &last).await?;
                    drain_outbox(shell, &operator, &bal).await?;
                }
                () = tokio::time::sleep(OUTBOX_POLL) => {
                    drain_outbox(shell, &operator, &bal).await?;
                }
            }
        }
    };
    operator.close().await;
    result
}

/// Submits what is due in the outbox for this mailbox (acknowledgements and the user's
/// messages), each claimed first so another process never sends it too. The first
/// temporary failure ends the pass: the server is unlikely to take the next one.
async fn drain_outbox(shell: &Shell, operator: &Operator, bal: &Bal) -> Result<()> {
    let store = shell.store();
    for item in store.due(now_local(), OUTBOX_BATCH).await? {
        if item.mailbox != bal.mailbox_id {
            continue;
        }
        let attempt = claim_and_send(store, &operator.client, bal.address.as_str(), &item).await?;
        match attempt {
            Attempt::Sent { .. } | Attempt::NotClaimed => {}
            Attempt::Failed { error } => {
                eprintln!(
                    "mss: warning: {} {} refused, given up: {error}",
                    item.kind.code(),
                    item.message_id
                );
            }
            Attempt::Retry { error, at } => {
                eprintln!(
                    "mss: warning: {} {} not sent ({error}){}",
                    item.kind.code(),
                    item.message_id,
                    match at {
                        Some(at) => format!("; next attempt at {}", shown_time(at)),
                        None => "; given up after too many attempts".into(),
                    }
                );
                break;
            }
        }
    }
    Ok(())
}
