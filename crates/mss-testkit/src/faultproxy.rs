//! A TCP fault proxy for tests: it sits between a client and a real server on 127.0.0.1 and,
//! on command from the test, breaks the connection in the ways networks do.
//!
//! Faults are set per direction at any time, and existing connections see them at their next
//! read. A trigger (after N bytes, or once a byte pattern has gone through) fires once, on the
//! first connection that reaches it, then disarms: a client that reconnects gets a clean
//! connection unless the test arms the fault again. Modes (stall, blackhole, one-byte writes)
//! last until changed. TLS passes through untouched, so patterns only match clear text
//! (before STARTTLS) — for encrypted traffic use byte counts.
//!
//! Everything is bounded: connecting to the target times out after 5 s, a read buffer is
//! 16 KiB, and dropping the proxy stops every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Which way the bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (commands, DATA, IDLE…).
    ToServer,
    /// From the server to the client (greetings, FETCH responses…).
    ToClient,
}

/// What a trigger does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close both sides cleanly (FIN), like a server that goes away.
    Cut,
    /// Close both sides with a TCP reset (RST), like a middlebox that kills the flow.
    Reset,
    /// Stop forwarding in this direction for this connection, forever; the socket stays open.
    Stall,
}

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// After this many more bytes (counted from when the trigger is armed) have been forwarded.
    AfterBytes(u64),
    /// Right after these bytes have been forwarded (the pattern itself goes through).
    AfterPattern(Vec<u8>),
}

/// How a direction forwards while no trigger fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything as it comes.
    #[default]
    Forward,
    /// Stop reading: data waits in the kernel buffers and flows again on `Forward`.
    Stall,
    /// Read and drop: the data is lost, the peer sees nothing.
    Blackhole,
    /// Forward one byte per write (tests parsers that assume whole lines).
    OneByte,
}

#[derive(Debug, Default, Clone)]
struct DirectionRules {
    mode: Mode,
    trigger: Option<(Trigger, Action)>,
    /// Bumped each time a trigger is armed, so pumps restart their byte count.
    armed: u64,
}

struct Shared {
    rules: Mutex<[DirectionRules; 2]>,
    /// Wakes pumps when rules change (a stalled pump waits on it).
    changed: watch::Sender<u64>,
    /// Bumped to end every open connection with the stored action.
    kill: watch::Sender<(u64, Action)>,
    refuse: AtomicBool,
    accepted: AtomicUsize,
    forwarded: [AtomicU64; 2],
    writes: [AtomicU64; 2],
    fired: AtomicUsize,
}

/// The proxy. Drop it to stop it and every connection through it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (any port) and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            rules: Mutex::default(),
            changed: watch::channel(0).0,
            kill: watch::channel((0, Action::Cut)).0,
            refuse: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
            writes: [AtomicU64::new(0), AtomicU64::new(0)],
            fired: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, target, shared.clone()));
        Ok(FaultProxy { addr, shared, task })
    }

    /// Where clients should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Arms a one-shot trigger on a direction (replacing any armed one).
    pub fn arm(&self, direction: Direction, trigger: Trigger, action: Action) {
        self.update(direction, |rules| {
            rules.trigger = Some((trigger, action));
            rules.armed += 1;
        });
    }

    /// Shorthand: cut the connection once `pattern` has gone through in `direction`.
    pub fn cut_after_pattern(&self, direction: Direction, pattern: &[u8]) {
        self.arm(
            direction,
            Trigger::AfterPattern(pattern.to_vec()),
            Action::Cut,
        );
    }

    /// Shorthand: cut the connection after `bytes` more bytes in `direction`.
    pub fn cut_after_bytes(&self, direction: Direction, bytes: u64) {
        self.arm(direction, Trigger::AfterBytes(bytes), Action::Cut);
    }

    /// Removes the armed trigger of a direction.
    pub fn disarm(&self, direction: Direction) {
        self.update(direction, |rules| rules.trigger = None);
    }

    /// Sets how a direction forwards (for every connection, now and later).
    pub fn set_mode(&self, direction: Direction, mode: Mode) {
        self.update(direction, |rules| rules.mode = mode);
    }

    /// Accepts new connections only to reset them at once (`true`), or forwards them again.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Ends every open connection now, with a FIN (`Cut`) or a RST (`Reset`).
    pub fn end_all(&self, action: Action) {
        self.shared.kill.send_modify(|(epoch, what)| {
            *epoch += 1;
            *what = action;
        });
    }

    /// Back to a plain proxy: no trigger, every mode `Forward`, new connections accepted.
    pub fn clear(&self) {
        for direction in [Direction::ToServer, Direction::ToClient] {
            self.update(direction, |rules| {
                rules.trigger = None;
                rules.mode = Mode::Forward;
            });
        }
        self.refuse_new(false);
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far in a direction, over all connections.
    pub fn forwarded(&self, direction: Direction) -> u64 {
        self.shared.forwarded[index(direction)].load(Ordering::SeqCst)
    }

    /// Writes made so far in a direction (one per byte in `Mode::OneByte`).
    pub fn writes(&self, direction: Direction) -> u64 {
        self.shared.writes[index(direction)].load(Ordering::SeqCst)
    }

    /// How many triggers have fired.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Waits until `fired()` reaches `count`, at most `timeout`; false on timeout.
    pub async fn wait_fired(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.fired() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn update(&self, direction: Direction, change: impl FnOnce(&mut DirectionRules)) {
        if let Ok(mut rules) = self.shared.rules.lock() {
            change(&mut rules[index(direction)]);
        }
        self.shared.changed.send_modify(|n| *n += 1);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((client, _)) = accepted else {
            // Out of file descriptors or similar: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        connections.spawn(connection(client, target, shared.clone()));
    }
}

enum Ended {
    Eof,
    Error,
    Fired(Action),
}

async fn connection(mut client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let connected = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await;
    let Ok(Ok(mut server)) = connected else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut kill = shared.kill.subscribe();
    kill.mark_unchanged();
    let outcome = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pump(
            &mut client_read,
            &mut server_write,
            Direction::ToServer,
            &shared,
        );
        let down = pump(
            &mut server_read,
            &mut client_write,
            Direction::ToClient,
            &shared,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let ended = tokio::select! {
                ended = &mut up, if !up_done => { up_done = true; ended }
                ended = &mut down, if !down_done => { down_done = true; ended }
                changed = kill.changed() => match changed {
                    Ok(()) => Ended::Fired(kill.borrow_and_update().1),
                    Err(_) => Ended::Error,
                },
            };
            match ended {
                Ended::Fired(action) => break Some(action),
                Ended::Error => break None,
                Ended::Eof if up_done && down_done => break None,
                Ended::Eof => {}
            }
        }
    };
    match outcome {
        Some(Action::Reset) => {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        Some(Action::Stall) => {
            // Both directions stalled by triggers is handled in the pump; here the
            // connection stays open until the proxy stops or `end_all` is called.
            let _ = kill.changed().await;
        }
        Some(Action::Cut) | None => {
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        }
    }
}

/// Forwards one direction until EOF, an error, or a fired trigger.
async fn pump<R, W>(reader: &mut R, writer: &mut W, direction: Direction, shared: &Shared) -> Ended
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let slot = index(direction);
    let mut changed = shared.changed.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    let mut armed_seen = u64::MAX;
    let mut counted: u64 = 0;
    // The end of the previous read, so a pattern split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    let mut stalled_for_good = false;
    loop {
        let rules = shared
            .rules
            .lock()
            .map(|r| r[slot].clone())
            .unwrap_or_default();
        if stalled_for_good || rules.mode == Mode::Stall {
            if changed.changed().await.is_err() {
                return Ended::Error;
            }
            continue;
        }
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            // Rules changed while waiting for data: look at them again.
            _ = changed.changed() => continue,
        };
        let n = match read {
            Ok(0) => {
                let _ = writer.shutdown().await;
                return Ended::Eof;
            }
            Ok(n) => n,
            Err(_) => return Ended::Error,
        };
        // Rules may have changed during the read; the trigger decision uses the latest.
        let rules = shared
            .rules
            .lock()
            .map(|r| r[slot].clone())
            .unwrap_or_default();
        if rules.mode == Mode::Blackhole {
            continue;
        }
        if rules.armed != armed_seen {
            armed_seen = rules.armed;
            counted = 0;
            tail.clear();
        }
        let data = &buf[..n];
        let mut fire: Option<(usize, Action)> = None;
        if let Some((trigger, action)) = &rules.trigger {
            let at = match trigger {
                Trigger::AfterBytes(limit) => {
                    let left = limit.saturating_sub(counted);
                    (left <= n as u64).then_some(left as usize)
                }
                Trigger::AfterPattern(pattern) => find_end(&tail, data, pattern),
            };
            if let Some(at) = at
                && disarm_if_current(shared, slot, rules.armed)
            {
                fire = Some((at, *action));
            }
        }
        let forward = fire.map_or(n, |(at, _)| at);
        let one_byte = rules.mode == Mode::OneByte;
        if write(writer, &data[..forward], one_byte).await.is_err() {
            return Ended::Error;
        }
        let writes = if one_byte {
            forward as u64
        } else {
            u64::from(forward > 0)
        };
        shared.writes[slot].fetch_add(writes, Ordering::SeqCst);
        shared.forwarded[slot].fetch_add(forward as u64, Ordering::SeqCst);
        counted += forward as u64;
        if let Some((Trigger::AfterPattern(pattern), _)) = &rules.trigger {
            keep_tail(&mut tail, &data[..forward], pattern.len());
        }
        match fire {
            Some((_, Action::Stall)) => {
                shared.fired.fetch_add(1, Ordering::SeqCst);
                stalled_for_good = true;
            }
            Some((_, action)) => {
                shared.fired.fetch_add(1, Ordering::SeqCst);
                return Ended::Fired(action);
            }
            None => {}
        }
    }
}

/// One-shot: only the first pump to fire an armed trigger gets it.
fn disarm_if_current(shared: &Shared, slot: usize, armed: u64) -> bool {
    let Ok(mut rules) = shared.rules.lock() else {
        return false;
    };
    let rules = &mut rules[slot];
    if rules.armed == armed && rules.trigger.is_some() {
        rules.trigger = None;
        true
    } else {
        false
    }
}

/// Where in `data` the first occurrence of `pattern` ends, looking across the previous tail.
fn find_end(tail: &[u8], data: &[u8], pattern: &[u8]) -> Option<usize> {
    if pattern.is_empty() {
        return Some(0);
    }
    let mut joined = Vec::with_capacity(tail.len() + data.len());
    joined.extend_from_slice(tail);
    joined.extend_from_slice(data);
    joined
        .windows(pattern.len())
        .position(|w| w == pattern)
        .map(|start| start + pattern.len() - tail.len())
        .filter(|end| *end <= data.len())
}

fn keep_tail(tail: &mut Vec<u8>, forwarded: &[u8], pattern_len: usize) {
    let keep = pattern_len.saturating_sub(1);
    tail.extend_from_slice(forwarded);
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
}

async fn write<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    data: &[u8],
    one_byte: bool,
) -> std::io::Result<()> {
    if one_byte {
        for byte in data {
            writer.write_all(std::slice::from_ref(byte)).await?;
            writer.flush().await?;
        }
        Ok(())
    } else {
        writer.write_all(data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1 that answers each read with the same bytes.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    const WAIT: Duration = Duration::from_secs(5);

    /// Reads until EOF or error; returns what came and whether it ended with a reset.
    async fn read_all(stream: &mut TcpStream) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                Ok(Ok(0)) => return (got, false),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                    return (got, true);
                }
                Err(_) => panic!("no EOF within {WAIT:?}, got {got:?}"),
            }
        }
    }

    async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        tokio::time::timeout(WAIT, stream.read_exact(&mut got))
            .await
            .expect("timed out")
            .unwrap();
        got
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"A1 NOOP\r\n").await.unwrap();
        assert_eq!(read_exact(&mut c, 9).await, b"A1 NOOP\r\n");
        assert_eq!(proxy.forwarded(Direction::ToServer), 9);
        assert_eq!(proxy.forwarded(Direction::ToClient), 9);
        assert_eq!(proxy.accepted(), 1);
    }

    /// A server that keeps everything it receives, and hands it over at EOF.
    async fn recorder() -> (SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let _ = socket.read_to_end(&mut got).await;
                    let _ = tx.send(got).await;
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn cuts_right_after_a_pattern_split_across_writes() {
        let (target, mut received) = recorder().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        proxy.cut_after_pattern(Direction::ToServer, b"DATA\r\n");
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"MAIL FROM:<a@b>\r\nDA").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(b"TA\r\nSubject: never\r\n").await.unwrap();
        let (back, reset) = read_all(&mut c).await;
        assert!(back.is_empty() && !reset, "a cut is a clean close");
        let got = tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got, b"MAIL FROM:<a@b>\r\nDATA\r\n",
            "the pattern goes through, nothing after it"
        );
        assert!(proxy.wait_fired(1, WAIT).await);
        // One-shot: the next connection is clean.
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        again.write_all(b"DATA\r\nok").await.unwrap();
        again.shutdown().await.unwrap();
        let got = tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"DATA\r\nok");
        assert_eq!(proxy.fired(), 1);
    }

    #[tokio::test]
    async fn resets_after_a_byte_count() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.arm(Direction::ToClient, Trigger::AfterBytes(5), Action::Reset);
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"0123456789").await.unwrap();
        let (got, reset) = read_all(&mut c).await;
        assert_eq!(got, b"01234");
        assert!(reset, "the client must see a reset, not a clean close");
    }

    #[tokio::test]
    async fn stall_holds_data_until_forward_and_blackhole_loses_it() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.set_mode(Direction::ToClient, Mode::Stall);
        c.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 8];
        let quiet = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(quiet.is_err(), "nothing may arrive while stalled");
        proxy.set_mode(Direction::ToClient, Mode::Forward);
        assert_eq!(read_exact(&mut c, 4).await, b"held");

        proxy.set_mode(Direction::ToServer, Mode::Blackhole);
        c.write_all(b"lost").await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(quiet.is_err());
        proxy.set_mode(Direction::ToServer, Mode::Forward);
        c.write_all(b"back").await.unwrap();
        assert_eq!(read_exact(&mut c, 4).await, b"back");
    }

    #[tokio::test]
    async fn stall_after_a_pattern_keeps_the_socket_open_and_silent() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.arm(
            Direction::ToClient,
            Trigger::AfterPattern(b"+ idling\r\n".to_vec()),
            Action::Stall,
        );
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"+ idling\r\n").await.unwrap();
        assert_eq!(read_exact(&mut c, 10).await, b"+ idling\r\n");
        c.write_all(b"* 3 EXISTS\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        let quiet = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(
            quiet.is_err(),
            "a stalled connection neither answers nor closes"
        );
        proxy.end_all(Action::Cut);
        let (rest, _) = read_all(&mut c).await;
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn one_byte_writes_deliver_the_same_bytes() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.set_mode(Direction::ToClient, Mode::OneByte);
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let line = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n";
        c.write_all(line).await.unwrap();
        assert_eq!(read_exact(&mut c, line.len()).await, line);
        assert_eq!(proxy.writes(Direction::ToClient), line.len() as u64);
        assert_eq!(proxy.writes(Direction::ToServer), 1);
    }

    #[tokio::test]
    async fn refused_connections_are_reset_and_end_all_closes_open_ones() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        open.write_all(b"x").await.unwrap();
        assert_eq!(read_exact(&mut open, 1).await, b"x");
        proxy.refuse_new(true);
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        let _ = refused.write_all(b"hello").await;
        let (got, _) = read_all(&mut refused).await;
        assert!(got.is_empty());
        proxy.end_all(Action::Reset);
        let (_, reset) = read_all(&mut open).await;
        assert!(reset);
        proxy.clear();
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        fresh.write_all(b"y").await.unwrap();
        assert_eq!(read_exact(&mut fresh, 1).await, b"y");
        assert_eq!(proxy.accepted(), 3);
    }

    #[test]
    fn patterns_are_found_across_reads() {
        assert_eq!(find_end(b"DA", b"TA\r\nmore", b"DATA\r\n"), Some(4));
        assert_eq!(find_end(b"", b"xxDATA\r\n", b"DATA\r\n"), Some(8));
        assert_eq!(find_end(b"DATA\r", b"x", b"DATA\r\n"), None);
        let mut tail = Vec::new();
        keep_tail(&mut tail, b"abcdefgh", 4);
        assert_eq!(tail, b"fgh");
    }
}
