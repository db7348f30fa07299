//! `mss`: the MSSanté connector's command line.
//!
//! Every command prints JSON (or writes a file) on success, and one line on
//! stderr with a non-zero exit on failure — never a panic or a backtrace.

#![forbid(unsafe_code)]

mod cli;
mod clock;
mod commands;
mod config;
mod input;
mod operator;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("mss: internal error ({info}); please report it");
    }));
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mss: {err:#}");
            // Not sent yet but safely queued: a caller may tell this from a failure.
            if err.downcast_ref::<commands::Queued>().is_some() {
                ExitCode::from(commands::Queued::EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
