//! Subject line: build → parse round trip, and parsing never panics.

use mss_docs::mdn::ErrorCode;
use mss_docs::subject::{
    SubjectParts, build_failure_subject, build_subject, display_subject, parse_subject,
};
use mss_model::PartialDate;
use proptest::prelude::*;

/// A word of a label: no whitespace, not a date.
fn word() -> impl Strategy<Value = String> {
    "[A-Za-z0-9éèàçÉ'()-]{1,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-zéèïÉ'-]{1,15}"
}

fn date() -> impl Strategy<Value = Option<PartialDate>> {
    proptest::option::of(
        (1800u16..2100, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| PartialDate {
            year: y,
            month: Some(m),
            day: Some(d),
        }),
    )
}

proptest! {
    #[test]
    fn build_then_parse_gives_the_parts_back(
        label in proptest::collection::vec(word(), 1..6),
        family in name(),
        given in name(),
        birth_date in date(),
        code in proptest::option::of(0usize..7),
    ) {
        let parts = SubjectParts {
            label: label.join(" "),
            family_name: family.clone(),
            given_name: given.clone(),
            birth_date,
        };
        let mut subject = build_subject(&parts).unwrap();
        if let Some(i) = code {
            subject = build_failure_subject(ErrorCode::ALL[i], &subject);
        }
        let parsed = parse_subject(&subject);
        prop_assert!(parsed.is_xdm);
        prop_assert_eq!(parsed.failure_code, code.map(|i| ErrorCode::ALL[i].code()));
        prop_assert_eq!(parsed.label, Some(label.join(" ")));
        prop_assert_eq!(parsed.family_name, Some(family.to_uppercase()));
        prop_assert_eq!(parsed.given_name, Some(given));
        prop_assert_eq!(parsed.birth_date, birth_date);
        prop_assert!(!display_subject(&subject).contains("XDM/1.0/DDM+"));
    }

    #[test]
    fn parse_and_display_never_panic_and_stay_single_line(text in any::<String>()) {
        let parsed = parse_subject(&text);
        prop_assert!(!parsed.text.contains(['\r', '\n']));
        let shown = display_subject(&text);
        prop_assert!(!shown.contains(['\r', '\n']));
        let _ = parsed.names_match(&text, &text);
    }

    #[test]
    fn building_never_outputs_a_line_break(
        label in any::<String>(), family in any::<String>(), given in any::<String>()
    ) {
        if let Ok(s) = build_subject(&SubjectParts {
            label, family_name: family, given_name: given, birth_date: None,
        }) {
            prop_assert!(!s.chars().any(char::is_control));
            let failed = build_failure_subject(ErrorCode::Other, &s);
            prop_assert!(!failed.chars().any(char::is_control));
        }
    }
}
