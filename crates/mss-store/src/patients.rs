//! Patients as the store knows them: INS (matricule + OID), the traits INS, the identity
//! status, and the identifiers the host software gives them.

use crate::clock::{from_ms, to_ms};
use crate::error::{col, db};
use crate::{Result, Store, StoreError};
use mss_model::{IdentityStatus, IdentityTraits, Ins, Matricule, PartialDate, Sex, normalize_name};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

/// A patient to add, or the new content of one being updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub ins: Option<Ins>,
    pub traits: IdentityTraits,
    pub status: IdentityStatus,
    /// (system, value) pairs: the host software's identifiers (IPP…).
    pub local_ids: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub id: i64,
    pub ins: Option<Ins>,
    pub traits: IdentityTraits,
    pub status: IdentityStatus,
    pub local_ids: Vec<(String, String)>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

/// A patient who may be the one a document is about, with how alike the traits are
/// (0.0 to 1.0, [`IdentityTraits::similarity`]). For a person to choose, never to file.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub patient: Patient,
    pub score: f64,
}

const COLUMNS: &str = "id, matricule, ins_oid, birth_name, first_given_name, given_names, birth_date, \
                       sex, birthplace_code, identity_status, created_ms, updated_ms";

/// Most rows read to rank candidates: the ranking is in Rust, the filter in SQL keeps it
/// bounded on a large patient base.
const CANDIDATE_POOL: i64 = 2000;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("patient {what}: {e}"))
}

fn patient_from(row: &AnyRow) -> Result<Patient> {
    let matricule: Option<String> = col(row, "matricule")?;
    let oid: Option<String> = col(row, "ins_oid")?;
    let ins = match (matricule, oid) {
        (Some(m), Some(o)) => Some(Ins::new(&m, &o).map_err(|e| corrupt("INS", e))?),
        (None, None) => None,
        _ => return Err(corrupt("INS", "matricule without OID or the reverse")),
    };
    let birth_date: Option<String> = col(row, "birth_date")?;
    let sex: Option<String> = col(row, "sex")?;
    let status: String = col(row, "identity_status")?;
    Ok(Patient {
        id: col(row, "id")?,
        ins,
        traits: IdentityTraits {
            birth_name: col(row, "birth_name")?,
            first_given_name: col(row, "first_given_name")?,
            given_names: col(row, "given_names")?,
            birth_date: birth_date
                .map(|d| PartialDate::parse_iso(&d).map_err(|e| corrupt("birth date", e)))
                .transpose()?,
            sex: sex
                .map(|s| Sex::from_code(&s).map_err(|e| corrupt("sex", e)))
                .transpose()?,
            birthplace_code: col(row, "birthplace_code")?,
        },
        status: IdentityStatus::from_code(&status).map_err(|e| corrupt("status", e))?,
        local_ids: Vec::new(),
        created: from_ms(col(row, "created_ms")?)?,
        updated: from_ms(col(row, "updated_ms")?)?,
    })
}

/// The name key used to find candidates: the normalised birth name.
fn name_key(traits: &IdentityTraits) -> Option<String> {
    traits
        .birth_name
        .as_deref()
        .map(normalize_name)
        .filter(|k| !k.is_empty())
}

/// `LIKE` pattern for "starts with `prefix`", with `\` as the escape character.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Adds a patient. Refused when another patient already has the same matricule or
    /// one of the same local identifiers.
    pub async fn add_patient(&self, patient: &NewPatient, now: OffsetDateTime) -> Result<i64> {
        if let Some(ins) = &patient.ins
            && let Some(existing) = self.patient_by_matricule(&ins.matricule).await?
        {
            return Err(StoreError::Invalid(format!(
                "patient {} already has INS {}",
                existing.id, ins.matricule
            )));
        }
        let mut tx = self.pool.begin().await.map_err(db("adding a patient"))?;
        let t = &patient.traits;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO patients (matricule, ins_oid, birth_name, birth_name_key, first_given_name, \
             given_names, birth_date, birth_year, sex, birthplace_code, identity_status, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        )
        .bind(patient.ins.as_ref().map(|i| i.matricule.as_str().to_owned()))
        .bind(patient.ins.as_ref().map(|i| i.oid()))
        .bind(t.birth_name.as_deref())
        .bind(name_key(t))
        .bind(t.first_given_name.as_deref())
        .bind(t.given_names.as_deref())
        .bind(t.birth_date.map(|d| d.to_string()))
        .bind(t.birth_date.map(|d| i64::from(d.year)))
        .bind(t.sex.map(|s| s.cda_code()))
        .bind(t.birthplace_code.as_deref())
        .bind(patient.status.code())
        .bind(to_ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(db("adding a patient"))?;
        for (system, value) in &patient.local_ids {
            sqlx::query(
                "INSERT INTO patient_local_ids (patient_id, system, value) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(system)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Invalid(format!(
                        "local identifier {value} of {system} already belongs to another patient"
                    ))
                }
                e => db("adding a patient")(e),
            })?;
        }
        tx.commit().await.map_err(db("adding a patient"))?;
        Ok(id)
    }

    /// Changes a patient's INS, traits and status (local identifiers are kept; add more
    /// with [`Store::add_local_id`]).
    pub async fn update_patient(
        &self,
        id: i64,
        patient: &NewPatient,
        now: OffsetDateTime,
    ) -> Result<()> {
        let t = &patient.traits;
        let done = sqlx::query(
            "UPDATE patients SET matricule = $2, ins_oid = $3, birth_name = $4, birth_name_key = $5, \
             first_given_name = $6, given_names = $7, birth_date = $8, birth_year = $9, sex = $10, \
             birthplace_code = $11, identity_status = $12, updated_ms = $13 WHERE id = $1",
        )
        .bind(id)
        .bind(patient.ins.as_ref().map(|i| i.matricule.as_str().to_owned()))
        .bind(patient.ins.as_ref().map(|i| i.oid()))
        .bind(t.birth_name.as_deref())
        .bind(name_key(t))
        .bind(t.first_given_name.as_deref())
        .bind(t.given_names.as_deref())
        .bind(t.birth_date.map(|d| d.to_string()))
        .bind(t.birth_date.map(|d| i64::from(d.year)))
        .bind(t.sex.map(|s| s.cda_code()))
        .bind(t.birthplace_code.as_deref())
        .bind(patient.status.code())
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db("updating a patient"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("patient {id}")));
        }
        Ok(())
    }

    pub async fn add_local_id(&self, patient: i64, system: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO patient_local_ids (patient_id, system, value) VALUES ($1, $2, $3) \
             ON CONFLICT (system, value) DO NOTHING",
        )
        .bind(patient)
        .bind(system)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db("adding a local identifier"))?;
        match self.patient_by_local_id(system, value).await? {
            Some(p) if p.id == patient => Ok(()),
            Some(p) => Err(StoreError::Invalid(format!(
                "local identifier {value} of {system} already belongs to patient {}",
                p.id
            ))),
            None => Err(StoreError::NotFound(format!("patient {patient}"))),
        }
    }

    async fn with_local_ids(&self, mut patient: Patient) -> Result<Patient> {
        let rows = sqlx::query(
            "SELECT system, value FROM patient_local_ids WHERE patient_id = $1 ORDER BY system, value",
        )
        .bind(patient.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading local identifiers"))?;
        patient.local_ids = rows
            .iter()
            .map(|r| Ok((col(r, "system")?, col(r, "value")?)))
            .collect::<Result<_>>()?;
        Ok(patient)
    }

    async fn one_patient(
        &self,
        sql: &'static str,
        bind: PatientKey<'_>,
    ) -> Result<Option<Patient>> {
        let query = sqlx::query(sql);
        let query = match bind {
            PatientKey::Id(id) => query.bind(id),
            PatientKey::Text(a) => query.bind(a.to_owned()),
            PatientKey::Pair(a, b) => query.bind(a.to_owned()).bind(b.to_owned()),
        };
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a patient"))?;
        match row {
            Some(row) => Ok(Some(self.with_local_ids(patient_from(&row)?).await?)),
            None => Ok(None),
        }
    }

    pub async fn patient(&self, id: i64) -> Result<Option<Patient>> {
        const SQL: &str = "SELECT id, matricule, ins_oid, birth_name, first_given_name, given_names, \
            birth_date, sex, birthplace_code, identity_status, created_ms, updated_ms FROM patients WHERE id = $1";
        self.one_patient(SQL, PatientKey::Id(id)).await
    }

    pub async fn patient_by_matricule(&self, matricule: &Matricule) -> Result<Option<Patient>> {
        const SQL: &str = "SELECT id, matricule, ins_oid, birth_name, first_given_name, given_names, \
            birth_date, sex, birthplace_code, identity_status, created_ms, updated_ms FROM patients WHERE matricule = $1";
        self.one_patient(SQL, PatientKey::Text(matricule.as_str()))
            .await
    }

    pub async fn patient_by_local_id(&self, system: &str, value: &str) -> Result<Option<Patient>> {
        const SQL: &str = "SELECT p.id, p.matricule, p.ins_oid, p.birth_name, p.first_given_name, \
            p.given_names, p.birth_date, p.sex, p.birthplace_code, p.identity_status, p.created_ms, \
            p.updated_ms FROM patients p JOIN patient_local_ids l ON l.patient_id = p.id \
            WHERE l.system = $1 AND l.value = $2";
        self.one_patient(SQL, PatientKey::Pair(system, value)).await
    }

    /// Patients ordered by id, a page at a time.
    pub async fn patients(&self, offset: u32, limit: u32) -> Result<Vec<Patient>> {
        let sql = format!("SELECT {COLUMNS} FROM patients ORDER BY id LIMIT $1 OFFSET $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing patients"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.with_local_ids(patient_from(row)?).await?);
        }
        Ok(out)
    }

    /// Patients who may be the one described by `traits`, best first, at most `limit`:
    /// those whose birth name starts like it or who were born the same year, ranked by
    /// [`IdentityTraits::similarity`]. Patients scoring 0 are left out.
    pub async fn candidates(
        &self,
        traits: &IdentityTraits,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let prefix: Option<String> =
            name_key(traits).map(|k| like_prefix(&k.chars().take(2).collect::<String>()));
        let year = traits.birth_date.map(|d| i64::from(d.year));
        if prefix.is_none() && year.is_none() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE birth_name_key LIKE $1 ESCAPE '\\' OR birth_year = $2 \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix)
            .bind(year)
            .bind(CANDIDATE_POOL)
            .fetch_all(&self.pool)
            .await
            .map_err(db("searching candidate patients"))?;
        let mut scored: Vec<(f64, Patient)> = rows
            .iter()
            .map(|row| {
                let p = patient_from(row)?;
                Ok((traits.similarity(&p.traits), p))
            })
            .collect::<Result<_>>()?;
        scored.retain(|(score, _)| *score > 0.0);
        // Best score first; equal scores by id, so the order is stable.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        scored.truncate(limit);
        let mut out = Vec::with_capacity(scored.len());
        for (score, p) in scored {
            out.push(Candidate {
                patient: self.with_local_ids(p).await?,
                score,
            });
        }
        Ok(out)
    }
}

enum PatientKey<'a> {
    Id(i64),
    Text(&'a str),
    Pair(&'a str, &'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("DU"), "DU%");
        assert_eq!(like_prefix("5%_\\"), "5\\%\\_\\\\%");
    }
}
