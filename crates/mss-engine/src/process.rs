//! One received message (or one manually imported XDM file, UX.39) in, the
//! list of [`Action`]s the shell must execute out.
//!
//! Deterministic: the same input and state give the same actions. The
//! decisions for the documents of one package are taken in package order on
//! a working copy of the history, so a package holding the same document
//! twice files it once. Processing a message again after its actions were
//! applied ([`apply_to_history`]) files nothing and answers nothing.

use mss_docs::cda::InstanceId;
use mss_docs::mdn::{ErrorCode, MdnOutcome};
use mss_docs::message::MessageError;
use mss_docs::xdm::{self, Limits, XdmPackage};

use crate::acknowledge::{self, AckPlan, FailureNotice, NoAckReason};
use crate::classify::{MessageKind, Received, Report, SenderKind, classify};
use crate::matching::{
    Candidate, DocumentPatient, LocalPatient, MatchOptions, MatchProblem, PatientDecision,
    match_patient,
};
use crate::versions::{
    HeldState, HeldVersion, IncomingVersion, Origin, VersionDecision, VersionProblem, authorised,
    decide_version, show,
};

/// What to process.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A received message, raw bytes as stored.
    Message { raw: &'a [u8] },
    /// An XDM archive imported by hand (UX.39): same path, nobody to answer.
    Import { zip: &'a [u8] },
}

/// The views of the local state the decisions need, filled by the shell.
#[derive(Debug, Clone, Copy)]
pub struct State<'a> {
    /// Candidate patients (see [`match_patient`] for what to pass).
    pub patients: &'a [LocalPatient],
    /// Held versions sharing an id, setId or replaced id with the package's
    /// documents (passing more is harmless).
    pub history: &'a [HeldVersion],
    /// An acknowledgement (MDN or notice) was already sent or offered for
    /// this message.
    pub acknowledged: bool,
}

/// Installation choices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Options {
    /// Apply deletions without asking a person.
    pub auto_delete: bool,
    pub matching: MatchOptions,
    pub failure_notice: FailureNotice,
    pub xdm_limits: Limits,
}

/// What became of one document of the package.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentOutcome {
    /// Filed automatically as a new document.
    Filed { patient: String },
    /// Filed automatically as the latest version; `previous` stays in the history.
    Replaced {
        patient: String,
        previous: InstanceId,
    },
    /// Deleted automatically (kept in the history).
    Deleted { patient: String, target: InstanceId },
    /// The deletion waits for a person's confirmation.
    AwaitingDeletion { patient: String, target: InstanceId },
    /// Already filed: flagged, not filed twice (LGC.MDV.06).
    AlreadyIntegrated {
        held: InstanceId,
        state: HeldState,
        same_content: Option<bool>,
    },
    /// A person must choose the patient; `version` is what happens then.
    Proposed {
        problem: MatchProblem,
        candidates: Vec<Candidate>,
        version: VersionDecision,
    },
    /// Cannot be filed as sent (wrong version, broken package…).
    Rejected { code: ErrorCode, reason_fr: String },
}

impl DocumentOutcome {
    /// The volet code when the document was not handled automatically.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Proposed { problem, .. } => Some(problem.code()),
            Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One document of the package and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentReport {
    /// Index in [`Processed::package`]`.documents`; `None` for a package-level failure.
    pub doc: Option<usize>,
    pub id: Option<InstanceId>,
    pub title: Option<String>,
    pub outcome: DocumentOutcome,
}

/// A notification for the users (UX.38/UX.40), with its French text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    NewDocument {
        patient: String,
        doc: usize,
        title: Option<String>,
    },
    UpdatedDocument {
        patient: String,
        doc: usize,
        title: Option<String>,
    },
    DeletedDocument {
        patient: String,
        target: InstanceId,
    },
    DeletionToConfirm {
        patient: String,
        target: InstanceId,
    },
    AlreadyIntegrated {
        doc: usize,
    },
    NeedsAttention {
        doc: Option<usize>,
        code: ErrorCode,
    },
    NewMessage {
        from_patient: bool,
    },
    ReportReceived {
        original_message_id: Option<String>,
        failed: bool,
    },
}

impl Notification {
    pub fn text_fr(&self) -> String {
        let title = |t: &Option<String>| t.clone().unwrap_or_else(|| "sans titre".into());
        match self {
            Self::NewDocument { title: t, .. } => format!("Nouveau document reçu : {}", title(t)),
            Self::UpdatedDocument { title: t, .. } => format!(
                "Nouvelle version d'un document : {} (la version précédente reste dans l'historique)",
                title(t)
            ),
            Self::DeletedDocument { target, .. } => format!(
                "Document {} supprimé à la demande de l'émetteur (conservé dans l'historique)",
                show(target)
            ),
            Self::DeletionToConfirm { target, .. } => format!(
                "L'émetteur demande la suppression du document {} : confirmez-la",
                show(target)
            ),
            Self::AlreadyIntegrated { .. } => {
                "Document déjà intégré : il n'a pas été classé une seconde fois".into()
            }
            Self::NeedsAttention { code, .. } => format!(
                "Document à traiter manuellement : {} (code {})",
                code.label(),
                code.code()
            ),
            Self::NewMessage { from_patient: true } => {
                "Nouveau message d'un patient (Mon espace santé)".into()
            }
            Self::NewMessage {
                from_patient: false,
            } => "Nouveau message".into(),
            Self::ReportReceived { failed: true, .. } => {
                "Un destinataire signale un échec pour un message envoyé".into()
            }
            Self::ReportReceived { failed: false, .. } => {
                "Accusé reçu pour un message envoyé".into()
            }
        }
    }
}

/// Kinds of trace entries (SC.MSS traceability). Details carry ids and
/// codes only, never message contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    MessageClassified,
    PackageUnreadable,
    DocumentFiled,
    DocumentReplaced,
    DocumentDeleted,
    DeletionAwaiting,
    DuplicateFlagged,
    PatientProposed,
    DocumentRejected,
    AcknowledgementPlanned,
    ReportReceived,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store document `doc` of the package as a version filed under
    /// `patient`; when `supersedes` is set, that version becomes superseded
    /// (one transaction).
    StoreVersion {
        doc: usize,
        patient: String,
        id: InstanceId,
        set_id: Option<InstanceId>,
        version: Option<u32>,
        supersedes: Option<InstanceId>,
        sha1: Option<String>,
    },
    /// Mark `target` deleted (kept in the history).
    MarkDeleted {
        target: InstanceId,
        patient: String,
    },
    /// Mark `target` as waiting for deletion and ask a person to confirm.
    AwaitDeletionConfirmation {
        doc: usize,
        target: InstanceId,
        patient: String,
    },
    /// Put document `doc` in the worklist with these candidates.
    ProposePatients {
        doc: usize,
        code: ErrorCode,
        reason_fr: String,
        candidates: Vec<Candidate>,
    },
    /// Show document `doc` as already integrated (as `held`).
    FlagAlreadyIntegrated {
        doc: usize,
        held: InstanceId,
    },
    /// Leave the document (or, with `doc: None`, the message) in the worklist
    /// with this failure.
    Reject {
        doc: Option<usize>,
        code: ErrorCode,
        reason_fr: String,
        /// Technical detail for the logs (English), when there is one.
        detail: Option<String>,
    },
    Notify(Notification),
    /// Send (automatic) or offer (not automatic) this acknowledgement; build
    /// it with [`acknowledge::build`].
    Acknowledge(AckPlan),
    /// Link this MDN/DSN to the message we sent.
    RecordReport(Report),
    Trace {
        event: TraceEvent,
        detail: String,
    },
}

/// Everything decided about one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// `None` for a manual import.
    pub received: Option<Received>,
    /// The XDM package read, when there is one (documents' bytes inside).
    pub package: Option<XdmPackage>,
    /// The sender as shown (UX.31: a patient's birth name, first name and INS).
    pub sender_label: Option<String>,
    pub documents: Vec<DocumentReport>,
    pub ack: AckPlan,
    pub actions: Vec<Action>,
}

/// Decides everything about `input`: [`open`] then [`decide`]. Fails only
/// when a message's bytes are not a mail message (or are too large): the
/// shell keeps the raw bytes in the worklist with that error.
pub fn process(
    input: Input<'_>,
    state: &State<'_>,
    options: &Options,
) -> Result<Processed, MessageError> {
    Ok(decide(open(input, options)?, state, options))
}

/// An input read once: the message parsed and classified, its archive
/// unpacked and its documents hashed. This is the costly part of processing
/// (MIME decoding, inflating, hashing); the shell opens each input once,
/// reads the state the package points to, then [`decide`]s.
#[derive(Debug, Clone)]
pub struct Opened {
    /// `None` for a manual import.
    received: Option<Received>,
    archive: Archive,
}

#[derive(Debug, Clone)]
enum Archive {
    /// Not an XDM message (a report or a plain mail): nothing to open.
    NotXdm,
    /// The subject announces documents but no IHE_XDM attachment is there.
    Missing,
    Read(Result<XdmPackage, xdm::XdmError>),
}

impl Opened {
    /// The package read, when there is one: what the state to gather depends on.
    pub fn package(&self) -> Option<&XdmPackage> {
        match &self.archive {
            Archive::Read(Ok(package)) => Some(package),
            _ => None,
        }
    }
}

/// Reads `input` (see [`Opened`]).
pub fn open(input: Input<'_>, options: &Options) -> Result<Opened, MessageError> {
    // The archive is read where it lies: no copy of a large attachment.
    Ok(match input {
        Input::Import { zip } => Opened {
            received: None,
            archive: Archive::Read(xdm::read(zip, &options.xdm_limits)),
        },
        Input::Message { raw } => {
            let received = classify(raw)?;
            let archive = match received.kind {
                MessageKind::Mdn | MessageKind::Dsn | MessageKind::Plain => Archive::NotXdm,
                MessageKind::Xdm => match received.message.xdm() {
                    Some(a) => Archive::Read(xdm::read(&a.bytes, &options.xdm_limits)),
                    None => Archive::Missing,
                },
            };
            Opened {
                received: Some(received),
                archive,
            }
        }
    })
}

/// Decides everything about an opened input, given the state. Pure and cheap:
/// no decoding happens here.
pub fn decide(opened: Opened, state: &State<'_>, options: &Options) -> Processed {
    let Opened { received, archive } = opened;
    let mut out = Processed {
        received: None,
        package: None,
        sender_label: None,
        documents: Vec::new(),
        ack: AckPlan::None(NoAckReason::ManualImport),
        actions: Vec::new(),
    };
    if let Some(received) = &received {
        out.actions.push(Action::Trace {
            event: TraceEvent::MessageClassified,
            detail: format!(
                "message-id={} kind={:?} patient_sender={}",
                received.message_id().unwrap_or("-"),
                received.kind,
                received.sender.is_patient()
            ),
        });
        match received.kind {
            MessageKind::Mdn | MessageKind::Dsn => {
                if let Some(report) = &received.report {
                    record_report(report, &mut out);
                }
            }
            MessageKind::Plain => {
                out.actions.push(Action::Notify(Notification::NewMessage {
                    from_patient: received.sender.is_patient(),
                }));
            }
            MessageKind::Xdm => {}
        }
    }
    out.received = received;
    match archive {
        // Not an XDM message: nothing more to decide.
        Archive::NotXdm => {
            out.ack = AckPlan::None(NoAckReason::NotXdm);
            out.sender_label = sender_label(&out, state);
            return out;
        }
        Archive::Missing => reject_message(
            &mut out,
            "Le message annonce des documents (objet XDM/1.0/DDM+) mais ne contient pas d'archive IHE_XDM.",
            None,
        ),
        Archive::Read(Ok(package)) if package.documents.is_empty() => {
            reject_message(
                &mut out,
                "L'archive IHE_XDM ne décrit aucun document.",
                None,
            );
            out.package = Some(package);
        }
        Archive::Read(Ok(package)) => {
            decide_documents(&package, state, options, &mut out);
            out.package = Some(package);
        }
        Archive::Read(Err(e)) => reject_message(
            &mut out,
            "L'archive IHE_XDM est illisible ou refusée.",
            Some(e.to_string()),
        ),
    }

    out.sender_label = sender_label(&out, state);
    if let Some(received) = &out.received {
        out.ack = acknowledge::plan(
            received,
            message_outcome(&out.documents),
            state.acknowledged,
            options.failure_notice,
        );
        if !matches!(out.ack, AckPlan::None(_)) {
            out.actions.push(Action::Acknowledge(out.ack.clone()));
        }
        out.actions.push(Action::Trace {
            event: TraceEvent::AcknowledgementPlanned,
            detail: ack_detail(&out.ack),
        });
    }
    out
}

/// A received MDN or DSN: link it to what we sent, tell the users, trace it.
fn record_report(report: &Report, out: &mut Processed) {
    let original_message_id = match report {
        Report::Mdn {
            original_message_id,
            ..
        }
        | Report::Dsn {
            original_message_id,
            ..
        } => original_message_id.clone(),
    };
    out.actions.push(Action::RecordReport(report.clone()));
    out.actions
        .push(Action::Notify(Notification::ReportReceived {
            original_message_id,
            failed: report.is_failure(),
        }));
    out.actions.push(Action::Trace {
        event: TraceEvent::ReportReceived,
        detail: format!(
            "failure={} code={}",
            report.is_failure(),
            report.error_code().map_or(0, ErrorCode::code)
        ),
    });
}

fn ack_detail(plan: &AckPlan) -> String {
    match plan {
        AckPlan::None(reason) => format!("none reason={reason:?}"),
        AckPlan::Mdn {
            outcome, automatic, ..
        } => format!("mdn outcome={outcome:?} automatic={automatic}"),
        AckPlan::FailureNotice {
            code, automatic, ..
        } => format!("notice code={} automatic={automatic}", code.code()),
    }
}

/// The message-level outcome: the first failure in package order, else
/// success, or `None` while a deletion waits for a person.
fn message_outcome(documents: &[DocumentReport]) -> Option<MdnOutcome> {
    if let Some(code) = documents.iter().find_map(|d| d.outcome.error_code()) {
        return Some(MdnOutcome::Failed(code));
    }
    // A deletion seen again while it still waits for a person is still waiting: the
    // answer stays deferred (found by `processing_again_after_applying_files_nothing`).
    if documents.iter().any(|d| {
        matches!(
            d.outcome,
            DocumentOutcome::AwaitingDeletion { .. }
                | DocumentOutcome::AlreadyIntegrated {
                    state: HeldState::PendingDeletion,
                    ..
                }
        )
    }) {
        return None;
    }
    Some(MdnOutcome::Processed)
}

fn reject_message(out: &mut Processed, reason_fr: &str, detail: Option<String>) {
    let code = ErrorCode::Other;
    out.documents.push(DocumentReport {
        doc: None,
        id: None,
        title: None,
        outcome: DocumentOutcome::Rejected {
            code,
            reason_fr: reason_fr.to_owned(),
        },
    });
    out.actions.push(Action::Reject {
        doc: None,
        code,
        reason_fr: reason_fr.to_owned(),
        detail: detail.clone(),
    });
    out.actions
        .push(Action::Notify(Notification::NeedsAttention {
            doc: None,
            code,
        }));
    out.actions.push(Action::Trace {
        event: TraceEvent::PackageUnreadable,
        detail: format!("code={} {}", code.code(), detail.unwrap_or_default()),
    });
}

fn decide_documents(
    package: &XdmPackage,
    state: &State<'_>,
    options: &Options,
    out: &mut Processed,
) {
    let mut history: Vec<HeldVersion> = state.history.to_vec();
    for (index, doc) in package.documents.iter().enumerate() {
        let report = decide_document(index, doc, package, state, options, &mut history, out);
        out.documents.push(report);
    }
}

fn reject(
    index: usize,
    code: ErrorCode,
    reason_fr: String,
    detail: Option<String>,
    out: &mut Processed,
) -> DocumentOutcome {
    out.actions.push(Action::Reject {
        doc: Some(index),
        code,
        reason_fr: reason_fr.clone(),
        detail,
    });
    out.actions
        .push(Action::Notify(Notification::NeedsAttention {
            doc: Some(index),
            code,
        }));
    out.actions.push(Action::Trace {
        event: TraceEvent::DocumentRejected,
        detail: format!("doc={index} code={}", code.code()),
    });
    DocumentOutcome::Rejected { code, reason_fr }
}

fn decide_document(
    index: usize,
    doc: &xdm::Document,
    package: &XdmPackage,
    state: &State<'_>,
    options: &Options,
    history: &mut Vec<HeldVersion>,
    out: &mut Processed,
) -> DocumentReport {
    let mut report = DocumentReport {
        doc: Some(index),
        id: doc.cda.as_ref().map(|h| h.id.clone()),
        title: doc
            .cda
            .as_ref()
            .and_then(|h| h.title.clone())
            .or_else(|| doc.title.clone()),
        outcome: DocumentOutcome::Filed {
            patient: String::new(),
        },
    };
    let other = ErrorCode::Other;
    if doc.path.is_none() || !doc.hash_ok || !doc.size_ok {
        report.outcome = reject(
            index,
            other,
            "Document absent de l'archive ou altéré (empreinte ou taille différente des métadonnées).".into(),
            None,
            out,
        );
        return report;
    }
    let Some(header) = &doc.cda else {
        let reason = if doc.cda_error.is_some() {
            "Document CDA illisible."
        } else {
            "Le document n'est pas un document CDA."
        };
        report.outcome = reject(index, other, reason.into(), doc.cda_error.clone(), out);
        return report;
    };

    let action = doc.action.or(package.action);
    let sha1 = doc.hash.as_ref().map(|h| h.trim().to_ascii_lowercase());
    let incoming = IncomingVersion::from_header(header, action, sha1.clone());
    let version = decide_version(&incoming, history, options.auto_delete);
    if let VersionDecision::AlreadyIntegrated {
        held,
        state: held_state,
        same_content,
    } = &version
    {
        out.actions.push(Action::FlagAlreadyIntegrated {
            doc: index,
            held: held.clone(),
        });
        out.actions
            .push(Action::Notify(Notification::AlreadyIntegrated {
                doc: index,
            }));
        out.actions.push(Action::Trace {
            event: TraceEvent::DuplicateFlagged,
            detail: format!(
                "doc={index} held={} same_content={same_content:?}",
                show(held)
            ),
        });
        report.outcome = DocumentOutcome::AlreadyIntegrated {
            held: held.clone(),
            state: *held_state,
            same_content: *same_content,
        };
        return report;
    }
    if let VersionDecision::Fail(problem) = &version {
        report.outcome = reject(
            index,
            ErrorCode::VersionMismatch,
            problem.explain_fr(),
            None,
            out,
        );
        return report;
    }
    if !authorised(&version, history, &Origin::from_header(header)) {
        report.outcome = reject(
            index,
            ErrorCode::AuthorNotAuthorised,
            "Ni l'auteur de ce document ni son organisation ne sont ceux de la version détenue : remplacement ou suppression refusé.".into(),
            None,
            out,
        );
        return report;
    }

    let metadata_patient = doc
        .patient_id
        .as_deref()
        .or(package.submission_set.patient_id.as_deref());
    let patient_doc = DocumentPatient::from_header(header, metadata_patient);
    let patient = match match_patient(&patient_doc, state.patients, &options.matching) {
        PatientDecision::AutoIntegrate { patient } => patient,
        PatientDecision::Propose {
            problem,
            candidates,
        } => {
            let code = problem.code();
            out.actions.push(Action::ProposePatients {
                doc: index,
                code,
                reason_fr: problem.explain_fr(),
                candidates: candidates.clone(),
            });
            out.actions
                .push(Action::Notify(Notification::NeedsAttention {
                    doc: Some(index),
                    code,
                }));
            out.actions.push(Action::Trace {
                event: TraceEvent::PatientProposed,
                detail: format!(
                    "doc={index} code={} candidates={}",
                    code.code(),
                    candidates.len()
                ),
            });
            report.outcome = DocumentOutcome::Proposed {
                problem,
                candidates,
                version,
            };
            return report;
        }
    };

    let title = report.title.clone();
    match version {
        VersionDecision::New | VersionDecision::Replace { .. } => {
            let (supersedes, held_patient) = match &version {
                VersionDecision::Replace { previous, patient } => {
                    (Some(previous.clone()), Some(patient.clone()))
                }
                _ => (None, None),
            };
            if held_patient.as_ref().is_some_and(|p| *p != patient) {
                report.outcome = reject(
                    index,
                    ErrorCode::InsMismatch,
                    "La version remplacée est classée dans le dossier d'un autre patient : vérifiez l'identité.".into(),
                    None,
                    out,
                );
                return report;
            }
            let store = Action::StoreVersion {
                doc: index,
                patient: patient.clone(),
                id: header.id.clone(),
                set_id: header.set_id.clone(),
                version: header.version,
                supersedes: supersedes.clone(),
                sha1,
            };
            apply_to_history(history, &store);
            out.actions.push(store);
            match supersedes {
                None => {
                    out.actions.push(Action::Notify(Notification::NewDocument {
                        patient: patient.clone(),
                        doc: index,
                        title,
                    }));
                    out.actions.push(Action::Trace {
                        event: TraceEvent::DocumentFiled,
                        detail: format!("doc={index} id={} patient={patient}", show(&header.id)),
                    });
                    report.outcome = DocumentOutcome::Filed { patient };
                }
                Some(previous) => {
                    out.actions
                        .push(Action::Notify(Notification::UpdatedDocument {
                            patient: patient.clone(),
                            doc: index,
                            title,
                        }));
                    out.actions.push(Action::Trace {
                        event: TraceEvent::DocumentReplaced,
                        detail: format!(
                            "doc={index} id={} replaces={} patient={patient}",
                            show(&header.id),
                            show(&previous)
                        ),
                    });
                    report.outcome = DocumentOutcome::Replaced { patient, previous };
                }
            }
        }
        VersionDecision::Delete {
            target,
            patient: held_patient,
            needs_confirmation,
        } => {
            if held_patient != patient {
                report.outcome = reject(
                    index,
                    ErrorCode::InsMismatch,
                    "Le document à supprimer est classé dans le dossier d'un autre patient : vérifiez l'identité.".into(),
                    None,
                    out,
                );
                return report;
            }
            let action = if needs_confirmation {
                Action::AwaitDeletionConfirmation {
                    doc: index,
                    target: target.clone(),
                    patient: patient.clone(),
                }
            } else {
                Action::MarkDeleted {
                    target: target.clone(),
                    patient: patient.clone(),
                }
            };
            apply_to_history(history, &action);
            out.actions.push(action);
            let (notification, event) = if needs_confirmation {
                (
                    Notification::DeletionToConfirm {
                        patient: patient.clone(),
                        target: target.clone(),
                    },
                    TraceEvent::DeletionAwaiting,
                )
            } else {
                (
                    Notification::DeletedDocument {
                        patient: patient.clone(),
                        target: target.clone(),
                    },
                    TraceEvent::DocumentDeleted,
                )
            };
            out.actions.push(Action::Notify(notification));
            out.actions.push(Action::Trace {
                event,
                detail: format!("doc={index} target={} patient={patient}", show(&target)),
            });
            report.outcome = if needs_confirmation {
                DocumentOutcome::AwaitingDeletion { patient, target }
            } else {
                DocumentOutcome::Deleted { patient, target }
            };
        }
        // Handled above; kept exhaustive without a panic path.
        VersionDecision::AlreadyIntegrated { .. } | VersionDecision::Fail(_) => {
            report.outcome = reject(
                index,
                ErrorCode::VersionMismatch,
                VersionProblem::NothingToReplace.explain_fr(),
                None,
                out,
            );
        }
    }
    report
}

/// What the store's history looks like after the shell executes `action`:
/// the semantics of the history actions, for the shell's tests and ours.
pub fn apply_to_history(history: &mut Vec<HeldVersion>, action: &Action) {
    let same = |a: &InstanceId, b: &InstanceId| {
        a.root.trim() == b.root.trim()
            && a.extension.as_deref().map(str::trim) == b.extension.as_deref().map(str::trim)
    };
    match action {
        Action::StoreVersion {
            patient,
            id,
            set_id,
            version,
            supersedes,
            sha1,
            ..
        } => {
            if let Some(previous) = supersedes {
                for h in history.iter_mut().filter(|h| same(&h.id, previous)) {
                    h.state = HeldState::Superseded;
                }
            }
            history.push(HeldVersion {
                id: id.clone(),
                set_id: set_id.clone(),
                version: *version,
                patient: patient.clone(),
                state: HeldState::Current,
                sha1: sha1.clone(),
                // Filed by this very message: its sender is the author in question.
                origin: None,
            });
        }
        Action::MarkDeleted { target, .. } => {
            for h in history.iter_mut().filter(|h| same(&h.id, target)) {
                h.state = HeldState::Deleted;
            }
        }
        Action::AwaitDeletionConfirmation { target, .. } => {
            for h in history.iter_mut().filter(|h| same(&h.id, target)) {
                h.state = HeldState::PendingDeletion;
            }
        }
        _ => {}
    }
}

/// UX.31: a patient is shown by birth name, first given name and INS, not
/// by the bare address. Looked up in the local records, else in the
/// documents received, else the `From` display name.
fn sender_label(out: &Processed, state: &State<'_>) -> Option<String> {
    let received = out.received.as_ref()?;
    let sender = &received.sender;
    match &sender.kind {
        SenderKind::Patient { matricule: Some(m) } => {
            let from_local = state
                .patients
                .iter()
                .filter(|p| p.ins.as_ref().is_some_and(|i| i.matricule == *m))
                .max_by_key(|p| p.status.is_qualified())
                .map(|p| p.traits.clone());
            let from_docs = || {
                out.package.as_ref().and_then(|pkg| {
                    pkg.documents
                        .iter()
                        .filter_map(|d| d.cda.as_ref())
                        .find(|h| {
                            h.patient.ins.as_ref().is_some_and(|i| {
                                i.matricule.trim().eq_ignore_ascii_case(m.as_str())
                            })
                        })
                        .map(|h| h.patient.traits.clone())
                })
            };
            let names = from_local.or_else(from_docs).and_then(|t| {
                let first = t.first_given_name.or_else(|| {
                    t.given_names
                        .and_then(|g| g.split_whitespace().next().map(str::to_owned))
                });
                match (t.birth_name, first) {
                    (Some(n), Some(f)) => Some(format!("{n} {f}")),
                    (Some(n), None) => Some(n),
                    _ => None,
                }
            });
            let names = names.or_else(|| sender.display_name.clone());
            Some(match names {
                Some(n) => format!("{n} (INS {m})"),
                None => format!("Patient (INS {m})"),
            })
        }
        SenderKind::Patient { matricule: None } => Some(format!(
            "Patient : {}",
            sender
                .display_name
                .clone()
                .or_else(|| sender.address.clone())
                .unwrap_or_default()
        )),
        SenderKind::Professional => Some(match (&sender.display_name, &sender.address) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => String::new(),
        }),
        SenderKind::Unknown => None,
    }
}
