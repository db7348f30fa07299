//! Test support shared by the interop tests: real servers started privately on 127.0.0.1,
//! a test PKI shaped like IGC Santé, and a TCP fault proxy.
//!
//! Every server is started in its own temporary directory and stopped when its handle is
//! dropped. `scripts/test` installs the servers and sets `MSS_REQUIRE_SERVERS=1`: then a
//! missing server is a test failure. A developer without them gets a skip that says so.

pub mod dovecot;
pub mod faultproxy;
pub mod oidc;
pub mod pki;
pub mod postfix;
pub mod postgres;
pub mod world;

use std::net::TcpListener;
use std::path::PathBuf;

/// A port that was free a moment ago on 127.0.0.1, for servers whose configuration needs
/// a fixed port (Dovecot, Postfix, node). Our own listeners bind port 0 instead.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Finds an executable in PATH or the usual system directories (Debian puts daemons in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// True when the servers must be there (set by `scripts/test`).
pub fn servers_required() -> bool {
    std::env::var_os("MSS_REQUIRE_SERVERS").is_some_and(|v| v == "1")
}

/// Call when a server is missing: fails under `scripts/test`, otherwise returns so the test
/// can skip, after saying why.
pub fn missing(what: &str) {
    if servers_required() {
        panic!(
            "{what} is not installed, but MSS_REQUIRE_SERVERS=1 (run scripts/test, which installs it)"
        );
    }
    eprintln!("skipped: {what} is not installed (scripts/test installs it)");
}
