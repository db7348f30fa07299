//! The MSSanté `X-MSS-*` headers of an outgoing message (SC.MSS/CONF.14, 15,
//! 16, 21), computed from the CDA headers found in the XDM, and the guard
//! every header value goes through before it reaches the wire.

use crate::cda::CdaHeader;

/// `X-MSS-CODECDA`: the CDA `code` of every document, comma-separated.
pub const X_MSS_CODECDA: &str = "X-MSS-CODECDA";
/// `X-MSS-INS`: `O` when the XDM carries an INS with its traits, else `N`.
pub const X_MSS_INS: &str = "X-MSS-INS";
/// `X-MSS-NIL`: the product reference (référence produit), on every message.
pub const X_MSS_NIL: &str = "X-MSS-NIL";
/// `X-MSS-MES`: `FIN` ends the exchange with a patient (Mon espace santé).
pub const X_MSS_MES: &str = "X-MSS-MES";

/// Why the headers could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "header {name} would carry a line break or control character: refusing it (header injection); remove it from the value"
    )]
    Injection { name: String },
    #[error(
        "no product reference (X-MSS-NIL) configured: set the référence produit obtained on convergence.esante.gouv.fr"
    )]
    MissingNil,
    #[error(
        "ending the patient exchange (X-MSS-MES: FIN) needs a patient recipient (@patient.mssante.fr): add one or do not ask for it"
    )]
    EndWithoutPatient,
    #[error(
        "document code {code:?} contains a comma and cannot be listed in X-MSS-CODECDA: check the CDA code"
    )]
    CommaInCode { code: String },
    #[error(
        "header {name} would carry a non-ASCII character, which a raw header cannot: use the plain ASCII code or reference"
    )]
    NotAscii { name: String },
}

/// Refuse a header value carrying CR, LF or any other control character
/// (TAB excepted, which is folding whitespace). Every value that mss writes
/// as a raw header goes through this.
pub fn check_header_value(name: &str, value: &str) -> Result<(), HeaderError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(HeaderError::Injection {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Refuse what [`check_header_value`] refuses, and any non-ASCII character:
/// for the values written as raw (unencoded) header text, `X-MSS-CODECDA`
/// and `X-MSS-NIL`, where 8-bit bytes would break RFC 5322.
fn check_raw_value(name: &str, value: &str) -> Result<(), HeaderError> {
    check_header_value(name, value)?;
    if !value.is_ascii() {
        return Err(HeaderError::NotAscii {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Whether an address (surrounding spaces ignored) is a valid address of the
/// Mon espace santé patient domain, by [`mss_model::MssAddress`]'s rules.
pub fn is_patient_address(address: &str) -> bool {
    mss_model::MssAddress::parse(address.trim()).is_ok_and(|a| a.is_patient())
}

/// `X-MSS-CODECDA`: the `code` of every CDA, in document order, joined by
/// commas. `None` (header absent) when there is no CDA or no CDA has a code.
pub fn code_cda(documents: &[CdaHeader]) -> Result<Option<String>, HeaderError> {
    let mut codes = Vec::with_capacity(documents.len());
    for code in documents.iter().filter_map(|d| d.code.as_ref()) {
        let code = code.code.trim();
        if code.is_empty() {
            continue;
        }
        check_raw_value(X_MSS_CODECDA, code)?;
        if code.contains(',') {
            return Err(HeaderError::CommaInCode {
                code: code.to_owned(),
            });
        }
        codes.push(code);
    }
    Ok((!codes.is_empty()).then(|| codes.join(",")))
}

/// The value of `X-MSS-INS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsFlag {
    /// `O`: at least one CDA carries an INS with a valid key and its six traits.
    Yes,
    /// `N`: no CDA does.
    No,
}

impl InsFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "O",
            Self::No => "N",
        }
    }
}

/// Whether one CDA carries an INS usable for `X-MSS-INS: O`: a production
/// (NIR `.8`, NIA `.9`) INS — or a test/demo one (`.10`, `.11`) when test
/// identities are enabled — whose key verifies, with all six traits.
pub fn carries_ins(document: &CdaHeader, test_identities: bool) -> bool {
    let patient = &document.patient;
    patient.ins.as_ref().is_some_and(|ins| {
        ins.key_valid && ins.kind.counts_as_ins(test_identities) && traits_complete(patient)
    })
}

/// All six traits INS present (and not blank), as mss-model defines it.
fn traits_complete(patient: &crate::cda::Patient) -> bool {
    patient.traits.is_complete_for_ins()
}

/// `X-MSS-INS`: `None` (header absent) when there is no CDA.
pub fn ins_flag(documents: &[CdaHeader], test_identities: bool) -> Option<InsFlag> {
    if documents.is_empty() {
        return None;
    }
    Some(
        if documents.iter().any(|d| carries_ins(d, test_identities)) {
            InsFlag::Yes
        } else {
            InsFlag::No
        },
    )
}

/// `X-MSS-NIL`: the configured product reference, trimmed; refused when
/// absent, blank or not a single line.
pub fn nil(reference: Option<&str>) -> Result<String, HeaderError> {
    let reference = reference.map(str::trim).unwrap_or_default();
    if reference.is_empty() {
        return Err(HeaderError::MissingNil);
    }
    check_raw_value(X_MSS_NIL, reference)?;
    Ok(reference.to_owned())
}

/// What the `X-MSS-*` headers are computed from.
#[derive(Debug, Clone, Copy)]
pub struct XMssInput<'a> {
    /// The CDA headers of the documents in the XDM, in archive order.
    pub documents: &'a [CdaHeader],
    /// The configured product reference (référence produit).
    pub nil: Option<&'a str>,
    /// Count the test and demonstration INS OIDs as INS.
    pub test_identities: bool,
    /// The sender closes the exchange with the patient (`X-MSS-MES: FIN`).
    pub end_patient_exchange: bool,
    /// Every recipient address (To, Cc).
    pub recipients: &'a [&'a str],
}

/// The `X-MSS-*` headers of one outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XMssHeaders {
    pub code_cda: Option<String>,
    pub ins: Option<InsFlag>,
    pub nil: String,
    pub end_patient_exchange: bool,
}

impl XMssHeaders {
    /// Compute the headers, refusing what the rules forbid.
    pub fn compute(input: &XMssInput<'_>) -> Result<Self, HeaderError> {
        let nil = nil(input.nil)?;
        if input.end_patient_exchange && !input.recipients.iter().any(|a| is_patient_address(a)) {
            return Err(HeaderError::EndWithoutPatient);
        }
        Ok(Self {
            code_cda: code_cda(input.documents)?,
            ins: ins_flag(input.documents, input.test_identities),
            nil,
            end_patient_exchange: input.end_patient_exchange,
        })
    }

    /// The headers in the order they are written, name and value.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::with_capacity(4);
        if let Some(codes) = &self.code_cda {
            fields.push((X_MSS_CODECDA, codes.clone()));
        }
        if let Some(ins) = self.ins {
            fields.push((X_MSS_INS, ins.as_str().to_owned()));
        }
        fields.push((X_MSS_NIL, self.nil.clone()));
        if self.end_patient_exchange {
            fields.push((X_MSS_MES, "FIN".to_owned()));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cda::{BodyLevel, Coded, InsRef, InstanceId, Patient};
    use mss_model::{IdentityTraits, InsKind, PartialDate, Sex};

    fn doc(code: &str, kind: InsKind, key_valid: bool, complete: bool) -> CdaHeader {
        CdaHeader {
            code: Some(Coded {
                code: code.into(),
                system: None,
                display: None,
            }),
            patient: Patient {
                ids: vec![],
                ins: Some(InsRef {
                    matricule: "279035121518989".into(),
                    oid: kind.oid().into(),
                    kind,
                    key_valid,
                }),
                traits: IdentityTraits {
                    birth_name: Some("PAT-TROIS".into()),
                    first_given_name: Some("DOMINIQUE".into()),
                    given_names: Some("DOMINIQUE MARIE-LOUISE".into()),
                    birth_date: Some(PartialDate {
                        year: 1979,
                        month: Some(3),
                        day: Some(5),
                    }),
                    sex: Some(Sex::F),
                    birthplace_code: complete.then(|| "51215".into()),
                },
                used_name: None,
                used_given_name: None,
            },
            ..CdaHeader::new(
                InstanceId {
                    root: "1.2.3".into(),
                    extension: Some(code.into()),
                },
                BodyLevel::Structured,
            )
        }
    }

    #[test]
    fn codes_are_listed_in_order_and_absent_without_cda() {
        let docs = [
            doc("34112-3", InsKind::Nir, true, true),
            doc("PRESC-BIO", InsKind::Nir, true, true),
            doc("15508-5", InsKind::Nir, true, true),
        ];
        assert_eq!(
            code_cda(&docs).unwrap().as_deref(),
            Some("34112-3,PRESC-BIO,15508-5")
        );
        assert_eq!(code_cda(&[]).unwrap(), None);
    }

    #[test]
    fn code_with_line_break_is_refused() {
        let docs = [doc("1\r\nBcc: x@y", InsKind::Nir, true, true)];
        assert!(matches!(
            code_cda(&docs),
            Err(HeaderError::Injection { .. })
        ));
        let docs = [doc("1,2", InsKind::Nir, true, true)];
        assert!(matches!(
            code_cda(&docs),
            Err(HeaderError::CommaInCode { .. })
        ));
    }

    #[test]
    fn ins_flag_rules() {
        assert_eq!(ins_flag(&[], false), None);
        let nir = doc("a", InsKind::Nir, true, true);
        let nia = doc("a", InsKind::Nia, true, true);
        let test = doc("a", InsKind::Test, true, true);
        let bad_key = doc("a", InsKind::Nir, false, true);
        let incomplete = doc("a", InsKind::Nir, true, false);
        assert_eq!(
            ins_flag(std::slice::from_ref(&nir), false),
            Some(InsFlag::Yes)
        );
        assert_eq!(
            ins_flag(std::slice::from_ref(&nia), false),
            Some(InsFlag::Yes)
        );
        assert_eq!(
            ins_flag(std::slice::from_ref(&test), false),
            Some(InsFlag::No)
        );
        assert_eq!(
            ins_flag(std::slice::from_ref(&test), true),
            Some(InsFlag::Yes)
        );
        assert_eq!(ins_flag(&[bad_key], false), Some(InsFlag::No));
        assert_eq!(
            ins_flag(std::slice::from_ref(&incomplete), false),
            Some(InsFlag::No)
        );
        assert_eq!(ins_flag(&[incomplete, nir], false), Some(InsFlag::Yes));
        let mut no_ins = doc("a", InsKind::Nir, true, true);
        no_ins.patient.ins = None;
        assert_eq!(ins_flag(&[no_ins], true), Some(InsFlag::No));
    }

    #[test]
    fn nil_is_required_single_line() {
        assert_eq!(nil(None), Err(HeaderError::MissingNil));
        assert_eq!(nil(Some("  ")), Err(HeaderError::MissingNil));
        assert!(matches!(
            nil(Some("DEV1\r\nX-Evil: 1")),
            Err(HeaderError::Injection { .. })
        ));
        assert_eq!(nil(Some(" DEV935997 ")).unwrap(), "DEV935997");
        assert_eq!(
            nil(Some("DÉV1")),
            Err(HeaderError::NotAscii {
                name: X_MSS_NIL.into()
            })
        );
    }

    #[test]
    fn non_ascii_code_is_refused() {
        let docs = [doc("1150é-2", InsKind::Nir, true, true)];
        assert!(matches!(code_cda(&docs), Err(HeaderError::NotAscii { .. })));
    }

    #[test]
    fn patient_addresses_follow_mss_model() {
        assert!(is_patient_address(" 279035121518989@Patient.MSSante.fr "));
        assert!(!is_patient_address("dr@hopital.mssante.fr"));
        // Not a single valid address: never a patient recipient.
        assert!(!is_patient_address("a@b@patient.mssante.fr"));
        assert!(!is_patient_address("<279035121518989@patient.mssante.fr>"));
        assert!(!is_patient_address("x@patient.mssante.fr\r\nBcc: y@z.fr"));
    }

    #[test]
    fn end_of_exchange_needs_a_patient() {
        let pro = ["dr.house@hopital.mssante.fr"];
        let input = XMssInput {
            documents: &[],
            nil: Some("DEV935997"),
            test_identities: false,
            end_patient_exchange: true,
            recipients: &pro,
        };
        assert_eq!(
            XMssHeaders::compute(&input),
            Err(HeaderError::EndWithoutPatient)
        );
        let patient = ["279035121518989@Patient.MSSante.fr"];
        let input = XMssInput {
            recipients: &patient,
            ..input
        };
        let headers = XMssHeaders::compute(&input).unwrap();
        assert_eq!(
            headers.fields(),
            vec![
                (X_MSS_NIL, "DEV935997".to_owned()),
                (X_MSS_MES, "FIN".to_owned())
            ]
        );
    }

    #[test]
    fn all_fields_in_order() {
        let docs = [doc("11488-4", InsKind::Nir, true, true)];
        let headers = XMssHeaders::compute(&XMssInput {
            documents: &docs,
            nil: Some("DEV935997"),
            test_identities: false,
            end_patient_exchange: false,
            recipients: &[],
        })
        .unwrap();
        let names: Vec<_> = headers.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [X_MSS_CODECDA, X_MSS_INS, X_MSS_NIL]);
    }
}
