//! The I/O side of one IMAP connection: bytes between the socket (plain or TLS) and
//! imap-next's sans-I/O `Server`, which does all the parsing and encoding.
//!
//! imap-next ships a `Stream` driver, but it owns its socket for good; the operator needs to
//! upgrade a plain connection after STARTTLS and to wait for input and mailbox changes at
//! the same time during IDLE, so this small driver keeps reading (cancel-safe) apart from
//! writing (never cancelled).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use imap_next::imap_types::response::Greeting;
use imap_next::server::{Error as ServerError, Event, Options, Server};
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Bytes read from the socket at most at once.
const READ_CHUNK: usize = 16 * 1024;

/// The socket, before or after TLS.
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What moving the server forward gave.
pub(super) enum Step {
    Event(Event),
    /// Everything queued was written; the server waits for the client.
    NeedInput,
}

/// Why a connection cannot go on.
#[derive(Debug)]
pub(super) enum ConnError {
    Closed,
    /// The socket failed (reset, broken pipe…).
    Io,
    /// The client sent something imap-next could not take (the bytes are dropped).
    Protocol(ServerError),
}

impl From<io::Error> for ConnError {
    fn from(_: io::Error) -> Self {
        ConnError::Io
    }
}

pub(super) struct Conn {
    pub io: Transport,
    pub server: Server,
    buf: Vec<u8>,
}

impl Conn {
    /// A connection whose server sends `greeting` first.
    pub fn new(io: Transport, options: Options, greeting: Greeting<'static>) -> Conn {
        Conn {
            io,
            server: Server::new(options, greeting),
            buf: vec![0; READ_CHUNK],
        }
    }

    /// A connection that continues after STARTTLS: imap-next always queues a greeting, which
    /// must not be sent again, so it is drained without being written.
    pub fn resumed(io: Transport, options: Options) -> Conn {
        let greeting = Greeting::ok(None, "TLS").expect("static text is valid");
        let mut server = Server::new(options, greeting);
        while let Err(Interrupt::Io(Io::Output(_))) = server.next() {}
        Conn {
            io,
            server,
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Writes what the server has queued and decodes what was read, until an event or until
    /// the server needs more input. Not cancel-safe (a write may be cut): never race it.
    pub async fn progress(&mut self) -> Result<Step, ConnError> {
        loop {
            match self.server.next() {
                Ok(event) => return Ok(Step::Event(event)),
                Err(Interrupt::Io(Io::Output(bytes))) => self.io.write_all(&bytes).await?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    self.io.flush().await?;
                    return Ok(Step::NeedInput);
                }
                Err(Interrupt::Error(e)) => {
                    self.io.flush().await?;
                    return Err(ConnError::Protocol(e));
                }
            }
        }
    }

    /// Reads one chunk from the client into the server. Cancel-safe: a read that did not
    /// finish consumed nothing.
    pub async fn read_more(&mut self) -> Result<(), ConnError> {
        let n = self.io.read(&mut self.buf).await?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        self.server.enqueue_input(&self.buf[..n]);
        Ok(())
    }

    /// Sends everything queued, ignoring commands the client pipelined behind (used before
    /// a TLS upgrade, where they must be dropped, and before closing).
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        loop {
            match self.progress().await {
                Ok(Step::Event(Event::ResponseSent { .. } | Event::GreetingSent { .. })) => {}
                Ok(_) => break,
                Err(ConnError::Protocol(_)) => break,
                Err(e) => return Err(e),
            }
        }
        self.io.flush().await?;
        Ok(())
    }
}
