//! `mss patient add|list`: the patients documents are filed for.

use super::inbox::{now_local, open_store, runtime};
use super::print_json;
use crate::cli::{PatientAddArgs, PatientCommand};
use crate::config::Config;
use anyhow::{Result, anyhow};
use mss_model::{IdentityStatus, IdentityTraits, Ins, PartialDate, Sex};
use mss_store::NewPatient;
use serde::Serialize;
use std::path::Path;

/// System name of `--local-id` identifiers (the host software's IPP).
pub const LOCAL_ID_SYSTEM: &str = "local";

#[derive(Serialize)]
struct PatientJson {
    id: i64,
    matricule: Option<String>,
    oid: Option<String>,
    birth_name: Option<String>,
    first_given_name: Option<String>,
    given_names: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    birthplace: Option<String>,
    status: String,
    local_ids: Vec<String>,
}

fn status_code(status: IdentityStatus) -> String {
    format!("{status:?}").to_uppercase()
}

fn json(p: &mss_store::Patient) -> PatientJson {
    let t = &p.traits;
    PatientJson {
        id: p.id,
        matricule: p.ins.as_ref().map(|i| i.matricule.to_string()),
        oid: p.ins.as_ref().map(|i| i.oid().to_owned()),
        birth_name: t.birth_name.clone(),
        first_given_name: t.first_given_name.clone(),
        given_names: t.given_names.clone(),
        birth_date: t.birth_date.map(|d| d.to_string()),
        sex: t.sex.map(|s| format!("{s:?}")),
        birthplace: t.birthplace_code.clone(),
        status: status_code(p.status),
        local_ids: p.local_ids.iter().map(|(_, v)| v.clone()).collect(),
    }
}

fn new_patient(args: &PatientAddArgs) -> Result<NewPatient> {
    let ins = match (&args.matricule, &args.oid) {
        (Some(m), Some(o)) => Some(Ins::new(m, o).map_err(|e| anyhow!("--matricule/--oid: {e}"))?),
        (None, None) => None,
        _ => anyhow::bail!("give --matricule and --oid together"),
    };
    let birth_date =
        PartialDate::parse_iso(&args.birth_date).map_err(|e| anyhow!("--birth-date: {e}"))?;
    let sex = Sex::from_code(&args.sex).map_err(|e| anyhow!("--sex: {e}"))?;
    let status = IdentityStatus::from_code(&args.status).map_err(|e| anyhow!("--status: {e}"))?;
    let upper = |s: &str| s.trim().to_uppercase();
    Ok(NewPatient {
        ins,
        traits: IdentityTraits {
            birth_name: Some(upper(&args.birth_name)),
            first_given_name: Some(upper(&args.first_given_name)),
            given_names: Some(
                args.given_names
                    .as_deref()
                    .map(upper)
                    .unwrap_or_else(|| upper(&args.first_given_name)),
            ),
            birth_date: Some(birth_date),
            sex: Some(sex),
            birthplace_code: args.birthplace.clone(),
        },
        status,
        local_ids: args
            .local_id
            .iter()
            .map(|v| (LOCAL_ID_SYSTEM.to_owned(), v.clone()))
            .collect(),
    })
}

pub fn run(config: &Path, command: PatientCommand) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let result = match command {
            PatientCommand::Add(args) => {
                let patient = new_patient(&args)?;
                let id = store.add_patient(&patient, now_local()).await?;
                let stored = store
                    .patient(id)
                    .await?
                    .ok_or_else(|| anyhow!("patient {id} vanished after being added"))?;
                if args.json {
                    print_json(&json(&stored))
                } else {
                    println!("patient {id} added");
                    Ok(())
                }
            }
            PatientCommand::List { json: as_json } => {
                let mut all = Vec::new();
                let mut offset = 0;
                loop {
                    let page = store.patients(offset, 500).await?;
                    let n = page.len() as u32;
                    all.extend(page);
                    if n < 500 {
                        break;
                    }
                    offset += n;
                }
                let rows: Vec<PatientJson> = all.iter().map(json).collect();
                if as_json {
                    print_json(&rows)
                } else {
                    for p in &rows {
                        println!(
                            "{:>5}  {}  {} {}  {}  {}",
                            p.id,
                            p.matricule.as_deref().unwrap_or("-"),
                            p.birth_name.as_deref().unwrap_or(""),
                            p.first_given_name.as_deref().unwrap_or(""),
                            p.birth_date.as_deref().unwrap_or(""),
                            p.status
                        );
                    }
                    Ok(())
                }
            }
        };
        store.close().await;
        result
    })
}
