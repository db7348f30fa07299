//! A read budget under the IMAP client: the session says how many bytes the answer to its
//! next command may take, and a server that sends more gets the connection closed instead
//! of our memory. (async-imap alone would buffer up to 512 MiB for one response.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes one SMTP reply may take (a reply is a few lines; EHLO a few dozen).
pub(crate) const SMTP_REPLY: u64 = 1024 * 1024;

/// Bytes the answer to an ordinary command (LIST, SELECT, STORE, a UID listing…) may take.
pub(crate) const ORDINARY: u64 = 64 * 1024 * 1024;

/// The shared allowance, set by the session before each command.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget(Arc<AtomicU64>);

impl Budget {
    pub(crate) fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }
}

/// A stream that stops reading once its [`Budget`] is spent.
#[derive(Debug)]
pub(crate) struct Budgeted<S> {
    inner: S,
    budget: Budget,
    scratch: Vec<u8>,
}

impl<S> Budgeted<S> {
    pub(crate) fn new(inner: S, budget: Budget) -> Self {
        Budgeted {
            inner,
            budget,
            scratch: Vec::new(),
        }
    }

    /// The stream underneath (to start TLS on it).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let left = this.budget.0.load(Ordering::Relaxed);
        if left == 0 {
            return Poll::Ready(Err(std::io::Error::other(
                "the server sent more than the answer could hold",
            )));
        }
        // Read at most what is left, through a scratch buffer (no unsafe code here).
        let want = buf.remaining().min(64 * 1024).min(left as usize);
        this.scratch.resize(want, 0);
        let mut limited = ReadBuf::new(&mut this.scratch[..want]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let got = limited.filled().len();
        buf.put_slice(limited.filled());
        this.budget.0.fetch_sub(got as u64, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reading_past_the_budget_fails() {
        let (mut server, client) = tokio::io::duplex(1024);
        let budget = Budget::default();
        budget.set(10);
        let mut client = Budgeted::new(client, budget.clone());
        server.write_all(b"0123456789abcdef").await.unwrap();
        let mut got = vec![0; 16];
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"0123456789");
        assert!(client.read(&mut got).await.is_err());
        budget.set(100);
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"abcdef");
    }
}
