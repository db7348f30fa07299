//! `mss directory …`: import the Annuaire Santé extraction files, search
//! them offline, show one entry, keep patients' care teams.

use super::print_json;
use crate::cli::{CareTeamCommand, DataDirArg, DirectoryCommand, DirectorySearchArgs};
use anyhow::{Context, Result};
use mss_directory::care_team::CareTeams;
use mss_directory::{Directory, Filters, ImportOptions, Progress, SearchResult};
use mss_model::Matricule;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

fn dir_of(data: &DataDirArg) -> PathBuf {
    data.data_dir.join("directory")
}

pub fn run(command: DirectoryCommand) -> Result<()> {
    match command {
        DirectoryCommand::Import(args) => {
            let mut opts = ImportOptions::default();
            if let Some(t) = args.threads {
                opts.threads = t.clamp(1, 16);
            }
            let tty = std::io::stderr().is_terminal();
            let started = Instant::now();
            let mut bar = |p: &Progress| {
                if tty {
                    let pct = p
                        .bytes
                        .saturating_mul(100)
                        .checked_div(p.total)
                        .unwrap_or(0);
                    let name = p.file.rsplit('/').next().unwrap_or(&p.file);
                    eprint!(
                        "\r\x1b[2K{name}: {pct:>3} % — {} lignes — {:.0} s",
                        p.rows,
                        started.elapsed().as_secs_f64()
                    );
                }
            };
            let summary = mss_directory::import(&dir_of(&args.data), &args.files, &opts, &mut bar)?;
            if tty {
                eprintln!();
            }
            for f in &summary.files {
                eprintln!(
                    "{}: {:?}, {} lignes, {} ignorées, {} recodées (Windows-1252)",
                    f.name, f.kind, f.rows, f.skipped, f.recoded
                );
            }
            println!(
                "Import terminé : {} lignes, {} personnes, {} structures, {} BAL, index {:.0} Mo, {:.1} s",
                summary.rows,
                summary.people,
                summary.structures,
                summary.mailboxes,
                summary.index_bytes as f64 / 1e6,
                summary.seconds
            );
            Ok(())
        }
        DirectoryCommand::Search(args) => search(args),
        DirectoryCommand::Show(args) => {
            let dir = Directory::open(&dir_of(&args.data))?;
            let Some(detail) = dir.show(&args.id)? else {
                anyhow::bail!(
                    "{} is not in the directory; check the number, or search by name",
                    args.id
                );
            };
            if args.json {
                return print_json(&detail);
            }
            let mut out = std::io::stdout().lock();
            let mut text = format!("Identifiant : {}\n", detail.id);
            for r in &detail.records {
                text.push_str(&format!("\n[{}]\n", r.source));
                for (k, v) in &r.fields.0 {
                    text.push_str(&format!("  {k} : {v}\n"));
                }
            }
            write_out(&mut out, &text)
        }
        DirectoryCommand::Info(data) => {
            let dir = Directory::open(&dir_of(&data))?;
            print_json(&serde_json::json!({
                "index": dir.index_dir(),
                "import": dir.info(),
            }))
        }
        DirectoryCommand::CareTeam(c) => care_team(c),
    }
}

fn filters(args: &DirectorySearchArgs) -> Filters {
    Filters {
        postcode: args.cp.clone(),
        departement: args.dep.clone(),
        profession: args.profession.clone(),
        specialty: args.specialite.clone(),
        mailbox_type: args.type_bal.clone(),
        city: args.ville.clone(),
    }
}

fn search(args: DirectorySearchArgs) -> Result<()> {
    let dir = Directory::open(&dir_of(&args.data))?;
    let filters = filters(&args);
    if let Some(batch) = &args.batch {
        let file = std::fs::File::open(batch)
            .with_context(|| format!("{}: cannot open the query file", batch.display()))?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut times = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line =
                line.with_context(|| format!("{}: not a UTF-8 text file", batch.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let r = dir.search(&line, &filters, args.limit)?;
            times.push(r.took_us);
            let compact = serde_json::json!({
                "query": r.query, "took_us": r.took_us, "all_words": r.all_words, "hits": r.hits,
            });
            match writeln!(out, "{compact}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other?,
            }
        }
        out.flush().ok();
        times.sort_unstable();
        let q = |p: f64| {
            times
                .get(((times.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        eprintln!(
            "{} requêtes : p50 {} µs, p90 {} µs, p99 {} µs, max {} µs, mémoire {}",
            times.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            times.last().copied().unwrap_or(0),
            memory()
        );
        return Ok(());
    }
    let r = dir.search(&args.query.join(" "), &filters, args.limit)?;
    if args.json {
        return print_json(&r);
    }
    write_out(&mut std::io::stdout().lock(), &render(&r))
}

fn render(r: &SearchResult) -> String {
    let mut s = String::new();
    if r.hits.is_empty() {
        s.push_str("Aucun résultat.\n");
    } else if !r.all_words {
        s.push_str("Aucun résultat ne contient tous les mots ; résultats les plus proches :\n");
    }
    for (i, h) in r.hits.iter().enumerate() {
        let mut what = vec![h.profession.clone()];
        what.extend(h.specialites.iter().cloned());
        what.retain(|w| !w.is_empty());
        s.push_str(&format!(
            "{}. {} — {} [{}]\n",
            i + 1,
            h.nom,
            what.join(", "),
            h.id
        ));
        for b in &h.bal {
            let at = if b.service.is_empty() {
                String::new()
            } else {
                format!(", {}", b.service)
            };
            s.push_str(&format!("   BAL {} : {}{at}\n", b.type_bal, b.adresse));
        }
        for site in &h.sites {
            let tel = if site.telephone.is_empty() {
                String::new()
            } else {
                format!(", tél. {}", site.telephone)
            };
            s.push_str(&format!(
                "   {} — {}, {} {}{tel}\n",
                site.nom, site.adresse, site.code_postal, site.commune
            ));
        }
    }
    s.push_str(&format!("({} µs)\n", r.took_us));
    s
}

fn write_out(out: &mut impl Write, text: &str) -> Result<()> {
    match out.write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Resident and peak memory of this process (Linux), for benchmarks.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "VmRSS {}, VmHWM {}, RssAnon {}",
        get("VmRSS:"),
        get("VmHWM:"),
        get("RssAnon:")
    )
}

fn care_team(c: CareTeamCommand) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match c {
        CareTeamCommand::Add {
            data,
            ins,
            id,
            role,
        } => {
            let ins = Matricule::parse(&ins)?;
            let mut teams = CareTeams::load(&dir_of(&data))?;
            let changed = teams.add(&ins, &id, role.as_deref(), now)?;
            println!(
                "{}",
                if changed {
                    "Ajouté à l'équipe de soins."
                } else {
                    "Déjà dans l'équipe de soins."
                }
            );
            Ok(())
        }
        CareTeamCommand::Remove { data, ins, id } => {
            let ins = Matricule::parse(&ins)?;
            let mut teams = CareTeams::load(&dir_of(&data))?;
            let changed = teams.remove(&ins, &id)?;
            println!(
                "{}",
                if changed {
                    "Retiré de l'équipe de soins."
                } else {
                    "Absent de l'équipe de soins."
                }
            );
            Ok(())
        }
        CareTeamCommand::List { data, ins, json } => {
            let ins = Matricule::parse(&ins)?;
            let teams = CareTeams::load(&dir_of(&data))?;
            let list = teams.list(&ins);
            if json {
                return print_json(&list);
            }
            let mut s = String::new();
            if list.is_empty() {
                s.push_str("Équipe de soins vide.\n");
            }
            for m in list {
                s.push_str(&format!(
                    "{}{}\n",
                    m.id,
                    m.role
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
            write_out(&mut std::io::stdout().lock(), &s)
        }
    }
}
