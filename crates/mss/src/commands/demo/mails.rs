//! The mails other professionals write to the demo's mailbox: real CDA reports from the
//! sandbox's document model, packed in IHE XDM and composed by mss-docs, then submitted
//! through the sandbox operators' SMTP servers as the professional who writes them.
//!
//! Each mail has a fixed Message-ID: a mail already in its recipient's INBOX is not sent
//! again, so a second start of the demo adds nothing twice.

use crate::cli::PackAction;
use crate::commands::xdm::{CdaFile, pack};
use anyhow::{Context, Result, anyhow};
use mss_docs::message::{Mailbox, OutgoingMessage, XdmPackage, compose, parse_incoming};
use mss_sandbox::Sandbox;
use mss_sandbox::documents::{ReportVersion, consultation_report};
use mss_sandbox::identities::{PATIENT_DOMAIN, Patient, TEST_INS_OID};
use mss_sandbox::operator::mailstore::INBOX;
use mss_sandbox::operator::mes::patient_reply;
use mss_sandbox::operator::second::SECOND_DOMAIN;
use mss_sandbox::psc::Professional;
use std::collections::HashSet;

/// The mailbox mss reads in the demo: the sandbox's application mailbox (certificate).
pub const DPI: &str = "dpi@sandbox.mssante.fr";
pub const JEANNE: &str = "jeanne.martin@sandbox.mssante.fr";
pub const KARIM: &str = "karim.benali@sandbox.mssante.fr";
pub const SECRETARIAT: &str = "secretariat.cardiologie@sandbox.mssante.fr";
/// The professional's software the demo's mails claim to come from (X-MSS-NIL).
const SENDER_NIL: &str = "MSS-DEMO-EMETTEUR";

/// Karim BENALI's mailbox at the second operator (mail crosses the operators' SMTP hop).
pub fn karim_second() -> String {
    format!("karim.benali@{SECOND_DOMAIN}")
}

/// Fixed Message-IDs, so that the demo and its tests can find each mail.
pub mod ids {
    pub const DURAND_V1: &str = "demo-01-cr-durand@sandbox.mssante.fr";
    pub const PETIT: &str = "demo-02-cr-petit@operateur2.sandbox.mssante.fr";
    pub const ROUX: &str = "demo-03-cr-roux@sandbox.mssante.fr";
    pub const DURAND_V2: &str = "demo-04-cr-durand-v2@sandbox.mssante.fr";
    pub const ROUX_DELETE: &str = "demo-05-suppression-roux@sandbox.mssante.fr";
    pub const UNKNOWN: &str = "demo-06-cr-lefebvre@sandbox.mssante.fr";
    pub const VALI: &str = "demo-07-cr-pat-trois@sandbox.mssante.fr";
    pub const BROKEN: &str = "demo-08-archive-abimee@sandbox.mssante.fr";
    pub const TO_PATIENT: &str = "demo-09-message-patiente@sandbox.mssante.fr";
    pub const LATE: &str = "demo-11-cr-petit-effort@operateur2.sandbox.mssante.fr";
}

/// PAT-TROIS DOMINIQUE, the ANS examples' test patient: known locally as VALI only, so
/// her documents are proposed, never filed by themselves.
pub fn pat_trois() -> Patient {
    Patient {
        matricule: "279035121518989".into(),
        oid: TEST_INS_OID.into(),
        address: format!("279035121518989@{PATIENT_DOMAIN}"),
        family_name: "PAT-TROIS".into(),
        given_name: "DOMINIQUE".into(),
        birth_date: "1979-03-28".into(),
        sex: "F".into(),
        birthplace_code: "51215".into(),
    }
}

/// A patient mss has never heard of (test INS, valid key).
fn unknown_patient() -> Patient {
    let nir = 1_621_159_350_042u64;
    let matricule = format!("{nir}{:02}", 97 - nir % 97);
    Patient {
        address: format!("{matricule}@{PATIENT_DOMAIN}"),
        matricule,
        oid: TEST_INS_OID.into(),
        family_name: "LEFEBVRE".into(),
        given_name: "Marc".into(),
        birth_date: "1962-11-05".into(),
        sex: "M".into(),
        birthplace_code: "59350".into(),
    }
}

/// What one mail is made of.
struct Mail<'a> {
    id: &'a str,
    /// What the terminal shows of it.
    label: &'a str,
    from: String,
    from_name: &'a str,
    to: String,
    subject: Option<&'a str>,
    body: &'a str,
    /// CDA documents of one patient.
    cda: Vec<String>,
    action: Option<PackAction>,
    request_mdn: bool,
    /// Send the archive cut in half (unreadable).
    broken: bool,
}

impl Mail<'_> {
    fn bytes(&self, now: i64) -> Result<Vec<u8>> {
        let files = self
            .cda
            .iter()
            .map(|xml| {
                let header = mss_docs::cda::parse_header(xml.as_bytes())
                    .context("a demo CDA document is unreadable")?;
                Ok(CdaFile {
                    bytes: xml.clone().into_bytes(),
                    header,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let xdm = if files.is_empty() {
            None
        } else {
            let mut zip = pack(&files, self.action, None, now)?;
            if self.broken {
                zip.truncate(zip.len() / 2);
            }
            Some(XdmPackage {
                zip,
                documents: files.into_iter().map(|f| f.header).collect(),
            })
        };
        Ok(compose(&OutgoingMessage {
            from: Mailbox::named(self.from.clone(), self.from_name),
            to: vec![Mailbox::new(self.to.clone())],
            message_id: self.id.to_owned(),
            date: now,
            subject: self.subject.map(str::to_owned),
            body: self.body.to_owned(),
            xdm,
            request_mdn: self.request_mdn,
            nil: Some(SENDER_NIL.into()),
            test_identities: true,
            ..OutgoingMessage::default()
        })?)
    }
}

/// A consultation report, version `version` of set `set`.
fn report(
    patient: &Patient,
    author: &Professional,
    set: &str,
    version: u32,
    when: &str,
    text: &str,
) -> String {
    let id = format!("{set}-V{version}");
    let previous = format!("{set}-V{}", version.saturating_sub(1));
    consultation_report(
        patient,
        author,
        &ReportVersion {
            id: &id,
            set_id: set,
            version,
            replaces: (version > 1).then_some(previous.as_str()),
            effective_time: when,
            text,
        },
    )
}

fn person<'a>(sandbox: &'a Sandbox, national_id: &str) -> Result<&'a Professional> {
    sandbox
        .info
        .psc
        .professionals
        .iter()
        .find(|p| p.national_id == national_id)
        .ok_or_else(|| anyhow!("the sandbox has no professional {national_id}"))
}

fn patient(sandbox: &Sandbox, index: usize) -> Result<&Patient> {
    sandbox
        .info
        .patients
        .get(index)
        .ok_or_else(|| anyhow!("the sandbox has fewer than {} test patients", index + 1))
}

/// The Message-IDs in `address`'s INBOX at the operator that serves it.
fn message_ids(sandbox: &Sandbox, address: &str) -> Result<HashSet<String>> {
    let operator = if address.ends_with(SECOND_DOMAIN) {
        &sandbox.second_operator
    } else {
        &sandbox.operator
    };
    let store = &operator.context.store;
    let mut ids = HashSet::new();
    for meta in store.messages(address, INBOX)? {
        let raw = store.read(address, INBOX, meta.uid)?;
        if let Ok(message) = parse_incoming(&raw) {
            if let Some(id) = message.message_id {
                ids.insert(id.trim_matches(['<', '>']).to_owned());
            }
            if let Some(from) = message.from {
                ids.insert(format!("from:{}", from.address.to_ascii_lowercase()));
            }
        }
    }
    Ok(ids)
}

/// What was done with one mail, for the terminal.
pub struct Delivered {
    pub what: String,
    pub new: bool,
}

async fn submit(
    sandbox: &Sandbox,
    mail: &Mail<'_>,
    present: &HashSet<String>,
    now: i64,
) -> Result<Delivered> {
    let what = mail.label.to_owned();
    if present.contains(mail.id) {
        return Ok(Delivered { what, new: false });
    }
    let bytes = mail.bytes(now)?;
    sandbox
        .submit_as(&mail.from, std::slice::from_ref(&mail.to), &bytes)
        .await
        .with_context(|| format!("the demo mail {} could not be sent", mail.id))?;
    Ok(Delivered { what, new: true })
}

/// Delivers the demo's mails to [`DPI`], in order, each once.
pub async fn deliver_all(sandbox: &Sandbox, now: i64) -> Result<Vec<Delivered>> {
    let jeanne = person(sandbox, "899700000001")?;
    let karim = person(sandbox, "899700000002")?;
    let (durand, petit, roux) = (
        patient(sandbox, 0)?,
        patient(sandbox, 1)?,
        patient(sandbox, 2)?,
    );
    let present = message_ids(sandbox, DPI)?;
    let mails = [
        Mail {
            id: ids::DURAND_V1,
            label: "Dr Jeanne MARTIN : CR de consultation d'Alice DURAND (accusé de réception demandé)",
            from: JEANNE.into(),
            from_name: "Dr Jeanne MARTIN",
            to: DPI.into(),
            subject: None,
            body: "Chère consœur, cher confrère,\r\n\r\nVeuillez trouver ci-joint le compte rendu de \
                   consultation de Mme DURAND.\r\n\r\nBien confraternellement,\r\nDr Jeanne MARTIN",
            cda: vec![report(
                durand,
                jeanne,
                "CR-DURAND-2026-11",
                1,
                "20261124091500+0100",
                "Consultation de suivi annuel. Tension artérielle 125/80 mmHg, auscultation \
                 cardio-pulmonaire normale. Bilan biologique prescrit (glycémie à jeun, bilan \
                 lipidique). Poursuite du traitement habituel.",
            )],
            action: None,
            request_mdn: true,
            broken: false,
        },
        Mail {
            id: ids::PETIT,
            label: "Dr Karim BENALI (second opérateur) : CR de consultation de Bernard PETIT",
            from: karim_second(),
            from_name: "Dr Karim BENALI",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nCompte rendu de la consultation de cardiologie de M. PETIT \
                   ci-joint.\r\n\r\nDr Karim BENALI, cardiologue",
            cda: vec![report(
                petit,
                karim,
                "CR-PETIT-2026-11",
                1,
                "20261123143000+0100",
                "Douleurs thoraciques atypiques à l'effort. ECG de repos : rythme sinusal, pas de \
                 trouble de la repolarisation. Échocardiographie : FEVG 60 %, pas de valvulopathie. \
                 Épreuve d'effort programmée.",
            )],
            action: None,
            request_mdn: true,
            broken: false,
        },
        Mail {
            id: ids::ROUX,
            label: "Secrétariat de cardiologie : CR de consultation de Chloé ROUX",
            from: SECRETARIAT.into(),
            from_name: "Secrétariat de cardiologie",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nLe compte rendu de consultation de Chloé ROUX est joint à ce \
                   message.\r\n\r\nLe secrétariat de cardiologie",
            cda: vec![report(
                roux,
                karim,
                "CR-ROUX-2026-11",
                1,
                "20261122110000+0100",
                "Consultation de cardiologie pédiatrique pour souffle cardiaque. Souffle systolique \
                 fonctionnel 1/6, échocardiographie normale. Pas de suivi nécessaire.",
            )],
            action: None,
            request_mdn: false,
            broken: false,
        },
        Mail {
            id: ids::DURAND_V2,
            label: "Dr Jeanne MARTIN : CR d'Alice DURAND corrigé (remplace la version 1)",
            from: JEANNE.into(),
            from_name: "Dr Jeanne MARTIN",
            to: DPI.into(),
            subject: None,
            body: "Chère consœur, cher confrère,\r\n\r\nCe compte rendu corrigé remplace celui \
                   envoyé précédemment (erreur sur la tension artérielle).\r\n\r\nDr Jeanne MARTIN",
            cda: vec![report(
                durand,
                jeanne,
                "CR-DURAND-2026-11",
                2,
                "20261124091500+0100",
                "Consultation de suivi annuel. Tension artérielle 135/85 mmHg (valeur corrigée), \
                 auscultation cardio-pulmonaire normale. Contrôle tensionnel dans trois mois. \
                 Bilan biologique prescrit.",
            )],
            action: Some(PackAction::Replace),
            request_mdn: false,
            broken: false,
        },
        Mail {
            id: ids::ROUX_DELETE,
            label: "Secrétariat de cardiologie : demande de suppression du CR de Chloé ROUX",
            from: SECRETARIAT.into(),
            from_name: "Secrétariat de cardiologie",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nLe compte rendu de Chloé ROUX vous a été adressé par erreur : \
                   merci de le supprimer du dossier.\r\n\r\nLe secrétariat de cardiologie",
            cda: vec![report(
                roux,
                karim,
                "CR-ROUX-2026-11",
                1,
                "20261122110000+0100",
                "Consultation de cardiologie pédiatrique pour souffle cardiaque. Souffle systolique \
                 fonctionnel 1/6, échocardiographie normale. Pas de suivi nécessaire.",
            )],
            action: Some(PackAction::Delete),
            request_mdn: false,
            broken: false,
        },
        Mail {
            id: ids::UNKNOWN,
            label: "Dr Karim BENALI : CR de Marc LEFEBVRE, patient inconnu (accusé demandé)",
            from: KARIM.into(),
            from_name: "Dr Karim BENALI",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nCompte rendu de consultation de M. LEFEBVRE, adressé par son \
                   médecin traitant.\r\n\r\nDr Karim BENALI",
            cda: vec![report(
                &unknown_patient(),
                karim,
                "CR-LEFEBVRE-2026-11",
                1,
                "20261121160000+0100",
                "Palpitations paroxystiques. Holter ECG de 24 heures : extrasystoles \
                 supraventriculaires isolées, pas de trouble du rythme soutenu. Rassurance.",
            )],
            action: None,
            request_mdn: true,
            broken: false,
        },
        Mail {
            id: ids::VALI,
            label: "Dr Jeanne MARTIN : CR de Dominique PAT-TROIS (identité non qualifiée)",
            from: JEANNE.into(),
            from_name: "Dr Jeanne MARTIN",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nCompte rendu de consultation de Mme PAT-TROIS ci-joint.\r\n\r\n\
                   Dr Jeanne MARTIN",
            cda: vec![report(
                &pat_trois(),
                jeanne,
                "CR-PAT-TROIS-2026-11",
                1,
                "20261120100000+0100",
                "Consultation pour toux persistante depuis trois semaines. Auscultation normale. \
                 Radiographie thoracique demandée.",
            )],
            action: None,
            request_mdn: false,
            broken: false,
        },
        Mail {
            id: ids::BROKEN,
            label: "Dr Karim BENALI : archive XDM abîmée",
            from: KARIM.into(),
            from_name: "Dr Karim BENALI",
            to: DPI.into(),
            subject: None,
            body: "Bonjour,\r\n\r\nVeuillez trouver le compte rendu de M. PETIT.\r\n\r\n\
                   Dr Karim BENALI",
            cda: vec![report(
                petit,
                karim,
                "CR-PETIT-HOLTER-2026-11",
                1,
                "20261119090000+0100",
                "Holter tensionnel : moyenne diurne 128/79 mmHg.",
            )],
            action: None,
            request_mdn: false,
            broken: true,
        },
    ];
    let mut out = Vec::new();
    for mail in &mails {
        out.push(submit(sandbox, mail, &present, now).await?);
    }
    out.push(patient_message(sandbox, durand, now).await?);
    Ok(out)
}

/// Mon espace santé: the software writes to Alice DURAND, and she answers (a patient can
/// only answer a professional who wrote to her).
async fn patient_message(sandbox: &Sandbox, durand: &Patient, now: i64) -> Result<Delivered> {
    let what = format!(
        "{} {} (Mon espace santé) : une question sur son compte rendu",
        durand.given_name, durand.family_name
    );
    if message_ids(sandbox, DPI)?.contains(&format!("from:{}", durand.address)) {
        return Ok(Delivered { what, new: false });
    }
    if !message_ids(sandbox, &durand.address)?.contains(ids::TO_PATIENT) {
        let to_patient = Mail {
            id: ids::TO_PATIENT,
            label: "Le cabinet écrit à Alice DURAND sur Mon espace santé",
            from: DPI.into(),
            from_name: "Cabinet médical (démo mss)",
            to: durand.address.clone(),
            subject: Some("Votre compte rendu de consultation"),
            body: "Madame,\r\n\r\nVotre compte rendu de consultation est disponible. Vous pouvez \
                   répondre à ce message pour toute question.\r\n\r\nLe cabinet médical",
            cda: Vec::new(),
            action: None,
            request_mdn: false,
            broken: false,
        };
        submit(sandbox, &to_patient, &HashSet::new(), now).await?;
    }
    patient_reply(
        &sandbox.operator.context,
        &durand.matricule,
        DPI,
        "Re: Votre compte rendu de consultation",
        "Bonjour docteur,\r\n\r\nMerci pour le compte rendu. Dois-je faire le bilan sanguin à \
         jeun ?\r\n\r\nCordialement,\r\nAlice DURAND",
    )
    .map_err(|e| anyhow!("the patient's message could not be delivered: {e}"))?;
    Ok(Delivered { what, new: true })
}

/// The mail that arrives while the demo follows the mailbox: another report from Karim
/// BENALI's second-operator mailbox.
pub async fn deliver_late(sandbox: &Sandbox, now: i64) -> Result<Delivered> {
    let karim = person(sandbox, "899700000002")?;
    let petit = patient(sandbox, 1)?;
    let mail = Mail {
        id: ids::LATE,
        label: "Dr Karim BENALI (second opérateur) : épreuve d'effort de Bernard PETIT",
        from: karim_second(),
        from_name: "Dr Karim BENALI",
        to: DPI.into(),
        subject: None,
        body: "Bonjour,\r\n\r\nL'épreuve d'effort de M. PETIT est normale, compte rendu \
               ci-joint.\r\n\r\nDr Karim BENALI",
        cda: vec![report(
            petit,
            karim,
            "CR-PETIT-EFFORT-2026-11",
            1,
            "20261125150000+0100",
            "Épreuve d'effort maximale, négative cliniquement et électriquement, à 180 W. \
             Pas d'indication à une coronarographie.",
        )],
        action: None,
        request_mdn: false,
        broken: false,
    };
    submit(sandbox, &mail, &message_ids(sandbox, DPI)?, now).await
}
