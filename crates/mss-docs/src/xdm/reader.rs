//! Reading a received package: zip checks, METADATA.XML, documents.

use std::io::{Cursor, Read};
use std::sync::{Arc, OnceLock};

use zip::ZipArchive;
use zip::result::ZipError;

use super::limits::Limits;
use super::metadata::{self, RawEntry};
use super::{Document, XdmError, XdmPackage, sha1_of};
use crate::cda::CdaHeader;
use crate::xml::{self, XmlError};

/// One file of the archive, decompressed.
struct Entry {
    /// Name as stored, `/`-separated.
    name: String,
    /// Lower-case name, for case-insensitive lookups.
    key: String,
    bytes: Arc<[u8]>,
    /// SHA-1, computed once however many entries point here.
    sha1: OnceLock<String>,
    /// CDA header (or why it did not parse), read once however many
    /// entries point here: up to `max_entries` DocumentEntries may share one
    /// file, and each header read may cost up to `cda::MAX_HEADER_BYTES`.
    cda: OnceLock<Result<CdaHeader, String>>,
}

impl Entry {
    fn sha1_hex(&self) -> &str {
        self.sha1.get_or_init(|| hex::encode(sha1_of(&self.bytes)))
    }

    fn cda(&self) -> &Result<CdaHeader, String> {
        self.cda
            .get_or_init(|| crate::cda::parse_header(&self.bytes).map_err(|e| e.to_string()))
    }
}

/// Reads an XDM package held in memory. Nothing is written to disk.
///
/// Fails on an unsafe or oversized archive and on a missing or unreadable
/// `METADATA.XML`. A document whose file is missing or whose hash or size do
/// not match is *reported* ([`Document::hash_ok`], [`Document::size_ok`],
/// [`XdmPackage::integrity_errors`]), not refused: the caller decides.
pub fn read(zip_bytes: &[u8], limits: &Limits) -> Result<XdmPackage, XdmError> {
    let entries = unzip(zip_bytes, limits)?;
    let mut metadata: Vec<&Entry> = entries.iter().filter(|e| is_metadata(&e.key)).collect();
    metadata.sort_by(|a, b| a.key.cmp(&b.key).then(a.name.cmp(&b.name)));
    let Some(meta) = metadata.first() else {
        return Err(XdmError::MetadataMissing);
    };
    let path = meta.name.clone();
    let text = xml::text(&meta.bytes).map_err(|e| metadata_xml_error(&path, e))?;
    let doc = xml::parse(text).map_err(|e| metadata_xml_error(&path, e))?;
    let raw =
        metadata::parse(&doc, limits.max_entries).map_err(|reason| XdmError::MetadataInvalid {
            path: path.clone(),
            reason,
        })?;

    let documents: Vec<Document> = raw
        .entries
        .into_iter()
        .map(|entry| document(entry, &meta.key, &entries))
        .collect();
    let action = raw
        .action
        .or_else(|| documents.iter().find_map(|d| d.action));
    Ok(XdmPackage {
        action,
        submission_set: raw.submission_set,
        documents,
        metadata_path: path,
        ignored_metadata: metadata[1..].iter().map(|e| e.name.clone()).collect(),
    })
}

fn metadata_xml_error(path: &str, error: XmlError) -> XdmError {
    match error {
        XmlError::Dtd => XdmError::MetadataDtd { path: path.into() },
        other => XdmError::MetadataMalformed {
            path: path.into(),
            reason: other.to_string(),
        },
    }
}

/// `…/IHE_XDM/…/METADATA.XML`, at any depth below an `IHE_XDM` folder.
fn is_metadata(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.last() == Some(&"metadata.xml")
        && parts[..parts.len() - 1].contains(&"ihe_xdm")
        && parts.len() >= 3
        && parts[parts.len() - 2] != "ihe_xdm"
}

fn open_error(bytes: &[u8], error: ZipError) -> XdmError {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        XdmError::Truncated(error.to_string())
    } else {
        XdmError::NotZip(error.to_string())
    }
}

/// Every file entry, checked and decompressed within `limits`.
fn unzip(bytes: &[u8], limits: &Limits) -> Result<Vec<Entry>, XdmError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| open_error(bytes, e))?;
    if archive.len() > limits.max_entries {
        return Err(XdmError::TooManyEntries {
            count: archive.len(),
            max: limits.max_entries,
        });
    }
    if archive.has_duplicate_names() {
        // The zip crate keeps one entry per name and only tells that some
        // were dropped.
        return Err(XdmError::DuplicateName(
            "two central directory entries".into(),
        ));
    }
    // Names are resolved case-insensitively: names equal but for case are
    // just as ambiguous.
    let mut keys: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.to_ascii_lowercase()).unwrap_or_default())
        .collect();
    keys.sort();
    if let Some(pair) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(XdmError::DuplicateName(pair[0].clone()));
    }
    match archive.has_overlapping_entries() {
        Ok(false) => {}
        Ok(true) => return Err(XdmError::OverlappingEntries),
        Err(e) => return Err(XdmError::Truncated(e.to_string())),
    }

    // First pass, metadata only: refuse early on names, flags and declared sizes.
    let mut declared_total: u64 = 0;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_data(i)
            .map_err(|e| XdmError::Truncated(e.to_string()))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(entry.name_raw()).into_owned());
        if entry.enclosed_name().is_none() || !is_relative_clean(&name) {
            return Err(XdmError::UnsafePath(name));
        }
        if entry.encrypted() {
            return Err(XdmError::Encrypted(name));
        }
        if entry.is_symlink() {
            return Err(XdmError::Symlink(name));
        }
        if entry.is_dir() {
            continue;
        }
        let check = Budget {
            name: &name,
            compressed: entry.compressed_size(),
            limits,
        };
        check.verify(entry.size())?;
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > limits.max_total_size {
            return Err(XdmError::TotalTooLarge {
                max: limits.max_total_size,
            });
        }
        files.push((i, name, entry.compressed_size()));
    }

    // Second pass: decompress through `take`, never trusting declared sizes.
    let mut total: u64 = 0;
    let mut entries = Vec::with_capacity(files.len());
    for (i, name, compressed) in files {
        let budget = Budget {
            name: &name,
            compressed,
            limits,
        };
        let remaining = limits.max_total_size - total;
        let cap = budget.max_expansion().min(remaining);
        let file = archive.by_index(i).map_err(|e| XdmError::EntryCorrupt {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let declared = file.size();
        let mut bytes = Vec::with_capacity(declared.min(cap).min(1 << 20) as usize);
        file.take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&name, e))?;
        let actual = bytes.len() as u64;
        budget.verify(actual)?;
        if actual > remaining {
            return Err(XdmError::TotalTooLarge {
                max: limits.max_total_size,
            });
        }
        total += actual;
        let key = name.to_ascii_lowercase();
        entries.push(Entry {
            name,
            key,
            bytes: bytes.into(),
            sha1: OnceLock::new(),
            cda: OnceLock::new(),
        });
    }
    Ok(entries)
}

fn read_error(name: &str, error: std::io::Error) -> XdmError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        XdmError::Truncated(format!("{name}: {error}"))
    } else {
        XdmError::EntryCorrupt {
            name: name.into(),
            reason: error.to_string(),
        }
    }
}

/// Per-entry size limits.
struct Budget<'a> {
    name: &'a str,
    compressed: u64,
    limits: &'a Limits,
}

impl Budget<'_> {
    /// Most bytes the entry may expand to under the entry and ratio limits.
    fn max_expansion(&self) -> u64 {
        let by_ratio = self
            .compressed
            .max(1)
            .saturating_mul(self.limits.max_ratio)
            .max(self.limits.ratio_floor);
        self.limits.max_entry_size.min(by_ratio)
    }

    fn verify(&self, size: u64) -> Result<(), XdmError> {
        if size > self.limits.max_entry_size {
            return Err(XdmError::EntryTooLarge {
                name: self.name.into(),
                max: self.limits.max_entry_size,
            });
        }
        if size > self.max_expansion() {
            return Err(XdmError::RatioExceeded {
                name: self.name.into(),
                max_ratio: self.limits.max_ratio,
            });
        }
        Ok(())
    }
}

/// No absolute path, drive letter, `.`/`..` component or backslash tricks.
fn is_relative_clean(name: &str) -> bool {
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\0') {
        return false;
    }
    if name.as_bytes().get(1) == Some(&b':') {
        return false;
    }
    name.split(['/', '\\']).all(|part| part != "..")
}

/// Normalised URI: `/` separators, no `./`, lower case. `None` when it tries
/// to leave the package.
fn uri_key(uri: &str) -> Option<String> {
    let uri = uri.trim().replace('\\', "/");
    let uri = uri.strip_prefix("file:").unwrap_or(&uri);
    let mut parts = Vec::new();
    for part in uri.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p.to_ascii_lowercase()),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Finds the file of `uri`: relative to the METADATA.XML folder, then to
/// the `IHE_XDM` folder, then by file name.
fn resolve<'a>(uri: &str, metadata_key: &str, entries: &'a [Entry]) -> Option<&'a Entry> {
    let uri = uri_key(uri)?;
    let meta_dir = metadata_key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let xdm_dir = match meta_dir.rfind("ihe_xdm") {
        Some(pos) => &meta_dir[..pos + "ihe_xdm".len()],
        None => meta_dir,
    };
    for base in [meta_dir, xdm_dir] {
        let wanted = format!("{base}/{uri}");
        if let Some(entry) = entries.iter().find(|e| e.key == wanted) {
            return Some(entry);
        }
    }
    let base_name = uri.rsplit('/').next()?;
    entries
        .iter()
        .filter(|e| e.key.rsplit('/').next() == Some(base_name) && e.key != metadata_key)
        .min_by(|a, b| a.key.cmp(&b.key))
}

fn looks_like_cda(mime: Option<&str>, bytes: &[u8]) -> bool {
    let xml_mime = mime.is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m == "text/xml" || m == "application/xml" || m.ends_with("+xml")
    });
    let head = &bytes[..bytes.len().min(8192)];
    let sniffed = head.windows(17).any(|w| w == b"ClinicalDocument ")
        || head.windows(17).any(|w| w == b"ClinicalDocument>");
    !bytes.is_empty() && (xml_mime || sniffed)
}

fn document(raw: RawEntry, metadata_key: &str, entries: &[Entry]) -> Document {
    let file = raw
        .uri
        .as_deref()
        .and_then(|uri| resolve(uri, metadata_key, entries));
    let declared_size = raw
        .size
        .as_deref()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let (path, content) = match file {
        Some(entry) => (Some(entry.name.clone()), Arc::clone(&entry.bytes)),
        None => (None, Arc::from(Vec::new())),
    };
    let hash_ok = file.is_some_and(|entry| {
        raw.hash
            .as_deref()
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(entry.sha1_hex()))
    });
    let size_ok = file.is_some() && declared_size == Some(content.len() as u64);
    let (cda, cda_error) = match file {
        Some(entry) if looks_like_cda(raw.mime_type.as_deref(), &content) => match entry.cda() {
            Ok(header) => (Some(header.clone()), None),
            Err(e) => (None, Some(e.clone())),
        },
        _ => (None, None),
    };
    Document {
        path,
        unique_id: raw.unique_id,
        patient_id: raw.patient_id,
        type_code: raw.type_code,
        class_code: raw.class_code,
        format_code: raw.format_code,
        hash: raw.hash,
        size: declared_size,
        hash_ok,
        size_ok,
        cda,
        cda_error,
        uri: raw.uri,
        mime_type: raw.mime_type,
        title: raw.title,
        creation_time: raw.creation_time,
        entry_uuid: raw.entry_uuid,
        action: raw.action,
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_location() {
        assert!(is_metadata("ihe_xdm/subset01/metadata.xml"));
        assert!(is_metadata("ka202401/ihe_xdm/ss000001/metadata.xml"));
        assert!(!is_metadata("ihe_xdm/metadata.xml"));
        assert!(!is_metadata("subset01/metadata.xml"));
        assert!(!is_metadata("ihe_xdm/subset01/doc0001.xml"));
    }

    #[test]
    fn clean_names() {
        assert!(is_relative_clean("IHE_XDM/SUBSET01/DOC0001.XML"));
        assert!(!is_relative_clean("../etc/passwd"));
        assert!(!is_relative_clean("a/../../b"));
        assert!(!is_relative_clean("/etc/passwd"));
        assert!(!is_relative_clean("C:/x"));
        assert!(!is_relative_clean("a\\..\\b"));
    }

    #[test]
    fn uri_keys() {
        assert_eq!(uri_key("./DOC0001.XML").as_deref(), Some("doc0001.xml"));
        assert_eq!(
            uri_key("SS000001\\KOS.DCM").as_deref(),
            Some("ss000001/kos.dcm")
        );
        assert_eq!(uri_key("../x"), None);
        assert_eq!(uri_key(""), None);
    }
}
