//! Identité Nationale de Santé: the matricule (NIR or NIA with its key), the OID
//! that says which kind of INS it is, and the identity status of a patient record.

use serde::Serialize;

/// OID of a production INS-NIR.
pub const OID_INS_NIR: &str = "1.2.250.1.213.1.4.8";
/// OID of a production INS-NIA (temporary number).
pub const OID_INS_NIA: &str = "1.2.250.1.213.1.4.9";
/// OID of a test INS-NIR (used by every ANS example).
pub const OID_INS_TEST: &str = "1.2.250.1.213.1.4.10";
/// OID of a demonstration INS-NIR.
pub const OID_INS_DEMO: &str = "1.2.250.1.213.1.4.11";

/// Which kind of INS an OID designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InsKind {
    Nir,
    Nia,
    Test,
    Demo,
}

impl InsKind {
    /// The kind designated by `oid`, or `None` when the OID is not an INS
    /// (a local IPP, the legacy INS-C, the NIR as social-security number…).
    pub fn from_oid(oid: &str) -> Option<Self> {
        match oid.trim() {
            OID_INS_NIR => Some(Self::Nir),
            OID_INS_NIA => Some(Self::Nia),
            OID_INS_TEST => Some(Self::Test),
            OID_INS_DEMO => Some(Self::Demo),
            _ => None,
        }
    }

    pub fn oid(self) -> &'static str {
        match self {
            Self::Nir => OID_INS_NIR,
            Self::Nia => OID_INS_NIA,
            Self::Test => OID_INS_TEST,
            Self::Demo => OID_INS_DEMO,
        }
    }

    /// Production kinds always count as an INS; test and demonstration kinds
    /// only when the installation enables test identities.
    pub fn counts_as_ins(self, test_identities: bool) -> bool {
        matches!(self, Self::Nir | Self::Nia) || test_identities
    }
}

/// Why a matricule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsError {
    #[error("INS matricule must have 15 characters (13 + 2-digit key), found {0}")]
    Length(usize),
    #[error("INS matricule contains an unexpected character at position {0}")]
    Character(usize),
    #[error("INS matricule key is {found}, expected {expected}: check the number")]
    Key { found: u8, expected: u8 },
    #[error("OID {0} is not an INS OID (expected 1.2.250.1.213.1.4.8, .9, .10 or .11)")]
    Oid(String),
}

/// A matricule INS whose format and key have been checked: 13 characters
/// (digits, `2A`/`2B` for Corsica at positions 6–7) and the 2-digit key
/// `97 − (number mod 97)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Matricule(String);

impl Matricule {
    pub fn parse(text: &str) -> Result<Self, InsError> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() != 15 {
            return Err(InsError::Length(text.chars().count()));
        }
        let expected = key_of(&bytes[..13])?;
        for (i, b) in bytes[13..].iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(InsError::Character(13 + i));
            }
        }
        let found = (bytes[13] - b'0') * 10 + (bytes[14] - b'0');
        if found != expected {
            return Err(InsError::Key { found, expected });
        }
        Ok(Self(text.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Matricule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Matricule {
    type Err = InsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The key of a 13-character NIR/NIA. Corsica's `2A` and `2B` department
/// codes are replaced by 19 and 18 before the computation, as INSEE does.
fn key_of(number: &[u8]) -> Result<u8, InsError> {
    let mut value: u64 = 0;
    for (i, &b) in number.iter().enumerate() {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            b'A' | b'a' | b'B' | b'b' if i == 6 && number[5] == b'2' => 0,
            _ => return Err(InsError::Character(i)),
        };
        value = value * 10 + digit;
    }
    // 2A → 19, 2B → 18: the two department digits "2x" become 19 / 18.
    match number[6] {
        b'A' | b'a' => value -= 1_000_000,
        b'B' | b'b' => value -= 2_000_000,
        _ => {}
    }
    Ok((97 - value % 97) as u8)
}

/// A checked INS: matricule and the kind given by its OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Ins {
    pub matricule: Matricule,
    pub kind: InsKind,
}

impl Ins {
    pub fn new(matricule: &str, oid: &str) -> Result<Self, InsError> {
        let kind = InsKind::from_oid(oid).ok_or_else(|| InsError::Oid(oid.to_owned()))?;
        Ok(Self { matricule: Matricule::parse(matricule)?, kind })
    }
}

/// Identity status of a patient record (RNIV). Only `Qual` allows filing a
/// document automatically by its INS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IdentityStatus {
    Prov,
    Recup,
    Vali,
    Qual,
}

impl IdentityStatus {
    pub fn is_qualified(self) -> bool {
        self == Self::Qual
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ans_example_keys_verify() {
        for m in ["279035121518989", "162018885045327", "146026322000196"] {
            Matricule::parse(m).unwrap();
        }
    }

    #[test]
    fn wrong_key_is_refused_with_the_expected_one() {
        assert_eq!(
            Matricule::parse("279035121518988"),
            Err(InsError::Key { found: 88, expected: 89 })
        );
    }
}
