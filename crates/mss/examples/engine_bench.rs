//! End to end: a mailbox of XDM messages (50–250 KB each) filed by `mss run --once`, next
//! to the raw fetch of the same mailbox in the same run (not a test; figures go to
//! docs/benchmarks.md).
//!
//! ```text
//! cargo build --release -p mss --bin mss --example engine_bench
//! target/release/examples/engine_bench [messages] [sqlite|postgres|both]
//! ```
//!
//! Starts the test PKI, Dovecot and Postfix (mss-testkit, `tests/app_world`),
//! writes the messages into the application mailbox's maildir, then: the raw fetch (one
//! IMAP session, STARTTLS, EXTERNAL with the mailbox's certificate, batches of 100,
//! bodies dropped); `mss run --once` (the release binary next to this example, or
//! `MSS_BIN`) on a fresh SQLite store and on a fresh database of a private PostgreSQL,
//! each timed with its peak resident memory (`/usr/bin/time`), and the filed documents
//! counted afterwards.

#[path = "../tests/app_world/mod.rs"]
mod app_world;
#[path = "../../mss-engine/tests/support/mod.rs"]
mod support;

use app_world::{AppWorld, BAL, SENDER};
use mss_docs::message::{Mailbox, OutgoingMessage, XdmPackage, compose};
use mss_model::MssAddress;
use mss_store::{MailboxKind, MessageKey, NewVersion, Store, StoreOptions};
use mss_testkit::postgres::Postgres;
use mss_transport::imap::{Credentials, Endpoint, ImapOptions, ImapSession, Security, SyncState};
use mss_transport::tls::{ClientIdentity, TlsPolicy, TlsSettings};
use mss_transport::trace::NoTrace;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use support::Doc;

/// xorshift64*: the PDF bytes (incompressible, like a real compressed PDF stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A PDF-looking body of `len` bytes.
fn pdf(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n4 0 obj\n<< /Length 0 /Filter /FlateDecode >>\nstream\n".to_vec();
    while out.len() + 8 < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
    out
}

/// Base64 in lines of 76 characters, as MIME writes a body part.
fn mime_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Message `n`: a level-1 CDA (PDF body) for the QUAL patient, its XDM of 50–250 KB;
/// returns the message and the CDA it carries.
fn message(n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut doc = Doc::new(&format!("1.2.250.1.999.8.{n}"));
    doc.set_id = format!("1.2.250.1.999.9.{n}");
    let target = 50 * 1024 + (rng.next() % (196 * 1024)) as usize;
    let body = format!(
        "<component><nonXMLBody><text mediaType=\"application/pdf\" representation=\"B64\">{}</text></nonXMLBody></component>",
        mime_base64(&pdf(rng, target))
    );
    let cda = String::from_utf8(doc.xml())
        .unwrap()
        .replace("<component><structuredBody/></component>", &body);
    let cda = cda.into_bytes();
    let (zip, headers) = support::xdm_of(std::slice::from_ref(&cda), None);
    let raw = compose(&OutgoingMessage {
        from: Mailbox::named(SENDER, "Dr House"),
        to: vec![Mailbox::new(BAL)],
        message_id: format!("bench.{n}@test.local"),
        date: 1_764_000_000,
        body: "Veuillez trouver le compte rendu.".into(),
        xdm: Some(XdmPackage {
            zip,
            documents: headers,
        }),
        nil: Some("NIL-TEST-1".into()),
        test_identities: true,
        ..OutgoingMessage::default()
    })
    .expect("message composes");
    (raw, cda)
}

/// The mailbox, `CHUNK` messages at a time: the same bytes every time it is called.
const CHUNK: usize = 200;

fn mailbox(messages: usize) -> impl Iterator<Item = Vec<(Vec<u8>, Vec<u8>)>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..messages).step_by(CHUNK).map(move |n| {
        (n..(n + CHUNK).min(messages))
            .map(|i| message(i, &mut rng))
            .collect()
    })
}

/// The floor under the engine: only what it must keep for each message (the raw bytes,
/// then the CDA as a document version, as the engine stores them) written through
/// mss-store, nothing parsed, decided or traced. Generating the messages is not timed.
async fn store_floor(name: &str, url: &str, sync_every_commit: bool, messages: usize, raw: f64) {
    let store = Store::open_with(
        url,
        StoreOptions {
            sqlite_sync_every_commit: sync_every_commit,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("store");
    let now = time::OffsetDateTime::now_utc();
    let address = MssAddress::parse(BAL).expect("address");
    let bal = store
        .ensure_mailbox(&address, MailboxKind::App, now)
        .await
        .expect("mailbox");
    let mut spent = std::time::Duration::ZERO;
    let mut n = 0u32;
    for chunk in mailbox(messages) {
        let started = Instant::now();
        for (raw, cda) in &chunk {
            n += 1;
            let key = MessageKey {
                mailbox_id: bal.id,
                folder: "INBOX".into(),
                uidvalidity: 1,
                uid: n,
            };
            let message = store
                .insert_message(&key, None, raw, now)
                .await
                .expect("insert")
                .id();
            let id = format!("1.2.250.1.999.8.{n}");
            store
                .add_version(
                    &NewVersion {
                        set_id: &id,
                        version_id: &id,
                        source_version: Some(1),
                        supersedes: None,
                        patient: None,
                        doc_type: None,
                        title: None,
                        media_type: "text/xml",
                        content: cda,
                        message: Some(message),
                    },
                    now,
                )
                .await
                .expect("version");
        }
        spent += started.elapsed();
    }
    store.close().await;
    let secs = spent.as_secs_f64();
    println!(
        "{name}: store floor (raw + CDA written, nothing else) {secs:.2} s = {:.0} msg/s; {:.2}× the raw fetch time",
        messages as f64 / secs,
        secs / raw
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mss_bin() -> PathBuf {
    std::env::var_os("MSS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent().unwrap().parent().unwrap().join("mss")
        })
}

/// `mss run --once`: (seconds, peak RSS in MB).
fn run_once(config: &Path) -> (f64, f64) {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(mss_bin())
        .arg("--config")
        .arg(config)
        .args(["run", "--once"])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time (apt: time)");
    let secs = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mss run --once: {err}");
    let kb: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss from /usr/bin/time");
    (secs, kb / 1024.0)
}

/// On a thread of its own: the caller is inside a runtime already.
fn count(url: &str, sql: &'static str) -> i64 {
    let url = url.to_owned();
    std::thread::spawn(move || count_blocking(&url, sql))
        .join()
        .expect("count")
}

fn count_blocking(url: &str, sql: &'static str) -> i64 {
    sqlx::any::install_default_drivers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::AnyPool::connect(url).await.expect("store");
        let n = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&pool)
            .await
            .expect(sql);
        pool.close().await;
        n
    })
}

/// One `mss run --once` on a fresh store; prints and returns its seconds.
fn engine(world: &AppWorld, name: &str, store_url: Option<&str>, messages: usize, raw: f64) {
    let (config, url) = world.config(name, store_url);
    if name == "sqlite-normal" {
        // The same SQLite store, waiting for the disk only at checkpoints.
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen("[store]\n", "[store]\nsqlite_synchronous = \"normal\"\n", 1);
        std::fs::write(&config, text).expect("config");
    }
    app_world::add_patient(&mss_bin(), &config);
    println!("{name}: load average before: {}", loadavg());
    let (secs, rss) = run_once(&config);
    let filed = count(&url, "SELECT COUNT(*) FROM document_versions");
    let integrated = count(
        &url,
        "SELECT COUNT(*) FROM worklist WHERE item_key <> '' AND state = 'integrated'",
    );
    assert_eq!(filed as usize, messages, "{name}: every message filed");
    assert_eq!(
        integrated as usize, messages,
        "{name}: every item integrated"
    );
    println!(
        "{name}: mss run --once filed {filed} documents in {secs:.2} s = {:.0} msg/s; peak RSS {rss:.0} MB; {:.2}× the raw fetch time (+{:.0} %); load average after: {}",
        messages as f64 / secs,
        secs / raw,
        (secs / raw - 1.0) * 100.0,
        loadavg()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let messages: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let which = args.get(1).map(String::as_str).unwrap_or("both");
    println!(
        "load average at start: {}; mss binary {}",
        loadavg(),
        mss_bin().display()
    );
    let Some(world) = AppWorld::start() else {
        eprintln!("servers missing: run scripts/setup/mail.sh");
        std::process::exit(2);
    };

    // The mailbox, written straight into the maildir a chunk at a time.
    let started = Instant::now();
    let (mut bytes, mut smallest, mut largest) = (0usize, usize::MAX, 0usize);
    for chunk in mailbox(messages) {
        for (m, _) in &chunk {
            bytes += m.len();
            smallest = smallest.min(m.len());
            largest = largest.max(m.len());
        }
        world
            .dovecot
            .deliver_maildir(BAL, chunk.iter().map(|(m, _)| m.as_slice()))
            .expect("maildir");
    }
    println!(
        "mailbox: {messages} messages, {:.1} MB ({:.0}–{:.0} KB each), written in {:.1} s",
        bytes as f64 / 1e6,
        smallest as f64 / 1024.0,
        largest as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );

    // Raw fetch, as mss run's client does it, bodies dropped.
    let leaf = world.pki.issue_client(BAL).expect("client certificate");
    let tls = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![world.pki.root.clone()],
        ..TlsSettings::default()
    })
    .expect("TLS policy")
    .client_config(Some(
        &ClientIdentity::from_pem_files(&leaf.chain, &leaf.key).expect("identity"),
    ))
    .expect("TLS");
    let imap = Endpoint::new("127.0.0.1", world.dovecot.imap_port, Security::StartTls);
    let fetch_all = async |count_bytes: bool| {
        let mut session = ImapSession::connect(
            &imap,
            tls.clone(),
            Credentials::Certificate { authzid: None },
            Arc::new(NoTrace),
            ImapOptions::new(BAL),
        )
        .await
        .expect("IMAP login");
        let mut state = SyncState::default();
        session.select("INBOX", &mut state).await.expect("select");
        let (mut got, mut size) = (0, 0);
        if count_bytes {
            loop {
                let batch = session.fetch_new(&mut state, 100).await.expect("fetch");
                got += batch.messages.len();
                size += batch.messages.iter().map(|m| m.raw.len()).sum::<usize>();
                if !batch.more {
                    break;
                }
            }
        }
        session.logout().await;
        (got, size)
    };
    // Dovecot builds its index on the first SELECT: outside the measures.
    let started = Instant::now();
    fetch_all(false).await;
    println!(
        "first SELECT (Dovecot indexes the maildir): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let (got, size) = fetch_all(true).await;
    let raw = started.elapsed().as_secs_f64();
    assert_eq!((got, size), (messages, bytes), "raw fetch got everything");
    println!(
        "raw fetch: {got} messages ({:.1} MB) in {raw:.2} s = {:.0} msg/s, {:.0} MB/s",
        size as f64 / 1e6,
        got as f64 / raw,
        size as f64 / 1e6 / raw
    );

    let floors = tempfile::tempdir().expect("temporary directory");
    let floor_url = |name: &str| format!("sqlite:{}", floors.path().join(name).display());
    if which == "sqlite" || which == "both" {
        store_floor("sqlite", &floor_url("full.db"), true, messages, raw).await;
        engine(&world, "sqlite", None, messages, raw);
    }
    if which == "sqlite-normal" || which == "sqlite" || which == "both" {
        store_floor(
            "sqlite-normal",
            &floor_url("normal.db"),
            false,
            messages,
            raw,
        )
        .await;
        engine(&world, "sqlite-normal", None, messages, raw);
    }
    if which == "postgres" || which == "both" {
        let pg = Postgres::start().expect("PostgreSQL (scripts/setup/postgres.sh)");
        store_floor(
            "postgres",
            &pg.create_database("floor"),
            true,
            messages,
            raw,
        )
        .await;
        let url = pg.create_database("bench");
        engine(&world, "postgres", Some(&url), messages, raw);
    }
    // The raw fetch again, after: the machine's pace may have moved meanwhile.
    let started = Instant::now();
    fetch_all(true).await;
    println!(
        "raw fetch again at the end: {:.2} s; load average: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}
