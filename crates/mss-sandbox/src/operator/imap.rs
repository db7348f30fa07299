//! The operator's IMAP4rev1 server, on imap-next's sans-I/O server (all parsing and encoding
//! by imap-codec): STARTTLS on the plain port and TLS from the first byte on the other,
//! AUTHENTICATE XOAUTH2 / OAUTHBEARER (PSC tokens) and EXTERNAL (client certificate), LOGIN
//! and every other mechanism refused; INBOX, Sent and user folders of the mail store with
//! UIDs, UIDVALIDITY and mod-sequences (CONDSTORE); FETCH, SEARCH, STORE, COPY, APPEND,
//! EXPUNGE, UID EXPUNGE (UIDPLUS) and IDLE woken by the store. Every command and answer is
//! recorded (never literals or SASL payloads).

mod answer;
mod commands;
mod conn;
mod fetch;
mod messages;
mod sasl;
mod search;
mod session;
mod view;

use std::sync::Arc;
use std::time::Duration;

use imap_next::imap_types::response::Greeting;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::OperatorContext;
use super::mailstore::MAX_MESSAGE;

/// The bounds of the IMAP server.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// How long a client may stay in IDLE without a word (RFC 3501 asks for at least 30 min).
    pub idle_timeout: Duration,
    /// How long a client may stay silent outside IDLE (RFC 3501's autologout timer is at
    /// least 30 min for authenticated clients; the sandbox is stricter).
    pub inactivity_timeout: Duration,
    /// Largest literal (an APPENDed message): the store's limit.
    pub max_literal: u32,
    /// Largest command before TLS, where only STARTTLS, CAPABILITY, NOOP and LOGOUT serve.
    pub max_command_before_tls: u32,
    /// Simultaneous connections per listener; more get `* BYE` at once.
    pub max_connections: usize,
    /// Failed AUTHENTICATE or LOGIN before the connection is closed.
    pub max_auth_failures: u32,
    /// Unparsable commands in a row before the connection is closed.
    pub max_bad_commands: u32,
}

impl Default for ImapSettings {
    fn default() -> Self {
        ImapSettings {
            idle_timeout: Duration::from_secs(30 * 60),
            inactivity_timeout: Duration::from_secs(5 * 60),
            max_literal: MAX_MESSAGE as u32,
            max_command_before_tls: 64 * 1024,
            max_connections: 256,
            max_auth_failures: 3,
            max_bad_commands: 10,
        }
    }
}

/// Serves IMAP on `listener`: STARTTLS first, or TLS from the first byte (`implicit_tls`).
pub async fn serve(listener: TcpListener, ctx: Arc<OperatorContext>, implicit_tls: bool) {
    serve_with(listener, ctx, implicit_tls, ImapSettings::default()).await;
}

/// [`serve`] with other bounds.
pub async fn serve_with(
    listener: TcpListener,
    ctx: Arc<OperatorContext>,
    implicit_tls: bool,
    settings: ImapSettings,
) {
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    loop {
        let (mut tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or similar: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let session = ctx.recorder.next_session();
        ctx.recorder.record(
            "imap",
            session,
            "connect",
            json!({ "peer": peer.to_string(), "implicit_tls": implicit_tls }),
        );
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ctx.recorder.record(
                "imap",
                session,
                "close",
                json!({ "reason": "too many connections" }),
            );
            tokio::spawn(async move {
                let bye = Greeting::bye(None, "Too many connections, try again later")
                    .expect("static text is valid");
                let bytes = imap_codec::encode::Encoder::encode(
                    &imap_codec::GreetingCodec::default(),
                    &bye,
                )
                .dump();
                // A TLS client just sees the connection close.
                if !implicit_tls {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&bytes)).await;
                }
            });
            continue;
        };
        let ctx = ctx.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let _permit = permit;
            session::run(ctx, settings, tcp, session, implicit_tls).await;
        });
    }
}
