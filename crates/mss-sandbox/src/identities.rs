//! The sandbox's test people: professionals (RPPS-style national ids `8997000000xx`),
//! their mailboxes, and patients with test INS (OID 1.2.250.1.213.1.4.10).

use mss_model::ins::{Ins, Matricule};
use serde::Serialize;

use crate::error::SandboxError;
use crate::psc::{CibaAnswer, Professional};

/// The OID of test INS (NIR/NIA of test identities).
pub const TEST_INS_OID: &str = "1.2.250.1.213.1.4.10";
/// The Mon espace santé domain of patient mailboxes.
pub const PATIENT_DOMAIN: &str = "patient.mssante.fr";

/// The professionals the PSC simulator knows, for the sandbox domain `domain`.
pub fn professionals(domain: &str) -> Vec<Professional> {
    let mail = |local: &str| format!("{local}@{domain}");
    let mut refuse = Professional::new(
        "899700000098",
        "Paul",
        "REFUS",
        "Médecin (refuse toute demande CIBA)",
        &mail("paul.refus"),
    );
    refuse.ciba = CibaAnswer::Refuse;
    let mut silent = Professional::new(
        "899700000099",
        "Lou",
        "SILENCE",
        "Médecin (ne répond jamais en CIBA)",
        &mail("lou.silence"),
    );
    silent.ciba = CibaAnswer::Ignore;
    vec![
        Professional::new(
            "899700000001",
            "Jeanne",
            "MARTIN",
            "Médecin généraliste",
            &mail("jeanne.martin"),
        ),
        Professional::new(
            "899700000002",
            "Karim",
            "BENALI",
            "Cardiologue",
            &mail("karim.benali"),
        ),
        Professional::new(
            "899700000003",
            "Claire",
            "DUBOIS",
            "Infirmière",
            &mail("claire.dubois"),
        ),
        refuse,
        silent,
    ]
}

/// How a mailbox authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BalKind {
    Per,
    Org,
    App,
}

/// A mailbox of the sandbox operator, before paths are known.
#[derive(Debug, Clone)]
pub struct BalSpec {
    pub address: String,
    pub kind: BalKind,
    /// The professional who logs in (PER/ORG): their national id.
    pub login_hint: Option<String>,
}

/// Two personal mailboxes, one organisational (reached by Claire DUBOIS's PSC login) and one
/// applicative (certificate).
pub fn bals(domain: &str) -> Vec<BalSpec> {
    let bal = |local: &str, kind, hint: Option<&str>| BalSpec {
        address: format!("{local}@{domain}"),
        kind,
        login_hint: hint.map(str::to_owned),
    };
    vec![
        bal("jeanne.martin", BalKind::Per, Some("899700000001")),
        bal("karim.benali", BalKind::Per, Some("899700000002")),
        bal(
            "secretariat.cardiologie",
            BalKind::Org,
            Some("899700000003"),
        ),
        bal("dpi", BalKind::App, None),
    ]
}

/// A test patient with a Mon espace santé mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub matricule: String,
    pub oid: String,
    pub address: String,
    pub family_name: String,
    pub given_name: String,
    /// AAAA-MM-JJ
    pub birth_date: String,
    /// M or F
    pub sex: String,
    /// INSEE code of the birthplace (the sixth INS trait).
    pub birthplace_code: String,
}

/// Three patients; their matricules carry a valid key, checked by mss-model.
pub fn patients() -> Result<Vec<Patient>, SandboxError> {
    [
        (
            "2800175123456",
            "DURAND",
            "Alice",
            "1980-01-15",
            "F",
            "75056",
        ),
        (
            "1750299123789",
            "PETIT",
            "Bernard",
            "1975-02-03",
            "M",
            "69123",
        ),
        ("2120475321654", "ROUX", "Chloé", "2012-04-21", "F", "13055"),
    ]
    .iter()
    .map(|(number, family, given, birth, sex, birthplace)| {
        let n: u64 = number
            .parse()
            .map_err(|_| SandboxError::Identity((*number).into()))?;
        let matricule = format!("{number}{:02}", 97 - n % 97);
        let checked = Matricule::parse(&matricule)
            .map_err(|e| SandboxError::Identity(format!("{matricule}: {e}")))?;
        Ins::new(checked.as_str(), TEST_INS_OID)
            .map_err(|e| SandboxError::Identity(format!("{matricule}: {e}")))?;
        Ok(Patient {
            address: format!("{}@{PATIENT_DOMAIN}", checked.as_str()),
            matricule: checked.as_str().to_owned(),
            oid: TEST_INS_OID.into(),
            family_name: (*family).into(),
            given_name: (*given).into(),
            birth_date: (*birth).into(),
            sex: (*sex).into(),
            birthplace_code: (*birthplace).into(),
        })
    })
    .collect()
}
