//! MSSanté mail: composing the exact bytes an LPS submits
//! ([`compose`]), and reading a received message ([`parse_incoming`]).
//!
//! Building is done by `mail-builder` and reading by `mail-parser`: this
//! module only adds the MSSanté rules (one patient per message, X-MSS headers,
//! subject line, 25 MB towards Mon espace santé, XDM detection) and makes the
//! output deterministic (MIME boundaries derived from the Message-ID, Date
//! passed in).

mod incoming;
mod outgoing;

pub use incoming::{
    DEFAULT_MAX_INCOMING_BYTES, IncomingMessage, MessageError, ReceivedAttachment, XMssRead,
    parse_incoming, parse_incoming_with_limit,
};
pub use outgoing::{
    ComposeError, OutgoingMessage, PATIENT_MAX_MESSAGE_BYTES, PdfAttachment, XDM_FILE_NAME,
    XdmPackage, compose,
};

use mail_builder::mime::{BodyPart, MimePart};

/// A mailbox: address and optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    pub address: String,
    pub display_name: Option<String>,
}

impl Mailbox {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            display_name: None,
        }
    }

    pub fn named(address: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            display_name: Some(display_name.into()),
        }
    }
}

/// Why an address was refused (before any header is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressProblem {
    Control,
    Syntax,
}

/// Check a mail address for sending with [`mss_model::MssAddress::parse`]
/// (bare ASCII `local@domain`, no spaces, brackets or control characters),
/// after trimming surrounding spaces. Returns it normalised (domain
/// lower-case).
pub(crate) fn check_address(address: &str) -> Result<String, AddressProblem> {
    if address.chars().any(char::is_control) {
        return Err(AddressProblem::Control);
    }
    mss_model::MssAddress::parse(address.trim())
        .map(|a| a.as_str().to_owned())
        .map_err(|_| AddressProblem::Syntax)
}

/// Check a Message-ID given with or without angle brackets; returns it
/// without them.
pub(crate) fn check_message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id
        .strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id);
    let ok = !id.is_empty()
        && id.len() <= 900
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\'))
        && id.contains('@');
    ok.then(|| id.to_owned())
}

/// FNV-1a: a small, stable hash to derive boundaries from the Message-ID.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `needle` appears in any leaf of the part tree.
fn tree_contains(part: &MimePart<'_>, needle: &[u8]) -> bool {
    let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    match &part.contents {
        BodyPart::Text(text) => found(text.as_bytes()),
        BodyPart::Binary(bytes) => found(bytes),
        BodyPart::Multipart(parts) => parts.iter().any(|p| tree_contains(p, needle)),
    }
}

/// A boundary that depends only on `seed` and `index`, and that no leaf
/// content contains (so raw parts, such as an embedded original message,
/// cannot close it). The `=_` start cannot occur in base64 nor in valid
/// quoted-printable output.
pub(crate) fn boundary_for(seed: &str, index: usize, parts: &[MimePart<'_>]) -> String {
    let mut counter = 0u32;
    loop {
        let hash = fnv1a(format!("{seed}\u{0}{index}\u{0}{counter}").as_bytes());
        let boundary = format!("=_mss_{hash:016x}_{index}");
        if counter > 64 || !parts.iter().any(|p| tree_contains(p, boundary.as_bytes())) {
            return boundary;
        }
        counter += 1;
    }
}

/// The content types mss writes, with a deterministic boundary.
pub(crate) fn multipart<'x>(
    content_type: mail_builder::headers::content_type::ContentType<'x>,
    seed: &str,
    index: usize,
    parts: Vec<MimePart<'x>>,
) -> MimePart<'x> {
    let boundary = boundary_for(seed, index, &parts);
    MimePart::new(content_type.attribute("boundary", boundary), parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(
            check_address(" dr.house@hopital.mssante.fr ").as_deref(),
            Ok("dr.house@hopital.mssante.fr")
        );
        for bad in [
            "",
            "nobody",
            "@hopital.mssante.fr",
            "a@",
            "a@localhost",
            "a b@x.fr",
            "a@x..fr",
            "<a@x.fr>",
            "a@x.fr>, evil@y.fr",
            "é@x.fr",
        ] {
            assert_eq!(check_address(bad), Err(AddressProblem::Syntax), "{bad:?}");
        }
        assert_eq!(
            check_address("a@x.fr\r\nBcc: evil@y.fr"),
            Err(AddressProblem::Control)
        );
    }

    #[test]
    fn message_ids_are_checked() {
        assert_eq!(check_message_id("<a.b@c>").as_deref(), Some("a.b@c"));
        assert_eq!(check_message_id("a.b@c").as_deref(), Some("a.b@c"));
        assert_eq!(check_message_id("a b@c"), None);
        assert_eq!(check_message_id("ab@c>\r\nX: y"), None);
        assert_eq!(check_message_id("no-at-sign"), None);
    }

    #[test]
    fn boundary_avoids_content_and_is_stable() {
        let first = boundary_for("id@x", 0, &[]);
        assert_eq!(first, boundary_for("id@x", 0, &[]));
        assert_ne!(first, boundary_for("id@y", 0, &[]));
        let trap = vec![MimePart::new("text/plain", format!("--{first}--"))];
        let other = boundary_for("id@x", 0, &trap);
        assert_ne!(first, other);
        assert!(other.starts_with("=_mss_"));
    }
}
