//! What the simulator remembers between requests: codes, CIBA requests, refresh tokens,
//! sessions, revoked access tokens. Keys are SHA-256 digests of the secrets, so a lookup
//! reveals nothing through its timing. Every table is bounded.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Most entries one table keeps; beyond, expired ones are purged, then the oldest go.
const MAX_ENTRIES: usize = 10_000;

pub type Digest = [u8; 32];

pub fn digest(secret: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// An authorization request waiting on the login page.
#[derive(Debug, Clone)]
pub struct Pending {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub challenge: String,
    pub scope: String,
    pub login_hint: Option<String>,
    pub expires: Instant,
}

/// A code given to the client, redeemable once.
#[derive(Debug, Clone)]
pub struct Code {
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub challenge: String,
    pub scope: String,
    pub sub: String,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub struct Ciba {
    pub sub: String,
    pub scope: String,
    pub answer_at: Instant,
    pub expires: Instant,
    pub last_poll: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct Refresh {
    pub sub: String,
    pub scope: String,
    pub sid: String,
    pub expires: Instant,
}

#[derive(Default)]
pub struct State {
    pub pending: HashMap<String, Pending>,
    pub codes: HashMap<Digest, Code>,
    pub ciba: HashMap<Digest, Ciba>,
    pub refresh: HashMap<Digest, Refresh>,
    /// Sessions still open (by `sid`).
    pub sessions: HashSet<String>,
    /// Access tokens revoked before their expiry (by `jti`).
    pub revoked: HashSet<String>,
}

/// Inserts into a bounded table, purging what has expired when full.
pub fn insert_bounded<K: std::hash::Hash + Eq, V>(
    table: &mut HashMap<K, V>,
    key: K,
    value: V,
    expires: impl Fn(&V) -> Instant,
) {
    if table.len() >= MAX_ENTRIES {
        let now = Instant::now();
        table.retain(|_, v| expires(v) > now);
        if table.len() >= MAX_ENTRIES {
            table.clear();
        }
    }
    table.insert(key, value);
}

/// Keeps a set bounded: when full, the oldest facts are forgotten (a sandbox restarts often).
pub fn insert_set(set: &mut HashSet<String>, value: String) {
    if set.len() >= MAX_ENTRIES {
        set.clear();
    }
    set.insert(value);
}
