//! One module per command family; each turns parsed arguments into output.

mod cda;
mod compose;
mod conformance;
mod demo;
mod directory;
mod inbox;
mod outbox;
mod patient;
mod run;
mod sandbox;
mod trace;
mod transport;
mod xdm;

use crate::cli::{Cli, Command};
use anyhow::Result;
pub use outbox::Queued;
use std::io::Write;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Cda(command) => cda::run(command),
        Command::Xdm(command) => xdm::run(command),
        Command::Compose(args) => compose::run(*args),
        Command::Login(args) => transport::login(&cli.config, args),
        Command::Send(args) => transport::send(&cli.config, *args),
        Command::Sync(args) => transport::sync(&cli.config, args),
        Command::Autoconfig(args) => transport::autoconfig(&cli.config, args),
        Command::Directory(command) => directory::run(command),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Patient(command) => patient::run(&cli.config, command),
        Command::Run(args) => run::run(&cli.config, args),
        Command::Inbox(args) => inbox::inbox(&cli.config, args),
        Command::Documents(args) => inbox::documents(&cli.config, args),
        Command::Attach(args) => inbox::attach(&cli.config, args),
        Command::DeleteDocument(args) => inbox::delete_document(&cli.config, args),
        Command::ImportXdm(args) => inbox::import_xdm(&cli.config, args),
        Command::Acknowledge(args) => inbox::acknowledge(&cli.config, args),
        Command::Outbox(args) => outbox::run(&cli.config, args),
        Command::Trace(command) => trace::run(&cli.config, command),
    }
}

/// Prints `value` as pretty JSON on stdout. A reader that stops early
/// (`mss … | head`) is not an error.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out));
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
