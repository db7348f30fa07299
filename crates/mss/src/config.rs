//! `mss.toml`: the one configuration file (documented in docs/configuration.md).
//!
//! Relative paths in the file are relative to the file itself, so a configuration and its
//! certificates can be moved together (the sandbox writes one next to its PKI).

use anyhow::{Context, Result, bail};
use mss_transport::autoconfig::AutoconfigSettings;
use mss_transport::bal::{BalAuth, BalConfig};
use mss_transport::tls::TlsSettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest configuration file read: it is hand-written text, not data.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub software: Software,
    #[serde(default)]
    pub tls: TlsSettings,
    pub psc: Option<mss_psc::PscConfig>,
    #[serde(default)]
    pub autoconfig: AutoconfigSettings,
    #[serde(default, rename = "bal")]
    pub bals: Vec<BalConfig>,
    #[serde(default)]
    pub store: StoreSettings,
    /// Where the file was read from (not a key).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// The software's national reference, sent as X-MSS-NIL.
    pub nil: String,
    /// Count test and demonstration INS as INS (X-MSS-INS); never in production.
    #[serde(default)]
    pub test_identities: bool,
    /// Where mss keeps its state: CRLs, traces, later the store.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

/// `[store]`: where mss keeps messages, documents, patients and traces (docs/store.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite:PATH` or `postgres://…`; default `sqlite:<data_dir>/mss.db`.
    pub url: Option<String>,
    /// Traces older than this are pruned; 0 keeps them all.
    #[serde(default = "default_retention")]
    pub trace_retention_days: u32,
    /// Apply a deletion the sender asks for without asking a person.
    #[serde(default)]
    pub auto_delete: bool,
    /// Largest message, attachment or document stored, in MiB.
    pub max_message_mib: Option<u32>,
    /// SQLite: `full` waits for the disk at every commit; `normal` only at checkpoints.
    #[serde(default)]
    pub sqlite_synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: None,
            trace_retention_days: default_retention(),
            auto_delete: false,
            max_message_mib: None,
            sqlite_synchronous: SqliteSynchronous::Full,
        }
    }
}

fn default_retention() -> u32 {
    183
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("mss-data")
}

impl Config {
    /// Reads and checks the file; every error names the file and the key at fault.
    pub fn load(path: &Path) -> Result<Config> {
        let shown = path.display();
        let file = std::fs::File::open(path).with_context(|| {
            format!("cannot read the configuration {shown} (give one with --config or MSS_CONFIG)")
        })?;
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the configuration {shown}"))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            bail!("the configuration {shown} is larger than 1 MiB: is it the right file?");
        }
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}: {}", one_line(&e.to_string())))?;
        config.path = path.to_owned();
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.software.data_dir);
        self.tls.anchors.iter_mut().for_each(join);
        if let Some(dir) = &mut self.tls.crl_dir {
            join(dir);
        }
        for bal in &mut self.bals {
            if let Some(p) = &mut bal.client_cert {
                join(p);
            }
            if let Some(p) = &mut bal.client_key {
                join(p);
            }
        }
        if let Some(psc) = &mut self.psc {
            psc.resolve_paths(base);
        }
    }

    fn validate(&self) -> Result<(), String> {
        let nil = self.software.nil.trim();
        if nil.is_empty() || nil.contains(['\r', '\n']) {
            return Err(
                "software.nil must be the software's national reference (X-MSS-NIL)".into(),
            );
        }
        for (i, bal) in self.bals.iter().enumerate() {
            bal.validate()?;
            if self.bals[..i]
                .iter()
                .any(|other| other.address.eq_ignore_ascii_case(&bal.address))
            {
                return Err(format!("bal `{}` is described twice", bal.address));
            }
            if bal.auth() == BalAuth::Psc && self.psc.is_none() {
                return Err(format!(
                    "bal `{}` logs in with Pro Santé Connect: add a [psc] section",
                    bal.address
                ));
            }
        }
        if !self.bals.is_empty() && self.tls.anchors.is_empty() {
            return Err("tls.anchors is empty: give the IGC Santé roots to trust".into());
        }
        Ok(())
    }

    /// The store URL: `[store] url`, else the SQLite file in the data directory. A relative
    /// SQLite path is relative to the configuration file, like every other path.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => {
                let base = self.path.parent().unwrap_or(Path::new("."));
                match url.strip_prefix("sqlite:") {
                    Some(p) if !p.starts_with('/') && !p.is_empty() => {
                        format!("sqlite:{}", base.join(p).display())
                    }
                    _ => url.clone(),
                }
            }
            None => format!("sqlite:{}", self.software.data_dir.join("mss.db").display()),
        }
    }

    /// The mailbox named on the command line, or the only one configured.
    pub fn bal(&self, address: Option<&str>) -> Result<&BalConfig> {
        match address {
            Some(address) => self
                .bals
                .iter()
                .find(|b| b.address.eq_ignore_ascii_case(address))
                .with_context(|| format!("no mailbox {address} in {}", self.path.display())),
            None => match self.bals.as_slice() {
                [only] => Ok(only),
                [] => bail!("no [[bal]] in {}", self.path.display()),
                _ => bail!("several mailboxes are configured: choose one with --bal"),
            },
        }
    }
}

/// toml's messages span several lines with a caret drawing; users get one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mss.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    const PSC: &str = "[psc]\nissuer = \"https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet\"\nclient_id = \"x\"\nclient_secret = \"s\"\n";

    #[test]
    fn the_contract_of_the_issue_loads_and_paths_follow_the_file() {
        let text = format!(
            "[software]\nnil = \"REF\"\n\n[tls]\nanchors = [\"pki/root.pem\"]\ncrl_dir = \"crl\"\n\n{PSC}flow = \"ciba\"\nlogin_hint = \"899700000001\"\nscope = \"openid scope_all\"\nacr_values = \"eidas1\"\n\n[[bal]]\naddress = \"jean.dupont@hopital.mssante.fr\"\nkind = \"per\"\nauth = \"psc\"\nimap = \"imap.example:143\"\nsmtp = \"smtp.example:587\"\nsecurity = \"starttls\"\n\n[[bal]]\naddress = \"dpi@hopital.mssante.fr\"\nkind = \"app\"\nclient_cert = \"pki/app.pem\"\nclient_key = \"pki/app.key\"\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mss.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.tls.anchors, [dir.path().join("pki/root.pem")]);
        assert_eq!(config.software.data_dir, dir.path().join("mss-data"));
        assert_eq!(config.bals.len(), 2);
        assert_eq!(
            config.bals[1].client_cert.as_deref(),
            Some(dir.path().join("pki/app.pem").as_path())
        );
        assert_eq!(
            config.bal(Some("DPI@hopital.mssante.fr")).unwrap().address,
            "dpi@hopital.mssante.fr"
        );
        assert!(config.bal(None).unwrap_err().to_string().contains("--bal"));
    }

    #[test]
    fn mistakes_are_named_in_one_line() {
        let cases = [
            ("[software]\nnil = \"REF\"\nnill = 1\n", "nill"),
            ("[software]\nnil = \"\"\n", "software.nil"),
            (
                "[software]\nnil = \"REF\"\n[[bal]]\naddress = \"a@b.fr\"\nkind = \"per\"\n",
                "[psc]",
            ),
            (
                &format!(
                    "[software]\nnil = \"REF\"\n{PSC}[[bal]]\naddress = \"a@b.fr\"\nkind = \"per\"\n"
                ),
                "tls.anchors",
            ),
            (
                &format!(
                    "[software]\nnil = \"REF\"\n[tls]\nanchors = [\"r.pem\"]\n{PSC}[[bal]]\naddress = \"a@b.fr\"\nkind = \"app\"\n"
                ),
                "client_cert",
            ),
            (
                &format!(
                    "[software]\nnil = \"REF\"\n[tls]\nanchors = [\"r.pem\"]\n{PSC}[[bal]]\naddress = \"a@b.fr\"\nkind = \"per\"\n[[bal]]\naddress = \"A@b.fr\"\nkind = \"org\"\n"
                ),
                "twice",
            ),
            (
                "[software]\nnil = \"REF\"\n[[bal]]\naddress = \"a@b.fr\"\nkind = \"per\"\nimap = \"nohost\"\n",
                "host:port",
            ),
        ];
        for (text, needle) in cases {
            let error = format!("{:#}", load(text).unwrap_err());
            assert!(error.contains(needle), "{needle}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn the_store_defaults_to_a_file_in_the_data_dir() {
        let config = load("[software]\nnil = \"REF\"\n").unwrap();
        assert!(config.store_url().starts_with("sqlite:"));
        assert!(config.store_url().ends_with("mss-data/mss.db"));
        assert_eq!(config.store.trace_retention_days, 183);
        assert!(!config.store.auto_delete);
        assert_eq!(config.store.sqlite_synchronous, SqliteSynchronous::Full);
        let normal =
            load("[software]\nnil = \"REF\"\n[store]\nsqlite_synchronous = \"normal\"\n").unwrap();
        assert_eq!(normal.store.sqlite_synchronous, SqliteSynchronous::Normal);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mss.toml");
        std::fs::write(&path, "[software]\nnil = \"REF\"\n[store]\nurl = \"sqlite:db/x.db\"\ntrace_retention_days = 0\nauto_delete = true\n").unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config.store_url(),
            format!("sqlite:{}", dir.path().join("db/x.db").display())
        );
        assert!(config.store.auto_delete);
        let error = format!(
            "{:#}",
            load("[software]\nnil = \"REF\"\n[store]\nurll = 1\n").unwrap_err()
        );
        assert!(error.contains("urll"), "{error}");
    }

    #[test]
    fn a_missing_file_says_how_to_give_one() {
        let error = Config::load(Path::new("/nonexistent/mss.toml")).unwrap_err();
        assert!(format!("{error:#}").contains("--config"));
    }
}
