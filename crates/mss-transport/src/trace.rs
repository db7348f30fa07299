//! Functional traces of every exchange with the operator (SC.MSS/CONF.17/18).
//!
//! A trace says who did what and how it went — never the content of a message and never a
//! secret. Sessions build events with [`TraceEvent::new`], which redacts what follows an
//! authentication command, and hand them to a [`TraceSink`]; the engine will persist them.

use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Connect,
    StartTls,
    Authenticate,
    Capability,
    Select,
    Fetch,
    Search,
    Store,
    Append,
    Expunge,
    Idle,
    Submit,
    Logout,
    Autoconfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceEvent {
    /// The mailbox (or user) on whose behalf the request was made.
    pub author: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: Action,
    /// The request as sent, with credentials removed.
    pub request: String,
    /// The server's answer (status line), with anything after a SASL challenge removed.
    pub response: String,
    pub outcome: Outcome,
}

impl TraceEvent {
    /// An event stamped now in local time; `request` and `response` are redacted here so no
    /// caller can forget to.
    pub fn new(
        author: &str,
        action: Action,
        request: &str,
        response: &str,
        outcome: Outcome,
    ) -> Self {
        let at = OffsetDateTime::now_local().unwrap_or_else(|_| OffsetDateTime::now_utc());
        TraceEvent {
            author: author.to_owned(),
            at,
            action,
            request: redact(request),
            response: redact(response),
            outcome,
        }
    }
}

/// Where traces go. Implementations must not block for long: sessions call it inline.
pub trait TraceSink: Send + Sync {
    fn record(&self, event: TraceEvent);
}

/// Keeps events in memory (tests, and the CLI's `--json` summaries).
#[derive(Debug, Default, Clone)]
pub struct MemorySink(Arc<Mutex<Vec<TraceEvent>>>);

impl MemorySink {
    pub fn events(&self) -> Vec<TraceEvent> {
        self.0
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

impl TraceSink for MemorySink {
    fn record(&self, event: TraceEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event);
        }
    }
}

/// Drops every event (when the caller has no use for traces).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl TraceSink for NoTrace {
    fn record(&self, _event: TraceEvent) {}
}

/// Keeps a command's verb and mechanism and drops any SASL payload: `AUTHENTICATE XOAUTH2 dXNl…`
/// becomes `AUTHENTICATE XOAUTH2 [redacted]`, and a bare base64 continuation line is dropped whole.
/// Lines are cut at 200 characters: a trace is a summary, not a copy of the exchange.
pub fn redact(line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let auth_at = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("AUTHENTICATE") || w.eq_ignore_ascii_case("AUTH"));
    if let Some(i) = auth_at {
        let kept = (i + 2).min(words.len());
        let mut out = words[..kept].join(" ");
        if words.len() > kept {
            out.push_str(" [redacted]");
        }
        return out;
    }
    if words.len() == 1 && looks_like_sasl_payload(words[0]) {
        return "[redacted]".to_owned();
    }
    // Bearer tokens can appear in error texts some servers echo back.
    let mut out = String::with_capacity(line.len().min(200));
    for (n, word) in line.split(' ').enumerate() {
        if n > 0 {
            out.push(' ');
        }
        if word.len() > 40 && looks_like_sasl_payload(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
    }
    if out.len() > 200 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn looks_like_sasl_payload(word: &str) -> bool {
    word.len() >= 16
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_payloads_never_reach_a_trace() {
        assert_eq!(
            redact("A1 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBleUo="),
            "A1 AUTHENTICATE XOAUTH2 [redacted]"
        );
        assert_eq!(
            redact("AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBleUo=\r\n"),
            "AUTH XOAUTH2 [redacted]"
        );
        assert_eq!(redact("AUTH EXTERNAL ="), "AUTH EXTERNAL [redacted]");
        assert_eq!(redact("dXNlcj1hbGljZQFhdXRoPUJlYXJlciBleUo="), "[redacted]");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert_eq!(
            redact(&format!("NO token {jwt} expired")),
            "NO token [redacted] expired"
        );
    }

    #[test]
    fn ordinary_commands_are_kept() {
        assert_eq!(redact("A2 SELECT INBOX"), "A2 SELECT INBOX");
        assert_eq!(
            redact("A3 OK [READ-WRITE] Select completed."),
            "A3 OK [READ-WRITE] Select completed."
        );
        assert!(redact(&"x ".repeat(300)).chars().count() <= 201);
    }
}
