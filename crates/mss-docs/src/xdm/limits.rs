//! Bounds on what [`super::read`] accepts, so a hostile archive costs bounded
//! time and memory.

/// Limits applied while reading an archive. Sizes are in bytes. Declared
/// sizes are used to refuse early, never trusted: every entry is read through
/// `Read::take` with the remaining budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files and directories) in the archive, and most
    /// DocumentEntries in `METADATA.XML`.
    pub max_entries: usize,
    /// Most bytes all entries may expand to, together. This also bounds the
    /// memory `read` uses.
    pub max_total_size: u64,
    /// Most bytes one entry may expand to.
    pub max_entry_size: u64,
    /// Most an entry may expand relative to its compressed size. Entries that
    /// expand to at most [`Limits::ratio_floor`] bytes are exempt (a small
    /// very repetitive XML file is normal).
    pub max_ratio: u64,
    /// Expanded size under which the ratio is not checked.
    pub ratio_floor: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1000,
            max_total_size: 256 * 1024 * 1024,
            max_entry_size: 64 * 1024 * 1024,
            max_ratio: 100,
            ratio_floor: 1024 * 1024,
        }
    }
}
