//! Where accepted mail goes: the operator's own mailboxes (INBOX of each recipient, with a
//! Received header), Mon espace santé patients (25 MB limit, unknown patients bounced,
//! `X-MSS-MES: FIN` noted), or the other sandbox operator over a real SMTP hop (relay.rs).
//! Recipients that cannot be reached get a DSN (bounce.rs) in the sender's INBOX.
//!
//! The client appends its own copy to Sent (API LPS): delivery never does.

use std::collections::BTreeMap;

use serde_json::json;

use super::bounce::{self, Failure};
use super::mailstore::INBOX;
use super::mes::{self, MAX_PATIENT_MESSAGE};
use super::relay::{self, Peer};
use super::{AccountKind, OperatorContext};
use crate::identities::PATIENT_DOMAIN;

/// Most header fields recorded per message, and longest value kept.
const MAX_RECORDED_HEADERS: usize = 200;
const MAX_RECORDED_VALUE: usize = 2_000;

/// Where one recipient address leads.
#[derive(Debug, Clone)]
pub enum Route {
    /// A mailbox of this operator (professional or patient): its address, lower case.
    Local(String),
    /// The Mon espace santé domain is served here but no patient has this matricule.
    UnknownPatient,
    /// Another operator's domain.
    Peer(Peer),
    /// This operator's domain, no such mailbox.
    UnknownLocal,
    /// Nobody the sandbox knows.
    Elsewhere,
}

/// Routes `address` from `ctx`'s point of view.
pub fn route(ctx: &OperatorContext, address: &str) -> Route {
    let address = address.trim().to_ascii_lowercase();
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Route::Elsewhere;
    };
    if let Some(account) = ctx.account(&address) {
        return Route::Local(account.address.clone());
    }
    if domain == ctx.domain {
        return Route::UnknownLocal;
    }
    if domain == PATIENT_DOMAIN && ctx.accounts.iter().any(|a| a.kind == AccountKind::Patient) {
        return Route::UnknownPatient;
    }
    let peers = ctx.peers.read().unwrap_or_else(|p| p.into_inner());
    match peers.iter().find(|p| p.serves(domain)) {
        Some(peer) => Route::Peer(peer.clone()),
        None => Route::Elsewhere,
    }
}

/// One accepted recipient.
#[derive(Debug, Clone)]
pub struct Rcpt {
    pub address: String,
    pub orcpt: Option<String>,
    /// `NOTIFY=NEVER`: no bounce for this one.
    pub notify_never: bool,
    pub route: Route,
}

/// The envelope of an accepted message.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// Empty for a bounce (null reverse path).
    pub from: String,
    pub envid: Option<String>,
    pub rcpts: Vec<Rcpt>,
}

/// How the message arrived (for Received and the recording).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub service: &'static str,
    pub session: u64,
    /// What the client said in EHLO/HELO.
    pub helo: String,
    pub peer_ip: String,
    /// `ESMTPSA` (TLS + AUTH), `ESMTPS` (TLS), `ESMTP`.
    pub with: &'static str,
}

/// The header fields of a message: names as written, values unfolded and trimmed (bounded).
pub fn header_fields(data: &[u8]) -> Vec<(String, String)> {
    let Some(message) = mail_parser::MessageParser::default().parse_headers(data) else {
        return Vec::new();
    };
    message
        .headers_raw()
        .take(MAX_RECORDED_HEADERS)
        .map(|(name, value)| {
            let unfolded: String = value
                .chars()
                .filter(|c| *c != '\r' && *c != '\n')
                .take(MAX_RECORDED_VALUE)
                .collect();
            (name.to_owned(), unfolded.trim().to_owned())
        })
        .collect()
}

/// The header section (without the blank line that ends it).
fn header_section(data: &[u8]) -> &[u8] {
    let end = mail_parser::MessageParser::default()
        .parse_headers(data)
        .and_then(|m| m.root_part().headers.iter().map(|h| h.offset_end).max())
        .map_or(0, |end| end as usize)
        .min(data.len());
    let mut section = &data[..end];
    while let Some(rest) = section
        .strip_suffix(b"\r\n")
        .or_else(|| section.strip_suffix(b"\n"))
    {
        section = rest;
    }
    section
}

/// Records a received message for the conformance checks: envelope, size, each header
/// field (never the body).
pub fn record_message(
    ctx: &OperatorContext,
    service: &'static str,
    session: u64,
    from: &str,
    to: &[String],
    data: &[u8],
) {
    ctx.recorder
        .record_message(service, session, from, to, header_fields(data), data);
}

/// The operator's host name in Received and Reporting-MTA.
pub fn host(ctx: &OperatorContext) -> String {
    format!("smtp.{}", ctx.domain)
}

/// `Return-Path:` with the envelope sender (`<>` for a bounce).
fn return_path(from: &str) -> Vec<u8> {
    let from: String = from
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>'))
        .take(320)
        .collect();
    format!("Return-Path: <{from}>\r\n").into_bytes()
}

fn received(ctx: &OperatorContext, arrival: &Arrival, id: &str, rcpt: Option<&str>) -> Vec<u8> {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect()
    };
    let now = super::now_secs() as i64;
    let mut line = format!(
        "Received: from {} ([{}])\r\n\tby {} (mss-sandbox) with {} id {}",
        clean(&arrival.helo),
        clean(&arrival.peer_ip),
        host(ctx),
        arrival.with,
        id
    );
    if let Some(rcpt) = rcpt {
        line.push_str(&format!("\r\n\tfor <{}>", clean(rcpt)));
    }
    line.push_str(&format!(
        "; {}\r\n",
        mail_builder::headers::date::Date::new(now).to_rfc822()
    ));
    line.into_bytes()
}

fn with_prefix(prefix: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + data.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(data);
    out
}

fn queue_id() -> String {
    crate::random::bytes::<6>()
        .map(|b| b.iter().map(|x| format!("{x:02X}")).collect())
        .unwrap_or_else(|_| format!("{:X}", super::now_secs()))
}

/// Delivers an accepted message to every recipient; returns its queue id. Recipients that
/// cannot be reached are bounced to the sender.
pub async fn deliver(
    ctx: &OperatorContext,
    arrival: &Arrival,
    envelope: &Envelope,
    data: &[u8],
) -> String {
    let id = queue_id();
    let arrived = super::now_secs() as i64;
    let to: Vec<String> = envelope.rcpts.iter().map(|r| r.address.clone()).collect();
    record_message(
        ctx,
        arrival.service,
        arrival.session,
        &envelope.from,
        &to,
        data,
    );
    let fin = mes::is_fin(&header_fields(data));

    let mut failures = Vec::new();
    let mut hops: BTreeMap<std::net::SocketAddr, (Peer, Vec<&Rcpt>)> = BTreeMap::new();
    for rcpt in &envelope.rcpts {
        match &rcpt.route {
            Route::Local(address) => {
                let patient = ctx
                    .account(address)
                    .is_some_and(|a| a.kind == AccountKind::Patient);
                // Final delivery: Return-Path carries the envelope sender (RFC 5321
                // §4.4), which receivers compare with Disposition-Notification-To.
                let trace = [
                    return_path(&envelope.from),
                    received(ctx, arrival, &id, Some(address)),
                ]
                .concat();
                let bytes = with_prefix(&trace, data);
                if patient && bytes.len() > MAX_PATIENT_MESSAGE {
                    failures.push(failure(
                        rcpt,
                        "5.3.4",
                        format!(
                            "552 5.3.4 message of {} bytes: Mon espace sante takes at most {MAX_PATIENT_MESSAGE}",
                            bytes.len()
                        ),
                        "message trop volumineux pour Mon espace santé (25 Mo au plus)",
                    ));
                    continue;
                }
                match ctx.store.append(address, INBOX, &[], arrived, &bytes) {
                    Ok(uid) => {
                        ctx.recorder.record(
                            arrival.service,
                            arrival.session,
                            "delivered",
                            json!({ "id": id, "to": address, "uid": uid }),
                        );
                        if patient && !envelope.from.is_empty() {
                            let _ = ctx.mes.professional_wrote(address, &envelope.from, fin);
                        }
                    }
                    Err(e) => failures.push(failure(
                        rcpt,
                        "4.3.0",
                        format!("451 4.3.0 mailbox unavailable: {e}"),
                        "boîte aux lettres indisponible",
                    )),
                }
            }
            Route::UnknownPatient => failures.push(failure(
                rcpt,
                "5.1.1",
                "550 5.1.1 no Mon espace sante mailbox for this INS".to_owned(),
                "patient inconnu de Mon espace santé (vérifiez le matricule INS)",
            )),
            Route::Peer(peer) => {
                hops.entry(peer.addr)
                    .or_insert_with(|| (peer.clone(), Vec::new()))
                    .1
                    .push(rcpt);
            }
            Route::UnknownLocal | Route::Elsewhere => failures.push(failure(
                rcpt,
                "5.1.1",
                "550 5.1.1 no such mailbox".to_owned(),
                "adresse inconnue",
            )),
        }
    }

    for (peer, rcpts) in hops.values() {
        let bytes = with_prefix(&received(ctx, arrival, &id, None), data);
        let addresses: Vec<String> = rcpts.iter().map(|r| r.address.clone()).collect();
        let outcome = relay::send(peer, &host(ctx), &envelope.from, &addresses, &bytes).await;
        ctx.recorder.record(
            arrival.service,
            arrival.session,
            "relayed",
            json!({
                "id": id,
                "peer": peer.addr.to_string(),
                "results": outcome.iter().map(|(r, res)| json!({
                    "to": r, "ok": res.is_ok(), "reply": res.as_ref().unwrap_or_else(|e| e),
                })).collect::<Vec<_>>(),
            }),
        );
        for (address, result) in outcome {
            if let Err(reply) = result
                && let Some(rcpt) = rcpts.iter().find(|r| r.address == address)
            {
                failures.push(failure(
                    rcpt,
                    if reply.starts_with('4') {
                        "4.4.1"
                    } else {
                        "5.0.0"
                    },
                    reply,
                    "refusé par l'opérateur du destinataire",
                ));
            }
        }
    }

    if !failures.is_empty() {
        bounce_to_sender(ctx, arrival, envelope, data, arrived, &failures).await;
    }
    id
}

fn failure(
    rcpt: &Rcpt,
    status: &'static str,
    diagnostic: String,
    reason_fr: &str,
) -> (Failure, bool) {
    (
        Failure {
            recipient: rcpt.address.clone(),
            original_recipient: rcpt.orcpt.clone(),
            status,
            diagnostic,
            reason_fr: reason_fr.to_owned(),
        },
        rcpt.notify_never,
    )
}

/// Sends the DSN for `failures` to the envelope sender; never bounces a bounce.
async fn bounce_to_sender(
    ctx: &OperatorContext,
    arrival: &Arrival,
    envelope: &Envelope,
    data: &[u8],
    arrived: i64,
    failures: &[(Failure, bool)],
) {
    let reported: Vec<Failure> = failures
        .iter()
        .filter(|(_, never)| !never)
        .map(|(f, _)| f.clone())
        .collect();
    let detail = json!({
        "to": envelope.from,
        "failed": failures.iter().map(|(f, _)| json!({
            "recipient": f.recipient, "status": f.status, "diagnostic": f.diagnostic,
        })).collect::<Vec<_>>(),
    });
    if envelope.from.is_empty() || reported.is_empty() {
        ctx.recorder
            .record(arrival.service, arrival.session, "bounce_dropped", detail);
        return;
    }
    let host = host(ctx);
    let report = bounce::build(&bounce::Report {
        reporting_host: &host,
        to: &envelope.from,
        domain: &ctx.domain,
        envelope_id: envelope.envid.as_deref(),
        arrival: arrived,
        now: super::now_secs() as i64,
        failures: &reported,
        original_headers: header_section(data),
    });
    ctx.recorder
        .record(arrival.service, arrival.session, "bounce", detail);
    let daemon = Arrival {
        service: arrival.service,
        session: arrival.session,
        helo: host.clone(),
        peer_ip: "127.0.0.1".to_owned(),
        with: "local",
    };
    let id = queue_id();
    match route(ctx, &envelope.from) {
        Route::Local(address) => {
            let trace = [return_path(""), received(ctx, &daemon, &id, Some(&address))].concat();
            let bytes = with_prefix(&trace, &report);
            let _ = ctx
                .store
                .append(&address, INBOX, &[], super::now_secs() as i64, &bytes);
        }
        Route::Peer(peer) => {
            let bytes = with_prefix(&received(ctx, &daemon, &id, None), &report);
            // Null reverse path: a bounce is never bounced back.
            let _ = relay::send(
                &peer,
                &host,
                "",
                std::slice::from_ref(&envelope.from),
                &bytes,
            )
            .await;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unfolded_and_the_section_ends_before_the_blank_line() {
        let data = b"Subject: a\r\n long\r\nX-MSS-MES: FIN\r\n\r\nbody\r\nNot: header\r\n";
        let fields = header_fields(data);
        assert_eq!(
            fields,
            vec![
                ("Subject".to_owned(), "a long".to_owned()),
                ("X-MSS-MES".to_owned(), "FIN".to_owned())
            ]
        );
        assert_eq!(
            header_section(data),
            b"Subject: a\r\n long\r\nX-MSS-MES: FIN"
        );
    }
}
