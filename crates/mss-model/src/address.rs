//! MSSanté addresses, and the patient addresses of Mon espace santé.
//!
//! An [`MssAddress`] is a bare `local@domain` address (no display name, no
//! angle brackets), ASCII only, within the RFC 5321 length limits. The local
//! part is a dot-atom (quoted local parts are refused: no MSSanté mailbox
//! uses them); the domain is a host name, stored lower-case. The local part
//! keeps its case, as RFC 5321 asks.

use serde::{Deserialize, Serialize};

use crate::ins::{IdentityStatus, Ins, InsKind, Matricule, TestIdentities};

/// The MSSanté domain; every operator's domain is below it.
pub const MSSANTE_DOMAIN: &str = "mssante.fr";
/// The domain of patients' Mon espace santé mailboxes.
pub const PATIENT_DOMAIN: &str = "patient.mssante.fr";

/// RFC 5321 §4.5.3.1.1: at most 64 octets before the `@`.
const MAX_LOCAL: usize = 64;
/// RFC 5321 path limit (256) less the angle brackets.
const MAX_TOTAL: usize = 254;
/// RFC 1035: at most 63 octets per label.
const MAX_LABEL: usize = 63;

/// Why an address was refused, or a patient address could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("mail address is empty: enter an address such as prenom.nom@etablissement.mssante.fr")]
    Empty,
    /// Length in characters.
    #[error(
        "mail address has {0} characters, more than 254: check that a single address was entered"
    )]
    TooLong(usize),
    #[error("mail address has no @: enter it as mailbox@domain")]
    MissingAt,
    #[error("mail address has more than one @: enter a single address as mailbox@domain")]
    SeveralAt,
    /// 1-based position of the first character that is not ASCII.
    #[error(
        "mail address has a non-ASCII character at position {0}: MSSanté addresses are ASCII, write letters without accents"
    )]
    NonAscii(usize),
    /// 1-based position and the character not allowed there (space, line
    /// break, control character, `<`, `>`, or outside the allowed set).
    #[error(
        "mail address has {found:?} at position {position}, which is not allowed there: remove or correct it"
    )]
    Character { position: usize, found: char },
    #[error("mailbox name (before @) {0}: correct the address")]
    LocalPart(&'static str),
    #[error("domain (after @) {0}: correct the address")]
    Domain(&'static str),
    #[error(
        "cannot address this patient: the identity is {0}, and only a qualified identity (QUAL) may be used to write to Mon espace santé: qualify the identity first"
    )]
    NotQualified(IdentityStatus),
    #[error(
        "cannot address this patient: the INS is a {0:?} identity and test identities are disabled on this installation: use the patient's real INS"
    )]
    TestIdentity(InsKind),
}

/// A checked MSSanté mail address (local part @ domain), domain lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MssAddress(String);

impl MssAddress {
    /// Checks a bare address. Nothing is trimmed: surrounding spaces are an
    /// error, like any space.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        for (i, c) in text.chars().enumerate() {
            if !c.is_ascii() {
                return Err(AddressError::NonAscii(i + 1));
            }
            if c.is_ascii_control() || c.is_ascii_whitespace() || c == ' ' || c == '<' || c == '>' {
                return Err(AddressError::Character {
                    position: i + 1,
                    found: c,
                });
            }
        }
        // ASCII from here: bytes are characters.
        if text.len() > MAX_TOTAL {
            return Err(AddressError::TooLong(text.len()));
        }
        let at = match (text.find('@'), text.rfind('@')) {
            (None, _) => return Err(AddressError::MissingAt),
            (Some(first), Some(last)) if first != last => return Err(AddressError::SeveralAt),
            (Some(first), _) => first,
        };
        let (local, domain) = (&text[..at], &text[at + 1..]);
        check_local(local)?;
        check_domain(domain, at + 1)?;
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The whole address, `local@domain`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What comes before the `@`, case kept.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(local, _)| local)
    }

    /// What comes after the `@`, lower-case.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }

    /// True when the domain is `mssante.fr` or below it (patient addresses included).
    pub fn is_mssante(&self) -> bool {
        let domain = self.domain();
        domain == MSSANTE_DOMAIN
            || domain
                .strip_suffix(MSSANTE_DOMAIN)
                .is_some_and(|head| head.ends_with('.'))
    }

    /// True when the address is in the Mon espace santé patient domain,
    /// whatever its local part.
    pub fn is_patient(&self) -> bool {
        self.domain() == PATIENT_DOMAIN
    }

    /// The patient's matricule INS when this is a Mon espace santé address
    /// whose local part is a matricule with a valid key; `None` otherwise.
    /// The matricule alone says nothing of the INS kind (production or test).
    pub fn patient_matricule(&self) -> Option<Matricule> {
        if self.is_patient() {
            Matricule::parse(self.local_part()).ok()
        } else {
            None
        }
    }

    /// The Mon espace santé address of a patient, `<matricule>@patient.mssante.fr`.
    ///
    /// Refused unless the identity is qualified (ECO.2.2.6, SC.MSS/UX.32), and
    /// refused for test and demonstration INS unless `test_identities` allows
    /// them (a test installation).
    pub fn for_patient(
        ins: &Ins,
        status: IdentityStatus,
        test_identities: TestIdentities,
    ) -> Result<Self, AddressError> {
        if !status.is_qualified() {
            return Err(AddressError::NotQualified(status));
        }
        if !ins.kind.is_accepted(test_identities) {
            return Err(AddressError::TestIdentity(ins.kind));
        }
        Ok(Self(format!("{}@{PATIENT_DOMAIN}", ins.matricule)))
    }
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::LocalPart("is empty"));
    }
    if local.len() > MAX_LOCAL {
        return Err(AddressError::LocalPart("has more than 64 characters"));
    }
    if let Some((i, &b)) = local
        .as_bytes()
        .iter()
        .enumerate()
        .find(|(_, b)| !(is_atext(**b) || **b == b'.'))
    {
        return Err(AddressError::Character {
            position: i + 1,
            found: char::from(b),
        });
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Err(AddressError::LocalPart("starts or ends with a dot"));
    }
    if local.contains("..") {
        return Err(AddressError::LocalPart("has two dots in a row"));
    }
    Ok(())
}

/// `offset`: 0-based position of the domain in the whole address.
fn check_domain(domain: &str, offset: usize) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::Domain("is empty"));
    }
    if let Some((i, &b)) = domain
        .as_bytes()
        .iter()
        .enumerate()
        .find(|(_, b)| !(b.is_ascii_alphanumeric() || **b == b'-' || **b == b'.'))
    {
        return Err(AddressError::Character {
            position: offset + i + 1,
            found: char::from(b),
        });
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(AddressError::Domain(
            "has an empty label (a dot at the start or end, or two dots in a row)",
        ));
    }
    if labels.len() < 2 {
        return Err(AddressError::Domain(
            "has no dot: a full domain name is needed",
        ));
    }
    if labels.iter().any(|l| l.len() > MAX_LABEL) {
        return Err(AddressError::Domain(
            "has a label longer than 63 characters",
        ));
    }
    if labels
        .iter()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Err(AddressError::Domain(
            "has a label that starts or ends with a hyphen",
        ));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(AddressError::Domain(
            "ends with a number: an IP address is not accepted",
        ));
    }
    Ok(())
}

impl std::fmt::Display for MssAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MssAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for MssAddress {
    type Error = AddressError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl AsRef<str> for MssAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Serialized as the address string.
impl Serialize for MssAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserialized from a string, with the checks of [`MssAddress::parse`].
impl<'de> Deserialize<'de> for MssAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ins::{OID_INS_NIR, OID_INS_TEST};
    use proptest::prelude::*;

    fn addr(text: &str) -> MssAddress {
        MssAddress::parse(text).unwrap()
    }

    #[test]
    fn accessors_and_domain_case() {
        let a = addr("Jean.Dupont@Hopital-X.MSSante.fr");
        assert_eq!(a.as_str(), "Jean.Dupont@hopital-x.mssante.fr");
        assert_eq!(a.local_part(), "Jean.Dupont");
        assert_eq!(a.domain(), "hopital-x.mssante.fr");
        assert_eq!(a.to_string(), "Jean.Dupont@hopital-x.mssante.fr");
        assert!(a.is_mssante());
        assert!(!a.is_patient());
        assert_eq!(a.patient_matricule(), None);
        assert!(addr("secretariat+cr_img@mssante.fr").is_mssante());
        assert!(!addr("a@notmssante.fr").is_mssante());
        assert!(!addr("a@mssante.fr.example.com").is_mssante());
        assert!(!addr("a@gmail.com").is_mssante());
    }

    #[test]
    fn refusals_are_typed() {
        let cases: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("jean.dupont", AddressError::MissingAt),
            ("a@b@mssante.fr", AddressError::SeveralAt),
            ("jérôme@mssante.fr", AddressError::NonAscii(2)),
            (
                " a@mssante.fr",
                AddressError::Character {
                    position: 1,
                    found: ' ',
                },
            ),
            (
                "a@mssante.fr\r\nBcc: x@y.fr",
                AddressError::Character {
                    position: 13,
                    found: '\r',
                },
            ),
            (
                "<a@mssante.fr>",
                AddressError::Character {
                    position: 1,
                    found: '<',
                },
            ),
            (
                "\"ab\"@mssante.fr",
                AddressError::Character {
                    position: 1,
                    found: '"',
                },
            ),
            (
                "a@ms_sante.fr",
                AddressError::Character {
                    position: 5,
                    found: '_',
                },
            ),
            (
                "a@[127.0.0.1]",
                AddressError::Character {
                    position: 3,
                    found: '[',
                },
            ),
            ("@mssante.fr", AddressError::LocalPart("is empty")),
            (
                ".a@mssante.fr",
                AddressError::LocalPart("starts or ends with a dot"),
            ),
            (
                "a.@mssante.fr",
                AddressError::LocalPart("starts or ends with a dot"),
            ),
            (
                "a..b@mssante.fr",
                AddressError::LocalPart("has two dots in a row"),
            ),
            ("a@", AddressError::Domain("is empty")),
            (
                "a@localhost",
                AddressError::Domain("has no dot: a full domain name is needed"),
            ),
            (
                "a@-x.fr",
                AddressError::Domain("has a label that starts or ends with a hyphen"),
            ),
            (
                "a@1.2.3.4",
                AddressError::Domain("ends with a number: an IP address is not accepted"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(MssAddress::parse(text).as_ref(), Err(expected), "{text:?}");
        }
        for text in ["a@x..fr", "a@x.fr.", "a@.x.fr"] {
            assert!(
                matches!(MssAddress::parse(text), Err(AddressError::Domain(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(MssAddress::parse(&format!("{local64}@mssante.fr")).is_ok());
        assert_eq!(
            MssAddress::parse(&format!("{local64}b@mssante.fr")),
            Err(AddressError::LocalPart("has more than 64 characters"))
        );
        let label63 = "d".repeat(63);
        assert!(MssAddress::parse(&format!("a@{label63}.fr")).is_ok());
        assert_eq!(
            MssAddress::parse(&format!("a@{label63}d.fr")),
            Err(AddressError::Domain(
                "has a label longer than 63 characters"
            ))
        );
        // "a@" + 3 × (63 + dot) + 57 + ".fr" = 254 characters.
        let domain = format!("{label63}.{label63}.{label63}.{}.fr", "e".repeat(57));
        let exact = format!("a@{domain}");
        assert_eq!(exact.len(), 254);
        assert!(MssAddress::parse(&exact).is_ok());
        let over = format!("ab@{domain}");
        assert_eq!(MssAddress::parse(&over), Err(AddressError::TooLong(255)));
    }

    #[test]
    fn patient_addresses() {
        let a = addr("279035121518989@patient.mssante.fr");
        assert!(a.is_patient());
        assert!(a.is_mssante());
        assert_eq!(a.patient_matricule().unwrap().as_str(), "279035121518989");
        // Wrong key, or not a matricule: a patient-domain address without matricule.
        assert_eq!(
            addr("279035121518988@patient.mssante.fr").patient_matricule(),
            None
        );
        assert_eq!(addr("dupont@patient.mssante.fr").patient_matricule(), None);
        assert_eq!(
            addr("279035121518989@medecin.mssante.fr").patient_matricule(),
            None
        );
        assert_eq!(
            addr("279035121518989@PATIENT.MSSANTE.FR")
                .patient_matricule()
                .unwrap()
                .as_str(),
            "279035121518989"
        );
    }

    #[test]
    fn for_patient_needs_a_qualified_real_identity() {
        let test_ins = Ins::new("279035121518989", OID_INS_TEST).unwrap();
        let real_ins = Ins::new("146026322000196", OID_INS_NIR).unwrap();

        let a = MssAddress::for_patient(&real_ins, IdentityStatus::Qual, TestIdentities::Refused)
            .unwrap();
        assert_eq!(a.as_str(), "146026322000196@patient.mssante.fr");
        assert_eq!(a.patient_matricule(), Some(real_ins.matricule.clone()));
        assert_eq!(MssAddress::parse(a.as_str()), Ok(a));

        for status in [
            IdentityStatus::Prov,
            IdentityStatus::Recup,
            IdentityStatus::Vali,
        ] {
            assert_eq!(
                MssAddress::for_patient(&real_ins, status, TestIdentities::Allowed),
                Err(AddressError::NotQualified(status))
            );
        }
        assert_eq!(
            MssAddress::for_patient(&test_ins, IdentityStatus::Qual, TestIdentities::Refused),
            Err(AddressError::TestIdentity(InsKind::Test))
        );
        assert_eq!(
            MssAddress::for_patient(&test_ins, IdentityStatus::Qual, TestIdentities::Allowed)
                .unwrap()
                .as_str(),
            "279035121518989@patient.mssante.fr"
        );
    }

    #[test]
    fn errors_are_one_line_and_say_what_to_do() {
        let e = AddressError::NotQualified(IdentityStatus::Vali);
        assert_eq!(
            e.to_string(),
            "cannot address this patient: the identity is VALI, and only a qualified identity (QUAL) may be used to write to Mon espace santé: qualify the identity first"
        );
        let e = MssAddress::parse("a@mssante.fr\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mail address has '\\n' at position 13, which is not allowed there: remove or correct it"
        );
    }

    #[test]
    fn serde_uses_the_string_and_checks_it() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StringDeserializer};
        let ok: StringDeserializer<Error> = "a@X.mssante.fr".to_owned().into_deserializer();
        assert_eq!(
            MssAddress::deserialize(ok).unwrap().as_str(),
            "a@x.mssante.fr"
        );
        let bad: StringDeserializer<Error> = "a b@mssante.fr".to_owned().into_deserializer();
        assert!(MssAddress::deserialize(bad).is_err());
    }

    fn local_part() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[A-Za-z0-9_-]{1,10}){0,3}"
    }

    fn domain() -> impl Strategy<Value = String> {
        "([A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?\\.){1,4}[A-Za-z]{2,6}"
    }

    proptest! {
        #[test]
        fn valid_addresses_round_trip(local in local_part(), domain in domain()) {
            let text = format!("{local}@{domain}");
            let a = MssAddress::parse(&text).unwrap();
            prop_assert_eq!(a.local_part(), local.as_str());
            prop_assert_eq!(a.domain(), domain.to_ascii_lowercase());
            prop_assert_eq!(MssAddress::parse(&format!("{a}")), Ok(a.clone()));
        }

        #[test]
        fn arbitrary_input_never_panics(text in any::<String>()) {
            if let Ok(a) = MssAddress::parse(&text) {
                prop_assert!(a.as_str().len() <= 254);
                prop_assert!(a.as_str().bytes().all(|b| b.is_ascii_graphic()));
                prop_assert_eq!(MssAddress::parse(a.as_str()), Ok(a.clone()));
            }
        }

        #[test]
        fn address_like_input_never_panics(text in "[a-z0-9.@<> \\r\\n\"-]{0,80}") {
            if let Ok(a) = MssAddress::parse(&text) {
                prop_assert_eq!(a.as_str(), text.as_str());
                let _ = a.patient_matricule();
            }
        }
    }
}
