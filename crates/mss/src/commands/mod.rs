//! One module per command family; each turns parsed arguments into output.

mod cda;
mod compose;
mod xdm;

use crate::cli::{Cli, Command};
use anyhow::Result;
use std::io::Write;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Cda(command) => cda::run(command),
        Command::Xdm(command) => xdm::run(command),
        Command::Compose(args) => compose::run(*args),
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
