//! Kill-and-restart: `mss run` (the real binary, follow mode) is killed with SIGKILL at
//! random points while messages arrive in its mailbox over LMTP (Dovecot of mss-testkit,
//! the application mailbox logging in with its certificate), and started again each
//! time. At the end every message is filed exactly once: one document version per
//! message, one worklist item per document, none missing, one acknowledgement queued per
//! message that asked for one, and the trace chain verifies. On SQLite and PostgreSQL.
//!
//! `MSS_RESTART_MESSAGES` (default 300 on SQLite, 100 on PostgreSQL) sets the number of
//! messages, `MSS_RESTART_MAX_MS` (default 4.5 s on SQLite, 15 s on PostgreSQL) the longest life of a run before its
//! kill, `MSS_RESTART_SEED` the seed of the kill points and delivery pace (printed at the
//! start; the machine's timing still varies between runs).

mod app_world;
#[path = "../../mss-engine/tests/support/mod.rs"]
mod support;

use app_world::{AppWorld, BAL, SENDER, add_patient};
use mss_docs::message::{Mailbox, OutgoingMessage, XdmPackage, compose};
use mss_testkit::postgres::Postgres;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Doc;

/// One message in this many asks for an MDN (each one sent costs an SMTP and an IMAP
/// session: all of them would make the test slow without testing more).
const MDN_EVERY: usize = 10;
/// Messages in the suite's run; see docs/benchmarks.md for longer runs.
const SQLITE_MESSAGES: u64 = 300;
/// PostgreSQL takes a row lock per trace append and the store's pool opens connections
/// at every restart: in a debug build on the shared 2-core machine it files several times
/// slower than SQLite, so the suite runs it on fewer messages (`MSS_RESTART_MESSAGES`
/// sets both for a longer run).
const POSTGRES_MESSAGES: u64 = 100;
/// Bound for the whole scenario: a hang is a failure, not a stuck CI.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(600);

/// splitmix64: small, seeded, good enough to choose kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: a whole number is expected"))
    })
}

/// Message `n`: one CDA (its own id and setId) for the QUAL patient of the support module.
fn message(n: usize) -> Vec<u8> {
    let mut doc = Doc::new(&format!("1.2.250.1.999.8.{n}"));
    doc.set_id = format!("1.2.250.1.999.9.{n}");
    let (zip, headers) = support::xdm_of(&[doc.xml()], None);
    compose(&OutgoingMessage {
        from: Mailbox::named(SENDER, "Dr House"),
        to: vec![Mailbox::new(BAL)],
        message_id: format!("restart.{n}@test.local"),
        date: 1_764_000_000,
        body: "Veuillez trouver le compte rendu.".into(),
        xdm: Some(XdmPackage {
            zip,
            documents: headers,
        }),
        request_mdn: n.is_multiple_of(MDN_EVERY),
        nil: Some("NIL-TEST-1".into()),
        test_identities: true,
        ..OutgoingMessage::default()
    })
    .expect("message composes")
}

/// A blocking LMTP client on Dovecot's socket: what an MTA does when it delivers.
struct Lmtp(BufReader<UnixStream>);

impl Lmtp {
    fn connect(socket: &Path) -> Lmtp {
        let stream = UnixStream::connect(socket).expect("LMTP socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut lmtp = Lmtp(BufReader::new(stream));
        lmtp.expect("220");
        lmtp.send(b"LHLO restart.test\r\n");
        lmtp.expect("250");
        lmtp
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).expect("LMTP write");
    }

    /// Reads one reply (all its lines) and checks its code.
    fn expect(&mut self, code: &str) {
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).expect("LMTP reply");
            assert!(
                line.starts_with(code),
                "LMTP: expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    }

    fn deliver(&mut self, raw: &[u8]) {
        self.send(format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<{BAL}>\r\nDATA\r\n").as_bytes());
        self.expect("250");
        self.expect("250");
        self.expect("354");
        let mut data = Vec::with_capacity(raw.len() + 64);
        for line in raw.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        self.expect("250");
    }
}

/// A running `mss run`, killed (SIGKILL) when dropped. Its stderr goes to a file (a
/// pipe nobody reads could fill and block it).
struct Engine(Child);

impl Engine {
    fn start(config: &Path, once: bool, log: &Path) -> Engine {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("engine log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mss"));
        command
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("MSS_CONFIG")
            .env_remove("MSS_NIL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        if once {
            command.arg("--once");
        }
        Engine(command.spawn().expect("mss run starts"))
    }

    /// SIGKILL: the process gets no chance to clean up.
    fn kill(mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }

    /// Waits for the end: true when it exited with success.
    fn wait(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.0.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.0.wait().unwrap().success()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn mss_ok(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mss"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MSS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("mss runs");
    assert!(
        out.status.success(),
        "mss {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the store holds, read with plain SQL (both backends).
struct Db(sqlx::AnyPool, tokio::runtime::Runtime);

impl Db {
    fn open(url: &str) -> Db {
        sqlx::any::install_default_drivers();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = rt
            .block_on(
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(url),
            )
            .expect("open the store read-only for checks");
        Db(pool, rt)
    }

    fn count(&self, sql: &'static str) -> i64 {
        self.1
            .block_on(sqlx::query_scalar::<_, i64>(sql).fetch_one(&self.0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn strings(&self, sql: &'static str) -> Vec<String> {
        self.1
            .block_on(sqlx::query_scalar::<_, String>(sql).fetch_all(&self.0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

fn mdn_files(world: &AppWorld) -> Vec<PathBuf> {
    let root = world.dovecot.maildir(SENDER);
    ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(root.join(sub)).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The Message-ID header of a stored message, if any.
fn message_id_of(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .map(|l| l[11..].trim().to_owned())
}

/// The whole scenario against the store at `store_url` (`None`: SQLite in the data dir).
fn kill_and_restart(label: &str, store_url: Option<String>, default_count: u64, min_ms: u64) {
    let Some(world) = AppWorld::start() else {
        return;
    };
    let started = Instant::now();
    let count = env_number("MSS_RESTART_MESSAGES").unwrap_or(default_count) as usize;
    let seed = env_number("MSS_RESTART_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("{label}: {count} messages, seed {seed} (MSS_RESTART_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let max_ms = env_number("MSS_RESTART_MAX_MS").unwrap_or(min_ms * 15);
    let (config, url) = world.config("restart", store_url.as_deref());
    add_patient(Path::new(env!("CARGO_BIN_EXE_mss")), &config);

    // Delivery runs on its own thread, in bursts at random moments, while the engine is
    // killed and restarted here.
    let messages: Vec<Vec<u8>> = (0..count).map(message).collect();
    let socket = world.dovecot.lmtp_socket.clone();
    let mut delivery_rng = Rng(seed ^ 0x5EED);
    let delivery = std::thread::spawn(move || {
        let mut lmtp = Lmtp::connect(&socket);
        let mut sent = 0;
        while sent < messages.len() {
            let burst = delivery_rng.range(1, 30) as usize;
            for raw in messages.iter().skip(sent).take(burst) {
                lmtp.deliver(raw);
            }
            sent = (sent + burst).min(messages.len());
            std::thread::sleep(Duration::from_millis(delivery_rng.range(0, 600)));
        }
        lmtp.send(b"QUIT\r\n");
    });

    let db = Db::open(&url);
    let filed = || db.count("SELECT COUNT(*) FROM document_versions");
    let log = config.with_file_name("runs.err");
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let mut kills = 0;
    loop {
        assert!(
            started.elapsed() < SCENARIO_TIMEOUT,
            "{label}: not done after {SCENARIO_TIMEOUT:?} (seed {seed})"
        );
        let engine = Engine::start(&config, false, &log);
        // From right after start (still opening the store or logging in) to well into
        // the catch-up or the follow.
        std::thread::sleep(Duration::from_millis(
            rng.range(min_ms, max_ms.max(min_ms + 1)),
        ));
        engine.kill();
        kills += 1;
        eprintln!("{label}: kill {kills}: {} filed", filed());
        if delivery.is_finished() && filed() >= count as i64 {
            break;
        }
    }
    delivery.join().expect("delivery thread");
    // A last pass to its end: it sends what the killed runs had queued.
    let ok = Engine::start(&config, true, &log).wait(Duration::from_secs(300));
    assert!(
        ok,
        "{label}: the last mss run --once failed (seed {seed}); its stderr ends with:\n{}",
        tail()
    );
    eprintln!(
        "{label}: {kills} kills, all filed after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every message stored once, every document filed once, for the patient.
    let n = count as i64;
    let ctx = format!(
        "{label}, seed {seed}, {kills} kills; stderr of the runs ends with:\n{}",
        tail()
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM messages"), n, "{ctx}");
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT message_id) FROM messages"),
        n,
        "{ctx}"
    );
    assert_eq!(filed(), n, "one version per message ({ctx})");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM documents WHERE patient_id IS NOT NULL"),
        n,
        "{ctx}"
    );
    let mut versions = db.strings("SELECT version_id FROM document_versions");
    versions.sort();
    versions.dedup();
    let mut expected: Vec<String> = (0..count).map(|i| format!("1.2.250.1.999.8.{i}")).collect();
    expected.sort();
    assert_eq!(versions, expected, "no message missing ({ctx})");
    // One item per document, integrated; each message item decided.
    let states = db.strings(
        "SELECT item_key || ' ' || state || ' ' || COALESCE(reason, '') FROM worklist WHERE state <> 'integrated'",
    );
    assert!(
        states.is_empty(),
        "items not integrated: {states:?} ({ctx})"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM worklist WHERE item_key <> '' AND state = 'integrated'"),
        n,
        "{ctx}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM worklist WHERE item_key <> ''"),
        n,
        "{ctx}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM worklist WHERE item_key = '' AND state = 'received'"),
        0,
        "{ctx}"
    );
    // One acknowledgement queued per message that asked, all sent.
    let asked = count.div_ceil(MDN_EVERY) as i64;
    assert_eq!(db.count("SELECT COUNT(*) FROM outbox"), asked, "{ctx}");
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT message_id) FROM outbox"),
        asked,
        "{ctx}"
    );
    // A kill between claiming an answer and noting it sent leaves it claimed until the
    // claim's lease runs out (10 minutes): no other process may send it before then.
    let claimed = db.count("SELECT COUNT(*) FROM outbox WHERE state = 'sending'");
    assert!(
        claimed as usize <= kills,
        "{claimed} answers claimed by killed runs ({ctx})"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'") + claimed,
        asked,
        "{ctx}"
    );
    // The sender got them. A kill between the submission and the store noting it sends
    // one again, with the same Message-ID (a receiver drops it): at most one per kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    let received = loop {
        let mut ids: Vec<String> = mdn_files(&world)
            .iter()
            .filter_map(|p| message_id_of(&std::fs::read(p).ok()?))
            .collect();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        if ids.len() as i64 >= asked - claimed || Instant::now() > deadline {
            break (ids.len(), total);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // A claimed answer may or may not have left before its run was killed.
    assert!(
        (asked - claimed..=asked).contains(&(received.0 as i64)),
        "{} distinct MDNs received for {asked} asked, {claimed} claimed ({ctx})",
        received.0
    );
    assert!(
        received.1 - received.0 <= kills,
        "{} MDNs sent twice with {kills} kills ({ctx})",
        received.1 - received.0
    );
    eprintln!(
        "{label}: {} MDNs received for {asked} asked ({} sent again after a kill)",
        received.1,
        received.1 - received.0
    );
    // Exits 1 when an entry is missing, moved or changed.
    mss_ok(&config, &["trace", "verify"]);
    eprintln!("{label}: done in {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn sqlite_every_message_is_filed_once_across_kills() {
    kill_and_restart("sqlite", None, SQLITE_MESSAGES, 300);
}

#[test]
fn postgres_every_message_is_filed_once_across_kills() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    kill_and_restart(
        "postgres",
        Some(pg.create_database("restart")),
        POSTGRES_MESSAGES,
        1000,
    );
}
