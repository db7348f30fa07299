//! Care team (LABEL.06): for a patient, identified by their INS matricule,
//! the professionals who take care of them. Kept in one JSON file of the
//! data directory until the store exists; every change rewrites it
//! atomically.

use crate::error::Error;
use crate::fsio::write_atomic;
use mss_model::ins::Matricule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name inside `<data-dir>/directory`.
pub const FILE: &str = "care-team.json";
/// Members per patient at most, and patients at most: the file stays small.
pub const MAX_MEMBERS: usize = 200;
const MAX_FILE: u64 = 64 << 20;

/// One professional of a patient's care team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// National id (`8`+RPPS, `0`+ADELI) or an MSSanté address.
    pub id: String,
    /// Free text: « médecin traitant », « cardiologue »…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Unix time it was added (given by the caller).
    pub added_at: i64,
}

/// The care teams of all patients.
#[derive(Debug)]
pub struct CareTeams {
    path: PathBuf,
    teams: BTreeMap<String, Vec<Member>>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    teams: BTreeMap<String, Vec<Member>>,
}

impl CareTeams {
    /// Loads `dir/care-team.json`; empty when it does not exist yet.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(FILE);
        let teams = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(&path, e)),
            Ok(m) if m.len() > MAX_FILE => {
                return Err(Error::CareTeam(path, "larger than 64 MiB".into()));
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                let disk: OnDisk = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::CareTeam(path.clone(), e.to_string()))?;
                disk.teams
            }
        };
        Ok(Self { path, teams })
    }

    /// The team of a patient, in the order members were added.
    pub fn list(&self, patient: &Matricule) -> &[Member] {
        self.teams.get(patient.as_str()).map_or(&[], Vec::as_slice)
    }

    /// Adds a professional (or updates their role); saved at once. Returns
    /// false when they were already there with the same role.
    pub fn add(
        &mut self,
        patient: &Matricule,
        id: &str,
        role: Option<&str>,
        now: i64,
    ) -> Result<bool, Error> {
        let id = normalize_id(id)?;
        let role = role
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if role.as_ref().is_some_and(|r| r.len() > 200) {
            return Err(Error::Invalid(
                "role is longer than 200 characters; shorten it".into(),
            ));
        }
        let team = self.teams.entry(patient.as_str().to_owned()).or_default();
        if let Some(m) = team.iter_mut().find(|m| m.id == id) {
            if m.role == role {
                return Ok(false);
            }
            m.role = role;
        } else {
            if team.len() >= MAX_MEMBERS {
                return Err(Error::Invalid(format!(
                    "care team already has {MAX_MEMBERS} members; remove some first"
                )));
            }
            team.push(Member {
                id,
                role,
                added_at: now,
            });
        }
        self.save()?;
        Ok(true)
    }

    /// Removes a professional; saved at once. Returns false when absent.
    pub fn remove(&mut self, patient: &Matricule, id: &str) -> Result<bool, Error> {
        let id = normalize_id(id)?;
        let Some(team) = self.teams.get_mut(patient.as_str()) else {
            return Ok(false);
        };
        let before = team.len();
        team.retain(|m| m.id != id);
        if team.len() == before {
            return Ok(false);
        }
        if team.is_empty() {
            self.teams.remove(patient.as_str());
        }
        self.save()?;
        Ok(true)
    }

    fn save(&self) -> Result<(), Error> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let disk = OnDisk {
            version: 1,
            teams: self.teams.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&self.path, &bytes)
    }
}

/// A member id is a national id (8/0 + digits, or ADELI with 2A/2B) or an
/// MSSanté address; anything else is refused.
fn normalize_id(id: &str) -> Result<String, Error> {
    let id = id.trim();
    let ok_id = (10..=12).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && matches!(id.as_bytes()[0], b'8' | b'0');
    let ok_mail = id.len() <= 256
        && id
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        && !id.contains(char::is_whitespace);
    if ok_id {
        Ok(id.to_ascii_uppercase())
    } else if ok_mail {
        Ok(id.to_lowercase())
    } else {
        Err(Error::Invalid(format!(
            "{id:?} is neither a national id (8+RPPS, 0+ADELI) nor an MSSanté address; copy it from `mss directory search`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_survives_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let ins = Matricule::parse("279035121518989").unwrap();
        let mut teams = CareTeams::load(tmp.path()).unwrap();
        assert!(
            teams
                .add(&ins, "810100271385", Some("cardiologue"), 1)
                .unwrap()
        );
        assert!(
            !teams
                .add(&ins, "810100271385", Some("cardiologue"), 2)
                .unwrap()
        );
        assert!(
            teams
                .add(&ins, "Secretariat@CH-X.mssante.fr", None, 3)
                .unwrap()
        );
        let teams2 = CareTeams::load(tmp.path()).unwrap();
        let ids: Vec<_> = teams2.list(&ins).iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["810100271385", "secretariat@ch-x.mssante.fr"]);
        let mut teams3 = teams2;
        assert!(teams3.remove(&ins, "810100271385").unwrap());
        assert!(!teams3.remove(&ins, "810100271385").unwrap());
        assert_eq!(CareTeams::load(tmp.path()).unwrap().list(&ins).len(), 1);
        assert!(teams3.add(&ins, "dupont", None, 4).is_err());
    }

    #[test]
    fn damaged_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(FILE), b"{not json").unwrap();
        let err = CareTeams::load(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
