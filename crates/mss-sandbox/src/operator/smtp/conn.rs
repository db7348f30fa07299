//! One SMTP connection's bytes: bounded command lines, the DATA stream (dot-unstuffed by
//! smtp-proto's `DataReceiver`), and the STARTTLS upgrade. Every read has a timeout.

use std::io;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::operator::OperatorContext;
use crate::operator::auth::PeerCertificate;

/// How long a client may stay silent between commands (RFC 5321 §4.5.3.2: 5 minutes).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a DATA block may take to arrive (RFC 5321: 3 minutes per block).
const DATA_TIMEOUT: Duration = Duration::from_secs(180);
/// Bytes read past the size limit before the session is cut: a client that never ends
/// its DATA is not read forever.
const MAX_DISCARD: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// A line read from the client.
pub(super) enum Line {
    /// The whole line, LF included.
    Full(Vec<u8>),
    /// Longer than allowed (nothing of it is kept).
    TooLong,
}

/// What DATA produced.
pub(super) enum Data {
    /// The message, dot-unstuffed, its last CRLF included.
    Complete(Vec<u8>),
    /// The message ended but was over the limit (its bytes were dropped).
    TooBig,
    /// Over the limit and still going after `MAX_DISCARD` more bytes.
    Endless,
}

pub(super) struct Conn {
    io: Io,
    buf: Vec<u8>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "client too slow")
}

impl Conn {
    pub(super) fn new(tcp: TcpStream) -> Conn {
        Conn {
            io: Io::Plain(tcp),
            buf: Vec::new(),
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// Reads more bytes into the buffer; 0 at end of stream.
    async fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        let mut chunk = vec![0u8; READ_CHUNK];
        let read = async {
            match &mut self.io {
                Io::Plain(s) => s.read(&mut chunk).await,
                Io::Tls(s) => s.read(&mut chunk).await,
                Io::Gone => Ok(0),
            }
        };
        let n = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| timed_out())??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next line, at most `max` bytes. `Ok(None)`: the client closed.
    pub(super) async fn line(&mut self, max: usize) -> io::Result<Option<Line>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                if pos + 1 > max {
                    self.buf.drain(..=pos);
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Full(self.buf.drain(..=pos).collect())));
            }
            if self.buf.len() > max {
                self.buf.clear();
                return Ok(Some(Line::TooLong));
            }
            if self.fill(COMMAND_TIMEOUT).await? == 0 {
                return Ok(None);
            }
        }
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let write = async {
            match &mut self.io {
                Io::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Io::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Io::Gone => Err(io::ErrorKind::NotConnected.into()),
            }
        };
        tokio::time::timeout(COMMAND_TIMEOUT, write)
            .await
            .map_err(|_| timed_out())?
    }

    /// Reads a DATA stream up to its terminating `CRLF . CRLF`, keeping at most `limit`
    /// bytes.
    pub(super) async fn data(&mut self, limit: usize) -> io::Result<Data> {
        let mut receiver = DataReceiver::new();
        let mut message = Vec::new();
        let mut dropping: Option<(DummyDataReceiver, usize)> = None;
        loop {
            let mut bytes = self.buf.iter();
            let done = match &mut dropping {
                None => receiver.ingest(&mut bytes, &mut message),
                Some((dummy, _)) => dummy.ingest(&mut bytes),
            };
            let consumed = self.buf.len() - bytes.as_slice().len();
            self.buf.drain(..consumed);
            if let Some((_, dropped)) = &mut dropping {
                *dropped += consumed;
            }
            if done {
                return Ok(match dropping {
                    None if message.len() <= limit => Data::Complete(message),
                    _ => Data::TooBig,
                });
            }
            if dropping.is_none() && message.len() > limit {
                dropping = Some((DummyDataReceiver::new_data(&receiver), 0));
                message = Vec::new();
            }
            if dropping.as_ref().is_some_and(|(_, n)| *n > MAX_DISCARD) {
                return Ok(Data::Endless);
            }
            if self.fill(DATA_TIMEOUT).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Upgrades to TLS after `220` to STARTTLS. Whatever the client sent after STARTTLS
    /// before the handshake is dropped (no command injection across the upgrade).
    pub(super) async fn starttls(
        &mut self,
        ctx: &OperatorContext,
        service: &'static str,
        session: u64,
    ) -> io::Result<Option<PeerCertificate>> {
        self.buf.clear();
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(io::Error::other("already under TLS"));
        };
        let (stream, peer) = ctx.accept_tls(service, session, tcp).await?;
        self.io = Io::Tls(Box::new(stream));
        Ok(peer)
    }
}
