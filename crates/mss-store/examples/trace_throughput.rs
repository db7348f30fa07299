//! Measures the trace journal: appends N entries one by one (each its own locked
//! transaction, as in production), then verifies the whole chain.
//!
//! `cargo run --release -p mss-store --example trace_throughput -- sqlite:/tmp/t.db 10000`

use mss_store::{NewTrace, Store};
use std::time::Instant;
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: trace_throughput URL [COUNT]")?;
    let count: u32 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let store = Store::open(&url).await?;
    let started = Instant::now();
    for i in 0..count {
        let request = format!("UID FETCH {i} (BODY.PEEK[])");
        store
            .append_trace(&NewTrace {
                at: OffsetDateTime::now_utc(),
                author: "bench@hopital.mssante.fr",
                action: "imap.fetch",
                mailbox: Some("bench@hopital.mssante.fr"),
                patient: None,
                document: None,
                message: None,
                request: Some(&request),
                response: Some("OK Fetch completed"),
                outcome: "ok",
            })
            .await?;
    }
    let append = started.elapsed();
    let started = Instant::now();
    let report = store.verify_traces().await?;
    let verify = started.elapsed();
    println!(
        "{count} appends in {:.2} s ({:.0}/s); verify of {} entries in {:.2} s ({:.0}/s), intact: {}",
        append.as_secs_f64(),
        f64::from(count) / append.as_secs_f64(),
        report.entries,
        verify.as_secs_f64(),
        report.entries as f64 / verify.as_secs_f64(),
        report.is_intact()
    );
    Ok(())
}
