//! The streaming pre-scan: finds where the header ends without reading the body.
//!
//! quick-xml walks the document only until the start of the depth-1
//! `component` of `ClinicalDocument`, checks on the way that the root really is
//! a CDA, refuses any DTD (entities are never expanded: quick-xml does not
//! expand them and this scan never unescapes text), then peeks at the first
//! child of `component` to tell a level-1 body from a level-3 one. The tail of
//! the document is checked for the closing root tag, so a truncated transfer
//! is caught without reading the body in between.

use quick_xml::NsReader;
use quick_xml::errors::{Error as QxError, SyntaxError};
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

use super::{BodyLevel, CdaError, HL7_NS, MAX_HEADER_BYTES};
use crate::xml::XmlError;

const XSL_NS: &str = "http://www.w3.org/1999/XSL/Transform";

/// What the pre-scan learnt about a document.
#[derive(Debug)]
pub(super) struct Scan {
    /// Byte offset (in the input, BOM included) of the `<` of the depth-1 `component`.
    pub header_end: usize,
    /// Qualified name of the root element as written (`ClinicalDocument`, `cda:ClinicalDocument`…).
    pub root_qname: String,
    pub level: BodyLevel,
}

fn is_hl7(ns: &ResolveResult<'_>) -> bool {
    matches!(ns, ResolveResult::Bound(Namespace(uri)) if *uri == HL7_NS)
}

/// `{namespace}local` for an error message.
fn describe(ns: &ResolveResult<'_>, local: &str) -> String {
    match ns {
        ResolveResult::Bound(Namespace(uri)) => format!("{{{uri}}}{local}"),
        _ => format!("{local} (no namespace)"),
    }
}

fn check_root(ns: &ResolveResult<'_>, local: &str) -> Result<(), CdaError> {
    if is_hl7(ns) && local == "ClinicalDocument" {
        return Ok(());
    }
    if matches!(ns, ResolveResult::Bound(Namespace(uri)) if *uri == XSL_NS) {
        return Err(CdaError::XslWrapper);
    }
    Err(CdaError::NotCda(describe(ns, local)))
}

fn xml_error(bytes: &[u8], reader: &NsReader<&[u8]>, e: QxError) -> CdaError {
    match e {
        QxError::Encoding(_) => {
            let at = std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to());
            CdaError::Xml(XmlError::NotUtf8(at))
        }
        QxError::Syntax(
            SyntaxError::UnclosedPI
            | SyntaxError::UnclosedXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedDoctype
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedTag
            | SyntaxError::UnclosedSingleQuotedAttributeValue
            | SyntaxError::UnclosedDoubleQuotedAttributeValue,
        ) => CdaError::Truncated,
        other => {
            let near = match reader.error_position() {
                0 => reader.buffer_position(),
                at => at,
            };
            CdaError::Xml(XmlError::Malformed(format!("{other} (near byte {near})")))
        }
    }
}

/// Walks `bytes` (BOM already checked, still included) up to the body.
pub(super) fn scan(bytes: &[u8]) -> Result<Scan, CdaError> {
    let mut reader = NsReader::from_reader(bytes);
    let mut depth: usize = 0;
    let mut root_qname: Option<String> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        if before > MAX_HEADER_BYTES {
            return Err(CdaError::HeaderTooLarge(MAX_HEADER_BYTES));
        }
        let (ns, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(e) => return Err(xml_error(bytes, &reader, e)),
        };
        match event {
            Event::DocType(_) => return Err(CdaError::Xml(XmlError::Dtd)),
            Event::Start(start) => {
                if depth == 0 {
                    check_root(&ns, start.local_name().as_ref())?;
                    root_qname = Some(start.name().as_ref().to_owned());
                } else if depth == 1 && is_hl7(&ns) && start.local_name().as_ref() == "component" {
                    let level = peek_body(bytes, &mut reader)?;
                    let root_qname = root_qname.unwrap_or_default();
                    if !closes_root(bytes, root_qname.as_bytes()) {
                        return Err(CdaError::Truncated);
                    }
                    return Ok(Scan {
                        header_end: before,
                        root_qname,
                        level,
                    });
                }
                depth += 1;
            }
            Event::Empty(start) => {
                if depth == 0 {
                    check_root(&ns, start.local_name().as_ref())?;
                    return Err(CdaError::MissingBody);
                }
                if depth == 1 && is_hl7(&ns) && start.local_name().as_ref() == "component" {
                    return Err(CdaError::MissingBody);
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Err(CdaError::MissingBody);
                }
            }
            Event::Eof => {
                return Err(if root_qname.is_some() {
                    CdaError::Truncated
                } else if bytes.iter().all(u8::is_ascii_whitespace) {
                    CdaError::Empty
                } else {
                    CdaError::Xml(XmlError::Malformed("no root element".into()))
                });
            }
            Event::Text(text) if depth == 0 && !text.trim_ascii().is_empty() => {
                return Err(CdaError::Xml(XmlError::Malformed(format!(
                    "text outside the root element near byte {before}"
                ))));
            }
            _ => {}
        }
    }
}

/// Reads just past the start of `component` to its first child element.
fn peek_body(bytes: &[u8], reader: &mut NsReader<&[u8]>) -> Result<BodyLevel, CdaError> {
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(e) => return Err(xml_error(bytes, reader, e)),
        };
        match event {
            Event::Start(child) | Event::Empty(child) => {
                let local = child.local_name();
                return match local.as_ref() {
                    "nonXMLBody" if is_hl7(&ns) => Ok(BodyLevel::Unstructured),
                    "structuredBody" if is_hl7(&ns) => Ok(BodyLevel::Structured),
                    other => Err(CdaError::UnknownBody(describe(&ns, other))),
                };
            }
            Event::Text(text) if text.trim_ascii().is_empty() => {}
            Event::Comment(_) | Event::PI(_) => {}
            Event::End(_) => return Err(CdaError::MissingBody),
            Event::Eof => return Err(CdaError::Truncated),
            Event::DocType(_) => return Err(CdaError::Xml(XmlError::Dtd)),
            _ => return Err(CdaError::UnknownBody("text".into())),
        }
    }
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| !is_xml_space(b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Whether the document ends with `</qname>`, allowing trailing comments,
/// processing instructions and whitespace. Linear in the length of that tail.
pub(super) fn closes_root(bytes: &[u8], qname: &[u8]) -> bool {
    let mut rest = trim_end(bytes);
    loop {
        if rest.ends_with(b"-->") {
            match rfind(&rest[..rest.len() - 3], b"<!--") {
                Some(start) => rest = trim_end(&rest[..start]),
                None => return false,
            }
        } else if rest.ends_with(b"?>") {
            match rfind(&rest[..rest.len() - 2], b"<?") {
                Some(start) => rest = trim_end(&rest[..start]),
                None => return false,
            }
        } else {
            break;
        }
    }
    let Some(rest) = rest.strip_suffix(b">") else {
        return false;
    };
    let rest = trim_end(rest);
    rest.strip_suffix(qname)
        .is_some_and(|rest| rest.ends_with(b"</"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_tag_is_found_behind_comments_and_pis() {
        assert!(closes_root(b"<a>x</a>", b"a"));
        assert!(closes_root(b"<a>x</a >\n<!-- end -->\n<?pi x?>  ", b"a"));
        assert!(closes_root(b"<c:a>x</c:a>", b"c:a"));
        assert!(!closes_root(b"<a>x</b>", b"a"));
        assert!(!closes_root(b"<a>x</aa>", b"a"));
        assert!(!closes_root(b"<a>xxxxx", b"a"));
        assert!(!closes_root(b"-->", b"a"));
        assert!(!closes_root(b"", b"a"));
    }
}
