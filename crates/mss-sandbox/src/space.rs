//! The whole trust space started together: PKI, PSC simulator, autoconfig, and the two
//! files a client needs: `sandbox.json` (everything, for tests and tools) and `mss.toml`
//! (a ready mss configuration, docs/configuration.md).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::autoconfig::{AutoconfigServer, AutoconfigSettings};
use crate::error::SandboxError;
use crate::identities::{self, BalKind, Patient};
use crate::operator::{Account, AccountKind, Operator, OperatorContext};
use crate::pki::Pki;
use crate::psc::{Professional, PscServer, PscSettings, SigningKey};
use crate::{fsio, random};

/// The sandbox operator's mail domain.
pub const DOMAIN: &str = "sandbox.mssante.fr";
/// The PSC client the sandbox registers for its users.
pub const CLIENT_ID: &str = "mss-sandbox";
/// The name of the operator's servers in autoconfig: a DNS name that resolves locally.
const MAIL_HOST: &str = "localhost";

/// How to start the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub dir: PathBuf,
    /// Ports base+0 (PSC), +1 (autoconfig), +2 (IMAP STARTTLS), +3 (submission), +4 (IMAPS);
    /// +5 (relay), and the second operator's +6 (IMAP), +7 (submission), +8 (IMAPS), +9 (relay);
    /// free ports when absent.
    pub port_base: Option<u16>,
    pub access_token_lifetime: Duration,
    pub ciba_delay: Duration,
}

impl SandboxOptions {
    pub fn new(dir: &Path) -> Self {
        SandboxOptions {
            dir: dir.to_owned(),
            port_base: None,
            access_token_lifetime: Duration::from_secs(300),
            ciba_delay: Duration::from_secs(2),
        }
    }
}

/// The PSC part of `sandbox.json`. Its Debug output hides the client secret.
#[derive(Serialize)]
pub struct PscInfo {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `kid` of the signing key, as in the JWKS.
    pub kid: String,
    /// The signing key's public half (PEM), for servers that validate tokens from a key
    /// file (Dovecot: `local_validation_key_dict`, file `<client_id>/RS256/<kid>`).
    pub public_key_pem: PathBuf,
    pub professionals: Vec<Professional>,
}

impl std::fmt::Debug for PscInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PscInfo")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// One mailbox in `sandbox.json`.
#[derive(Debug, Serialize)]
pub struct BalInfo {
    pub address: String,
    pub kind: BalKind,
    /// `psc` (XOAUTH2) or `certificate` (EXTERNAL).
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<PathBuf>,
}

/// Certificates for negative checks.
#[derive(Debug, Serialize)]
pub struct PkiInfo {
    pub intermediate_pem: PathBuf,
    pub server_chain_pem: PathBuf,
    pub server_key_pem: PathBuf,
    pub untrusted_ca_pem: PathBuf,
    pub untrusted_server_chain_pem: PathBuf,
    pub untrusted_server_key_pem: PathBuf,
}

/// The operator's ports (also announced by autoconfig).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OperatorPorts {
    pub imap: u16,
    pub smtp: u16,
    pub imaps: u16,
}

/// `sandbox.json`.
#[derive(Debug, Serialize)]
pub struct SandboxInfo {
    pub version: u32,
    pub domain: String,
    pub psc: PscInfo,
    /// IMAP with STARTTLS, `host:port`.
    pub imap: String,
    /// IMAP over implicit TLS, `host:port`.
    pub imaps: String,
    /// SMTP submission with STARTTLS, `host:port`.
    pub smtp: String,
    pub autoconfig: String,
    pub ca_pem: PathBuf,
    pub pki: PkiInfo,
    pub operator_ports: OperatorPorts,
    pub bals: Vec<BalInfo>,
    pub patients: Vec<Patient>,
    /// A CDA consultation report for each patient, in the same order, ready to send.
    pub documents: Vec<PathBuf>,
    pub config: PathBuf,
    /// Where other operators hand mail to this one (plain SMTP, STARTTLS offered).
    pub relay: String,
    /// Another operator, for mail between two operators (operator/second.rs).
    pub second_operator: crate::operator::second::SecondOperatorInfo,
}

/// A running sandbox; its servers stop when it is dropped.
#[derive(Debug)]
pub struct Sandbox {
    pub info: SandboxInfo,
    pub psc: PscServer,
    pub autoconfig: AutoconfigServer,
    pub operator: Operator,
    pub second_operator: Operator,
    /// Whether the PKI was made by this start.
    pub created: bool,
    pub started_in: Duration,
}

async fn bind(port: u16) -> Result<tokio::net::TcpListener, SandboxError> {
    tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| SandboxError::Listen { port, source })
}

fn port_of(listener: &tokio::net::TcpListener) -> Result<u16, SandboxError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| SandboxError::Listen { port: 0, source })
}

fn port_at(base: u16, offset: u16) -> Result<u16, SandboxError> {
    base.checked_add(offset)
        .ok_or_else(|| SandboxError::Listen {
            port: base,
            source: std::io::Error::other("--port-base too high: ten ports are needed"),
        })
}

impl Sandbox {
    /// Starts everything on 127.0.0.1 and writes `sandbox.json` and `mss.toml` in the
    /// directory (created if needed).
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let dir = absolute(&options.dir)?;
        std::fs::create_dir_all(&dir).map_err(SandboxError::io(&dir))?;

        let port = |offset: u16| match options.port_base {
            Some(base) => port_at(base, offset),
            None => Ok(0),
        };
        let psc_listener = bind(port(0)?).await?;
        let auto_listener = bind(port(1)?).await?;
        let imap_listener = bind(port(2)?).await?;
        let smtp_listener = bind(port(3)?).await?;
        let imaps_listener = bind(port(4)?).await?;
        let second_listeners = crate::operator::second::Listeners {
            first_relay: bind(port(5)?).await?,
            imap: bind(port(6)?).await?,
            smtp: bind(port(7)?).await?,
            imaps: bind(port(8)?).await?,
            relay: bind(port(9)?).await?,
        };
        let ports = OperatorPorts {
            imap: port_of(&imap_listener)?,
            smtp: port_of(&smtp_listener)?,
            imaps: port_of(&imaps_listener)?,
        };

        let names: Vec<String> = ["127.0.0.1", "localhost", DOMAIN]
            .iter()
            .map(|s| s.to_string())
            .chain(
                ["imap", "smtp", "autoconfig"]
                    .iter()
                    .map(|h| format!("{h}.{DOMAIN}")),
            )
            .collect();
        let pki = Pki::open(&dir, &names)?;
        let key = SigningKey::open(&dir.join("psc").join("signing-key.pem"))?;
        let kid = key.kid.clone();
        let verifying_key = key.verifying_key();
        let public_key_pem = dir.join("psc").join("signing-key.pub.pem");
        fsio::write(&public_key_pem, key.public_pem()?.as_bytes(), false)?;
        let secret = client_secret(&dir.join("psc").join("client-secret"))?;

        let professionals = identities::professionals(DOMAIN);
        let mut settings = PscSettings::new(CLIENT_ID, secret.clone(), professionals.clone());
        settings.access_token_lifetime = options.access_token_lifetime;
        settings.ciba_delay = options.ciba_delay;
        let psc = PscServer::start(psc_listener, settings, key)?;

        let autoconfig = AutoconfigServer::start(
            auto_listener,
            AutoconfigSettings {
                domains: vec![DOMAIN.into()],
                hostname: MAIL_HOST.into(),
                imap_port: ports.imap,
                imaps_port: ports.imaps,
                smtp_port: ports.smtp,
                psc_issuer: psc.issuer.clone(),
            },
        )?;

        let mut operator = Operator::start(
            Arc::new(OperatorContext::new(
                &dir.join("operator"),
                DOMAIN,
                accounts()?,
                &pki,
                &psc.issuer,
                CLIENT_ID,
                verifying_key.clone(),
            )?),
            imap_listener,
            imaps_listener,
            smtp_listener,
        )?;
        let (second_operator, second_info) = crate::operator::second::start(
            &dir,
            MAIL_HOST,
            &mut operator,
            second_listeners,
            &pki,
            &psc.issuer,
            CLIENT_ID,
            verifying_key,
        )?;

        let mut bals = Vec::new();
        for spec in identities::bals(DOMAIN) {
            let (cert, key) = match spec.kind {
                BalKind::App => {
                    let leaf = pki.client(&spec.address)?;
                    (Some(leaf.chain), Some(leaf.key))
                }
                _ => (None, None),
            };
            bals.push(BalInfo {
                auth: if spec.kind == BalKind::App {
                    "certificate"
                } else {
                    "psc"
                },
                address: spec.address,
                kind: spec.kind,
                login_hint: spec.login_hint,
                cert_pem: cert,
                key_pem: key,
            });
        }

        let patients = identities::patients()?;
        let documents = crate::documents::write_reports(&dir, &patients, &professionals[0])?;
        let config = dir.join("mss.toml");
        let info = SandboxInfo {
            version: 1,
            domain: DOMAIN.into(),
            psc: PscInfo {
                issuer: psc.issuer.clone(),
                client_id: CLIENT_ID.into(),
                client_secret: secret.expose_secret().to_owned(),
                kid,
                public_key_pem,
                professionals,
            },
            imap: format!("{MAIL_HOST}:{}", ports.imap),
            imaps: format!("{MAIL_HOST}:{}", ports.imaps),
            smtp: format!("{MAIL_HOST}:{}", ports.smtp),
            autoconfig: autoconfig.url.clone(),
            ca_pem: pki.root.clone(),
            pki: PkiInfo {
                intermediate_pem: pki.intermediate.clone(),
                server_chain_pem: pki.server.chain.clone(),
                server_key_pem: pki.server.key.clone(),
                untrusted_ca_pem: pki.untrusted_ca.clone(),
                untrusted_server_chain_pem: pki.untrusted_server.chain.clone(),
                untrusted_server_key_pem: pki.untrusted_server.key.clone(),
            },
            operator_ports: ports,
            bals,
            patients,
            documents,
            config: config.clone(),
            relay: format!("{MAIL_HOST}:{}", operator.relay.map_or(0, |a| a.port())),
            second_operator: second_info,
        };
        let json = serde_json::to_string_pretty(&info).map_err(|e| SandboxError::Io {
            path: dir.join("sandbox.json"),
            source: std::io::Error::other(e),
        })?;
        // It holds the PSC client secret: owner only.
        fsio::write(
            &dir.join("sandbox.json"),
            format!("{json}\n").as_bytes(),
            true,
        )?;
        fsio::write(
            &config,
            crate::config::mss_toml(&info, &dir).as_bytes(),
            true,
        )?;
        Ok(Sandbox {
            info,
            psc,
            autoconfig,
            operator,
            second_operator,
            created: pki.created,
            started_in: started.elapsed(),
        })
    }

    /// A short French and English summary for the terminal.
    pub fn summary(&self) -> String {
        let i = &self.info;
        let mut out = format!(
            "Bac à sable MSSanté prêt / MSSanté sandbox ready ({} ms{})\n\
             \x20 Pro Santé Connect : {}\n\
             \x20 Autoconfiguration : {}\n\
             \x20 Racine de confiance / trust anchor : {}\n\
             \x20 Configuration mss : {}\n\
             \x20 Description complète / full description : {}\n\
             \x20 BAL / mailboxes:\n",
            self.started_in.as_millis(),
            if self.created {
                ", PKI créée / PKI created"
            } else {
                ""
            },
            i.psc.issuer,
            i.autoconfig,
            i.ca_pem.display(),
            i.config.display(),
            i.config.with_file_name("sandbox.json").display(),
        );
        for bal in &i.bals {
            let how = match (&bal.login_hint, &bal.cert_pem) {
                (Some(hint), _) => format!("PSC, login_hint {hint}"),
                (None, Some(cert)) => format!("certificat / certificate {}", cert.display()),
                _ => String::new(),
            };
            out.push_str(&format!("    {:<45} {:?} ({how})\n", bal.address, bal.kind));
        }
        out.push_str(&format!(
            "  IMAP (STARTTLS) : {}   IMAPS : {}   SMTP (STARTTLS) : {}\n",
            i.imap, i.imaps, i.smtp
        ));
        let o = &i.second_operator;
        out.push_str(&format!(
            "  Second opérateur / second operator {} : IMAP {}   SMTP {}   BAL {}\n\
             Ctrl-C pour arrêter / Ctrl-C to stop.\n",
            o.domain,
            o.imap,
            o.smtp,
            o.bals
                .iter()
                .map(|b| b.address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out
    }
}

/// The operator's accounts: the professionals' mailboxes, and the patients' Mon espace santé
/// mailboxes (which receive only).
fn accounts() -> Result<Vec<Account>, SandboxError> {
    let mut accounts: Vec<Account> = identities::bals(DOMAIN)
        .into_iter()
        .map(|spec| Account {
            address: spec.address.to_ascii_lowercase(),
            kind: match spec.kind {
                BalKind::Per => AccountKind::Per,
                BalKind::Org => AccountKind::Org,
                BalKind::App => AccountKind::App,
            },
            holders: spec.login_hint.into_iter().collect(),
        })
        .collect();
    for patient in identities::patients()? {
        accounts.push(Account {
            address: patient.address.to_ascii_lowercase(),
            kind: AccountKind::Patient,
            holders: Vec::new(),
        });
    }
    Ok(accounts)
}

fn absolute(dir: &Path) -> Result<PathBuf, SandboxError> {
    if dir.is_absolute() {
        return Ok(dir.to_owned());
    }
    let cwd = std::env::current_dir().map_err(SandboxError::io(dir))?;
    Ok(cwd.join(dir))
}

/// The PSC client secret, made once and kept (mode 0600) so configurations stay valid.
fn client_secret(path: &Path) -> Result<SecretString, SandboxError> {
    if path.exists() {
        let text = fsio::read(path)?;
        let secret = text.trim();
        if secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(secret.to_owned().into());
        }
        return Err(SandboxError::Damaged {
            path: path.to_owned(),
            why: "not a sandbox client secret".into(),
        });
    }
    let secret = random::token()?;
    fsio::write(path, secret.as_bytes(), true)?;
    Ok(secret.into())
}
