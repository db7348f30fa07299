//! Identity traits of a patient (traits INS) and how two sets of traits compare.
//!
//! Two comparisons, for two different uses:
//! - [`IdentityTraits::matches_exactly`] decides whether a received document
//!   may be filed automatically: every trait must be present and equal after
//!   [`normalize_name`]. Anything else goes to a human.
//! - [`IdentityTraits::similarity`] ranks candidate patients for that human.
//!   It never decides anything by itself.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Why a birth date or a sex code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "birth date {text:?} is not of the form {expected}: correct the date where it was entered"
    )]
    DateSyntax {
        text: String,
        expected: &'static str,
    },
    #[error(
        "birth date {text:?} has month {month}, not 1 to 12: correct the date where it was entered"
    )]
    Month { text: String, month: u8 },
    #[error(
        "birth date {text:?} has day {day}, which month {month} of {year} does not have: correct the date where it was entered"
    )]
    Day {
        text: String,
        year: u16,
        month: u8,
        day: u8,
    },
    #[error("administrative sex code {0:?} is unknown: expected M, F or UN")]
    Sex(String),
}

/// Administrative sex as CDA and INSi carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sex {
    M,
    F,
    /// Unknown or undetermined (`UN` in CDA).
    U,
}

impl Sex {
    /// Reads a CDA `administrativeGenderCode@code` (`M`, `F`, `UN`; `U` is
    /// accepted for unknown too), case-insensitive, surrounding spaces ignored.
    pub fn from_code(code: &str) -> Result<Self, IdentityError> {
        match code.trim().to_ascii_uppercase().as_str() {
            "M" => Ok(Self::M),
            "F" => Ok(Self::F),
            "UN" | "U" => Ok(Self::U),
            _ => Err(IdentityError::Sex(code.trim().to_owned())),
        }
    }

    /// The CDA code: `M`, `F` or `UN`.
    pub fn cda_code(self) -> &'static str {
        match self {
            Self::M => "M",
            Self::F => "F",
            Self::U => "UN",
        }
    }
}

/// A birth date that may be partial: INSi and CDA may know only the year,
/// or the year and month. A day is only ever present with a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartialDate {
    pub year: u16,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

const HL7_FORMS: &str = "YYYY, YYYYMM or YYYYMMDD (an optional time and time zone may follow)";
const ISO_FORMS: &str = "YYYY-MM-DD, YYYY-MM or YYYY";

impl PartialDate {
    /// A checked date: year 1 to 9999, month 1–12, day valid for the month
    /// (leap years included), no day without a month.
    pub fn new(year: u16, month: Option<u8>, day: Option<u8>) -> Result<Self, IdentityError> {
        let text = || render(year, month, day);
        if !(1..=9999).contains(&year) || (day.is_some() && month.is_none()) {
            return Err(IdentityError::DateSyntax {
                text: text(),
                expected: ISO_FORMS,
            });
        }
        if let Some(month) = month {
            if !(1..=12).contains(&month) {
                return Err(IdentityError::Month {
                    text: text(),
                    month,
                });
            }
            if let Some(day) = day
                && !(1..=days_in_month(year, month)).contains(&day)
            {
                return Err(IdentityError::Day {
                    text: text(),
                    year,
                    month,
                    day,
                });
            }
        }
        Ok(Self { year, month, day })
    }

    /// Reads an HL7 TS as found in CDA `birthTime@value`: `YYYY`, `YYYYMM` or
    /// `YYYYMMDD`, optionally followed by a time (`HH[MM[SS[.S…]]]`) and a
    /// time zone (`+HHMM`/`-HHMM`), which are checked for shape and ignored.
    pub fn parse_hl7(text: &str) -> Result<Self, IdentityError> {
        let trimmed = text.trim();
        let syntax = || IdentityError::DateSyntax {
            text: trimmed.to_owned(),
            expected: HL7_FORMS,
        };
        let (stamp, zone) = match trimmed.find(['+', '-']) {
            Some(at) => (&trimmed[..at], Some(&trimmed[at + 1..])),
            None => (trimmed, None),
        };
        if let Some(zone) = zone
            && !(zone.len() == 4 && zone.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(syntax());
        }
        let (digits, fraction) = match stamp.split_once('.') {
            Some((digits, fraction)) => (digits, Some(fraction)),
            None => (stamp, None),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        match (digits.len(), fraction) {
            (4 | 6 | 8 | 10 | 12 | 14, None) => {}
            (14, Some(f))
                if (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(syntax()),
        }
        // Only ASCII digits from here: slicing by byte is safe.
        let num = |range: std::ops::Range<usize>| digits[range].parse::<u16>().ok();
        let year = num(0..4).ok_or_else(syntax)?;
        let month = if digits.len() >= 6 { num(4..6) } else { None };
        let day = if digits.len() >= 8 { num(6..8) } else { None };
        Self::checked(trimmed, year, month, day, HL7_FORMS)
    }

    /// Reads `YYYY-MM-DD`, `YYYY-MM` or `YYYY` (surrounding spaces ignored).
    pub fn parse_iso(text: &str) -> Result<Self, IdentityError> {
        let trimmed = text.trim();
        let syntax = || IdentityError::DateSyntax {
            text: trimmed.to_owned(),
            expected: ISO_FORMS,
        };
        let mut parts = trimmed.split('-');
        let mut field = |width: usize| -> Result<Option<u16>, IdentityError> {
            match parts.next() {
                None => Ok(None),
                Some(p) if p.len() == width && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map(Some).map_err(|_| syntax())
                }
                Some(_) => Err(syntax()),
            }
        };
        let year = field(4)?.ok_or_else(syntax)?;
        let month = field(2)?;
        let day = field(2)?;
        if parts.next().is_some() {
            return Err(syntax());
        }
        Self::checked(trimmed, year, month, day, ISO_FORMS)
    }

    fn checked(
        text: &str,
        year: u16,
        month: Option<u16>,
        day: Option<u16>,
        expected: &'static str,
    ) -> Result<Self, IdentityError> {
        // Two digits at most: the narrowing cannot fail.
        let narrow = |v: Option<u16>| v.map(|v| u8::try_from(v).unwrap_or(u8::MAX));
        Self::new(year, narrow(month), narrow(day)).map_err(|e| match e {
            IdentityError::DateSyntax { .. } => IdentityError::DateSyntax {
                text: text.to_owned(),
                expected,
            },
            IdentityError::Month { month, .. } => IdentityError::Month {
                text: text.to_owned(),
                month,
            },
            IdentityError::Day {
                year, month, day, ..
            } => IdentityError::Day {
                text: text.to_owned(),
                year,
                month,
                day,
            },
            other => other,
        })
    }

    /// True when year, month and day are all known.
    pub fn is_complete(&self) -> bool {
        self.month.is_some() && self.day.is_some()
    }

    /// The HL7 TS form: `YYYYMMDD`, `YYYYMM` or `YYYY`.
    pub fn to_hl7(&self) -> String {
        let mut out = format!("{:04}", self.year);
        if let Some(month) = self.month {
            out.push_str(&format!("{month:02}"));
            if let Some(day) = self.day {
                out.push_str(&format!("{day:02}"));
            }
        }
        out
    }
}

fn render(year: u16, month: Option<u8>, day: Option<u8>) -> String {
    match (month, day) {
        (Some(m), Some(d)) => format!("{year:04}-{m:02}-{d:02}"),
        (Some(m), None) => format!("{year:04}-{m:02}"),
        (None, Some(d)) => format!("{year:04}-??-{d:02}"),
        (None, None) => format!("{year:04}"),
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
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

impl std::str::FromStr for PartialDate {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_iso(s)
    }
}

impl Serialize for PartialDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_iso(&text).map_err(serde::de::Error::custom)
    }
}

/// The traits INS: what identifies a person together with the matricule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// One of the six traits INS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trait {
    BirthName,
    FirstGivenName,
    GivenNames,
    BirthDate,
    Sex,
    BirthplaceCode,
}

impl Trait {
    /// The six traits, in the order they are compared and reported.
    pub const ALL: [Trait; 6] = [
        Trait::BirthName,
        Trait::FirstGivenName,
        Trait::GivenNames,
        Trait::BirthDate,
        Trait::Sex,
        Trait::BirthplaceCode,
    ];

    /// The French name shown to health professionals.
    pub fn label_fr(self) -> &'static str {
        match self {
            Trait::BirthName => "nom de naissance",
            Trait::FirstGivenName => "premier prénom de naissance",
            Trait::GivenNames => "prénoms de naissance",
            Trait::BirthDate => "date de naissance",
            Trait::Sex => "sexe",
            Trait::BirthplaceCode => "lieu de naissance (code COG)",
        }
    }
}

/// How one trait failed the exact comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// Absent (or blank) in the traits the comparison was called on.
    MissingInSelf,
    /// Absent (or blank) in the traits given as argument.
    MissingInOther,
    /// Absent on both sides.
    MissingInBoth,
    /// Present on both sides, different after normalisation.
    Different,
}

/// One trait that prevents an exact match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraitMismatch {
    #[serde(rename = "trait")]
    pub trait_: Trait,
    pub kind: MismatchKind,
}

impl TraitMismatch {
    /// True when the trait is missing on either side (incomplete traits,
    /// MDN 905) rather than different (MDN 904).
    pub fn is_missing(&self) -> bool {
        self.kind != MismatchKind::Different
    }
}

/// Normalises a name for exact comparison, so two spellings of the same name
/// compare equal:
/// - `Œ`/`œ` → `OE`, `Æ`/`æ` → `AE`, `ß` → `SS`;
/// - upper-case;
/// - compatibility decomposition (NFKD) and removal of combining marks, which
///   strips diacritics (`É` → `E`) and folds compatibility forms (`ﬁ` → `FI`,
///   full-width letters);
/// - hyphens (`-`, `‐`, `‑`, `–`), apostrophes (`'`, `’`, `‘`, `ʼ`) and any
///   white space are one and the same separator, written as one space;
///   runs of separators collapse, and leading/trailing ones are removed.
///
/// Other characters (digits, dots…) are kept as they are.
///
/// The RNIV's exact normalisation rules were not available when this was
/// written (the reference notes mark the rule [INFERRED]): this function is
/// the single place to change when they are.
pub fn normalize_name(name: &str) -> String {
    // Folding twice reaches a fixed point: the second pass catches the rare
    // characters whose decomposition yields a ligature or a lower-case letter.
    let folded = fold(&fold(name));
    let mut out = String::with_capacity(folded.len());
    let mut pending_separator = false;
    for c in folded.chars() {
        if is_separator(c) {
            pending_separator = true;
        } else {
            if pending_separator && !out.is_empty() {
                out.push(' ');
            }
            pending_separator = false;
            out.push(c);
        }
    }
    out
}

/// Ligatures spelt out, upper-case, NFKD, combining marks dropped.
fn fold(text: &str) -> String {
    let mut upper = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'Œ' | 'œ' => upper.push_str("OE"),
            'Æ' | 'æ' => upper.push_str("AE"),
            _ => upper.extend(c.to_uppercase()),
        }
    }
    upper.nfkd().filter(|c| !is_combining_mark(*c)).collect()
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{2010}'
                | '\u{2011}'
                | '\u{2013}'
                | '\''
                | '\u{2019}'
                | '\u{2018}'
                | '\u{02BC}'
        )
}

/// A name trait, normalised; blank counts as absent.
fn name_key(value: Option<&str>) -> Option<String> {
    value.map(normalize_name).filter(|s| !s.is_empty())
}

/// A COG code, trimmed and upper-cased (`2a004` is `2A004`); blank counts as absent.
fn cog_key(value: Option<&str>) -> Option<String> {
    value
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
}

/// Trait weights for [`IdentityTraits::similarity`], summing to 1.
const WEIGHTS: [(Trait, f64); 5] = [
    (Trait::BirthName, 0.35),
    (Trait::BirthDate, 0.25),
    (Trait::FirstGivenName, 0.20),
    (Trait::Sex, 0.10),
    (Trait::BirthplaceCode, 0.10),
];

impl IdentityTraits {
    /// The traits, among the six, that are absent or blank.
    pub fn missing_traits(&self) -> Vec<Trait> {
        Trait::ALL.into_iter().filter(|t| !self.has(*t)).collect()
    }

    /// True when the six traits INS are all present (and not blank): what a
    /// document carrying an INS must have.
    pub fn is_complete_for_ins(&self) -> bool {
        Trait::ALL.into_iter().all(|t| self.has(t))
    }

    fn has(&self, t: Trait) -> bool {
        match t {
            Trait::BirthDate => self.birth_date.is_some(),
            Trait::Sex => self.sex.is_some(),
            Trait::BirthplaceCode => cog_key(self.birthplace_code.as_deref()).is_some(),
            _ => self.text_key(t).is_some(),
        }
    }

    fn text_key(&self, t: Trait) -> Option<String> {
        match t {
            Trait::BirthName => name_key(self.birth_name.as_deref()),
            Trait::FirstGivenName => name_key(self.first_given_name.as_deref()),
            Trait::GivenNames => name_key(self.given_names.as_deref()),
            Trait::BirthplaceCode => cog_key(self.birthplace_code.as_deref()),
            Trait::BirthDate => self.birth_date.map(|d| d.to_string()),
            Trait::Sex => self.sex.map(|s| s.cda_code().to_owned()),
        }
    }

    /// Exact comparison of the six traits after normalisation (names through
    /// [`normalize_name`], COG code trimmed and upper-cased, dates and sex
    /// as they are: a partial date never equals a full one).
    ///
    /// `Ok(())` only when all six are present on both sides and equal.
    /// Otherwise every failing trait is reported once, in [`Trait::ALL`]
    /// order, saying whether it is missing (and where) or different.
    pub fn matches_exactly(&self, other: &IdentityTraits) -> Result<(), Vec<TraitMismatch>> {
        let mismatches: Vec<TraitMismatch> = Trait::ALL
            .into_iter()
            .filter_map(|t| {
                let kind = match (self.text_key(t), other.text_key(t)) {
                    (Some(a), Some(b)) if a == b => return None,
                    (Some(_), Some(_)) => MismatchKind::Different,
                    (None, Some(_)) => MismatchKind::MissingInSelf,
                    (Some(_), None) => MismatchKind::MissingInOther,
                    (None, None) => MismatchKind::MissingInBoth,
                };
                Some(TraitMismatch { trait_: t, kind })
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches)
        }
    }

    /// A score from 0.0 (nothing alike) to 1.0 (alike on every trait known
    /// on both sides), to rank candidate patients for a human. Never use it
    /// to file a document: that takes [`IdentityTraits::matches_exactly`].
    ///
    /// Weighted blend: birth name 0.35, birth date 0.25, first given name
    /// 0.20 (the first of the given names when it is not given apart), sex
    /// 0.10, birthplace 0.10. Names compare by Jaro-Winkler on normalised
    /// spellings, so typos cost little; dates by the parts known on both
    /// sides; a trait known on one side only scores 0; a trait known on
    /// neither side is left out of the blend. With no trait to compare the
    /// score is 0.0.
    ///
    /// Symmetric: `a.similarity(&b) == b.similarity(&a)`.
    pub fn similarity(&self, other: &IdentityTraits) -> f64 {
        let mut total = 0.0;
        let mut weight_sum = 0.0;
        for (t, w) in WEIGHTS {
            let score = match t {
                Trait::BirthDate => match (self.birth_date, other.birth_date) {
                    (None, None) => None,
                    (Some(a), Some(b)) => Some(date_similarity(a, b)),
                    _ => Some(0.0),
                },
                Trait::Sex => match (self.sex, other.sex) {
                    (None, None) => None,
                    (Some(a), Some(b)) if a == b => Some(1.0),
                    (Some(Sex::U), Some(_)) | (Some(_), Some(Sex::U)) => Some(0.5),
                    _ => Some(0.0),
                },
                Trait::FirstGivenName => {
                    option_score(self.first_given_key(), other.first_given_key(), |a, b| {
                        jaro_winkler(a, b)
                    })
                }
                Trait::BirthName => option_score(self.text_key(t), other.text_key(t), |a, b| {
                    jaro_winkler(a, b)
                }),
                _ => option_score(self.text_key(t), other.text_key(t), |a, b| {
                    if a == b { 1.0 } else { 0.0 }
                }),
            };
            if let Some(score) = score {
                total += w * score;
                weight_sum += w;
            }
        }
        if weight_sum == 0.0 {
            0.0
        } else {
            (total / weight_sum).clamp(0.0, 1.0)
        }
    }

    fn first_given_key(&self) -> Option<String> {
        self.text_key(Trait::FirstGivenName).or_else(|| {
            let all = self.given_names.as_deref()?;
            name_key(all.split_whitespace().next())
        })
    }
}

fn option_score(
    a: Option<String>,
    b: Option<String>,
    score: impl Fn(&str, &str) -> f64,
) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (Some(a), Some(b)) => Some(score(&a, &b)),
        _ => Some(0.0),
    }
}

/// Share of the date parts known on both sides that are equal (year, then
/// month, then day). 1980 against 1980-05-12 is 1.0: nothing known disagrees.
fn date_similarity(a: PartialDate, b: PartialDate) -> f64 {
    let mut compared = 1u8;
    let mut equal = u8::from(a.year == b.year);
    if let (Some(x), Some(y)) = (a.month, b.month) {
        compared += 1;
        equal += u8::from(x == y);
        if let (Some(x), Some(y)) = (a.day, b.day) {
            compared += 1;
            equal += u8::from(x == y);
        }
    }
    f64::from(equal) / f64::from(compared)
}

/// Characters of each name that [`jaro_winkler`] compares. Matching is
/// quadratic, and names come from received documents: a hostile megabyte
/// long "name" must not cost 10^12 steps. No real name is this long.
const MAX_COMPARED_CHARS: usize = 256;

/// Jaro-Winkler similarity (prefix scale 0.1, prefix up to 4 characters) of
/// the first [`MAX_COMPARED_CHARS`] characters of each string.
/// The arguments are put in a fixed order first, so the result is symmetric
/// even where greedy matching would not be.
pub(crate) fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().take(MAX_COMPARED_CHARS).collect();
    let b: Vec<char> = b.chars().take(MAX_COMPARED_CHARS).collect();
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = vec![false; b.len()];
    let mut a_matched = Vec::with_capacity(a.len());
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if lo >= hi {
            continue;
        }
        if let Some(j) = (lo..hi).find(|&j| !b_used[j] && b[j] == ca) {
            b_used[j] = true;
            a_matched.push(ca);
        }
    }
    let m = a_matched.len();
    if m == 0 {
        return 0.0;
    }
    let b_matched = b
        .iter()
        .zip(&b_used)
        .filter(|(_, used)| **used)
        .map(|(c, _)| *c);
    let half_transpositions = a_matched
        .iter()
        .zip(b_matched)
        .filter(|(x, y)| *x != y)
        .count();
    let m = m as f64;
    let t = (half_transpositions / 2) as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0;
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count() as f64;
    (jaro + prefix * 0.1 * (1.0 - jaro)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: u16, m: Option<u8>, d: Option<u8>) -> PartialDate {
        PartialDate::new(y, m, d).unwrap()
    }

    /// The test identity of the ANS examples.
    fn dominique() -> IdentityTraits {
        IdentityTraits {
            birth_name: Some("PAT-TROIS".into()),
            first_given_name: Some("DOMINIQUE".into()),
            given_names: Some("DOMINIQUE MARIE-LOUISE".into()),
            birth_date: Some(date(1979, Some(3), Some(5))),
            sex: Some(Sex::F),
            birthplace_code: Some("51215".into()),
        }
    }

    #[test]
    fn hl7_dates() {
        assert_eq!(
            PartialDate::parse_hl7("19790305"),
            Ok(date(1979, Some(3), Some(5)))
        );
        assert_eq!(
            PartialDate::parse_hl7("197903"),
            Ok(date(1979, Some(3), None))
        );
        assert_eq!(PartialDate::parse_hl7(" 1979 "), Ok(date(1979, None, None)));
        assert_eq!(
            PartialDate::parse_hl7("197903051230"),
            Ok(date(1979, Some(3), Some(5)))
        );
        assert_eq!(
            PartialDate::parse_hl7("20240229235959.123+0100"),
            Ok(date(2024, Some(2), Some(29)))
        );
        assert_eq!(
            PartialDate::parse_hl7("19790305-0500"),
            Ok(date(1979, Some(3), Some(5)))
        );
        for bad in [
            "",
            "79",
            "19790",
            "1979030",
            "1979-03-05",
            "19790305+01",
            "1979030512.5",
            "abcd",
            "1979a305",
            "١٩٧٩",
        ] {
            assert!(
                matches!(
                    PartialDate::parse_hl7(bad),
                    Err(IdentityError::DateSyntax { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            PartialDate::parse_hl7("19791305"),
            Err(IdentityError::Month {
                text: "19791305".into(),
                month: 13
            })
        );
        assert!(matches!(
            PartialDate::parse_hl7("19790000"),
            Err(IdentityError::Month { month: 0, .. })
        ));
        assert_eq!(
            PartialDate::parse_hl7("20230229"),
            Err(IdentityError::Day {
                text: "20230229".into(),
                year: 2023,
                month: 2,
                day: 29
            })
        );
        assert!(PartialDate::parse_hl7("20000229").is_ok());
        assert!(PartialDate::parse_hl7("19000229").is_err());
        assert!(PartialDate::parse_hl7("19790431").is_err());
        assert!(PartialDate::parse_hl7("00001231").is_err());
    }

    #[test]
    fn iso_dates_and_display() {
        assert_eq!(
            PartialDate::parse_iso("1979-03-05"),
            Ok(date(1979, Some(3), Some(5)))
        );
        assert_eq!(
            PartialDate::parse_iso("1979-03"),
            Ok(date(1979, Some(3), None))
        );
        assert_eq!(PartialDate::parse_iso("1979"), Ok(date(1979, None, None)));
        for bad in [
            "",
            "1979-3-5",
            "19790305",
            "1979-03-05-01",
            "1979--05",
            "1979-",
            "+979-03",
            "1979-03-05T00:00",
        ] {
            assert!(
                matches!(
                    PartialDate::parse_iso(bad),
                    Err(IdentityError::DateSyntax { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            PartialDate::parse_iso("1979-02-30"),
            Err(IdentityError::Day { day: 30, .. })
        ));
        assert_eq!(date(1979, Some(3), Some(5)).to_string(), "1979-03-05");
        assert_eq!(date(1979, Some(3), None).to_string(), "1979-03");
        assert_eq!(date(979, None, None).to_string(), "0979");
        assert_eq!(date(1979, Some(3), Some(5)).to_hl7(), "19790305");
        assert_eq!(date(1979, Some(3), None).to_hl7(), "197903");
        assert!(date(1979, Some(3), Some(5)).is_complete());
        assert!(!date(1979, Some(3), None).is_complete());
        assert!(PartialDate::new(1979, None, Some(3)).is_err());
    }

    #[test]
    fn date_errors_are_one_line() {
        let e = PartialDate::parse_hl7("2023-02-29").unwrap_err();
        assert_eq!(
            e.to_string(),
            "birth date \"2023-02-29\" is not of the form YYYY, YYYYMM or YYYYMMDD (an optional time and time zone may follow): correct the date where it was entered"
        );
        let e = PartialDate::parse_iso("2023-02-29").unwrap_err();
        assert_eq!(
            e.to_string(),
            "birth date \"2023-02-29\" has day 29, which month 2 of 2023 does not have: correct the date where it was entered"
        );
    }

    #[test]
    fn sex_codes() {
        assert_eq!(Sex::from_code("M"), Ok(Sex::M));
        assert_eq!(Sex::from_code("f"), Ok(Sex::F));
        assert_eq!(Sex::from_code("UN"), Ok(Sex::U));
        assert_eq!(Sex::from_code(" U "), Ok(Sex::U));
        assert_eq!(Sex::from_code("X"), Err(IdentityError::Sex("X".into())));
        assert_eq!(Sex::from_code(""), Err(IdentityError::Sex(String::new())));
        assert_eq!(Sex::U.cda_code(), "UN");
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_name("Dupont"), "DUPONT");
        assert_eq!(normalize_name("  Héloïse  "), "HELOISE");
        assert_eq!(normalize_name("Lætitia"), "LAETITIA");
        assert_eq!(normalize_name("Œdipe"), "OEDIPE");
        assert_eq!(normalize_name("Strauß"), "STRAUSS");
        assert_eq!(normalize_name("d’Artagnan"), "D ARTAGNAN");
        assert_eq!(normalize_name("D'ARTAGNAN"), normalize_name("d ʼartagnan"));
        assert_eq!(normalize_name("Marie-Louise"), "MARIE LOUISE");
        assert_eq!(normalize_name("Marie -  Louise"), "MARIE LOUISE");
        assert_eq!(normalize_name("Marie\u{2011}Louise"), "MARIE LOUISE");
        assert_eq!(normalize_name("ﬁfi"), "FIFI");
        assert_eq!(normalize_name("ÇA"), "CA");
        assert_eq!(normalize_name(" - ' "), "");
        assert_eq!(normalize_name("St. Jean"), "ST. JEAN");
        assert_ne!(normalize_name("DUPOND"), normalize_name("DUPONT"));
    }

    #[test]
    fn normalisation_is_idempotent_on_every_character() {
        // Planes 0 and 1, the CJK compatibility supplement and the tags and
        // variation selectors: the rest of Unicode has no decomposition and
        // no case, and would only make the test slow.
        let ranges = [0..=0x1FFFFu32, 0x2F800..=0x2FA1F, 0xE0000..=0xE01EF];
        for c in ranges.into_iter().flatten().filter_map(char::from_u32) {
            let once = normalize_name(&format!("a{c}"));
            assert_eq!(normalize_name(&once), once, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn exact_match_of_the_ans_identity() {
        let stored = dominique();
        let mut received = IdentityTraits {
            birth_name: Some("Pat Trois".into()),
            first_given_name: Some("Dominique".into()),
            given_names: Some("Dominique Marie Louise".into()),
            birth_date: Some(date(1979, Some(3), Some(5))),
            sex: Some(Sex::F),
            birthplace_code: Some(" 51215".into()),
        };
        assert_eq!(stored.matches_exactly(&received), Ok(()));
        assert!(stored.is_complete_for_ins());

        // The hl7v2/RIS triplet: same INS, other birthplace and given names.
        received.birthplace_code = Some("63220".into());
        received.given_names = Some("DOMINIQUE".into());
        received.sex = None;
        let errors = stored.matches_exactly(&received).unwrap_err();
        assert_eq!(
            errors,
            vec![
                TraitMismatch {
                    trait_: Trait::GivenNames,
                    kind: MismatchKind::Different
                },
                TraitMismatch {
                    trait_: Trait::Sex,
                    kind: MismatchKind::MissingInOther
                },
                TraitMismatch {
                    trait_: Trait::BirthplaceCode,
                    kind: MismatchKind::Different
                },
            ]
        );
        assert!(!errors[0].is_missing());
        assert!(errors[1].is_missing());
        // Reversed, the missing side flips.
        let reversed = received.matches_exactly(&stored).unwrap_err();
        assert_eq!(reversed[1].kind, MismatchKind::MissingInSelf);
        assert!(!received.is_complete_for_ins());
        assert_eq!(received.missing_traits(), vec![Trait::Sex]);
    }

    #[test]
    fn blank_and_partial_traits_do_not_match() {
        let stored = dominique();
        let mut received = dominique();
        received.birth_name = Some("  ".into());
        received.birth_date = Some(date(1979, Some(3), None));
        let errors = stored.matches_exactly(&received).unwrap_err();
        assert_eq!(
            errors,
            vec![
                TraitMismatch {
                    trait_: Trait::BirthName,
                    kind: MismatchKind::MissingInOther
                },
                TraitMismatch {
                    trait_: Trait::BirthDate,
                    kind: MismatchKind::Different
                },
            ]
        );
        let empty = IdentityTraits::default();
        let errors = empty
            .matches_exactly(&IdentityTraits::default())
            .unwrap_err();
        assert_eq!(errors.len(), 6);
        assert!(errors.iter().all(|e| e.kind == MismatchKind::MissingInBoth));
        assert_eq!(empty.missing_traits(), Trait::ALL.to_vec());
    }

    #[test]
    fn names_exact_close_and_far() {
        let with_name = |name: &str| IdentityTraits {
            birth_name: Some(name.into()),
            ..dominique()
        };
        let dupont = with_name("Dupont");
        assert_eq!(dupont.matches_exactly(&with_name("DUPONT")), Ok(()));
        assert_eq!(dupont.similarity(&with_name("DUPONT")), 1.0);

        let dupond = with_name("Dupond");
        assert!(dupont.matches_exactly(&dupond).is_err());
        let close = dupont.similarity(&dupond);
        let far = dupont.similarity(&with_name("Martin"));
        assert!(close > 0.95 && close < 1.0, "{close}");
        assert!(far < close - 0.15, "{far} vs {close}");

        assert!((jaro_winkler("DUPONT", "DUPOND") - 0.9333).abs() < 1e-3);
        assert!((jaro_winkler("MARTHA", "MARHTA") - 0.9611).abs() < 1e-3);
        assert!((jaro_winkler("DWAYNE", "DUANE") - 0.84).abs() < 1e-3);
        assert!((jaro_winkler("DIXON", "DICKSONX") - 0.8133).abs() < 1e-3);
        assert!((jaro_winkler("MARTIN", "DUPONT") - 0.3889).abs() < 1e-3);
        assert_eq!(jaro_winkler("ABC", "XYZ"), 0.0);
        // Only the first MAX_COMPARED_CHARS characters count.
        let long = "A".repeat(1_000_000);
        assert_eq!(jaro_winkler(&long, &"A".repeat(MAX_COMPARED_CHARS)), 1.0);
    }

    #[test]
    fn similarity_ranks_candidates() {
        let received = dominique();
        let twin_typo = IdentityTraits {
            birth_name: Some("PAT TROIX".into()),
            ..dominique()
        };
        let other_person = IdentityTraits {
            birth_name: Some("MARTIN".into()),
            first_given_name: Some("PAUL".into()),
            given_names: Some("PAUL".into()),
            birth_date: Some(date(1950, Some(11), Some(20))),
            sex: Some(Sex::M),
            birthplace_code: Some("75056".into()),
        };
        let a = received.similarity(&twin_typo);
        let b = received.similarity(&other_person);
        assert!(a > 0.9, "{a}");
        assert!(b < 0.3, "{b}");

        // A year-only date agrees with a full date of that year.
        let year_only = IdentityTraits {
            birth_date: Some(date(1979, None, None)),
            ..dominique()
        };
        assert_eq!(received.similarity(&year_only), 1.0);
        // A day typo costs a third of the date weight.
        let day_typo = IdentityTraits {
            birth_date: Some(date(1979, Some(3), Some(6))),
            ..dominique()
        };
        assert!((received.similarity(&day_typo) - (1.0 - 0.25 / 3.0)).abs() < 1e-9);
        // A trait known on one side only costs its weight.
        let no_sex = IdentityTraits {
            sex: None,
            ..dominique()
        };
        assert!((received.similarity(&no_sex) - 0.9).abs() < 1e-9);
        // Given names only: the first one stands for the first given name.
        let only_given = IdentityTraits {
            first_given_name: None,
            ..dominique()
        };
        assert_eq!(received.similarity(&only_given), 1.0);
        assert_eq!(
            IdentityTraits::default().similarity(&IdentityTraits::default()),
            0.0
        );
    }

    #[test]
    fn trait_labels_are_french() {
        assert_eq!(Trait::BirthName.label_fr(), "nom de naissance");
        assert_eq!(
            Trait::BirthplaceCode.label_fr(),
            "lieu de naissance (code COG)"
        );
    }

    fn name() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            4 => "[A-Za-zÉéèÈçÇœŒ' -]{0,12}".prop_map(Some),
            1 => any::<String>().prop_map(Some),
        ]
    }

    fn partial_date() -> impl Strategy<Value = Option<PartialDate>> {
        prop_oneof![
            1 => Just(None),
            4 => (1u16..=9999, proptest::option::of(1u8..=12), proptest::option::of(1u8..=28))
                .prop_map(|(y, m, d)| Some(PartialDate { year: y, month: m, day: m.and(d) })),
        ]
    }

    fn traits() -> impl Strategy<Value = IdentityTraits> {
        (
            name(),
            name(),
            name(),
            partial_date(),
            proptest::option::of(prop_oneof![Just(Sex::M), Just(Sex::F), Just(Sex::U)]),
            proptest::option::of("[0-9AB]{5}"),
        )
            .prop_map(
                |(birth_name, first_given_name, given_names, birth_date, sex, birthplace_code)| {
                    IdentityTraits {
                        birth_name,
                        first_given_name,
                        given_names,
                        birth_date,
                        sex,
                        birthplace_code,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn similarity_is_symmetric_and_bounded(a in traits(), b in traits()) {
            let ab = a.similarity(&b);
            let ba = b.similarity(&a);
            prop_assert_eq!(ab, ba);
            prop_assert!((0.0..=1.0).contains(&ab), "{}", ab);
        }

        #[test]
        fn identical_traits_score_one(a in traits()) {
            let any_known = a.birth_date.is_some() || a.sex.is_some()
                || a.first_given_key().is_some()
                || a.text_key(Trait::BirthName).is_some()
                || a.text_key(Trait::BirthplaceCode).is_some();
            prop_assert_eq!(a.similarity(&a), if any_known { 1.0 } else { 0.0 });
        }

        #[test]
        fn exact_match_is_reflexive_for_complete_traits(a in traits()) {
            prop_assert_eq!(a.matches_exactly(&a).is_ok(), a.is_complete_for_ins());
        }

        #[test]
        fn jaro_winkler_is_symmetric_and_bounded(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let ab = jaro_winkler(&a, &b);
            prop_assert_eq!(ab, jaro_winkler(&b, &a));
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert_eq!(jaro_winkler(&a, &a), 1.0);
        }

        #[test]
        fn normalisation_is_idempotent_and_trimmed(text in any::<String>()) {
            let once = normalize_name(&text);
            prop_assert_eq!(normalize_name(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
            prop_assert!(!once.contains("  "));
        }

        #[test]
        fn case_and_accents_do_not_matter(text in "[a-zA-Z -]{0,20}") {
            let accented: String = text.chars().map(|c| match c {
                'e' => 'é', 'E' => 'È', 'c' => 'ç', '-' => '\'', other => other,
            }).collect();
            prop_assert_eq!(normalize_name(&text.to_lowercase()), normalize_name(&accented.to_uppercase()));
        }

        #[test]
        fn date_parsers_never_panic(text in any::<String>()) {
            let _ = PartialDate::parse_hl7(&text);
            let _ = PartialDate::parse_iso(&text);
            let _ = Sex::from_code(&text);
        }

        #[test]
        fn date_round_trips(d in partial_date()) {
            if let Some(d) = d {
                prop_assert_eq!(PartialDate::parse_iso(&d.to_string()), Ok(d));
                prop_assert_eq!(PartialDate::parse_hl7(&d.to_hl7()), Ok(d));
            }
        }

        #[test]
        fn hl7_dates_like_iso_ones(y in 1u16..=9999, m in 0u8..=14, d in 0u8..=32) {
            let hl7 = PartialDate::parse_hl7(&format!("{y:04}{m:02}{d:02}"));
            let iso = PartialDate::parse_iso(&format!("{y:04}-{m:02}-{d:02}"));
            prop_assert_eq!(hl7.is_ok(), iso.is_ok());
            prop_assert_eq!(hl7.is_ok(), (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
        }
    }
}
