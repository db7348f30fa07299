//! An operator for one application mailbox, without Pro Santé Connect: the test PKI,
//! Dovecot (IMAP and submission with EXTERNAL, LMTP delivery) and Postfix behind its
//! submission, all on 127.0.0.1 (mss-testkit). Shared by the kill-and-restart test and
//! the end-to-end benchmark.
#![allow(dead_code)]

use mss_testkit::dovecot::{Dovecot, DovecotConfig};
use mss_testkit::pki::TestPki;
use mss_testkit::postfix::{Postfix, PostfixConfig};
use std::path::{Path, PathBuf};

pub const BAL: &str = "dpi.robot@test.local";
pub const SENDER: &str = "dr.house@test.local";

pub struct AppWorld {
    pub pki: TestPki,
    pub dovecot: Dovecot,
    pub postfix: Postfix,
    pub dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl AppWorld {
    /// `None` when a server is missing locally (a failure under scripts/test).
    pub fn start() -> Option<AppWorld> {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::Builder::new()
            .prefix("mss-app-world-")
            .tempdir()
            .expect("temporary directory");
        let dir = temp.path().to_path_buf();
        // Dovecot's and Postfix's unprivileged processes read certificates from here.
        std::fs::create_dir_all(dir.join("pki")).expect("pki directory");
        for sub in ["", "pki"] {
            std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let pki = TestPki::generate(&dir.join("pki")).expect("test PKI");
        let dovecot = Dovecot::start_or_skip(DovecotConfig::new(
            &pki.server.chain,
            &pki.server.key,
            &pki.ca_bundle,
        ))?;
        let postfix = Postfix::start_or_skip(
            &dovecot,
            PostfixConfig::new(&pki.server.chain, &pki.server.key, "test.local"),
        )?;
        Some(AppWorld {
            pki,
            dovecot,
            postfix,
            dir,
            _temp: temp,
        })
    }

    /// Writes `name/mss.toml` for the application mailbox [`BAL`] (its certificate,
    /// EXTERNAL on IMAP and submission), the store at `store_url` or SQLite in
    /// `name/data`. Returns the configuration's path and the store URL.
    pub fn config(&self, name: &str, store_url: Option<&str>) -> (PathBuf, String) {
        let home = self.dir.join(name);
        std::fs::create_dir_all(&home).expect("config directory");
        let leaf = self.pki.issue_client(BAL).expect("client certificate");
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let url = store_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite:{}", home.join("data").join("mss.db").display()));
        let text = format!(
            "[software]\nnil = \"MSS-TEST-NIL\"\ntest_identities = true\ndata_dir = \"data\"\n\n\
             [store]\nurl = {url:?}\n\n\
             [tls]\nanchors = [{root}]\n\n\
             [[bal]]\naddress = \"{BAL}\"\nkind = \"app\"\nimap = \"127.0.0.1:{imap}\"\nsmtp = \"127.0.0.1:{smtp}\"\nsecurity = \"starttls\"\nclient_cert = {cert}\nclient_key = {key}\n",
            root = q(&self.pki.root),
            imap = self.dovecot.imap_port,
            smtp = self.dovecot.submission_port,
            cert = q(&leaf.chain),
            key = q(&leaf.key),
        );
        let path = home.join("mss.toml");
        std::fs::write(&path, text).expect("write mss.toml");
        (path, url)
    }

    pub fn logs(&self) -> String {
        format!(
            "--- postfix\n{}\n--- dovecot\n{}",
            self.postfix.logs(),
            self.dovecot.logs()
        )
    }
}

/// The patient every generated document is for (the engine tests' support module), QUAL.
pub fn add_patient(mss: &Path, config: &Path) {
    let out = std::process::Command::new(mss)
        .arg("--config")
        .arg(config)
        .args([
            "patient",
            "add",
            "--matricule",
            "279035121518989",
            "--oid",
            "1.2.250.1.213.1.4.10",
            "--birth-name",
            "PAT-TROIS",
            "--first-given-name",
            "DOMINIQUE",
            "--given-names",
            "DOMINIQUE MARIE-LOUISE",
            "--birth-date",
            "1979-03-28",
            "--sex",
            "F",
            "--birthplace",
            "51215",
            "--status",
            "QUAL",
        ])
        .env_remove("MSS_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("mss patient add");
    assert!(
        out.status.success(),
        "mss patient add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
