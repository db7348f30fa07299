//! CDA header reading speed.
//!
//! - `cda_header/fixture_mix`: every CDA of `../shared/fixtures/ans/{cda,hl7v2}`
//!   (or the repository's own fixtures when `../shared` is absent), one
//!   element per document;
//! - `cda_header/quick_xml_to_component`: the floor, quick-xml alone
//!   tokenizing the same documents up to the top-level `component`, keeping
//!   nothing;
//! - `cda_header/roxmltree_full_parse`: the naive way, a DOM of the whole
//!   document (body included);
//! - `cda_header/n1_plain` vs `cda_header/n1_20mb_pdf`: the same level-1 CDA
//!   with a tiny and with a ~20 MB base64 PDF body, built in memory. Reading
//!   the header must cost about the same.
//!
//! `cargo bench -p mss-docs --bench cda -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mss_docs::cda::parse_header;
use quick_xml::events::Event;

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            xml_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            out.push(path);
        }
    }
}

/// The documents that read as CDA (the XSL wrappers are left out).
fn fixture_mix() -> Vec<Vec<u8>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/fixtures/ans");
    let mut paths = Vec::new();
    if shared.is_dir() {
        xml_files(&shared.join("cda"), &mut paths);
        xml_files(&shared.join("hl7v2"), &mut paths);
    } else {
        eprintln!("../shared not present: benchmarking the repository's own fixtures");
        xml_files(&manifest.join("tests/fixtures/cda"), &mut paths);
    }
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|bytes| parse_header(bytes).is_ok())
        .collect()
}

/// Tokenizes `doc` up to the start of the depth-1 `component`; returns
/// where it stopped.
fn quick_xml_to_component(doc: &[u8]) -> u64 {
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut depth = 0u32;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                depth += 1;
                if depth == 2 && start.local_name().as_ref() == b"component" {
                    break;
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    reader.buffer_position()
}

/// A DOM of the whole document; returns its node count.
fn roxmltree_full_parse(doc: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(doc) else {
        return 0;
    };
    let text = text.trim_start_matches('\u{feff}');
    roxmltree::Document::parse(text).map_or(0, |d| d.descendants().count())
}

const N1: &str = include_str!("../tests/fixtures/cda/n1_pdf.xml");

/// The own level-1 fixture with its PDF replaced by `size` bytes of base64.
fn n1_with_pdf(size: usize) -> Vec<u8> {
    let start = N1.find("representation=\"B64\">").unwrap() + "representation=\"B64\">".len();
    let end = N1[start..].find("</text>").unwrap() + start;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut doc = Vec::with_capacity(N1.len() + size + size / 76);
    doc.extend_from_slice(&N1.as_bytes()[..start]);
    for i in 0..size {
        doc.push(alphabet[(i * 7 + i / 13) % 64]);
        if i % 76 == 75 {
            doc.push(b'\n');
        }
    }
    doc.extend_from_slice(&N1.as_bytes()[end..]);
    doc
}

fn bench(c: &mut Criterion) {
    let docs = fixture_mix();
    let mut group = c.benchmark_group("cda_header");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("fixture_mix", |b| {
        b.iter(|| {
            for doc in &docs {
                black_box(parse_header(black_box(doc)).ok());
            }
        })
    });
    group.bench_function("quick_xml_to_component", |b| {
        b.iter(|| {
            for doc in &docs {
                black_box(quick_xml_to_component(black_box(doc)));
            }
        })
    });
    group.bench_function("roxmltree_full_parse", |b| {
        b.iter(|| {
            for doc in &docs {
                black_box(roxmltree_full_parse(black_box(doc)));
            }
        })
    });

    let plain = n1_with_pdf(1024);
    let big = n1_with_pdf(20 * 1024 * 1024);
    assert_eq!(parse_header(&plain).unwrap(), parse_header(&big).unwrap());
    group.throughput(Throughput::Elements(1));
    group.bench_function("n1_plain", |b| b.iter(|| parse_header(black_box(&plain))));
    group.bench_function("n1_20mb_pdf", |b| b.iter(|| parse_header(black_box(&big))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
