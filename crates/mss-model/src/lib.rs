//! The MSSanté vocabulary shared by every other crate.
//!
//! Pure: no I/O, no clock, no randomness. Everything here is a value with its
//! validation rules, so a wrong INS or a forged address is stopped at the edge.

pub mod address;
pub mod doctype;
pub mod identity;
pub mod ins;

pub use address::{AddressError, MssAddress};
pub use identity::{IdentityTraits, PartialDate, Sex};
pub use ins::{IdentityStatus, Ins, InsError, InsKind, Matricule};
