//! One error type for the sandbox: each variant says what happened and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: cannot read or write {path}: {source} (check the --dir permissions)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox: cannot build the test PKI: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("sandbox: {path} is damaged ({why}); delete the sandbox directory to start afresh")]
    Damaged { path: PathBuf, why: String },
    #[error("sandbox: cannot create the PSC signing key: {0}")]
    Key(String),
    #[error("sandbox: cannot listen on 127.0.0.1:{port}: {source} (choose another --port-base)")]
    Listen { port: u16, source: std::io::Error },
    #[error("sandbox: invalid test identity {0}: fix the sandbox's identity table")]
    Identity(String),
}

impl SandboxError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let path = path.into();
        move |source| SandboxError::Io { path, source }
    }
}
