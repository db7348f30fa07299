//! Commands that talk to an operator: `login`, `send`, `sync`, `autoconfig`.

use super::compose;
use super::print_json;
use crate::cli::{AutoconfigArgs, LoginArgs, SendArgs, SyncArgs};
use crate::config::Config;
use crate::input;
use crate::operator::{self, Operator};
use anyhow::{Context, Result, bail};
use mss_docs::message::parse_incoming;
use mss_transport::bal::BalAuth;
use mss_transport::imap::{FetchedMessage, SyncState};
use mss_transport::smtp::{Dsn, Envelope};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

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
    /// The server's final answer to the message.
    reply: String,
    dsn_honoured: bool,
    /// The folder the copy went to; `null` if the copy failed (the message was sent).
    sent_copy: Option<String>,
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
    let composed = compose::build(args.message, &from, config.software.nil.clone())?;
    if !composed.from.eq_ignore_ascii_case(&bal.address) {
        bail!(
            "--from {} is not the mailbox {}: a mailbox sends under its own address",
            composed.from,
            bal.address
        );
    }
    let mut envelope = Envelope::new(composed.from.clone(), composed.recipients.clone());
    if args.dsn {
        envelope = envelope.with_dsn(Dsn {
            failure: true,
            delay: true,
            ..Dsn::default()
        });
    }
    runtime()?.block_on(async {
        let operator = Operator::open(&config, &bal).await?;
        let receipt = operator.client.submit(&envelope, &composed.bytes).await?;
        let sent_copy = match operator.client.append_sent(&composed.bytes).await {
            Ok(folder) => Some(folder),
            Err(e) => {
                eprintln!("mss: warning: the message was sent, but its copy in Sent failed: {e}");
                None
            }
        };
        operator.close().await;
        let report = SendReport {
            message_id: composed.message_id,
            from: composed.from,
            recipients: composed.recipients,
            reply: receipt.reply,
            dsn_honoured: receipt.dsn_honoured,
            sent_copy,
        };
        if args.json {
            print_json(&report)
        } else {
            println!(
                "sent {} to {}",
                report.message_id,
                report.recipients.join(", ")
            );
            Ok(())
        }
    })
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
