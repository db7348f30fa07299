//! An authenticated IMAP session with an MSSanté operator.
//!
//! TLS comes from the caller's [`rustls::ClientConfig`] (the IGC Santé policy of
//! [`crate::tls`]); the session never trusts anything else. STARTTLS (port 143) is the
//! documented mode: if the server does not accept `STARTTLS`, the session stops before any
//! credential is sent. Implicit TLS (993) is supported for autoconfigured servers.
//! Capabilities are read again after TLS and after login, as RFC 3501 requires.
//!
//! BAL PER/ORG authenticate with `AUTHENTICATE XOAUTH2` and the Pro Santé Connect token (the
//! server must advertise `AUTH=XOAUTH2`; `AUTH=OAUTHBEARER` alone is used as a fallback);
//! BAL APP with `AUTHENTICATE EXTERNAL` and the client certificate carried by the TLS config.
//! The async-imap client has no SASL-IR: the initial response always goes after the `+`
//! continuation (one more round trip, and no long command line for servers that cap it).
//!
//! Every command and its tagged answer go to the [`TraceSink`] (redacted, no message content).
//! Every wait is bounded by [`ImapOptions::timeout`]; messages larger than
//! [`ImapOptions::max_message_size`] are listed as oversized and never downloaded.
//!
//! ```no_run
//! # async fn demo(tls: std::sync::Arc<rustls::ClientConfig>, token: secrecy::SecretString)
//! # -> Result<(), mss_transport::TransportError> {
//! use mss_transport::imap::{Endpoint, Credentials, ImapOptions, ImapSession, Security, SyncState};
//! use mss_transport::trace::MemorySink;
//! use std::sync::Arc;
//!
//! let user = "jean.dupont@hopital.mssante.fr";
//! let endpoint = Endpoint::new("imap.hopital.mssante.fr", 143, Security::StartTls);
//! let mut session = ImapSession::connect(
//!     &endpoint,
//!     tls,
//!     Credentials::Token { user, token: &token },
//!     Arc::new(MemorySink::default()),
//!     ImapOptions::new(user),
//! )
//! .await?;
//! let mut state = SyncState::default(); // persisted by the caller between runs
//! session.select("INBOX", &mut state).await?;
//! let changes = session.changes(&mut state).await?; // flags changed, messages vanished
//! loop {
//!     let batch = session.fetch_new(&mut state, 200).await?;
//!     for message in &batch.messages {
//!         // store message.raw before anything else, keyed by (uidvalidity, uid)
//!     }
//!     if !batch.more { break; }
//! }
//! session.logout().await;
//! # let _ = changes; Ok(()) }
//! ```

pub(crate) mod budget;
pub(crate) mod handshake;
mod mailbox;

pub use mailbox::{
    Changes, FetchedMessage, FlagChange, FlagOp, Folder, IdleEvent, NewMessages, Selected,
    SyncState,
};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Capability, Response, Status};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use crate::bal::Security;
pub use crate::sasl::Credentials;

use crate::error::TransportError;
use crate::sasl::{Mechanism, SaslClient};
use crate::trace::{Action, Outcome, TraceEvent, TraceSink};

/// The stream every session runs on.
pub(crate) type Stream = budget::Budgeted<TlsStream<TcpStream>>;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Self {
        Endpoint {
            host: host.into(),
            port,
            security,
        }
    }

    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Bounds and identity of a session.
#[derive(Debug, Clone)]
pub struct ImapOptions {
    /// The mailbox on whose behalf commands are sent (the author of traces).
    pub author: String,
    /// Longest wait for any single server answer (connect, handshake, each response line).
    pub timeout: Duration,
    /// Messages larger than this are never downloaded (listed in [`NewMessages::oversized`]).
    pub max_message_size: u32,
}

impl ImapOptions {
    /// 30 s per answer, 50 MB per message (MSSanté operators cap messages well below that).
    pub fn new(author: impl Into<String>) -> Self {
        ImapOptions {
            author: author.into(),
            timeout: Duration::from_secs(30),
            max_message_size: 50 * 1024 * 1024,
        }
    }
}

/// An authenticated IMAP session. See the module documentation for an example.
pub struct ImapSession {
    /// `None` once a failed IDLE consumed the connection: every later call says so.
    session: Option<async_imap::Session<Stream>>,
    host: String,
    options: ImapOptions,
    trace: Arc<dyn TraceSink>,
    capabilities: BTreeSet<String>,
    qresync: bool,
    tags: u32,
    /// What the answer to the next command may take (see [`budget`]).
    budget: budget::Budget,
    current: Option<Selected>,
    /// UIDs (and sizes) listed but not fetched yet in the selected folder.
    pending: std::collections::VecDeque<(u32, u32)>,
}

impl std::fmt::Debug for ImapSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSession")
            .field("host", &self.host)
            .field("author", &self.options.author)
            .field("selected", &self.current.as_ref().map(|s| &s.folder))
            .finish_non_exhaustive()
    }
}

impl ImapSession {
    /// Connects, secures, authenticates and reads the capabilities. On a refused token the
    /// error is [`TransportError::TokenRefused`] (the server's error challenge has been
    /// answered); on a refused certificate, [`TransportError::CertificateRefused`].
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Arc<rustls::ClientConfig>,
        auth: Credentials<'_>,
        trace: Arc<dyn TraceSink>,
        options: ImapOptions,
    ) -> Result<ImapSession, TransportError> {
        let mut conn = Conn {
            host: endpoint.label(),
            author: options.author.clone(),
            trace: trace.clone(),
            timeout: options.timeout,
            budget: budget::Budget::default(),
        };
        conn.budget.set(budget::ORDINARY);
        let stream = conn.open(endpoint, tls).await?;
        let mut client = async_imap::Client::new(stream);
        if endpoint.security == Security::Tls {
            conn.greeting(&mut client).await?;
        }
        let mut tags = 0;
        let caps = conn.capabilities(&mut client, &mut tags).await?;
        let session = conn.authenticate(client, auth, &caps).await?;
        let mut me = ImapSession {
            session: Some(session),
            host: conn.host,
            options,
            trace,
            capabilities: BTreeSet::new(),
            qresync: false,
            tags,
            budget: conn.budget,
            current: None,
            pending: Default::default(),
        };
        me.refresh_capabilities().await?;
        if me.has("QRESYNC") {
            let done = me
                .raw(Action::Capability, "ENABLE QRESYNC", |_| Ok(()))
                .await?;
            me.qresync = done.ok;
        }
        Ok(me)
    }

    /// True if the server advertised this capability (after login), e.g. `CONDSTORE`.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(&capability.to_ascii_uppercase())
    }

    /// The capabilities advertised after login, upper-cased.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities.iter().map(String::as_str)
    }

    /// True once `ENABLE QRESYNC` succeeded: [`ImapSession::changes`] then reports vanished UIDs.
    pub fn qresync(&self) -> bool {
        self.qresync
    }

    /// Says goodbye; errors are ignored (the connection is dropped either way).
    pub async fn logout(mut self) {
        let timeout = self.options.timeout;
        if let Some(mut s) = self.session.take() {
            let r = tokio::time::timeout(timeout, s.logout()).await;
            let ok = matches!(r, Ok(Ok(())));
            self.record(
                Action::Logout,
                "LOGOUT",
                if ok { "OK" } else { "no answer" },
                ok,
            );
        }
    }

    async fn refresh_capabilities(&mut self) -> Result<(), TransportError> {
        let mut caps = BTreeSet::new();
        self.raw(Action::Capability, "CAPABILITY", |r| {
            if let Response::Capabilities(list) = r {
                caps.extend(list.iter().map(cap_name));
            }
            Ok(())
        })
        .await?
        .ok_or_protocol(&self.host)?;
        self.capabilities = caps;
        Ok(())
    }

    /// The connection, with the budget of an ordinary answer for the next command.
    pub(crate) fn session(&mut self) -> Result<&mut async_imap::Session<Stream>, TransportError> {
        self.budget.set(budget::ORDINARY);
        let host = self.host.clone();
        self.session
            .as_mut()
            .ok_or_else(|| TransportError::Network {
                host,
                detail: "the session was closed after an earlier failure".to_owned(),
            })
    }

    pub(crate) fn record(&self, action: Action, request: &str, response: &str, ok: bool) {
        let outcome = if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.trace.record(TraceEvent::new(
            &self.options.author,
            action,
            request,
            response,
            outcome,
        ));
    }

    /// Runs a command with our own tag and hands every untagged response to `each`; returns
    /// the tagged status. Used where async-imap has no typed call (ENABLE, CHANGEDSINCE,
    /// VANISHED) or where we need the exact attributes.
    pub(crate) async fn raw(
        &mut self,
        action: Action,
        command: &str,
        each: impl FnMut(&Response<'_>) -> Result<(), TransportError>,
    ) -> Result<Done, TransportError> {
        self.raw_within(action, command, budget::ORDINARY, each)
            .await
    }

    /// [`ImapSession::raw`] with the answer allowed `bytes` bytes.
    pub(crate) async fn raw_within(
        &mut self,
        action: Action,
        command: &str,
        bytes: u64,
        each: impl FnMut(&Response<'_>) -> Result<(), TransportError>,
    ) -> Result<Done, TransportError> {
        self.budget.set(bytes);
        self.tags += 1;
        let tag = format!("m{}", self.tags);
        let timeout = self.options.timeout;
        let host = self.host.clone();
        let session = self.session()?;
        let result = raw_command(session, &host, &tag, command, timeout, each).await;
        match &result {
            Ok(done) => self.record(action, command, &done.text, done.ok),
            Err(e) => self.record(action, command, &e.to_string(), false),
        }
        if result.is_err() {
            // The stream is in an unknown state: never reuse it.
            self.session = None;
        }
        result
    }

    pub(crate) fn network(&self, detail: impl Into<String>) -> TransportError {
        TransportError::Network {
            host: self.host.clone(),
            detail: detail.into(),
        }
    }
}

/// A tagged answer.
#[derive(Debug)]
pub(crate) struct Done {
    pub ok: bool,
    pub text: String,
}

impl Done {
    fn ok_or_protocol(self, host: &str) -> Result<Done, TransportError> {
        if self.ok {
            Ok(self)
        } else {
            Err(TransportError::Protocol {
                host: host.to_owned(),
                detail: self.text,
            })
        }
    }
}

/// Connection-phase helper: host label, tracing and timeouts before a session exists.
struct Conn {
    host: String,
    author: String,
    trace: Arc<dyn TraceSink>,
    timeout: Duration,
    budget: budget::Budget,
}

impl Conn {
    fn record(&self, action: Action, request: &str, response: &str, ok: bool) {
        let outcome = if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.trace.record(TraceEvent::new(
            &self.author,
            action,
            request,
            response,
            outcome,
        ));
    }

    fn network(&self, detail: impl Into<String>) -> TransportError {
        TransportError::Network {
            host: self.host.clone(),
            detail: detail.into(),
        }
    }

    async fn open(
        &mut self,
        endpoint: &Endpoint,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Stream, TransportError> {
        let addr = (endpoint.host.as_str(), endpoint.port);
        let tcp = match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                self.record(Action::Connect, &self.host, &e.to_string(), false);
                return Err(self.network(e.to_string()));
            }
            Err(_) => {
                self.record(Action::Connect, &self.host, "timeout", false);
                return Err(self.network(format!("no connection within {:?}", self.timeout)));
            }
        };
        let _ = tcp.set_nodelay(true);
        self.record(Action::Connect, &self.host, "connected", true);
        let tcp = match endpoint.security {
            Security::Tls => tcp,
            Security::StartTls => self.starttls(tcp).await?,
        };
        handshake::handshake(&endpoint.host, &self.host, tls, tcp, self.timeout)
            .await
            .map(|tls| budget::Budgeted::new(tls, self.budget.clone()))
            .inspect(|_| self.record(Action::StartTls, "TLS handshake", "OK", true))
            .inspect_err(|e| self.record(Action::StartTls, "TLS handshake", &e.to_string(), false))
    }

    /// Reads the greeting and upgrades with STARTTLS; a server that refuses is left at once.
    async fn starttls(&mut self, tcp: TcpStream) -> Result<TcpStream, TransportError> {
        let mut client = async_imap::Client::new(tcp);
        self.greeting(&mut client).await?;
        let mut tags = 0;
        tags += 1;
        let tag = format!("m{tags}");
        let done = raw_command(
            &mut client,
            &self.host,
            &tag,
            "STARTTLS",
            self.timeout,
            |_| Ok(()),
        )
        .await?;
        self.record(Action::StartTls, "STARTTLS", &done.text, done.ok);
        if !done.ok {
            return Err(TransportError::Protocol {
                host: self.host.clone(),
                detail: format!(
                    "STARTTLS refused ({}): mss never continues without TLS",
                    done.text
                ),
            });
        }
        // Anything the server sent before the handshake is dropped with the buffer.
        Ok(client.into_inner())
    }

    async fn greeting<T>(
        &mut self,
        client: &mut async_imap::Client<T>,
    ) -> Result<(), TransportError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let greeting = match tokio::time::timeout(self.timeout, client.read_response()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => return Err(self.network("closed before its greeting")),
            Ok(Err(e)) => return Err(self.network(e.to_string())),
            Err(_) => return Err(self.network("no greeting")),
        };
        match greeting.parsed() {
            Response::Data {
                status: Status::Ok,
                outcome,
            } => {
                self.record(
                    Action::Connect,
                    "greeting",
                    &outcome_text("OK", outcome),
                    true,
                );
                Ok(())
            }
            Response::Data { status, outcome } => {
                let text = outcome_text(&format!("{status:?}"), outcome);
                self.record(Action::Connect, "greeting", &text, false);
                Err(TransportError::Rejected {
                    host: self.host.clone(),
                    detail: format!("greeting {text}"),
                })
            }
            _ => Err(TransportError::Protocol {
                host: self.host.clone(),
                detail: "no IMAP greeting".to_owned(),
            }),
        }
    }

    async fn capabilities(
        &mut self,
        client: &mut async_imap::Client<Stream>,
        tags: &mut u32,
    ) -> Result<BTreeSet<String>, TransportError> {
        *tags += 1;
        let tag = format!("m{tags}");
        let mut caps = BTreeSet::new();
        let done = raw_command(client, &self.host, &tag, "CAPABILITY", self.timeout, |r| {
            if let Response::Capabilities(list) = r {
                caps.extend(list.iter().map(cap_name));
            }
            Ok(())
        })
        .await?;
        self.record(Action::Capability, "CAPABILITY", &done.text, done.ok);
        done.ok_or_protocol(&self.host)?;
        Ok(caps)
    }

    async fn authenticate(
        &mut self,
        client: async_imap::Client<Stream>,
        auth: Credentials<'_>,
        caps: &BTreeSet<String>,
    ) -> Result<async_imap::Session<Stream>, TransportError> {
        let config = |detail: String| TransportError::Config(detail);
        let mut sasl = match auth {
            Credentials::Token { user, token } => {
                let mechanism = if caps.contains("AUTH=XOAUTH2") {
                    Mechanism::XOAuth2
                } else if caps.contains("AUTH=OAUTHBEARER") {
                    Mechanism::OAuthBearer
                } else {
                    return Err(TransportError::Rejected {
                        host: self.host.clone(),
                        detail: "the server does not offer AUTH=XOAUTH2: it cannot take a Pro Santé Connect token".to_owned(),
                    });
                };
                SaslClient::token(mechanism, user, token).map_err(|e| config(e.to_string()))?
            }
            Credentials::Certificate { authzid } => {
                if !caps.contains("AUTH=EXTERNAL") {
                    return Err(TransportError::CertificateRefused {
                        host: self.host.clone(),
                        detail: "the server does not offer AUTH=EXTERNAL".to_owned(),
                    });
                }
                SaslClient::external(authzid).map_err(|e| config(e.to_string()))?
            }
        };
        let mechanism = sasl.mechanism();
        let request = format!("AUTHENTICATE {}", mechanism.name());
        let result = tokio::time::timeout(
            self.timeout,
            client.authenticate(mechanism.name(), &mut sasl),
        )
        .await;
        let error = match result {
            Ok(Ok(session)) => {
                self.record(Action::Authenticate, &request, "OK", true);
                return Ok(session);
            }
            Ok(Err((e, _client))) => e,
            Err(_) => {
                self.record(Action::Authenticate, &request, "timeout", false);
                return Err(self.network("no answer to AUTHENTICATE"));
            }
        };
        let text = match (&error, sasl.server_error()) {
            (async_imap::error::Error::No(s), Some(status)) => {
                format!("{} (status {status})", server_info(s))
            }
            (async_imap::error::Error::No(s), None) => server_info(s),
            (e, _) => e.to_string(),
        };
        self.record(Action::Authenticate, &request, &format!("NO {text}"), false);
        Err(match (error, mechanism) {
            (async_imap::error::Error::No(_), Mechanism::External) => {
                TransportError::CertificateRefused {
                    host: self.host.clone(),
                    detail: text,
                }
            }
            (async_imap::error::Error::No(_), _) => TransportError::TokenRefused {
                host: self.host.clone(),
                detail: text,
            },
            (e, _) => map_error(&self.host, e),
        })
    }
}

/// `AUTH=XOAUTH2`, `IMAP4REV1`, `CONDSTORE`… upper-cased so look-ups need not care.
fn cap_name(c: &Capability<'_>) -> String {
    match c {
        Capability::Imap4rev1 => "IMAP4REV1".to_owned(),
        Capability::Auth(m) => format!("AUTH={}", m.to_ascii_uppercase()),
        Capability::Atom(a) => a.to_ascii_uppercase(),
    }
}

fn outcome_text(status: &str, outcome: &async_imap::imap_proto::Outcome<'_>) -> String {
    let mut text = status.to_owned();
    if let Some(code) = &outcome.code {
        let code = format!("{code:?}");
        text.push_str(&format!(" [{}]", &code[..code.len().min(60)]));
    }
    if let Some(info) = &outcome.information {
        text.push(' ');
        text.push_str(info);
    }
    text
}

/// async-imap renders NO/BAD as `code: …, info: Some("text")`: keep the server's text.
fn server_info(s: &str) -> String {
    s.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(info, _)| info.replace("\\\"", "\""))
        .unwrap_or_else(|| s.to_owned())
}

/// Maps an async-imap error outside authentication.
pub(crate) fn map_error(host: &str, e: async_imap::error::Error) -> TransportError {
    use async_imap::error::Error;
    let host = host.to_owned();
    match e {
        Error::Io(e) => TransportError::Network {
            host,
            detail: e.to_string(),
        },
        Error::ConnectionLost => TransportError::Network {
            host,
            detail: "connection lost".to_owned(),
        },
        Error::No(s) => TransportError::Rejected {
            host,
            detail: server_info(&s),
        },
        Error::Bad(s) => TransportError::Protocol {
            host,
            detail: format!("BAD {}", server_info(&s)),
        },
        Error::Validate(v) => TransportError::Config(format!("invalid IMAP argument: {v}")),
        other => TransportError::Protocol {
            host,
            detail: other.to_string(),
        },
    }
}

/// Writes `tag command` on the connection and reads until the tagged answer, each read
/// bounded by `timeout`. Untagged responses go to `each`.
async fn raw_command<T>(
    conn: &mut async_imap::Connection<T>,
    host: &str,
    tag: &str,
    command: &str,
    timeout: Duration,
    mut each: impl FnMut(&Response<'_>) -> Result<(), TransportError>,
) -> Result<Done, TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let network = |detail: String| TransportError::Network {
        host: host.to_owned(),
        detail,
    };
    let line = format!("{tag} {command}\r\n");
    let write = async {
        let stream = conn.get_mut();
        stream.write_all(line.as_bytes()).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(network(e.to_string())),
        Err(_) => return Err(network(format!("could not send {command}"))),
    }
    loop {
        let response = match tokio::time::timeout(timeout, conn.read_response()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => return Err(network("connection closed".to_owned())),
            Ok(Err(e)) => return Err(network(e.to_string())),
            Err(_) => return Err(network(format!("no answer within {timeout:?}"))),
        };
        match response.parsed() {
            Response::Done {
                tag: t,
                status,
                outcome,
            } if t.0 == tag => {
                let ok = matches!(status, Status::Ok);
                let word = match status {
                    Status::Ok => "OK",
                    Status::No => "NO",
                    Status::Bad => "BAD",
                    Status::PreAuth => "PREAUTH",
                    Status::Bye => "BYE",
                };
                return Ok(Done {
                    ok,
                    text: outcome_text(word, outcome),
                });
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(network(outcome_text("BYE", outcome)));
            }
            other => each(other)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn server_text_is_kept_from_async_imap_errors() {
        assert_eq!(
            server_info("code: Some(AuthenticationFailed), info: Some(\"Authentication failed.\")"),
            "Authentication failed."
        );
        assert_eq!(server_info("odd"), "odd");
    }

    #[test]
    fn auth_debug_never_shows_the_token() {
        let token = SecretString::from("SECRETTOKEN");
        let auth = Credentials::Token {
            user: "a@b",
            token: &token,
        };
        assert!(!format!("{auth:?}").contains("SECRET"));
    }
}
