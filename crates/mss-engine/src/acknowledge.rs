//! What the sender of a received XDM message gets back.
//!
//! - The sender asked for it (`Disposition-Notification-To`): an MDN, on
//!   success as on failure (UX.11; volet "MDN" annex), built by mss-docs
//!   ([`build_mdn`]): `processed`, or `processed/Error: <code>^<libellé>` plus
//!   an `Error:` field. When the address differs from `Return-Path`
//!   (RFC 8098 §2.1), a person must agree first: the plan is not automatic.
//! - It did not ask, and integration failed: the volet's "courriel standard"
//!   (a plain mail with the code and label, the original message and its
//!   attachments). Its example is a *manual* notification, so by default it
//!   is offered to the user ([`FailureNotice::Offer`]); an installation may
//!   send it automatically or never.
//! - It did not ask, and integration succeeded: nothing.
//! - MDNs, DSNs and plain mail are never answered automatically; a manual
//!   import has nobody to answer; a message already answered is not answered
//!   again (idempotence).
//! - A deletion waiting for a person's confirmation is answered once the
//!   person decides ([`plan_after_decision`]).

use mail_builder::MessageBuilder;
use mail_builder::headers::{
    address::Address, content_type::ContentType, date::Date, message_id::MessageId, raw::Raw,
    text::Text,
};
use mail_builder::mime::MimePart;
use mss_docs::headers::{X_MSS_NIL, nil};
use mss_docs::mdn::{ErrorCode, MdnDecision, MdnError, MdnOutcome, MdnRequest, build_mdn};
use mss_docs::subject::build_failure_subject;

use crate::classify::{MessageKind, Received};

/// What the installation does when a failed message did not ask for an MDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureNotice {
    /// Offer the user to send the "courriel standard" (default).
    #[default]
    Offer,
    /// Send it automatically.
    Send,
    /// Never.
    Never,
}

/// Why nothing is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAckReason {
    /// Manual import of an XDM file: no sender to answer.
    ManualImport,
    /// Not an XDM message (MDN, DSN, plain mail): never answered automatically.
    NotXdm,
    /// Success, and no MDN was asked for.
    NotRequested,
    /// This message was already answered.
    AlreadyAcknowledged,
    /// A person must decide first (deletion to confirm); see [`plan_after_decision`].
    Deferred,
    /// Failure without MDN request, and the installation never sends a notice.
    NoticeDisabled,
    /// No address to answer to.
    NoSender,
}

/// The acknowledgement decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckPlan {
    None(NoAckReason),
    /// An MDN to `to`. `automatic = false`: a person must agree first.
    Mdn {
        to: String,
        outcome: MdnOutcome,
        automatic: bool,
    },
    /// A "courriel standard" failure notice to `to`.
    FailureNotice {
        to: String,
        code: ErrorCode,
        automatic: bool,
    },
}

/// Decides the acknowledgement of a received message whose integration
/// outcome is `outcome` (`None`: waiting for a person).
pub fn plan(
    received: &Received,
    outcome: Option<MdnOutcome>,
    already_acknowledged: bool,
    notice: FailureNotice,
) -> AckPlan {
    if received.kind != MessageKind::Xdm {
        return AckPlan::None(NoAckReason::NotXdm);
    }
    if already_acknowledged {
        return AckPlan::None(NoAckReason::AlreadyAcknowledged);
    }
    let Some(outcome) = outcome else {
        return AckPlan::None(NoAckReason::Deferred);
    };
    if let Some(to) = received.mdn_requested_to() {
        return AckPlan::Mdn {
            to: to.to_owned(),
            outcome,
            automatic: received.mdn == MdnDecision::Send,
        };
    }
    let MdnOutcome::Failed(code) = outcome else {
        return AckPlan::None(NoAckReason::NotRequested);
    };
    let Some(to) = received.sender.address.clone() else {
        return AckPlan::None(NoAckReason::NoSender);
    };
    match notice {
        FailureNotice::Never => AckPlan::None(NoAckReason::NoticeDisabled),
        FailureNotice::Offer | FailureNotice::Send => AckPlan::FailureNotice {
            to,
            code,
            automatic: notice == FailureNotice::Send,
        },
    }
}

/// The acknowledgement once a person has decided on a deferred message
/// (e.g. confirmed or refused a deletion): `Processed` or the failure.
pub fn plan_after_decision(
    received: &Received,
    outcome: MdnOutcome,
    notice: FailureNotice,
) -> AckPlan {
    plan(received, Some(outcome), false, notice)
}

/// What the shell provides to build an acknowledgement: identity of the
/// answering BAL, a fresh Message-ID and the current time.
#[derive(Debug, Clone, Copy)]
pub struct AckContext<'a> {
    /// The BAL that received the message (From, Final-Recipient).
    pub bal: &'a str,
    pub bal_name: Option<&'a str>,
    /// `Reporting-UA`, e.g. `mss 0.1.0`.
    pub reporting_ua: &'a str,
    /// Message-ID of the acknowledgement itself.
    pub message_id: &'a str,
    /// Unix time, seconds.
    pub date: i64,
    /// X-MSS-NIL product reference.
    pub nil: Option<&'a str>,
}

/// Why an acknowledgement could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("nothing to build: the plan sends no acknowledgement")]
    NothingToSend,
    #[error("the received message has no Message-ID: an MDN cannot refer to it, answer by hand")]
    NoOriginalId,
    #[error(transparent)]
    Mdn(#[from] MdnError),
    #[error("{0}")]
    Header(#[from] mss_docs::headers::HeaderError),
    #[error("{field} contains a line break or control character: refused; correct it")]
    Injection { field: &'static str },
    #[error("the failure notice could not be written ({0}); this is a bug, please report it")]
    Write(String),
}

/// Builds the bytes of the planned acknowledgement. `raw` is the received
/// message exactly as stored.
pub fn build(
    plan: &AckPlan,
    received: &Received,
    raw: &[u8],
    ctx: &AckContext<'_>,
) -> Result<Vec<u8>, AckError> {
    match plan {
        AckPlan::None(_) => Err(AckError::NothingToSend),
        AckPlan::Mdn { to, outcome, .. } => {
            let original_message_id = received.message_id().ok_or(AckError::NoOriginalId)?;
            let request = MdnRequest {
                reporting_bal: ctx.bal,
                reporting_name: ctx.bal_name,
                notify: to,
                original_recipient: received.message.original_recipient.as_deref(),
                original_message_id,
                original_subject: received.message.subject.as_deref().unwrap_or(""),
                original_message: raw,
                outcome: *outcome,
                reporting_ua: ctx.reporting_ua,
                message_id: ctx.message_id,
                date: ctx.date,
                nil: ctx.nil,
            };
            Ok(build_mdn(&request)?)
        }
        AckPlan::FailureNotice { to, code, .. } => failure_notice(to, *code, received, raw, ctx),
    }
}

fn no_controls(field: &'static str, value: &str) -> Result<String, AckError> {
    let value = value.trim();
    if value.chars().any(char::is_control) || value.is_empty() {
        return Err(AckError::Injection { field });
    }
    Ok(value.to_owned())
}

fn notice_text(code: ErrorCode, subject: &str) -> String {
    format!(
        "Bonjour,\r\n\
         \r\n\
         Le message ci-dessous n'a pas pu être intégré automatiquement dans le dossier du patient \
         pour la raison suivante : {label}.\r\n\
         \r\n\
         - Erreur détectée : {label}\r\n\
         - Code d'erreur : {number}\r\n\
         - Objet du message : {subject}\r\n\
         \r\n\
         Vous trouverez en pièces jointes le message d'origine et ses fichiers (archive IHE_XDM et PDF).\r\n\
         Vérifiez les informations transmises puis renvoyez les documents après correction.\r\n",
        label = code.label(),
        number = code.code(),
    )
}

/// A boundary the embedded original cannot close.
fn boundary(seed: &str, raw: &[u8]) -> String {
    let mut counter = 0u32;
    loop {
        let hash = format!("{seed}\u{0}{counter}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let b = format!("=_mss_notice_{hash:016x}");
        if counter > 64 || !raw.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
        counter += 1;
    }
}

/// The volet's "courriel standard": subject `[KO Intégration système
/// !][code] <original subject>`, French text with code and label, the
/// original message as `message/rfc822`, and the original XDM and PDF files
/// attached again.
fn failure_notice(
    to: &str,
    code: ErrorCode,
    received: &Received,
    raw: &[u8],
    ctx: &AckContext<'_>,
) -> Result<Vec<u8>, AckError> {
    let bal = no_controls("BAL address", ctx.bal)?;
    let to = no_controls("recipient address", to)?;
    let message_id = no_controls("Message-ID", ctx.message_id)?;
    let message_id = message_id
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    let nil = nil(ctx.nil)?;
    let original_subject = received.message.subject.as_deref().unwrap_or("");
    let subject = build_failure_subject(code, original_subject);

    let mut parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            notice_text(code, &received.display_subject),
        ),
        MimePart::new(ContentType::new("message/rfc822"), raw)
            .attachment("message_original.eml")
            .transfer_encoding("8bit"),
    ];
    for a in &received.message.attachments {
        let keep = a.is_xdm || a.content_type == "application/pdf";
        if keep {
            let name = a.file_name.clone().unwrap_or_else(|| "piece_jointe".into());
            parts.push(
                MimePart::new(ContentType::new(a.content_type.clone()), a.bytes.as_slice())
                    .attachment(name)
                    .transfer_encoding("base64"),
            );
        }
    }
    let body = MimePart::new(
        ContentType::new("multipart/mixed").attribute("boundary", boundary(&message_id, raw)),
        parts,
    );
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(ctx.bal_name.map(str::to_owned), bal))
        .to(Address::new_address(None::<String>, to))
        .subject(Text::new(subject))
        .date(Date::new(ctx.date))
        .message_id(MessageId::new(message_id))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header(X_MSS_NIL, Raw::new(nil))
        .body(body);
    if let Some(original) = received.message_id() {
        builder = builder
            .in_reply_to(MessageId::new(original.to_owned()))
            .references(MessageId::new(original.to_owned()));
    }
    builder
        .write_to_vec()
        .map_err(|e| AckError::Write(e.to_string()))
}
