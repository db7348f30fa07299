//! One configured mailbox, ready to use: its servers, its TLS policy, its credentials, and
//! the supervisor around every operation.
//!
//! Each method opens what it needs, does its work, and reopens by itself when the connection
//! drops or the token is refused ([`crate::supervisor`]). State that must survive a reopen
//! (the sync position, the messages already received) lives outside the attempt, so a cut
//! never loses a message nor delivers one twice.

use crate::bal::{BalAuth, BalConfig};
use crate::error::TransportError;
use crate::imap::{self, Credentials, FetchedMessage, ImapOptions, ImapSession, SyncState};
use crate::smtp::{Envelope, Receipt, SmtpOptions, SmtpSession};
use crate::supervisor::{BalStatus, RetryPolicy, TokenSource, supervise};
use crate::tls::{ClientIdentity, CrlUpdate, TlsPolicy};
use crate::trace::TraceSink;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where a mailbox's servers are, with how each secures its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalServers {
    pub imap: imap::Endpoint,
    pub smtp: imap::Endpoint,
}

impl BalServers {
    /// The servers written in the `[[bal]]` table, if both are there.
    pub fn explicit(bal: &BalConfig) -> Option<BalServers> {
        let security = bal.security;
        let (imap, smtp) = (bal.imap.as_ref()?, bal.smtp.as_ref()?);
        Some(BalServers {
            imap: imap::Endpoint::new(imap.host.clone(), imap.port, security),
            smtp: imap::Endpoint::new(smtp.host.clone(), smtp.port, security),
        })
    }

    /// The servers autoconfiguration found.
    pub fn discovered(servers: &crate::autoconfig::Servers) -> BalServers {
        let convert = |server: &crate::autoconfig::Server| {
            imap::Endpoint::new(
                server.endpoint.host.clone(),
                server.endpoint.port,
                server.security,
            )
        };
        BalServers {
            imap: convert(&servers.imap),
            smtp: convert(&servers.smtp),
        }
    }
}

/// What one sync brought.
#[derive(Debug, Default)]
pub struct Fetched {
    pub messages: Vec<FetchedMessage>,
    /// (uid, size) of messages too large to download; they stay on the server.
    pub oversized: Vec<(u32, u32)>,
    /// The server renumbered the folder (UIDVALIDITY changed): everything was fetched again.
    pub uidvalidity_changed: bool,
}

pub struct BalClient<S> {
    bal: BalConfig,
    servers: BalServers,
    tls: Arc<TlsPolicy>,
    identity: Option<ClientIdentity>,
    tokens: Option<Arc<S>>,
    trace: Arc<dyn TraceSink>,
    policy: RetryPolicy,
    status: watch::Sender<BalStatus>,
    timeout: Duration,
}

impl<S: TokenSource> BalClient<S> {
    /// `tokens` is required for PSC mailboxes and ignored for certificate ones, whose
    /// certificate is loaded here (a missing or unreadable file is reported now, not at the
    /// first connection).
    pub fn new(
        bal: BalConfig,
        servers: BalServers,
        tls: Arc<TlsPolicy>,
        tokens: Option<Arc<S>>,
        trace: Arc<dyn TraceSink>,
    ) -> Result<Self, TransportError> {
        let (identity, tokens) = match bal.auth() {
            BalAuth::Certificate => (Some(load_identity(&bal)?), None),
            BalAuth::Psc => {
                let tokens = tokens.ok_or_else(|| {
                    TransportError::Config(format!(
                        "{} logs in with Pro Santé Connect: log in first",
                        bal.address
                    ))
                })?;
                (None, Some(tokens))
            }
        };
        let (status, _) = watch::channel(BalStatus::Idle);
        Ok(BalClient {
            bal,
            servers,
            tls,
            identity,
            tokens,
            trace,
            policy: RetryPolicy::default(),
            status,
            timeout: Duration::from_secs(60),
        })
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Longest wait for any single server answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn address(&self) -> &str {
        &self.bal.address
    }

    pub fn servers(&self) -> &BalServers {
        &self.servers
    }

    /// What the user sees of this mailbox, updated as the supervisor works.
    pub fn status(&self) -> watch::Receiver<BalStatus> {
        self.status.subscribe()
    }

    /// The TLS configuration (with the APP certificate) and the credentials of one attempt.
    fn login<'a>(
        &'a self,
        token: Option<&'a SecretString>,
    ) -> Result<(Arc<rustls::ClientConfig>, Credentials<'a>), TransportError> {
        let tls = self.tls.client_config(self.identity.as_ref())?;
        let credentials = match token {
            Some(token) => Credentials::Token {
                user: &self.bal.address,
                token,
            },
            None => Credentials::Certificate { authzid: None },
        };
        Ok((tls, credentials))
    }

    async fn open_imap(&self, token: Option<&SecretString>) -> Result<ImapSession, TransportError> {
        let connect = async || {
            let (tls, credentials) = self.login(token)?;
            let mut options = ImapOptions::new(self.bal.address.clone());
            options.timeout = self.timeout;
            let trace = self.trace.clone();
            ImapSession::connect(&self.servers.imap, tls, credentials, trace, options).await
        };
        self.with_fresh_crls(connect).await
    }

    async fn open_smtp(&self, token: Option<&SecretString>) -> Result<SmtpSession, TransportError> {
        let connect = async || {
            let (tls, credentials) = self.login(token)?;
            let mut options = SmtpOptions::new(self.bal.address.clone());
            options.timeout = self.timeout;
            let trace = self.trace.clone();
            SmtpSession::connect(&self.servers.smtp, tls, credentials, trace, options).await
        };
        self.with_fresh_crls(connect).await
    }

    /// A server refused for want of a valid CRL gets one more try once the CRLs its
    /// certificate points to have been fetched (SC.MSS/CONF.22); a revoked certificate stays
    /// refused, since the fresh CRL still lists it.
    async fn with_fresh_crls<T>(
        &self,
        connect: impl AsyncFn() -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        match connect().await {
            Err(error @ TransportError::Tls { .. }) if !self.tls.crl_urls_needed().is_empty() => {
                let updates = self.tls.refresh_crls().await;
                let fresh = updates
                    .iter()
                    .any(|(_, update)| matches!(update, CrlUpdate::Stored { .. }));
                if fresh { connect().await } else { Err(error) }
            }
            other => other,
        }
    }

    /// Fetches every message of `folder` after `state`, in batches of `batch` messages.
    /// `state` moves only past messages actually received, so an attempt cut half-way is
    /// continued by the next one from where it stopped.
    pub async fn fetch_new(
        &self,
        folder: &str,
        state: &mut SyncState,
        batch: usize,
    ) -> Result<Fetched, TransportError> {
        let (fetched, _) = self.fetch_some(folder, state, batch, usize::MAX).await?;
        Ok(fetched)
    }

    /// Like [`fetch_new`](Self::fetch_new), but stops once `max` messages or more were
    /// received, so the caller can store them before asking for the rest (memory stays
    /// bounded by `max` + `batch` messages). The flag says whether the server has more.
    pub async fn fetch_some(
        &self,
        folder: &str,
        state: &mut SyncState,
        batch: usize,
        max: usize,
    ) -> Result<(Fetched, bool), TransportError> {
        let mut fetched = Fetched::default();
        let mut more = false;
        supervise(
            &self.policy,
            self.tokens.as_deref(),
            &self.status,
            async |token: Option<SecretString>| {
                let mut session = self.open_imap(token.as_ref()).await?;
                let selected = session.select(folder, state).await?;
                if selected.uidvalidity_changed {
                    // Everything is fetched again; what we had belongs to the old numbering.
                    fetched.messages.clear();
                    fetched.oversized.clear();
                    fetched.uidvalidity_changed = true;
                }
                loop {
                    let new = session.fetch_new(state, batch).await?;
                    fetched.messages.extend(new.messages);
                    fetched.oversized.extend(new.oversized);
                    more = new.more;
                    if !more || fetched.messages.len() >= max {
                        break;
                    }
                }
                session.logout().await;
                Ok(())
            },
        )
        .await?;
        Ok((fetched, more))
    }

    /// Follows `folder`: fetches what is new, hands each message to `deliver`, then waits in
    /// IDLE (or sleeps `wait` when the server has no IDLE) and starts again — on the same
    /// connection, so nothing that arrives between a fetch and the next IDLE is missed.
    /// Returns when `deliver` is closed (its receiver dropped); reopens on every failure.
    pub async fn follow(
        &self,
        folder: &str,
        state: &mut SyncState,
        deliver: &mpsc::Sender<FetchedMessage>,
        wait: Duration,
    ) -> Result<(), TransportError> {
        supervise(
            &self.policy,
            self.tokens.as_deref(),
            &self.status,
            async |token: Option<SecretString>| {
                let mut session = self.open_imap(token.as_ref()).await?;
                session.select(folder, state).await?;
                self.status.send_replace(BalStatus::Connected);
                loop {
                    loop {
                        let new = session.fetch_new(state, 200).await?;
                        for message in new.messages {
                            if deliver.send(message).await.is_err() {
                                session.logout().await;
                                return Ok(());
                            }
                        }
                        if !new.more {
                            break;
                        }
                    }
                    if deliver.is_closed() {
                        session.logout().await;
                        return Ok(());
                    }
                    if session.has("IDLE") {
                        session.idle(wait).await?;
                    } else {
                        tokio::time::sleep(wait).await;
                        // A NOOP-like re-select makes the server report new messages.
                        session.select(folder, state).await?;
                    }
                }
            },
        )
        .await
    }

    /// Submits `message` exactly as given. A connection cut before the server accepted the
    /// data is retried; the server discards a message whose DATA did not end.
    pub async fn submit(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Receipt, TransportError> {
        supervise(
            &self.policy,
            self.tokens.as_deref(),
            &self.status,
            async |token: Option<SecretString>| {
                let mut session = self.open_smtp(token.as_ref()).await?;
                let receipt = session.submit(envelope, message).await?;
                session.quit().await;
                Ok(receipt)
            },
        )
        .await
    }

    /// Keeps a copy of a sent message in the Sent folder (the one marked `\Sent`, else
    /// `Sent`, created if needed), marked as read.
    pub async fn append_sent(&self, message: &[u8]) -> Result<String, TransportError> {
        supervise(
            &self.policy,
            self.tokens.as_deref(),
            &self.status,
            async |token: Option<SecretString>| {
                let mut session = self.open_imap(token.as_ref()).await?;
                let folder = match session.sent_folder().await? {
                    Some(folder) => folder,
                    None => {
                        session.create_folder("Sent").await?;
                        "Sent".to_owned()
                    }
                };
                session.append(&folder, &["\\Seen"], message).await?;
                session.logout().await;
                Ok(folder)
            },
        )
        .await
    }
}

/// The application certificate of a BAL APP: a PEM chain and key, or a PKCS#12 bundle whose
/// password comes from `MSS_P12_PASSWORD` (never from the configuration file).
fn load_identity(bal: &BalConfig) -> Result<ClientIdentity, TransportError> {
    let cert = bal.client_cert.as_deref().ok_or_else(|| {
        TransportError::Config(format!("{}: client_cert is missing", bal.address))
    })?;
    let is_p12 = cert
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"));
    if is_p12 {
        let password = SecretString::from(std::env::var("MSS_P12_PASSWORD").unwrap_or_default());
        return ClientIdentity::from_pkcs12_file(cert, &password);
    }
    let key: &Path = bal.client_key.as_deref().unwrap_or(cert);
    ClientIdentity::from_pem_files(cert, key)
}
