//! Mon espace santé (`patient.mssante.fr`) rules the sandbox operator applies.
//!
//! - Only professionals start a conversation; a patient can only answer a professional who
//!   wrote to them (ENS « Mon espace santé – Messagerie » v1.3, as summarised in
//!   spec/documents-xdm-cda-mdn.md §5).
//! - A message carrying `X-MSS-MES: FIN` (SC.MSS/CONF.21, ECO.2.2.8), or whose subject is
//!   `[FIN]`, closes the patient's ability to reply to that professional. A later message
//!   without it opens the conversation again: the patient can answer the new message.
//! - State per (patient, professional) lives in `<operator dir>/mes-conversations.json`, so
//!   a restarted sandbox keeps what was closed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AccountKind, OperatorContext, mailstore::INBOX};
use crate::error::SandboxError;
use crate::identities::{self, PATIENT_DOMAIN};

/// Largest message Mon espace santé takes (« 25 Mo »), headers included.
pub const MAX_PATIENT_MESSAGE: usize = 25 * 1024 * 1024;
/// Most conversations remembered (the sandbox has a handful of patients).
const MAX_CONVERSATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The last message from the professional carried `X-MSS-MES: FIN` (or `[FIN]`).
    pub closed: bool,
    /// Seconds since the Unix epoch of that message.
    pub since: u64,
}

/// The conversations between patients and professionals, persisted as JSON.
#[derive(Debug)]
pub struct Conversations {
    path: PathBuf,
    /// Key: `<patient address>|<professional address>`, both lower case.
    state: Mutex<BTreeMap<String, Conversation>>,
}

/// Why a patient's reply was not delivered (French: shown in `mss demo`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplyError {
    #[error("patient inconnu du bac à sable : {0}")]
    UnknownPatient(String),
    #[error("{0} n'est pas une BAL de cet opérateur")]
    UnknownProfessional(String),
    #[error("ce professionnel n'a jamais écrit à ce patient : un patient ne peut que répondre")]
    NotStarted,
    #[error(
        "le professionnel a clos l'échange (X-MSS-MES: FIN) : le patient ne peut plus répondre"
    )]
    Closed,
    #[error("le message du patient n'a pas pu être rangé : {0}")]
    Store(String),
}

impl Conversations {
    /// Reads the state file (absent: nothing closed yet).
    pub fn open(path: &Path) -> Result<Conversations, SandboxError> {
        let state = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(SandboxError::io(path))?;
            serde_json::from_str(&text).map_err(|e| SandboxError::Damaged {
                path: path.to_owned(),
                why: e.to_string(),
            })?
        } else {
            BTreeMap::new()
        };
        Ok(Conversations {
            path: path.to_owned(),
            state: Mutex::new(state),
        })
    }

    fn key(patient: &str, professional: &str) -> String {
        format!(
            "{}|{}",
            patient.trim().to_ascii_lowercase(),
            professional.trim().to_ascii_lowercase()
        )
    }

    /// Notes a message from `professional` to `patient`; `fin` closes the conversation.
    pub fn professional_wrote(
        &self,
        patient: &str,
        professional: &str,
        fin: bool,
    ) -> Result<(), SandboxError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(patient, professional);
        if !state.contains_key(&key) && state.len() >= MAX_CONVERSATIONS {
            return Ok(());
        }
        state.insert(
            key,
            Conversation {
                closed: fin,
                since: super::now_secs(),
            },
        );
        let text = serde_json::to_vec_pretty(&*state).map_err(|e| SandboxError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&self.path, text).map_err(SandboxError::io(&self.path))
    }

    /// The conversation between `patient` and `professional`, if the professional wrote.
    pub fn get(&self, patient: &str, professional: &str) -> Option<Conversation> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.get(&Self::key(patient, professional)).copied()
    }
}

/// Whether a message's headers end the patient exchange: `X-MSS-MES: FIN` (exactly "FIN",
/// surrounding spaces ignored) or a subject starting with `[FIN]` (case-sensitive).
pub fn is_fin(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        (name.eq_ignore_ascii_case("X-MSS-MES") && value.trim() == "FIN")
            || (name.eq_ignore_ascii_case("Subject") && value.trim_start().starts_with("[FIN]"))
    })
}

/// A patient answers `to` (a mailbox of this operator) from Mon espace santé: the message
/// lands in `to`'s INBOX, From the patient's address with their name (SC.MSS/UX.31), unless
/// the professional never wrote or closed the exchange. Returns the new message's UID.
pub fn patient_reply(
    ctx: &OperatorContext,
    matricule: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<u32, ReplyError> {
    let address = format!("{}@{PATIENT_DOMAIN}", matricule.trim());
    let patient_known = ctx
        .account(&address)
        .is_some_and(|a| a.kind == AccountKind::Patient);
    let patient = identities::patients()
        .ok()
        .and_then(|all| all.into_iter().find(|p| p.matricule == matricule.trim()));
    let (Some(patient), true) = (patient, patient_known) else {
        return Err(ReplyError::UnknownPatient(address));
    };
    let Some(account) = ctx.account(to).filter(|a| a.kind != AccountKind::Patient) else {
        return Err(ReplyError::UnknownProfessional(to.to_owned()));
    };
    let outcome = match ctx.mes.get(&address, &account.address) {
        None => Err(ReplyError::NotStarted),
        Some(c) if c.closed => Err(ReplyError::Closed),
        Some(_) => Ok(()),
    };
    ctx.recorder.record(
        "mes",
        0,
        "patient_reply",
        json!({
            "patient": address,
            "to": account.address,
            "ok": outcome.is_ok(),
            "reason": outcome.as_ref().err().map(|e| e.to_string()),
        }),
    );
    outcome?;

    let now = super::now_secs() as i64;
    let name = format!("{} {}", patient.given_name, patient.family_name);
    let message = MessageBuilder::new()
        .from(Address::new_address(Some(name), address.clone()))
        .to(account.address.clone())
        .subject(subject)
        .date(now)
        .text_body(body)
        .write_to_vec()
        .map_err(|e| ReplyError::Store(e.to_string()))?;
    let received = format!(
        "Received: from monespacesante (Mon espace sante) by {PATIENT_DOMAIN} (mss-sandbox)\r\n\
         \tfor <{}>; {}\r\n",
        account.address,
        mail_builder::headers::date::Date::new(now).to_rfc822()
    );
    let mut bytes = received.into_bytes();
    bytes.extend_from_slice(&message);
    let uid = ctx
        .store
        .append(&account.address, INBOX, &[], now, &bytes)
        .map_err(|e| ReplyError::Store(e.to_string()))?;
    super::delivery::record_message(
        ctx,
        "mes",
        0,
        &address,
        std::slice::from_ref(&account.address),
        &bytes,
    );
    Ok(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn fin_is_the_header_or_the_subject() {
        assert!(is_fin(&[h("X-MSS-MES", " FIN")]));
        assert!(is_fin(&[h("x-mss-mes", "FIN")]));
        assert!(!is_fin(&[h("X-MSS-MES", "fin")]));
        assert!(is_fin(&[h("Subject", "[FIN] fin de suivi")]));
        assert!(!is_fin(&[h("Subject", "Re: [FIN]")]));
        assert!(!is_fin(&[h("Subject", "[fin]")]));
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mes.json");
        let c = Conversations::open(&path).unwrap();
        assert_eq!(c.get("P@patient.mssante.fr", "a@b.fr"), None);
        c.professional_wrote("P@patient.mssante.fr", "A@b.fr", true)
            .unwrap();
        let c = Conversations::open(&path).unwrap();
        assert!(c.get("p@patient.mssante.fr", "a@b.fr").unwrap().closed);
        c.professional_wrote("p@patient.mssante.fr", "a@b.fr", false)
            .unwrap();
        assert!(!c.get("p@patient.mssante.fr", "a@b.fr").unwrap().closed);
    }
}
