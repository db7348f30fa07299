//! The single streaming pass over the header.
//!
//! quick-xml tokenizes the document up to the start of the depth-1
//! `component` of `ClinicalDocument` and no further. Namespaces are resolved
//! here (a small scope stack: CDA headers declare a handful), so extraction
//! sees HL7 local names whatever the prefix. DTDs are refused, entities are
//! never expanded (only the five predefined ones and character references are
//! decoded, in the values that are read). The first child of `component`
//! gives the level; the tail of the document must hold the closing root tag.

use quick_xml::Reader;
use quick_xml::errors::{Error as QxError, IllFormedError, SyntaxError};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::extract::{Builder, Tag, descend};
use super::{BodyLevel, CdaError, CdaHeader, HL7_NS, MAX_HEADER_BYTES};
use crate::xml::XmlError;

const XSL_NS: &str = "http://www.w3.org/1999/XSL/Transform";
/// Deepest element nesting accepted in the header (real headers: about 12).
const MAX_DEPTH: usize = 256;
/// Most namespace declarations in scope at once.
const MAX_BINDINGS: usize = 128;
/// How far past the header cap the first child of `component` is looked for.
const PEEK_WINDOW: usize = 64 * 1024;

fn malformed(message: impl Into<String>) -> CdaError {
    CdaError::Xml(XmlError::Malformed(message.into()))
}

/// One `xmlns[:prefix]="uri"` declaration in scope.
struct Binding {
    prefix: Vec<u8>,
    uri: String,
}

/// The namespace an element name resolved to.
#[derive(Clone, Copy)]
struct Resolved<'s> {
    uri: &'s str,
    /// `uri` is [`HL7_NS`], compared once when it was declared.
    hl7: bool,
}

const NO_NAMESPACE: Resolved<'static> = Resolved {
    uri: "",
    hl7: false,
};

#[derive(Default)]
struct Namespaces {
    bindings: Vec<Binding>,
    /// Index in `bindings` of the default namespace in scope, if any: most
    /// CDA elements are unprefixed, so it is kept at hand.
    default: Option<usize>,
    /// Whether that default namespace is [`HL7_NS`].
    default_hl7: bool,
}

impl Namespaces {
    /// Pushes the declarations of `start`; returns how many were pushed.
    /// Declarations are rare: the caller looks for them with
    /// [`may_declare_namespace`] first.
    fn push(&mut self, start: &BytesStart<'_>) -> Result<u8, CdaError> {
        let mut pushed = 0u8;
        for attr in start.attributes() {
            let attr = attr.map_err(|e| malformed(e.to_string()))?;
            let key = attr.key.as_ref();
            let prefix: &[u8] = if key == b"xmlns" {
                b""
            } else if let Some(prefix) = key.strip_prefix(b"xmlns:") {
                prefix
            } else {
                continue;
            };
            if self.bindings.len() >= MAX_BINDINGS || pushed == u8::MAX {
                return Err(malformed(format!(
                    "more than {MAX_BINDINGS} namespace declarations in scope"
                )));
            }
            let uri = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| malformed(e.to_string()))?;
            self.bindings.push(Binding {
                prefix: prefix.to_owned(),
                uri: uri.into_owned(),
            });
            pushed += 1;
        }
        self.find_default();
        Ok(pushed)
    }

    fn pop(&mut self, count: u8) {
        if count > 0 {
            let keep = self.bindings.len().saturating_sub(usize::from(count));
            self.bindings.truncate(keep);
            self.find_default();
        }
    }

    fn find_default(&mut self) {
        let default = self.bindings.iter().rposition(|b| b.prefix.is_empty());
        self.default = default;
        self.default_hl7 = default
            .and_then(|i| self.bindings.get(i))
            .is_some_and(|b| b.uri == HL7_NS);
    }

    /// The namespace of an element name with this prefix (`b""` for none).
    fn resolve(&self, prefix: &[u8]) -> Result<Resolved<'_>, CdaError> {
        if prefix.is_empty() {
            let default = self.default.and_then(|i| self.bindings.get(i));
            return Ok(default.map_or(NO_NAMESPACE, |b| Resolved {
                uri: &b.uri,
                hl7: self.default_hl7,
            }));
        }
        match self.bindings.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => Ok(Resolved {
                uri: &b.uri,
                hl7: b.uri == HL7_NS,
            }),
            None if prefix == b"xml" => Ok(Resolved {
                uri: "http://www.w3.org/XML/1998/namespace",
                hl7: false,
            }),
            None => Err(malformed(format!(
                "undeclared namespace prefix {:?}",
                String::from_utf8_lossy(prefix)
            ))),
        }
    }
}

/// `(prefix, local name)` of a qualified name; the prefix is empty if none.
fn split_qname(qname: &[u8]) -> (&[u8], &[u8]) {
    match qname.iter().position(|&b| b == b':') {
        Some(i) => (&qname[..i], &qname[i + 1..]),
        None => (b"", qname),
    }
}

/// Pushes the namespace declarations of `start`, if it has any (checked
/// without a call: most elements have none).
fn declare(ns: &mut Namespaces, start: &BytesStart<'_>) -> Result<u8, CdaError> {
    if may_declare_namespace(start.attributes_raw()) {
        ns.push(start)
    } else {
        Ok(0)
    }
}

fn describe(ns: &str, local: &[u8]) -> String {
    let local = String::from_utf8_lossy(local);
    if ns.is_empty() {
        format!("{local} (no namespace)")
    } else {
        format!("{{{ns}}}{local}")
    }
}

fn qx_error(reader: &Reader<&[u8]>, e: QxError) -> CdaError {
    if reader.buffer_position() > MAX_HEADER_BYTES as u64 {
        // The reader only sees the first bytes: whatever broke, the header is too long.
        return CdaError::HeaderTooLarge(MAX_HEADER_BYTES);
    }
    match e {
        QxError::Encoding(_) => not_utf8(),
        QxError::Syntax(
            SyntaxError::UnclosedPI
            | SyntaxError::UnclosedXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedDoctype
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedTag
            | SyntaxError::UnclosedSingleQuotedAttributeValue
            | SyntaxError::UnclosedDoubleQuotedAttributeValue,
        )
        | QxError::IllFormed(IllFormedError::MissingEndTag(_)) => CdaError::Truncated,
        other => {
            let near = match reader.error_position() {
                0 => reader.buffer_position(),
                at => at,
            };
            malformed(format!("{other} (near byte {near})"))
        }
    }
}

/// `&name;` as text: character references and the five predefined entities.
pub(super) fn resolve_ref(r: &BytesRef<'_>) -> Result<String, CdaError> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| malformed(e.to_string()))? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|_| not_utf8())?;
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| malformed(format!("undeclared entity &{name};")))
}

/// A placeholder for text that is not UTF-8: [`read`] replaces it with the
/// position of the first bad byte.
pub(super) fn not_utf8() -> CdaError {
    CdaError::Xml(XmlError::NotUtf8(0))
}

/// Reads the header of `bytes` (BOM already removed).
///
/// The tokenizer works on bytes; UTF-8 is checked once, over everything it
/// went through (header, skipped subtrees and the start of the body), when
/// the pass ends, whether it succeeded or not: an encoding error comes
/// before any other error found later in the document.
pub(super) fn read(bytes: &[u8]) -> Result<CdaHeader, CdaError> {
    // The tokenizer never sees more than the header cap and a little more:
    // skipped subtrees are bounded too.
    let window = &bytes[..bytes.len().min(MAX_HEADER_BYTES + PEEK_WINDOW)];
    let mut reader = Reader::from_reader(window);
    let result = read_header(bytes, window, &mut reader);
    let seen =
        usize::try_from(reader.buffer_position()).map_or(window.len(), |p| p.min(window.len()));
    if let Some(at) = first_non_utf8(&window[..seen]) {
        return Err(CdaError::Xml(XmlError::NotUtf8(at)));
    }
    match result {
        Err(CdaError::Xml(XmlError::NotUtf8(_))) => {
            let at = std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to());
            Err(CdaError::Xml(XmlError::NotUtf8(at)))
        }
        other => other,
    }
}

/// Where `bytes` stops being UTF-8, if it does (one SIMD pass).
fn first_non_utf8(bytes: &[u8]) -> Option<usize> {
    simdutf8::compat::from_utf8(bytes)
        .err()
        .map(|e| e.valid_up_to())
}

/// Whether the attributes of a start tag may declare a namespace. Most
/// start tags declare none: this spares them attribute parsing.
fn may_declare_namespace(attributes: &[u8]) -> bool {
    memchr::memmem::find(attributes, b"xmlns").is_some()
}

fn read_header(
    bytes: &[u8],
    window: &[u8],
    reader: &mut Reader<&[u8]>,
) -> Result<CdaHeader, CdaError> {
    let mut ns = Namespaces::default();
    // Tags of the open elements, and how many bindings each pushed.
    let mut path: Vec<Tag> = Vec::with_capacity(16);
    let mut pushed: Vec<u8> = Vec::with_capacity(16);
    let mut root_qname: Option<Vec<u8>> = None;
    let mut builder = Builder::default();
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        if before > MAX_HEADER_BYTES {
            return Err(CdaError::HeaderTooLarge(MAX_HEADER_BYTES));
        }
        let event = reader.read_event().map_err(|e| qx_error(reader, e))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                let qname = start.name();
                let qname = qname.as_ref();
                let (prefix, local) = split_qname(qname);
                let named = Tag::of(local);
                // Below the root, an unprefixed element of a name never read
                // is `Tag::Other` whatever its namespace, and its subtree is
                // skipped: its declarations would change nothing.
                let count = if named == Tag::Other && prefix.is_empty() && !path.is_empty() {
                    0
                } else {
                    declare(&mut ns, start)?
                };
                let Resolved { uri, hl7 } = ns.resolve(prefix)?;
                if path.is_empty() {
                    if root_qname.is_some() {
                        return Err(malformed("more than one root element"));
                    }
                    if uri == XSL_NS {
                        return Err(CdaError::XslWrapper);
                    }
                    if !hl7 || local != b"ClinicalDocument" {
                        return Err(CdaError::NotCda(describe(uri, local)));
                    }
                    if empty {
                        return Err(CdaError::MissingBody);
                    }
                    root_qname = Some(qname.to_owned());
                }
                let tag = if hl7 { named } else { Tag::Other };
                if path.len() == 1 && tag == Tag::Component {
                    if empty {
                        return Err(CdaError::MissingBody);
                    }
                    let level = peek_body(window.len() < bytes.len(), reader, &mut ns)?;
                    let qname = root_qname.unwrap_or_default();
                    if !closes_root(bytes, &qname) {
                        return Err(CdaError::Truncated);
                    }
                    return builder.finish(level);
                }
                if path.len() >= MAX_DEPTH {
                    return Err(malformed(format!(
                        "elements nested deeper than {MAX_DEPTH} in the header"
                    )));
                }
                builder.start(&path, tag, start)?;
                if empty {
                    builder.end(&path, tag);
                    ns.pop(count);
                } else if descend(&path, tag) {
                    path.push(tag);
                    pushed.push(count);
                } else {
                    reader
                        .read_to_end(start.name())
                        .map_err(|e| qx_error(reader, e))?;
                    builder.end(&path, tag);
                    ns.pop(count);
                }
            }
            Event::End(_) => {
                let (Some(tag), Some(count)) = (path.pop(), pushed.pop()) else {
                    return Err(malformed(format!("unexpected end tag near byte {before}")));
                };
                builder.end(&path, tag);
                ns.pop(count);
                if path.is_empty() {
                    return Err(CdaError::MissingBody);
                }
            }
            Event::Text(text) => {
                if path.is_empty() {
                    if !text.trim_ascii().is_empty() {
                        return Err(malformed(format!(
                            "text outside the root element near byte {before}"
                        )));
                    }
                } else {
                    builder.text(&text, path.len() - 1)?;
                }
            }
            Event::CData(text) => {
                if path.is_empty() {
                    return Err(malformed("CDATA outside the root element"));
                }
                builder.text(&text, path.len() - 1)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_ref(&r)?;
                if path.is_empty() {
                    return Err(malformed("reference outside the root element"));
                }
                builder.text(resolved.as_bytes(), path.len() - 1)?;
            }
            Event::DocType(_) => return Err(CdaError::Xml(XmlError::Dtd)),
            Event::Eof => {
                return Err(if window.len() < bytes.len() {
                    CdaError::HeaderTooLarge(MAX_HEADER_BYTES)
                } else if root_qname.is_some() {
                    CdaError::Truncated
                } else {
                    malformed("no root element")
                });
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
}

/// Reads just past the start of the top-level `component` to its first child.
fn peek_body(
    window_cut: bool,
    reader: &mut Reader<&[u8]>,
    ns: &mut Namespaces,
) -> Result<BodyLevel, CdaError> {
    // Declarations on `component` itself are in scope for its child.
    loop {
        let event = reader.read_event().map_err(|e| qx_error(reader, e))?;
        match event {
            Event::Start(child) | Event::Empty(child) => {
                declare(ns, &child)?;
                let qname = child.name();
                let (prefix, local) = split_qname(qname.as_ref());
                let Resolved { uri, hl7 } = ns.resolve(prefix)?;
                return match local {
                    b"nonXMLBody" if hl7 => Ok(BodyLevel::Unstructured),
                    b"structuredBody" if hl7 => Ok(BodyLevel::Structured),
                    _ => Err(CdaError::UnknownBody(describe(uri, local))),
                };
            }
            Event::Text(text) if text.trim_ascii().is_empty() => {}
            Event::Comment(_) | Event::PI(_) => {}
            Event::End(_) => return Err(CdaError::MissingBody),
            Event::Eof if window_cut => {
                return Err(CdaError::UnknownBody(format!(
                    "nothing within {PEEK_WINDOW} bytes after <component>"
                )));
            }
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
fn closes_root(bytes: &[u8], qname: &[u8]) -> bool {
    let mut rest = trim_end(bytes);
    loop {
        if let Some(before) = rest.strip_suffix(b"-->") {
            match rfind(before, b"<!--") {
                Some(start) => rest = trim_end(&rest[..start]),
                None => return false,
            }
        } else if let Some(before) = rest.strip_suffix(b"?>") {
            match rfind(before, b"<?") {
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
    trim_end(rest)
        .strip_suffix(qname)
        .is_some_and(|rest| rest.ends_with(b"</"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_checked_across_ascii_blocks() {
        let mut text = "a".repeat(200).into_bytes();
        assert_eq!(first_non_utf8(&text), None);
        text.splice(70..70, "é€😀".bytes());
        assert_eq!(first_non_utf8(&text), None);
        for at in [0, 63, 64, 65, 130, text.len() - 1] {
            let mut bad = text.clone();
            bad[at] = 0xFF;
            let expected = std::str::from_utf8(&bad).err().map(|e| e.valid_up_to());
            assert_eq!(first_non_utf8(&bad), expected, "at {at}");
        }
        let cut = &text[..71];
        assert_eq!(first_non_utf8(cut), Some(70));
    }

    #[test]
    fn utf8_check_agrees_with_std() {
        let bad: [&[u8]; 7] = [
            b"\xC3",
            b"\xC3a",
            b"\x80",
            b"\xE2\x82",
            b"\xED\xA0\x80",
            b"\xC0\xAF",
            b"\xF4\x90\x80\x80",
        ];
        let good: [&[u8]; 3] = ["é".as_bytes(), "€".as_bytes(), "😀".as_bytes()];
        for insert in bad.iter().chain(&good) {
            for at in [0, 7, 8, 62, 63, 64, 65, 127, 128, 199, 200] {
                let mut text = "a".repeat(200).into_bytes();
                text.splice(at..at, insert.iter().copied());
                let expected = std::str::from_utf8(&text).err().map(|e| e.valid_up_to());
                assert_eq!(first_non_utf8(&text), expected, "{insert:?} at {at}");
            }
        }
    }

    #[test]
    fn namespace_declarations_are_spotted() {
        assert!(may_declare_namespace(b" xmlns=\"urn:hl7-org:v3\""));
        assert!(may_declare_namespace(
            b" root=\"1.2.3.4.5.6.7.8\" xmlns:x=\"urn:x\""
        ));
        assert!(may_declare_namespace(b" root=\"1.2.3.4.5.6.7.89012xmlns\""));
        assert!(!may_declare_namespace(b" root=\"1.2\" extension=\"xmln\""));
        assert!(!may_declare_namespace(b""));
    }

    #[test]
    fn namespace_declarations_are_spotted_anywhere() {
        for len in 0..70 {
            let filler = " a=\"".to_owned() + &"v".repeat(len) + "\"";
            assert!(!may_declare_namespace(filler.as_bytes()), "{len}");
            for at in [0, filler.len()] {
                let mut attributes = filler.clone();
                attributes.insert_str(at, " xmlns=\"u\"");
                assert!(may_declare_namespace(attributes.as_bytes()), "{len} {at}");
            }
        }
    }

    #[test]
    fn closing_tag_is_found_behind_comments_and_pis() {
        assert!(closes_root(b"<a>x</a>", b"a"));
        assert!(closes_root(b"<a>x</a >\n<!-- end -->\n<?pi x?>  ", b"a"));
        assert!(closes_root(b"<c:a>x</c:a>", b"c:a"));
        assert!(!closes_root(b"<a>x</b>", b"a"));
        assert!(!closes_root(b"<a>x</aa>", b"a"));
        assert!(!closes_root(b"<a>x</x:a>", b"a"));
        assert!(!closes_root(b"<a>xxxxx", b"a"));
        assert!(!closes_root(b"-->", b"a"));
        assert!(!closes_root(b"?>", b"a"));
        assert!(!closes_root(b"", b"a"));
    }
}
