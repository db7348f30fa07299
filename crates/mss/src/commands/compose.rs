use super::xdm::{pack, read_cdas};
use crate::cli::{ComposeArgs, MessageArgs};
use crate::{clock, input};
use anyhow::{Context, Result};
use mss_docs::message::{Mailbox, OutgoingMessage, PdfAttachment, XdmPackage, compose};
use std::hash::{BuildHasher, RandomState};

pub fn run(args: ComposeArgs) -> Result<()> {
    let from = args
        .message
        .from
        .clone()
        .context("--from is required: the sender's address")?;
    let composed = build(args.message, &from, args.nil)?;
    input::write(&args.out, &composed.bytes)
}

/// A message ready for submission: its exact bytes and its envelope.
pub struct Composed {
    pub bytes: Vec<u8>,
    pub from: String,
    pub recipients: Vec<String>,
    pub message_id: String,
}

/// Composes exactly what `mss compose` writes; `mss send` submits these bytes unchanged.
pub fn build(args: MessageArgs, from: &str, nil: String) -> Result<Composed> {
    // One instant for the Date header and the XDM submission time, so that
    // --date makes the whole message reproducible.
    let date = args.date.unwrap_or_else(clock::unix_seconds);
    let documents = read_cdas(&args.cda)?;
    let xdm = if documents.is_empty() {
        None
    } else {
        Some(XdmPackage {
            zip: pack(&documents, args.action, args.source_id.as_deref(), date)?,
            documents: documents.into_iter().map(|d| d.header).collect(),
        })
    };
    let pdfs = args
        .pdf
        .iter()
        .map(|path| {
            let file_name = path
                .file_name()
                .with_context(|| format!("{} has no file name", path.display()))?
                .to_string_lossy()
                .into_owned();
            Ok(PdfAttachment {
                file_name,
                bytes: input::read(path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let from = mailbox(from);
    let message_id = args
        .message_id
        .unwrap_or_else(|| new_message_id(&from.address));
    let recipients = args
        .to
        .iter()
        .chain(&args.cc)
        .map(|a| mailbox(a).address)
        .collect();
    let message = OutgoingMessage {
        to: args.to.iter().map(|a| mailbox(a)).collect(),
        cc: args.cc.iter().map(|a| mailbox(a)).collect(),
        from: from.clone(),
        message_id: message_id.clone(),
        date,
        in_reply_to: args.in_reply_to,
        references: args.references,
        subject: args.subject,
        body: args.body.unwrap_or_default(),
        xdm,
        pdfs,
        request_mdn: args.request_mdn,
        nil: Some(nil),
        test_identities: args.test_identities,
        end_patient_exchange: args.close_patient_exchange,
    };
    let bytes = compose(&message)?;
    Ok(Composed {
        bytes,
        from: from.address,
        recipients,
        message_id,
    })
}

/// `Dr Jean Dupont <jean.dupont@x.mssante.fr>` or a bare address.
fn mailbox(text: &str) -> Mailbox {
    let text = text.trim();
    match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => {
            let name = text[..open].trim().trim_matches('"').trim();
            let address = inner[open + 1..].trim();
            if name.is_empty() {
                Mailbox::new(address)
            } else {
                Mailbox::named(address, name)
            }
        }
        _ => Mailbox::new(text),
    }
}

/// A new globally unique Message-ID: the time in nanoseconds and 64 random
/// bits (std's per-process random hasher keys), at the sender's domain.
fn new_message_id(from: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let random = RandomState::new().hash_one(nanos);
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("mss.invalid");
    format!("{nanos:x}.{random:016x}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_and_address_are_split() {
        assert_eq!(
            mailbox("\"Dr Jean Dupont\" <jean.dupont@hopital.mssante.fr>"),
            Mailbox::named("jean.dupont@hopital.mssante.fr", "Dr Jean Dupont")
        );
        assert_eq!(mailbox(" a@b.mssante.fr "), Mailbox::new("a@b.mssante.fr"));
    }

    #[test]
    fn message_ids_differ_and_use_the_sender_domain() {
        let a = new_message_id("x@hopital.mssante.fr");
        let b = new_message_id("x@hopital.mssante.fr");
        assert_ne!(a, b);
        assert!(a.ends_with("@hopital.mssante.fr"), "{a}");
    }
}
