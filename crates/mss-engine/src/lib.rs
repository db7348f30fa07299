//! The inbox engine's decisions, as pure functions.
//!
//! Bytes and views of the local state go in, a list of [`process::Action`]s
//! comes out; the shell (which owns the store, the clock and the network)
//! executes them. Nothing here does I/O, reads a clock or draws randomness,
//! so every decision can be replayed and tested on its own.
//!
//! - [`classify`]: what a received message is (who sent it, XDM / MDN / DSN /
//!   plain), as far as display and routing need;
//! - [`matching`]: which local patient a document belongs to — filed
//!   automatically only on an exact qualified INS match, otherwise ranked
//!   candidates for a person;
//! - [`versions`]: new document, replacement, deletion, duplicate, or wrong
//!   version (900);
//! - [`acknowledge`]: which MDN or failure notice the sender gets, and
//!   building it;
//! - [`process`]: one message (or a manually imported XDM) → actions;
//! - [`shell`]: the only I/O — stores the message, reads the state, executes
//!   the actions in `mss-store`.
//!
//! The decision table is in `docs/engine.md`.

#![forbid(unsafe_code)]

pub mod acknowledge;
pub mod classify;
pub mod matching;
pub mod process;
mod reports;
pub mod shell;
pub mod versions;

pub use acknowledge::{AckPlan, FailureNotice, NoAckReason};
pub use classify::{MessageKind, Received, Report, Sender, SenderKind, classify};
pub use matching::{
    Candidate, DocumentPatient, LocalPatient, MatchOptions, MatchProblem, PatientDecision,
    match_patient,
};
pub use mss_docs::mdn::ErrorCode;
pub use process::{
    Action, DocumentOutcome, DocumentReport, Input, Notification, Opened, Options, Processed,
    State, TraceEvent, apply_to_history, decide, open, process,
};
pub use versions::{HeldState, HeldVersion, IncomingVersion, VersionDecision, decide_version};
