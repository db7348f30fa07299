//! XDM package reading and writing speed.
//!
//! The package is built in memory from the ANS CDA examples of
//! `../shared/fixtures/ans/cda` for the test patient (generated CDAs when
//! `../shared` is absent), adding documents until the zip weighs ~250 KB.
//!
//! - `xdm/read_250kb`: `xdm::read` of that package (unzip, limits, METADATA,
//!   SHA-1 of every document, every CDA header);
//! - `xdm/unzip_only_250kb`: baseline, inflating every entry and nothing else;
//! - `xdm/write_250kb`: `xdm::write` of the same documents.
//!
//! `cargo bench -p mss-docs --bench xdm -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mss_docs::cda::{CdaHeader, Coded, parse_header};
use mss_docs::xdm::{self, Limits, PackRequest, SubmissionTime, XdmInput};

const TARGET: usize = 250 * 1024;

fn class() -> Coded {
    Coded {
        code: "10".into(),
        system: Some("1.2.250.1.213.1.1.4.1".into()),
        display: Some("Compte rendu".into()),
    }
}

fn request() -> PackRequest {
    PackRequest::new(
        SubmissionTime::parse("20240401120000").expect("valid time"),
        "1.2.250.1.999.9",
    )
}

fn pack(docs: &[(Vec<u8>, CdaHeader)], class: &Coded) -> Vec<u8> {
    let inputs: Vec<XdmInput> = docs
        .iter()
        .map(|(bytes, header)| XdmInput {
            class_code: Some(class),
            ..XdmInput::new(bytes, header)
        })
        .collect();
    xdm::write(&inputs, &request()).expect("package builds")
}

/// ANS examples for the INS test patient, distinct ids.
fn shared_documents() -> Vec<(Vec<u8>, CdaHeader)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ans/cda");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut docs: Vec<(Vec<u8>, CdaHeader)> = Vec::new();
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(header) = parse_header(&bytes) else {
            continue;
        };
        let same_patient = header.patient.ins.as_ref().is_some_and(|ins| {
            ins.matricule == "279035121518989" && ins.oid == "1.2.250.1.213.1.4.10"
        });
        if same_patient && docs.iter().all(|(_, h)| h.id != header.id) {
            docs.push((bytes, header));
        }
    }
    docs
}

fn generated_document(n: usize) -> (Vec<u8>, CdaHeader) {
    let mut body = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!("<item>Analyse {x:x} résultat {}</item>", x % 1000));
    }
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <templateId root="1.2.250.1.213.1.1.1.55"/>
  <id root="1.2.250.1.999.1.{n}"/>
  <code code="11502-2" codeSystem="2.16.840.1.113883.6.1" displayName="CR d'examens biologiques"/>
  <title>CR {n}</title>
  <effectiveTime value="20240105143000+0100"/>
  <recordTarget><patientRole><id extension="279035121518989" root="1.2.250.1.213.1.4.10"/></patientRole></recordTarget>
  <component><structuredBody><component><section><text><list>{body}</list></text></section></component></structuredBody></component>
</ClinicalDocument>
"#
    );
    let header = parse_header(xml.as_bytes()).expect("generated CDA parses");
    (xml.into_bytes(), header)
}

/// Documents whose package weighs at least `TARGET`.
fn documents() -> (Vec<(Vec<u8>, CdaHeader)>, &'static str) {
    let class = class();
    let shared = shared_documents();
    let (pool, source) = if shared.is_empty() {
        eprintln!("../shared not present: benchmarking generated CDAs");
        (
            (0..2000).map(generated_document).collect::<Vec<_>>(),
            "generated",
        )
    } else {
        (shared, "ANS fixtures")
    };
    let mut docs = Vec::new();
    for doc in pool {
        docs.push(doc);
        let size = pack(&docs, &class).len();
        if size > TARGET + TARGET / 4 {
            docs.pop();
        } else if size >= TARGET {
            break;
        }
    }
    (docs, source)
}

/// Every entry inflated into memory, as the simplest reader would.
fn unzip_all(package: &[u8]) -> usize {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(package)).expect("zip");
    let mut total = 0;
    for i in 0..archive.len() {
        let mut bytes = Vec::new();
        let mut entry = archive.by_index(i).expect("entry");
        total += entry.read_to_end(&mut bytes).expect("inflate");
    }
    total
}

fn bench(c: &mut Criterion) {
    let class = class();
    let (docs, source) = documents();
    let package = pack(&docs, &class);
    let content: usize = docs.iter().map(|(b, _)| b.len()).sum();
    eprintln!(
        "xdm bench: {} documents from {source}, {} bytes of CDA, package {} bytes",
        docs.len(),
        content,
        package.len()
    );
    let limits = Limits::default();
    let mut group = c.benchmark_group("xdm");
    group.throughput(Throughput::Bytes(package.len() as u64));
    group.bench_function("read_250kb", |b| {
        b.iter(|| xdm::read(black_box(&package), &limits).expect("package reads"))
    });
    // Baseline in the same run: inflating every entry and nothing else. The
    // difference is what METADATA, SHA-1, integrity and CDA headers cost.
    group.bench_function("unzip_only_250kb", |b| {
        b.iter(|| unzip_all(black_box(&package)))
    });
    group.bench_function("write_250kb", |b| b.iter(|| pack(black_box(&docs), &class)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
