//! Who may open which mailbox: the SASL decisions shared by the IMAP and SMTP servers.
//!
//! - XOAUTH2 / OAUTHBEARER: the bearer token must be a JWT signed by the PSC simulator,
//!   with the simulator as `iss`, the sandbox client as `azp`/`aud`, not expired, and a
//!   `sub` (national id) that holds the requested mailbox (PER: its owner; ORG: the
//!   professionals attached to it).
//! - EXTERNAL: the client certificate (already verified against the sandbox root by TLS)
//!   must name the mailbox in its e-mail SAN or CN, and the mailbox must be an APP one.
//! - Everything else (LOGIN, PLAIN, …) is refused by the protocol servers.
//!
//! Each decision is recorded with a fingerprint of the token, never the token.

use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{AccountKind, OperatorContext};
use crate::operator::recorder::fingerprint;

/// The identity TLS proved: the mailbox named by the client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The e-mail SAN, or the CN when there is no e-mail SAN (lower case).
    pub mailbox: Option<String>,
    pub subject: String,
}

/// Why a login was refused (recorded; the protocol answer stays generic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
}

/// The base64 JSON an OAuth server sends as its error challenge (RFC 7628 §3.2.2), before
/// the final failure.
pub fn error_challenge(ctx: &OperatorContext) -> String {
    STANDARD.encode(
        json!({
            "status": "invalid_token",
            "schemes": "bearer",
            "scope": "openid",
            "openid-configuration": format!("{}/.well-known/openid-configuration", ctx.psc_issuer),
        })
        .to_string(),
    )
}

/// Decodes a SASL XOAUTH2 initial response (`user=<u>\x01auth=Bearer <t>\x01\x01`).
pub fn parse_xoauth2(raw: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut user = None;
    let mut token = None;
    for part in text.split('\x01') {
        if let Some(u) = part.strip_prefix("user=") {
            user = Some(u.to_owned());
        } else if let Some(a) = part.strip_prefix("auth=") {
            token = bearer(a);
        }
    }
    Some((user?, token?))
}

/// Decodes a SASL OAUTHBEARER initial response (`n,a=<u>,\x01auth=Bearer <t>\x01\x01`).
pub fn parse_oauthbearer(raw: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (gs2, rest) = text.split_once('\x01')?;
    let user = gs2
        .split(',')
        .find_map(|p| p.strip_prefix("a="))
        .map(|u| u.replace("=2C", ",").replace("=3D", "="));
    let token = rest
        .split('\x01')
        .find_map(|p| p.strip_prefix("auth="))
        .and_then(bearer)?;
    Some((user?, token))
}

fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Checks a bearer token for `mailbox`; returns the mailbox (lower case) it opens.
pub fn check_token(
    ctx: &OperatorContext,
    service: &'static str,
    session: u64,
    mechanism: &str,
    mailbox: &str,
    token: &str,
) -> Result<String, Refusal> {
    let claims = ctx.tokens.verify(token);
    let forced = ctx
        .faults
        .refuse_tokens
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let outcome = if forced {
        Err(Refusal {
            reason: "token refused by the sandbox (fault injected for a check)",
        })
    } else {
        judge_token(ctx, mailbox, claims.as_ref())
    };
    ctx.recorder.record(
        service,
        session,
        "auth",
        json!({
            "mechanism": mechanism,
            "mailbox": mailbox,
            "token": fingerprint(token.as_bytes()),
            "sub": claims.as_ref().map(|c| c["sub"].clone()),
            "jti": claims.as_ref().map(|c| c["jti"].clone()),
            "exp": claims.as_ref().map(|c| c["exp"].clone()),
            "ok": outcome.is_ok(),
            "reason": outcome.as_ref().err().map(|r| r.reason),
        }),
    );
    outcome
}

fn judge_token(
    ctx: &OperatorContext,
    mailbox: &str,
    claims: Option<&Value>,
) -> Result<String, Refusal> {
    let refuse = |reason| Err(Refusal { reason });
    let Some(claims) = claims else {
        return refuse("token not signed by the PSC simulator");
    };
    if claims["iss"] != ctx.psc_issuer.as_str() {
        return refuse("token from another issuer");
    }
    let client = ctx.psc_client_id.as_str();
    if claims["azp"] != client && claims["aud"] != client {
        return refuse("token issued to another client");
    }
    let now = super::now_secs();
    match claims["exp"].as_u64() {
        Some(exp) if exp > now => {}
        _ => return refuse("token expired"),
    }
    let Some(sub) = claims["sub"].as_str() else {
        return refuse("token without sub");
    };
    let Some(account) = ctx.account(mailbox) else {
        return refuse("unknown mailbox");
    };
    if account.kind == AccountKind::App {
        return refuse("application mailbox: client certificate required");
    }
    if !account.holders.iter().any(|h| h == sub) {
        return refuse("token of a professional who does not hold this mailbox");
    }
    Ok(account.address.clone())
}

/// Checks EXTERNAL for `requested` (the SASL authorization identity; empty: the one the
/// certificate names).
pub fn check_external(
    ctx: &OperatorContext,
    service: &'static str,
    session: u64,
    peer: Option<&PeerCertificate>,
    requested: &str,
) -> Result<String, Refusal> {
    let outcome = judge_external(ctx, peer, requested);
    ctx.recorder.record(
        service,
        session,
        "auth",
        json!({
            "mechanism": "EXTERNAL",
            "mailbox": if requested.is_empty() { peer.and_then(|p| p.mailbox.clone()) } else { Some(requested.to_owned()) },
            "certificate": peer.map(|p| p.subject.clone()),
            "ok": outcome.is_ok(),
            "reason": outcome.as_ref().err().map(|r| r.reason),
        }),
    );
    outcome
}

fn judge_external(
    ctx: &OperatorContext,
    peer: Option<&PeerCertificate>,
    requested: &str,
) -> Result<String, Refusal> {
    let refuse = |reason| Err(Refusal { reason });
    let Some(peer) = peer else {
        return refuse("no client certificate");
    };
    let Some(named) = &peer.mailbox else {
        return refuse("the certificate names no mailbox");
    };
    if !requested.is_empty() && !requested.eq_ignore_ascii_case(named) {
        return refuse("the certificate names another mailbox");
    }
    let Some(account) = ctx.account(named) else {
        return refuse("unknown mailbox");
    };
    if account.kind != AccountKind::App {
        return refuse("personal and organisational mailboxes log in with Pro Santé Connect");
    }
    Ok(account.address.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_payloads_are_decoded() {
        let (u, t) = parse_xoauth2(b"user=a@b.fr\x01auth=Bearer tok.en\x01\x01").unwrap();
        assert_eq!((u.as_str(), t.as_str()), ("a@b.fr", "tok.en"));
        let (u, t) =
            parse_oauthbearer(b"n,a=a@b.fr,\x01host=x\x01auth=Bearer tok\x01\x01").unwrap();
        assert_eq!((u.as_str(), t.as_str()), ("a@b.fr", "tok"));
        assert!(parse_xoauth2(b"user=a@b.fr\x01auth=Basic x\x01\x01").is_none());
        assert!(parse_xoauth2(&[0xff, 0xfe]).is_none());
        assert!(parse_oauthbearer(b"no separator").is_none());
    }
}
