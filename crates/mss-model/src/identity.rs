//! Identity traits of a patient (traits INS) and how two sets of traits compare.

use serde::Serialize;

/// Administrative sex as CDA and INSi carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Sex {
    M,
    F,
    /// Unknown or undetermined (`UN` in CDA).
    U,
}

/// A birth date that may be partial: INSi and CDA may know only the year,
/// or the year and month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartialDate {
    pub year: u16,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

/// The traits INS: what identifies a person together with the matricule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdentityTraits {
    pub birth_name: Option<String>,
    pub first_given_name: Option<String>,
    /// Every birth given name, space-separated, as on the birth certificate.
    pub given_names: Option<String>,
    pub birth_date: Option<PartialDate>,
    pub sex: Option<Sex>,
    /// INSEE COG code of the birthplace.
    pub birthplace_code: Option<String>,
}

/// `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
impl std::fmt::Display for PartialDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(month) = self.month {
            write!(f, "-{month:02}")?;
            if let Some(day) = self.day {
                write!(f, "-{day:02}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for PartialDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
