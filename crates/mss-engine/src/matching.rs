//! Which local patient a received document belongs to.
//!
//! A document is filed automatically only when its INS is usable (INS OID
//! accepted by the installation, valid key, the same in METADATA.XML and in
//! the CDA header), its six traits INS are all there, and exactly one local
//! record has that INS, with the identity status **QUAL** and the same six
//! traits (SC.MSS/UX.07, volet codes 902–905). Anything else goes to a person
//! with candidates ranked by trait similarity — never filed by a score.
//!
//! # Trait comparison
//!
//! The CI-SIS asks for an *exact* match. Names are compared after
//! [`mss_model::normalize_name`] (upper-case, diacritics and ligatures folded,
//! hyphens/apostrophes/spaces one separator), because the same INSi identity
//! reaches us as `Pat-Trois` from one producer and `PAT-TROIS` from another,
//! while RNIV names are upper-case without diacritics anyway. Birth date and
//! sex compare as they are (a partial date never equals a full one), the COG
//! code trimmed and upper-cased. The RNIV normalisation rules were not
//! available: `normalize_name` is the single place to change.

use mss_docs::cda::{CdaHeader, InsRef};
use mss_docs::mdn::ErrorCode;
use mss_model::{
    IdentityStatus, IdentityTraits, Ins, InsKind, MismatchKind, TestIdentities, Trait,
    TraitMismatch,
};

/// A local patient record, as the shell reads it from its database.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPatient {
    /// The local identifier (IPP or database key), opaque here.
    pub id: String,
    /// The INS recorded for this patient, if any.
    pub ins: Option<Ins>,
    pub status: IdentityStatus,
    pub traits: IdentityTraits,
}

/// The INS read from a METADATA.XML `patientId` (CX) when it names an INS OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataIns {
    pub matricule: String,
    pub kind: InsKind,
}

impl MetadataIns {
    /// Reads `matricule^^^&oid&ISO^NH`; `None` when the CX is not an INS
    /// (a local IPP…) or not readable.
    pub fn from_cx(cx: &str) -> Option<Self> {
        let mut components = cx.trim().split('^');
        let id = components.next()?.trim();
        let authority = components.nth(2)?;
        let oid = authority.split('&').nth(1)?.trim();
        let kind = InsKind::from_oid(oid)?;
        (!id.is_empty()).then(|| MetadataIns {
            matricule: id.to_ascii_uppercase(),
            kind,
        })
    }
}

/// What a received document says about its patient.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentPatient {
    /// INS of the CDA header, as written (key checked, not trusted).
    pub ins: Option<InsRef>,
    /// INS of METADATA.XML `patientId` (DocumentEntry, else SubmissionSet).
    pub metadata_ins: Option<MetadataIns>,
    /// The CDA carries patient identifiers other than an INS (local IPP…).
    pub has_other_ids: bool,
    pub traits: IdentityTraits,
}

impl DocumentPatient {
    /// From a CDA header and the `patientId` CX of its METADATA.XML entry.
    pub fn from_header(header: &CdaHeader, metadata_patient_id: Option<&str>) -> Self {
        let ins = header.patient.ins.clone();
        let has_other_ids = header
            .patient
            .ids
            .iter()
            .any(|id| InsKind::from_oid(&id.root).is_none());
        DocumentPatient {
            ins,
            metadata_ins: metadata_patient_id.and_then(MetadataIns::from_cx),
            has_other_ids,
            traits: header.patient.traits.clone(),
        }
    }
}

/// Why a document was not filed automatically. Each maps to one volet code.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchProblem {
    /// 903: the CDA carries no INS (perhaps other identifiers).
    NoIns,
    /// 903: only a test/demonstration INS, and this installation refuses them.
    TestInsRefused(InsKind),
    /// 904: the matricule's key does not verify.
    InvalidKey,
    /// 904: METADATA.XML `patientId` names another INS than the CDA.
    MetadataDisagrees,
    /// 905: traits INS missing from the document.
    IncompleteTraits(Vec<Trait>),
    /// 902: no local patient has this INS.
    UnknownPatient,
    /// 904: a local patient has this matricule under another INS OID.
    DifferentInsKind,
    /// 904: the local identity is not qualified (only QUAL allows filing by INS).
    NotQualified(IdentityStatus),
    /// 904: the traits differ from (or are missing in) the local record.
    TraitsDiffer(Vec<TraitMismatch>),
    /// 906: several local records hold this INS (a duplicate to merge first).
    SeveralRecords(usize),
}

impl MatchProblem {
    /// The volet's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoIns | Self::TestInsRefused(_) => ErrorCode::InsMissing,
            Self::InvalidKey
            | Self::MetadataDisagrees
            | Self::DifferentInsKind
            | Self::NotQualified(_)
            | Self::TraitsDiffer(_) => ErrorCode::InsMismatch,
            Self::IncompleteTraits(_) => ErrorCode::InsIncomplete,
            Self::UnknownPatient => ErrorCode::UnknownPatient,
            Self::SeveralRecords(_) => ErrorCode::Other,
        }
    }

    /// One sentence for the health professional who resolves the item.
    pub fn explain_fr(&self) -> String {
        let traits = |list: &[Trait]| {
            list.iter()
                .map(|t| t.label_fr())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::NoIns => "Le document ne contient pas d'INS : choisissez le patient.".into(),
            Self::TestInsRefused(_) => {
                "Le document ne porte qu'un INS de test, refusé par cette installation : choisissez le patient.".into()
            }
            Self::InvalidKey => {
                "La clé du matricule INS du document est fausse : vérifiez l'identité et choisissez le patient.".into()
            }
            Self::MetadataDisagrees => {
                "L'INS des métadonnées de l'archive diffère de celui du document : vérifiez l'identité.".into()
            }
            Self::IncompleteTraits(missing) => format!(
                "Traits INS absents du document : {} ; choisissez le patient.",
                traits(missing)
            ),
            Self::UnknownPatient => {
                "Aucun patient local ne porte cet INS : rattachez le document ou créez le patient.".into()
            }
            Self::DifferentInsKind => {
                "Un patient local porte ce matricule avec un autre type d'INS (OID) : vérifiez l'identité.".into()
            }
            Self::NotQualified(status) => format!(
                "L'identité locale n'est pas qualifiée ({}) : rattachement manuel.",
                status.label_fr()
            ),
            Self::TraitsDiffer(mismatches) => {
                let list: Vec<Trait> = mismatches.iter().map(|m| m.trait_).collect();
                format!(
                    "Traits INS différents entre le document et le dossier local : {} ; vérifiez l'identité.",
                    traits(&list)
                )
            }
            Self::SeveralRecords(n) => format!(
                "{n} dossiers locaux portent cet INS (doublon) : fusionnez-les ou choisissez le patient."
            ),
        }
    }
}

/// How one trait of a candidate compares with the document's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    Same,
    Different,
    /// Absent on one side or both.
    Missing,
}

/// A local patient offered to a person, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub patient: String,
    /// [`IdentityTraits::similarity`], 0.0 to 1.0.
    pub score: f64,
    /// The local record has the document's matricule.
    pub same_ins: bool,
    pub status: IdentityStatus,
    /// The six traits, in [`Trait::ALL`] order.
    pub traits: Vec<(Trait, Agreement)>,
}

/// The patient decision for one document.
#[derive(Debug, Clone, PartialEq)]
pub enum PatientDecision {
    /// File it in this local patient's record.
    AutoIntegrate { patient: String },
    /// A person chooses; the document is not filed until then.
    Propose {
        problem: MatchProblem,
        candidates: Vec<Candidate>,
    },
}

impl PatientDecision {
    pub fn patient(&self) -> Option<&str> {
        match self {
            Self::AutoIntegrate { patient } => Some(patient),
            Self::Propose { .. } => None,
        }
    }
}

/// Tuning of the candidate list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchOptions {
    /// Whether test and demonstration INS count (test installations only).
    pub test_identities: TestIdentities,
    /// Candidates scoring below this are not offered (same-INS ones always are).
    pub min_score: f64,
    /// Longest candidate list.
    pub max_candidates: usize,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            test_identities: TestIdentities::Refused,
            min_score: 0.6,
            max_candidates: 10,
        }
    }
}

/// Decides the patient of a document among `locals`.
///
/// `locals` need not be the whole patient base: the shell may pass the
/// records sharing the matricule plus those sharing the birth date or the
/// normalised birth name (what a database index finds quickly). The
/// automatic decision only ever looks at records with the same matricule.
pub fn match_patient(
    doc: &DocumentPatient,
    locals: &[LocalPatient],
    options: &MatchOptions,
) -> PatientDecision {
    match exact(doc, locals, options) {
        Ok(patient) => PatientDecision::AutoIntegrate { patient },
        Err(problem) => PatientDecision::Propose {
            problem,
            candidates: candidates(doc, locals, options),
        },
    }
}

fn exact(
    doc: &DocumentPatient,
    locals: &[LocalPatient],
    options: &MatchOptions,
) -> Result<String, MatchProblem> {
    let ins = doc.ins.as_ref().ok_or(MatchProblem::NoIns)?;
    if !ins.kind.is_accepted(options.test_identities) {
        return Err(MatchProblem::TestInsRefused(ins.kind));
    }
    if !ins.key_valid {
        return Err(MatchProblem::InvalidKey);
    }
    if let Some(meta) = &doc.metadata_ins
        && (!meta.matricule.eq_ignore_ascii_case(ins.matricule.trim()) || meta.kind != ins.kind)
    {
        return Err(MatchProblem::MetadataDisagrees);
    }
    let missing = doc.traits.missing_traits();
    if !missing.is_empty() {
        return Err(MatchProblem::IncompleteTraits(missing));
    }
    let same: Vec<&LocalPatient> = locals
        .iter()
        .filter(|p| p.ins.as_ref().is_some_and(|i| same_matricule(i, ins)))
        .collect();
    let record = match same.as_slice() {
        [] => return Err(MatchProblem::UnknownPatient),
        [one] => *one,
        several => {
            if several
                .iter()
                .any(|p| p.ins.as_ref().is_some_and(|i| i.kind != ins.kind))
            {
                return Err(MatchProblem::DifferentInsKind);
            }
            return Err(MatchProblem::SeveralRecords(several.len()));
        }
    };
    if record.ins.as_ref().is_some_and(|i| i.kind != ins.kind) {
        return Err(MatchProblem::DifferentInsKind);
    }
    if !record.status.is_qualified() {
        return Err(MatchProblem::NotQualified(record.status));
    }
    doc.traits
        .matches_exactly(&record.traits)
        .map_err(MatchProblem::TraitsDiffer)?;
    Ok(record.id.clone())
}

fn same_matricule(local: &Ins, doc: &InsRef) -> bool {
    local
        .matricule
        .as_str()
        .eq_ignore_ascii_case(doc.matricule.trim())
}

fn agreement(doc: &IdentityTraits, local: &IdentityTraits) -> Vec<(Trait, Agreement)> {
    let mismatches = doc.matches_exactly(local).err().unwrap_or_default();
    Trait::ALL
        .into_iter()
        .map(|t| {
            let a = match mismatches.iter().find(|m| m.trait_ == t) {
                None => Agreement::Same,
                Some(m) if m.kind == MismatchKind::Different => Agreement::Different,
                Some(_) => Agreement::Missing,
            };
            (t, a)
        })
        .collect()
}

fn candidates(
    doc: &DocumentPatient,
    locals: &[LocalPatient],
    options: &MatchOptions,
) -> Vec<Candidate> {
    let mut list: Vec<Candidate> = locals
        .iter()
        .filter_map(|p| {
            let same_ins = match (&p.ins, &doc.ins) {
                (Some(local), Some(ins)) => same_matricule(local, ins),
                _ => false,
            };
            let score = doc.traits.similarity(&p.traits);
            let score = if score.is_finite() { score } else { 0.0 };
            (same_ins || score >= options.min_score).then(|| Candidate {
                patient: p.id.clone(),
                score,
                same_ins,
                status: p.status,
                traits: agreement(&doc.traits, &p.traits),
            })
        })
        .collect();
    // Same INS first, then the best score, then the id: a total, stable order.
    list.sort_by(|a, b| {
        b.same_ins
            .cmp(&a.same_ins)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.patient.cmp(&b.patient))
    });
    list.truncate(options.max_candidates);
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_model::{PartialDate, Sex};

    const M: &str = "279035121518989";

    fn traits() -> IdentityTraits {
        IdentityTraits {
            birth_name: Some("PAT-TROIS".into()),
            first_given_name: Some("DOMINIQUE".into()),
            given_names: Some("DOMINIQUE MARIE-LOUISE".into()),
            birth_date: Some(PartialDate::new(1979, Some(3), Some(28)).unwrap()),
            sex: Some(Sex::F),
            birthplace_code: Some("51215".into()),
        }
    }

    fn doc() -> DocumentPatient {
        DocumentPatient {
            ins: Some(InsRef {
                matricule: M.into(),
                oid: InsKind::Test.oid().into(),
                kind: InsKind::Test,
                key_valid: true,
            }),
            metadata_ins: MetadataIns::from_cx(&format!("{M}^^^&1.2.250.1.213.1.4.10&ISO^NH")),
            has_other_ids: true,
            traits: traits(),
        }
    }

    fn local(id: &str, status: IdentityStatus, t: IdentityTraits) -> LocalPatient {
        LocalPatient {
            id: id.into(),
            ins: Some(Ins::new(M, InsKind::Test.oid()).unwrap()),
            status,
            traits: t,
        }
    }

    fn opts() -> MatchOptions {
        MatchOptions {
            test_identities: TestIdentities::Allowed,
            ..MatchOptions::default()
        }
    }

    fn problem(d: PatientDecision) -> MatchProblem {
        match d {
            PatientDecision::Propose { problem, .. } => problem,
            other => panic!("expected a proposal, got {other:?}"),
        }
    }

    #[test]
    fn qualified_exact_match_files_automatically_whatever_the_case() {
        let mut t = traits();
        t.birth_name = Some("Pat-Trois".into());
        let locals = [local("P1", IdentityStatus::Qual, t)];
        assert_eq!(
            match_patient(&doc(), &locals, &opts()),
            PatientDecision::AutoIntegrate {
                patient: "P1".into()
            }
        );
    }

    #[test]
    fn every_failure_has_its_code() {
        let q = |t| vec![local("P1", IdentityStatus::Qual, t)];
        // 902
        assert_eq!(
            problem(match_patient(&doc(), &[], &opts())).code().code(),
            902
        );
        // 903: no INS, and test INS refused by a production installation.
        let mut d = doc();
        d.ins = None;
        assert_eq!(
            problem(match_patient(&d, &q(traits()), &opts()))
                .code()
                .code(),
            903
        );
        let p = problem(match_patient(
            &doc(),
            &q(traits()),
            &MatchOptions::default(),
        ));
        assert_eq!(p, MatchProblem::TestInsRefused(InsKind::Test));
        // 904: status, traits, metadata, key.
        let locals = [local("P1", IdentityStatus::Vali, traits())];
        assert_eq!(
            problem(match_patient(&doc(), &locals, &opts())),
            MatchProblem::NotQualified(IdentityStatus::Vali)
        );
        let mut other = traits();
        other.birthplace_code = Some("63220".into());
        assert_eq!(
            problem(match_patient(&doc(), &q(other), &opts()))
                .code()
                .code(),
            904
        );
        let mut d = doc();
        d.metadata_ins = MetadataIns::from_cx("162018885045327^^^&1.2.250.1.213.1.4.10&ISO^NH");
        assert_eq!(
            problem(match_patient(&d, &q(traits()), &opts())),
            MatchProblem::MetadataDisagrees
        );
        let mut d = doc();
        d.ins.as_mut().unwrap().key_valid = false;
        assert_eq!(
            problem(match_patient(&d, &q(traits()), &opts())),
            MatchProblem::InvalidKey
        );
        // 905
        let mut d = doc();
        d.traits.birthplace_code = None;
        assert_eq!(
            problem(match_patient(&d, &q(traits()), &opts())),
            MatchProblem::IncompleteTraits(vec![Trait::BirthplaceCode])
        );
        // 906: duplicates.
        let two = [
            local("P1", IdentityStatus::Qual, traits()),
            local("P2", IdentityStatus::Qual, traits()),
        ];
        assert_eq!(
            problem(match_patient(&doc(), &two, &opts())),
            MatchProblem::SeveralRecords(2)
        );
    }

    #[test]
    fn candidates_are_ranked_same_ins_first_then_score() {
        let mut near = traits();
        near.birth_name = Some("PAT TROIX".into());
        let far = IdentityTraits {
            birth_name: Some("MARTIN".into()),
            first_given_name: Some("JEAN".into()),
            sex: Some(Sex::M),
            birth_date: Some(PartialDate::new(1950, Some(1), Some(1)).unwrap()),
            ..IdentityTraits::default()
        };
        let mut d = doc();
        d.traits.birthplace_code = Some("63220".into());
        let locals = [
            LocalPatient {
                id: "near".into(),
                ins: None,
                status: IdentityStatus::Prov,
                traits: near,
            },
            LocalPatient {
                id: "far".into(),
                ins: None,
                status: IdentityStatus::Qual,
                traits: far,
            },
            local("same", IdentityStatus::Qual, traits()),
        ];
        let PatientDecision::Propose {
            problem,
            candidates,
        } = match_patient(&d, &locals, &opts())
        else {
            panic!("birthplace differs: must not file");
        };
        assert_eq!(problem.code().code(), 904);
        let ids: Vec<&str> = candidates.iter().map(|c| c.patient.as_str()).collect();
        assert_eq!(ids, ["same", "near"]);
        assert!(candidates[0].same_ins);
        assert!(
            candidates[0]
                .traits
                .contains(&(Trait::BirthplaceCode, Agreement::Different))
        );
    }

    #[test]
    fn cx_is_read() {
        let m = MetadataIns::from_cx("279035121518989^^^&1.2.250.1.213.1.4.8&ISO^NH").unwrap();
        assert_eq!(m.kind, InsKind::Nir);
        assert_eq!(MetadataIns::from_cx("123^^^&1.2.3.4&ISO^PI"), None);
        assert_eq!(MetadataIns::from_cx("^^^"), None);
        assert_eq!(MetadataIns::from_cx(""), None);
    }
}
