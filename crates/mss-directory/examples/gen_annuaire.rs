//! Writes synthetic Annuaire Santé extraction files in the published format.
//!
//! cargo run --release -p mss-directory --example gen_annuaire -- --out DIR [--people N|full]
//!     [--seed S] [--queries N] [--bom] [--crlf] [--old-header] [--stray-bytes]

use mss_directory::synth::{FULL_PEOPLE, Options, write_dir};
use std::path::PathBuf;

fn main() {
    let mut opts = Options::default();
    let mut out = PathBuf::from("annuaire-synth");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--out" => out = PathBuf::from(value()),
            "--people" => {
                let v = value();
                opts.people = if v == "full" {
                    FULL_PEOPLE
                } else {
                    v.parse()
                        .unwrap_or_else(|_| fail("--people: a number or full"))
                };
            }
            "--seed" => opts.seed = value().parse().unwrap_or_else(|_| fail("--seed: a number")),
            "--queries" => {
                opts.queries = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--queries: a number"))
            }
            "--bom" => opts.bom = true,
            "--crlf" => opts.crlf = true,
            "--old-header" => opts.old_header = true,
            "--stray-bytes" => opts.stray_bytes = true,
            _ => fail(&format!("unknown argument {a}")),
        }
    }
    let started = std::time::Instant::now();
    match write_dir(&out, &opts, "202611250000") {
        Ok((paths, stats)) => {
            for p in paths {
                println!("{}", p.display());
            }
            eprintln!(
                "{} in {:.1} s",
                serde_json::to_string(&stats).unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => fail(&format!("{}: {e}", out.display())),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("gen_annuaire: {msg}");
    std::process::exit(2)
}
