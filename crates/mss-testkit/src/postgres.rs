//! A private PostgreSQL on 127.0.0.1, for the store's PostgreSQL leg.
//!
//! `initdb` into a temporary directory (trust authentication, user `mss`), then
//! `postgres` on a free port with its socket in that directory, durability off (tests
//! do not survive a crash, and fsync on a shared 2-core machine is slow). Root cannot run
//! PostgreSQL: as root the directory is handed to the `postgres` system user and the
//! server runs under it through `setpriv`. The server stops (fast shutdown) on drop.
//!
//! ```no_run
//! use mss_testkit::postgres::Postgres;
//! let Some(pg) = Postgres::start_or_skip() else { return };
//! let url = pg.create_database("store_test");
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dovecot::{ServerError, io};
use crate::{find_program, free_port, missing};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The superuser created by initdb.
pub const USER: &str = "mss";

pub struct Postgres {
    port: u16,
    bin: PathBuf,
    run_as: Option<RunAs>,
    child: Option<Child>,
    temp: Option<tempfile::TempDir>,
}

/// The unprivileged account the server runs under when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// The directory with `initdb`, `postgres`, `pg_isready` and `psql`: PATH first, then
/// Debian's versioned directories (newest first), where the package puts them.
fn bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(initdb) = find_program("initdb")
        && let Ok(real) = fs::canonicalize(&initdb)
        && let Some(dir) = real.parent()
        && has_all(dir)
    {
        return Some(dir.to_owned());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|(_, d)| d)
        .find(|d| has_all(d))
}

/// The `postgres` account's ids, from /etc/passwd.
fn postgres_account() -> Option<RunAs> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&"postgres") || fields.len() < 4 {
            return None;
        }
        Some(RunAs {
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
        })
    })
}

impl Postgres {
    /// Starts a server, or returns `None` after [`missing`] when PostgreSQL is not
    /// installed (a failure under `MSS_REQUIRE_SERVERS=1`).
    pub fn start_or_skip() -> Option<Postgres> {
        if bin_dir().is_none() {
            missing("PostgreSQL (apt: postgresql; scripts/setup/postgres.sh)");
            return None;
        }
        Some(Postgres::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}")))
    }

    pub fn start() -> Result<Postgres, ServerError> {
        let bin = bin_dir().ok_or(ServerError::Start(
            "PostgreSQL",
            "initdb/postgres not found in PATH nor /usr/lib/postgresql/*/bin".into(),
        ))?;
        let temp = tempfile::Builder::new()
            .prefix("mss-postgres-")
            .tempdir()
            .map_err(io("create PostgreSQL temporary directory"))?;
        let root = is_root(temp.path())?;
        let run_as = if root {
            let account = postgres_account().ok_or(ServerError::Start(
                "PostgreSQL",
                "running as root and there is no `postgres` account to run the server (install the postgresql package)".into(),
            ))?;
            std::os::unix::fs::chown(temp.path(), Some(account.uid), Some(account.gid))
                .map_err(io("chown the PostgreSQL directory to postgres"))?;
            Some(account)
        } else {
            None
        };
        let mut pg = Postgres {
            port: free_port(),
            bin,
            run_as,
            child: None,
            temp: Some(temp),
        };
        pg.init()?;
        pg.launch()?;
        pg.wait_ready()?;
        Ok(pg)
    }

    fn dir(&self) -> &Path {
        self.temp
            .as_ref()
            .map(|t| t.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// A command for one of the server's programs, under the `postgres` account if root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(who) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", who.uid))
                    .arg(format!("--regid={}", who.gid))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir(self.dir()).env("LC_ALL", "C.UTF-8");
        cmd
    }

    fn init(&self) -> Result<(), ServerError> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.dir().join("data"))
            .args([
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .map_err(io("run initdb"))?;
        if !out.status.success() {
            return Err(ServerError::Start(
                "PostgreSQL initdb",
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), ServerError> {
        let log =
            fs::File::create(self.dir().join("postgres.log")).map_err(io("create postgres.log"))?;
        let err = log.try_clone().map_err(io("clone postgres.log"))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir().join("data"))
            .arg("-k")
            .arg(self.dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io("start postgres"))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ServerError::Start(
                    "PostgreSQL",
                    format!("exited with {status}: {}", self.log_tail()),
                ));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-U", USER, "-d", "postgres", "-t", "1"])
                .arg("-p")
                .arg(self.port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(io("run pg_isready"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ServerError::Start(
                    "PostgreSQL",
                    format!("not ready after {START_TIMEOUT:?}: {}", self.log_tail()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of `database` on this server, as the `mss` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL. Names are test-chosen identifiers.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "database name {name:?}: letters, digits and _ only"
        );
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.url(name)
    }
}

/// Root owns a fresh temporary directory only when the tests run as root.
fn is_root(dir: &Path) -> Result<bool, ServerError> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(dir)
        .map_err(io("stat PostgreSQL directory"))?
        .uid()
        == 0)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("MSS_KEEP_SERVERS").is_some()
            && let Some(temp) = self.temp.take()
        {
            eprintln!("kept {}", temp.keep().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let Some(pg) = Postgres::start_or_skip() else {
            return;
        };
        let url = pg.create_database("smoke");
        assert!(url.ends_with("/smoke"));
        let out = Command::new(pg.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-d",
                "smoke",
                "-tA",
                "-c",
                "SELECT 40 + 2",
            ])
            .arg("-p")
            .arg(pg.port().to_string())
            .output()
            .expect("psql");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
        let port = pg.port();
        drop(pg);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still listens after drop"
        );
    }
}
