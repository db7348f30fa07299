//! Identité Nationale de Santé: the matricule (NIR or NIA with its key), the OID
//! that says which kind of INS it is, and the identity status of a patient record.

use serde::{Deserialize, Serialize};

/// OID of a production INS-NIR.
pub const OID_INS_NIR: &str = "1.2.250.1.213.1.4.8";
/// OID of a production INS-NIA (temporary number).
pub const OID_INS_NIA: &str = "1.2.250.1.213.1.4.9";
/// OID of a test INS-NIR (used by every ANS example).
pub const OID_INS_TEST: &str = "1.2.250.1.213.1.4.10";
/// OID of a demonstration INS-NIR.
pub const OID_INS_DEMO: &str = "1.2.250.1.213.1.4.11";

/// Which kind of INS an OID designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// True for the test and demonstration kinds, which never designate a
    /// real person.
    pub fn is_test(self) -> bool {
        matches!(self, Self::Test | Self::Demo)
    }

    /// Production kinds always count as an INS; test and demonstration kinds
    /// only when the installation enables test identities.
    pub fn counts_as_ins(self, test_identities: bool) -> bool {
        !self.is_test() || test_identities
    }

    /// Same as [`InsKind::counts_as_ins`], with the installation policy spelled out.
    pub fn is_accepted(self, policy: TestIdentities) -> bool {
        self.counts_as_ins(policy == TestIdentities::Allowed)
    }
}

/// Whether this installation accepts the test and demonstration INS
/// (OIDs `.10` and `.11`) as if they were real ones. Only a test or
/// demonstration installation should say `Allowed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestIdentities {
    #[default]
    Refused,
    Allowed,
}

/// Why a matricule, an INS OID or an identity status was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsError {
    /// The number of characters found (after trimming surrounding spaces).
    #[error(
        "INS matricule must have 15 characters (13 + 2-digit key), found {0}: check that the whole matricule with its key was copied"
    )]
    Length(usize),
    /// 1-based position of the first character that is not allowed there.
    #[error(
        "INS matricule has an unexpected character at position {0}: only digits are allowed, and 2A/2B at positions 6-7 for Corsica"
    )]
    Character(usize),
    #[error(
        "INS matricule key is {found:02}, expected {expected:02}: check the number and its key"
    )]
    Key { found: u8, expected: u8 },
    #[error("OID {0} is not an INS OID (expected 1.2.250.1.213.1.4.8, .9, .10 or .11)")]
    Oid(String),
    #[error("identity status {0:?} is unknown: expected PROV, RECUP, VALI or QUAL")]
    Status(String),
}

/// A matricule INS whose format and key have been checked: 13 characters
/// (digits, `2A`/`2B` for Corsica at positions 6–7) and the 2-digit key
/// `97 − (number mod 97)`. Stored upper-case (`2a` is accepted as `2A`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Matricule(String);

/// Serialized as its 15 characters.
impl Serialize for Matricule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Matricule {
    /// Checks `text` (surrounding spaces ignored): length first, then each
    /// character, then the key.
    pub fn parse(text: &str) -> Result<Self, InsError> {
        let text = text.trim();
        let count = text.chars().count();
        if count != 15 {
            return Err(InsError::Length(count));
        }
        // 15 characters; any non-ASCII one is reported at its position.
        if let Some(pos) = text.chars().position(|c| !c.is_ascii()) {
            return Err(InsError::Character(pos + 1));
        }
        let upper = text.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let corsica = (i == 6) && bytes[5] == b'2' && matches!(b, b'A' | b'B');
            if !(b.is_ascii_digit() || corsica) {
                return Err(InsError::Character(i + 1));
            }
        }
        let expected = key_of(&bytes[..13]);
        let found = (bytes[13] - b'0') * 10 + (bytes[14] - b'0');
        if found != expected {
            return Err(InsError::Key { found, expected });
        }
        Ok(Self(upper))
    }

    /// The 15 characters, upper-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 13-character NIR/NIA without its key.
    pub fn number(&self) -> &str {
        &self.0[..13]
    }

    /// The 2-digit key (1 to 97).
    pub fn key(&self) -> u8 {
        let b = self.0.as_bytes();
        (b[13] - b'0') * 10 + (b[14] - b'0')
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

impl TryFrom<String> for Matricule {
    type Error = InsError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl AsRef<str> for Matricule {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The key of a 13-character NIR/NIA already checked by [`Matricule::parse`]
/// (upper-case; digits, or `2A`/`2B` at positions 6–7). Corsica's `2A` and
/// `2B` are replaced by 19 and 18 before the computation, as INSEE does.
fn key_of(number: &[u8]) -> u8 {
    let value = number.iter().enumerate().fold(0u64, |acc, (i, &b)| {
        let digit = match (i, b) {
            (5, b'2') if number[6] == b'A' => 1,
            (5, b'2') if number[6] == b'B' => 1,
            (6, b'A') => 9,
            (6, b'B') => 8,
            _ => u64::from(b.wrapping_sub(b'0') % 10),
        };
        acc * 10 + digit
    });
    // value < 10^13, so value % 97 < 97 and the key is 1..=97.
    (97 - value % 97) as u8
}

/// A checked INS: matricule and the kind given by its OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ins {
    pub matricule: Matricule,
    pub kind: InsKind,
}

impl Ins {
    /// Checks the matricule and the OID (`oid` first, so a non-INS identifier
    /// is reported as such rather than as a bad matricule).
    pub fn new(matricule: &str, oid: &str) -> Result<Self, InsError> {
        let kind = InsKind::from_oid(oid).ok_or_else(|| InsError::Oid(oid.trim().to_owned()))?;
        Ok(Self {
            matricule: Matricule::parse(matricule)?,
            kind,
        })
    }

    /// The OID of this INS's kind.
    pub fn oid(&self) -> &'static str {
        self.kind.oid()
    }
}

/// Identity status of a patient record (RNIV). Only `Qual` allows filing a
/// document automatically by its INS, and writing to the patient's
/// Mon espace santé address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IdentityStatus {
    /// Provisoire: traits neither retrieved from INSi nor checked on an ID document.
    Prov,
    /// Récupérée: traits retrieved from INSi, not checked on an ID document.
    Recup,
    /// Validée: checked on a high-trust ID document, not retrieved from INSi.
    Vali,
    /// Qualifiée: retrieved from INSi and checked on a high-trust ID document.
    Qual,
}

impl IdentityStatus {
    pub fn is_qualified(self) -> bool {
        self == Self::Qual
    }

    /// Reads an RNIV status code (`PROV`, `RECUP`, `VALI`, `QUAL`), case-insensitive,
    /// surrounding spaces ignored.
    ///
    /// The codes are read as RNIV (FR Core ≥ 2) defines them. Older HL7 v2
    /// PAM-FR messages (PID-32) used `VALI` for what RNIV now calls qualified:
    /// a reader of such messages must map that itself before calling this.
    pub fn from_code(code: &str) -> Result<Self, InsError> {
        let trimmed = code.trim();
        [Self::Prov, Self::Recup, Self::Vali, Self::Qual]
            .into_iter()
            .find(|s| s.code().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| InsError::Status(trimmed.to_owned()))
    }

    /// The RNIV code: `PROV`, `RECUP`, `VALI` or `QUAL`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Prov => "PROV",
            Self::Recup => "RECUP",
            Self::Vali => "VALI",
            Self::Qual => "QUAL",
        }
    }

    /// The French label shown to health professionals.
    pub fn label_fr(self) -> &'static str {
        match self {
            Self::Prov => "Identité provisoire",
            Self::Recup => "Identité récupérée",
            Self::Vali => "Identité validée",
            Self::Qual => "Identité qualifiée",
        }
    }
}

impl std::fmt::Display for IdentityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for IdentityStatus {
    type Err = InsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Independent oracle: the key computed on the decimal string with 2A/2B
    /// replaced by 19/18, through u128 parsing.
    fn oracle_key(number: &str) -> u8 {
        let replaced = match &number[5..7] {
            "2A" => format!("{}19{}", &number[..5], &number[7..]),
            "2B" => format!("{}18{}", &number[..5], &number[7..]),
            _ => number.to_owned(),
        };
        let n: u128 = replaced.parse().unwrap();
        (97 - n % 97) as u8
    }

    #[test]
    fn ans_example_keys_verify() {
        for (m, key) in [
            ("279035121518989", 89),
            ("162018885045327", 27),
            ("146026322000196", 96),
        ] {
            let parsed = Matricule::parse(m).unwrap();
            assert_eq!(parsed.as_str(), m);
            assert_eq!(parsed.key(), key);
            assert_eq!(parsed.number(), &m[..13]);
        }
    }

    #[test]
    fn wrong_key_is_refused_with_the_expected_one() {
        assert_eq!(
            Matricule::parse("279035121518988"),
            Err(InsError::Key {
                found: 88,
                expected: 89
            })
        );
    }

    #[test]
    fn corsica_departments_use_19_and_18() {
        // 1 80 01 2A 004 123: the number with 19 in place of 2A.
        let a = "180012A004123";
        let key_a = 97 - (1_800_119_004_123u64 % 97);
        let m = Matricule::parse(&format!("{a}{key_a:02}")).unwrap();
        assert_eq!(m.key() as u64, key_a);
        let b = "180012B004123";
        let key_b = 97 - (1_800_118_004_123u64 % 97);
        assert_ne!(key_a, key_b);
        Matricule::parse(&format!("{b}{key_b:02}")).unwrap();
        // Lower-case is accepted and stored upper-case.
        let lower = Matricule::parse(&format!("180012a004123{key_a:02}")).unwrap();
        assert_eq!(lower.as_str(), format!("{a}{key_a:02}"));
        // The key of 2A is not the key of 20.
        assert!(matches!(
            Matricule::parse(&format!("1800120004123{key_a:02}")),
            Err(InsError::Key { .. })
        ));
    }

    #[test]
    fn letters_outside_the_department_are_refused_at_their_position() {
        assert_eq!(
            Matricule::parse("18001A123456700"),
            Err(InsError::Character(6))
        );
        // 3A is not a department.
        assert_eq!(
            Matricule::parse("180013A00412300"),
            Err(InsError::Character(7))
        );
        assert_eq!(
            Matricule::parse("2790351215189X9"),
            Err(InsError::Character(14))
        );
        assert_eq!(
            Matricule::parse("2790351215189é9"),
            Err(InsError::Character(14))
        );
        assert_eq!(
            Matricule::parse("27903512151898"),
            Err(InsError::Length(14))
        );
        assert_eq!(Matricule::parse(""), Err(InsError::Length(0)));
        assert_eq!(
            Matricule::parse("  279035121518989\n").unwrap().as_str(),
            "279035121518989"
        );
    }

    #[test]
    fn errors_say_what_to_do_on_one_line() {
        for e in [
            InsError::Length(3),
            InsError::Character(4),
            InsError::Key {
                found: 1,
                expected: 2,
            },
            InsError::Oid("1.2.3".into()),
            InsError::Status("X".into()),
        ] {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains(':') || text.contains("expected"), "{text}");
        }
        assert_eq!(
            InsError::Key {
                found: 8,
                expected: 9
            }
            .to_string(),
            "INS matricule key is 08, expected 09: check the number and its key"
        );
    }

    #[test]
    fn ins_checks_oid_then_matricule() {
        let ins = Ins::new("279035121518989", " 1.2.250.1.213.1.4.10 ").unwrap();
        assert_eq!(ins.kind, InsKind::Test);
        assert_eq!(ins.oid(), OID_INS_TEST);
        assert_eq!(
            Ins::new("bad", "1.2.250.1.213.1.4.13"),
            Err(InsError::Oid("1.2.250.1.213.1.4.13".into()))
        );
        assert_eq!(Ins::new("bad", OID_INS_NIR), Err(InsError::Length(3)));
    }

    #[test]
    fn kinds_and_test_identities() {
        for kind in [InsKind::Nir, InsKind::Nia, InsKind::Test, InsKind::Demo] {
            assert_eq!(InsKind::from_oid(kind.oid()), Some(kind));
        }
        assert_eq!(InsKind::from_oid("1.2.250.1.213.1.4.2"), None);
        assert!(InsKind::Nir.is_accepted(TestIdentities::Refused));
        assert!(InsKind::Nia.is_accepted(TestIdentities::Refused));
        assert!(!InsKind::Test.is_accepted(TestIdentities::Refused));
        assert!(!InsKind::Demo.counts_as_ins(false));
        assert!(InsKind::Demo.is_accepted(TestIdentities::Allowed));
        assert_eq!(TestIdentities::default(), TestIdentities::Refused);
    }

    #[test]
    fn identity_status_codes() {
        assert_eq!(IdentityStatus::from_code("QUAL"), Ok(IdentityStatus::Qual));
        assert_eq!(
            IdentityStatus::from_code(" qual "),
            Ok(IdentityStatus::Qual)
        );
        assert_eq!(
            IdentityStatus::from_code("Recup"),
            Ok(IdentityStatus::Recup)
        );
        assert_eq!(IdentityStatus::from_code("vali"), Ok(IdentityStatus::Vali));
        assert_eq!(IdentityStatus::from_code("PROV"), Ok(IdentityStatus::Prov));
        assert_eq!(
            IdentityStatus::from_code("QUALIFIEE"),
            Err(InsError::Status("QUALIFIEE".into()))
        );
        assert_eq!(
            IdentityStatus::from_code(""),
            Err(InsError::Status(String::new()))
        );
        assert_eq!("RECUP".parse::<IdentityStatus>(), Ok(IdentityStatus::Recup));
        assert_eq!(IdentityStatus::Qual.to_string(), "QUAL");
        assert_eq!(IdentityStatus::Qual.label_fr(), "Identité qualifiée");
        assert!(IdentityStatus::Qual.is_qualified());
        assert!(!IdentityStatus::Vali.is_qualified());
    }

    #[test]
    fn deserialize_checks_the_matricule() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StringDeserializer};
        let ok: StringDeserializer<Error> = "279035121518989".to_owned().into_deserializer();
        assert_eq!(
            Matricule::deserialize(ok).unwrap().as_str(),
            "279035121518989"
        );
        let bad: StringDeserializer<Error> = "279035121518988".to_owned().into_deserializer();
        assert!(Matricule::deserialize(bad).is_err());
    }

    fn number13() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{13}",
            ("[0-9]{5}", "2[AB]", "[0-9]{6}").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        ]
    }

    proptest! {
        #[test]
        fn any_number_with_its_key_parses(number in number13()) {
            let key = oracle_key(&number);
            let text = format!("{number}{key:02}");
            let m = Matricule::parse(&text).unwrap();
            prop_assert_eq!(m.as_str(), text.as_str());
            prop_assert_eq!(m.key(), key);
        }

        #[test]
        fn any_other_key_is_refused(number in number13(), other in 0u8..100) {
            let key = oracle_key(&number);
            prop_assume!(other != key);
            prop_assert_eq!(
                Matricule::parse(&format!("{number}{other:02}")),
                Err(InsError::Key { found: other, expected: key })
            );
        }

        #[test]
        fn wrong_length_is_a_length_error(text in "[0-9]{0,30}") {
            prop_assume!(text.len() != 15);
            prop_assert_eq!(Matricule::parse(&text), Err(InsError::Length(text.len())));
        }

        #[test]
        fn a_foreign_character_is_reported_at_its_position(
            number in "[0-9]{15}", pos in 0usize..15, c in "[^0-9\\s]",
        ) {
            let mut chars: Vec<char> = number.chars().collect();
            chars[pos] = c.chars().next().unwrap();
            let text: String = chars.into_iter().collect();
            let result = Matricule::parse(&text);
            // The only accepted letters are A/B after a 2 at position 6.
            if pos == 6 && number.as_bytes()[5] == b'2' && matches!(c.as_str(), "A" | "B" | "a" | "b") {
                prop_assert!(!matches!(result, Err(InsError::Character(_))));
            } else {
                prop_assert_eq!(result, Err(InsError::Character(pos + 1)));
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>()) {
            let _ = Matricule::parse(&text);
            let _ = IdentityStatus::from_code(&text);
            let _ = Ins::new(&text, &text);
        }

        #[test]
        fn fifteen_arbitrary_characters_never_panic(text in "\\PC{15}") {
            if let Ok(m) = Matricule::parse(&text) {
                prop_assert_eq!(m.as_str().len(), 15);
            }
        }
    }
}
