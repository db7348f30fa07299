//! The hash chain of the trace journal, with no I/O: how an entry is serialised and
//! hashed. Kept apart so the format is written down in one place (docs/store.md repeats
//! it for auditors).
//!
//! `hash = hex(SHA-256(prev_hash ‖ "\n" ‖ canonical_json))`, where `prev_hash` is the
//! previous entry's hash in lower-case hex (64 zeros before the first entry) and
//! `canonical_json` is the JSON object of [`TraceFields`] with its fields in declaration
//! order, no white space, `null` for absent values, as `serde_json` writes it.

use serde::Serialize;

/// The hash the first entry of a journal points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Everything an entry's hash covers. `seq` is inside, so moving an entry to another
/// position changes its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceFields {
    pub seq: i64,
    pub kind: String,
    pub at_ms: i64,
    pub at: String,
    pub author: String,
    pub action: String,
    pub mailbox: Option<String>,
    pub patient: Option<String>,
    pub document: Option<String>,
    pub message: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
    pub outcome: String,
}

impl TraceFields {
    /// The canonical serialisation the hash is computed over.
    pub fn canonical_json(&self) -> String {
        // Only strings and integers: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// This entry's hash, chained to `prev_hash`.
    pub fn hash(&self, prev_hash: &str) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(prev_hash.as_bytes());
        ctx.update(b"\n");
        ctx.update(self.canonical_json().as_bytes());
        hex::encode(ctx.finish().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> TraceFields {
        TraceFields {
            seq: 1,
            kind: "entry".into(),
            at_ms: 1_764_115_200_000,
            at: "2025-11-26T00:00:00+01:00".into(),
            author: "dr.martin@hopital.mssante.fr".into(),
            action: "message.received".into(),
            mailbox: Some("service@hopital.mssante.fr".into()),
            patient: None,
            document: None,
            message: Some("<a@b>".into()),
            request: None,
            response: None,
            outcome: "ok".into(),
        }
    }

    #[test]
    fn canonical_form_is_fixed() {
        assert_eq!(
            fields().canonical_json(),
            r#"{"seq":1,"kind":"entry","at_ms":1764115200000,"at":"2025-11-26T00:00:00+01:00","author":"dr.martin@hopital.mssante.fr","action":"message.received","mailbox":"service@hopital.mssante.fr","patient":null,"document":null,"message":"<a@b>","request":null,"response":null,"outcome":"ok"}"#
        );
    }

    #[test]
    fn hash_depends_on_every_field_and_the_previous_hash() {
        let base = fields().hash(GENESIS_HASH);
        assert_eq!(base.len(), 64);
        assert_ne!(base, fields().hash(&base));
        let mut moved = fields();
        moved.seq = 2;
        assert_ne!(base, moved.hash(GENESIS_HASH));
        let mut absent = fields();
        absent.patient = Some(String::new());
        assert_ne!(base, absent.hash(GENESIS_HASH), "empty and absent differ");
    }
}
