//! Annuaire Santé: import, index, search.
#![forbid(unsafe_code)]
