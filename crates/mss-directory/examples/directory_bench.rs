//! The directory benchmark without the CLI: import files, or run a query
//! file and print latency percentiles and memory (what `mss directory
//! import` and `mss directory search --batch` do, minus the output).
//!
//! cargo run --release -p mss-directory --example directory_bench -- import DIR FILE...
//! cargo run --release -p mss-directory --example directory_bench -- batch DIR QUERIES [--print]

use mss_directory::{Directory, Filters, ImportOptions, import};
use std::io::BufRead;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("import") if args.len() >= 3 => {
            let files: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            // Tuning knobs for experiments; the defaults are what the CLI uses.
            let mut opts = ImportOptions::default();
            let env = |name: &str| {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
            };
            if let Some(v) = env("MSS_IMPORT_THREADS") {
                opts.threads = v;
            }
            if let Some(v) = env("MSS_IMPORT_MEMORY_MB") {
                opts.memory_bytes = v << 20;
            }
            if let Some(v) = env("MSS_IMPORT_MAX_SEGMENTS") {
                opts.max_segments = v;
            }
            match import(Path::new(&args[1]), &files, &opts, &mut |_| {}) {
                Ok(s) => println!("{}", serde_json::to_string(&s).unwrap_or_default()),
                Err(e) => fail(&e.to_string()),
            }
        }
        Some("batch") if args.len() >= 3 => {
            let dir = Directory::open(Path::new(&args[1])).unwrap_or_else(|e| fail(&e.to_string()));
            let file = std::fs::File::open(&args[2]).unwrap_or_else(|e| fail(&e.to_string()));
            let print = args.iter().any(|a| a == "--print");
            let mut times = Vec::new();
            for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                let r = dir
                    .search(&line, &Filters::default(), 10)
                    .unwrap_or_else(|e| fail(&e.to_string()));
                if print {
                    println!(
                        "{}\t{}\t{}\t{}",
                        r.took_us,
                        r.hits.len(),
                        r.all_words,
                        r.query
                    );
                }
                times.push(r.took_us);
            }
            times.sort_unstable();
            let q = |p: f64| {
                times
                    .get(((times.len() as f64 - 1.0) * p).round() as usize)
                    .copied()
                    .unwrap_or(0)
            };
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let mem: Vec<&str> = status
                .lines()
                .filter(|l| {
                    l.starts_with("VmRSS")
                        || l.starts_with("VmHWM")
                        || l.starts_with("RssAnon")
                        || l.starts_with("RssFile")
                })
                .collect();
            eprintln!(
                "{} queries: p50 {} us, p90 {} us, p99 {} us, max {} us; {}",
                times.len(),
                q(0.5),
                q(0.9),
                q(0.99),
                times.last().copied().unwrap_or(0),
                mem.join(", ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        _ => fail("usage: directory_bench import DIR FILE... | batch DIR QUERIES [--print]"),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("directory_bench: {msg}");
    std::process::exit(2)
}
