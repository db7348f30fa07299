//! The engine's shell: the only part of this crate that does I/O.
//!
//! A received message goes in as raw bytes with where it was read (mailbox,
//! folder, UIDVALIDITY, UID). It is stored first, as it came; then the local
//! state the decisions need is read from the store, [`process`] decides, and
//! the actions are executed in the store (documents and versions, worklist,
//! candidates, notifications, traces). Acknowledgements to send are queued in
//! the store's outbox; the caller submits them.
//!
//! Idempotent: a message already stored and decided (by UID or Message-ID) is
//! not decided again; a message stored but not decided (a crash in between)
//! is decided again, and the store files each document version once.
//!
//! The store offers no transaction spanning several of its calls, so each
//! action is its own transaction; the message's own worklist item is moved
//! out of `received` last, which is what marks the message as decided.

use mss_docs::cda::InstanceId;
use mss_docs::mdn::{ErrorCode, MdnOutcome};
use mss_docs::message::MessageError;
use mss_docs::xdm::XdmPackage;
use mss_model::{Matricule, MssAddress};
use mss_store::{
    Enqueued, FailureCode, InsertOutcome, MailboxKind, MessageKey, NewNotification, NewOutboxItem,
    NewTrace, NewVersion, NotificationKind, OutboxKind, Store, StoreError, VersionChange,
    VersionState, WorkState,
};
use time::OffsetDateTime;

use crate::acknowledge::{self, AckContext, AckError, AckPlan};
use crate::matching::LocalPatient;
use crate::process::{
    self, Action, DocumentOutcome, Input, Notification, Opened, Options, Processed, State,
    TraceEvent,
};
use crate::versions::{HeldState, HeldVersion, Origin, VersionDecision, show};

/// The pseudo-mailbox that owns manually imported XDM files (UX.39).
pub const IMPORT_MAILBOX: &str = "import-manuel@mss.local";
/// The folder name under which imports are stored.
pub const IMPORT_FOLDER: &str = "import";
/// Author of what the program decides alone.
pub const AUTHOR_MSS: &str = "mss";
/// Largest header block scanned for the Message-ID before the message is stored.
const HEADER_SCAN: usize = 256 * 1024;

/// What went wrong in the shell.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("worklist item {0} does not exist: list the items with `mss inbox`")]
    NoItem(i64),
    #[error("patient {0} does not exist: list the patients with `mss patient list`")]
    NoPatient(i64),
    #[error("worklist item {item} is {state}: {what}")]
    WrongState {
        item: i64,
        state: String,
        what: &'static str,
    },
    #[error("the acknowledgement could not be built ({0}); answer the sender by hand")]
    Ack(#[from] AckError),
    #[error("the message cannot be read: {0}")]
    Message(#[from] MessageError),
    #[error(
        "the stored message {0} can no longer be read: run `mss trace verify` and check the database"
    )]
    Unreadable(i64),
}

/// Installation choices the shell needs beyond the decisions' options.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    pub options: Options,
    /// `Reporting-UA` of MDNs, e.g. `mss 0.1.0`.
    pub reporting_ua: String,
    /// X-MSS-NIL of acknowledgements.
    pub nil: Option<String>,
}

/// Where a message was read.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub mailbox: &'a MssAddress,
    pub kind: MailboxKind,
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
    pub raw: &'a [u8],
}

/// What became of one message (or import).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The stored message's id.
    pub message: i64,
    /// Stored by this call (false: seen before).
    pub new: bool,
    /// Already decided before this call: nothing was done again.
    pub already_decided: bool,
    /// The message-level state (the worst of its documents).
    pub state: WorkState,
    /// (worklist item, state) of each document.
    pub documents: Vec<(i64, WorkState)>,
    /// Acknowledgements queued in the outbox (ids), for the caller to submit.
    pub outbox: Vec<i64>,
    /// An acknowledgement a person may choose to send (not automatic).
    pub offered: Option<AckPlan>,
}

/// Runs the engine's decisions against a store.
#[derive(Debug, Clone)]
pub struct Shell {
    store: Store,
    config: ShellConfig,
}

/// Per-message context while executing actions.
pub(crate) struct Run<'a> {
    pub(crate) message: i64,
    pub(crate) mailbox_id: i64,
    pub(crate) mailbox: &'a str,
    pub(crate) message_id: Option<String>,
    pub(crate) raw: &'a [u8],
    /// When the message was first stored: acknowledgements queued since are looked up
    /// from there.
    pub(crate) stored_at: OffsetDateTime,
    pub(crate) now: OffsetDateTime,
    pub(crate) author: &'a str,
}

impl Shell {
    pub fn new(store: Store, config: ShellConfig) -> Self {
        Self { store, config }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The decision options, for [`open_message`] on another thread.
    pub fn options(&self) -> Options {
        self.config.options
    }

    /// A message read from a mailbox: stored, decided, executed.
    pub async fn receive(
        &self,
        incoming: &Incoming<'_>,
        now: OffsetDateTime,
    ) -> Result<Outcome, ShellError> {
        let start = Start::Input(Input::Message { raw: incoming.raw });
        self.receive_from(incoming, start, now).await
    }

    /// Same as [`Shell::receive`] for a message the caller already opened with
    /// [`open_message`], on another thread while the previous one was being filed
    /// (opening is the costly part: MIME decoding, inflating, hashing).
    pub async fn receive_opened(
        &self,
        incoming: &Incoming<'_>,
        opened: Result<Opened, MessageError>,
        now: OffsetDateTime,
    ) -> Result<Outcome, ShellError> {
        self.receive_from(incoming, Start::Opened(Box::new(opened)), now)
            .await
    }

    async fn receive_from(
        &self,
        incoming: &Incoming<'_>,
        start: Start<'_>,
        now: OffsetDateTime,
    ) -> Result<Outcome, ShellError> {
        let mailbox = self
            .store
            .ensure_mailbox(incoming.mailbox, incoming.kind, now)
            .await?;
        let message_id = scan_message_id(incoming.raw);
        let key = MessageKey {
            mailbox_id: mailbox.id,
            folder: incoming.folder.to_owned(),
            uidvalidity: incoming.uidvalidity,
            uid: incoming.uid,
        };
        let inserted = self
            .store
            .insert_message(&key, message_id.as_deref(), incoming.raw, now)
            .await?;
        let stored_at = self.stored_at(inserted, now).await?;
        let run = Run {
            message: inserted.id(),
            mailbox_id: mailbox.id,
            mailbox: incoming.mailbox.as_str(),
            stored_at,
            message_id: message_id
                .as_deref()
                .and_then(mss_store::normalize_message_id),
            raw: incoming.raw,
            now,
            author: AUTHOR_MSS,
        };
        let request = format!(
            "folder={} uidvalidity={} uid={} size={}",
            incoming.folder,
            incoming.uidvalidity,
            incoming.uid,
            incoming.raw.len()
        );
        self.decide_and_execute(&run, inserted, &request, start)
            .await
    }

    /// An XDM archive imported by hand (UX.39): the same path, nobody to answer.
    /// Importing the same bytes again does nothing.
    pub async fn import_xdm(
        &self,
        zip: &[u8],
        author: &str,
        now: OffsetDateTime,
    ) -> Result<Outcome, ShellError> {
        let address = MssAddress::parse(IMPORT_MAILBOX)
            .map_err(|e| StoreError::Invalid(format!("import mailbox: {e}")))?;
        let mailbox = self
            .store
            .ensure_mailbox(&address, MailboxKind::App, now)
            .await?;
        let sha = mss_store::sha256_hex(zip);
        // The content hash is the key: 64 bits of it as (UIDVALIDITY, UID), all of it
        // as the Message-ID, so the same file is recognised whatever its name.
        let word = |range: std::ops::Range<usize>| {
            u32::from_str_radix(sha.get(range).unwrap_or("0"), 16).unwrap_or(0)
        };
        let key = MessageKey {
            mailbox_id: mailbox.id,
            folder: IMPORT_FOLDER.to_owned(),
            uidvalidity: word(0..8),
            uid: word(8..16),
        };
        let message_id = format!("sha256:{sha}");
        let inserted = self
            .store
            .insert_message(&key, Some(message_id.as_str()), zip, now)
            .await?;
        let stored_at = self.stored_at(inserted, now).await?;
        let run = Run {
            message: inserted.id(),
            mailbox_id: mailbox.id,
            mailbox: IMPORT_MAILBOX,
            stored_at,
            message_id: Some(message_id),
            raw: zip,
            now,
            author,
        };
        let request = format!("import size={}", zip.len());
        self.decide_and_execute(
            &run,
            inserted,
            &request,
            Start::Input(Input::Import { zip }),
        )
        .await
    }

    async fn decide_and_execute(
        &self,
        run: &Run<'_>,
        inserted: InsertOutcome,
        request: &str,
        start: Start<'_>,
    ) -> Result<Outcome, ShellError> {
        let item = self.store.work_item_for(run.message, "", run.now).await?;
        let current = self
            .store
            .work_item(item)
            .await?
            .ok_or(ShellError::NoItem(item))?;
        let seen = match inserted {
            InsertOutcome::Stored(_) => "stored",
            InsertOutcome::SameUid(_) => "same_uid",
            InsertOutcome::SameMessageId(_) => "same_message_id",
        };
        self.trace(run, "message.stored", None, None, Some(request), seen)
            .await?;
        if current.state != WorkState::Received {
            return Ok(Outcome {
                message: run.message,
                new: inserted.is_new(),
                already_decided: true,
                state: current.state,
                documents: Vec::new(),
                outbox: Vec::new(),
                offered: None,
            });
        }
        let processed = match self.decide(start).await {
            Ok(p) => p,
            Err(ShellError::Message(error)) => {
                let reason = format!("Message illisible : {error}");
                let state = WorkState::Failed(failure(ErrorCode::Other));
                self.store
                    .set_work_state(item, state, Some(reason.as_str()), None, None, run.now)
                    .await?;
                self.notify(run, NotificationKind::Attention, None, None, &reason)
                    .await?;
                self.trace(run, "message.unreadable", None, None, None, "906")
                    .await?;
                return Ok(Outcome {
                    message: run.message,
                    new: inserted.is_new(),
                    already_decided: false,
                    state,
                    documents: Vec::new(),
                    outbox: Vec::new(),
                    offered: None,
                });
            }
            Err(other) => return Err(other),
        };
        let mut outcome = Outcome {
            message: run.message,
            new: inserted.is_new(),
            already_decided: false,
            state: WorkState::Received,
            documents: Vec::new(),
            outbox: Vec::new(),
            offered: None,
        };
        let mut message_state: Option<(WorkState, String)> = None;
        for action in &processed.actions {
            self.execute(run, &processed, action, &mut outcome, &mut message_state)
                .await?;
        }
        outcome.documents = self.document_items(run, &processed).await?;
        let (state, reason) = message_state.unwrap_or_else(|| summary(&processed, &outcome));
        self.store
            .set_work_state(item, state, Some(reason.as_str()), None, None, run.now)
            .await?;
        outcome.state = state;
        Ok(outcome)
    }

    /// Opens the input once (unless the caller did), reads what the store knows about
    /// the patients and documents its package concerns, and decides.
    async fn decide(&self, start: Start<'_>) -> Result<Processed, ShellError> {
        let opened = match start {
            Start::Input(input) => process::open(input, &self.config.options)?,
            Start::Opened(opened) => (*opened)?,
        };
        let (patients, history) = match opened.package() {
            Some(package) => self.gather(package).await?,
            None => (Vec::new(), Vec::new()),
        };
        let state = State {
            patients: &patients,
            history: &history,
            acknowledged: false,
        };
        Ok(process::decide(opened, &state, &self.config.options))
    }

    /// The local patients and held versions the package's documents may concern.
    async fn gather(
        &self,
        package: &XdmPackage,
    ) -> Result<(Vec<LocalPatient>, Vec<HeldVersion>), ShellError> {
        let mut patients: Vec<LocalPatient> = Vec::new();
        let mut sets: Vec<String> = Vec::new();
        for header in package.documents.iter().filter_map(|d| d.cda.as_ref()) {
            let mut found = Vec::new();
            if let Some(ins) = &header.patient.ins
                && let Ok(m) = Matricule::parse(ins.matricule.trim())
                && let Some(p) = self.store.patient_by_matricule(&m).await?
            {
                found.push(p);
            }
            let max = self.config.options.matching.max_candidates.max(1);
            for c in self.store.candidates(&header.patient.traits, max).await? {
                found.push(c.patient);
            }
            for p in found {
                if !patients.iter().any(|l| l.id == p.id.to_string()) {
                    patients.push(LocalPatient {
                        id: p.id.to_string(),
                        ins: p.ins,
                        status: p.status,
                        traits: p.traits,
                    });
                }
            }
            let ids = [
                Some(&header.id),
                header.set_id.as_ref(),
                header.replaces.as_ref(),
            ];
            for id in ids.into_iter().flatten() {
                let shown = show(id);
                if !sets.contains(&shown) {
                    sets.push(shown.clone());
                }
                for (set, _) in self.store.versions_by_id(&shown).await? {
                    if !sets.contains(&set) {
                        sets.push(set);
                    }
                }
            }
        }
        let mut history = Vec::new();
        for set in &sets {
            let Some(document) = self.store.document(set).await? else {
                continue;
            };
            let patient = document.patient.map(|p| p.to_string()).unwrap_or_default();
            for v in self.store.history(set).await? {
                let origin = match v.state {
                    VersionState::Current | VersionState::PendingDeletion => {
                        self.origin_of(v.id).await?
                    }
                    VersionState::Replaced | VersionState::Deleted => None,
                };
                history.push(HeldVersion {
                    id: parse_id(&v.version_id),
                    set_id: Some(parse_id(set)),
                    version: v.source_version,
                    patient: patient.clone(),
                    state: match v.state {
                        VersionState::Current => HeldState::Current,
                        VersionState::Replaced => HeldState::Superseded,
                        VersionState::Deleted => HeldState::Deleted,
                        VersionState::PendingDeletion => HeldState::PendingDeletion,
                    },
                    sha1: Some(v.sha1),
                    origin,
                });
            }
        }
        Ok((patients, history))
    }

    /// Who produced a held version, read from its CDA header. A version that is not a
    /// readable CDA has no origin to compare and cannot be refused on that ground.
    async fn origin_of(&self, version: i64) -> Result<Option<Origin>, ShellError> {
        let content = self.store.version_content(version).await?;
        Ok(mss_docs::cda::parse_header(&content)
            .ok()
            .map(|header| Origin::from_header(&header)))
    }

    async fn execute(
        &self,
        run: &Run<'_>,
        processed: &Processed,
        action: &Action,
        outcome: &mut Outcome,
        message_state: &mut Option<(WorkState, String)>,
    ) -> Result<(), ShellError> {
        let now = run.now;
        match action {
            Action::StoreVersion {
                doc,
                patient,
                id,
                set_id,
                version,
                supersedes,
                ..
            } => {
                let patient = patient.parse::<i64>().ok();
                let document = self
                    .file(
                        run,
                        processed,
                        *doc,
                        patient,
                        id,
                        set_id.as_ref(),
                        *version,
                        supersedes.as_ref(),
                    )
                    .await?;
                let state = if supersedes.is_some() {
                    WorkState::Replaced
                } else {
                    WorkState::Integrated
                };
                let item = self.doc_item(run, *doc).await?;
                self.store
                    .set_work_state(item, state, None, patient, Some(document), now)
                    .await?;
            }
            Action::MarkDeleted { target, patient } => {
                let doc = processed.documents.iter().find_map(|r| match &r.outcome {
                    DocumentOutcome::Deleted { target: t, .. } if t == target => r.doc,
                    _ => None,
                });
                let set = self.set_of(target).await?;
                self.store.delete_document(&set, now).await?;
                if let Some(doc) = doc {
                    let item = self.doc_item(run, doc).await?;
                    let document = self.store.document(&set).await?.map(|d| d.id);
                    self.store
                        .set_work_state(
                            item,
                            WorkState::Deleted,
                            None,
                            patient.parse().ok(),
                            document,
                            now,
                        )
                        .await?;
                }
            }
            Action::AwaitDeletionConfirmation {
                doc,
                target,
                patient,
            } => {
                let set = self.set_of(target).await?;
                self.store.set_pending_deletion(&set, true).await?;
                let item = self.doc_item(run, *doc).await?;
                let document = self.store.document(&set).await?.map(|d| d.id);
                self.store
                    .set_work_state(
                        item,
                        WorkState::DeletionToConfirm,
                        Some("L'émetteur demande la suppression de ce document : confirmez-la ou refusez-la."),
                        patient.parse().ok(),
                        document,
                        now,
                    )
                    .await?;
            }
            Action::ProposePatients {
                doc,
                code,
                reason_fr,
                candidates,
            } => {
                let item = self.doc_item(run, *doc).await?;
                let reason = format!("{reason_fr} (code {})", code.code());
                self.store
                    .set_work_state(
                        item,
                        WorkState::Proposed,
                        Some(reason.as_str()),
                        None,
                        None,
                        now,
                    )
                    .await?;
                let ranked: Vec<(i64, f64)> = candidates
                    .iter()
                    .filter_map(|c| Some((c.patient.parse().ok()?, c.score)))
                    .collect();
                self.store.set_candidates(item, &ranked).await?;
            }
            Action::FlagAlreadyIntegrated { doc, held } => {
                let item = self.doc_item(run, *doc).await?;
                let set = self.set_of(held).await.ok();
                let document = match &set {
                    Some(set) => self.store.document(set).await?,
                    None => None,
                };
                // Filed by this very message before a crash: the filing is finished,
                // not flagged as a duplicate of itself.
                let (state, reason) = match self.filed_by(run, held).await? {
                    Some(VersionChange::Replacement) => (WorkState::Replaced, None),
                    Some(VersionChange::Added) => (WorkState::Integrated, None),
                    None => (
                        WorkState::Duplicate,
                        Some("Document déjà intégré : il n'a pas été classé une seconde fois."),
                    ),
                };
                self.store
                    .set_work_state(
                        item,
                        state,
                        reason,
                        document.as_ref().and_then(|d| d.patient),
                        document.as_ref().map(|d| d.id),
                        now,
                    )
                    .await?;
            }
            Action::Reject {
                doc,
                code,
                reason_fr,
                ..
            } => {
                let state = WorkState::Failed(failure(*code));
                match doc {
                    Some(doc) => {
                        let item = self.doc_item(run, *doc).await?;
                        self.store
                            .set_work_state(item, state, Some(reason_fr.as_str()), None, None, now)
                            .await?;
                    }
                    None => *message_state = Some((state, reason_fr.clone())),
                }
            }
            Action::Notify(Notification::AlreadyIntegrated { doc })
                if self.finished_after_crash(run, processed, *doc).await? =>
            {
                // Not a duplicate: this message's own filing, finished after a crash.
            }
            Action::Notify(n) => {
                let (kind, patient, doc) = match n {
                    Notification::NewDocument { patient, doc, .. } => {
                        (NotificationKind::NewDocument, Some(patient), Some(*doc))
                    }
                    Notification::UpdatedDocument { patient, doc, .. } => {
                        (NotificationKind::UpdatedDocument, Some(patient), Some(*doc))
                    }
                    Notification::DeletedDocument { patient, .. } => {
                        (NotificationKind::DeletedDocument, Some(patient), None)
                    }
                    Notification::DeletionToConfirm { patient, .. } => {
                        (NotificationKind::Attention, Some(patient), None)
                    }
                    Notification::NeedsAttention { doc, .. } => {
                        (NotificationKind::Attention, None, *doc)
                    }
                    Notification::AlreadyIntegrated { doc } => {
                        (NotificationKind::Attention, None, Some(*doc))
                    }
                    Notification::NewMessage { .. } | Notification::ReportReceived { .. } => {
                        (NotificationKind::Attention, None, None)
                    }
                };
                let document = match doc {
                    Some(doc) => self.doc_document(run, doc).await?,
                    None => None,
                };
                let patient = patient.and_then(|p| p.parse().ok());
                self.notify(run, kind, patient, document, &n.text_fr())
                    .await?;
            }
            Action::Acknowledge(plan) => {
                let Some(received) = &processed.received else {
                    return Ok(());
                };
                match plan {
                    AckPlan::None(_) => {}
                    AckPlan::Mdn {
                        automatic: false, ..
                    }
                    | AckPlan::FailureNotice {
                        automatic: false, ..
                    } => {
                        outcome.offered = Some(plan.clone());
                        self.trace(
                            run,
                            "ack.offered",
                            None,
                            None,
                            Some(plan_label(plan).as_str()),
                            "ok",
                        )
                        .await?;
                    }
                    AckPlan::Mdn { to, .. } | AckPlan::FailureNotice { to, .. } => {
                        if let Some(id) = self.queue_ack(run, plan, received, to).await? {
                            outcome.outbox.push(id);
                        }
                    }
                }
            }
            Action::RecordReport(report) => {
                let detail = format!(
                    "failure={} code={}",
                    report.is_failure(),
                    report.error_code().map_or(0, ErrorCode::code)
                );
                self.trace(
                    run,
                    "report.received",
                    None,
                    None,
                    Some(detail.as_str()),
                    "ok",
                )
                .await?;
                crate::reports::link(self, run, report).await?;
            }
            Action::Trace { event, detail } => {
                // The engine's details name the document by index and the patient by
                // id: the entry carries them as references, so `trace list --document`
                // and `--patient` find every decision about them.
                let document = field(detail, "doc")
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| processed.package.as_ref()?.documents.get(i))
                    .and_then(|d| d.cda.as_ref())
                    .map(|h| show(&h.id));
                let patient = field(detail, "patient");
                let outcome = field(detail, "code").unwrap_or("ok");
                self.trace(
                    run,
                    event_action(*event),
                    patient,
                    document.as_deref(),
                    Some(detail.as_str()),
                    outcome,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Builds the acknowledgement and queues it in the outbox.
    async fn queue_ack(
        &self,
        run: &Run<'_>,
        plan: &AckPlan,
        received: &crate::classify::Received,
        to: &str,
    ) -> Result<Option<i64>, ShellError> {
        let domain = run.mailbox.rsplit('@').next().unwrap_or("mss.local");
        let sha = mss_store::sha256_hex(run.raw);
        let message_id = format!("ack.{}.{}@{domain}", run.message, &sha[..16]);
        // The outbox itself is the guard: a crash between queueing and the trace that
        // says so leaves no trace, but the answer is there (found by the kill test).
        if self.store.is_queued(&message_id).await? || self.ack_queued(run).await? {
            self.trace(run, "ack.already_queued", None, None, None, "ok")
                .await?;
            return Ok(None);
        }
        let ctx = AckContext {
            bal: run.mailbox,
            bal_name: None,
            reporting_ua: &self.config.reporting_ua,
            message_id: &message_id,
            date: run.now.unix_timestamp(),
            nil: self.config.nil.as_deref(),
        };
        let bytes = acknowledge::build(plan, received, run.raw, &ctx)?;
        // The Message-ID is the same whoever decides the message, and the outbox holds
        // one item per Message-ID: two processes deciding it at once queue one answer.
        let queued = self
            .store
            .enqueue_item(
                &NewOutboxItem {
                    mailbox: run.mailbox_id,
                    kind: OutboxKind::Acknowledgement,
                    message_id: &message_id,
                    subject: Some(received.display_subject.as_str()),
                    recipients: &[to.to_owned()],
                    raw: &bytes,
                    dsn: None,
                },
                run.now,
            )
            .await?;
        let Enqueued::New(id) = queued else {
            self.trace(run, "ack.already_queued", None, None, None, "ok")
                .await?;
            return Ok(None);
        };
        self.trace(
            run,
            "ack.queued",
            None,
            None,
            Some(plan_label(plan).as_str()),
            "ok",
        )
        .await?;
        Ok(Some(id))
    }

    /// Whether an acknowledgement of this message was queued already (a decision taken
    /// again after a crash, or a person approving twice): one answer per message.
    async fn ack_queued(&self, run: &Run<'_>) -> Result<bool, ShellError> {
        let reference = run
            .message_id
            .clone()
            .unwrap_or_else(|| format!("store:{}", run.message));
        let earlier = self
            .store
            .list_traces(&mss_store::TraceFilter {
                mailbox: Some(run.mailbox.to_owned()),
                since: Some(run.stored_at),
                ..Default::default()
            })
            .await?;
        Ok(earlier
            .iter()
            .any(|t| t.action == "ack.queued" && t.message.as_deref() == Some(reference.as_str())))
    }

    /// When a message was first stored: now if this call stored it, else as recorded.
    async fn stored_at(
        &self,
        inserted: InsertOutcome,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, ShellError> {
        if inserted.is_new() {
            return Ok(now);
        }
        Ok(self
            .store
            .message(inserted.id())
            .await?
            .map_or(now, |m| m.received))
    }

    #[allow(clippy::too_many_arguments)]
    async fn file(
        &self,
        run: &Run<'_>,
        processed: &Processed,
        doc: usize,
        patient: Option<i64>,
        id: &InstanceId,
        set_id: Option<&InstanceId>,
        version: Option<u32>,
        supersedes: Option<&InstanceId>,
    ) -> Result<i64, ShellError> {
        let package = processed
            .package
            .as_ref()
            .ok_or(ShellError::Unreadable(run.message))?;
        let document = package
            .documents
            .get(doc)
            .ok_or(ShellError::Unreadable(run.message))?;
        let header = document.cda.as_ref();
        let set = show(set_id.unwrap_or(id));
        let version_id = show(id);
        let supersedes = supersedes.map(show);
        let doc_type = header.and_then(|h| h.code.as_ref()).map(|c| c.code.clone());
        let title = header
            .and_then(|h| h.title.clone())
            .or_else(|| document.title.clone());
        let (stored, _) = self
            .store
            .add_version(
                &NewVersion {
                    set_id: &set,
                    version_id: &version_id,
                    source_version: version,
                    supersedes: supersedes.as_deref(),
                    patient,
                    doc_type: doc_type.as_deref(),
                    title: title.as_deref(),
                    media_type: document.mime_type.as_deref().unwrap_or("text/xml"),
                    content: document.content(),
                    message: Some(run.message),
                },
                run.now,
            )
            .await?;
        Ok(stored.document)
    }

    /// How `held` was filed when this same message filed it (a pass cut by a crash
    /// after the filing, the message decided again), else `None`.
    async fn filed_by(
        &self,
        run: &Run<'_>,
        held: &InstanceId,
    ) -> Result<Option<VersionChange>, ShellError> {
        Ok(self
            .store
            .versions_by_id(&show(held))
            .await?
            .into_iter()
            .find(|(_, v)| v.message == Some(run.message))
            .map(|(_, v)| v.change))
    }

    /// True when document `doc` of the package was filed by this message itself.
    async fn finished_after_crash(
        &self,
        run: &Run<'_>,
        processed: &Processed,
        doc: usize,
    ) -> Result<bool, ShellError> {
        let id = processed
            .package
            .as_ref()
            .and_then(|p| p.documents.get(doc))
            .and_then(|d| d.cda.as_ref())
            .map(|h| h.id.clone());
        Ok(match id {
            Some(id) => self.filed_by(run, &id).await?.is_some(),
            None => false,
        })
    }

    async fn doc_item(&self, run: &Run<'_>, doc: usize) -> Result<i64, ShellError> {
        Ok(self
            .store
            .work_item_for(run.message, &format!("doc:{doc}"), run.now)
            .await?)
    }

    async fn doc_document(&self, run: &Run<'_>, doc: usize) -> Result<Option<i64>, ShellError> {
        let item = self.doc_item(run, doc).await?;
        Ok(self.store.work_item(item).await?.and_then(|i| i.document))
    }

    /// The set id under which a version (by its id) is filed.
    async fn set_of(&self, id: &InstanceId) -> Result<String, ShellError> {
        let shown = show(id);
        self.store
            .versions_by_id(&shown)
            .await?
            .into_iter()
            .next()
            .map(|(set, _)| set)
            .ok_or_else(|| StoreError::NotFound(format!("document version {shown}")).into())
    }

    /// The worklist items of the package's documents, in package order.
    async fn document_items(
        &self,
        run: &Run<'_>,
        processed: &Processed,
    ) -> Result<Vec<(i64, WorkState)>, ShellError> {
        let mut out = Vec::new();
        for doc in processed.documents.iter().filter_map(|r| r.doc) {
            let id = self.doc_item(run, doc).await?;
            let item = self
                .store
                .work_item(id)
                .await?
                .ok_or(ShellError::NoItem(id))?;
            out.push((id, item.state));
        }
        Ok(out)
    }

    pub(crate) async fn notify(
        &self,
        run: &Run<'_>,
        kind: NotificationKind,
        patient: Option<i64>,
        document: Option<i64>,
        text: &str,
    ) -> Result<(), ShellError> {
        self.store
            .notify(
                &NewNotification {
                    kind,
                    patient,
                    document,
                    message: Some(run.message),
                    text,
                },
                run.now,
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn trace(
        &self,
        run: &Run<'_>,
        action: &str,
        patient: Option<&str>,
        document: Option<&str>,
        request: Option<&str>,
        outcome: &str,
    ) -> Result<(), ShellError> {
        let message = run
            .message_id
            .clone()
            .unwrap_or_else(|| format!("store:{}", run.message));
        self.store
            .append_trace(&NewTrace {
                at: run.now,
                author: run.author,
                action,
                mailbox: Some(run.mailbox),
                patient,
                document,
                message: Some(message.as_str()),
                request,
                response: None,
                outcome,
            })
            .await?;
        Ok(())
    }

    /// A person chooses the patient of a proposed document (UX: rattachement manuel).
    pub async fn attach(
        &self,
        item: i64,
        patient: i64,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<WorkState, ShellError> {
        let (work, run_parts) = self.user_item(item).await?;
        let attachable = matches!(work.state, WorkState::Proposed)
            || matches!(work.state, WorkState::Failed(c) if (902..=905).contains(&c.get()));
        if !attachable {
            return Err(ShellError::WrongState {
                item,
                state: state_name(work.state),
                what: "only a proposed document can be attached to a patient",
            });
        }
        if self.store.patient(patient).await?.is_none() {
            return Err(ShellError::NoPatient(patient));
        }
        let doc = doc_index(&work.item_key).ok_or(ShellError::NoItem(item))?;
        let (stored, mailbox_addr, mailbox_id) = run_parts;
        let run = Run {
            message: stored.id,
            mailbox_id,
            mailbox: &mailbox_addr,
            message_id: stored.message_id.clone(),
            raw: &stored.raw,
            stored_at: stored.received,
            now,
            author,
        };
        let input = input_of(&stored);
        let processed = self.decide(Start::Input(input)).await?;
        let report = processed
            .documents
            .iter()
            .find(|r| r.doc == Some(doc))
            .ok_or(ShellError::Unreadable(stored.id))?;
        let header = processed
            .package
            .as_ref()
            .and_then(|p| p.documents.get(doc))
            .and_then(|d| d.cda.as_ref())
            .ok_or(ShellError::Unreadable(stored.id))?;
        let version = match &report.outcome {
            DocumentOutcome::Proposed { version, .. } => version.clone(),
            DocumentOutcome::Filed { .. } | DocumentOutcome::Replaced { .. } => {
                // The patient base changed since: the document would now file alone.
                VersionDecision::New
            }
            _ => {
                return Err(ShellError::WrongState {
                    item,
                    state: state_name(work.state),
                    what: "this document cannot be filed as sent; read its reason with `mss inbox`",
                });
            }
        };
        let pid = patient.to_string();
        let (state, document) = match &version {
            VersionDecision::New | VersionDecision::Replace { .. } => {
                let supersedes = match &version {
                    VersionDecision::Replace { previous, .. } => Some(previous),
                    _ => None,
                };
                let document = self
                    .file(
                        &run,
                        &processed,
                        doc,
                        Some(patient),
                        &header.id,
                        header.set_id.as_ref(),
                        header.version,
                        supersedes,
                    )
                    .await?;
                let state = if supersedes.is_some() {
                    WorkState::Replaced
                } else {
                    WorkState::Integrated
                };
                (state, Some(document))
            }
            VersionDecision::Delete { target, .. } => {
                let set = self.set_of(target).await?;
                self.store.delete_document(&set, now).await?;
                (
                    WorkState::Deleted,
                    self.store.document(&set).await?.map(|d| d.id),
                )
            }
            VersionDecision::AlreadyIntegrated { .. } => (WorkState::Duplicate, None),
            VersionDecision::Fail(problem) => {
                let reason = problem.explain_fr();
                self.trace(
                    &run,
                    "document.attach_refused",
                    Some(pid.as_str()),
                    Some(show(&header.id).as_str()),
                    None,
                    "900",
                )
                .await?;
                return Err(ShellError::Store(StoreError::Invalid(reason)));
            }
        };
        let reason = format!("Rattaché au patient {patient} par {author}");
        self.store
            .set_work_state(
                item,
                state,
                Some(reason.as_str()),
                Some(patient),
                document,
                now,
            )
            .await?;
        let kind = match state {
            WorkState::Replaced => NotificationKind::UpdatedDocument,
            WorkState::Deleted => NotificationKind::DeletedDocument,
            _ => NotificationKind::NewDocument,
        };
        let title = header.title.clone().unwrap_or_else(|| "sans titre".into());
        self.notify(
            &run,
            kind,
            Some(patient),
            document,
            &format!("Document rattaché : {title}"),
        )
        .await?;
        self.trace(
            &run,
            "document.attached",
            Some(pid.as_str()),
            Some(show(&header.id).as_str()),
            Some(format!("attach item={item} patient={patient}").as_str()),
            "ok",
        )
        .await?;
        Ok(state)
    }

    /// A person confirms (`confirm`) or refuses a deletion the sender asked for. The
    /// acknowledgement deferred until then is queued when it is automatic.
    pub async fn decide_deletion(
        &self,
        item: i64,
        confirm: bool,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<Outcome, ShellError> {
        let (work, (stored, mailbox_addr, mailbox_id)) = self.user_item(item).await?;
        if work.state != WorkState::DeletionToConfirm {
            return Err(ShellError::WrongState {
                item,
                state: state_name(work.state),
                what: "only a deletion to confirm can be confirmed or refused",
            });
        }
        let doc = doc_index(&work.item_key).ok_or(ShellError::NoItem(item))?;
        let run = Run {
            message: stored.id,
            mailbox_id,
            mailbox: &mailbox_addr,
            message_id: stored.message_id.clone(),
            raw: &stored.raw,
            stored_at: stored.received,
            now,
            author,
        };
        let processed = self.decide(Start::Input(input_of(&stored))).await?;
        let header = processed
            .package
            .as_ref()
            .and_then(|p| p.documents.get(doc))
            .and_then(|d| d.cda.as_ref())
            .ok_or(ShellError::Unreadable(stored.id))?;
        let set = self.set_of(&header.id).await?;
        let shown = show(&header.id);
        let patient = work.patient.map(|p| p.to_string());
        let (state, reason, mdn) = if confirm {
            self.store.delete_document(&set, now).await?;
            self.notify(
                &run,
                NotificationKind::DeletedDocument,
                work.patient,
                work.document,
                &format!("Document {shown} supprimé (conservé dans l'historique)"),
            )
            .await?;
            (
                WorkState::Deleted,
                format!("Suppression confirmée par {author}"),
                MdnOutcome::Processed,
            )
        } else {
            self.store.set_pending_deletion(&set, false).await?;
            (
                WorkState::Failed(failure(ErrorCode::Other)),
                format!("Suppression refusée par {author} : le document reste au dossier"),
                MdnOutcome::Failed(ErrorCode::Other),
            )
        };
        self.store
            .set_work_state(
                item,
                state,
                Some(reason.as_str()),
                work.patient,
                work.document,
                now,
            )
            .await?;
        let action = if confirm {
            "document.deletion_confirmed"
        } else {
            "document.deletion_refused"
        };
        self.trace(
            &run,
            action,
            patient.as_deref(),
            Some(shown.as_str()),
            Some(format!("item={item}").as_str()),
            "ok",
        )
        .await?;
        let mut outcome = Outcome {
            message: stored.id,
            new: false,
            already_decided: false,
            state,
            documents: vec![(item, state)],
            outbox: Vec::new(),
            offered: None,
        };
        if let Some(received) = &processed.received {
            let plan =
                acknowledge::plan_after_decision(received, mdn, self.config.options.failure_notice);
            match &plan {
                AckPlan::Mdn {
                    to,
                    automatic: true,
                    ..
                }
                | AckPlan::FailureNotice {
                    to,
                    automatic: true,
                    ..
                } => {
                    if let Some(id) = self.queue_ack(&run, &plan, received, to).await? {
                        outcome.outbox.push(id);
                    }
                }
                AckPlan::None(_) => {}
                _ => outcome.offered = Some(plan),
            }
        }
        Ok(outcome)
    }

    /// A person agrees to send the acknowledgement the engine offered for the message of
    /// `item` (an MDN whose address differs from the Return-Path, or a failure notice):
    /// it is queued in the outbox. Refused when one was already queued for the message.
    pub async fn acknowledge(
        &self,
        item: i64,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<i64, ShellError> {
        let (work, (stored, mailbox_addr, mailbox_id)) = self.user_item(item).await?;
        if stored.key.folder == IMPORT_FOLDER {
            return Err(ShellError::WrongState {
                item,
                state: state_name(work.state),
                what: "an imported file has no sender to answer",
            });
        }
        let run = Run {
            message: stored.id,
            mailbox_id,
            mailbox: &mailbox_addr,
            message_id: stored.message_id.clone(),
            raw: &stored.raw,
            stored_at: stored.received,
            now,
            author,
        };
        let processed = self.decide(Start::Input(input_of(&stored))).await?;
        let received = processed
            .received
            .as_ref()
            .ok_or(ShellError::Unreadable(stored.id))?;
        let to = match &processed.ack {
            AckPlan::Mdn { to, .. } | AckPlan::FailureNotice { to, .. } => to.clone(),
            AckPlan::None(_) => {
                return Err(ShellError::WrongState {
                    item,
                    state: state_name(work.state),
                    what: "nothing to acknowledge for this message (no MDN asked, or a decision is pending)",
                });
            }
        };
        let Some(id) = self.queue_ack(&run, &processed.ack, received, &to).await? else {
            return Err(ShellError::WrongState {
                item,
                state: state_name(work.state),
                what: "an acknowledgement was already queued for this message",
            });
        };
        self.trace(
            &run,
            "ack.approved",
            None,
            None,
            Some(format!("item={item} to={to}").as_str()),
            "ok",
        )
        .await?;
        Ok(id)
    }

    /// A person deletes a filed document (kept in the history).
    pub async fn delete_document(
        &self,
        set_id: &str,
        author: &str,
        now: OffsetDateTime,
    ) -> Result<(), ShellError> {
        let document = self
            .store
            .document(set_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("document {set_id}")))?;
        self.store.delete_document(set_id, now).await?;
        let patient = document.patient.map(|p| p.to_string());
        self.store
            .append_trace(&NewTrace {
                at: now,
                author,
                action: "document.deleted_by_user",
                mailbox: None,
                patient: patient.as_deref(),
                document: Some(set_id),
                message: None,
                request: Some("delete-document"),
                response: None,
                outcome: "ok",
            })
            .await?;
        self.store
            .notify(
                &NewNotification {
                    kind: NotificationKind::DeletedDocument,
                    patient: document.patient,
                    document: Some(document.id),
                    message: None,
                    text: &format!(
                        "Document {set_id} supprimé par {author} (conservé dans l'historique)"
                    ),
                },
                now,
            )
            .await?;
        Ok(())
    }

    /// The worklist item with its stored message and mailbox.
    async fn user_item(
        &self,
        item: i64,
    ) -> Result<
        (
            mss_store::WorklistItem,
            (mss_store::StoredMessage, String, i64),
        ),
        ShellError,
    > {
        let work = self
            .store
            .work_item(item)
            .await?
            .ok_or(ShellError::NoItem(item))?;
        let stored = self
            .store
            .message(work.message)
            .await?
            .ok_or(ShellError::Unreadable(work.message))?;
        let mailbox = self
            .store
            .mailboxes()
            .await?
            .into_iter()
            .find(|m| m.id == stored.key.mailbox_id)
            .ok_or(ShellError::Unreadable(work.message))?;
        let address = mailbox.address.as_str().to_owned();
        Ok((work, (stored, address, mailbox.id)))
    }
}

/// What a decision starts from: the bytes, or what the caller already opened.
enum Start<'a> {
    Input(Input<'a>),
    /// Boxed: a parsed message is large beside a pair of slices.
    Opened(Box<Result<Opened, MessageError>>),
}

/// Opens a received message as [`Shell::receive_opened`] expects it. Pure CPU work,
/// to run on a blocking thread.
pub fn open_message(raw: &[u8], options: &Options) -> Result<Opened, MessageError> {
    process::open(Input::Message { raw }, options)
}

fn input_of(stored: &mss_store::StoredMessage) -> Input<'_> {
    if stored.key.folder == IMPORT_FOLDER {
        Input::Import { zip: &stored.raw }
    } else {
        Input::Message { raw: &stored.raw }
    }
}

fn doc_index(key: &str) -> Option<usize> {
    key.strip_prefix("doc:")?.parse().ok()
}

fn failure(code: ErrorCode) -> FailureCode {
    FailureCode::new(code.code())
        .unwrap_or_else(|| FailureCode::new(906).expect("906 is a failure code"))
}

/// The message-level state: the one a person must act on first.
fn summary(processed: &Processed, outcome: &Outcome) -> (WorkState, String) {
    let rank = |s: &WorkState| match s {
        WorkState::Failed(_) => 0,
        WorkState::Proposed => 1,
        WorkState::DeletionToConfirm => 2,
        WorkState::Received => 3,
        WorkState::Integrated => 4,
        WorkState::Replaced => 5,
        WorkState::Deleted => 6,
        WorkState::Duplicate => 7,
    };
    if let Some((_, state)) = outcome.documents.iter().min_by_key(|(_, s)| rank(s)) {
        let n = outcome.documents.len();
        return (*state, format!("{n} document(s)"));
    }
    let text = match processed.received.as_ref().map(|r| r.kind) {
        Some(crate::classify::MessageKind::Mdn) | Some(crate::classify::MessageKind::Dsn) => {
            "Accusé ou avis de remise reçu pour un message envoyé"
        }
        _ => "Message sans document à classer",
    };
    (WorkState::Integrated, text.to_owned())
}

/// The worklist state as shown and in JSON.
pub fn state_name(state: WorkState) -> String {
    match state {
        WorkState::Received => "received".into(),
        WorkState::Integrated => "integrated".into(),
        WorkState::Proposed => "proposed".into(),
        WorkState::Replaced => "replaced".into(),
        WorkState::Deleted => "deleted".into(),
        WorkState::Duplicate => "duplicate".into(),
        WorkState::DeletionToConfirm => "deletion_to_confirm".into(),
        WorkState::Failed(_) => "failed".into(),
    }
}

fn plan_label(plan: &AckPlan) -> String {
    match plan {
        AckPlan::None(reason) => format!("none {reason:?}"),
        AckPlan::Mdn {
            outcome, automatic, ..
        } => {
            format!("mdn outcome={outcome:?} automatic={automatic}")
        }
        AckPlan::FailureNotice {
            code, automatic, ..
        } => {
            format!("notice code={} automatic={automatic}", code.code())
        }
    }
}

fn event_action(event: TraceEvent) -> &'static str {
    match event {
        TraceEvent::MessageClassified => "message.classified",
        TraceEvent::PackageUnreadable => "message.package_unreadable",
        TraceEvent::DocumentFiled => "document.integrated",
        TraceEvent::DocumentReplaced => "document.replaced",
        TraceEvent::DocumentDeleted => "document.deleted",
        TraceEvent::DeletionAwaiting => "document.deletion_awaiting",
        TraceEvent::DuplicateFlagged => "document.duplicate",
        TraceEvent::PatientProposed => "document.proposed",
        TraceEvent::DocumentRejected => "document.rejected",
        TraceEvent::AcknowledgementPlanned => "ack.planned",
        TraceEvent::ReportReceived => "report.classified",
    }
}

/// The value of `name=value` in an engine trace detail (space-separated pairs).
fn field<'a>(detail: &'a str, name: &str) -> Option<&'a str> {
    detail
        .split(' ')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// `root^extension` back to an id (the form [`show`] writes).
pub fn parse_id(text: &str) -> InstanceId {
    match text.split_once('^') {
        Some((root, ext)) => InstanceId {
            root: root.to_owned(),
            extension: Some(ext.to_owned()),
        },
        None => InstanceId {
            root: text.to_owned(),
            extension: None,
        },
    }
}

/// The Message-ID header, read from the header block without interpreting the rest:
/// the key the message is stored under comes before anything parses it.
pub fn scan_message_id(raw: &[u8]) -> Option<String> {
    let head = &raw[..raw.len().min(HEADER_SCAN)];
    let text = String::from_utf8_lossy(head);
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_owned();
        while let Some(next) = lines.peek() {
            if next.starts_with([' ', '\t']) {
                value.push_str(next.trim());
                lines.next();
            } else {
                break;
            }
        }
        return (!value.is_empty()).then_some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_read_from_the_header_block_only() {
        let raw =
            b"From: a@b.fr\r\nMessage-ID:\r\n <x@y>\r\nSubject: s\r\n\r\nMessage-ID: <body@z>\r\n";
        assert_eq!(scan_message_id(raw).as_deref(), Some("<x@y>"));
        assert_eq!(
            scan_message_id(b"Subject: s\r\n\r\nMessage-ID: <b@z>\r\n"),
            None
        );
        assert_eq!(scan_message_id(&[0xff; 10]), None);
    }

    #[test]
    fn trace_details_give_their_references() {
        let detail = "doc=0 id=1.2^X patient=12 code=904";
        assert_eq!(field(detail, "doc"), Some("0"));
        assert_eq!(field(detail, "patient"), Some("12"));
        assert_eq!(field(detail, "code"), Some("904"));
        assert_eq!(field(detail, "candidates"), None);
        assert_eq!(field("documents=3", "doc"), None);
    }

    #[test]
    fn ids_round_trip_through_their_shown_form() {
        for text in ["1.2.3^abc", "1.2.3"] {
            assert_eq!(show(&parse_id(text)), text);
        }
    }
}
