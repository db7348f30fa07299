//! Annuaire Santé: import of the ANS extraction files, an offline full-text
//! index, and a query language that understands what each word is.
//!
//! ```no_run
//! use mss_directory::{Directory, Filters};
//! let dir = Directory::open(std::path::Path::new("mss-data/directory"))?;
//! let result = dir.search("Dupont 97500 cardiologue", &Filters::default(), 10)?;
//! for hit in result.hits {
//!     println!("{} {:?}", hit.nom, hit.bal.iter().map(|b| &b.adresse).collect::<Vec<_>>());
//! }
//! # Ok::<(), mss_directory::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod care_team;
mod error;
pub mod format;
mod fsio;
pub mod line;
pub mod query;
pub mod record;
pub mod synonyms;
pub mod synth;
pub mod text;

#[cfg(feature = "index")]
pub mod import;
#[cfg(feature = "index")]
mod index;
#[cfg(feature = "index")]
mod pread;
#[cfg(feature = "index")]
mod search;

pub use error::Error;
#[cfg(feature = "index")]
pub use import::{ImportOptions, ImportSummary, Progress, import};
pub use query::{Filters, Query};
#[cfg(feature = "index")]
pub use search::{Detail, DetailRecord, Directory, Hit, Mailbox, SearchResult, Site};
