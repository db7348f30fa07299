//! The sandbox's MSSanté operator: an IMAP server (STARTTLS and implicit TLS) and an SMTP
//! submission server over one mail store, authenticating with PSC tokens (XOAUTH2,
//! OAUTHBEARER) or IGC-style client certificates (EXTERNAL), and recording what clients
//! do for the conformance checks.

pub mod auth;
pub mod bounce;
pub mod delivery;
pub mod imap;
pub mod mailstore;
pub mod mes;
pub mod recorder;
pub mod relay;
pub mod second;
pub mod smtp;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::error::SandboxError;
use crate::pki::{Leaf, Pki};
use crate::psc::VerifyingKey;
use auth::PeerCertificate;
use mailstore::MailStore;
use recorder::Recorder;

/// How a mailbox logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// Personal (PSC, its owner).
    Per,
    /// Organisational (PSC, the professionals attached to it).
    Org,
    /// Applicative (client certificate).
    App,
    /// A Mon espace santé patient mailbox: receives mail, never logs in here.
    Patient,
}

/// A mailbox the operator serves.
#[derive(Debug, Clone)]
pub struct Account {
    /// Lower case.
    pub address: String,
    pub kind: AccountKind,
    /// National ids (PSC `sub`) allowed to open it.
    pub holders: Vec<String>,
}

/// Fault switches for the conformance checks' negative cases.
#[derive(Debug, Default)]
pub struct Faults {
    /// Present the server certificate of the CA nobody should trust.
    pub untrusted_certificate: AtomicBool,
    /// Refuse this many of the next bearer tokens, valid or not.
    pub refuse_tokens: AtomicU32,
}

/// Everything the protocol servers share.
#[derive(Debug)]
pub struct OperatorContext {
    /// The operator's mail domain.
    pub domain: String,
    pub accounts: Vec<Account>,
    pub store: MailStore,
    pub recorder: Recorder,
    pub psc_issuer: String,
    pub psc_client_id: String,
    pub tokens: VerifyingKey,
    pub faults: Faults,
    /// Mon espace santé conversations closed by `X-MSS-MES: FIN` (smtp side, mes.rs).
    pub mes: mes::Conversations,
    /// Other operators' relay listeners, by mail domain (set once both are started).
    pub peers: std::sync::RwLock<Vec<relay::Peer>>,
    tls: Arc<ServerConfig>,
    untrusted_tls: Arc<ServerConfig>,
}

impl OperatorContext {
    /// Builds the context from the sandbox's PKI and PSC key. Mail lives in `<dir>/mail`,
    /// the recording in `<dir>/recorder.jsonl`.
    pub fn new(
        dir: &Path,
        domain: &str,
        accounts: Vec<Account>,
        pki: &Pki,
        psc_issuer: &str,
        psc_client_id: &str,
        tokens: VerifyingKey,
    ) -> Result<OperatorContext, SandboxError> {
        let store = MailStore::open(&dir.join("mail"))?;
        for account in &accounts {
            store
                .ensure_account(&account.address)
                .map_err(|e| SandboxError::Identity(format!("{}: {e}", account.address)))?;
        }
        Ok(OperatorContext {
            domain: domain.to_ascii_lowercase(),
            accounts,
            store,
            recorder: Recorder::new(Some(&dir.join("recorder.jsonl"))),
            psc_issuer: psc_issuer.to_owned(),
            psc_client_id: psc_client_id.to_owned(),
            tokens,
            faults: Faults::default(),
            mes: mes::Conversations::open(&dir.join("mes-conversations.json"))?,
            peers: std::sync::RwLock::new(Vec::new()),
            tls: server_config(&pki.server, &pki.root)?,
            untrusted_tls: server_config(&pki.untrusted_server, &pki.root)?,
        })
    }

    /// The account of `address` (case-insensitive).
    pub fn account(&self, address: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.address.eq_ignore_ascii_case(address.trim()))
    }

    /// Runs the TLS handshake on a new or upgraded connection, records the negotiated
    /// version, suite and client certificate, and returns the identity the certificate
    /// proves (if any).
    pub async fn accept_tls(
        &self,
        service: &'static str,
        session: u64,
        tcp: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<PeerCertificate>)> {
        let config = if self.faults.untrusted_certificate.load(Ordering::Relaxed) {
            self.untrusted_tls.clone()
        } else {
            self.tls.clone()
        };
        let accepted = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio_rustls::TlsAcceptor::from(config).accept(tcp),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"));
        let stream = match accepted.and_then(|r| r) {
            Ok(stream) => stream,
            Err(e) => {
                self.recorder.record(
                    service,
                    session,
                    "tls",
                    json!({ "ok": false, "error": e.to_string() }),
                );
                return Err(e);
            }
        };
        let (_, conn) = stream.get_ref();
        let peer = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| peer_certificate(cert.as_ref()));
        self.recorder.record(
            service,
            session,
            "tls",
            json!({
                "ok": true,
                "version": conn.protocol_version().and_then(|v| v.as_str()),
                "suite": conn.negotiated_cipher_suite().and_then(|s| s.suite().as_str()),
                "client_certificate": peer.as_ref().map(|p| p.subject.clone()),
            }),
        );
        Ok((stream, peer))
    }
}

/// The operator's listening servers; they stop when this is dropped.
#[derive(Debug)]
pub struct Operator {
    pub context: Arc<OperatorContext>,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub smtp: SocketAddr,
    /// Plain SMTP with STARTTLS offered (like port 25), where other operators deliver.
    pub relay: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Operator {
    /// Serves IMAP (STARTTLS), IMAPS and submission (STARTTLS) on the given listeners.
    pub fn start(
        context: Arc<OperatorContext>,
        imap: TcpListener,
        imaps: TcpListener,
        smtp: TcpListener,
    ) -> Result<Operator, SandboxError> {
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_err(|source| SandboxError::Listen { port: 0, source })
        };
        let (imap_addr, imaps_addr, smtp_addr) = (addr(&imap)?, addr(&imaps)?, addr(&smtp)?);
        let tasks = vec![
            tokio::spawn(imap::serve(imap, context.clone(), false)),
            tokio::spawn(imap::serve(imaps, context.clone(), true)),
            tokio::spawn(smtp::serve(smtp, context.clone())),
        ];
        Ok(Operator {
            context,
            imap: imap_addr,
            imaps: imaps_addr,
            smtp: smtp_addr,
            relay: None,
            tasks,
        })
    }

    /// Also serves the relay side (mail from other operators, no AUTH) on `listener`.
    pub fn serve_relay(&mut self, listener: TcpListener) -> Result<SocketAddr, SandboxError> {
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen { port: 0, source })?;
        self.tasks.push(tokio::spawn(smtp::serve_relay(
            listener,
            self.context.clone(),
        )));
        self.relay = Some(addr);
        Ok(addr)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A TLS 1.2+ server configuration presenting `leaf`, asking for (not requiring) a client
/// certificate issued under `client_root`.
fn server_config(leaf: &Leaf, client_root: &Path) -> Result<Arc<ServerConfig>, SandboxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |path: &Path, why: String| SandboxError::Damaged {
        path: path.to_owned(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.chain)
        .and_then(|it| it.collect())
        .map_err(|e| bad(&leaf.chain, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&leaf.key).map_err(|e| bad(&leaf.key, e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(client_root).map_err(|e| bad(client_root, e.to_string()))?
    {
        roots
            .add(cert.map_err(|e| bad(client_root, e.to_string()))?)
            .map_err(|e| bad(client_root, e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(client_root, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&leaf.chain, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad(&leaf.chain, e.to_string()))?;
    Ok(Arc::new(config))
}

/// The mailbox a client certificate names: its e-mail SAN, else its CN.
fn peer_certificate(der: &[u8]) -> PeerCertificate {
    use x509_parser::prelude::*;
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return PeerCertificate {
            mailbox: None,
            subject: "(unreadable certificate)".into(),
        };
    };
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|ext| {
            ext.value.general_names.iter().find_map(|name| match name {
                GeneralName::RFC822Name(mail) => Some(mail.to_ascii_lowercase()),
                _ => None,
            })
        });
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase);
    PeerCertificate {
        mailbox: san.or(cn),
        subject: cert.subject().to_string(),
    }
}
