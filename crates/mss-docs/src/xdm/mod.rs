//! IHE XDM packages (ITI-32 "Distribute Document Set on Media", ZIP over
//! email) as MSSanté uses them: a zip holding `README.TXT`, `INDEX.HTM` and
//! `IHE_XDM/<subset>/METADATA.XML` plus the documents it describes.
//!
//! - [`read`] opens a received package in memory only (nothing touches the
//!   disk), refuses unsafe or oversized archives (see [`Limits`]), parses the
//!   ebRIM 3.0 `METADATA.XML` whatever its namespace prefixes, resolves each
//!   document, checks its SHA-1 and size and parses the CDA header.
//! - [`write`] builds a package from CDA documents, deterministically: same
//!   inputs, same bytes.
//!
//! # Choices
//!
//! - **Several submission sets.** MSSanté sends one patient per message, so a
//!   package normally holds one `METADATA.XML`. When there are several, the
//!   first in path order (case-insensitive) is read and the others are listed
//!   in [`XdmPackage::ignored_metadata`].
//! - **`action` extra metadata.** The exact ebRIM spelling is not published
//!   (spec §2.1). The writer emits a Slot named `action` with value `C`
//!   (replace) or `D` (delete) on every DocumentEntry *and* on the
//!   SubmissionSet. The reader accepts, on both, any Slot named `action` or
//!   ending with `:action` (case-insensitive) valued `C` or `D`; failing that,
//!   an `urn:ihe:iti:2007:AssociationType:RPLC` association means replace.
//! - **Codes** (`type_code`, `class_code`, `format_code`) are [`Coded`]
//!   objects `{code, system, display}` in Rust and in JSON: `code` is the
//!   Classification `nodeRepresentation`, `system` its `codingScheme` slot,
//!   `display` its `Name`.

mod limits;
mod metadata;
mod reader;
mod vocab;
mod writer;

use serde::{Serialize, Serializer};

use crate::cda::{CdaHeader, Coded};

pub use limits::Limits;
pub use reader::read;
pub(crate) use writer::patient_cx;
pub use writer::{PackAuthor, PackRequest, Readme, SubmissionTime, XdmInput, write};

/// What a package asks the receiver to do with its documents (MSSanté
/// `action` extra metadata). No action means an initial transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `C`: the documents replace their previous version.
    Replace,
    /// `D`: the documents (latest version) must be deleted.
    Delete,
}

impl Action {
    /// The metadata value: `C` or `D`.
    pub fn code(self) -> &'static str {
        match self {
            Action::Replace => "C",
            Action::Delete => "D",
        }
    }

    /// `C` or `D`, any case and surrounding spaces; anything else is `None`.
    pub fn from_code(value: &str) -> Option<Self> {
        match value.trim() {
            "C" | "c" => Some(Action::Replace),
            "D" | "d" => Some(Action::Delete),
            _ => None,
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// The SubmissionSet of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubmissionSet {
    pub unique_id: Option<String>,
    pub source_id: Option<String>,
    /// CX as written, e.g. `279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH`.
    pub patient_id: Option<String>,
    /// `YYYYMMDDhhmmss` (UTC) as written.
    pub submission_time: Option<String>,
}

/// One DocumentEntry of a package and the file it points to.
///
/// Serialises to `{path, unique_id, patient_id, type_code, class_code,
/// format_code, hash, size, hash_ok, size_ok, cda}`; the other fields are for
/// Rust callers only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    /// Path of the file inside the zip, `None` when no entry matches the URI.
    pub path: Option<String>,
    pub unique_id: Option<String>,
    pub patient_id: Option<String>,
    pub type_code: Option<Coded>,
    pub class_code: Option<Coded>,
    pub format_code: Option<Coded>,
    /// SHA-1 declared in the metadata, as written.
    pub hash: Option<String>,
    /// Size declared in the metadata.
    pub size: Option<u64>,
    /// The declared hash matches the file (false when either is missing).
    pub hash_ok: bool,
    /// The declared size matches the file (false when either is missing).
    pub size_ok: bool,
    /// Header of the document when it is a CDA that parsed.
    pub cda: Option<CdaHeader>,
    /// Why the CDA header could not be read, when the document looks like a
    /// CDA but did not parse.
    #[serde(skip)]
    pub cda_error: Option<String>,
    /// `URI` slot as written.
    #[serde(skip)]
    pub uri: Option<String>,
    #[serde(skip)]
    pub mime_type: Option<String>,
    #[serde(skip)]
    pub title: Option<String>,
    #[serde(skip)]
    pub creation_time: Option<String>,
    /// ebRIM `id` (entryUUID) of the DocumentEntry.
    #[serde(skip)]
    pub entry_uuid: Option<String>,
    /// Action read on this DocumentEntry (slot, or RPLC association).
    #[serde(skip)]
    pub action: Option<Action>,
    /// Shared with any other DocumentEntry pointing at the same file.
    #[serde(skip)]
    content: std::sync::Arc<[u8]>,
}

impl Document {
    /// The bytes of the document file (empty when the file is missing).
    pub fn content(&self) -> &[u8] {
        &self.content
    }
}

/// A package read by [`read`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XdmPackage {
    /// Package action: the SubmissionSet's, else the first DocumentEntry's.
    pub action: Option<Action>,
    pub submission_set: SubmissionSet,
    pub documents: Vec<Document>,
    /// Path of the `METADATA.XML` that was read.
    #[serde(skip)]
    pub metadata_path: String,
    /// Other `METADATA.XML` files found and not read (see module docs).
    #[serde(skip)]
    pub ignored_metadata: Vec<String>,
}

/// A document whose file does not match its metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error(
        "document {unique_id}: no file in the package matches URI {uri:?}; ask the sender to resend a complete package"
    )]
    Missing { unique_id: String, uri: String },
    #[error(
        "document {unique_id}: SHA-1 {actual} does not match the declared hash {declared:?}; the file was altered or the metadata is wrong, do not integrate it"
    )]
    HashMismatch {
        unique_id: String,
        declared: Option<String>,
        actual: String,
    },
    #[error(
        "document {unique_id}: {actual} bytes where the metadata declares {declared:?}; the file was altered or the metadata is wrong, do not integrate it"
    )]
    SizeMismatch {
        unique_id: String,
        declared: Option<u64>,
        actual: u64,
    },
}

impl XdmPackage {
    /// Every document whose file is missing or does not match its declared
    /// hash or size. Empty when the package is intact.
    pub fn integrity_errors(&self) -> Vec<IntegrityError> {
        let mut errors = Vec::new();
        for doc in &self.documents {
            let unique_id = doc
                .unique_id
                .clone()
                .unwrap_or_else(|| "(no uniqueId)".into());
            if doc.path.is_none() {
                errors.push(IntegrityError::Missing {
                    unique_id,
                    uri: doc.uri.clone().unwrap_or_default(),
                });
                continue;
            }
            if !doc.hash_ok {
                errors.push(IntegrityError::HashMismatch {
                    unique_id: unique_id.clone(),
                    declared: doc.hash.clone(),
                    actual: hex::encode(sha1_of(&doc.content)),
                });
            }
            if !doc.size_ok {
                errors.push(IntegrityError::SizeMismatch {
                    unique_id,
                    declared: doc.size,
                    actual: doc.content.len() as u64,
                });
            }
        }
        errors
    }
}

pub(crate) fn sha1_of(bytes: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(bytes).into()
}

/// Why a package could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdmError {
    // ---- reading: the archive ----
    #[error("the attachment is not a zip archive ({0}); an XDM package must be an IHE_XDM.ZIP")]
    NotZip(String),
    #[error("the zip archive is truncated or damaged ({0}); ask the sender to resend it")]
    Truncated(String),
    #[error("the zip archive has {count} entries, more than the {max} allowed; refused")]
    TooManyEntries { count: usize, max: usize },
    #[error("zip entry {0:?} has an absolute or parent-relative path; refused as unsafe")]
    UnsafePath(String),
    #[error(
        "zip entry {0:?} is encrypted; XDM packages must not be encrypted, ask for a plain one"
    )]
    Encrypted(String),
    #[error("zip entry {0:?} is a symbolic link; refused as unsafe")]
    Symlink(String),
    #[error("the zip archive holds the same entry name twice ({0}); refused as ambiguous")]
    DuplicateName(String),
    #[error("zip entries overlap each other in the archive (zip bomb pattern); refused")]
    OverlappingEntries,
    #[error("zip entry {name:?} expands beyond {max} bytes; refused")]
    EntryTooLarge { name: String, max: u64 },
    #[error(
        "zip entry {name:?} expands more than {max_ratio} times its compressed size (zip bomb pattern); refused"
    )]
    RatioExceeded { name: String, max_ratio: u64 },
    #[error("the zip archive expands beyond {max} bytes in total; refused")]
    TotalTooLarge { max: u64 },
    #[error("zip entry {name:?} is corrupt ({reason}); ask the sender to resend the package")]
    EntryCorrupt { name: String, reason: String },
    // ---- reading: the metadata ----
    #[error("no IHE_XDM/…/METADATA.XML in the archive; it is not an XDM package")]
    MetadataMissing,
    #[error("{path} declares a DTD, refused: DTDs allow external entities and entity bombs")]
    MetadataDtd { path: String },
    #[error("{path} is not well-formed XML ({reason}); ask the sender to fix its XDM export")]
    MetadataMalformed { path: String, reason: String },
    #[error(
        "{path} is not an ebRIM SubmitObjectsRequest ({reason}); ask the sender to fix its XDM export"
    )]
    MetadataInvalid { path: String, reason: String },
    // ---- writing ----
    #[error("no document to pack; give at least one CDA")]
    NoDocuments,
    #[error("too many documents ({0}); an XDM subset holds at most 9999")]
    TooManyDocuments(usize),
    #[error(
        "document {0} has no patient identifier (INS or other recordTarget id); cannot build patientId"
    )]
    NoPatientId(String),
    #[error(
        "documents are for different patients ({first} and {other}); MSSanté sends one patient per package"
    )]
    MixedPatients { first: String, other: String },
    #[error("document {0} appears twice in the package; pack each document once")]
    DuplicateDocument(String),
    #[error("document {0} has no code; typeCode cannot be derived, fix the CDA header")]
    NoTypeCode(String),
    #[error(
        "no classCode known for document type {0}; pass XdmInput::class_code (ASS_X04 correspondence)"
    )]
    UnknownClassCode(String),
    #[error("submission time {0:?} is not a valid YYYYMMDDhhmmss UTC time from 1980 on")]
    InvalidSubmissionTime(String),
    #[error("source id {0:?} is not an OID; give the sending system's OID")]
    InvalidSourceId(String),
    #[error("building the zip failed: {0}")]
    ZipWrite(String),
}
