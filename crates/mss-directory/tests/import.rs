//! The importer on awkward inputs: zip archives, BOM + CRLF + Windows-1252
//! lines, the old 52-column header, unknown files, and an index swap while
//! a reader is open.

use mss_directory::synth::{Options, Sinks, generate};
use mss_directory::{Directory, Error, Filters, ImportOptions, import};
use std::io::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path, opts: &Options) -> (PathBuf, PathBuf) {
    let (mut a, mut m) = (Vec::new(), Vec::new());
    generate(
        opts,
        Sinks {
            activity: &mut a,
            mailbox: &mut m,
            skill: None,
            diploma: None,
            queries: None,
        },
    )
    .unwrap();
    let pa = dir.join("PS_LibreAcces_Personne_activite_1.txt");
    let pm = dir.join("Extraction_Correspondance_MSSante_1.txt");
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pm, m).unwrap();
    (pa, pm)
}

fn small() -> ImportOptions {
    ImportOptions {
        threads: 1,
        memory_bytes: 30 << 20,
        max_segments: 1,
    }
}

#[test]
fn zip_bom_crlf_stray_bytes_and_old_header() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        seed: 3,
        people: 900,
        bom: true,
        crlf: true,
        old_header: true,
        stray_bytes: true,
        ..Options::default()
    };
    let (pa, pm) = files(tmp.path(), &opts);
    let zip_path = tmp.path().join("PS_LibreAcces_1.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    zip.start_file(
        "PS_LibreAcces_Personne_activite_1.txt",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&std::fs::read(&pa).unwrap()).unwrap();
    zip.finish().unwrap();
    let dir = tmp.path().join("directory");
    let s = import(&dir, &[zip_path, pm], &small(), &mut |_| {}).unwrap();
    let act = &s.files[0];
    assert!(
        act.name.ends_with("!PS_LibreAcces_Personne_activite_1.txt"),
        "{}",
        act.name
    );
    assert!(act.rows > 1000, "{act:?}");
    assert!(act.recoded > 0 && act.skipped == 0, "{act:?}");
    assert_eq!(s.people as usize, 900);
    let d = Directory::open(&dir).unwrap();
    // The header with its BOM was recognised: a name search finds people.
    let r = d.search("medecin", &Filters::default(), 5).unwrap();
    assert_eq!(r.hits.len(), 5);
}

#[test]
fn unknown_file_is_refused_and_leaves_the_index_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pm) = files(
        tmp.path(),
        &Options {
            people: 50,
            ..Options::default()
        },
    );
    let dir = tmp.path().join("directory");
    import(&dir, &[pa, pm], &small(), &mut |_| {}).unwrap();
    let junk = tmp.path().join("junk.txt");
    std::fs::write(&junk, "a|b|c\n1|2|3\n").unwrap();
    let err = import(&dir, &[junk], &small(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::UnknownFile(_)), "{err}");
    assert!(
        Directory::open(&dir)
            .unwrap()
            .search("medecin", &Filters::default(), 1)
            .unwrap()
            .hits
            .len()
            == 1
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[test]
fn reimport_swaps_while_an_open_reader_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("directory");
    let (pa, pm) = files(
        tmp.path(),
        &Options {
            seed: 1,
            people: 200,
            ..Options::default()
        },
    );
    import(&dir, &[pa.clone(), pm.clone()], &small(), &mut |_| {}).unwrap();
    let old = Directory::open(&dir).unwrap();
    let before = old.search("medecin", &Filters::default(), 3).unwrap();
    let (pa2, pm2) = files(
        tmp.path(),
        &Options {
            seed: 2,
            people: 300,
            ..Options::default()
        },
    );
    let s = import(&dir, &[pa2, pm2], &small(), &mut |_| {}).unwrap();
    assert_eq!(s.people, 300);
    // The old reader still answers from the old files, unchanged.
    let again = old.search("medecin", &Filters::default(), 3).unwrap();
    assert_eq!(
        before.hits.iter().map(|h| &h.id).collect::<Vec<_>>(),
        again.hits.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    let new = Directory::open(&dir).unwrap();
    assert_ne!(new.index_dir(), old.index_dir());
    assert_eq!(new.info().unwrap().people, 300);
}

#[test]
fn a_live_lock_stops_a_second_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("directory");
    std::fs::create_dir_all(&dir).unwrap();
    // Our own pid: a process that exists.
    std::fs::write(dir.join("import.lock"), std::process::id().to_string()).unwrap();
    let (pa, pm) = files(
        tmp.path(),
        &Options {
            people: 20,
            ..Options::default()
        },
    );
    let err = import(&dir, &[pa.clone(), pm.clone()], &small(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Locked(..)), "{err}");
    // A lock of a process that is gone is taken over.
    std::fs::write(dir.join("import.lock"), "4000000").unwrap();
    import(&dir, &[pa, pm], &small(), &mut |_| {}).unwrap();
}
