//! The API LPS transport: how mss reaches an MSSanté operator.
//!
//! - [`bal`]: how a mailbox is described in `mss.toml` (kind, authentication, endpoints).
//! - [`tls`]: the TLS policy — IGC Santé anchors only, TLS 1.2 minimum, CRLs kept on disk.
//! - [`autoconfig`]: from a mailbox address to IMAP/SMTP endpoints (explicit, SRV, autoconfig XML).
//! - [`sasl`], [`imap`], [`smtp`]: authenticated sessions (XOAUTH2 with a PSC token, EXTERNAL
//!   with a client certificate).
//! - [`client`]: one configured mailbox — sync, follow, submit, keep a copy in Sent.
//! - [`supervisor`]: one task per mailbox that reopens its session by itself.
//! - [`trace`]: every request to the operator and its answer, for the functional traces.
//!
//! This crate knows nothing of documents: it moves bytes and reports what happened.

#![forbid(unsafe_code)]

pub mod autoconfig;
pub mod bal;
pub mod client;
pub mod error;
pub mod imap;
pub mod sasl;
pub mod smtp;
pub mod supervisor;
pub mod tls;
pub mod trace;

pub use bal::{BalAuth, BalConfig, BalKind, Endpoint, Security};
pub use error::{TlsFailure, TransportError};
