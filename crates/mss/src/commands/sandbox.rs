//! `mss sandbox`: the local trust space in one command (docs/sandbox.md).

use crate::cli::SandboxArgs;
use anyhow::{Context, Result};
use mss_sandbox::{Sandbox, SandboxOptions};

pub fn run(args: SandboxArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut options = SandboxOptions::new(&args.dir);
        options.port_base = args.port_base;
        let sandbox = Sandbox::start(options).await?;
        print!("{}", sandbox.summary());
        use std::io::Write;
        std::io::stdout().flush().ok();
        stopped().await?;
        eprintln!("mss: sandbox stopped / bac à sable arrêté");
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn stopped() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
