//! The local MSSanté trust space, the other side of the wire from mss: a test PKI shaped
//! like IGC Santé, a Pro Santé Connect simulator and the autoconfig document of the
//! sandbox domain, started together by [`Sandbox::start`] (docs/sandbox.md).
//!
//! This crate never depends on mss's own clients (mss-psc, mss-transport): it speaks the
//! protocols from their specifications, so a bug shared by both sides cannot hide.

pub mod autoconfig;
mod config;
pub mod conformance;
pub mod documents;
mod error;
mod fsio;
pub mod identities;
pub mod operator;
pub mod pki;
pub mod psc;
mod random;
mod space;
pub mod submit;

pub use error::SandboxError;
pub use space::{
    BalInfo, CLIENT_ID, DOMAIN, OperatorPorts, PscInfo, Sandbox, SandboxInfo, SandboxOptions,
};
