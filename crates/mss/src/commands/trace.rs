//! `mss trace verify|list`: the hash-chained journal of the store.

use super::inbox::{open_store, runtime};
use super::print_json;
use crate::cli::{TraceCommand, TraceListArgs};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use mss_store::TraceFilter;
use std::path::Path;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn instant(flag: &str, text: &Option<String>) -> Result<Option<OffsetDateTime>> {
    text.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t.trim(), &Rfc3339).with_context(|| {
                format!("{flag} {t:?} is not an RFC 3339 instant (2026-11-26T00:00:00+01:00)")
            })
        })
        .transpose()
}

pub fn run(config: &Path, command: TraceCommand) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let result = match command {
            TraceCommand::Verify { json } => {
                let report = store.verify_traces().await?;
                if json {
                    print_json(&report)?;
                } else if report.is_intact() {
                    println!(
                        "traces intact: {} entries ({}..{}), head {}",
                        report.entries, report.first_seq, report.last_seq, report.head_hash
                    );
                }
                match &report.broken {
                    Some(broken) => bail!(
                        "the trace journal is broken at {broken}: it was changed outside mss; keep the database for investigation and restore from a backup"
                    ),
                    None => Ok(()),
                }
            }
            TraceCommand::List(args) => list(&store, args).await,
        };
        store.close().await;
        result
    })
}

async fn list(store: &mss_store::Store, args: TraceListArgs) -> Result<()> {
    let filter = TraceFilter {
        mailbox: args.mailbox.clone(),
        patient: args.patient.clone(),
        document: args.document.clone(),
        since: instant("--since", &args.since)?,
        until: instant("--until", &args.until)?,
        after_seq: None,
        limit: Some(args.limit),
    };
    let entries = store.list_traces(&filter).await?;
    if args.json {
        return print_json(&entries);
    }
    for e in &entries {
        println!(
            "{:>6}  {}  {}  {}  {}  {}",
            e.seq,
            e.at,
            e.author,
            e.action,
            e.outcome,
            e.request.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
