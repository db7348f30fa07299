//! Errors of the directory, one line each, saying what to do.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a zip archive the directory can read ({1}); download the extraction again")]
    Zip(PathBuf, String),
    #[error(
        "{0}: not an Annuaire Santé extraction (header not recognised); give the Personne_activite, SavoirFaire, Dipl_AutExerc or MSSanté file"
    )]
    UnknownFile(PathBuf),
    #[error("no directory index in {0}; run `mss directory import FILE...` first")]
    NoIndex(PathBuf),
    #[error(
        "another import is running (pid {0}); wait for it, or remove {1} if that process is gone"
    )]
    Locked(u32, PathBuf),
    #[error("index error: {0}; re-run `mss directory import`")]
    Index(String),
    #[error("index is damaged ({0}); re-run `mss directory import`")]
    Corrupt(String),
    #[error("nothing to import: no rows with an identifier were found in the given files")]
    Empty,
    #[error("care team file {0} is damaged ({1}); fix or remove it")]
    CareTeam(PathBuf, String),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
