//! Importing extraction files into a new index, then swapping it in.
//!
//! The new index is built in `index-<stamp>.partial`, renamed to
//! `index-<stamp>` once committed, and only then named in the `current`
//! pointer file (written to a temporary file and renamed, so readers see
//! the old or the new name, never half of one). Searches that already
//! opened the old index keep their open files until they finish.

use crate::error::Error;
pub use crate::fsio::write_atomic;
use crate::index::{Fields, HEADERS_FILE, IndexDoc, register_tokenizers};
use crate::line::{FileKind, Header, decode, fields, read_line};
use crate::record::{Columns, Entry, EntryKind, Grouper, STRUCTURE_KEY};
use crate::text::stable_hash;
use serde::Serialize;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tantivy::{Index, IndexSettings, IndexWriter};

/// Name of the pointer file naming the live index.
pub const CURRENT: &str = "current";
const LOCK: &str = "import.lock";
/// Summary of the last import, beside the tantivy files.
pub const INFO_FILE: &str = "mss-import.json";

/// Where an import stands, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    pub file: String,
    pub bytes: u64,
    pub total: u64,
    pub rows: u64,
}

/// What one file brought.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileSummary {
    pub name: String,
    pub kind: FileKind,
    pub rows: u64,
    /// Lines skipped: too long, or without any identifier.
    pub skipped: u64,
    /// Lines that were not UTF-8 and were read as Windows-1252.
    pub recoded: u64,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ImportSummary {
    pub files: Vec<FileSummary>,
    pub rows: u64,
    pub people: u64,
    pub structures: u64,
    pub mailboxes: u64,
    pub documents: u64,
    pub seconds: f64,
    pub index_bytes: u64,
    /// Unix time of the import.
    pub imported_at: u64,
}

/// Tuning of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Indexing threads.
    pub threads: usize,
    /// Memory for indexing, all threads together.
    pub memory_bytes: usize,
    /// At most this many segments are left at the end: the smallest are
    /// merged together. A full merge into one cost a sixth of the import's CPU
    /// time for little search gain (p50 1.43 ms with one segment, 1.7 with 8).
    pub max_segments: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        Self {
            threads,
            memory_bytes: 300 << 20,
            max_segments: 8,
        }
    }
}

/// Imports `files` (`.txt` or `.zip`) into the directory at `dir`
/// (`<data-dir>/directory`), replacing the current index when done.
pub fn import(
    dir: &Path,
    files: &[PathBuf],
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary, Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let _lock = Lock::take(dir)?;
    let started = Instant::now();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("index-{stamp}");
    let partial = dir.join(format!("{name}.partial"));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
    let built = build(&partial, files, opts, progress);
    let mut summary = match built {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    summary.seconds = started.elapsed().as_secs_f64();
    summary.index_bytes = dir_size(&partial);
    let info = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Index(e.to_string()))?;
    write_atomic(&partial.join(INFO_FILE), &info)?;
    let final_dir = dir.join(&name);
    fs::rename(&partial, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    write_atomic(&dir.join(CURRENT), name.as_bytes())?;
    // Older indexes: open readers keep their files until they close them.
    if let Ok(list) = fs::read_dir(dir) {
        for e in list.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("index-") && n != name && !n.ends_with(".partial") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(summary)
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Hashes of the people and structures seen, counted at the end: pushing
/// to a list and sorting it once is cheaper than a million random inserts
/// into a set.
struct Counters {
    last_person: Option<u64>,
    people: Vec<u64>,
    structures: Vec<u64>,
    mailboxes: u64,
    documents: u64,
}

fn distinct(mut hashes: Vec<u64>) -> u64 {
    hashes.sort_unstable();
    hashes.dedup();
    hashes.len() as u64
}

fn build(
    out: &Path,
    files: &[PathBuf],
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary, Error> {
    let (schema, fields) = Fields::schema();
    let settings = IndexSettings {
        docstore_blocksize: 32 * 1024,
        ..IndexSettings::default()
    };
    let index = Index::builder()
        .schema(schema)
        .settings(settings)
        .create_in_dir(out)
        .map_err(|e| Error::Index(e.to_string()))?;
    register_tokenizers(&index);
    let per_thread = (opts.memory_bytes / opts.threads.max(1)).max(20 << 20);
    let mut writer: IndexWriter<IndexDoc> = index
        .writer_with_num_threads(opts.threads.max(1), per_thread * opts.threads.max(1))
        .map_err(|e| Error::Index(e.to_string()))?;
    // No merges along the way: at most one, of the smallest, at the end.
    writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    let mut headers: Vec<Vec<String>> = Vec::new();
    let mut summaries = Vec::new();
    let mut counters = Counters {
        last_person: None,
        people: Vec::new(),
        structures: Vec::new(),
        mailboxes: 0,
        documents: 0,
    };
    for path in files {
        for_each_source(path, &mut |name, total, reader| {
            let s = import_one(
                name,
                total,
                reader,
                &fields,
                &writer,
                &mut headers,
                &mut counters,
                progress,
            )?;
            summaries.push(s);
            Ok(())
        })?;
    }
    if counters.documents == 0 {
        return Err(Error::Empty);
    }
    writer.commit().map_err(|e| Error::Index(e.to_string()))?;
    // Fewer segments, fewer lookups per query: the smallest segments are
    // merged together until at most `max_segments` are left.
    let mut metas = index
        .searchable_segment_metas()
        .map_err(|e| Error::Index(e.to_string()))?;
    let keep = opts.max_segments.max(1);
    if metas.len() > keep {
        metas.sort_by_key(|m| m.num_docs());
        let ids: Vec<_> = metas[..=metas.len() - keep]
            .iter()
            .map(|m| m.id())
            .collect();
        writer
            .merge(&ids)
            .wait()
            .map_err(|e| Error::Index(e.to_string()))?;
    }
    writer
        .wait_merging_threads()
        .map_err(|e| Error::Index(e.to_string()))?;
    remove_dead_segments(&index, out)?;
    let json = serde_json::to_vec(&headers).map_err(|e| Error::Index(e.to_string()))?;
    write_atomic(&out.join(HEADERS_FILE), &json)?;
    Ok(ImportSummary {
        rows: summaries.iter().map(|s| s.rows).sum(),
        files: summaries,
        people: distinct(counters.people),
        structures: distinct(counters.structures),
        mailboxes: counters.mailboxes,
        documents: counters.documents,
        seconds: 0.0,
        index_bytes: 0,
        imported_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// Deletes the files of segments merged away (tantivy leaves them behind
/// when the writer closes right after a merge). The directory is the new
/// index being built: no reader has it open.
fn remove_dead_segments(index: &Index, out: &Path) -> Result<(), Error> {
    let live: HashSet<String> = index
        .searchable_segment_ids()
        .map_err(|e| Error::Index(e.to_string()))?
        .iter()
        .map(|id| id.uuid_string())
        .collect();
    for e in fs::read_dir(out).map_err(|e| Error::io(out, e))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name.split('.').next().unwrap_or("");
        let segment = stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit());
        if segment && !live.contains(stem) {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Receives one text file: its display name, its size, its reader.
type EachSource<'a> = dyn FnMut(&str, u64, &mut dyn BufRead) -> Result<(), Error> + 'a;

/// Calls `each` with every text file inside `path`: itself, or every
/// `.txt` entry of a zip, streamed without extracting it to disk.
fn for_each_source(path: &Path, each: &mut EachSource<'_>) -> Result<(), Error> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let display = path.display().to_string();
    if n < 4 || magic != *b"PK\x03\x04" {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        return each(&display, len, &mut BufReader::with_capacity(1 << 20, file));
    }
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| Error::Zip(path.to_owned(), e.to_string()))?;
    let mut found = false;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| Error::Zip(path.to_owned(), e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| Error::Zip(path.to_owned(), e.to_string()))?
            .into_owned();
        if entry.is_dir() || !name.to_ascii_lowercase().ends_with(".txt") {
            continue;
        }
        found = true;
        let size = entry.size();
        each(
            &format!("{display}!{name}"),
            size,
            &mut BufReader::with_capacity(1 << 20, entry),
        )?;
    }
    if !found {
        return Err(Error::UnknownFile(path.to_owned()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn import_one(
    name: &str,
    total: u64,
    reader: &mut dyn BufRead,
    fields_: &Fields,
    writer: &IndexWriter<IndexDoc>,
    headers: &mut Vec<Vec<String>>,
    counters: &mut Counters,
    progress: &mut dyn FnMut(&Progress),
) -> Result<FileSummary, Error> {
    let io = |e| Error::io(Path::new(name), e);
    let mut buf = Vec::new();
    let mut bytes = read_line(reader, &mut buf).map_err(io)?.0 as u64;
    let header = Header::parse(&decode(&buf).0);
    let cols = Columns::new(&header);
    let Some(kind) = cols.kind else {
        return Err(Error::UnknownFile(PathBuf::from(name)));
    };
    headers.push(header.names.clone());
    let mut grouper = Grouper::new(cols, (headers.len() - 1) as u64);
    let mut summary = FileSummary {
        name: name.to_owned(),
        kind,
        rows: 0,
        skipped: 0,
        recoded: 0,
    };
    let mut done: Vec<Entry> = Vec::new();
    let mut last_report = 0u64;
    loop {
        let (n, too_long) = read_line(reader, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if too_long {
            summary.skipped += 1;
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (line, recoded) = decode(&buf);
        summary.recoded += u64::from(recoded);
        let row = fields(&line);
        if grouper.push(&line, &row, &mut done).is_err() {
            summary.skipped += 1;
            continue;
        }
        summary.rows += 1;
        for e in done.drain(..) {
            add(fields_, writer, e, counters)?;
        }
        if bytes - last_report >= 4 << 20 {
            last_report = bytes;
            progress(&Progress {
                file: name.to_owned(),
                bytes,
                total,
                rows: summary.rows,
            });
        }
    }
    if let Some(e) = grouper.finish() {
        add(fields_, writer, e, counters)?;
    }
    progress(&Progress {
        file: name.to_owned(),
        bytes: total.max(bytes),
        total,
        rows: summary.rows,
    });
    Ok(summary)
}

fn add(
    f: &Fields,
    writer: &IndexWriter<IndexDoc>,
    e: Entry,
    c: &mut Counters,
) -> Result<(), Error> {
    match e.kind {
        EntryKind::Activity => {
            // The rows of a person follow each other: one push per person.
            let h = stable_hash(&e.key);
            if c.last_person != Some(h) {
                c.last_person = Some(h);
                c.people.push(h);
            }
            c.structures.extend(e.site);
        }
        EntryKind::Mailbox => {
            c.mailboxes += 1;
            if e.key.starts_with(STRUCTURE_KEY) {
                c.structures.extend(e.site);
            } else {
                c.people.push(stable_hash(&e.key));
            }
        }
        EntryKind::Skill | EntryKind::Diploma => {}
    }
    c.documents += 1;
    writer
        .add_document(IndexDoc::new(*f, e))
        .map_err(|e| Error::Index(e.to_string()))?;
    Ok(())
}

/// Held while an import runs; removed on drop. A lock left by a process
/// that no longer exists is taken over.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(LOCK);
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Self(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid: u32 = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                    if pid != 0 && Path::new(&format!("/proc/{pid}")).exists() {
                        return Err(Error::Locked(pid, path));
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Locked(0, path))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
