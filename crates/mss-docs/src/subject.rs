//! The MSSanté subject line: `XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>`
//! (REF2 ECO.2.1.3), its failure form `[KO Intégration système !][<code>] XDM/1.0/DDM+…`
//! used by MDNs and "courriels standard", and the display form that hides the
//! technical prefix (SC.MSS/UX.28).
//!
//! # Split rule when parsing
//!
//! The libellé may contain spaces, and so, in real life, may names. The subject
//! carries no delimiter, so parsing follows one documented rule:
//!
//! 1. an optional failure prefix `[KO …][<code>]` is removed (bracketed
//!    text starting with `KO`, any case, followed by a bracketed number);
//! 2. the `XDM/1.0/DDM+` prefix is removed (case-insensitive);
//! 3. the remaining text is split on whitespace; when the **last** token is a
//!    valid date `JJ/MM/AAAA`, it is the birth date;
//! 4. of what remains, the last token is the prénom, the one before it the NOM,
//!    and everything before them, joined by single spaces, the libellé.
//!
//! So a compound name (`DE LA TOUR`) or a compound given name written with a
//! space is read as part of the libellé. The parsed names are therefore a
//! hint, not an identity: the patient is always identified from the XDM
//! metadata (ECO.2.1.2). [`ParsedSubject::text`] keeps the whole text so a
//! caller who knows the patient can check it with [`ParsedSubject::names_match`].
//!
//! When building, every part is cleaned: control characters (CR, LF, TAB…)
//! become spaces and runs of whitespace collapse to one, so the output is
//! always a single line.

use mss_model::PartialDate;

use crate::mdn::ErrorCode;

/// The technical prefix of every MSSanté subject carrying documents.
pub const XDM_PREFIX: &str = "XDM/1.0/DDM+";

/// The text of the failure marker, before the code.
pub const FAILURE_MARKER: &str = "KO Intégration système !";

/// Why a subject could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error(
        "the subject needs a document label (libellé): give the document type or an explicit subject"
    )]
    MissingLabel,
    #[error(
        "the subject needs the patient's name (NOM): complete the patient identity or give an explicit subject"
    )]
    MissingFamilyName,
    #[error(
        "the subject needs the patient's given name (prénom): complete the patient identity or give an explicit subject"
    )]
    MissingGivenName,
}

/// What goes into an `XDM/1.0/DDM+` subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectParts {
    /// Document type label (libellé), e.g. `CR d'imagerie médicale`.
    pub label: String,
    /// Birth name or name in use; written in upper case.
    pub family_name: String,
    /// Given name (prénom), written as given.
    pub given_name: String,
    /// Birth date; written only when day, month and year are all known.
    pub birth_date: Option<PartialDate>,
}

/// Replace control characters by spaces and collapse whitespace, so the
/// result is a single trimmed line.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Build `XDM/1.0/DDM+<libellé> <NOM> <prénom>[ <JJ/MM/AAAA>]`.
///
/// The NOM is upper-cased; a birth date that is not complete (year only, or
/// year and month) is left out, as the date is optional.
pub fn build_subject(parts: &SubjectParts) -> Result<String, SubjectError> {
    let label = one_line(&parts.label);
    let family = one_line(&parts.family_name).to_uppercase();
    let given = one_line(&parts.given_name);
    if label.is_empty() {
        return Err(SubjectError::MissingLabel);
    }
    if family.is_empty() {
        return Err(SubjectError::MissingFamilyName);
    }
    if given.is_empty() {
        return Err(SubjectError::MissingGivenName);
    }
    let mut subject = format!("{XDM_PREFIX}{label} {family} {given}");
    if let Some(date) = parts.birth_date.and_then(format_date) {
        subject.push(' ');
        subject.push_str(&date);
    }
    Ok(subject)
}

/// Build the failure subject `[KO Intégration système !][<code>] <original>`
/// from the subject of the message that could not be integrated. The original
/// is made single-line; an original that already carries a failure prefix is
/// not prefixed twice.
pub fn build_failure_subject(code: ErrorCode, original_subject: &str) -> String {
    let original = one_line(original_subject);
    let original = match split_failure_prefix(&original) {
        Some((_, rest)) => rest.to_owned(),
        None => original,
    };
    format!("[{FAILURE_MARKER}][{}] {original}", code.code())
}

/// `JJ/MM/AAAA` of a complete, real date. The fields of [`PartialDate`] are
/// public, so the date is checked again by mss-model's rule.
fn format_date(date: PartialDate) -> Option<String> {
    let date = PartialDate::new(date.year, date.month, date.day).ok()?;
    Some(format!(
        "{:02}/{:02}/{:04}",
        date.day?, date.month?, date.year
    ))
}

/// Read `JJ/MM/AAAA` strictly: two digits, two digits, four digits, a real
/// day of a real month (29 February only in leap years).
pub fn parse_date(token: &str) -> Option<PartialDate> {
    let bytes = token.as_bytes();
    if bytes.len() != 10 || bytes[2] != b'/' || bytes[5] != b'/' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = token.get(range)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    // Two digits each: the narrowing cannot fail.
    let day = u8::try_from(digits(0..2)?).ok()?;
    let month = u8::try_from(digits(3..5)?).ok()?;
    let year = digits(6..10)?;
    PartialDate::new(year, Some(month), Some(day)).ok()
}

/// A subject as read from a received message: the parts that could be found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedSubject {
    /// The code in a `[KO …][<code>]` failure prefix, as written (digits).
    pub failure_code: Option<u16>,
    /// True when the text after the optional failure prefix starts with `XDM/1.0/DDM+`.
    pub is_xdm: bool,
    /// Everything after the prefixes, single-line and trimmed.
    pub text: String,
    pub label: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub birth_date: Option<PartialDate>,
}

impl ParsedSubject {
    /// The failure code as one of the known 900–906 codes.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.failure_code.and_then(ErrorCode::from_code)
    }

    /// Whether the subject text ends with `<NOM> <prénom>` (before the date)
    /// for the given patient, compared case-insensitively with whitespace
    /// collapsed: the way to read compound names the split rule cannot.
    pub fn names_match(&self, family_name: &str, given_name: &str) -> bool {
        let mut text = self.text.as_str();
        if let Some((head, last)) = text.rsplit_once(' ')
            && parse_date(last).is_some()
        {
            text = head;
        }
        let wanted = format!("{} {}", one_line(family_name), one_line(given_name)).to_lowercase();
        let text = text.to_lowercase();
        text == wanted || text.ends_with(&format!(" {wanted}"))
    }
}

/// Split `[KO…][digits] rest` into the code and the rest. The marker must
/// start with `KO` (any case, accents in the rest may vary between senders),
/// so that an ordinary `[URGENT][2] …` subject is not read as a failure.
fn split_failure_prefix(subject: &str) -> Option<(u16, &str)> {
    let rest = subject.trim_start().strip_prefix('[')?;
    let (marker, rest) = rest.split_once(']')?;
    if !marker
        .trim_start()
        .get(..2)
        .is_some_and(|ko| ko.eq_ignore_ascii_case("KO"))
    {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('[')?;
    let (code, rest) = rest.split_once(']')?;
    let code = code.trim();
    if code.is_empty() || code.len() > 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((code.parse().ok()?, rest.trim_start()))
}

fn strip_xdm_prefix(text: &str) -> Option<&str> {
    let head = text.get(..XDM_PREFIX.len())?;
    head.eq_ignore_ascii_case(XDM_PREFIX)
        .then(|| &text[XDM_PREFIX.len()..])
}

/// Parse a subject tolerantly (see the module documentation for the split
/// rule). Never fails: a subject that is not an XDM subject gives
/// `is_xdm = false` and no parts.
pub fn parse_subject(subject: &str) -> ParsedSubject {
    let line = one_line(subject);
    let (failure_code, rest) = match split_failure_prefix(&line) {
        Some((code, rest)) => (Some(code), rest),
        None => (None, line.as_str()),
    };
    let Some(body) = strip_xdm_prefix(rest) else {
        return ParsedSubject {
            failure_code,
            text: rest.to_owned(),
            ..ParsedSubject::default()
        };
    };
    let text = one_line(body);
    let mut tokens: Vec<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
    let birth_date = match tokens.last().and_then(|t| parse_date(t)) {
        Some(date) => {
            tokens.pop();
            Some(date)
        }
        None => None,
    };
    let given_name = tokens.pop().map(str::to_owned);
    let family_name = tokens.pop().map(str::to_owned);
    let label = (!tokens.is_empty()).then(|| tokens.join(" "));
    ParsedSubject {
        failure_code,
        is_xdm: true,
        text,
        label,
        family_name,
        given_name,
        birth_date,
    }
}

/// The subject as shown to people: the `XDM/1.0/DDM+` prefix is hidden
/// (SC.MSS/UX.28), a failure prefix is kept, and the line is cleaned of
/// control characters.
pub fn display_subject(subject: &str) -> String {
    let line = one_line(subject);
    match split_failure_prefix(&line) {
        Some((code, rest)) => {
            let marker = line
                .trim_start()
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map_or(FAILURE_MARKER, |(m, _)| m);
            let rest = strip_xdm_prefix(rest).unwrap_or(rest).trim_start();
            format!("[{marker}][{code}] {rest}")
        }
        None => strip_xdm_prefix(&line)
            .map_or(line.as_str(), str::trim_start)
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> SubjectParts {
        SubjectParts {
            label: "CR d'examens radiologie".into(),
            family_name: "pat-trois".into(),
            given_name: "DOMINIQUE".into(),
            birth_date: Some(PartialDate {
                year: 2010,
                month: Some(8),
                day: Some(7),
            }),
        }
    }

    #[test]
    fn builds_the_ans_example() {
        assert_eq!(
            build_subject(&parts()).unwrap(),
            "XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010"
        );
    }

    #[test]
    fn partial_birth_date_is_left_out() {
        let mut p = parts();
        p.birth_date = Some(PartialDate {
            year: 2010,
            month: None,
            day: None,
        });
        assert_eq!(
            build_subject(&p).unwrap(),
            "XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE"
        );
    }

    #[test]
    fn missing_parts_are_refused() {
        let mut p = parts();
        p.label = " \r\n".into();
        assert_eq!(build_subject(&p), Err(SubjectError::MissingLabel));
        let mut p = parts();
        p.family_name.clear();
        assert_eq!(build_subject(&p), Err(SubjectError::MissingFamilyName));
        let mut p = parts();
        p.given_name = "\t".into();
        assert_eq!(build_subject(&p), Err(SubjectError::MissingGivenName));
    }

    #[test]
    fn line_breaks_are_removed_when_building() {
        let mut p = parts();
        p.label = "CR\r\nBcc: evil@example.org".into();
        let s = build_subject(&p).unwrap();
        assert!(!s.contains('\r') && !s.contains('\n'), "{s:?}");
        assert_eq!(
            s,
            "XDM/1.0/DDM+CR Bcc: evil@example.org PAT-TROIS DOMINIQUE 07/08/2010"
        );
    }

    #[test]
    fn parses_the_ans_mdn_example() {
        let p = parse_subject(
            "[KO Intégration système !][902] XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988",
        );
        assert_eq!(p.failure_code, Some(902));
        assert_eq!(p.error_code(), Some(ErrorCode::UnknownPatient));
        assert!(p.is_xdm);
        assert_eq!(p.label.as_deref(), Some("ECHOGRAPHIE ABDOMINOPELVIENNE"));
        assert_eq!(p.family_name.as_deref(), Some("CORSE"));
        assert_eq!(p.given_name.as_deref(), Some("FIGATELLIX"));
        assert_eq!(
            p.birth_date,
            Some(PartialDate {
                year: 1988,
                month: Some(10),
                day: Some(12)
            })
        );
    }

    #[test]
    fn invalid_date_stays_a_name() {
        let p = parse_subject("XDM/1.0/DDM+CR X DUPONT 31/02/2001");
        assert_eq!(p.birth_date, None);
        assert_eq!(p.given_name.as_deref(), Some("31/02/2001"));
        assert_eq!(p.family_name.as_deref(), Some("DUPONT"));
        assert_eq!(p.label.as_deref(), Some("CR X"));
    }

    #[test]
    fn leap_day_is_a_date() {
        assert!(parse_date("29/02/2000").is_some());
        assert!(parse_date("29/02/1900").is_none());
        assert!(parse_date("1/02/2000").is_none());
        assert!(parse_date("01-02-2000").is_none());
    }

    #[test]
    fn short_subjects_give_what_they_can() {
        let p = parse_subject("XDM/1.0/DDM+DUPONT");
        assert_eq!(p.given_name.as_deref(), Some("DUPONT"));
        assert_eq!(p.family_name, None);
        assert_eq!(p.label, None);
        let p = parse_subject("Bonjour");
        assert!(!p.is_xdm);
        assert_eq!(p.text, "Bonjour");
    }

    #[test]
    fn compound_names_can_be_checked_against_the_known_patient() {
        let p = parse_subject("xdm/1.0/ddm+Compte rendu DE LA TOUR Jean Pierre 01/01/1950");
        assert!(p.is_xdm);
        assert!(p.names_match("de la tour", "jean pierre"));
        assert!(!p.names_match("TOUR", "Marie"));
    }

    #[test]
    fn failure_subject_round_trips_and_is_not_doubled() {
        let s = build_failure_subject(
            ErrorCode::InsMissing,
            "XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010",
        );
        assert_eq!(
            s,
            "[KO Intégration système !][903] XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010"
        );
        let again = build_failure_subject(ErrorCode::Other, &s);
        assert_eq!(
            again,
            "[KO Intégration système !][906] XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010"
        );
        assert_eq!(parse_subject(&s).failure_code, Some(903));
    }

    #[test]
    fn only_a_ko_marker_is_a_failure_prefix() {
        let p = parse_subject("[URGENT][2] XDM/1.0/DDM+CR X DUPONT JEAN");
        assert_eq!(p.failure_code, None);
        assert!(!p.is_xdm);
        let p = parse_subject("[ko integration systeme][905] XDM/1.0/DDM+CR X DUPONT JEAN");
        assert_eq!(p.failure_code, Some(905));
        assert!(p.is_xdm);
        assert_eq!(
            display_subject("[URGENT][2] XDM/1.0/DDM+CR X"),
            "[URGENT][2] XDM/1.0/DDM+CR X"
        );
    }

    #[test]
    fn impossible_dates_are_not_written() {
        let mut p = parts();
        p.birth_date = Some(PartialDate {
            year: 2023,
            month: Some(2),
            day: Some(29),
        });
        assert_eq!(
            build_subject(&p).unwrap(),
            "XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE"
        );
        assert!(parse_date("00/01/2000").is_none());
        assert!(parse_date("01/13/2000").is_none());
        assert!(parse_date("01/01/0000").is_none());
        assert!(parse_date("0é/01/2000").is_none());
    }

    #[test]
    fn display_hides_the_prefix() {
        assert_eq!(
            display_subject("XDM/1.0/DDM+CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010"),
            "CR d'examens radiologie PAT-TROIS DOMINIQUE 07/08/2010"
        );
        assert_eq!(
            display_subject("[KO Intégration système !][902] XDM/1.0/DDM+ECHO CORSE FIGATELLIX"),
            "[KO Intégration système !][902] ECHO CORSE FIGATELLIX"
        );
        assert_eq!(display_subject("Re: rendez-vous\r\n"), "Re: rendez-vous");
    }
}
