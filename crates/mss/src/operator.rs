//! Everything a command needs to talk to an operator, built from `mss.toml`: the TLS
//! policy, the mailbox's servers, the PSC session, the trace file.

use crate::config::Config;
use anyhow::{Context, Result};
use mss_psc::{PscClient, PscError, PscSession};
use mss_transport::TransportError;
use mss_transport::autoconfig::{
    self, Explicit, HttpFetcher, Report, SrvError, SrvRecord, SrvResolver, SystemResolver,
};
use mss_transport::bal::{BalAuth, BalConfig};
use mss_transport::client::{BalClient, BalServers};
use mss_transport::supervisor::TokenSource;
use mss_transport::tls::TlsPolicy;
use mss_transport::trace::{TraceEvent, TraceSink};
use secrecy::SecretString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The PSC session as the transport sees it: a source of tokens that can end.
pub struct PscTokens(pub PscSession);

impl TokenSource for PscTokens {
    async fn token(&self) -> Result<SecretString, TransportError> {
        self.0.access_token().await.map_err(|error| match error {
            PscError::SessionOver(_) => TransportError::PscSessionOver,
            PscError::Network { url, detail } => TransportError::Network { host: url, detail },
            other => TransportError::Rejected {
                host: "Pro Santé Connect".to_owned(),
                detail: other.to_string(),
            },
        })
    }

    async fn refused(&self, token: &SecretString) {
        self.0.token_refused(token);
    }

    async fn ended(&self) {
        self.0.ended().await;
    }
}

/// Appends one JSON line per exchange with the operator to `data_dir/traces/transport.jsonl`.
/// The events are already redacted (no token, no content); the engine will move them to the
/// hash-chained journal.
pub struct TraceFile {
    file: Mutex<File>,
}

impl TraceFile {
    pub fn open(data_dir: &Path) -> Result<TraceFile> {
        let dir = data_dir.join("traces");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the trace directory {}", dir.display()))?;
        let path = dir.join("transport.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the trace file {}", path.display()))?;
        Ok(TraceFile {
            file: Mutex::new(file),
        })
    }
}

impl TraceSink for TraceFile {
    fn record(&self, event: TraceEvent) {
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        if let Ok(mut file) = self.file.lock() {
            // A trace that cannot be written must not stop the mail; say it once per event.
            if let Err(e) = file.write_all(&line) {
                eprintln!("mss: warning: a trace could not be written: {e}");
            }
        }
    }
}

pub fn tls_policy(config: &Config) -> Result<Arc<TlsPolicy>> {
    let policy = TlsPolicy::from_settings(&config.tls)?;
    for warning in policy.warnings() {
        eprintln!("mss: warning: {warning}");
    }
    Ok(Arc::new(policy))
}

/// Where the mailbox's servers are: its `[[bal]]` table, else autoconfiguration.
pub async fn discover(
    config: &Config,
    policy: &TlsPolicy,
    bal: Option<&BalConfig>,
    address: &str,
) -> Result<Report> {
    let explicit = bal.and_then(|bal| {
        Some(Explicit {
            imap: bal.imap.clone()?,
            smtp: bal.smtp.clone()?,
            security: bal.security,
        })
    });
    let fetcher = HttpFetcher::new(policy.http_tls_config())?;
    // A machine without a usable DNS configuration can still use servers given by hand: the
    // resolver's failure is then reported as an attempt, not as the end of the command.
    let resolver = SystemResolver::from_system().map_err(NoDns);
    let report = match &resolver {
        Ok(resolver) => {
            autoconfig::discover(
                address,
                explicit.as_ref(),
                &config.autoconfig,
                resolver,
                &fetcher,
            )
            .await
        }
        Err(no_dns) => {
            autoconfig::discover(
                address,
                explicit.as_ref(),
                &config.autoconfig,
                no_dns,
                &fetcher,
            )
            .await
        }
    };
    Ok(report)
}

/// Stands for the resolver when the system's DNS configuration cannot be read.
struct NoDns(String);

impl SrvResolver for NoDns {
    async fn lookup(&self, _name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        Err(SrvError::Failed(self.0.clone()))
    }
}

/// Logs in to Pro Santé Connect with the `[psc]` settings (CIBA or browser), as the
/// professional `login_hint` names when given (a mailbox's own), else `[psc] login_hint`.
pub async fn psc_login(config: &Config, login_hint: Option<&str>) -> Result<PscSession> {
    let mut psc = config
        .psc
        .clone()
        .context("no [psc] section in the configuration")?;
    if let Some(hint) = login_hint {
        psc.login_hint = Some(hint.to_owned());
    }
    if psc.flow == mss_psc::Flow::Ciba {
        eprintln!("mss: approve the Pro Santé Connect login on your device (e-CPS)…");
    }
    let client = PscClient::new(psc).await?;
    Ok(client.login().await?)
}

/// A ready client for one mailbox; PSC mailboxes log in first.
pub struct Operator {
    pub client: BalClient<PscTokens>,
    pub psc: Option<PscSession>,
}

impl Operator {
    pub async fn open(config: &Config, bal: &BalConfig) -> Result<Operator> {
        let trace = Arc::new(TraceFile::open(&config.software.data_dir)?);
        Self::open_with_trace(config, bal, trace).await
    }

    /// Same as [`Operator::open`], with the exchanges traced to `trace` (`mss run` writes
    /// them to the store's journal).
    pub async fn open_with_trace(
        config: &Config,
        bal: &BalConfig,
        trace: Arc<dyn TraceSink>,
    ) -> Result<Operator> {
        let policy = tls_policy(config)?;
        let servers = discover(config, &policy, Some(bal), &bal.address).await?;
        let servers = BalServers::discovered(servers.servers()?);
        let psc = match bal.auth() {
            BalAuth::Psc => Some(psc_login(config, bal.login_hint.as_deref()).await?),
            BalAuth::Certificate => None,
        };
        let tokens = psc.clone().map(|session| Arc::new(PscTokens(session)));
        let client = BalClient::new(bal.clone(), servers, policy, tokens, trace)?;
        Ok(Operator { client, psc })
    }

    /// Ends the PSC session (tokens die with the process anyway; this tells PSC).
    pub async fn close(self) {
        if let Some(psc) = self.psc
            && let Err(e) = psc.logout().await
        {
            eprintln!("mss: warning: {e}");
        }
    }
}

/// Where the sync position of a mailbox's folder is kept between runs.
pub fn sync_state_path(data_dir: &Path, address: &str, folder: &str) -> PathBuf {
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.-_+".contains(c) {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    data_dir
        .join("sync")
        .join(safe(address))
        .join(format!("{}.json", safe(folder)))
}
