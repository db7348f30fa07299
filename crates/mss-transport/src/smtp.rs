//! SMTP submission to an MSSanté operator, on mail-send with the caller's TLS config.
//!
//! STARTTLS (587) is the documented mode and a server that does not offer it is left before
//! any credential is sent; implicit TLS (465) is supported for autoconfigured servers. EHLO
//! is sent again after TLS. BAL PER/ORG authenticate with `AUTH XOAUTH2` (initial response
//! on the command line when the line stays short, after the `334` continuation otherwise —
//! Dovecot's submission service refuses long command lines); BAL APP with `AUTH EXTERNAL`
//! and the TLS client certificate.
//!
//! [`SmtpSession::submit`] sends exactly the bytes it is given (the output of `mss compose`)
//! with the envelope it is given: the SIZE the server announced is checked first, DSN
//! parameters are added when requested and offered, and a refused recipient stops the
//! submission before DATA (nothing is sent to anyone).
//!
//! ```no_run
//! # async fn demo(tls: std::sync::Arc<rustls::ClientConfig>, token: secrecy::SecretString,
//! #               message: Vec<u8>) -> Result<(), mss_transport::TransportError> {
//! use mss_transport::imap::{Endpoint, Security};
//! use mss_transport::smtp::{Envelope, Credentials, SmtpOptions, SmtpSession};
//! use mss_transport::trace::NoTrace;
//! use std::sync::Arc;
//!
//! let user = "jean.dupont@hopital.mssante.fr";
//! let endpoint = Endpoint::new("smtp.hopital.mssante.fr", 587, Security::StartTls);
//! let mut smtp = SmtpSession::connect(
//!     &endpoint,
//!     tls,
//!     Credentials::Token { user, token: &token },
//!     Arc::new(NoTrace),
//!     SmtpOptions::new(user),
//! )
//! .await?;
//! let receipt = smtp
//!     .submit(&Envelope::new(user, ["marie.martin@clinique.mssante.fr"]), &message)
//!     .await?;
//! println!("queued: {}", receipt.reply);
//! smtp.quit().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use mail_send::SmtpClient;
use secrecy::zeroize::Zeroizing;
use smtp_proto::{
    AUTH_EXTERNAL, AUTH_OAUTHBEARER, AUTH_XOAUTH2, EXT_DSN, EXT_SIZE, EXT_START_TLS, EhloResponse,
};
use tokio::net::TcpStream;

pub use crate::sasl::Credentials;

use crate::error::TransportError;
use crate::imap::budget::{Budget, Budgeted, SMTP_REPLY};
use crate::imap::handshake::handshake;
use crate::imap::{Endpoint, Security};
use crate::sasl::{Mechanism, SaslClient};
use crate::trace::{Action, Outcome, TraceEvent, TraceSink};

type Stream = Budgeted<tokio_rustls::client::TlsStream<TcpStream>>;

/// Longest `AUTH <mech> <initial response>` line sent as one command (RFC 5321 text line
/// length); longer credentials go after the `334` continuation.
pub const MAX_INLINE_AUTH_LINE: usize = 998;

/// Bounds and identity of a session.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// The mailbox on whose behalf commands are sent (the author of traces).
    pub author: String,
    /// Longest wait for any single reply (the end of DATA included).
    pub timeout: Duration,
}

impl SmtpOptions {
    /// 60 s per reply: the end of DATA can take a while on busy operators.
    pub fn new(author: impl Into<String>) -> Self {
        SmtpOptions {
            author: author.into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Delivery status notifications asked for a submission (RFC 3461).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// Notify on success.
    pub success: bool,
    /// Notify on failure.
    pub failure: bool,
    /// Notify on delay.
    pub delay: bool,
    /// Return the full message (`RET=FULL`) rather than its headers.
    pub full: bool,
    /// `ENVID`, echoed back in notifications (printable ASCII without `+`, `=`, spaces).
    pub envelope_id: Option<String>,
}

/// Who the message goes from and to; the header fields are not looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
    pub dsn: Option<Dsn>,
}

impl Envelope {
    pub fn new<S: Into<String>>(from: impl Into<String>, to: impl IntoIterator<Item = S>) -> Self {
        Envelope {
            from: from.into(),
            to: to.into_iter().map(Into::into).collect(),
            dsn: None,
        }
    }

    pub fn with_dsn(mut self, dsn: Dsn) -> Self {
        self.dsn = Some(dsn);
        self
    }
}

/// What the server said when it took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The final reply to DATA, e.g. `250 2.0.0 Ok: queued as 4Xyz`.
    pub reply: String,
    /// False when DSN was asked but the server does not offer it (sent without).
    pub dsn_honoured: bool,
}

/// An authenticated submission session.
pub struct SmtpSession {
    client: SmtpClient<Stream>,
    /// What the next reply may take: a hostile server cannot grow a reply without end.
    budget: Budget,
    ehlo: EhloResponse<String>,
    host: String,
    trace: Arc<dyn TraceSink>,
    options: SmtpOptions,
}

impl std::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSession")
            .field("host", &self.host)
            .field("author", &self.options.author)
            .finish_non_exhaustive()
    }
}

impl SmtpSession {
    /// Connects, secures, says EHLO again over TLS and authenticates. A refused token is
    /// [`TransportError::TokenRefused`] (after answering the server's error challenge), a
    /// refused certificate [`TransportError::CertificateRefused`].
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Arc<rustls::ClientConfig>,
        auth: Credentials<'_>,
        trace: Arc<dyn TraceSink>,
        options: SmtpOptions,
    ) -> Result<SmtpSession, TransportError> {
        let host = endpoint.label();
        let budget = Budget::default();
        budget.set(SMTP_REPLY);
        let record = |action, request: &str, response: &str, ok: bool| {
            trace.record(TraceEvent::new(
                &options.author,
                action,
                request,
                response,
                if ok {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            ))
        };
        let network = |detail: String| TransportError::Network {
            host: host.clone(),
            detail,
        };
        let addr = (endpoint.host.as_str(), endpoint.port);
        let tcp = match tokio::time::timeout(options.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                record(Action::Connect, &host, &e.to_string(), false);
                return Err(network(e.to_string()));
            }
            Err(_) => {
                record(Action::Connect, &host, "timeout", false);
                return Err(network(format!(
                    "no connection within {:?}",
                    options.timeout
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        let helo = match tcp.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => format!("[{}]", a.ip()),
            Ok(std::net::SocketAddr::V6(a)) => format!("[IPv6:{}]", a.ip()),
            Err(_) => "localhost".to_owned(),
        };
        record(Action::Connect, &host, "connected", true);

        let tcp = if endpoint.security == Security::StartTls {
            let mut plain = SmtpClient {
                stream: Budgeted::new(tcp, budget.clone()),
                timeout: options.timeout,
            };
            greeting(&mut plain, &host, &record).await?;
            budget.set(SMTP_REPLY);
            let ehlo = plain
                .ehlo(&helo)
                .await
                .map_err(|e| map_error(&host, e, "EHLO"))?;
            if !ehlo.has_capability(EXT_START_TLS) {
                record(Action::StartTls, "EHLO", "no STARTTLS", false);
                return Err(TransportError::Protocol {
                    host,
                    detail: "STARTTLS is not offered: mss never continues without TLS".to_owned(),
                });
            }
            budget.set(SMTP_REPLY);
            let reply = plain
                .cmd(b"STARTTLS\r\n")
                .await
                .map_err(|e| map_error(&host, e, "STARTTLS"))?;
            record(
                Action::StartTls,
                "STARTTLS",
                &reply_text(&reply),
                reply.code() == 220,
            );
            if reply.code() != 220 {
                return Err(TransportError::Protocol {
                    host,
                    detail: format!("STARTTLS refused: {}", reply_text(&reply)),
                });
            }
            // Anything sent before the handshake is dropped with the plain stream.
            plain.stream.into_inner()
        } else {
            tcp
        };
        let stream = handshake(&endpoint.host, &host, tls, tcp, options.timeout)
            .await
            .inspect(|_| record(Action::StartTls, "TLS handshake", "OK", true))
            .inspect_err(|e| record(Action::StartTls, "TLS handshake", &e.to_string(), false))?;
        budget.set(SMTP_REPLY);
        let mut client = SmtpClient {
            stream: Budgeted::new(stream, budget.clone()),
            timeout: options.timeout,
        };
        if endpoint.security == Security::Tls {
            greeting(&mut client, &host, &record).await?;
            budget.set(SMTP_REPLY);
        }
        let ehlo = client
            .ehlo(&helo)
            .await
            .map_err(|e| map_error(&host, e, "EHLO"))?;
        record(Action::Capability, "EHLO", &ehlo_summary(&ehlo), true);
        let mut session = SmtpSession {
            client,
            budget,
            ehlo,
            host,
            trace: trace.clone(),
            options: options.clone(),
        };
        session.authenticate(auth).await?;
        Ok(session)
    }

    /// The largest message the server takes (EHLO SIZE), if it said.
    pub fn max_size(&self) -> Option<usize> {
        (self.ehlo.has_capability(EXT_SIZE) && self.ehlo.size > 0).then_some(self.ehlo.size)
    }

    /// True if the server offers delivery status notifications.
    pub fn offers_dsn(&self) -> bool {
        self.ehlo.has_capability(EXT_DSN)
    }

    async fn authenticate(&mut self, auth: Credentials<'_>) -> Result<(), TransportError> {
        let offered = self.ehlo.auth_mechanisms;
        let mut sasl = match auth {
            Credentials::Token { user, token } => {
                let mechanism = if offered & AUTH_XOAUTH2 != 0 {
                    Mechanism::XOAuth2
                } else if offered & AUTH_OAUTHBEARER != 0 {
                    Mechanism::OAuthBearer
                } else {
                    return Err(self.rejected(
                        "the server does not offer AUTH XOAUTH2: it cannot take a Pro Santé Connect token"
                            .to_owned(),
                    ));
                };
                SaslClient::token(mechanism, user, token)
                    .map_err(|e| TransportError::Config(e.to_string()))?
            }
            Credentials::Certificate { authzid } => {
                if offered & AUTH_EXTERNAL == 0 {
                    return Err(TransportError::CertificateRefused {
                        host: self.host.clone(),
                        detail: "the server does not offer AUTH EXTERNAL".to_owned(),
                    });
                }
                SaslClient::external(authzid).map_err(|e| TransportError::Config(e.to_string()))?
            }
        };
        let mechanism = sasl.mechanism();
        let request = format!("AUTH {}", mechanism.name());
        let b64 = base64::engine::general_purpose::STANDARD;
        let initial = sasl.initial_response();
        let encoded = Zeroizing::new(if initial.is_empty() {
            "=".to_owned()
        } else {
            b64.encode(initial.as_slice())
        });
        let inline = Zeroizing::new(format!("{request} {}\r\n", encoded.as_str()));
        let mut reply = if inline.len() - 2 <= MAX_INLINE_AUTH_LINE {
            self.cmd(inline.as_bytes(), &request).await?
        } else {
            let first = self
                .cmd(format!("{request}\r\n").as_bytes(), &request)
                .await?;
            if first.code() != 334 {
                first
            } else {
                let line = Zeroizing::new(format!("{}\r\n", encoded.as_str()));
                self.cmd(line.as_bytes(), &request).await?
            }
        };
        // A 334 now carries the server's error report: answer it, the server then fails.
        if reply.code() == 334 {
            let challenge = b64.decode(reply.message().trim()).unwrap_or_default();
            let answer = sasl.respond(&challenge);
            let line = format!("{}\r\n", b64.encode(answer.as_slice()));
            reply = self.cmd(line.as_bytes(), &request).await?;
        }
        let mut text = reply_text(&reply);
        if let Some(status) = sasl.server_error() {
            text.push_str(&format!(" (status {status})"));
        }
        let ok = reply.code() == 235;
        self.record(Action::Authenticate, &request, &text, ok);
        match (ok, mechanism) {
            (true, _) => Ok(()),
            (false, _) if reply.code() == 421 || reply.code() == 454 => {
                Err(TransportError::Network {
                    host: self.host.clone(),
                    detail: text,
                })
            }
            (false, Mechanism::External) => Err(TransportError::CertificateRefused {
                host: self.host.clone(),
                detail: text,
            }),
            (false, _) if (500..=504).contains(&reply.code()) => Err(TransportError::Protocol {
                host: self.host.clone(),
                detail: text,
            }),
            (false, _) => Err(TransportError::TokenRefused {
                host: self.host.clone(),
                detail: text,
            }),
        }
    }

    /// Submits `message` byte for byte. The session stays usable after a refusal (the
    /// transaction is reset), so the next message can go on the same connection.
    pub async fn submit(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Receipt, TransportError> {
        check_address(&envelope.from)?;
        if envelope.to.is_empty() {
            return Err(TransportError::Config(
                "a message needs at least one recipient".to_owned(),
            ));
        }
        for to in &envelope.to {
            check_address(to)?;
        }
        if let Some(max) = self.max_size()
            && message.len() > max
        {
            let detail = format!(
                "the message is {} bytes, the server takes at most {max} (SIZE): make it smaller",
                message.len()
            );
            self.record(Action::Submit, "SIZE check", &detail, false);
            return Err(self.rejected(detail));
        }
        let dsn = envelope.dsn.as_ref().filter(|_| self.offers_dsn());
        let dsn_honoured = envelope.dsn.is_none() || dsn.is_some();

        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if self.ehlo.has_capability(EXT_SIZE) {
            mail.push_str(&format!(" SIZE={}", message.len()));
        }
        if let Some(dsn) = dsn {
            mail.push_str(if dsn.full { " RET=FULL" } else { " RET=HDRS" });
            if let Some(id) = &dsn.envelope_id {
                mail.push_str(&format!(" ENVID={}", xtext(id)?));
            }
        }
        let reply = self.cmd(format!("{mail}\r\n").as_bytes(), &mail).await?;
        if let Err(e) = self.step(Action::Submit, &mail, &reply, "sender") {
            return Err(self.reset(e).await);
        }

        for to in &envelope.to {
            let mut rcpt = format!("RCPT TO:<{to}>");
            if let Some(dsn) = dsn {
                let mut notify = Vec::new();
                if dsn.success {
                    notify.push("SUCCESS");
                }
                if dsn.failure {
                    notify.push("FAILURE");
                }
                if dsn.delay {
                    notify.push("DELAY");
                }
                let notify = if notify.is_empty() {
                    "NEVER".to_owned()
                } else {
                    notify.join(",")
                };
                rcpt.push_str(&format!(" NOTIFY={notify} ORCPT=rfc822;{}", xtext(to)?));
            }
            let reply = self.cmd(format!("{rcpt}\r\n").as_bytes(), &rcpt).await?;
            if let Err(e) = self.step(Action::Submit, &rcpt, &reply, &format!("recipient {to}")) {
                return Err(self.reset(e).await);
            }
        }

        // mail-send ends DATA with CRLF . CRLF: drop the message's own final CRLF so the
        // server stores exactly the bytes we were given.
        let body = message.strip_suffix(b"\r\n").unwrap_or(message);
        let request = format!("DATA ({} bytes)", message.len());
        self.budget.set(SMTP_REPLY * 2);
        let result = self.client.data(body).await;
        match result {
            Ok(reply) => {
                let text = reply_text(&reply);
                self.record(Action::Submit, &request, &text, true);
                Ok(Receipt {
                    reply: text,
                    dsn_honoured,
                })
            }
            Err(mail_send::Error::UnexpectedReply(reply)) => {
                self.record(Action::Submit, &request, &reply_text(&reply), false);
                let e = self.refusal(&reply, "message");
                Err(self.reset(e).await)
            }
            Err(e) => {
                let e = map_error(&self.host, e, "DATA");
                self.record(Action::Submit, &request, &e.to_string(), false);
                Err(e)
            }
        }
    }

    /// Ends the refused transaction (RSET) so the session can carry the next message.
    async fn reset(&mut self, error: TransportError) -> TransportError {
        self.budget.set(SMTP_REPLY);
        if let Ok(reply) = self.client.cmd(b"RSET\r\n").await {
            self.record(
                Action::Submit,
                "RSET",
                &reply_text(&reply),
                reply.code() == 250,
            );
        }
        error
    }

    /// QUIT; errors are ignored (the connection is dropped either way).
    pub async fn quit(self) {
        let record = self.trace.clone();
        let author = self.options.author.clone();
        self.budget.set(SMTP_REPLY);
        let ok = self.client.quit().await.is_ok();
        record.record(TraceEvent::new(
            &author,
            Action::Logout,
            "QUIT",
            if ok { "221" } else { "no answer" },
            if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        ));
    }

    async fn cmd(
        &mut self,
        line: &[u8],
        request: &str,
    ) -> Result<smtp_proto::Response<String>, TransportError> {
        self.budget.set(SMTP_REPLY);
        match self.client.cmd(line).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                let e = map_error(&self.host, e, request);
                self.record(Action::Submit, request, &e.to_string(), false);
                Err(e)
            }
        }
    }

    /// Records an envelope step; a refusal becomes an error.
    fn step(
        &mut self,
        action: Action,
        request: &str,
        reply: &smtp_proto::Response<String>,
        what: &str,
    ) -> Result<(), TransportError> {
        let ok = reply.is_positive_completion();
        self.record(action, request, &reply_text(reply), ok);
        if ok {
            Ok(())
        } else {
            Err(self.refusal(reply, what))
        }
    }

    fn refusal(&self, reply: &smtp_proto::Response<String>, what: &str) -> TransportError {
        let text = reply_text(reply);
        let host = self.host.clone();
        match reply.code() {
            421 => TransportError::Network {
                host,
                detail: format!("the server closed the session: {text}"),
            },
            400..=499 => TransportError::Network {
                host,
                detail: format!("temporary refusal of the {what}, try again later: {text}"),
            },
            552 | 523 => TransportError::Rejected {
                host,
                detail: format!("the {what} is too large: {text}"),
            },
            530 | 535 => TransportError::TokenRefused { host, detail: text },
            _ => TransportError::Rejected {
                host,
                detail: format!("the {what} was refused: {text}"),
            },
        }
    }

    fn record(&self, action: Action, request: &str, response: &str, ok: bool) {
        self.trace.record(TraceEvent::new(
            &self.options.author,
            action,
            request,
            response,
            if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        ));
    }

    fn rejected(&self, detail: String) -> TransportError {
        TransportError::Rejected {
            host: self.host.clone(),
            detail,
        }
    }
}

async fn greeting<T, F>(
    client: &mut SmtpClient<T>,
    host: &str,
    record: &F,
) -> Result<(), TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: Fn(Action, &str, &str, bool),
{
    let reply = match tokio::time::timeout(client.timeout, client.read()).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Err(map_error(host, e, "greeting")),
        Err(_) => {
            return Err(TransportError::Network {
                host: host.to_owned(),
                detail: "no greeting".to_owned(),
            });
        }
    };
    let ok = reply.code() == 220;
    record(Action::Connect, "greeting", &reply_text(&reply), ok);
    if ok {
        Ok(())
    } else {
        Err(TransportError::Rejected {
            host: host.to_owned(),
            detail: format!("greeting {}", reply_text(&reply)),
        })
    }
}

/// `550 5.1.1 text`, on one line, bounded.
fn reply_text(reply: &smtp_proto::Response<String>) -> String {
    let [a, b, c] = reply.esc;
    let mut text = if a > 0 {
        format!("{} {a}.{b}.{c} ", reply.code)
    } else {
        format!("{} ", reply.code)
    };
    text.extend(
        reply
            .message
            .chars()
            .take(300)
            .map(|c| if c.is_control() { ' ' } else { c }),
    );
    text
}

fn ehlo_summary(ehlo: &EhloResponse<String>) -> String {
    let mut parts = vec!["250".to_owned()];
    if ehlo.has_capability(EXT_SIZE) {
        parts.push(format!("SIZE {}", ehlo.size));
    }
    if ehlo.has_capability(EXT_DSN) {
        parts.push("DSN".to_owned());
    }
    for (bit, name) in [
        (AUTH_XOAUTH2, "XOAUTH2"),
        (AUTH_OAUTHBEARER, "OAUTHBEARER"),
        (AUTH_EXTERNAL, "EXTERNAL"),
    ] {
        if ehlo.auth_mechanisms & bit != 0 {
            parts.push(format!("AUTH {name}"));
        }
    }
    parts.join(" ")
}

fn map_error(host: &str, e: mail_send::Error, during: &str) -> TransportError {
    let host = host.to_owned();
    match e {
        mail_send::Error::Io(e) => TransportError::Network {
            host,
            detail: format!("{during}: {e}"),
        },
        mail_send::Error::Timeout => TransportError::Network {
            host,
            detail: format!("no answer to {during}"),
        },
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            TransportError::Protocol {
                host,
                detail: format!("{during}: {}", reply_text(&r)),
            }
        }
        other => TransportError::Protocol {
            host,
            detail: format!("{during}: {other}"),
        },
    }
}

/// Envelope addresses go inside `<…>` on a command line: nothing that could end it.
fn check_address(address: &str) -> Result<(), TransportError> {
    let ok = !address.is_empty()
        && address.len() <= 254
        && address.contains('@')
        && address
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
    if ok {
        Ok(())
    } else {
        Err(TransportError::Config(format!(
            "{:?} is not an address mss can put in an SMTP envelope",
            address.escape_debug().to_string()
        )))
    }
}

/// RFC 3461 xtext: `+XX` for `+`, `=` and anything outside printable ASCII.
fn xtext(value: &str) -> Result<String, TransportError> {
    if value.len() > 100 {
        return Err(TransportError::Config(
            "DSN envelope id longer than 100 characters".to_owned(),
        ));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_addresses_cannot_inject_commands() {
        assert!(check_address("a@b.mssante.fr").is_ok());
        assert!(check_address("a@b>\r\nRCPT TO:<c@d").is_err());
        assert!(check_address("a b@c").is_err());
        assert!(check_address("nobody").is_err());
    }

    #[test]
    fn xtext_escapes_plus_equals_and_controls() {
        assert_eq!(xtext("id+1=2 x").unwrap(), "id+2B1+3D2+20x");
        assert!(xtext(&"x".repeat(101)).is_err());
    }

    #[test]
    fn reply_text_is_one_bounded_line() {
        let r = smtp_proto::Response {
            code: 550,
            esc: [5, 1, 1],
            message: format!("no\r\nsuch {}", "x".repeat(400)),
        };
        let t = reply_text(&r);
        assert!(t.starts_with("550 5.1.1 no  such"));
        assert!(!t.contains('\n'));
        assert!(t.len() < 320);
    }
}
