//! What a received document does to the documents we hold: a new document,
//! a new version replacing the latest one (`action` C / `relatedDocument`
//! RPLC), the deletion of the latest version (`action` D), a document we
//! already filed (LGC.MDV.06, SC.CDA/INT.18), or a request on a version that
//! is not our latest (volet code 900).
//!
//! Versions are recognised by the CDA `id` (each version has its own), and
//! grouped by `setId`. Nothing is ever removed from the history: a replaced
//! version becomes [`HeldState::Superseded`], a deleted one
//! [`HeldState::Deleted`].

use mss_docs::cda::{CdaHeader, InstanceId};
use mss_docs::xdm::Action as XdmAction;

/// Where a held version stands in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeldState {
    /// The latest version, shown by default.
    Current,
    /// Replaced by a newer version; kept in the history.
    Superseded,
    /// Deleted at the sender's request; kept in the history.
    Deleted,
    /// A deletion was received and waits for a person's confirmation.
    PendingDeletion,
}

/// A document version the store holds, as the shell reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldVersion {
    pub id: InstanceId,
    pub set_id: Option<InstanceId>,
    pub version: Option<u32>,
    /// Local id of the patient it is filed under.
    pub patient: String,
    pub state: HeldState,
    /// SHA-1 (lower-case hex) of the document bytes, when known.
    pub sha1: Option<String>,
    /// Who produced it, when the shell read it (live versions only: only they can be
    /// replaced or deleted).
    pub origin: Option<Origin>,
}

/// Who produced a version: its authors and their organisations, by their CDA ids. The
/// volet lets only the author, or someone of the author's organisation, replace or
/// delete a document (code 901).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub authors: Vec<InstanceId>,
    pub organizations: Vec<InstanceId>,
}

impl Origin {
    pub fn from_header(header: &CdaHeader) -> Self {
        let mut origin = Origin::default();
        for author in &header.authors {
            if let Some(id) = author.id.as_ref().filter(|id| !id.root.trim().is_empty()) {
                origin.authors.push(id.clone());
            }
            if let Some(id) = author
                .organization
                .as_ref()
                .and_then(|o| o.id.as_ref())
                .filter(|id| !id.root.trim().is_empty())
            {
                origin.organizations.push(id.clone());
            }
        }
        origin
    }

    /// Whether `requester` (the origin of a replacement or deletion) may change a
    /// version produced by `self`. A version whose authors carry no id cannot be checked
    /// and is not refused on that ground.
    pub fn allows(&self, requester: &Origin) -> bool {
        let shares = |ours: &[InstanceId], theirs: &[InstanceId]| {
            theirs.iter().any(|a| ours.iter().any(|b| same_id(a, b)))
        };
        (self.authors.is_empty() && self.organizations.is_empty())
            || shares(&self.authors, &requester.authors)
            || shares(&self.organizations, &requester.organizations)
    }
}

/// Whether the version a replacement or deletion targets may be changed by `requester`
/// (code 901 otherwise). Decisions that change nothing held are always allowed.
pub fn authorised(decision: &VersionDecision, held: &[HeldVersion], requester: &Origin) -> bool {
    let target = match decision {
        VersionDecision::Replace { previous, .. } => previous,
        VersionDecision::Delete { target, .. } => target,
        _ => return true,
    };
    find(held, target)
        .and_then(|h| h.origin.as_ref())
        .is_none_or(|origin| origin.allows(requester))
}

/// The version facts of a received document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingVersion {
    pub id: InstanceId,
    pub set_id: Option<InstanceId>,
    pub version: Option<u32>,
    /// `relatedDocument[@typeCode='RPLC']/parentDocument/id`.
    pub replaces: Option<InstanceId>,
    /// The METADATA.XML `action`.
    pub action: Option<XdmAction>,
    /// SHA-1 (lower-case hex) of the document bytes, when verified.
    pub sha1: Option<String>,
}

impl IncomingVersion {
    pub fn from_header(
        header: &CdaHeader,
        action: Option<XdmAction>,
        sha1: Option<String>,
    ) -> Self {
        IncomingVersion {
            id: header.id.clone(),
            set_id: header.set_id.clone(),
            version: header.version,
            replaces: header.replaces.clone(),
            action,
            sha1,
        }
    }

    /// `action` C, or an RPLC relation without an action (spec §2.1 fallback).
    pub fn is_replacement(&self) -> bool {
        match self.action {
            Some(XdmAction::Replace) => true,
            Some(XdmAction::Delete) => false,
            None => self.replaces.is_some(),
        }
    }
}

/// Why a replacement or deletion cannot be applied (volet code 900).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// The version to replace is not held.
    ReplacedNotHeld(InstanceId),
    /// The version to replace is held but is not the latest (or was deleted).
    ReplacedNotLatest(InstanceId, HeldState),
    /// `action` C without RPLC, and no latest version of the same setId to replace.
    NothingToReplace,
    /// The replaced version belongs to another setId, or has a higher version number.
    InconsistentVersion(InstanceId),
    /// The version to delete is not held at all.
    DeleteNotHeld,
    /// The version to delete is not our latest of its setId.
    DeleteNotLatest,
}

impl VersionProblem {
    pub fn explain_fr(&self) -> String {
        match self {
            Self::ReplacedNotHeld(id) => format!(
                "Le document remplace la version {} que nous ne détenons pas.",
                show(id)
            ),
            Self::ReplacedNotLatest(id, _) => format!(
                "Le document remplace la version {}, qui n'est pas la plus récente détenue.",
                show(id)
            ),
            Self::NothingToReplace => {
                "Demande de remplacement sans version précédente identifiable.".into()
            }
            Self::InconsistentVersion(id) => format!(
                "Le document se présente comme remplaçant {}, mais le lot (setId) ou le numéro de version ne concordent pas.",
                show(id)
            ),
            Self::DeleteNotHeld => {
                "Demande de suppression d'un document que nous ne détenons pas.".into()
            }
            Self::DeleteNotLatest => {
                "Demande de suppression d'une version qui n'est pas la plus récente détenue.".into()
            }
        }
    }
}

/// `root` or `root^extension`, as XDS writes a uniqueId.
pub fn show(id: &InstanceId) -> String {
    match &id.extension {
        Some(ext) => format!("{}^{}", id.root, ext),
        None => id.root.clone(),
    }
}

/// What to do with the document's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDecision {
    /// A document we never had: file it.
    New,
    /// File it as the new latest version; `previous` becomes superseded.
    Replace {
        previous: InstanceId,
        /// Patient the previous version is filed under.
        patient: String,
    },
    /// Delete `target` (kept in the history as deleted).
    Delete {
        target: InstanceId,
        patient: String,
        /// Ask a person first (the installation does not delete automatically).
        needs_confirmation: bool,
    },
    /// Already filed (or, for a deletion, already deleted or pending): flag it, file nothing.
    AlreadyIntegrated {
        held: InstanceId,
        state: HeldState,
        /// Whether the bytes are identical, when both hashes are known.
        same_content: Option<bool>,
    },
    /// Cannot be applied: code 900.
    Fail(VersionProblem),
}

fn same_id(a: &InstanceId, b: &InstanceId) -> bool {
    a.root.trim() == b.root.trim()
        && a.extension.as_deref().map(str::trim) == b.extension.as_deref().map(str::trim)
}

fn find<'a>(held: &'a [HeldVersion], id: &InstanceId) -> Option<&'a HeldVersion> {
    held.iter().find(|h| same_id(&h.id, id))
}

fn is_live(state: HeldState) -> bool {
    matches!(state, HeldState::Current | HeldState::PendingDeletion)
}

/// Decides the version outcome of `doc` against the `held` versions (the
/// shell passes those sharing its id, setId or replaced id; more is harmless).
pub fn decide_version(
    doc: &IncomingVersion,
    held: &[HeldVersion],
    auto_delete: bool,
) -> VersionDecision {
    if doc.action == Some(XdmAction::Delete) {
        return decide_delete(doc, held, auto_delete);
    }
    if let Some(h) = find(held, &doc.id) {
        return already(doc, h);
    }
    if !doc.is_replacement() {
        return VersionDecision::New;
    }
    let target = match &doc.replaces {
        Some(id) => match find(held, id) {
            Some(h) => h,
            None => return VersionDecision::Fail(VersionProblem::ReplacedNotHeld(id.clone())),
        },
        None => match latest_of_set(doc, held) {
            Some(h) => h,
            None => return VersionDecision::Fail(VersionProblem::NothingToReplace),
        },
    };
    if !is_live(target.state) {
        return VersionDecision::Fail(VersionProblem::ReplacedNotLatest(
            target.id.clone(),
            target.state,
        ));
    }
    let set_differs = matches!((&doc.set_id, &target.set_id), (Some(a), Some(b)) if !same_id(a, b));
    let version_backwards =
        matches!((doc.version, target.version), (Some(new), Some(old)) if new <= old);
    if set_differs || version_backwards {
        return VersionDecision::Fail(VersionProblem::InconsistentVersion(target.id.clone()));
    }
    VersionDecision::Replace {
        previous: target.id.clone(),
        patient: target.patient.clone(),
    }
}

fn already(doc: &IncomingVersion, h: &HeldVersion) -> VersionDecision {
    VersionDecision::AlreadyIntegrated {
        held: h.id.clone(),
        state: h.state,
        same_content: match (&doc.sha1, &h.sha1) {
            (Some(a), Some(b)) => Some(a.eq_ignore_ascii_case(b)),
            _ => None,
        },
    }
}

/// The live version of the document's setId, when it is older than the document.
fn latest_of_set<'a>(doc: &IncomingVersion, held: &'a [HeldVersion]) -> Option<&'a HeldVersion> {
    let set = doc.set_id.as_ref()?;
    held.iter()
        .filter(|h| is_live(h.state))
        .filter(|h| h.set_id.as_ref().is_some_and(|s| same_id(s, set)))
        .filter(|h| match (doc.version, h.version) {
            (Some(new), Some(old)) => old < new,
            _ => true,
        })
        .max_by_key(|h| h.version)
}

/// A deletion carries the latest version of the document to delete.
fn decide_delete(
    doc: &IncomingVersion,
    held: &[HeldVersion],
    auto_delete: bool,
) -> VersionDecision {
    match find(held, &doc.id) {
        Some(h) if matches!(h.state, HeldState::Deleted | HeldState::PendingDeletion) => {
            already(doc, h)
        }
        Some(h) if h.state == HeldState::Current => VersionDecision::Delete {
            target: h.id.clone(),
            patient: h.patient.clone(),
            needs_confirmation: !auto_delete,
        },
        Some(_) => VersionDecision::Fail(VersionProblem::DeleteNotLatest),
        None => {
            let in_set = doc.set_id.as_ref().is_some_and(|set| {
                held.iter()
                    .any(|h| h.set_id.as_ref().is_some_and(|s| same_id(s, set)))
            });
            VersionDecision::Fail(if in_set {
                VersionProblem::DeleteNotLatest
            } else {
                VersionProblem::DeleteNotHeld
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(root: &str) -> InstanceId {
        InstanceId {
            root: root.into(),
            extension: None,
        }
    }

    fn held(root: &str, version: u32, state: HeldState) -> HeldVersion {
        HeldVersion {
            id: id(root),
            set_id: Some(id("set")),
            version: Some(version),
            patient: "P1".into(),
            state,
            sha1: Some("aa".into()),
            origin: None,
        }
    }

    fn incoming(
        root: &str,
        version: u32,
        replaces: Option<&str>,
        action: Option<XdmAction>,
    ) -> IncomingVersion {
        IncomingVersion {
            id: id(root),
            set_id: Some(id("set")),
            version: Some(version),
            replaces: replaces.map(id),
            action,
            sha1: Some("AA".into()),
        }
    }

    #[test]
    fn new_duplicate_replace_delete() {
        let v1 = [held("v1", 1, HeldState::Current)];
        assert_eq!(
            decide_version(&incoming("v1", 1, None, None), &[], false),
            VersionDecision::New
        );
        assert_eq!(
            decide_version(&incoming("v1", 1, None, None), &v1, false),
            VersionDecision::AlreadyIntegrated {
                held: id("v1"),
                state: HeldState::Current,
                same_content: Some(true)
            }
        );
        let replace = incoming("v2", 2, Some("v1"), Some(XdmAction::Replace));
        assert_eq!(
            decide_version(&replace, &v1, false),
            VersionDecision::Replace {
                previous: id("v1"),
                patient: "P1".into()
            }
        );
        // RPLC without the metadata action is still a replacement.
        let rplc_only = incoming("v2", 2, Some("v1"), None);
        assert!(matches!(
            decide_version(&rplc_only, &v1, false),
            VersionDecision::Replace { .. }
        ));
        // Action C without RPLC: the latest of the set.
        let c_only = incoming("v2", 2, None, Some(XdmAction::Replace));
        assert!(matches!(
            decide_version(&c_only, &v1, false),
            VersionDecision::Replace { .. }
        ));
        let delete = incoming("v1", 1, None, Some(XdmAction::Delete));
        assert_eq!(
            decide_version(&delete, &v1, false),
            VersionDecision::Delete {
                target: id("v1"),
                patient: "P1".into(),
                needs_confirmation: true
            }
        );
        assert!(matches!(
            decide_version(&delete, &v1, true),
            VersionDecision::Delete {
                needs_confirmation: false,
                ..
            }
        ));
    }

    #[test]
    fn wrong_versions_are_900() {
        let history = [
            held("v1", 1, HeldState::Superseded),
            held("v2", 2, HeldState::Current),
        ];
        let stale = incoming("v2b", 2, Some("v1"), Some(XdmAction::Replace));
        assert_eq!(
            decide_version(&stale, &history, false),
            VersionDecision::Fail(VersionProblem::ReplacedNotLatest(
                id("v1"),
                HeldState::Superseded
            ))
        );
        let unknown = incoming("v9", 9, Some("v8"), Some(XdmAction::Replace));
        assert_eq!(
            decide_version(&unknown, &history, false),
            VersionDecision::Fail(VersionProblem::ReplacedNotHeld(id("v8")))
        );
        let backwards = incoming("v0", 1, Some("v2"), None);
        assert_eq!(
            decide_version(&backwards, &history, false),
            VersionDecision::Fail(VersionProblem::InconsistentVersion(id("v2")))
        );
        let old_delete = incoming("v1", 1, None, Some(XdmAction::Delete));
        assert_eq!(
            decide_version(&old_delete, &history, false),
            VersionDecision::Fail(VersionProblem::DeleteNotLatest)
        );
        let missing_delete = incoming("v3", 3, None, Some(XdmAction::Delete));
        assert_eq!(
            decide_version(&missing_delete, &history, false),
            VersionDecision::Fail(VersionProblem::DeleteNotLatest)
        );
        assert_eq!(
            decide_version(&missing_delete, &[], false),
            VersionDecision::Fail(VersionProblem::DeleteNotHeld)
        );
        assert_eq!(
            decide_version(
                &incoming("v3", 3, None, Some(XdmAction::Replace)),
                &[],
                false
            ),
            VersionDecision::Fail(VersionProblem::NothingToReplace)
        );
    }

    #[test]
    fn a_deletion_seen_twice_is_recognised() {
        let pending = [held("v1", 1, HeldState::PendingDeletion)];
        let delete = incoming("v1", 1, None, Some(XdmAction::Delete));
        assert!(matches!(
            decide_version(&delete, &pending, false),
            VersionDecision::AlreadyIntegrated {
                state: HeldState::PendingDeletion,
                ..
            }
        ));
    }
}
