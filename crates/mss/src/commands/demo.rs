//! `mss demo`: the sandbox and mss in one process. Demo patients go into mss's store,
//! other professionals' mails go through the sandbox operators to the application mailbox
//! mss reads, the engine files them, and the worklist is shown with what to try next.
//! Everything lives under one directory (default `./mss-demo`), reused at the next start.

mod mails;

use super::inbox::{now_local, open_store, print_worklist, runtime};
use super::run::run_mailboxes;
use crate::cli::DemoArgs;
use crate::config::Config;
use anyhow::{Context, Result, anyhow};
use mss_model::{IdentityStatus, IdentityTraits, Ins, Matricule, PartialDate, Sex};
use mss_sandbox::identities::Patient;
use mss_sandbox::{Sandbox, SandboxInfo, SandboxOptions};
use mss_store::{NewPatient, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long after the worklist the follow mode's extra mail arrives.
const LATE_MAIL_AFTER: Duration = Duration::from_secs(3);

pub fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    runtime()?.block_on(async {
        let dir = &args.dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the demo directory {}", dir.display()))?;
        let mut options = SandboxOptions::new(&dir.join("sandbox"));
        options.port_base = args.port_base;
        let sandbox = Sandbox::start(options).await?;
        let config_path = write_config(dir, &sandbox.info)?;
        let config = Config::load(&config_path)?;

        let store = open_store(&config).await?;
        let added = add_patients(&store, &sandbox.info.patients).await;
        store.close().await;
        let added = added?;

        let now = crate::clock::unix_seconds();
        let delivered = mails::deliver_all(&sandbox, now).await?;
        let new = delivered.iter().filter(|d| d.new).count();
        println!(
            "Démo MSSanté / MSSanté demo — {} ({} patient(s) ajouté(s) / added, {new} courrier(s) livré(s) / mail delivered)",
            dir.display(),
            added
        );
        for d in &delivered {
            println!(
                "  {} {}",
                if d.new { "→" } else { "=" },
                d.what
            );
        }
        println!("\nmss lit / reads {} :", mails::DPI);
        run_mailboxes(&config, true, false, async {}).await?;

        println!("\nListe de travail / worklist:");
        let store = open_store(&config).await?;
        let shown = print_worklist(&store, false, 200).await;
        store.close().await;
        shown?;
        print!("{}", guide(dir, &config_path, &sandbox, args.once, started));
        use std::io::Write;
        std::io::stdout().flush().ok();
        if args.once {
            return Ok(());
        }

        let follow = run_mailboxes(&config, false, false, async {
            stopped().await;
        });
        tokio::pin!(follow);
        let late = async {
            tokio::time::sleep(LATE_MAIL_AFTER).await;
            match mails::deliver_late(&sandbox, crate::clock::unix_seconds()).await {
                Ok(d) if d.new => println!("Nouveau courrier / new mail: {}", d.what),
                Ok(_) => {}
                Err(e) => eprintln!("mss: warning: {e:#}"),
            }
            std::io::stdout().flush().ok();
            std::future::pending::<()>().await
        };
        tokio::select! {
            ended = &mut follow => ended?,
            _ = late => {}
        }
        println!("mss: démo arrêtée / demo stopped");
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn relative(path: &Path, base: &Path) -> String {
    quoted(&path.strip_prefix(base).unwrap_or(path).to_string_lossy())
}

/// `<dir>/mss.toml`: mss reads the application mailbox only (certificate, no login to
/// approve). Rewritten at each start, since the sandbox's ports change.
fn write_config(dir: &Path, info: &SandboxInfo) -> Result<PathBuf> {
    let base = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve the demo directory {}", dir.display()))?;
    let app = info
        .bals
        .iter()
        .find(|b| b.address.eq_ignore_ascii_case(mails::DPI))
        .ok_or_else(|| anyhow!("the sandbox has no application mailbox {}", mails::DPI))?;
    let (Some(cert), Some(key)) = (&app.cert_pem, &app.key_pem) else {
        return Err(anyhow!("the sandbox gave {} no certificate", mails::DPI));
    };
    let text = format!(
        "# Written by `mss demo` at each start (the sandbox's ports change): edit a copy.\n\
         [software]\n\
         nil = \"MSS-DEMO\"\n\
         test_identities = true\n\
         data_dir = \"mss-data\"\n\n\
         [tls]\n\
         anchors = [{anchor}]\n\n\
         [autoconfig]\n\
         trusted_domains = [{domain}, \"localhost\"]\n\
         xml_urls = [{xml}]\n\n\
         [[bal]]\n\
         address = {address}\n\
         kind = \"app\"\n\
         client_cert = {cert}\n\
         client_key = {key}\n",
        anchor = relative(&info.ca_pem, &base),
        domain = quoted(&info.domain),
        xml = quoted(&info.autoconfig),
        address = quoted(&app.address),
        cert = relative(cert, &base),
        key = relative(key, &base),
    );
    let path = dir.join("mss.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The sandbox's test patients with qualified identities, and PAT-TROIS DOMINIQUE as a
/// validated (not qualified) one; those already in the store are left as they are.
async fn add_patients(store: &Store, sandbox_patients: &[Patient]) -> Result<usize> {
    let pat_trois = mails::pat_trois();
    let all = sandbox_patients
        .iter()
        .map(|p| (p, IdentityStatus::Qual))
        .chain(std::iter::once((&pat_trois, IdentityStatus::Vali)));
    let mut added = 0;
    for (i, (p, status)) in all.enumerate() {
        let matricule = Matricule::parse(&p.matricule).map_err(|e| anyhow!("{e}"))?;
        if store.patient_by_matricule(&matricule).await?.is_some() {
            continue;
        }
        let upper = |s: &str| s.trim().to_uppercase();
        let patient = NewPatient {
            ins: Some(Ins::new(&p.matricule, &p.oid).map_err(|e| anyhow!("{e}"))?),
            traits: IdentityTraits {
                birth_name: Some(upper(&p.family_name)),
                first_given_name: Some(upper(&p.given_name)),
                given_names: Some(upper(&p.given_name)),
                birth_date: Some(
                    PartialDate::parse_iso(&p.birth_date).map_err(|e| anyhow!("{e}"))?,
                ),
                sex: Some(Sex::from_code(&p.sex).map_err(|e| anyhow!("{e}"))?),
                birthplace_code: Some(p.birthplace_code.clone()),
            },
            status,
            local_ids: vec![("local".into(), format!("IPP-DEMO-{}", i + 1))],
        };
        store.add_patient(&patient, now_local()).await?;
        added += 1;
    }
    Ok(added)
}

fn guide(dir: &Path, config: &Path, sandbox: &Sandbox, once: bool, started: Instant) -> String {
    let i = &sandbox.info;
    let c = config.display();
    let durand = i.patients.first().map_or("", |p| p.matricule.as_str());
    let mut out = format!(
        "\nÀ essayer dans un autre terminal / try next in another terminal:\n\
         \x20 mss --config {c} inbox                      # la liste de travail / the worklist\n\
         \x20 mss --config {c} inbox --json --open        # ce qui attend une personne / what waits for a person\n\
         \x20 mss --config {c} documents --matricule {durand}   # versions 1 et 2 / both versions\n\
         \x20 mss --config {c} attach <item> --patient 279035121518989   # rattacher la proposition / attach the proposal\n\
         \x20 mss --config {c} delete-document <item> --confirm   # confirmer la suppression / confirm the deletion\n\
         \x20 mss --config {c} patient list\n\
         \x20 mss --config {c} trace verify               # le journal est intact / the journal is intact\n\
         Bac à sable / sandbox: {sdir} (sandbox.json, mss.toml for the professionals' mailboxes)\n\
         \x20 Pro Santé Connect {psc}   IMAP {imap}   SMTP {smtp}   second opérateur IMAP {imap2} SMTP {smtp2}\n\
         Prêt en / ready in {ms} ms.\n",
        sdir = dir.join("sandbox").display(),
        psc = i.psc.issuer,
        imap = i.imap,
        smtp = i.smtp,
        imap2 = i.second_operator.imap,
        smtp2 = i.second_operator.smtp,
        ms = started.elapsed().as_millis(),
    );
    if !once {
        out.push_str(
            "mss suit la BAL (IDLE) : les nouveaux courriers s'affichent ici ; Ctrl-C pour arrêter.\n\
             mss follows the mailbox (IDLE): new mail is printed here; Ctrl-C to stop.\n",
        );
    }
    out
}
