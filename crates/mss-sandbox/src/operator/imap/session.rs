//! One IMAP connection, from greeting to logout: the protocol states of RFC 3501 §3, the
//! main loop, IDLE, and the updates of the selected folder.

use std::collections::VecDeque;
use std::sync::Arc;

use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::auth::AuthMechanism;
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::response::{
    Bye, Capability, Code, CommandContinuationRequest, Greeting, Status, StatusBody, StatusKind,
};
use imap_next::server::{Error as ServerError, Event, Options};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ImapSettings;
use super::answer::{Answer, Flow, code_name, tagged, text_of};
use super::conn::{Conn, ConnError, Step, Transport};
use super::sasl::PendingAuth;
use super::view::Selected;
use crate::operator::OperatorContext;
use crate::operator::auth::PeerCertificate;

pub(super) const SERVICE: &str = "imap";

/// Runs one connection to its end; every way it ends is recorded.
pub(super) async fn run(
    ctx: Arc<OperatorContext>,
    settings: Arc<ImapSettings>,
    tcp: TcpStream,
    id: u64,
    implicit_tls: bool,
) {
    let _ = tcp.set_nodelay(true);
    let (io, peer, tls) = if implicit_tls {
        match ctx.accept_tls(SERVICE, id, tcp).await {
            Ok((stream, peer)) => (Transport::Tls(Box::new(stream)), peer, true),
            Err(_) => return,
        }
    } else {
        (Transport::Plain(tcp), None, false)
    };
    let mut session = Session {
        options: options(&settings, tls),
        ctx,
        settings,
        id,
        tls,
        peer,
        user: None,
        selected: None,
        condstore: false,
        auth: None,
        auth_failures: 0,
        bad_commands: 0,
        idle: None,
        stashed: VecDeque::new(),
    };
    let greeting = Greeting::ok(
        Some(Code::Capability(session.capabilities())),
        "MSS sandbox operator ready",
    )
    .expect("static text is valid");
    let conn = Conn::new(io, session.options.clone(), greeting);
    let reason = session.serve(conn).await;
    session.record("close", json!({ "reason": reason }));
}

pub(super) fn options(settings: &ImapSettings, tls: bool) -> Options {
    let mut options = Options::default();
    if tls {
        options.max_literal_size = settings.max_literal;
        options.max_command_size = settings.max_literal.saturating_add(64 * 1024);
    } else {
        // Before TLS nothing needs a literal: keep the buffer small.
        options.max_literal_size = settings.max_command_before_tls / 2;
        options.max_command_size = settings.max_command_before_tls;
    }
    options
}

pub(super) struct Session {
    pub(super) ctx: Arc<OperatorContext>,
    pub(super) settings: Arc<ImapSettings>,
    pub(super) options: Options,
    pub(super) id: u64,
    pub(super) tls: bool,
    pub(super) peer: Option<PeerCertificate>,
    /// The mailbox logged in to.
    pub(super) user: Option<String>,
    pub(super) selected: Option<Selected>,
    /// The client used CONDSTORE: FETCH answers carry MODSEQ.
    pub(super) condstore: bool,
    pub(super) auth: Option<PendingAuth>,
    pub(super) auth_failures: u32,
    pub(super) bad_commands: u32,
    /// The tag of the IDLE in progress and when it times out.
    pub(super) idle: Option<(Tag<'static>, Instant)>,
    /// Commands decoded while flushing a long answer, handled next.
    pub(super) stashed: VecDeque<Event>,
}

impl Session {
    pub(super) fn record(&self, kind: &'static str, detail: Value) {
        self.ctx.recorder.record(SERVICE, self.id, kind, detail);
    }

    pub(super) fn capabilities(&self) -> Vec1<Capability<'static>> {
        let mut caps = vec![Capability::Imap4Rev1];
        if !self.tls {
            caps.push(Capability::StartTls);
            caps.push(Capability::LoginDisabled);
        } else if self.user.is_none() {
            caps.push(Capability::LoginDisabled);
            caps.push(Capability::SaslIr);
            for mechanism in ["XOAUTH2", "OAUTHBEARER", "EXTERNAL"] {
                caps.push(Capability::Auth(
                    AuthMechanism::try_from(mechanism)
                        .expect("valid mechanism")
                        .into_static(),
                ));
            }
        }
        if self.tls {
            caps.extend([
                Capability::Idle,
                Capability::UidPlus,
                Capability::CondStore,
                Capability::Enable,
                Capability::Unselect,
            ]);
        }
        Vec1::try_from(caps).expect("IMAP4rev1 is always there")
    }

    /// The connection's main loop; returns why it ended.
    pub(super) async fn serve(&mut self, mut conn: Conn) -> &'static str {
        loop {
            let step = match self.stashed.pop_front() {
                Some(event) => Step::Event(event),
                None => {
                    match tokio::time::timeout(self.settings.inactivity_timeout, conn.progress())
                        .await
                    {
                        Ok(Ok(step)) => step,
                        Ok(Err(ConnError::Protocol(error))) => {
                            if let Some(reason) = self.bad_input(&mut conn, error) {
                                let _ = self.bounded(conn.flush()).await;
                                return reason;
                            }
                            continue;
                        }
                        Ok(Err(ConnError::Closed)) => return "client closed the connection",
                        Ok(Err(ConnError::Io)) => return "connection error",
                        Err(_) => return "timeout while writing",
                    }
                }
            };
            match step {
                Step::Event(event) => match self.event(&mut conn, event).await {
                    Flow::Continue => {}
                    Flow::Close(reason) => {
                        let _ = self.bounded(conn.flush()).await;
                        return reason;
                    }
                    Flow::StartTls => {
                        if let Err(reason) = self.bounded(conn.flush()).await {
                            return reason;
                        }
                        // Commands pipelined behind STARTTLS go with the old server
                        // (RFC 3501 §6.2.1: they must not be taken as if sent over TLS).
                        let Transport::Plain(tcp) = conn.io else {
                            return "STARTTLS on a TLS connection";
                        };
                        let Ok((stream, peer)) = self.ctx.accept_tls(SERVICE, self.id, tcp).await
                        else {
                            return "TLS handshake failed";
                        };
                        self.tls = true;
                        self.peer = peer;
                        self.options = options(&self.settings, true);
                        self.stashed.clear();
                        conn =
                            Conn::resumed(Transport::Tls(Box::new(stream)), self.options.clone());
                    }
                },
                Step::NeedInput => {
                    if let Err(reason) = self.wait_input(&mut conn).await {
                        return reason;
                    }
                }
            }
        }
    }

    /// Answers a line imap-next could not decode: BAD, tagged when the tag is readable (a
    /// literal over the limit was already refused by imap-next itself). Returns a reason to
    /// close after a command too long or too many bad lines in a row.
    pub(super) fn bad_input(
        &mut self,
        conn: &mut Conn,
        error: ServerError,
    ) -> Option<&'static str> {
        self.bad_commands += 1;
        let (text, fatal, bytes) = match &error {
            ServerError::LiteralTooLong { discarded_bytes } => {
                ("Literal too big", false, discarded_bytes)
            }
            ServerError::CommandTooLong { discarded_bytes } => {
                ("Command too long", true, discarded_bytes)
            }
            ServerError::ExpectedCrlfGotLf { discarded_bytes } => {
                ("Lines must end with CRLF", false, discarded_bytes)
            }
            ServerError::MalformedMessage { discarded_bytes } => {
                ("Unreadable command", false, discarded_bytes)
            }
        };
        let bytes: &[u8] = bytes.declassify();
        let tag = bytes
            .iter()
            .position(|&b| b == b' ')
            .and_then(|end| std::str::from_utf8(&bytes[..end]).ok())
            .and_then(|t| Tag::try_from(t.to_owned()).ok());
        self.record(
            "bad_input",
            json!({ "error": text, "bytes": bytes.len(), "tag": tag.as_ref().map(|t| t.as_ref().to_owned()) }),
        );
        if !matches!(error, ServerError::LiteralTooLong { .. }) {
            match tag {
                Some(tag) => self.finish(conn, tag, Answer::bad(text)),
                None => {
                    conn.server.enqueue_status(Status::Untagged(StatusBody {
                        kind: StatusKind::Bad,
                        code: None,
                        text: text_of(text),
                    }));
                }
            }
        }
        if fatal || self.bad_commands >= self.settings.max_bad_commands {
            self.bye(conn, "Too many bad commands");
            return Some("bad input");
        }
        None
    }

    /// Runs `fut` under the inactivity timer; errors become the reason to close.
    pub(super) async fn bounded<T>(
        &mut self,
        fut: impl Future<Output = Result<T, ConnError>>,
    ) -> Result<T, &'static str> {
        match tokio::time::timeout(self.settings.inactivity_timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ConnError::Closed)) => Err("client closed the connection"),
            Ok(Err(ConnError::Io)) => Err("connection error"),
            Ok(Err(ConnError::Protocol(_))) => Err("protocol error"),
            Err(_) => Err("timeout"),
        }
    }

    /// Waits for the client; in IDLE, also for changes of the selected folder.
    pub(super) async fn wait_input(&mut self, conn: &mut Conn) -> Result<(), &'static str> {
        let Some((_, deadline)) = self.idle.as_ref().map(|(t, d)| (t.clone(), *d)) else {
            return match tokio::time::timeout(self.settings.inactivity_timeout, conn.read_more())
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(ConnError::Closed)) => Err("client closed the connection"),
                Ok(Err(_)) => Err("connection error"),
                Err(_) => {
                    self.bye(conn, "Autologout: idle for too long");
                    let _ = self.bounded(conn.flush()).await;
                    Err("inactivity timeout")
                }
            };
        };
        let changed = async {
            match self.selected.as_mut() {
                Some(s) => s.changes.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = conn.read_more() => match read {
                Ok(()) => Ok(()),
                Err(ConnError::Closed) => Err("client closed the connection"),
                Err(_) => Err("connection error"),
            },
            alive = changed => {
                if !alive {
                    self.bye(conn, "The folder was deleted");
                    let _ = self.bounded(conn.flush()).await;
                    return Err("selected folder deleted");
                }
                self.push_updates(conn, true);
                Ok(())
            }
            _ = tokio::time::sleep_until(deadline) => {
                self.bye(conn, "IDLE for too long");
                let _ = self.bounded(conn.flush()).await;
                Err("IDLE timeout")
            }
        }
    }

    pub(super) fn bye(&self, conn: &mut Conn, text: &str) {
        conn.server.enqueue_status(Status::Bye(Bye {
            code: None,
            text: text_of(text),
        }));
    }

    /// Sends the changes of the selected folder made elsewhere.
    pub(super) fn push_updates(&mut self, conn: &mut Conn, expunges: bool) {
        let (Some(user), Some(selected)) = (self.user.as_deref(), self.selected.as_mut()) else {
            return;
        };
        selected.changes.borrow_and_update();
        match selected.sync(&self.ctx.store, user, expunges, self.condstore) {
            Ok(updates) => {
                for data in updates {
                    conn.server.enqueue_data(data);
                }
            }
            Err(_) => {
                // The folder is gone: nothing sensible can be numbered any more.
                self.selected = None;
                conn.server.enqueue_status(Status::Untagged(StatusBody {
                    kind: StatusKind::Ok,
                    code: Some(Code::Closed),
                    text: text_of("The selected folder no longer exists"),
                }));
            }
        }
    }

    pub(super) async fn event(&mut self, conn: &mut Conn, event: Event) -> Flow {
        match event {
            Event::GreetingSent { .. } | Event::ResponseSent { .. } => Flow::Continue,
            Event::CommandReceived { command } => {
                self.bad_commands = 0;
                self.command(conn, command).await
            }
            Event::CommandAuthenticateReceived {
                command_authenticate,
            } => {
                self.bad_commands = 0;
                self.authenticate(
                    conn,
                    command_authenticate.tag,
                    command_authenticate.mechanism,
                    command_authenticate.initial_response,
                )
            }
            Event::AuthenticateDataReceived { authenticate_data } => {
                self.authenticate_data(conn, authenticate_data)
            }
            Event::IdleCommandReceived { tag } => {
                self.record(
                    "command",
                    json!({ "tag": tag.as_ref(), "command": "IDLE", "mailbox": self.selected_name() }),
                );
                if self.user.is_none() {
                    let answer = Answer::bad("Log in first");
                    self.record_answer(&tag, &answer);
                    let _ = conn.server.idle_reject(tagged(tag, answer));
                    return Flow::Continue;
                }
                let _ = conn.server.idle_accept(
                    CommandContinuationRequest::basic(None, "idling").expect("static text"),
                );
                self.idle = Some((tag, Instant::now() + self.settings.idle_timeout));
                self.push_updates(conn, true);
                Flow::Continue
            }
            Event::IdleDoneReceived => {
                if let Some((tag, _)) = self.idle.take() {
                    self.push_updates(conn, true);
                    self.finish(conn, tag, Answer::ok("IDLE terminated"));
                }
                Flow::Continue
            }
        }
    }

    pub(super) fn selected_name(&self) -> Option<String> {
        self.selected.as_ref().map(|s| s.folder.clone())
    }

    pub(super) fn record_answer(&self, tag: &Tag<'_>, answer: &Answer) {
        self.record(
            "response",
            json!({
                "tag": tag.as_ref(),
                "status": match answer.kind { StatusKind::Ok => "OK", StatusKind::No => "NO", StatusKind::Bad => "BAD" },
                "code": answer.code.as_ref().map(code_name),
                "text": answer.text,
            }),
        );
    }

    /// Records and queues a tagged answer.
    pub(super) fn finish(&self, conn: &mut Conn, tag: Tag<'static>, answer: Answer) {
        self.record_answer(&tag, &answer);
        conn.server.enqueue_status(tagged(tag, answer));
    }
}
