//! Commands that talk to an operator: `login`, `send`, `sync`, `autoconfig`.

use super::compose;
use super::inbox::{now_local, open_store};
use super::outbox::{Attempt, LEASE, Queued, claim_and_send, record_unreached};
use super::print_json;
use super::xdm::read_cdas;
use crate::cli::{AutoconfigArgs, LoginArgs, PackAction, SendArgs, SyncArgs};
use crate::config::Config;
use crate::input;
use crate::operator::{self, Operator};
use anyhow::{Context, Result, bail};
use mss_docs::cda::CdaHeader;
use mss_docs::message::parse_incoming;
use mss_docs::subject::display_subject;
use mss_engine::versions::show;
use mss_model::MssAddress;
use mss_store::{
    Enqueued, MailboxKind, NewOutboxItem, NewSentDocument, NewTrace, OutboxKind, SentAction, Store,
};
use mss_transport::bal::{BalAuth, BalConfig, BalKind};
use mss_transport::imap::{FetchedMessage, SyncState};
use mss_transport::supervisor::RetryPolicy;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

/// The commands are short-lived: one runtime per invocation, built here so the document
/// commands stay synchronous.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn login(config: &Path, args: LoginArgs) -> Result<()> {
    let config = Config::load(config)?;
    let mut hint = None;
    if let Some(address) = &args.bal {
        let bal = config.bal(Some(address))?;
        if bal.auth() != BalAuth::Psc {
            bail!("{address} authenticates with its certificate: no login needed");
        }
        hint = bal.login_hint.clone();
    }
    runtime()?.block_on(async {
        let session = operator::psc_login(&config, hint.as_deref()).await?;
        print_json(&serde_json::json!({
            "logged_in": true,
            "subject": session.subject(),
            "email": session.email(),
            "acr": session.acr(),
        }))?;
        if !args.once {
            eprintln!(
                "mss: PSC session open; it is kept fresh until you stop this command (Ctrl-C)"
            );
            tokio::select! {
                end = session.ended() => {
                    bail!("the Pro Santé Connect session is over ({end}): log in again");
                }
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        session.logout().await.context("logout")?;
        Ok(())
    })
}

#[derive(Serialize)]
struct SendReport {
    message_id: String,
    from: String,
    recipients: Vec<String>,
    /// The outbox item that holds the message.
    outbox: i64,
    /// `sent`, or `queued` when it waits for `mss run` (exit code 75).
    state: &'static str,
    /// The server's final answer to the message, when it was sent.
    reply: Option<String>,
    dsn_honoured: bool,
    /// The folder the copy went to; `null` if the copy failed (the message was sent).
    sent_copy: Option<String>,
    /// Why it is not sent yet, and when it is tried again (Unix seconds).
    error: Option<String>,
    next_attempt: Option<i64>,
}

fn mailbox_kind(bal: &BalConfig) -> MailboxKind {
    match bal.kind {
        BalKind::Per => MailboxKind::Per,
        BalKind::Org => MailboxKind::Org,
        BalKind::App => MailboxKind::App,
    }
}

/// UX.05.BIS: a replacement or a deletion is asked only for a version this software
/// sent, and only for the latest one it sent of that document. Returns the versions
/// that could not be checked when `force` lets them through.
async fn check_previous_versions(
    store: &Store,
    headers: &[CdaHeader],
    action: Option<PackAction>,
    force: bool,
) -> Result<Vec<String>> {
    let mut unverified = Vec::new();
    let Some(action) = action else {
        return Ok(unverified);
    };
    for header in headers {
        let target = match action {
            PackAction::Replace => header.replaces.as_ref().map(show),
            PackAction::Delete => Some(show(&header.id)),
        };
        let Some(target) = target else {
            bail!(
                "refusé : le document {} ne nomme pas la version qu'il remplace (relatedDocument RPLC) / the document names no version to replace",
                show(&header.id)
            );
        };
        let history = store.sent_history(&target).await?;
        let problem = match history.last() {
            None => Some(format!(
                "refusé : la version {target} n'a pas été envoyée par ce logiciel / version {target} was not sent by this software (UX.05.BIS); --force if it was produced here"
            )),
            Some(last) if last.action == SentAction::Delete => Some(format!(
                "refusé : le document {} a déjà fait l'objet d'une demande de suppression / a deletion was already sent for it",
                last.set_id
            )),
            Some(last) if last.document_id != target => Some(format!(
                "refusé : {target} n'est pas la dernière version envoyée ({}) / {target} is not the latest version sent",
                last.document_id
            )),
            Some(_) => None,
        };
        match problem {
            Some(problem) if !force => bail!("{problem}"),
            Some(problem) => {
                eprintln!("mss: warning: --force: {problem}");
                unverified.push(target);
            }
            None => {}
        }
    }
    Ok(unverified)
}

pub fn send(config: &Path, mut args: SendArgs) -> Result<()> {
    let config = Config::load(config)?;
    let bal = config.bal(args.bal.as_deref())?.clone();
    let from = args
        .message
        .from
        .take()
        .unwrap_or_else(|| bal.address.clone());
    args.message.test_identities |= config.software.test_identities;
    let headers: Vec<CdaHeader> = read_cdas(&args.message.cda)?
        .into_iter()
        .map(|c| c.header)
        .collect();
    let action = args.message.action;
    let composed = compose::build(args.message, &from, config.software.nil.clone())?;
    if !composed.from.eq_ignore_ascii_case(&bal.address) {
        bail!(
            "--from {} is not the mailbox {}: a mailbox sends under its own address",
            composed.from,
            bal.address
        );
    }
    let subject = parse_incoming(&composed.bytes)
        .ok()
        .and_then(|m| m.subject)
        .map(|s| display_subject(&s));
    let author = args.author.author.clone();
    super::inbox::runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let result = async {
            let address = MssAddress::parse(&bal.address)
                .map_err(|e| anyhow::anyhow!("mailbox {}: {e}", bal.address))?;
            let mailbox = store
                .ensure_mailbox(&address, mailbox_kind(&bal), now_local())
                .await?;
            let unverified = check_previous_versions(&store, &headers, action, args.force).await?;
            let queued = store
                .enqueue_item(
                    &NewOutboxItem {
                        mailbox: mailbox.id,
                        kind: OutboxKind::Message,
                        message_id: &composed.message_id,
                        subject: subject.as_deref(),
                        recipients: &composed.recipients,
                        raw: &composed.bytes,
                        dsn: args.dsn.then_some("failure,delay"),
                    },
                    now_local(),
                )
                .await?;
            let Enqueued::New(id) = queued else {
                bail!(
                    "a message with the Message-ID {} is already in the outbox (item {}): see `mss outbox`",
                    composed.message_id,
                    queued.id()
                );
            };
            remember(&store, id, &headers, action, &composed.recipients).await?;
            let trace = |action: &'static str, request: String, outcome: &'static str| NewTraceOwned {
                action,
                request,
                outcome,
            };
            let mut traces = vec![trace(
                "message.queued",
                format!("outbox={id} to={}", composed.recipients.join(",")),
                "ok",
            )];
            for target in &unverified {
                traces.push(trace(
                    "document.send_unverified",
                    format!("outbox={id} previous={target}"),
                    "forced",
                ));
            }
            for t in &traces {
                store
                    .append_trace(&NewTrace {
                        at: now_local(),
                        author: &author,
                        action: t.action,
                        mailbox: Some(bal.address.as_str()),
                        patient: None,
                        document: None,
                        message: Some(composed.message_id.as_str()),
                        request: Some(t.request.as_str()),
                        response: None,
                        outcome: t.outcome,
                    })
                    .await?;
            }
            let item = store
                .outbox_item(id)
                .await?
                .with_context(|| format!("outbox item {id} vanished"))?;
            let attempt = match Operator::open(&config, &bal).await {
                Ok(operator) => {
                    // One quick series of attempts: the outbox does the longer wait.
                    let operator = Operator {
                        client: operator.client.with_policy(RetryPolicy::once()),
                        psc: operator.psc,
                    };
                    let attempt = claim_and_send(&store, &operator.client, &bal.address, &item).await;
                    operator.close().await;
                    attempt?
                }
                Err(e) => {
                    let now = now_local();
                    if store.claim(id, now, now + LEASE).await? {
                        record_unreached(&store, &item, &format!("{e:#}")).await?
                    } else {
                        Attempt::NotClaimed
                    }
                }
            };
            let mut report = SendReport {
                message_id: composed.message_id.clone(),
                from: composed.from.clone(),
                recipients: composed.recipients.clone(),
                outbox: id,
                state: "queued",
                reply: None,
                dsn_honoured: false,
                sent_copy: None,
                error: None,
                next_attempt: None,
            };
            let queued = |reason: String, at: Option<OffsetDateTime>| Queued {
                id,
                reason,
                next_attempt: at,
            };
            let deferred = match attempt {
                Attempt::Sent {
                    reply,
                    dsn_honoured,
                    sent_copy,
                } => {
                    report.state = "sent";
                    report.reply = Some(reply);
                    report.dsn_honoured = dsn_honoured;
                    report.sent_copy = sent_copy;
                    None
                }
                Attempt::Retry { error, at } => {
                    report.error = Some(error.clone());
                    report.next_attempt = at.map(|t| t.unix_timestamp());
                    Some(queued(error, at))
                }
                Attempt::NotClaimed => Some(queued(
                    "another mss process is sending it".into(),
                    None,
                )),
                Attempt::Failed { error } => bail!(
                    "the operator refused the message: {error}; it stays in the outbox as item {id} (failed) — correct it and send again"
                ),
            };
            if args.json {
                print_json(&report)?;
            } else if deferred.is_none() {
                println!(
                    "sent {} to {}",
                    report.message_id,
                    report.recipients.join(", ")
                );
            }
            match deferred {
                Some(q) => Err(q.into()),
                None => Ok(()),
            }
        }
        .await;
        store.close().await;
        result
    })
}

struct NewTraceOwned {
    action: &'static str,
    request: String,
    outcome: &'static str,
}

/// Remembers the documents the message carries (UX.05.BIS), under its outbox item.
async fn remember(
    store: &Store,
    outbox: i64,
    headers: &[CdaHeader],
    action: Option<PackAction>,
    recipients: &[String],
) -> Result<()> {
    let sent_action = match action {
        None => SentAction::New,
        Some(PackAction::Replace) => SentAction::Replace,
        Some(PackAction::Delete) => SentAction::Delete,
    };
    for header in headers {
        let document_id = show(&header.id);
        let set_id = show(header.set_id.as_ref().unwrap_or(&header.id));
        let replaces = header.replaces.as_ref().map(show);
        let ins = header
            .patient
            .ins
            .as_ref()
            .map(|i| i.matricule.trim().to_owned());
        store
            .record_sent_document(
                &NewSentDocument {
                    outbox,
                    document_id: &document_id,
                    set_id: &set_id,
                    version: header.version,
                    action: sent_action,
                    replaces: replaces.as_deref(),
                    patient_ins: ins.as_deref(),
                    title: header.title.as_deref(),
                    recipients,
                },
                now_local(),
            )
            .await?;
    }
    Ok(())
}

#[derive(Serialize)]
struct AttachmentSummary {
    file_name: Option<String>,
    content_type: String,
    size: usize,
    is_xdm: bool,
}

#[derive(Serialize)]
struct MessageSummary {
    uid: u32,
    size: usize,
    flags: Vec<String>,
    message_id: Option<String>,
    from: Option<String>,
    subject: Option<String>,
    date: Option<i64>,
    attachments: Vec<AttachmentSummary>,
    /// Why the message could not be read (it is still counted as fetched).
    error: Option<String>,
}

#[derive(Serialize)]
struct SyncReport {
    bal: String,
    folder: &'static str,
    uidvalidity: u32,
    last_uid: u32,
    uidvalidity_changed: bool,
    messages: Vec<MessageSummary>,
    /// (uid, size) of messages too large to fetch; left on the server.
    oversized: Vec<(u32, u32)>,
}

fn summary(message: &FetchedMessage) -> MessageSummary {
    let mut summary = MessageSummary {
        uid: message.uid,
        size: message.raw.len(),
        flags: message.flags.clone(),
        message_id: None,
        from: None,
        subject: None,
        date: None,
        attachments: Vec::new(),
        error: None,
    };
    match parse_incoming(&message.raw) {
        Ok(parsed) => {
            summary.message_id = parsed.message_id;
            summary.from = parsed.from.map(|m| m.address);
            summary.subject = parsed.subject;
            summary.date = parsed.date;
            summary.attachments = parsed
                .attachments
                .into_iter()
                .map(|a| AttachmentSummary {
                    file_name: a.file_name,
                    content_type: a.content_type,
                    size: a.bytes.len(),
                    is_xdm: a.is_xdm,
                })
                .collect();
        }
        Err(e) => summary.error = Some(e.to_string()),
    }
    summary
}

pub fn sync(config: &Path, args: SyncArgs) -> Result<()> {
    const FOLDER: &str = "INBOX";
    let config = Config::load(config)?;
    let bal = config.bal(args.bal.as_deref())?.clone();
    let state_path = operator::sync_state_path(&config.software.data_dir, &bal.address, FOLDER);
    let mut state = if args.all {
        SyncState::default()
    } else {
        read_state(&state_path)?
    };
    runtime()?.block_on(async {
        let operator = Operator::open(&config, &bal).await?;
        if args.once {
            let fetched = operator.client.fetch_new(FOLDER, &mut state, 100).await?;
            if let Some(dir) = &args.save {
                save_messages(dir, &fetched.messages)?;
            }
            save_state(&state_path, &state)?;
            let report = SyncReport {
                bal: bal.address.clone(),
                folder: FOLDER,
                uidvalidity: state.uidvalidity,
                last_uid: state.last_uid,
                uidvalidity_changed: fetched.uidvalidity_changed,
                messages: fetched.messages.iter().map(summary).collect(),
                oversized: fetched.oversized,
            };
            operator.close().await;
            return print_sync(&report, args.json);
        }
        // Follow the mailbox: one JSON line per message as it arrives, until Ctrl-C.
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut follow = Box::pin(operator.client.follow(
            FOLDER,
            &mut state,
            &tx,
            Duration::from_secs(25 * 60),
        ));
        let outcome = loop {
            tokio::select! {
                result = &mut follow => break result.map_err(anyhow::Error::from),
                Some(message) = rx.recv() => {
                    if let Some(dir) = &args.save {
                        save_messages(dir, std::slice::from_ref(&message))?;
                    }
                    println!("{}", serde_json::to_string(&summary(&message))?);
                }
                _ = tokio::signal::ctrl_c() => break Ok(()),
            }
        };
        drop(follow);
        // What was printed was fetched: keep the position even if the follow failed.
        while let Ok(message) = rx.try_recv() {
            println!("{}", serde_json::to_string(&summary(&message))?);
        }
        save_state(&state_path, &state)?;
        operator.close().await;
        outcome
    })
}

fn print_sync(report: &SyncReport, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    println!(
        "{}: {} new message(s) in {}",
        report.bal,
        report.messages.len(),
        report.folder
    );
    for m in &report.messages {
        println!(
            "{:>6}  {}  {}  ({} attachment(s))",
            m.uid,
            m.from.as_deref().unwrap_or("?"),
            m.subject.as_deref().unwrap_or(""),
            m.attachments.len()
        );
    }
    Ok(())
}

fn save_messages(dir: &Path, messages: &[FetchedMessage]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for message in messages {
        input::write(&dir.join(format!("{}.eml", message.uid)), &message.raw)?;
    }
    Ok(())
}

fn read_state(path: &Path) -> Result<SyncState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the sync position {} is damaged: remove it or use --all",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_state(path: &Path, state: &SyncState) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    input::write(path, &serde_json::to_vec(state)?)
}

pub fn autoconfig(config_path: &Path, args: AutoconfigArgs) -> Result<()> {
    let config = Config::load(config_path)?;
    let bal = config
        .bals
        .iter()
        .find(|b| b.address.eq_ignore_ascii_case(&args.address));
    runtime()?.block_on(async {
        let policy = operator::tls_policy(&config)?;
        let report = operator::discover(&config, &policy, bal, &args.address).await?;
        if args.json {
            return print_json(&report);
        }
        for attempt in &report.attempts {
            println!(
                "{:?}  {}  {:?}",
                attempt.source, attempt.target, attempt.outcome
            );
        }
        let servers = report.servers()?;
        println!(
            "imap {} ({:?}), smtp {} ({:?})",
            servers.imap.endpoint,
            servers.imap.security,
            servers.smtp.endpoint,
            servers.smtp.security
        );
        Ok(())
    })
}
