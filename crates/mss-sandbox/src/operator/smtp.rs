//! The operator's SMTP side, on smtp-proto's codec (`Request::parse`, `DataReceiver`,
//! response writers):
//!
//! - **Submission** (STARTTLS, API LPS): EHLO offers only STARTTLS before TLS; after it,
//!   AUTH XOAUTH2 / OAUTHBEARER (PSC token) and EXTERNAL (AUTH_CLI certificate), SIZE,
//!   8BITMIME, ENHANCEDSTATUSCODES, DSN, PIPELINING. MAIL FROM must be the mailbox that
//!   logged in. Recipients: this operator's mailboxes, Mon espace santé patients, the
//!   other operator's mailboxes.
//! - **Relay** (like port 25, STARTTLS offered, no AUTH): what another operator uses to
//!   hand over mail for this operator's mailboxes; it never relays further.
//!
//! Every command (never a credential), answer and received header is recorded.

mod conn;
mod sasl;

use std::sync::Arc;

use serde_json::json;
use smtp_proto::response::generate::BitToString;
use smtp_proto::{
    AUTH_EXTERNAL, AUTH_OAUTHBEARER, AUTH_XOAUTH2, EXT_8BIT_MIME, EXT_AUTH, EXT_DSN,
    EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE, EXT_START_TLS, EhloResponse, Error,
    MAIL_RET_HDRS, MailFrom, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER,
    RCPT_NOTIFY_SUCCESS, RcptTo, Request, Response,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::OperatorContext;
use super::auth::PeerCertificate;
use super::delivery::{self, Arrival, Envelope, Rcpt, Route};
use conn::{Conn, Data, Line};

/// Largest message a session takes (announced in EHLO SIZE). Mon espace santé takes less
/// (25 MB, mes.rs): bigger messages to patients are accepted, then bounced.
pub const MAX_MESSAGE: usize = 30 * 1024 * 1024;
/// Longest command line: room for an `AUTH XOAUTH2 <initial response>` with a real PSC
/// token (clients such as smtplib always send it inline).
const MAX_LINE: usize = 16 * 1024;
const MAX_RCPTS: usize = 100;
/// Refused commands before the session is closed.
const MAX_ERRORS: u32 = 10;
/// Simultaneous sessions per listener.
const MAX_SESSIONS: usize = 64;
/// Messages received at the same time per listener: each holds up to `MAX_MESSAGE` bytes,
/// so this bounds the memory DATA can take (8 × 30 MiB).
const MAX_DATA: usize = 8;
/// How long DATA waits for one of those slots before a temporary refusal.
const DATA_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Submission,
    Relay,
}

impl Mode {
    fn service(self) -> &'static str {
        match self {
            Mode::Submission => "smtp",
            Mode::Relay => "smtp-relay",
        }
    }
}

/// Serves SMTP submission (STARTTLS) on `listener`.
pub async fn serve(listener: TcpListener, ctx: Arc<OperatorContext>) {
    accept(listener, ctx, Mode::Submission).await
}

/// Serves the relay side (other operators hand over mail, no AUTH) on `listener`.
pub async fn serve_relay(listener: TcpListener, ctx: Arc<OperatorContext>) {
    accept(listener, ctx, Mode::Relay).await
}

async fn accept(listener: TcpListener, ctx: Arc<OperatorContext>, mode: Mode) {
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    let data_slots = Arc::new(Semaphore::new(MAX_DATA));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or the like: breathe, then go on serving.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut conn = Conn::new(tcp);
                let _ = conn
                    .send(b"421 4.3.2 Too many connections, try later\r\n")
                    .await;
            });
            continue;
        };
        let ctx = ctx.clone();
        let data_slots = data_slots.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let session = ctx.recorder.next_session();
            let mut s = Session {
                ctx,
                mode,
                session,
                peer_ip: peer.ip().to_string(),
                helo: None,
                peer_cert: None,
                user: None,
                tx: None,
                errors: 0,
                data_slots,
            };
            s.ctx.recorder.record(
                mode.service(),
                session,
                "connect",
                json!({ "peer": s.peer_ip }),
            );
            let _ = s.run(tcp).await;
            s.ctx
                .recorder
                .record(mode.service(), session, "disconnect", json!({}));
        });
    }
}

struct Transaction {
    envelope: Envelope,
}

struct Session {
    ctx: Arc<OperatorContext>,
    mode: Mode,
    session: u64,
    peer_ip: String,
    helo: Option<String>,
    peer_cert: Option<PeerCertificate>,
    /// The mailbox that logged in (submission).
    user: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    data_slots: Arc<Semaphore>,
}

/// Whether the session goes on after a command.
type Next = std::io::Result<bool>;

impl Session {
    fn service(&self) -> &'static str {
        self.mode.service()
    }

    fn record(&self, kind: &'static str, detail: serde_json::Value) {
        self.ctx
            .recorder
            .record(self.service(), self.session, kind, detail);
    }

    async fn run(&mut self, tcp: TcpStream) -> std::io::Result<()> {
        let mut conn = Conn::new(tcp);
        let greeting = format!(
            "220 {} ESMTP mss-sandbox (MSSante, bac a sable)\r\n",
            delivery::host(&self.ctx)
        );
        conn.send(greeting.as_bytes()).await?;
        loop {
            let line = match conn.line(MAX_LINE).await? {
                None => return Ok(()),
                Some(Line::TooLong) => {
                    self.record("command", json!({ "error": "line too long" }));
                    self.reply(&mut conn, 500, [5, 5, 2], "Line too long, closing")
                        .await?;
                    return Ok(());
                }
                Some(Line::Full(line)) => line,
            };
            let go_on = match Request::parse(&mut line.iter()) {
                Ok(request) => {
                    let request = request.into_owned();
                    self.record("command", describe(&request));
                    self.handle(&mut conn, request).await?
                }
                Err(error) => self.refuse_line(&mut conn, &line, error).await?,
            };
            if !go_on {
                return Ok(());
            }
        }
    }

    /// Answers a line smtp-proto could not parse; only its verb is recorded (it may be
    /// anything, credentials included).
    async fn refuse_line(&mut self, conn: &mut Conn, line: &[u8], error: Error) -> Next {
        let verb: String = line
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .take(16)
            .map(|&b| b as char)
            .collect();
        self.record(
            "command",
            json!({ "verb": verb, "error": error.to_string() }),
        );
        let (code, esc, text) = match error {
            Error::UnknownCommand => (500, [5, 5, 1], "Unknown command".to_owned()),
            Error::InvalidSenderAddress => (501, [5, 1, 7], "Invalid sender address".to_owned()),
            Error::InvalidRecipientAddress => {
                (501, [5, 1, 3], "Invalid recipient address".to_owned())
            }
            Error::SyntaxError { syntax } => (501, [5, 5, 4], format!("Syntax: {syntax}")),
            Error::InvalidParameter { param } => {
                (501, [5, 5, 4], format!("Invalid parameter {param}"))
            }
            Error::UnsupportedParameter { .. } => {
                (555, [5, 5, 4], "Unsupported parameter".to_owned())
            }
            _ => (500, [5, 5, 2], "Syntax error".to_owned()),
        };
        self.fail(conn, code, esc, &text).await
    }

    /// A refusal that counts towards `MAX_ERRORS`.
    async fn fail(&mut self, conn: &mut Conn, code: u16, esc: [u8; 3], text: &str) -> Next {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.reply(conn, 421, [4, 7, 0], "Too many errors, closing")
                .await?;
            return Ok(false);
        }
        self.reply(conn, code, esc, text).await?;
        Ok(true)
    }

    async fn reply(
        &self,
        conn: &mut Conn,
        code: u16,
        esc: [u8; 3],
        text: &str,
    ) -> std::io::Result<()> {
        self.record(
            "response",
            json!({ "code": code, "status": format!("{}.{}.{}", esc[0], esc[1], esc[2]), "text": text }),
        );
        let mut out = Vec::new();
        Response::new(code, esc[0], esc[1], esc[2], text).write(&mut out)?;
        conn.send(&out).await
    }

    async fn handle(&mut self, conn: &mut Conn, request: Request<String>) -> Next {
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.tx = None;
                let ehlo = self.ehlo(conn.is_tls());
                let mut out = Vec::new();
                ehlo.write(&mut out)?;
                self.record("response", json!({ "code": 250, "text": "EHLO" }));
                conn.send(&out).await?;
                Ok(true)
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.tx = None;
                let text = delivery::host(&self.ctx);
                self.reply(conn, 250, [2, 0, 0], &text).await?;
                Ok(true)
            }
            Request::StartTls => {
                if conn.is_tls() {
                    return self.fail(conn, 503, [5, 5, 1], "TLS already active").await;
                }
                self.reply(conn, 220, [2, 0, 0], "Ready to start TLS")
                    .await?;
                match conn.starttls(&self.ctx, self.service(), self.session).await {
                    Ok(peer) => {
                        // RFC 3207: forget everything said before TLS.
                        self.peer_cert = peer;
                        self.helo = None;
                        self.user = None;
                        self.tx = None;
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(conn, mechanism, initial_response).await,
            Request::Mail { from } => self.mail(conn, from).await,
            Request::Rcpt { to } => self.rcpt(conn, to).await,
            Request::Data => self.data(conn).await,
            Request::Rset => {
                self.tx = None;
                self.reply(conn, 250, [2, 0, 0], "OK").await?;
                Ok(true)
            }
            Request::Noop { .. } => {
                self.reply(conn, 250, [2, 0, 0], "OK").await?;
                Ok(true)
            }
            Request::Quit => {
                self.reply(conn, 221, [2, 0, 0], "Bye").await?;
                Ok(false)
            }
            Request::Vrfy { .. } => {
                self.reply(conn, 252, [2, 5, 0], "Cannot verify, send the message")
                    .await?;
                Ok(true)
            }
            Request::Help { .. } => {
                self.reply(conn, 214, [2, 0, 0], "See docs/sandbox.md")
                    .await?;
                Ok(true)
            }
            _ => {
                self.fail(conn, 502, [5, 5, 1], "Command not implemented")
                    .await
            }
        }
    }

    fn ehlo(&self, tls: bool) -> EhloResponse<String> {
        let mut ehlo = EhloResponse::new(delivery::host(&self.ctx));
        // Every answer carries an enhanced status code (smtp-proto writes them), so the
        // extension is announced from the start.
        ehlo.capabilities = EXT_ENHANCED_STATUS_CODES;
        if !tls {
            // Before TLS, nothing but the way to TLS: no AUTH, no pipelining, no mail
            // parameters.
            ehlo.capabilities |= EXT_START_TLS;
            if self.mode == Mode::Submission {
                return ehlo;
            }
        }
        ehlo.capabilities |= EXT_SIZE | EXT_8BIT_MIME | EXT_DSN | EXT_PIPELINING;
        ehlo.size = MAX_MESSAGE;
        if tls && self.mode == Mode::Submission {
            ehlo.capabilities |= EXT_AUTH;
            ehlo.auth_mechanisms = AUTH_XOAUTH2 | AUTH_OAUTHBEARER | AUTH_EXTERNAL;
        }
        ehlo
    }

    async fn mail(&mut self, conn: &mut Conn, from: MailFrom<String>) -> Next {
        if self.helo.is_none() {
            return self.fail(conn, 503, [5, 5, 1], "Say EHLO first").await;
        }
        if self.tx.is_some() {
            return self.fail(conn, 503, [5, 5, 1], "Nested MAIL command").await;
        }
        let address = from.address.trim().to_ascii_lowercase();
        if self.mode == Mode::Submission {
            let Some(user) = self.user.clone() else {
                let text = if conn.is_tls() {
                    "Authentication required"
                } else {
                    "Must issue a STARTTLS command first"
                };
                return self.fail(conn, 530, [5, 7, 0], text).await;
            };
            let ok = address == user;
            self.record(
                "mail_from",
                json!({ "from": address, "authenticated": user, "ok": ok }),
            );
            if !ok {
                let text = format!("Sender must be the mailbox that logged in: {user}");
                return self.fail(conn, 553, [5, 7, 1], &text).await;
            }
        }
        if from.size > MAX_MESSAGE {
            let text = format!("Message too big: at most {MAX_MESSAGE} bytes");
            return self.fail(conn, 552, [5, 3, 4], &text).await;
        }
        self.tx = Some(Transaction {
            envelope: Envelope {
                from: address,
                envid: from.env_id,
                rcpts: Vec::new(),
            },
        });
        self.reply(conn, 250, [2, 1, 0], "Sender OK").await?;
        Ok(true)
    }

    async fn rcpt(&mut self, conn: &mut Conn, to: RcptTo<String>) -> Next {
        let Some(tx) = &self.tx else {
            return self.fail(conn, 503, [5, 5, 1], "MAIL first").await;
        };
        if tx.envelope.rcpts.len() >= MAX_RCPTS {
            self.reply(conn, 452, [4, 5, 3], "Too many recipients")
                .await?;
            return Ok(true);
        }
        let address = to.address.trim().to_ascii_lowercase();
        let route = delivery::route(&self.ctx, &address);
        let refusal = match (&route, self.mode) {
            (Route::Local(_) | Route::UnknownPatient, _) | (Route::Peer(_), Mode::Submission) => {
                None
            }
            (Route::UnknownLocal, _) => Some((550, [5, 1, 1], "No such mailbox here")),
            (Route::Peer(_) | Route::Elsewhere, Mode::Relay) => {
                Some((550, [5, 7, 1], "Relaying denied"))
            }
            (Route::Elsewhere, Mode::Submission) => Some((
                550,
                [5, 1, 2],
                "Unknown domain: the sandbox delivers to its operators and Mon espace sante only",
            )),
        };
        self.record(
            "rcpt",
            json!({ "to": address, "ok": refusal.is_none(), "route": route_name(&route) }),
        );
        if let Some((code, esc, text)) = refusal {
            return self.fail(conn, code, esc, text).await;
        }
        if let Some(tx) = &mut self.tx {
            tx.envelope.rcpts.push(Rcpt {
                address,
                orcpt: to.orcpt,
                notify_never: to.flags & RCPT_NOTIFY_NEVER != 0,
                route,
            });
        }
        self.reply(conn, 250, [2, 1, 5], "Recipient OK").await?;
        Ok(true)
    }

    async fn data(&mut self, conn: &mut Conn) -> Next {
        match &self.tx {
            None => return self.fail(conn, 503, [5, 5, 1], "MAIL first").await,
            Some(tx) if tx.envelope.rcpts.is_empty() => {
                return self.fail(conn, 554, [5, 5, 1], "No valid recipients").await;
            }
            Some(_) => {}
        }
        let slot = tokio::time::timeout(DATA_SLOT_WAIT, self.data_slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        let Some(_slot) = slot else {
            self.tx = None;
            self.reply(conn, 451, [4, 3, 2], "Too many messages at once, try later")
                .await?;
            return Ok(true);
        };
        self.record("response", json!({ "code": 354 }));
        conn.send(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
            .await?;
        let data = conn.data(MAX_MESSAGE).await?;
        let Some(tx) = self.tx.take() else {
            return Ok(false);
        };
        match data {
            Data::Complete(bytes) => {
                let arrival = Arrival {
                    service: self.service(),
                    session: self.session,
                    helo: self.helo.clone().unwrap_or_default(),
                    peer_ip: self.peer_ip.clone(),
                    with: match (conn.is_tls(), self.user.is_some()) {
                        (true, true) => "ESMTPSA",
                        (true, false) => "ESMTPS",
                        _ => "ESMTP",
                    },
                };
                let id = delivery::deliver(&self.ctx, &arrival, &tx.envelope, &bytes).await;
                self.reply(conn, 250, [2, 0, 0], &format!("Queued as {id}"))
                    .await?;
                Ok(true)
            }
            Data::TooBig => {
                let text = format!("Message too big: at most {MAX_MESSAGE} bytes");
                self.fail(conn, 552, [5, 3, 4], &text).await
            }
            Data::Endless => {
                let text = format!("Message too big: at most {MAX_MESSAGE} bytes, closing");
                self.reply(conn, 552, [5, 3, 4], &text).await?;
                Ok(false)
            }
        }
    }
}

fn route_name(route: &Route) -> &'static str {
    match route {
        Route::Local(_) => "local",
        Route::UnknownPatient => "unknown_patient",
        Route::Peer(_) => "other_operator",
        Route::UnknownLocal => "unknown_local",
        Route::Elsewhere => "elsewhere",
    }
}

/// What the recorder keeps of a command: never an AUTH response.
fn describe(request: &Request<String>) -> serde_json::Value {
    match request {
        Request::Ehlo { host } | Request::Helo { host } | Request::Lhlo { host } => {
            json!({ "verb": request.name(), "host": host })
        }
        Request::Mail { from } => json!({
            "verb": "MAIL",
            "from": from.address,
            "size": from.size,
            "envid": from.env_id,
            "ret": if from.flags & MAIL_RET_HDRS != 0 { Some("HDRS") } else if from.flags & smtp_proto::MAIL_RET_FULL != 0 { Some("FULL") } else { None },
        }),
        Request::Rcpt { to } => json!({
            "verb": "RCPT",
            "to": to.address,
            "orcpt": to.orcpt,
            "notify": notify_names(to.flags),
        }),
        Request::Auth {
            mechanism,
            initial_response,
        } => json!({
            "verb": "AUTH",
            "mechanism": mechanism.to_mechanism(),
            "initial_response": !initial_response.is_empty(),
        }),
        other => json!({ "verb": other.name() }),
    }
}

/// The DSN NOTIFY keywords set in smtp-proto's flags.
fn notify_names(flags: u64) -> Vec<&'static str> {
    [
        (RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (RCPT_NOTIFY_FAILURE, "FAILURE"),
        (RCPT_NOTIFY_DELAY, "DELAY"),
        (RCPT_NOTIFY_NEVER, "NEVER"),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| *name)
    .collect()
}
