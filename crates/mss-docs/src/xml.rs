//! The one way mss-docs parses XML: UTF-8 only, no DTD (so no external entity
//! and no entity expansion), a bounded number of nodes.

/// Most nodes a document may have. A CDA header has a few hundred; a large
/// structured CDA body a few tens of thousands.
const NODES_LIMIT: u32 = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML is not UTF-8 (byte {0}); MSSanté documents are UTF-8")]
    NotUtf8(usize),
    #[error("the XML declares a DTD, refused: DTDs allow external entities and entity bombs")]
    Dtd,
    #[error("the XML has more than {NODES_LIMIT} nodes, refused")]
    TooManyNodes,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Text of `bytes` without a leading byte-order mark.
pub(crate) fn text(bytes: &[u8]) -> Result<&str, XmlError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| XmlError::NotUtf8(e.valid_up_to()))
}

/// Parses `text` into a read-only tree with the safe options.
pub(crate) fn parse(text: &str) -> Result<roxmltree::Document<'_>, XmlError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Dtd,
        roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes,
        other => XmlError::Malformed(other.to_string()),
    })
}
