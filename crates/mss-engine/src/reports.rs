//! Received MDNs and DSNs linked to the message we sent: which outbox item, and what
//! became of it at each recipient (delivered, displayed, processed, failed with the
//! volet's 90x code, delayed). A report about nothing we sent is kept all the same.
//!
//! [`lines`] is pure (what the report says); [`link`] finds the item and records it.

use mss_docs::mdn::{DispositionType, parse_mdn};
use mss_store::{DeliveryState, NewNotification, NewReport, NotificationKind, ReportKind};

use crate::classify::Report;
use crate::shell::{Run, Shell, ShellError};

/// One recipient's line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub recipient: String,
    pub state: DeliveryState,
    pub status: Option<String>,
    pub detail: Option<String>,
}

/// What a report says, recipient by recipient. `raw` is the report message (an MDN's
/// Final-Recipient and Disposition are read from it). DSN lines with an action we do
/// not know are left out.
pub(crate) fn lines(report: &Report, raw: &[u8]) -> Vec<Line> {
    match report {
        Report::Mdn {
            failure_code,
            failure_label,
            unreadable,
            ..
        } => {
            let mdn = parse_mdn(raw).ok();
            let recipient = mdn
                .as_ref()
                .and_then(|m| m.original_recipient.clone())
                .or_else(|| mdn.as_ref().map(|m| m.final_recipient.clone()))
                .filter(|r| !r.trim().is_empty())
                .or_else(|| mdn.as_ref().and_then(|m| m.from.clone()))
                .unwrap_or_else(|| "?".to_owned());
            let failed = failure_code.is_some() || failure_label.is_some() || unreadable.is_some();
            let state = if failed {
                DeliveryState::Failed
            } else {
                match mdn.as_ref().map(|m| &m.disposition.kind) {
                    Some(DispositionType::Processed) => DeliveryState::Processed,
                    Some(DispositionType::Deleted) => DeliveryState::Deleted,
                    Some(DispositionType::Dispatched) => DeliveryState::Delivered,
                    _ => DeliveryState::Displayed,
                }
            };
            let detail = failure_label
                .clone()
                .or_else(|| mdn.as_ref()?.failure.as_ref().map(|f| f.raw.clone()))
                .or_else(|| unreadable.clone());
            vec![Line {
                recipient,
                state,
                status: failure_code.map(|c| c.to_string()),
                detail,
            }]
        }
        Report::Dsn { recipients, .. } => recipients
            .iter()
            .filter_map(|r| {
                let state = match r.action.as_str() {
                    "failed" => DeliveryState::Failed,
                    "delayed" => DeliveryState::Delayed,
                    "delivered" | "relayed" | "expanded" => DeliveryState::Delivered,
                    _ => return None,
                };
                Some(Line {
                    recipient: r
                        .original_recipient
                        .clone()
                        .unwrap_or_else(|| r.recipient.clone()),
                    state,
                    status: r.status.clone(),
                    detail: r.diagnostic.clone(),
                })
            })
            .collect(),
    }
}

/// Finds the outbox item the report is about (ENVID first, then the original
/// Message-ID), records each line, tells the user of a failure, traces `report.linked`.
pub(crate) async fn link(shell: &Shell, run: &Run<'_>, report: &Report) -> Result<(), ShellError> {
    let store = shell.store();
    let (kind, original, envid) = match report {
        Report::Mdn {
            original_message_id,
            ..
        } => (ReportKind::Mdn, original_message_id.as_deref(), None),
        Report::Dsn {
            original_message_id,
            envelope_id,
            ..
        } => (
            ReportKind::Dsn,
            original_message_id.as_deref(),
            envelope_id.as_deref(),
        ),
    };
    let mut item = None;
    if let Some(envid) = envid {
        item = store.outbox_by_envelope_id(envid).await?;
    }
    if item.is_none()
        && let Some(original) = original
    {
        item = store.outbox_by_message_id(original).await?;
    }
    let lines = lines(report, run.raw);
    for line in &lines {
        store
            .record_report(
                &NewReport {
                    report_message: run.message,
                    outbox: item.as_ref().map(|i| i.id),
                    kind,
                    original_message_id: original,
                    envelope_id: envid,
                    recipient: &line.recipient,
                    state: line.state,
                    status: line.status.as_deref(),
                    detail: line.detail.as_deref(),
                },
                run.now,
            )
            .await?;
    }
    let summary = lines
        .iter()
        .map(|l| format!("{}={}", l.recipient, l.state.code()))
        .collect::<Vec<_>>()
        .join(",");
    let Some(item) = item else {
        let request = format!("kind={} unknown original recipients={summary}", kind.code());
        return shell
            .trace(
                run,
                "report.linked",
                None,
                None,
                Some(request.as_str()),
                "unlinked",
            )
            .await;
    };
    let request = format!(
        "kind={} outbox={} original={} recipients={summary}",
        kind.code(),
        item.id,
        item.message_id
    );
    shell
        .trace(
            run,
            "report.linked",
            None,
            None,
            Some(request.as_str()),
            "ok",
        )
        .await?;
    let subject = item.subject.as_deref().unwrap_or("sans objet");
    for line in lines.iter().filter(|l| l.state == DeliveryState::Failed) {
        let why = [line.status.as_deref(), line.detail.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let text = match kind {
            ReportKind::Mdn => format!(
                "{} n'a pas pu intégrer votre message « {subject} » : {why}",
                line.recipient
            ),
            ReportKind::Dsn => format!(
                "Votre message « {subject} » n'a pas pu être remis à {} : {why}",
                line.recipient
            ),
        };
        store
            .notify(
                &NewNotification {
                    kind: NotificationKind::Attention,
                    patient: None,
                    document: None,
                    message: Some(run.message),
                    text: &text,
                },
                run.now,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::DsnRecipient;

    #[test]
    fn dsn_actions_become_delivery_states() {
        let r = |action: &str, orcpt: Option<&str>| DsnRecipient {
            recipient: "final@x.fr".into(),
            original_recipient: orcpt.map(Into::into),
            action: action.into(),
            status: Some("5.1.1".into()),
            diagnostic: None,
        };
        let report = Report::Dsn {
            original_message_id: None,
            envelope_id: None,
            recipients: vec![
                r("failed", Some("asked@x.fr")),
                r("delayed", None),
                r("relayed", None),
                r("weird", None),
            ],
        };
        let got: Vec<(String, DeliveryState)> = lines(&report, b"")
            .into_iter()
            .map(|l| (l.recipient, l.state))
            .collect();
        assert_eq!(
            got,
            [
                ("asked@x.fr".into(), DeliveryState::Failed),
                ("final@x.fr".into(), DeliveryState::Delayed),
                ("final@x.fr".into(), DeliveryState::Delivered),
            ]
        );
    }

    #[test]
    fn an_unreadable_mdn_is_a_failure_with_its_reason() {
        let report = Report::Mdn {
            original_message_id: None,
            failure_code: None,
            failure_label: None,
            unreadable: Some("no disposition".into()),
        };
        let got = lines(&report, b"not an mdn");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].state, DeliveryState::Failed);
        assert_eq!(got[0].recipient, "?");
        assert_eq!(got[0].detail.as_deref(), Some("no disposition"));
    }
}
