//! MSSanté addresses, and the patient addresses of Mon espace santé.

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a mail address: {0}")]
    Syntax(String),
}

/// A checked MSSanté mail address (local part @ domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MssAddress(String);
