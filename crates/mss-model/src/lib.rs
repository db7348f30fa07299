//! The MSSanté vocabulary shared by every other crate.
//!
//! Pure: no I/O, no clock, no randomness. Everything here is a value with its
//! validation rules, so a wrong INS or a forged address is stopped at the edge.

#![forbid(unsafe_code)]

pub mod address;
pub mod doctype;
pub mod identity;
pub mod ins;

pub use address::{AddressError, MssAddress};
pub use doctype::DocType;
pub use identity::{
    IdentityError, IdentityTraits, MismatchKind, PartialDate, Sex, Trait, TraitMismatch,
    normalize_name,
};
pub use ins::{IdentityStatus, Ins, InsError, InsKind, Matricule, TestIdentities};
