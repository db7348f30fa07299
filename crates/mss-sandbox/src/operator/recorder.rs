//! What the operator saw, for the conformance checks: each connection (TLS version, suite,
//! client certificate), each authentication (mechanism, mailbox, outcome, a fingerprint of
//! the token — never the token), each command and answer, and the headers of each message
//! received. Kept in memory for the checks and appended to `<dir>/recorder.jsonl` as
//! evidence a person can read.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

/// Events kept in memory; older ones stay in the file only.
const KEPT: usize = 100_000;
/// Submitted messages kept in memory for the checks that open the attachments.
const KEPT_MESSAGES: usize = 64;

/// A message a client submitted, as the checks see it.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The `seq` of its `message` event.
    pub seq: u64,
    pub session: u64,
    pub from: String,
    pub recipients: Vec<String>,
    /// Every header field, in order, name and unfolded value.
    pub headers: Vec<(String, String)>,
    pub raw: Arc<[u8]>,
}

impl Submitted {
    /// The values of the header `name` (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One recorded event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Position in the recording, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `imap`, `smtp`, `delivery`…
    pub service: &'static str,
    /// Connection number (0 for events outside a connection).
    pub session: u64,
    /// `connect`, `tls`, `auth`, `command`, `response`, `message`, `bounce`…
    pub kind: &'static str,
    pub detail: Value,
}

#[derive(Debug)]
pub struct Recorder {
    file: Option<PathBuf>,
    sessions: AtomicU64,
    events: Mutex<(u64, VecDeque<Event>)>,
    messages: Mutex<VecDeque<Submitted>>,
}

impl Recorder {
    /// A recorder that also appends to `file` (created if missing).
    pub fn new(file: Option<&Path>) -> Recorder {
        Recorder {
            file: file.map(Path::to_owned),
            sessions: AtomicU64::new(0),
            events: Mutex::new((0, VecDeque::new())),
            messages: Mutex::new(VecDeque::new()),
        }
    }

    /// A number for a new connection.
    pub fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn record(&self, service: &'static str, session: u64, kind: &'static str, detail: Value) {
        self.record_seq(service, session, kind, detail);
    }

    /// Records a message a client submitted: the envelope and its header fields (unfolded)
    /// go to the recording, never the body; the bytes stay in memory for the checks only.
    pub fn record_message(
        &self,
        service: &'static str,
        session: u64,
        from: &str,
        recipients: &[String],
        headers: Vec<(String, String)>,
        raw: &[u8],
    ) {
        let seq = self.record_seq(
            service,
            session,
            "message",
            json!({
                "from": from,
                "to": recipients,
                "size": raw.len(),
                "headers": headers
                    .iter()
                    .map(|(name, value)| json!({ "name": name, "value": value }))
                    .collect::<Vec<_>>(),
            }),
        );
        let mut kept = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT_MESSAGES {
            kept.pop_front();
        }
        kept.push_back(Submitted {
            seq,
            session,
            from: from.to_owned(),
            recipients: recipients.to_vec(),
            headers,
            raw: raw.into(),
        });
    }

    /// The submitted messages recorded after `mark`, oldest first.
    pub fn messages_since(&self, mark: u64) -> Vec<Submitted> {
        let kept = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().filter(|m| m.seq > mark).cloned().collect()
    }

    fn record_seq(
        &self,
        service: &'static str,
        session: u64,
        kind: &'static str,
        detail: Value,
    ) -> u64 {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 += 1;
        let event = Event {
            seq: guard.0,
            at_ms,
            service,
            session,
            kind,
            detail,
        };
        if let Some(path) = &self.file
            && let Ok(mut line) = serde_json::to_vec(&event)
        {
            line.push(b'\n');
            // Evidence is best effort: a full disk must not stop the operator.
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&line));
        }
        if guard.1.len() == KEPT {
            guard.1.pop_front();
        }
        guard.1.push_back(event);
        guard.0
    }

    /// The sequence number of the last event (0 when none): a mark to read from later.
    pub fn mark(&self) -> u64 {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The events after `mark`, oldest first.
    pub fn since(&self, mark: u64) -> Vec<Event> {
        let guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().filter(|e| e.seq > mark).cloned().collect()
    }
}

/// A short, non-reversible fingerprint of a secret (first 12 hex digits of its SHA-256):
/// enough to see that the same token came back, useless to replay it.
pub fn fingerprint(secret: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_written_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recorder.jsonl");
        let rec = Recorder::new(Some(&path));
        let session = rec.next_session();
        rec.record(
            "imap",
            session,
            "connect",
            serde_json::json!({"peer": "127.0.0.1"}),
        );
        let mark = rec.mark();
        rec.record(
            "imap",
            session,
            "auth",
            serde_json::json!({"mechanism": "XOAUTH2"}),
        );
        let after = rec.since(mark);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, 2);
        assert_eq!(after[0].detail["mechanism"], "XOAUTH2");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));

        let raw = b"From: a@x.fr\r\nSubject: one\r\n  two\r\nX-MSS-NIL: ABC\r\n\r\nsecret body";
        let headers = crate::operator::delivery::header_fields(raw);
        rec.record_message("smtp", session, "a@x.fr", &["b@x.fr".into()], headers, raw);
        let sent = rec.messages_since(mark);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].header("subject"), vec!["one  two"]);
        assert_eq!(sent[0].header("X-MSS-NIL"), vec!["ABC"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"X-MSS-NIL\"") && !text.contains("secret body"));
        assert_eq!(fingerprint(b"a").len(), 12);
    }
}
