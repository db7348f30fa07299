//! The worklist and the decisions of a person: `inbox`, `documents`, `attach`,
//! `delete-document`, `import-xdm`. All of them go through the engine's shell.

use super::print_json;
use crate::cli::{
    AcknowledgeArgs, AttachArgs, DeleteDocumentArgs, DocumentsArgs, ImportXdmArgs, InboxArgs,
};
use crate::config::Config;
use crate::input;
use anyhow::{Context, Result, bail};
use mss_engine::shell::{IMPORT_FOLDER, Outcome, Shell, ShellConfig, state_name};
use mss_engine::{Input, Options, State, process};
use mss_model::{Matricule, TestIdentities};
use mss_store::{Store, StoreOptions, WorkState, WorklistItem};
use serde::Serialize;
use std::path::Path;
use time::{OffsetDateTime, UtcOffset};

/// The local offset, read once while the process has a single thread (the `time` crate
/// refuses to read it later, since another thread could change the environment).
static LOCAL_OFFSET: std::sync::OnceLock<UtcOffset> = std::sync::OnceLock::new();

/// Store commands are short: a small runtime per invocation.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    LOCAL_OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The local time with its offset (traces are in local time); UTC when the offset
/// cannot be read safely.
pub(super) fn now_local() -> OffsetDateTime {
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::now_utc().to_offset(offset)
}

pub(super) async fn open_store(config: &Config) -> Result<Store> {
    let mut options = StoreOptions::default();
    if let Some(mib) = config.store.max_message_mib {
        options.max_content_bytes = (mib as usize).saturating_mul(1024 * 1024);
    }
    options.sqlite_sync_every_commit =
        config.store.sqlite_synchronous == crate::config::SqliteSynchronous::Full;
    Ok(Store::open_with(&config.store_url(), options).await?)
}

pub(super) async fn open_shell(config: &Config) -> Result<Shell> {
    let store = open_store(config).await?;
    let mut options = Options {
        auto_delete: config.store.auto_delete,
        ..Options::default()
    };
    if config.software.test_identities {
        options.matching.test_identities = TestIdentities::Allowed;
    }
    Ok(Shell::new(
        store,
        ShellConfig {
            options,
            reporting_ua: format!("mss {}", env!("CARGO_PKG_VERSION")),
            nil: Some(config.software.nil.clone()),
        },
    ))
}

/// A patient given on the command line: a 15-character INS matricule, or mss's id.
pub(super) async fn find_patient(store: &Store, given: &str) -> Result<mss_store::Patient> {
    let given = given.trim();
    if given.chars().count() == 15 {
        let m = Matricule::parse(given).map_err(|e| anyhow::anyhow!("{given}: {e}"))?;
        return store.patient_by_matricule(&m).await?.with_context(|| {
            format!("no patient has the INS {given}: add them with `mss patient add`")
        });
    }
    let id: i64 = given
        .parse()
        .with_context(|| format!("{given:?} is neither a patient id nor an INS matricule"))?;
    store
        .patient(id)
        .await?
        .with_context(|| format!("no patient {id}: list them with `mss patient list`"))
}

#[derive(Serialize)]
pub(super) struct OutcomeJson {
    pub message: i64,
    pub new: bool,
    pub already_decided: bool,
    pub state: String,
    pub code: Option<u16>,
    pub documents: Vec<ItemState>,
    pub acknowledgements_queued: usize,
    pub acknowledgement_offered: bool,
}

#[derive(Serialize)]
pub(super) struct ItemState {
    pub item: i64,
    pub state: String,
    pub code: Option<u16>,
}

/// A proposal carries the volet code its MDN gave (kept at the end of the reason).
fn proposal_code(item: &WorklistItem) -> Option<u16> {
    if item.state != WorkState::Proposed {
        return None;
    }
    let reason = item.reason.as_deref()?;
    let at = reason.rfind("(code ")?;
    reason[at + 6..].trim_end_matches(')').trim().parse().ok()
}

fn version_state(state: mss_store::VersionState) -> &'static str {
    match state {
        mss_store::VersionState::Current => "current",
        mss_store::VersionState::Replaced => "replaced",
        mss_store::VersionState::Deleted => "deleted",
        mss_store::VersionState::PendingDeletion => "pending_deletion",
    }
}

fn code_of(state: WorkState) -> Option<u16> {
    match state {
        WorkState::Failed(code) => Some(code.get()),
        _ => None,
    }
}

pub(super) fn outcome_json(outcome: &Outcome) -> OutcomeJson {
    OutcomeJson {
        message: outcome.message,
        new: outcome.new,
        already_decided: outcome.already_decided,
        state: state_name(outcome.state),
        code: code_of(outcome.state),
        documents: outcome
            .documents
            .iter()
            .map(|(item, state)| ItemState {
                item: *item,
                state: state_name(*state),
                code: code_of(*state),
            })
            .collect(),
        acknowledgements_queued: outcome.outbox.len(),
        acknowledgement_offered: outcome.offered.is_some(),
    }
}

#[derive(Serialize)]
struct CandidateJson {
    patient: i64,
    score: f64,
    matricule: Option<String>,
    name: String,
    status: String,
}

#[derive(Serialize)]
struct InboxItem {
    item: i64,
    message: i64,
    mailbox: String,
    /// `doc:N` for the N-th document of the message, empty for the message itself.
    part: String,
    message_id: Option<String>,
    sender: Option<String>,
    /// `professional`, `patient`, `unknown`, or `import` for a manual import.
    sender_kind: String,
    /// The sender as shown to people (a patient by name and INS).
    sender_shown: Option<String>,
    subject: Option<String>,
    document_title: Option<String>,
    document_type: Option<String>,
    /// The message's Date (Unix seconds), else when it was stored.
    date: i64,
    state: String,
    code: Option<u16>,
    reason: Option<String>,
    patient: Option<i64>,
    patient_shown: Option<String>,
    document: Option<i64>,
    candidates: Vec<CandidateJson>,
}

#[derive(Serialize)]
struct NotificationJson {
    id: i64,
    kind: String,
    text: String,
    patient: Option<i64>,
    document: Option<i64>,
    message: Option<i64>,
    created: i64,
}

#[derive(Serialize)]
struct InboxJson {
    items: Vec<InboxItem>,
    notifications: Vec<NotificationJson>,
}

fn patient_name(p: &mss_store::Patient) -> String {
    let t = &p.traits;
    let mut name = format!(
        "{} {}",
        t.birth_name.as_deref().unwrap_or("?"),
        t.first_given_name.as_deref().unwrap_or("")
    )
    .trim()
    .to_owned();
    if let Some(ins) = &p.ins {
        name.push_str(&format!(" (INS {})", ins.matricule));
    }
    name
}

async fn describe(store: &Store, item: &WorklistItem) -> Result<InboxItem> {
    let stored = store
        .message(item.message)
        .await?
        .with_context(|| format!("stored message {} is missing", item.message))?;
    let mailbox = store
        .mailboxes()
        .await?
        .into_iter()
        .find(|m| m.id == stored.key.mailbox_id)
        .map(|m| m.address.as_str().to_owned())
        .unwrap_or_default();
    let import = stored.key.folder == IMPORT_FOLDER;
    let input = if import {
        Input::Import { zip: &stored.raw }
    } else {
        Input::Message { raw: &stored.raw }
    };
    let empty = State {
        patients: &[],
        history: &[],
        acknowledged: false,
    };
    let options = Options {
        matching: mss_engine::MatchOptions {
            test_identities: TestIdentities::Allowed,
            ..Default::default()
        },
        ..Options::default()
    };
    let seen = process(input, &empty, &options).ok();
    let received = seen.as_ref().and_then(|p| p.received.as_ref());
    let doc_index = item
        .item_key
        .strip_prefix("doc:")
        .and_then(|i| i.parse::<usize>().ok());
    let doc = seen
        .as_ref()
        .and_then(|p| p.package.as_ref())
        .zip(doc_index)
        .and_then(|(pkg, i)| pkg.documents.get(i));
    let header = doc.and_then(|d| d.cda.as_ref());
    let mut candidates = Vec::new();
    for (patient, score) in &item.candidates {
        if let Some(p) = store.patient(*patient).await? {
            candidates.push(CandidateJson {
                patient: *patient,
                score: *score,
                matricule: p.ins.as_ref().map(|i| i.matricule.to_string()),
                name: patient_name(&p),
                status: format!("{:?}", p.status).to_uppercase(),
            });
        }
    }
    let patient_shown = match item.patient {
        Some(id) => store.patient(id).await?.map(|p| patient_name(&p)),
        None => header.map(|h| {
            let t = &h.patient.traits;
            let mut s = format!(
                "{} {}",
                t.birth_name.as_deref().unwrap_or("?"),
                t.first_given_name.as_deref().unwrap_or("")
            )
            .trim()
            .to_owned();
            if let Some(ins) = &h.patient.ins {
                s.push_str(&format!(" (INS {})", ins.matricule));
            }
            s
        }),
    };
    Ok(InboxItem {
        item: item.id,
        message: item.message,
        mailbox,
        part: item.item_key.clone(),
        message_id: stored.message_id.clone(),
        sender: received.and_then(|r| r.sender.address.clone()),
        sender_kind: if import {
            "import".into()
        } else {
            match received.map(|r| &r.sender.kind) {
                Some(mss_engine::SenderKind::Professional) => "professional".into(),
                Some(mss_engine::SenderKind::Patient { .. }) => "patient".into(),
                _ => "unknown".into(),
            }
        },
        sender_shown: seen.as_ref().and_then(|p| p.sender_label.clone()),
        // Shown as the engine shows it: without `XDM/1.0/DDM+` (UX.28).
        subject: received.map(|r| r.display_subject.clone()),
        document_title: header
            .and_then(|h| h.title.clone())
            .or_else(|| doc.and_then(|d| d.title.clone())),
        document_type: header
            .and_then(|h| h.code.as_ref())
            .map(|c| match &c.display {
                Some(d) => format!("{} {d}", c.code),
                None => c.code.clone(),
            }),
        date: received
            .and_then(|r| r.message.date)
            .unwrap_or(stored.received.unix_timestamp()),
        state: state_name(item.state),
        code: code_of(item.state).or_else(|| proposal_code(item)),
        reason: item.reason.clone(),
        patient: item.patient,
        patient_shown,
        document: item.document,
        candidates,
    })
}

pub fn inbox(config: &Path, args: InboxArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let out = worklist_items(&store, args.open, args.limit).await?;
        let notifications = store.unread_notifications(args.limit).await?;
        if args.mark_read {
            let now = now_local();
            for n in &notifications {
                store.mark_read(n.id, now).await?;
            }
        }
        let notifications: Vec<NotificationJson> = notifications
            .into_iter()
            .map(|n| NotificationJson {
                id: n.id,
                kind: format!("{:?}", n.kind),
                text: n.text,
                patient: n.patient,
                document: n.document,
                message: n.message,
                created: n.created.unix_timestamp(),
            })
            .collect();
        store.close().await;
        if args.json {
            return print_json(&InboxJson {
                items: out,
                notifications,
            });
        }
        for n in &notifications {
            println!("* {}", n.text);
        }
        print_items(&out);
        Ok(())
    })
}

/// The worklist's items; a message with documents is shown by its documents.
async fn worklist_items(store: &Store, open: bool, limit: u32) -> Result<Vec<InboxItem>> {
    let items = store.worklist(open, limit).await?;
    let with_docs: std::collections::HashSet<i64> = items
        .iter()
        .filter(|i| !i.item_key.is_empty())
        .map(|i| i.message)
        .collect();
    let mut out = Vec::new();
    for item in items
        .iter()
        .filter(|i| !(i.item_key.is_empty() && with_docs.contains(&i.message)))
    {
        out.push(describe(store, item).await?);
    }
    Ok(out)
}

fn print_items(items: &[InboxItem]) {
    for i in items {
        let code = i.code.map(|c| format!(" {c}")).unwrap_or_default();
        println!(
            "{:>5}  {}{}  {}  {}  {}",
            i.item,
            i.state,
            code,
            i.sender_shown.as_deref().unwrap_or("-"),
            i.document_title
                .as_deref()
                .or(i.subject.as_deref())
                .unwrap_or(""),
            i.patient_shown.as_deref().unwrap_or("")
        );
        if let Some(reason) = &i.reason {
            println!("       {reason}");
        }
        for c in &i.candidates {
            println!("       candidat {} ({:.2}) {}", c.patient, c.score, c.name);
        }
    }
}

/// Prints the worklist the way `mss inbox` does (`mss demo` shows it once mail is filed);
/// returns how many items it printed.
pub(super) async fn print_worklist(store: &Store, open: bool, limit: u32) -> Result<usize> {
    let items = worklist_items(store, open, limit).await?;
    print_items(&items);
    Ok(items.len())
}

#[derive(Serialize)]
struct VersionJson {
    version_no: u32,
    version_id: String,
    source_version: Option<u32>,
    state: String,
    media_type: String,
    size: u64,
    sha256: String,
    message: Option<i64>,
    created: i64,
}

#[derive(Serialize)]
struct DocumentJson {
    id: i64,
    set_id: String,
    title: Option<String>,
    doc_type: Option<String>,
    deleted: bool,
    versions: Vec<VersionJson>,
}

pub fn documents(config: &Path, args: DocumentsArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let patient = find_patient(&store, &args.matricule).await?;
        let mut out = Vec::new();
        for d in store.documents_of_patient(patient.id, args.all).await? {
            let versions = store
                .history(&d.set_id)
                .await?
                .into_iter()
                .map(|v| VersionJson {
                    version_no: v.version_no,
                    version_id: v.version_id,
                    source_version: v.source_version,
                    state: version_state(v.state).to_owned(),
                    media_type: v.media_type,
                    size: v.size,
                    sha256: v.sha256,
                    message: v.message,
                    created: v.created.unix_timestamp(),
                })
                .collect();
            out.push(DocumentJson {
                id: d.id,
                set_id: d.set_id,
                title: d.title,
                doc_type: d.doc_type,
                deleted: d.deleted.is_some(),
                versions,
            });
        }
        store.close().await;
        if args.json {
            return print_json(&out);
        }
        println!("{}", patient_name(&patient));
        for d in &out {
            println!(
                "  {}  {}{}",
                d.set_id,
                d.title.as_deref().unwrap_or("sans titre"),
                if d.deleted { " (supprimé)" } else { "" }
            );
            for v in &d.versions {
                println!("    v{} {} {}", v.version_no, v.state, v.version_id);
            }
        }
        Ok(())
    })
}

pub fn attach(config: &Path, args: AttachArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let shell = open_shell(&config).await?;
        let patient = find_patient(shell.store(), &args.patient).await?;
        let state = shell
            .attach(args.item, patient.id, &args.author.author, now_local())
            .await?;
        shell.store().close().await;
        println!(
            "item {}: {} ({})",
            args.item,
            state_name(state),
            patient_name(&patient)
        );
        Ok(())
    })
}

pub fn delete_document(config: &Path, args: DeleteDocumentArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let shell = open_shell(&config).await?;
        let now = now_local();
        let author = &args.author.author;
        if let Some(set_id) = &args.document {
            shell.delete_document(set_id, author, now).await?;
            println!("document {set_id}: deleted (kept in its history)");
        } else if let Some(item) = args.item {
            if args.confirm == args.refuse {
                bail!("say --confirm or --refuse for a deletion to confirm");
            }
            let outcome = shell
                .decide_deletion(item, args.confirm, author, now)
                .await?;
            println!(
                "item {item}: {}{}",
                state_name(outcome.state),
                if outcome.outbox.is_empty() {
                    ""
                } else {
                    " (acknowledgement queued: `mss run --once` sends it)"
                }
            );
        }
        shell.store().close().await;
        Ok(())
    })
}

pub fn import_xdm(config: &Path, args: ImportXdmArgs) -> Result<()> {
    let config = Config::load(config)?;
    let zip = input::read(&args.file)?;
    runtime()?.block_on(async {
        let shell = open_shell(&config).await?;
        let outcome = shell
            .import_xdm(&zip, &args.author.author, now_local())
            .await?;
        shell.store().close().await;
        let json = outcome_json(&outcome);
        if args.json {
            return print_json(&json);
        }
        println!(
            "message {}: {}{}",
            json.message,
            json.state,
            if json.already_decided {
                " (already imported)"
            } else {
                ""
            }
        );
        for d in &json.documents {
            println!(
                "  item {}: {}{}",
                d.item,
                d.state,
                d.code.map(|c| format!(" {c}")).unwrap_or_default()
            );
        }
        Ok(())
    })
}

pub fn acknowledge(config: &Path, args: AcknowledgeArgs) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let shell = open_shell(&config).await?;
        let queued = shell
            .acknowledge(args.item, &args.author.author, now_local())
            .await?;
        shell.store().close().await;
        println!(
            "item {}: acknowledgement queued ({queued}); `mss run --once` sends it",
            args.item
        );
        Ok(())
    })
}
